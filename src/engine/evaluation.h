/*
 * evaluation.h - online evaluation: metrics of the joined (prediction,
 * label) pairs per model version and variant over a sliding window.
 *
 * The window (evaluation.window, default 1h) is KS_SLICES slices (base/slices.h) by
 * the time the label was joined; each slice holds, per (version, variant),
 * the joined pairs and the number of predictions that expired unlabelled in
 * it. ks_evaluator_compute sorts the window's pairs once per call (AUC), so
 * the caller publishes about once a second, not per label.
 *
 * Published (publish = 1), labelled {model_version, variant}:
 *   kscore_eval_auc, kscore_eval_log_loss, kscore_eval_brier,
 *   kscore_eval_precision, kscore_eval_recall     (at output.threshold)
 *   kscore_eval_labelled_ratio   joined / (joined + expired unlabelled)
 *   kscore_eval_pairs            joined pairs in the window
 *   kscore_eval_calibration_positive_rate{..., decile}   positive share per
 *                                score decile (0 = [0, 0.1), ... 9)
 * and kscore_eval_labels_total{outcome="joined|unknown|duplicate|late"},
 * counted by the caller through ks_evaluator_outcome.
 *
 * Groups: at most KS_EVAL_GROUPS (version, variant) pairs for the life of
 * the process (a routing has at most 6 variants, so this is several
 * deployments' worth). Pairs and expiries of a further group are not
 * evaluated: counted in kscore_eval_untracked_total, and logged once.
 *
 * Threads: one mutex inside; any thread.
 */
#ifndef KS_EVALUATION_H
#define KS_EVALUATION_H

#include <stddef.h>
#include <stdint.h>

#include "engine/evalstore.h"
#include "model/evaluate.h"

#define KS_EVAL_GROUPS 16   /* (version, variant) pairs watched at once */
#define KS_EVAL_DECILES 10

typedef struct ks_evaluator ks_evaluator_t;

typedef struct ks_eval_group_status {
    char version[128], variant[64];
    ks_eval_t m;                         /* n = joined pairs in the window */
    uint64_t expired;
    double labelled_ratio;
    uint64_t cal_count[KS_EVAL_DECILES];
    double cal_mean[KS_EVAL_DECILES], cal_rate[KS_EVAL_DECILES];
} ks_eval_group_status_t;

ks_evaluator_t *ks_evaluator_new(int64_t window_ms, double threshold, int publish);
void ks_evaluator_free(ks_evaluator_t *ev);

/* A joined pair (the prediction as the store kept it), at now_ms. */
void ks_evaluator_add(ks_evaluator_t *ev, const ks_eval_pred_t *p, int label, int64_t now_ms);
/* A prediction that expired without a label, at now_ms. */
void ks_evaluator_expired(ks_evaluator_t *ev, const ks_eval_pred_t *p, int64_t now_ms);
/* Counts a label's outcome (kscore_eval_labels_total). */
void ks_evaluator_outcome(ks_evaluator_t *ev, ks_eval_outcome_t o);
uint64_t ks_evaluator_outcomes(ks_evaluator_t *ev, ks_eval_outcome_t o);
/* Pairs and expiries not evaluated because KS_EVAL_GROUPS groups were
 * taken. */
uint64_t ks_evaluator_untracked(ks_evaluator_t *ev);

/* Computes every group's metrics over the window ending at now_ms and
 * publishes them; fills up to max groups into st (may be NULL); returns the
 * number of groups. */
size_t ks_evaluator_compute(ks_evaluator_t *ev, int64_t now_ms, ks_eval_group_status_t *st,
                            size_t max);

#endif
