/*
 * drift.c - the sliding drift window (see drift.h).
 *
 * Count layout, one array of uint64 per slice and per local buffer:
 *   [bin counts of reference feature 0 | feature 1 | ... | score bins |
 *    NaN count per reference feature | rows]
 * `col` maps reference feature j to the model input column it reads.
 */
#include "engine/drift.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "base/metrics.h"
#include "base/slices.h"
#include "model/reference.h"

typedef struct layout {
    size_t n_feat;
    size_t *col;       /* reference feature -> model column */
    size_t *off;       /* reference feature -> first bin count */
    size_t score_off;  /* score bins (if the reference has a score) */
    size_t nan_off;    /* NaN counts */
    size_t rows_off;   /* row count */
    size_t len;
} layout_t;

struct ks_drift {
    pthread_mutex_t lock;
    int64_t window_ms;
    ks_slices_t win;                   /* which slot holds which slice */
    uint64_t min_rows;
    int publish;
    ks_model_t *model;          /* watched (a reference held), NULL = idle */
    const ks_reference_t *ref;
    layout_t lay;
    uint64_t *slice[KS_SLICES];        /* counts per slot of win */
    uint64_t *sum;              /* the window's counts (scratch for compute) */
    double *psi, *miss_change;  /* per reference feature */
    double score_psi;
    uint64_t rows;
    int64_t computed_ms, computed_slice;
    ks_metric_family_t *f_psi, *f_miss, *f_score;
    ks_gauge_t **g_psi, **g_miss, *g_score, *g_rows;
};

struct ks_drift_local {
    ks_drift_t *d;
    const ks_model_t *model;    /* the layout below is for this model */
    layout_t lay;
    uint64_t *counts;
};

static void layout_free(layout_t *l)
{
    free(l->col);
    free(l->off);
    memset(l, 0, sizeof(*l));
}

static void layout_build(layout_t *l, const ks_model_t *m)
{
    const ks_reference_t *r = m->reference;
    layout_free(l);
    l->n_feat = r->n_features;
    l->col = ks_xcalloc(r->n_features + 1, sizeof(size_t));
    l->off = ks_xcalloc(r->n_features + 1, sizeof(size_t));
    size_t o = 0;
    for (size_t j = 0; j < r->n_features; j++) {
        for (size_t c = 0; c < m->n_features; c++)
            if (!strcmp(m->feature_names[c], r->features[j].name))
                l->col[j] = c; /* present: checked at model load */
        l->off[j] = o;
        o += r->features[j].hist.n_edges + 1;
    }
    l->score_off = o;
    if (r->has_score)
        o += r->score.n_edges + 1;
    l->nan_off = o;
    o += r->n_features;
    l->rows_off = o++;
    l->len = o;
}

ks_drift_t *ks_drift_new(int64_t window_ms, uint64_t min_rows, int publish)
{
    ks_drift_t *d = ks_xcalloc(1, sizeof(*d));
    pthread_mutex_init(&d->lock, NULL);
    d->window_ms = window_ms;
    ks_slices_init(&d->win, window_ms);
    d->min_rows = min_rows;
    d->publish = publish;
    d->score_psi = NAN;
    if (publish) {
        d->f_psi = ks_metrics_gauge("kscore_feature_psi",
                                    "PSI of the feature over drift.window against the model's "
                                    "training reference (NaN until drift.min_rows rows)",
                                    "feature");
        d->f_miss = ks_metrics_gauge("kscore_feature_missing_rate_change",
                                     "Share of missing values over drift.window minus the "
                                     "training reference's", "feature");
        d->f_score = ks_metrics_gauge("kscore_score_psi",
                                      "PSI of the model's score over drift.window against the "
                                      "training reference", "model_version");
        d->g_rows = ks_metrics_gauge0(ks_metrics_gauge(
            "kscore_drift_window_rows", "Rows in the drift window", NULL));
    }
    return d;
}

static void clear_model(ks_drift_t *d)
{
    for (int s = 0; s < KS_SLICES; s++) {
        free(d->slice[s]);
        d->slice[s] = NULL;
    }
    ks_slices_clear(&d->win);
    free(d->sum);
    free(d->psi);
    free(d->miss_change);
    free(d->g_psi);
    free(d->g_miss);
    d->sum = NULL;
    d->psi = d->miss_change = NULL;
    d->g_psi = d->g_miss = NULL;
    d->g_score = NULL;
    layout_free(&d->lay);
    ks_model_unref(d->model);
    d->model = NULL;
    d->ref = NULL;
    d->rows = 0;
    d->score_psi = NAN;
    d->computed_ms = 0;
    d->computed_slice = -1;
}

