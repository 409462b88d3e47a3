/*
 * evaluate.h - how good a binary classifier's scores are, given the true
 * labels: AUC, log loss, Brier score, precision/recall at a threshold,
 * calibration by score bin, the ROC curve. Used by `kscore backtest`
 * (cli/backtest.c) and meant for the online evaluation of delayed labels.
 *
 * Each metric is defined as scikit-learn defines it, so that it can be
 * checked against sklearn.metrics on the same pairs (tests/cli/test_backtest.sh):
 *   AUC       roc_auc_score: the area under the ROC curve with tied scores
 *             counted half (Mann-Whitney); NaN when one class is absent
 *   log loss  log_loss: mean of -(y ln p + (1-y) ln(1-p)), p clipped to
 *             [DBL_EPSILON, 1 - DBL_EPSILON]
 *   Brier     brier_score_loss: mean of (p - y)^2
 *   precision, recall: of the decision score >= threshold; NaN when undefined
 *
 * Pure functions over arrays (score[i], label[i] in {0, 1}); any thread.
 */
#ifndef KS_EVALUATE_H
#define KS_EVALUATE_H

#include <stddef.h>
#include <stdint.h>

typedef struct ks_eval {
    size_t n, positives;
    double auc, log_loss, brier;
    double threshold, precision, recall;
    uint64_t tp, fp, fn, tn;
} ks_eval_t;

/* All of the above for n pairs. */
void ks_eval_compute(const double *score, const int *label, size_t n, double threshold,
                     ks_eval_t *out);

double ks_eval_auc(const double *score, const int *label, size_t n);
double ks_eval_log_loss(const double *score, const int *label, size_t n);
double ks_eval_brier(const double *score, const int *label, size_t n);

/* Calibration in `bins` equal-width score bins over [0, 1] (deciles: 10):
 * per bin the number of pairs, the mean score and the share of positives
 * (NaN for an empty bin). Arrays of `bins` entries. */
void ks_eval_calibration(const double *score, const int *label, size_t n, size_t bins,
                         uint64_t *count, double *mean_score, double *positive_rate);

/* The ROC curve: one point per distinct score, from (0, 0) to (1, 1),
 * highest threshold first. *fpr and *tpr are malloc'd (caller frees);
 * returns the number of points. */
size_t ks_eval_roc(const double *score, const int *label, size_t n, double **fpr,
                   double **tpr);

#endif
