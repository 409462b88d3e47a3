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
 *   any thread      stop, fatal, abandoned, reload_requested, holding, restoring,
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
#include "engine/deploy.h"
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

/* One variant of the routing: a model and the rows it serves, with its
 * per-version metrics (kscore_model_predictions_total, _errors_total,
 * _latency_seconds, labelled model_version and variant). */
typedef struct ks_route_variant {
    ks_serving_t *sv;          /* a reference; NULL = no such variant (shadow) */
    const char *name;          /* "champion", "canary", "a".."d", "shadow" (static) */
    ks_counter_t *predictions, *errors;
    ks_histogram_t *latency;   /* the variant's model call per batch */
} ks_route_variant_t;

/* The models in service under model.deployments_topic, as one immutable,
 * refcounted object swapped with `serving` (its champion) under
 * serving_lock: a batch holds it from the route stage until its records are
 * produced, so every row of a batch is scored by one routing, and an old
 * routing (and its models) goes when its last batch is released. */
typedef struct ks_routing {
    ks_route_variant_t v[KS_DEPLOY_VARIANTS_MAX];
    uint32_t upto[KS_DEPLOY_VARIANTS_MAX]; /* cumulative buckets (deploy.h) */
    size_t n;                  /* 1: the champion serves every row */
    size_t champion;           /* the variant of rows without a key (the champion's
                                  when it is routed, else the first) */
    ks_serving_t *champion_sv; /* a reference: the champion (pipeline `serving`),
                                  whether or not an A/B split routes it */
    uint32_t seed;             /* routing hash seed */
    ks_route_variant_t shadow; /* shadow.sv NULL: no shadow model */
    ks_counter_t *shadow_compared, *shadow_agreed; /* rows with both outputs; same label */
    ks_histogram_t *shadow_delta;  /* |shadow score - served score| */
    atomic_int refs;
} ks_routing_t;

struct ks_deployments;

struct ks_pipeline {
    const struct ks_config *cfg;
    ks_serving_t *serving;     /* the model new batches use; swap under serving_lock */
    ks_routing_t *routing;     /* with model.deployments_topic: the variants (its
                                  champion is `serving`); swap under serving_lock */
    pthread_mutex_t serving_lock;
    struct ks_deployments *deploy; /* engine/deployments.c; NULL when off */
    pthread_mutex_t recent_lock;   /* recent good feature rows, the warm-up of */
    double *recent;                /* deployed models (route stage fills it) */
    size_t n_recent, recent_pos;
    atomic_int reload_requested; /* SIGHUP */
    atomic_uint model_swaps;   /* models or routings put in service after start-up
                                  (workers tell gaps near a swap apart) */
    size_t n_cols;             /* feature columns computed by the features */
    int features_only;         /* ks_pipeline_new_features: the stages up to features,
                                  no model (serving and routing stay NULL) */
    int id_field;              /* schema index of output.id_field, or -1 */
    int *carry;                /* schema indexes of output.carry_fields */
    size_t n_carry;
    ks_engine_metrics_t metrics;
    ks_stages_t *stages;
    atomic_int stop;           /* ks_pipeline_stop (async-signal-safe) */
    atomic_int fatal;          /* a worker hit an unrecoverable error */
    atomic_int abandoned;      /* a worker was left stuck at shutdown: never free */
    atomic_int unacknowledged; /* a worker stopped with outputs not acknowledged:
                                  exit status 1 (even if it is abandoned later) */
    atomic_int holding;        /* workers holding a batch a stage held (stage.h) */
    _Atomic(const char *) hold_reason; /* the latest hold's reason (lives with cfg) */
    atomic_int restoring;      /* partitions whose stage state is being restored
                                  (engine/stages/windows.c): not ready meanwhile */
    int64_t produce_max_bytes; /* the smallest max.message.bytes of the topics the
                                  workers write (ks_pipeline_check_topics; 0 =
                                  unknown): caps the producers' batch.size */
    const char *produce_max_topic; /* that topic (lives with cfg) */
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

/* The routing new batches use and its champion, with a reference on each
 * that ks_batch_release_models drops (route stage). Any thread. */
void ks_pipeline_acquire_routing(struct ks_pipeline *p, ks_routing_t **rt, ks_serving_t **sv);
void ks_routing_release(ks_routing_t *rt);
/* Puts `rt` (the caller's reference passes to the pipeline) in service with
 * its champion; the old one goes when its last batch is released. */
void ks_pipeline_set_routing(struct ks_pipeline *p, ks_routing_t *rt);
/* Drops the batch's references on its model and routing (the worker, when
 * the batch's records are produced; the offline scorer). */
void ks_batch_release_models(ks_batch_t *b);

/* Makes a model ready to serve: maps its features onto the configured
 * columns, checks the output settings, and warms it up on fixed rows and on
 * recent events' feature rows, refusing non-finite outputs. Takes over `m`
 * only on success. On failure *why (when given) names the reason for
 * metrics: "feature_mismatch", "output_mismatch", "warmup_failed" or
 * "warmup_nan". Any thread (start-up, reload, deployments). */
int ks_serving_new(struct ks_pipeline *p, ks_model_t *m, ks_serving_t **out, const char **why,
                   char *errbuf, size_t errsize);

/* Row i's model: its variant's under a routing, else the batch's. */
static inline const ks_serving_t *ks_batch_row_serving(const ks_batch_t *b, size_t i)
{
    return b->rt && b->variant ? b->rt->v[b->variant[i]].sv : b->sv;
}

/* Keeps up to KS_RECENT_ROWS of the batch's good feature rows for warm-ups
 * (route stage; skipped when another thread holds the lock). */
#define KS_RECENT_ROWS 64
void ks_pipeline_keep_recent(struct ks_pipeline *p, const ks_batch_t *b);

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

/* Kafka worker, see engine/worker.c. ks_worker_new sets up its clients,
 * sinks and stages (*out is set, also on failure, for ks_worker_join to
 * free); ks_worker_start subscribes and starts its thread. The pipeline
 * sets every worker up before it starts any, so that they join the group
 * together (a worker set up late, e.g. behind the first one's changelog
 * topic creation, would get its partitions only at a second rebalance). */
int ks_worker_new(struct ks_pipeline *p, int id, struct ks_worker **out, char *errbuf,
                  size_t errsize);
int ks_worker_start(struct ks_worker *w, char *errbuf, size_t errsize);
/* Joins the worker thread, waiting until deadline_ms (CLOCK_REALTIME epoch
 * ms), and frees it; returns its exit status (KS_EXIT_*). A worker still
 * running at the deadline is abandoned (p->abandoned; not freed): status 0
 * if it had made its final commit (only leaving the group was left; outputs
 * it left unacknowledged are in p->unacknowledged), else 1. */
int ks_worker_join(struct ks_worker *w, int64_t deadline_ms);

#endif
