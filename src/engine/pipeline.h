/*
 * pipeline.h - internals shared by the engine's files: the pipeline object
 * (config + model + the feature-to-model column map), the scorer that runs
 * one micro-batch through decode -> features -> model -> encode, and the Kafka
 * worker.
 *
 * The batch -> produce -> commit boundary is explicit: ks_scorer_run() computes
 * everything for a batch (no I/O), the worker then produces each record, and
 * commits only offsets whose records were acknowledged (kafka/offsets.h).
 */
#ifndef KS_PIPELINE_H
#define KS_PIPELINE_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include "engine/config.h"
#include "engine/engine_metrics.h"
#include "decode/value.h"
#include "decode/decoder.h"
#include "model/model.h"
#include "base/arena.h"
#include "base/buf.h"

struct ks_worker;
struct ks_kstats;
struct ks_http;

/* A model in service and everything derived from it. Refcounted: a batch
 * holds a reference from scoring until its records are produced, so a hot
 * swap never frees a model under a batch (engine/pipeline.c). Immutable. */
typedef struct ks_serving {
    ks_model_t *model;
    size_t *model_col;         /* model feature j is features column model_col[j] */
    int identity_cols;         /* model_col is 0..n-1: compute straight into X */
    int binary;                /* classification with 2 classes: emit "score" */
    ks_histogram_t *score, *confidence; /* this version's prediction histograms */
    atomic_int refs;
} ks_serving_t;

struct ks_pipeline {
    const struct ks_config *cfg;
    ks_serving_t *serving;     /* the model new batches use; swap under serving_lock */
    pthread_mutex_t serving_lock;
    volatile sig_atomic_t reload_requested; /* SIGHUP */
    size_t n_cols;             /* feature columns computed by the features */
    int id_field;              /* schema index of output.id_field, or -1 */
    int *carry;                /* schema indexes of output.carry_fields */
    size_t n_carry;
    ks_engine_metrics_t metrics;
    volatile sig_atomic_t stop;
    atomic_int fatal;          /* a worker hit an unrecoverable error */
    atomic_int abandoned;      /* a worker was left stuck at shutdown: never free */
    struct ks_worker **workers;
    size_t n_workers;
    struct ks_kstats *kstats;  /* librdkafka statistics, readiness (obs/kafka_stats.h); NULL
                                  when metrics are off or offline */
    struct ks_http *http;      /* metrics/health/status endpoint (obs/http.h) */
};

/* One event entering a batch. */
typedef struct ks_event {
    const char *value;
    size_t len;
    int64_t timestamp_ms;  /* the input record's timestamp, -1 if none */
    int64_t recv_ns;       /* monotonic time the event was received */
} ks_event_t;

/* The model in service, with a reference the caller releases. Any thread. */
ks_serving_t *ks_pipeline_acquire(struct ks_pipeline *p);
void ks_serving_release(ks_serving_t *sv);

/* Loads model.path again and, if it loads, fits the features and predicts,
 * swaps it in; otherwise logs why and keeps the model in service. Returns 0
 * when the new model is in service (or the file is unchanged). */
int ks_pipeline_reload(struct ks_pipeline *p, char *errbuf, size_t errsize);

/* Per-thread batch state; buffers grow to the largest batch and are reused. */
typedef struct ks_scorer {
    const struct ks_pipeline *p;
    ks_serving_t *sv;         /* the model of the current batch (set by ks_scorer_run) */
    ks_decoder_t *decoder;
    ks_arena_t arena;
    size_t cap;
    ks_value_t *fields;       /* cap x n_fields */
    double *cols;             /* one row of feature columns (when reordering) */
    double *X;                /* cap x model n_features, good rows only */
    size_t x_cap;             /* doubles allocated in X */
    double *out;              /* cap x model n_outputs */
    size_t out_cap;           /* doubles allocated in out */
    size_t *good_row;         /* event index -> row in X/out, or SIZE_MAX */
    ks_errclass_t *err;       /* per event */
    char **errmsg;            /* per event, in the arena */
    ks_buf_t recs;            /* the batch's output records, back to back */
    size_t *rec_off, *rec_len; /* per event: its record in recs */
    const char **key_ptr;     /* per event: key text in the event (string id), or NULL */
    size_t *key_off, *key_len; /* ... or in recs (numeric id; SIZE_MAX = none) */
    char errtmp[256];
} ks_scorer_t;

int ks_scorer_init(ks_scorer_t *s, const struct ks_pipeline *p, char *errbuf, size_t errsize);
void ks_scorer_destroy(ks_scorer_t *s);

/* Runs n events through decode, features and the model `sv` (the caller
 * holds a reference until it is done encoding). Afterwards, event i either has
 * s->err[i] != KS_ERRCLASS_NONE (with s->errmsg[i]) or a prediction that
 * ks_scorer_encode() turns into the output record. */
void ks_scorer_run(ks_scorer_t *s, ks_serving_t *sv, const ks_event_t *ev, size_t n);

/* Appends the prediction members of outputs `o` of model `sv`, comma
 * separated, without a leading comma: "prediction", and for classifiers
 * "probabilities", "score" (binary) and "confidence". */
void ks_encode_prediction(ks_buf_t *b, const ks_serving_t *sv, const double *o);

/* Encodes the output record of every scored event of the batch (all of them at
 * once, so the stage is timed once and latency_ms read from one clock read);
 * then ks_scorer_record / ks_scorer_key give event i's record and key. */
void ks_scorer_encode_batch(ks_scorer_t *s, const ks_event_t *ev, size_t n);

static inline const char *ks_scorer_record(const ks_scorer_t *s, size_t i, size_t *len)
{
    *len = s->rec_len[i];
    return s->recs.data + s->rec_off[i];
}

/* The id field's text as the record key, or NULL (no id field, or missing). */
static inline const char *ks_scorer_key(const ks_scorer_t *s, size_t i, size_t *len)
{
    *len = s->key_len[i];
    if (s->key_ptr[i])
        return s->key_ptr[i];
    return s->key_off[i] != (size_t)-1 ? s->recs.data + s->key_off[i] : NULL;
}

/* Kafka worker, see engine/worker.c. */
int ks_worker_start(struct ks_pipeline *p, int id, struct ks_worker **out, char *errbuf,
                    size_t errsize);
/* Joins the worker thread, waiting until deadline_ms (CLOCK_REALTIME epoch
 * ms), and frees it; returns its exit status (KS_EXIT_*). */
int ks_worker_join(struct ks_worker *w, int64_t deadline_ms);

#endif
