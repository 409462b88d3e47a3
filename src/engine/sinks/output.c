/*
 * output.c - sink "output": a good row's record (stage encode) to
 * output.topic, keyed by the id field's text or else the input record's key,
 * with the input record's headers. While the worker holds the batch's
 * record buffer (b->recs_hold) the record is produced from it without a
 * copy and takes a reference on it (kafka/payloads.h). A record refused for
 * itself (too large for message.max.bytes, invalid: kafka/produce.h) goes to the dead-letter
 * topic instead, class "delivery", stage "output", truncated if need be: the
 * dead letter's value is the output record (the input event stays in its
 * topic, at the offset the headers name). The worker does the same with a
 * record the broker refuses in a delivery report.
 */
#include "base/common.h"
#include "base/log.h"
#include "engine/pipeline.h"
#include "engine/sink.h"
#include "kafka/payloads.h"
#include "kafka/produce.h"

#include <stdlib.h>

typedef struct output {
    rd_kafka_t *producer;
    rd_kafka_topic_t *rkt, *dlq_rkt;
    ks_counter_t *dead_lettered;
    char name[32];
} output_t;

static int output_init(const ks_sink_env_t *env, void **ctx, char *errbuf, size_t errsize)
{
    output_t *o = ks_xcalloc(1, sizeof(*o));
    o->producer = env->producer;
    snprintf(o->name, sizeof(o->name), "worker-%d", env->worker);
    o->rkt = rd_kafka_topic_new(env->producer, env->p->cfg->output_topic, NULL);
    o->dlq_rkt = rd_kafka_topic_new(env->producer, env->p->cfg->dlq_topic, NULL);
    o->dead_lettered = env->p->metrics.dead_lettered[KS_ERRCLASS_DELIVERY];
    *ctx = o;
    if (!o->rkt)
        return ks_err(errbuf, errsize, KS_EKAFKA, "output.topic %s: %s", env->p->cfg->output_topic,
                      rd_kafka_err2str(rd_kafka_last_error()));
    return KS_OK;
}

static int output_write(void *ctx, ks_batch_t *b, size_t i, uint64_t token)
{
    output_t *o = ctx;
    const ks_event_t *ev = &b->ev[i];
    size_t key_len, rec_len;
    const char *key = ks_batch_key(b, i, &key_len);
    const char *rec = ks_batch_record(b, i, &rec_len);
    if (!key) {
        key = ev->key;
        key_len = ev->key_len;
    }
    rd_kafka_headers_t *hdrs = ks_kafka_headers_copy(ev->msg, 0);
    rd_kafka_resp_err_t err =
        b->recs_hold ? ks_kafka_produce_held(o->producer, o->rkt, RD_KAFKA_PARTITION_UA, key,
                                             key_len, rec, rec_len, hdrs, token)
                     : ks_kafka_produce(o->producer, o->rkt, RD_KAFKA_PARTITION_UA, key, key_len,
                                        rec, rec_len, hdrs, token);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (b->recs_hold)
            ks_payloads_ref(b->recs_hold);
        return KS_OK;
    }
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        return KS_SINK_QUEUE_FULL;
    if (ks_kafka_err_is_record_level(err)) {
        char msg[256];
        snprintf(msg, sizeof(msg), "the output record (%zu bytes) cannot be produced to %s: %s",
                 rec_len, rd_kafka_topic_name(o->rkt), rd_kafka_err2str(err));
        rd_kafka_headers_t *orig = NULL;
        if (ev->msg && rd_kafka_message_headers(ev->msg, &orig) != RD_KAFKA_RESP_ERR_NO_ERROR)
            orig = NULL;
        ks_dead_letter_t why = {ks_errclass_name(KS_ERRCLASS_DELIVERY), msg, "output", ev->topic,
                                ev->partition, ev->offset, 0};
        err = ks_kafka_produce_dead_letter(o->producer, o->dlq_rkt, key, key_len, rec, rec_len,
                                           orig, &why, token);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            ks_counter_add(o->dead_lettered, 1);
            return KS_OK;
        }
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return KS_SINK_QUEUE_FULL;
    }
    ks_error("%s: cannot produce to %s: %s", o->name, rd_kafka_topic_name(o->rkt),
             rd_kafka_err2str(err));
    return KS_EKAFKA;
}

static void output_free(void *ctx)
{
    output_t *o = ctx;
    if (!o)
        return;
    if (o->rkt)
        rd_kafka_topic_destroy(o->rkt);
    if (o->dlq_rkt)
        rd_kafka_topic_destroy(o->dlq_rkt);
    free(o);
}

const ks_sink_type_t ks_sink_output = {
    .name = "output",
    .init = output_init,
    .write = output_write,
    .free = output_free,
};
