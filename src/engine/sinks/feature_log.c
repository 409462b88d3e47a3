/*
 * feature_log.c - sink "feature_log": sampled feature records for
 * training-serving skew checks.
 *
 * With feature_log.topic set, each worker writes a random sample
 * (feature_log.sample_rate) of the events it scored to that topic, one JSON
 * record per event, keyed like the prediction:
 *
 *   {"id":"e42","model_version":"...","features":{"amount":12.5,...},
 *    "prediction":1,"probabilities":{"0":0.1,"1":0.9},"score":0.9,
 *    "event_time":"...","logged_at":"...",
 *    "source":{"topic":"tx","partition":3,"offset":1234}}
 *
 * The features are the model's input row, by the model's feature names, as
 * the model saw them (missing values as null). Samples are not events: they
 * carry no offset token, are never waited for and never stall the pipeline.
 * A sample is dropped and counted in kscore_feature_log_dropped_total{reason}
 * when the producer queue is more than half full (the level at which
 * backpressure would resume consumption), when produce fails, or when its
 * delivery fails; delivered ones count in kscore_feature_log_records_total.
 */
#include "base/common.h"
#include "base/log.h"
#include "base/metrics.h"
#include "engine/pipeline.h"
#include "engine/sink.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct feature_log {
    rd_kafka_t *producer;
    rd_kafka_topic_t *rkt;
    uint64_t rng;
    uint64_t threshold;      /* sample when the next random number is below it */
    int always;              /* sample_rate 1 */
    long queue_limit;        /* drop samples when the producer queue holds this many */
    ks_buf_t rec;
    ks_counter_t *delivered, *dropped_queue_full, *dropped_produce_error,
        *dropped_delivery_failed;
} feature_log_t;

static const ks_config_key_t feature_log_keys[] = {
    {"feature_log.topic", KS_CONF_STRING, KS_CONF_OFF(feature_log_topic), KS_CONF_NOHAS, 0, NULL,
     0, 0, NULL,
     "Topic receiving a sample of (event id, features by name, prediction, model version) "
     "records for training-serving skew checks (default: off)."},
    {"feature_log.sample_rate", KS_CONF_DOUBLE, KS_CONF_OFF(feature_log_sample_rate),
     KS_CONF_NOHAS, 0, "0.01", 0, 0, NULL,
     "Fraction of scored events written to feature_log.topic, 0..1. Samples are dropped "
     "(and counted), never waited for, when the producer queue is busy."},
};

/* The sampling decision for one event: a branch and, when on, one xorshift. */
static int want(feature_log_t *fl)
{
    if (fl->always)
        return 1;
    uint64_t x = fl->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    fl->rng = x;
    return x < fl->threshold;
}

static int feature_log_init(const ks_sink_env_t *env, void **ctx, char *errbuf, size_t errsize)
{
    const struct ks_config *cfg = env->p->cfg;
    double rate = cfg->feature_log_sample_rate;
    *ctx = NULL;
    if (!cfg->feature_log_topic || !(rate > 0) || strcmp(cfg->mode, "passthrough") == 0)
        return KS_OK;
    feature_log_t *fl = ks_xcalloc(1, sizeof(*fl));
    *ctx = fl;
    fl->producer = env->producer;
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
    fl->rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(env->worker + 1) ^ (uint64_t)ks_now_mono_ns();
    if (!fl->rng)
        fl->rng = 1;
    fl->queue_limit = env->queue_max > 1 ? env->queue_max / 2 : 1;
    fl->rkt = rd_kafka_topic_new(env->producer, cfg->feature_log_topic, NULL);
    if (!fl->rkt)
        return ks_err(errbuf, errsize, KS_EKAFKA, "feature_log.topic %s: %s",
                      cfg->feature_log_topic, rd_kafka_err2str(rd_kafka_last_error()));
    return KS_OK;
}

static void encode(feature_log_t *fl, const ks_batch_t *s, size_t i, const char *key,
                   size_t key_len)
{
    const ks_serving_t *sv = ks_batch_row_serving(s, i); /* its variant's, under a routing */
    const ks_model_t *model = sv->model;
    const ks_event_t *ev = s->ev;
    const double *f = s->F + s->good_row[i] * s->n_cols;
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
        ks_buf_json_double(b, f[sv->model_col[j]]); /* NaN (missing) prints as null */
    }
    ks_buf_putc(b, '}');
    ks_buf_putc(b, ',');
    ks_encode_prediction(b, sv, o);
    if (ev[i].timestamp_ms >= 0) {
        ks_buf_puts(b, ",\"event_time\":\"");
        ks_buf_iso8601_ms(b, ev[i].timestamp_ms);
        ks_buf_putc(b, '"');
    }
    ks_buf_puts(b, ",\"logged_at\":\"");
    ks_buf_iso8601_ms(b, s->now_ms);
    ks_buf_puts(b, "\"");
    if (ev[i].topic) {
        ks_buf_puts(b, ",\"source\":{\"topic\":");
        ks_buf_json_string(b, ev[i].topic, strlen(ev[i].topic));
        ks_buf_printf(b, ",\"partition\":%d,\"offset\":%lld}", (int)ev[i].partition,
                      (long long)ev[i].offset);
    }
    ks_buf_putc(b, '}');
}

/* Samples a good row; never blocks, never fails the row. */
static int feature_log_write(void *ctx, ks_batch_t *s, size_t i, uint64_t token)
{
    feature_log_t *fl = ctx;
    size_t key_len;
    if (!want(fl))
        return KS_OK;
    if (rd_kafka_outq_len(fl->producer) >= fl->queue_limit) {
        ks_counter_add(fl->dropped_queue_full, 1);
        return KS_OK;
    }
    const char *key = ks_batch_key(s, i, &key_len);
    if (!key) {
        key = s->ev[i].key;
        key_len = s->ev[i].key_len;
    }
    encode(fl, s, i, key, key_len);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        fl->producer, RD_KAFKA_V_RKT(fl->rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(key, key ? key_len : 0), RD_KAFKA_V_VALUE(fl->rec.data, fl->rec.len),
        RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        ks_counter_add(fl->dropped_queue_full, 1);
    } else if (err) {
        ks_counter_add(fl->dropped_produce_error, 1);
        ks_warn("feature log: cannot produce to %s: %s (sample dropped)",
                rd_kafka_topic_name(fl->rkt), rd_kafka_err2str(err));
    }
    return KS_OK;
}

static int feature_log_delivered(void *ctx, const rd_kafka_message_t *m)
{
    feature_log_t *fl = ctx;
    if (m->rkt != fl->rkt)
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

static void feature_log_free(void *ctx)
{
    feature_log_t *fl = ctx;
    if (!fl)
        return;
    if (fl->rkt)
        rd_kafka_topic_destroy(fl->rkt);
    ks_buf_free(&fl->rec);
    free(fl);
}

const ks_sink_type_t ks_sink_feature_log = {
    .name = "feature_log",
    .keys = feature_log_keys,
    .n_keys = KS_ARRAY_LEN(feature_log_keys),
    .init = feature_log_init,
    .write = feature_log_write,
    .delivered = feature_log_delivered,
    .free = feature_log_free,
};
