/*
 * pipeline.h - the engine's private header: the pipeline object (config, the
 * model in service, the stages, the workers) shared by the files of
 * src/engine/. Observers (src/obs/) read the engine through engine/status.h,
 * never through this struct.
 *
 * Field ownership by thread:
 *   main thread     builds and frees everything; runs supervise() (model
 *                   reloads: swaps `serving` under serving_lock)
 *   workers         read cfg, stages, serving (with a reference), metrics;
 *                   write only their own ks_worker_t
 *   any thread      stop, fatal, abandoned, reload_requested, holding,
 *                   hold_reason (atomics);
 *                   metrics (relaxed atomics inside); kafka_obs callbacks
 *                   are called on worker threads
 * Everything else is written before the workers start and read-only after.
 *
 * The batch -> produce -> commit boundary is explicit: the stages compute
 * everything for a batch (no I/O), the worker then writes each row to a sink,
 * and commits only offsets whose records were acknowledged (kafka/offsets.h).
 */
#ifndef KS_PIPELINE_H
#define KS_PIPELINE_H

#include <pthread.h>
#include <stdatomic.h>

#include "base/buf.h"
#include "engine/batch.h"
#include "engine/config.h"
#include "engine/engine_metrics.h"
#include "engine/stage.h"
#include "kafka/client.h"
#include "model/model.h"

struct ks_worker;

/* A model in service and everything derived from it. Refcounted: a batch
 * holds a reference from the model stage until its records are produced, so
 * a hot swap never frees a model under a batch (engine/pipeline.c).
 * Immutable. */
typedef struct ks_serving {
    ks_model_t *model;
    size_t *model_col;         /* model feature j is feature column model_col[j] */
    int identity_cols;         /* model_col is 0..n-1: F is the model's input as is */
    int binary;                /* classification with 2 classes: emit "score" */
    ks_histogram_t *score, *confidence; /* this version's prediction histograms */
    atomic_int refs;
} ks_serving_t;

struct ks_pipeline {
    const struct ks_config *cfg;
    ks_serving_t *serving;     /* the model new batches use; swap under serving_lock */
    pthread_mutex_t serving_lock;
    atomic_int reload_requested; /* SIGHUP */
    size_t n_cols;             /* feature columns computed by the features */
    int id_field;              /* schema index of output.id_field, or -1 */
    int *carry;                /* schema indexes of output.carry_fields */
    size_t n_carry;
    ks_engine_metrics_t metrics;
    ks_stages_t *stages;
    atomic_int stop;           /* ks_pipeline_stop (async-signal-safe) */
    atomic_int fatal;          /* a worker hit an unrecoverable error */
    atomic_int abandoned;      /* a worker was left stuck at shutdown: never free */
    atomic_int unacknowledged; /* a worker stopped with outputs not acknowledged */
    atomic_int holding;        /* workers holding a batch a stage held (stage.h) */
    _Atomic(const char *) hold_reason; /* the latest hold's reason (lives with cfg) */
    struct ks_worker **workers;
    size_t n_workers;
    ks_kafka_observer_t kafka_obs; /* librdkafka statistics and assignments (obs/) */
    struct ks_drift *drift;    /* the drift stage's window (engine/drift.h), NULL if off */
    struct ks_evaluator *evaluator;  /* online evaluation (engine/evaluation.h), NULL if off */
    struct ks_evalstore *evalstore;
};

/* The model in service, with a reference the caller releases. Any thread. */
ks_serving_t *ks_pipeline_acquire(struct ks_pipeline *p);
void ks_serving_release(ks_serving_t *sv);

/* Stops the pipeline because of an error it cannot survive (logged by the
 * caller): exit status 1. Any thread. */
void ks_pipeline_fail(struct ks_pipeline *p);

/* Loads model.path again and, if it loads, fits the features and predicts,
 * swaps it in; otherwise logs why and keeps the model in service. Returns 0
 * when the new model is in service (or the file is unchanged). */
int ks_pipeline_reload(struct ks_pipeline *p, char *errbuf, size_t errsize);

/* Appends the prediction members of outputs `o` of model `sv`, comma
 * separated, without a leading comma: "prediction", and for classifiers
 * "probabilities", "score" (binary) and "confidence" (stages/encode.c). */
void ks_encode_prediction(ks_buf_t *b, const ks_serving_t *sv, const double *o);

/* Kafka worker, see engine/worker.c. */
int ks_worker_start(struct ks_pipeline *p, int id, struct ks_worker **out, char *errbuf,
                    size_t errsize);
/* Joins the worker thread, waiting until deadline_ms (CLOCK_REALTIME epoch
 * ms), and frees it; returns its exit status (KS_EXIT_*). */
int ks_worker_join(struct ks_worker *w, int64_t deadline_ms);

#endif
