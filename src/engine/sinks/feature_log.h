/*
 * feature_log.h - sampled feature logging for training-serving skew checks.
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
 *
 * One ks_feature_log_t belongs to one worker thread.
 */
#ifndef KS_FEATURE_LOG_H
#define KS_FEATURE_LOG_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>

#include "base/metrics.h"
#include "engine/pipeline.h"
#include "base/buf.h"

typedef struct ks_feature_log {
    rd_kafka_topic_t *rkt;   /* NULL: feature logging is off */
    uint64_t rng;
    uint64_t threshold;      /* sample when the next random number is below it */
    int always;              /* sample_rate 1 */
    long queue_limit;        /* drop samples when the producer queue holds this many */
    ks_buf_t rec;
    ks_counter_t *delivered, *dropped_queue_full, *dropped_produce_error,
        *dropped_delivery_failed;
} ks_feature_log_t;

/* Sets up sampling for one worker (off, leaving fl->rkt NULL, when the config
 * has no feature_log.topic or a zero rate). queue_max is the producer's
 * queue.buffering.max.messages. Returns KS_OK or KS_EKAFKA with a sentence. */
int ks_feature_log_init(ks_feature_log_t *fl, const struct ks_config *cfg, rd_kafka_t *producer,
                        int worker, long queue_max, char *errbuf, size_t errsize);
void ks_feature_log_destroy(ks_feature_log_t *fl);

/* The sampling decision for one event: a branch and, when on, one xorshift. */
static inline int ks_feature_log_want(ks_feature_log_t *fl)
{
    if (!fl->rkt)
        return 0;
    if (fl->always)
        return 1;
    uint64_t x = fl->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    fl->rng = x;
    return x < fl->threshold;
}

/* Produces the sample for event i of a batch the scorer has run (s->err[i]
 * must be KS_ERRCLASS_NONE); `m` is the input record, key/key_len the key
 * its prediction was produced with. Never blocks. */
void ks_feature_log_emit(ks_feature_log_t *fl, rd_kafka_t *producer, const ks_scorer_t *s,
                         const ks_event_t *ev, size_t i, const rd_kafka_message_t *m,
                         const char *key, size_t key_len, int64_t now_ms);

/* For the delivery report callback: returns 1 (and counts it) if the report
 * is a sample's, 0 if it belongs to someone else. */
int ks_feature_log_delivery(ks_feature_log_t *fl, const rd_kafka_message_t *m);

#endif
