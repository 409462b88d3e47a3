/*
 * evaluate.c - classifier quality metrics (see evaluate.h).
 *
 * AUC and the ROC curve sort (score, label) pairs once; tied scores form one
 * step of the curve, which is what makes the area equal scikit-learn's
 * (its roc_curve keeps one threshold per distinct score).
 */
#include "model/evaluate.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "base/common.h"

typedef struct pair {
    double s;
    int y;
} pair_t;

static int by_score_desc(const void *a, const void *b)
{
    double x = ((const pair_t *)a)->s, y = ((const pair_t *)b)->s;
    return x > y ? -1 : x < y;
}

static pair_t *sorted_pairs(const double *score, const int *label, size_t n)
{
    pair_t *p = ks_xmalloc((n ? n : 1) * sizeof(*p));
    for (size_t i = 0; i < n; i++)
        p[i] = (pair_t){score[i], label[i] != 0};
    qsort(p, n, sizeof(*p), by_score_desc);
    return p;
}

double ks_eval_auc(const double *score, const int *label, size_t n)
{
    pair_t *p = sorted_pairs(score, label, n);
    double area = 0, tp = 0, fp = 0;
    for (size_t i = 0; i < n;) {
        double gtp = 0, gfp = 0;
        size_t j = i;
        for (; j < n && p[j].s == p[i].s; j++)
            p[j].y ? gtp++ : gfp++;
        /* trapezoid of this step: fp grows by gfp while tp grows by gtp */
        area += gfp * (tp + gtp / 2);
        tp += gtp;
        fp += gfp;
        i = j;
    }
    free(p);
    return tp > 0 && fp > 0 ? area / (tp * fp) : NAN;
}

double ks_eval_log_loss(const double *score, const int *label, size_t n)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        double q = score[i];
        q = q < DBL_EPSILON ? DBL_EPSILON : q > 1 - DBL_EPSILON ? 1 - DBL_EPSILON : q;
        sum -= label[i] ? log(q) : log(1 - q);
    }
    return n ? sum / (double)n : NAN;
}

double ks_eval_brier(const double *score, const int *label, size_t n)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        double d = score[i] - (label[i] ? 1.0 : 0.0);
        sum += d * d;
    }
    return n ? sum / (double)n : NAN;
}

void ks_eval_compute(const double *score, const int *label, size_t n, double threshold,
                     ks_eval_t *e)
{
    *e = (ks_eval_t){.n = n, .threshold = threshold};
    for (size_t i = 0; i < n; i++) {
        int pred = score[i] >= threshold;
        e->positives += label[i] != 0;
        if (pred && label[i])
            e->tp++;
        else if (pred)
            e->fp++;
        else if (label[i])
            e->fn++;
        else
            e->tn++;
    }
    e->auc = ks_eval_auc(score, label, n);
    e->log_loss = ks_eval_log_loss(score, label, n);
    e->brier = ks_eval_brier(score, label, n);
    e->precision = e->tp + e->fp ? (double)e->tp / (double)(e->tp + e->fp) : NAN;
    e->recall = e->tp + e->fn ? (double)e->tp / (double)(e->tp + e->fn) : NAN;
}

void ks_eval_calibration(const double *score, const int *label, size_t n, size_t bins,
                         uint64_t *count, double *mean_score, double *positive_rate)
{
    for (size_t b = 0; b < bins; b++)
        count[b] = 0, mean_score[b] = 0, positive_rate[b] = 0;
    for (size_t i = 0; i < n; i++) {
        double s = score[i];
        size_t b = s <= 0 ? 0 : s >= 1 ? bins - 1 : (size_t)(s * (double)bins);
        if (b >= bins)
            b = bins - 1;
        count[b]++;
        mean_score[b] += s;
        positive_rate[b] += label[i] != 0;
    }
    for (size_t b = 0; b < bins; b++) {
        mean_score[b] = count[b] ? mean_score[b] / (double)count[b] : NAN;
        positive_rate[b] = count[b] ? positive_rate[b] / (double)count[b] : NAN;
    }
}

size_t ks_eval_roc(const double *score, const int *label, size_t n, double **fpr, double **tpr)
{
    pair_t *p = sorted_pairs(score, label, n);
    double P = 0, N = 0, tp = 0, fp = 0;
    for (size_t i = 0; i < n; i++)
        p[i].y ? P++ : N++;
    *fpr = ks_xmalloc((n + 2) * sizeof(double));
    *tpr = ks_xmalloc((n + 2) * sizeof(double));
    size_t k = 0;
    (*fpr)[k] = 0, (*tpr)[k++] = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        for (; j < n && p[j].s == p[i].s; j++)
            p[j].y ? tp++ : fp++;
        (*fpr)[k] = N > 0 ? fp / N : 0;
        (*tpr)[k++] = P > 0 ? tp / P : 0;
        i = j;
    }
    free(p);
    return k;
}
