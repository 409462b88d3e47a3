/*
 * reference.h - the training reference of a model: what the data it was
 * trained on looked like, so that drift (engine/drift.h) can compare what a
 * pipeline serves with it.
 *
 * Per model input feature: quantile bin edges of its non-missing training
 * values (deciles by default; equal edges merged, so a feature with few
 * distinct values has fewer bins), the share of those values in each bin, and
 * the share of missing (NaN) values. For the score (binary classifiers:
 * P(class 1); multiclass: the top probability; regressors: the value): the
 * same bins and shares.
 *
 * Where it lives (docs/quality.md): the "reference" member of a kscore JSON
 * model (written by kscore-export --reference), or a sidecar file
 * MODEL.reference.json next to any model file (written by `kscore model
 * reference MODEL --sample train.csv`; the only place for XGBoost and
 * LightGBM files). The sidecar wins when both exist, so a reference can be
 * refreshed without rewriting the model.
 *
 * The bin rule is numpy's, so the Python exporter and this file agree to the
 * last bit: edges = unique(quantile(x, [1/B, 2/B, ..., (B-1)/B])) with
 * numpy's default "linear" method; a value x falls in bin
 * searchsorted(edges, x, side="right") (the number of edges <= x).
 *
 * PSI (population stability index) of an observed histogram against the
 * reference: sum over bins of (a - e) * ln(a / e), a and e the observed and
 * reference shares, each floored at KS_PSI_EPS so an empty bin costs a large
 * but finite amount.
 *
 * Ownership: a reference is immutable once built or parsed; it belongs to the
 * model that holds it (ks_model_t.reference) and is freed with it.
 */
#ifndef KS_REFERENCE_H
#define KS_REFERENCE_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/json.h"

#define KS_PSI_EPS 1e-4
#define KS_REF_MAX_BINS 100

typedef struct ks_ref_hist {
    size_t n_edges;      /* bins = n_edges + 1 */
    double *edges;       /* ascending, distinct */
    double *frac;        /* n_edges + 1 shares of the non-missing values */
} ks_ref_hist_t;

typedef struct ks_ref_feature {
    char *name;
    double missing_rate; /* share of NaN in the training sample */
    ks_ref_hist_t hist;
} ks_ref_feature_t;

/* Which output is "the score". */
#define KS_REF_SCORE_TOP (-1) /* the top probability (multiclass) */

typedef struct ks_reference {
    size_t rows;         /* training sample size */
    size_t bins;         /* requested bins per histogram */
    size_t n_features;
    ks_ref_feature_t *features;
    int has_score;
    int score_output;    /* output column, or KS_REF_SCORE_TOP */
    ks_ref_hist_t score;
} ks_reference_t;

/* The bin of x (not NaN): the number of edges <= x. */
static inline size_t ks_ref_bin(const ks_ref_hist_t *h, double x)
{
    size_t lo = 0, hi = h->n_edges;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (h->edges[mid] <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Builds the histogram of n values (NaN skipped) with `bins` quantile bins;
 * *missing gets the share of NaN (0 when n == 0). vals is not modified. */
void ks_ref_hist_build(const double *vals, size_t n, size_t stride, size_t bins,
                       ks_ref_hist_t *h, double *missing);
void ks_ref_hist_free(ks_ref_hist_t *h);

/* PSI of observed bin counts (n_bins = h->n_edges + 1) against h; NaN when
 * no value was observed. */
double ks_ref_psi(const ks_ref_hist_t *h, const uint64_t *counts);

/* Builds a reference from a training sample X (rows x n_features, NaN =
 * missing; names[j] names column j) and, if scores is not NULL, the model's
 * score per row (score_output says which output it is). */
ks_reference_t *ks_reference_build(const double *X, size_t rows, size_t n_features,
                                   char *const *names, const double *scores, int score_output,
                                   size_t bins);

/* Parses the JSON object written by ks_reference_write (or kscore-export);
 * errors name the member that is wrong. */
int ks_reference_parse(const ks_json_t *obj, ks_reference_t **out, char *errbuf,
                       size_t errsize);
/* Reads a sidecar file (a JSON document holding the object). */
int ks_reference_load_file(const char *path, ks_reference_t **out, char *errbuf,
                           size_t errsize);
/* Appends the reference as one JSON object (every double round-trips). */
void ks_reference_write(const ks_reference_t *r, ks_buf_t *out);
void ks_reference_free(ks_reference_t *r);

/* The index of feature `name`, or -1. */
long ks_reference_feature(const ks_reference_t *r, const char *name);

#endif