void ks_drift_free(ks_drift_t *d)
{
    if (!d)
        return;
    clear_model(d);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

void ks_drift_set_model(ks_drift_t *d, ks_model_t *m)
{
    pthread_mutex_lock(&d->lock);
    clear_model(d);
    if (d->publish) {
        ks_metrics_gauge_reset(d->f_psi);
        ks_metrics_gauge_reset(d->f_miss);
        ks_metrics_gauge_reset(d->f_score);
        ks_gauge_set(d->g_rows, 0);
    }
    d->model = ks_model_ref(m);
    if (m && m->reference) {
        const ks_reference_t *r = m->reference;
        d->ref = r;
        layout_build(&d->lay, m);
        for (int s = 0; s < KS_SLICES; s++)
            d->slice[s] = ks_xcalloc(d->lay.len, sizeof(uint64_t));
        d->sum = ks_xcalloc(d->lay.len, sizeof(uint64_t));
        d->psi = ks_xcalloc(r->n_features + 1, sizeof(double));
        d->miss_change = ks_xcalloc(r->n_features + 1, sizeof(double));
        for (size_t j = 0; j < r->n_features; j++)
            d->psi[j] = d->miss_change[j] = NAN;
        if (d->publish) {
            d->g_psi = ks_xcalloc(r->n_features + 1, sizeof(ks_gauge_t *));
            d->g_miss = ks_xcalloc(r->n_features + 1, sizeof(ks_gauge_t *));
            for (size_t j = 0; j < r->n_features; j++) {
                const char *lv[] = {r->features[j].name};
                d->g_psi[j] = ks_metrics_gauge_at(d->f_psi, lv);
                d->g_miss[j] = ks_metrics_gauge_at(d->f_miss, lv);
                ks_gauge_set(d->g_psi[j], NAN);
                ks_gauge_set(d->g_miss[j], NAN);
            }
            if (r->has_score) {
                const char *lv[] = {m->version};
                d->g_score = ks_metrics_gauge_at(d->f_score, lv);
                ks_gauge_set(d->g_score, NAN);
            }
        }
    }
    pthread_mutex_unlock(&d->lock);
}

const ks_model_t *ks_drift_model(ks_drift_t *d)
{
    pthread_mutex_lock(&d->lock);
    const ks_model_t *m = d->model;
    pthread_mutex_unlock(&d->lock);
    return m;
}

ks_drift_local_t *ks_drift_local_new(ks_drift_t *d)
{
    ks_drift_local_t *l = ks_xcalloc(1, sizeof(*l));
    l->d = d;
    return l;
}

void ks_drift_local_free(ks_drift_local_t *l)
{
    if (!l)
        return;
    layout_free(&l->lay);
    free(l->counts);
    free(l);
}

/* The score of one output row, as the reference defines it. */
static double score_of(const ks_reference_t *r, const double *o, size_t n_out)
{
    if (r->score_output != KS_REF_SCORE_TOP)
        return o[r->score_output];
    double best = o[0];
    for (size_t k = 1; k < n_out; k++)
        if (o[k] > best)
            best = o[k];
    return best;
}

/* PSI of everything in the window; publishes the gauges. Under the lock. */
static void compute(ks_drift_t *d, int64_t now_ms)
{
    const ks_reference_t *r = d->ref;
    const layout_t *l = &d->lay;
    memset(d->sum, 0, l->len * sizeof(uint64_t));
    for (int s = 0; s < KS_SLICES; s++)
        if (ks_slices_live(&d->win, s, now_ms))
            for (size_t i = 0; i < l->len; i++)
                d->sum[i] += d->slice[s][i];
    d->rows = d->sum[l->rows_off];
    int enough = d->rows > 0 && d->rows >= d->min_rows;
    for (size_t j = 0; j < r->n_features; j++) {
        d->psi[j] = enough ? ks_ref_psi(&r->features[j].hist, d->sum + l->off[j]) : NAN;
        d->miss_change[j] = enough ? (double)d->sum[l->nan_off + j] / (double)d->rows -
                                         r->features[j].missing_rate
                                   : NAN;
    }
    d->score_psi = enough && r->has_score ? ks_ref_psi(&r->score, d->sum + l->score_off) : NAN;
    d->computed_ms = now_ms;
    d->computed_slice = now_ms / d->win.slice_ms;
    if (d->publish) {
        for (size_t j = 0; j < r->n_features; j++) {
            ks_gauge_set(d->g_psi[j], d->psi[j]);
            ks_gauge_set(d->g_miss[j], d->miss_change[j]);
        }
        if (d->g_score)
            ks_gauge_set(d->g_score, d->score_psi);
        ks_gauge_set(d->g_rows, (double)d->rows);
    }
}

int ks_drift_observe(ks_drift_local_t *l, const ks_model_t *m, const double *X,
                     const double *out, size_t rows, int64_t now_ms)
{
    ks_drift_t *d = l->d;
    if (m != d->model) /* a racy read is fine: re-checked under the lock */
        return KS_ESTATE;
    const ks_reference_t *r = m->reference;
    if (!r || rows == 0)
        return KS_OK;
    if (l->model != m) {
        layout_build(&l->lay, m);
        free(l->counts);
        l->counts = ks_xcalloc(l->lay.len, sizeof(uint64_t));
        l->model = m;
    }
    const layout_t *lay = &l->lay;
    uint64_t *c = l->counts;
    memset(c, 0, lay->len * sizeof(uint64_t));
    for (size_t i = 0; i < rows; i++) {
        const double *x = X + i * m->n_features;
        for (size_t j = 0; j < lay->n_feat; j++) {
            double v = x[lay->col[j]];
            if (isnan(v))
                c[lay->nan_off + j]++;
            else
                c[lay->off[j] + ks_ref_bin(&r->features[j].hist, v)]++;
        }
        if (r->has_score) {
            double s = score_of(r, out + i * m->n_outputs, m->n_outputs);
            if (isfinite(s))
                c[lay->score_off + ks_ref_bin(&r->score, s)]++;
        }
    }
    c[lay->rows_off] = rows;

    int rc = KS_OK;
    pthread_mutex_lock(&d->lock);
    if (d->model != m) {
        rc = KS_ESTATE;
        goto out;
    }
    int stale, s = ks_slices_slot(&d->win, now_ms, &stale);
    if (stale)
        memset(d->slice[s], 0, d->lay.len * sizeof(uint64_t));
    for (size_t i = 0; i < lay->len; i++)
        d->slice[s][i] += c[i];
    if (now_ms - d->computed_ms >= 1000 || now_ms / d->win.slice_ms != d->computed_slice)
        compute(d, now_ms);
out:
    pthread_mutex_unlock(&d->lock);
    return rc;
}

void ks_drift_refresh(ks_drift_t *d, int64_t now_ms)
{
    pthread_mutex_lock(&d->lock);
    if (d->ref)
        compute(d, now_ms);
    pthread_mutex_unlock(&d->lock);
}

static int cmp_worst(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    /* NaN last, then descending */
    if (isnan(x) || isnan(y))
        return isnan(x) - isnan(y);
    return x > y ? -1 : x < y;
}

void ks_drift_snapshot(ks_drift_t *d, int64_t now_ms, ks_drift_status_t *st)
{
    memset(st, 0, sizeof(*st));
    st->score_psi = NAN;
    pthread_mutex_lock(&d->lock);
    st->window_ms = d->window_ms;
    st->min_rows = d->min_rows;
    if (d->ref) {
        const ks_reference_t *r = d->ref;
        compute(d, now_ms);
        st->active = 1;
        snprintf(st->version, sizeof(st->version), "%s", d->model->version);
        st->rows = d->rows;
        st->score_psi = d->score_psi;
        /* (psi, index) pairs sorted by psi */
        double *pairs = ks_xmalloc((r->n_features + 1) * 2 * sizeof(double));
        for (size_t j = 0; j < r->n_features; j++) {
            pairs[2 * j] = d->psi[j];
            pairs[2 * j + 1] = (double)j;
        }
        qsort(pairs, r->n_features, 2 * sizeof(double), cmp_worst);
        for (size_t k = 0; k < r->n_features && k < KS_DRIFT_WORST; k++) {
            size_t j = (size_t)pairs[2 * k + 1];
            snprintf(st->worst[k].feature, sizeof(st->worst[k].feature), "%s",
                     r->features[j].name);
            st->worst[k].psi = d->psi[j];
            st->worst[k].missing_change = d->miss_change[j];
            st->n_worst++;
        }
        free(pairs);
    }
    pthread_mutex_unlock(&d->lock);
}

double ks_drift_feature_psi(ks_drift_t *d, const char *name, double *missing_change)
{
    double v = NAN;
    if (missing_change)
        *missing_change = NAN;
    pthread_mutex_lock(&d->lock);
    long j = d->ref ? ks_reference_feature(d->ref, name) : -1;
    if (j >= 0) {
        v = d->psi[j];
        if (missing_change)
            *missing_change = d->miss_change[j];
    }
    pthread_mutex_unlock(&d->lock);
    return v;
}

double ks_drift_score_psi(ks_drift_t *d)
{
    pthread_mutex_lock(&d->lock);
    double v = d->score_psi;
    pthread_mutex_unlock(&d->lock);
    return v;
}
