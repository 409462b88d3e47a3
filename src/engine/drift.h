/*
 * drift.h - drift of the served features and scores from the model's
 * training reference (model/reference.h), over a sliding window.
 *
 * The window (drift.window, e.g. 15m) is KS_SLICES slices of equal length
 * (base/slices.h); each slice holds bin counts per feature and for the score, NaN
 * counts per feature and a row count. A worker bins its batch into its own
 * ks_drift_local_t without a lock (a binary search over about ten edges per
 * value), then adds the counts to the current slice under the drift's mutex:
 * one lock per batch. Slices older than the window are left out and cleared
 * when their slot is reused, so the window slides in steps of
 * window / KS_SLICES.
 *
 * At most once per second (and at every slice change) while batches arrive,
 * and whenever /metrics is scraped (ks_drift_refresh), the PSI of every
 * feature and of the score over the whole window is computed and published:
 *
 *   kscore_feature_psi{feature}                   PSI against the reference
 *   kscore_feature_missing_rate_change{feature}   window NaN share - reference's
 *   kscore_score_psi{model_version}               PSI of the score
 *   kscore_drift_window_rows                      rows in the window
 *
 * The gauges are NaN until the window holds drift.min_rows rows (a PSI of a
 * few dozen rows is noise), so alert rules comparing them never fire on it.
 *
 * The window belongs to one model: when a batch scored by another model (a
 * hot swap) arrives, the caller switches the drift to it (ks_drift_set_model),
 * which clears the window and the gauges. A model without a reference leaves
 * the drift idle.
 *
 * Threads: ks_drift_observe and ks_drift_snapshot from any thread; the
 * local state belongs to one thread.
 */
#ifndef KS_DRIFT_H
#define KS_DRIFT_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

#define KS_DRIFT_WORST 5

typedef struct ks_drift ks_drift_t;
typedef struct ks_drift_local ks_drift_local_t;

/* What the status page shows (engine/status.h). */
typedef struct ks_drift_status {
    int active;                 /* a model with a reference is watched */
    char version[128];
    int64_t window_ms;
    uint64_t rows, min_rows;    /* rows in the window; PSI shown from min_rows */
    double score_psi;           /* NaN: not enough rows, or no score reference */
    size_t n_worst;
    struct {
        char feature[128];
        double psi, missing_change;
    } worst[KS_DRIFT_WORST];    /* highest PSI first */
} ks_drift_status_t;

/* A drift watcher; `publish` = 1 sets the Prometheus gauges (0 for tests
 * and offline tools that only read ks_drift_snapshot). */
ks_drift_t *ks_drift_new(int64_t window_ms, uint64_t min_rows, int publish);
void ks_drift_free(ks_drift_t *d);

/* Watches model m from now on (a reference of its own is taken; NULL or a
 * model without reference: idle). Clears the window. */
void ks_drift_set_model(ks_drift_t *d, ks_model_t *m);

ks_drift_local_t *ks_drift_local_new(ks_drift_t *d);
void ks_drift_local_free(ks_drift_local_t *l);

/* Adds `rows` rows scored by m: X (rows x m->n_features, the model's input)
 * and out (rows x m->n_outputs); rows with a non-finite score count for the
 * features only. Returns KS_ESTATE (nothing added) when m is not the watched
 * model: the caller decides whether to switch (ks_drift_set_model). */
int ks_drift_observe(ks_drift_local_t *l, const ks_model_t *m, const double *X,
                     const double *out, size_t rows, int64_t now_ms);

/* The watched model (no reference is taken: compare only). */
const ks_model_t *ks_drift_model(ks_drift_t *d);

/* Recomputes and publishes the window as of now_ms (the metrics endpoint
 * calls it before rendering, so the gauges are current after a burst). */
void ks_drift_refresh(ks_drift_t *d, int64_t now_ms);
/* The window as of now_ms (PSI recomputed): a snapshot for the status page. */
void ks_drift_snapshot(ks_drift_t *d, int64_t now_ms, ks_drift_status_t *st);
/* PSI of feature `name` (NaN if unknown or too few rows) and of the score,
 * as of the last computation (tests, backtests). */
double ks_drift_feature_psi(ks_drift_t *d, const char *name, double *missing_change);
double ks_drift_score_psi(ks_drift_t *d);


#endif
