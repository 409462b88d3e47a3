/*
 * dead_letter.c - sink "dead_letter": a failed row's input record (key,
 * value, headers) to dead_letter.topic with the __kscore.errors.* headers
 * (kafka/produce.h), truncated when too large. The dead-letter counter
 * counts each event once, when its dead letter is handed to the producer.
 */
#include "base/common.h"
#include "base/log.h"
#include "engine/pipeline.h"
#include "engine/sink.h"
#include "kafka/produce.h"

#include <stdlib.h>

typedef struct dead_letter {
    rd_kafka_t *producer;
    rd_kafka_topic_t *rkt;
    const ks_engine_metrics_t *em;
    char name[32];
} dead_letter_t;

static int dead_letter_init(const ks_sink_env_t *env, void **ctx, char *errbuf, size_t errsize)
{
    dead_letter_t *d = ks_xcalloc(1, sizeof(*d));
    d->producer = env->producer;
    d->em = &env->p->metrics;
    snprintf(d->name, sizeof(d->name), "worker-%d", env->worker);
    d->rkt = rd_kafka_topic_new(env->producer, env->p->cfg->dlq_topic, NULL);
    *ctx = d;
    if (!d->rkt)
        return ks_err(errbuf, errsize, KS_EKAFKA, "dead_letter.topic %s: %s",
                      env->p->cfg->dlq_topic, rd_kafka_err2str(rd_kafka_last_error()));
    return KS_OK;
}

static int dead_letter_write(void *ctx, ks_batch_t *b, size_t i, uint64_t token)
{
    dead_letter_t *d = ctx;
    const ks_event_t *ev = &b->ev[i];
    ks_dead_letter_t why = {ks_errclass_name(b->err[i]), b->errmsg[i],
                            b->err_stage[i] ? b->err_stage[i] : "decode", ev->topic,
                            ev->partition, ev->offset, 0};
    rd_kafka_headers_t *hdrs = NULL;
    if (ev->msg && rd_kafka_message_headers(ev->msg, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        hdrs = NULL;
    rd_kafka_resp_err_t err = ks_kafka_produce_dead_letter(
        d->producer, d->rkt, ev->key, ev->key_len, ev->value, ev->len, hdrs, &why, token);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        ks_counter_add(d->em->dead_lettered[b->err[i]], 1);
        return KS_OK;
    }
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        return KS_SINK_QUEUE_FULL;
    ks_error("%s: cannot produce the dead letter of %s [%d] @%lld to %s: %s", d->name,
             ev->topic ? ev->topic : "?", (int)ev->partition, (long long)ev->offset,
             rd_kafka_topic_name(d->rkt), rd_kafka_err2str(err));
    return KS_EKAFKA;
}

static void dead_letter_free(void *ctx)
{
    dead_letter_t *d = ctx;
    if (!d)
        return;
    if (d->rkt)
        rd_kafka_topic_destroy(d->rkt);
    free(d);
}

const ks_sink_type_t ks_sink_dead_letter = {
    .name = "dead_letter",
    .init = dead_letter_init,
    .write = dead_letter_write,
    .free = dead_letter_free,
};
