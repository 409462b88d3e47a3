/*
 * engine_metrics.h - the metrics the engine keeps for every pipeline, with
 * the children resolved once at start-up so the hot path is a few relaxed
 * atomic adds (base/metrics.h). Names follow Prometheus conventions: kscore_
 * prefix, _total counters, _seconds base units.
 */
#ifndef KS_ENGINE_METRICS_H
#define KS_ENGINE_METRICS_H

#include "base/metrics.h"
#include "decode/value.h"
#include "model/model.h"

#define KS_TIMED_MAX 24 /* stages and other timed steps under the `stage` label */

typedef struct ks_engine_metrics {
    ks_counter_t *consumed;
    ks_counter_t *predicted;
    ks_counter_t *dead_lettered[KS_ERRCLASS__COUNT]; /* by error class */
    ks_counter_t *batches;
    ks_counter_t *rebalances;
    ks_counter_t *commits, *commit_failures;
    ks_counter_t *txn_commits, *txn_aborts; /* delivery: exactly_once */
    ks_counter_t *kafka_errors;
    ks_counter_t *backpressure_pauses;
    ks_counter_t *batches_held;       /* a stage held a batch (engine/stage.h) */
    ks_gauge_t *workers_holding;      /* workers paused on a held batch now */
    ks_histogram_t *batch_size;
    ks_histogram_t *batch_gap[2];     /* kscore_batch_gap_seconds{model_swap}: [0] "none",
                                         [1] "near" (a swap in the gap or a neighbour) */
    ks_metric_family_t *stage_family; /* kscore_stage_duration_seconds{stage} */
    ks_histogram_t *produce_ack;      /* stage="produce_ack": produce() to acknowledgement,
                                         per record */
    const char *timed_name[KS_TIMED_MAX]; /* every stage timer handed out, in order */
    ks_histogram_t *timed[KS_TIMED_MAX];
    size_t n_timed;
    ks_histogram_t *end_to_end; /* output acknowledged - input record timestamp */
    ks_metric_family_t *model_info;
    ks_counter_t *model_reloads, *model_reload_failures, *model_reload_unchanged;
} ks_engine_metrics_t;

/* Registers the engine's families and resolves their children. */
void ks_engine_metrics_init(ks_engine_metrics_t *em);
/* A model's prediction histograms (binary: P(class 1); multiclass: top
 * probability; regression: value / classifiers: top probability), labelled
 * by version. Any thread. */
void ks_engine_metrics_model_histograms(const ks_model_t *model, ks_histogram_t **score,
                                        ks_histogram_t **confidence);
/* Marks `model` as the champion in service (kscore_model_info). */
void ks_engine_metrics_model_info(ks_engine_metrics_t *em, const ks_model_t *model);

/* A worker's largest gaps between consecutive batches since start,
 * kscore_batch_gap_max_seconds{worker="N",model_swap}: max[0] "none",
 * max[1] "near". Start-up only. */
void ks_engine_metrics_gap_gauges(int worker, ks_gauge_t *max[2]);

/* Per-worker producer queue depth gauge (label worker="N"). */
ks_gauge_t *ks_engine_metrics_queue_gauge(int worker);

/* The timer of a stage (engine/stage.c), labelled stage="<name>"; `name` must
 * be static. Start-up only (not thread-safe). */
ks_histogram_t *ks_engine_metrics_stage(ks_engine_metrics_t *em, const char *name);

#endif
