/*
 * feature_log.c - sampled (features, prediction) records for skew checks
 * (see feature_log.h).
 */
#include "engine/sinks/feature_log.h"
#include "base/common.h"
#include "base/log.h"
#include "kscore/kscore.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ks_feature_log_init(ks_feature_log_t *fl, const struct ks_config *cfg, rd_kafka_t *producer,
                        int worker, long queue_max, char *errbuf, size_t errsize)
{
    memset(fl, 0, sizeof(*fl));
    double rate = cfg->feature_log_sample_rate;
    if (!cfg->feature_log_topic || !(rate > 0))
        return KS_OK;
    ks_metric_family_t *d = ks_metrics_counter(
        "kscore_feature_log_dropped_total",
        "Feature-log samples dropped (never waited for), by reason.", "reason");
    const char *v[] = {"queue_full"};
    fl->dropped_queue_full = ks_metrics_counter_at(d, v);
    v[0] = "produce_error";
    fl->dropped_produce_error = ks_metrics_counter_at(d, v);
    v[0] = "delivery_failed";
    fl->dropped_delivery_failed = ks_metrics_counter_at(d, v);
    fl->delivered = ks_metrics_counter0(ks_metrics_counter(
        "kscore_feature_log_records_total", "Feature-log samples acknowledged by the broker.", NULL));
    fl->always = rate >= 1;
    fl->threshold = (uint64_t)(rate * 18446744073709551616.0); /* rate * 2^64, rate < 1 */
    fl->rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(worker + 1) ^ (uint64_t)ks_now_mono_ns();
    if (!fl->rng)
        fl->rng = 1;
    fl->queue_limit = queue_max > 1 ? queue_max / 2 : 1;
    fl->rkt = rd_kafka_topic_new(producer, cfg->feature_log_topic, NULL);
    if (!fl->rkt)
        return ks_err(errbuf, errsize, KS_EKAFKA, "feature_log.topic %s: %s",
                      cfg->feature_log_topic, rd_kafka_err2str(rd_kafka_last_error()));
    return KS_OK;
}

void ks_feature_log_destroy(ks_feature_log_t *fl)
{
    if (fl->rkt)
        rd_kafka_topic_destroy(fl->rkt);
    fl->rkt = NULL;
    ks_buf_free(&fl->rec);
}

static void encode(ks_feature_log_t *fl, const ks_scorer_t *s, const ks_event_t *ev, size_t i,
                   const rd_kafka_message_t *m, const char *key, size_t key_len, int64_t now_ms)
{
    const ks_model_t *model = s->sv->model;
    const double *x = s->X + s->good_row[i] * model->n_features;
    const double *o = s->out + s->good_row[i] * model->n_outputs;
    ks_buf_t *b = &fl->rec;

    ks_buf_reset(b);
    ks_buf_puts(b, "{\"id\":");
    if (key)
        ks_buf_json_string(b, key, key_len);
    else
        ks_buf_puts(b, "null");
    ks_buf_puts(b, ",\"model_version\":");
    ks_buf_json_string(b, model->version, strlen(model->version));
    ks_buf_puts(b, ",\"features\":{");
    for (size_t j = 0; j < model->n_features; j++) {
        if (j)
            ks_buf_putc(b, ',');
        ks_buf_json_string(b, model->feature_names[j], strlen(model->feature_names[j]));
        ks_buf_putc(b, ':');
        ks_buf_json_double(b, x[j]); /* NaN (missing) prints as null */
    }
    ks_buf_putc(b, '}');
    ks_buf_putc(b, ',');
    ks_encode_prediction(b, s->sv, o);
    if (ev[i].timestamp_ms >= 0) {
        ks_buf_puts(b, ",\"event_time\":\"");
        ks_buf_iso8601_ms(b, ev[i].timestamp_ms);
        ks_buf_putc(b, '"');
    }
    ks_buf_puts(b, ",\"logged_at\":\"");
    ks_buf_iso8601_ms(b, now_ms);
    ks_buf_puts(b, "\"");
    if (m) {
        const char *topic = rd_kafka_topic_name(m->rkt);
        ks_buf_puts(b, ",\"source\":{\"topic\":");
        ks_buf_json_string(b, topic, strlen(topic));
        ks_buf_printf(b, ",\"partition\":%d,\"offset\":%lld}", (int)m->partition,
                      (long long)m->offset);
    }
    ks_buf_putc(b, '}');
}

void ks_feature_log_emit(ks_feature_log_t *fl, rd_kafka_t *producer, const ks_scorer_t *s,
                         const ks_event_t *ev, size_t i, const rd_kafka_message_t *m,
                         const char *key, size_t key_len, int64_t now_ms)
{
    if (rd_kafka_outq_len(producer) >= fl->queue_limit) {
        ks_counter_add(fl->dropped_queue_full, 1);
        return;
    }
    encode(fl, s, ev, i, m, key, key_len, now_ms);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        producer, RD_KAFKA_V_RKT(fl->rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(key, key ? key_len : 0), RD_KAFKA_V_VALUE(fl->rec.data, fl->rec.len),
        RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        ks_counter_add(fl->dropped_queue_full, 1);
    } else if (err) {
        ks_counter_add(fl->dropped_produce_error, 1);
        ks_warn("feature log: cannot produce to %s: %s (sample dropped)",
                rd_kafka_topic_name(fl->rkt), rd_kafka_err2str(err));
    }
}

int ks_feature_log_delivery(ks_feature_log_t *fl, const rd_kafka_message_t *m)
{
    if (!fl->rkt || m->rkt != fl->rkt)
        return 0;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        ks_counter_add(fl->delivered, 1);
    } else {
        ks_counter_add(fl->dropped_delivery_failed, 1);
        ks_warn("feature log: a sample to %s was not delivered: %s (dropped)",
                rd_kafka_topic_name(fl->rkt), rd_kafka_err2str(m->err));
    }
    return 1;
}
