/*
 * shadow.c - sink "shadow": the shadow model's record of each good row
 * (encode stage, b->shadow_recs: the output record's shape with
 * "variant":"shadow" and "shadow_of") to shadow.topic, keyed like the
 * output record.
 *
 * Shadow records are observations, not outputs: they carry no offset token,
 * are never waited for and never hold a commit back. Like feature-log
 * samples they are dropped and counted in
 * kscore_shadow_records_dropped_total{reason} when the producer queue is
 * more than half full, when produce fails, or when delivery fails;
 * delivered ones count in kscore_shadow_records_total.
 *
 * With delivery: exactly_once they go through the worker's transactional
 * producer like its outputs, so they belong to the batch's transaction:
 * committed with its outputs and input offsets (the commit's flush waits
 * for them as for every record in it), or aborted with them and written
 * again when the events are processed again. A read_committed reader of
 * shadow.topic sees at most one per event, exactly one unless dropped
 * (tests/integration/test_exactly_once_shadow.sh). A shadow record that
 * fails delivery then fails its transaction: counted as delivery_failed
 * here, its event is processed again.
 */
#include "base/common.h"
#include "base/log.h"
#include "base/metrics.h"
#include "engine/pipeline.h"
#include "engine/sink.h"

#include <stdlib.h>
#include <string.h>

typedef struct shadow_sink {
    rd_kafka_t *producer;
    rd_kafka_topic_t *rkt;
    long queue_limit;
    ks_counter_t *delivered, *dropped_queue_full, *dropped_produce_error,
        *dropped_delivery_failed;
} shadow_sink_t;

static int shadow_init(const ks_sink_env_t *env, void **ctx, char *errbuf, size_t errsize)
{
    const struct ks_config *cfg = env->p->cfg;
    *ctx = NULL;
    if (!cfg->shadow_topic || !cfg->deployments_topic || strcmp(cfg->mode, "passthrough") == 0)
        return KS_OK;
    shadow_sink_t *s = ks_xcalloc(1, sizeof(*s));
    *ctx = s;
    s->producer = env->producer;
    ks_metric_family_t *d = ks_metrics_counter(
        "kscore_shadow_records_dropped_total",
        "Shadow records dropped (never waited for), by reason.", "reason");
    const char *v[] = {"queue_full"};
    s->dropped_queue_full = ks_metrics_counter_at(d, v);
    v[0] = "produce_error";
    s->dropped_produce_error = ks_metrics_counter_at(d, v);
    v[0] = "delivery_failed";
    s->dropped_delivery_failed = ks_metrics_counter_at(d, v);
    s->delivered = ks_metrics_counter0(ks_metrics_counter(
        "kscore_shadow_records_total", "Shadow records acknowledged by the broker.", NULL));
    s->queue_limit = env->queue_max > 1 ? env->queue_max / 2 : 1;
    s->rkt = rd_kafka_topic_new(env->producer, cfg->shadow_topic, NULL);
    if (!s->rkt)
        return ks_err(errbuf, errsize, KS_EKAFKA, "shadow.topic %s: %s", cfg->shadow_topic,
                      rd_kafka_err2str(rd_kafka_last_error()));
    return KS_OK;
}

/* Row i's shadow record, if the shadow scored it; never blocks or fails. */
static int shadow_write(void *ctx, ks_batch_t *b, size_t i, uint64_t token)
{
    shadow_sink_t *s = ctx;
    size_t key_len;
    if (!b->shadow_recs || b->shadow_len[i] == 0)
        return KS_OK;
    if (rd_kafka_outq_len(s->producer) >= s->queue_limit) {
        ks_counter_add(s->dropped_queue_full, 1);
        return KS_OK;
    }
    const char *key = ks_batch_key(b, i, &key_len);
    if (!key) {
        key = b->ev[i].key;
        key_len = b->ev[i].key_len;
    }
    rd_kafka_resp_err_t err = rd_kafka_producev(
        s->producer, RD_KAFKA_V_RKT(s->rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(key, key ? key_len : 0),
        RD_KAFKA_V_VALUE(b->shadow_recs->data + b->shadow_off[i], b->shadow_len[i]),
        RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        ks_counter_add(s->dropped_queue_full, 1);
    } else if (err) {
        ks_counter_add(s->dropped_produce_error, 1);
        ks_warn("shadow: cannot produce to %s: %s (record dropped)", rd_kafka_topic_name(s->rkt),
                rd_kafka_err2str(err));
    }
    return KS_OK;
}

static int shadow_delivered(void *ctx, const rd_kafka_message_t *m)
{
    shadow_sink_t *s = ctx;
    if (m->rkt != s->rkt)
        return 0;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        ks_counter_add(s->delivered, 1);
    } else {
        ks_counter_add(s->dropped_delivery_failed, 1);
        ks_warn("shadow: a record to %s was not delivered: %s (dropped)",
                rd_kafka_topic_name(s->rkt), rd_kafka_err2str(m->err));
    }
    return 1;
}

static void shadow_free(void *ctx)
{
    shadow_sink_t *s = ctx;
    if (!s)
        return;
    if (s->rkt)
        rd_kafka_topic_destroy(s->rkt);
    free(s);
}

const ks_sink_type_t ks_sink_shadow = {
    .name = "shadow",
    .init = shadow_init,
    .write = shadow_write,
    .delivered = shadow_delivered,
    .free = shadow_free,
};
