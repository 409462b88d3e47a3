/*
 * status.h - what observers (src/obs/: the HTTP endpoint, the status page,
 * librdkafka statistics) may see of a pipeline: its config, its metrics, the
 * model in service, whether it runs, and a place to hook into its Kafka
 * clients. They never reach into struct ks_pipeline.
 *
 * Threads: every function may be called from any thread while the pipeline
 * exists, except ks_status_observe_kafka (before ks_pipeline_run).
 */
#ifndef KS_STATUS_H
#define KS_STATUS_H

#include <stddef.h>

#include "engine/config.h"
#include "engine/drift.h"
#include "engine/evaluation.h"
#include "engine/engine_metrics.h"
#include "kafka/client.h"
#include "base/buf.h"

struct ks_pipeline;

const struct ks_config *ks_status_config(const struct ks_pipeline *p);
const ks_engine_metrics_t *ks_status_metrics(const struct ks_pipeline *p);

/* The model in service, held until ks_status_model_put (a hot swap may
 * replace it meanwhile; the strings stay valid while held). */
typedef struct ks_status_model {
    const char *version, *backend, *objective; /* objective: "" if unknown */
    int classification;
    size_t n_features;
    const ks_histogram_t *score;  /* this version's prediction histogram */
    void *hold;
} ks_status_model_t;
void ks_status_model_get(struct ks_pipeline *p, ks_status_model_t *m);
void ks_status_model_put(ks_status_model_t *m);

/* Model deployments (model.deployments_topic): appends the routing in
 * service and the deployment state as JSON, or `null` when off:
 *   {"variants":[{"variant","model_version","share","predictions","errors"}],
 *    "shadow":{"model_version","predictions","errors","compared","agreement",
 *              "mean_abs_delta","p99_abs_delta"} | null,
 *    "instance":..., "state":{...deploy.h state...}}
 * Counts are totals since the routing went into service. */
void ks_status_deployments_json(struct ks_pipeline *p, ks_buf_t *out);

/* Stopping (SIGTERM, or after a fatal error) and fatal flags. */
void ks_status_state(const struct ks_pipeline *p, int *stopping, int *fatal);
/* Partitions whose state (window features) is being restored right now. */
int ks_status_restoring(const struct ks_pipeline *p);

/* Workers now paused on a batch a stage held (engine/stage.h, "Holding a
 * batch": a required lookup waiting for Redis), 0 if none; *reason (may be
 * NULL) gets the latest hold's sentence, valid while the pipeline exists.
 * Readiness is false while this is non-zero. */
int ks_status_holding(const struct ks_pipeline *p, const char **reason);

/* The drift window (engine/drift.h) as of now: PSI of the score and the
 * features with the highest PSI. st->active = 0 when drift is off or the
 * model in service has no training reference. */
void ks_status_drift(struct ks_pipeline *p, ks_drift_status_t *st);

/* Online evaluation as of now: up to KS_STATUS_EVAL_GROUPS (model version,
 * variant) groups with their window metrics, label outcomes and the store.
 * st->active = 0 when evaluation is off. */
#define KS_STATUS_EVAL_GROUPS 4
typedef struct ks_status_eval {
    int active;
    size_t n_groups;
    ks_eval_group_status_t group[KS_STATUS_EVAL_GROUPS];
    uint64_t outcomes[4];       /* by ks_eval_outcome_t */
    ks_evalstore_stats_t store;
} ks_status_eval_t;
void ks_status_evaluation(struct ks_pipeline *p, ks_status_eval_t *st);

/* Brings the gauges the engine derives from windows (drift PSI, evaluation
 * metrics) up to date; the metrics endpoint calls it before rendering. */
void ks_status_refresh(struct ks_pipeline *p);

/* Hooks an observer into the workers' Kafka clients (statistics,
 * assignments, broker events). The observer must outlive the run. */
void ks_status_observe_kafka(struct ks_pipeline *p, const ks_kafka_observer_t *obs);

#endif
