/*
 * passthrough.c - sink "passthrough" (mode: passthrough): each input record
 * copied to output.topic, same key and partition, nothing else. The same
 * worker loop minus the stages: the benchmark's measure of the Kafka limit.
 */
#include "base/common.h"
#include "base/log.h"
#include "engine/pipeline.h"
#include "engine/sink.h"
#include "kafka/produce.h"

#include <stdlib.h>

typedef struct passthrough {
    rd_kafka_t *producer;
    rd_kafka_topic_t *rkt;
} passthrough_t;

static int passthrough_init(const ks_sink_env_t *env, void **ctx, char *errbuf, size_t errsize)
{
    passthrough_t *t = ks_xcalloc(1, sizeof(*t));
    t->producer = env->producer;
    t->rkt = rd_kafka_topic_new(env->producer, env->p->cfg->output_topic, NULL);
    *ctx = t;
    if (!t->rkt)
        return ks_err(errbuf, errsize, KS_EKAFKA, "output.topic %s: %s",
                      env->p->cfg->output_topic, rd_kafka_err2str(rd_kafka_last_error()));
    return KS_OK;
}

static int passthrough_write(void *ctx, ks_batch_t *b, size_t i, uint64_t token)
{
    passthrough_t *t = ctx;
    const ks_event_t *ev = &b->ev[i];
    rd_kafka_resp_err_t err = ks_kafka_produce(t->producer, t->rkt, ev->partition, ev->key,
                                               ev->key_len, ev->value, ev->len, NULL, token);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        return KS_OK;
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        return KS_SINK_QUEUE_FULL;
    ks_error("cannot produce to %s: %s", rd_kafka_topic_name(t->rkt), rd_kafka_err2str(err));
    return KS_EKAFKA;
}

static void passthrough_free(void *ctx)
{
    passthrough_t *t = ctx;
    if (!t)
        return;
    if (t->rkt)
        rd_kafka_topic_destroy(t->rkt);
    free(t);
}

const ks_sink_type_t ks_sink_passthrough = {
    .name = "passthrough",
    .init = passthrough_init,
    .write = passthrough_write,
    .free = passthrough_free,
};
