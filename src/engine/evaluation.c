/*
 * evaluation.c - the sliding window of joined pairs (see evaluation.h).
 */
#include "engine/evaluation.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/slices.h"

typedef struct slice_group {
    double *score;
    int *label;
    size_t n, cap;
    uint64_t expired;
} slice_group_t;

typedef struct group {
    char version[128], variant[64];
    ks_gauge_t *g[7];                   /* auc, log_loss, brier, precision, recall, ratio, pairs */
    ks_gauge_t *cal[KS_EVAL_DECILES];
} group_t;

struct ks_evaluator {
    pthread_mutex_t lock;
    int64_t window_ms;
    double threshold;
    int publish;
    group_t group[KS_EVAL_GROUPS];
    size_t n_groups;
    ks_slices_t win;                     /* which slot holds which slice */
    slice_group_t slice[KS_SLICES][KS_EVAL_GROUPS];
    uint64_t outcomes[4];
    ks_counter_t *c_outcome[4];
    uint64_t untracked;                  /* beyond KS_EVAL_GROUPS; under lock */
    ks_counter_t *c_untracked;
    ks_metric_family_t *f[7], *f_cal;
    double *sc;                          /* compute scratch */
    int *lb;
    size_t scratch_cap;
};

static const char *const gauge_names[7][2] = {
    {"kscore_eval_auc", "ROC AUC of the joined predictions over evaluation.window"},
    {"kscore_eval_log_loss", "Log loss of the joined predictions over evaluation.window"},
    {"kscore_eval_brier", "Brier score of the joined predictions over evaluation.window"},
    {"kscore_eval_precision", "Precision at output.threshold over evaluation.window"},
    {"kscore_eval_recall", "Recall at output.threshold over evaluation.window"},
    {"kscore_eval_labelled_ratio",
     "Share of predictions settled in the window that got a label before max_wait"},
    {"kscore_eval_pairs", "Joined (prediction, label) pairs in evaluation.window"},
};

ks_evaluator_t *ks_evaluator_new(int64_t window_ms, double threshold, int publish)
{
    ks_evaluator_t *ev = ks_xcalloc(1, sizeof(*ev));
    pthread_mutex_init(&ev->lock, NULL);
    ev->window_ms = window_ms;
    ks_slices_init(&ev->win, window_ms);
    ev->threshold = threshold;
    ev->publish = publish;
    if (publish) {
        for (int k = 0; k < 7; k++)
            ev->f[k] = ks_metrics_gauge(gauge_names[k][0], gauge_names[k][1],
                                        "model_version,variant");
        ev->f_cal = ks_metrics_gauge("kscore_eval_calibration_positive_rate",
                                     "Share of positive labels per score decile over "
                                     "evaluation.window", "model_version,variant,decile");
        ks_metric_family_t *fo = ks_metrics_counter(
            "kscore_eval_labels_total",
            "Labels read from evaluation.labels_topic by outcome: joined to a waiting "
            "prediction, unknown id, duplicate, or late (after max_wait)", "outcome");
        static const char *const oname[4] = {"unknown", "joined", "duplicate", "late"};
        for (int o = 0; o < 4; o++)
            ev->c_outcome[o] = ks_metrics_counter_at(fo, (const char *const[]){oname[o]});
        ev->c_untracked = ks_metrics_counter0(ks_metrics_counter(
            "kscore_eval_untracked_total",
            "Joined pairs and unlabelled expiries not evaluated: their (model version, "
            "variant) came after the 16 groups the evaluation keeps", NULL));
    }
    return ev;
}

void ks_evaluator_free(ks_evaluator_t *ev)
{
    if (!ev)
        return;
    for (int s = 0; s < KS_SLICES; s++)
        for (int g = 0; g < KS_EVAL_GROUPS; g++) {
            free(ev->slice[s][g].score);
            free(ev->slice[s][g].label);
        }
    free(ev->sc);
    free(ev->lb);
    pthread_mutex_destroy(&ev->lock);
    free(ev);
}

/* The group of (version, variant), created on first use; -1 when all are
 * taken (counted, logged the first time). Under the lock. */
static int group_of(ks_evaluator_t *ev, const ks_eval_pred_t *p)
{
    for (size_t g = 0; g < ev->n_groups; g++)
        if (!strcmp(ev->group[g].version, p->version) && !strcmp(ev->group[g].variant, p->variant))
            return (int)g;
    if (ev->n_groups == KS_EVAL_GROUPS) {
        if (ev->untracked++ == 0)
            ks_warn("evaluation: %d (model version, variant) groups are evaluated at once and "
                    "all are taken: version %s variant %s and any later ones are not evaluated "
                    "(kscore_eval_untracked_total; a restart starts over)", KS_EVAL_GROUPS,
                    p->version, p->variant);
        if (ev->c_untracked)
            ks_counter_add(ev->c_untracked, 1);
        return -1;
    }
    group_t *gr = &ev->group[ev->n_groups];
    snprintf(gr->version, sizeof(gr->version), "%s", p->version);
    snprintf(gr->variant, sizeof(gr->variant), "%s", p->variant);
    if (ev->publish) {
        const char *lv[] = {gr->version, gr->variant, NULL};
        for (int k = 0; k < 7; k++)
            gr->g[k] = ks_metrics_gauge_at(ev->f[k], lv);
        for (int d = 0; d < KS_EVAL_DECILES; d++) {
            char dec[4];
            snprintf(dec, sizeof(dec), "%d", d);
            lv[2] = dec;
            gr->cal[d] = ks_metrics_gauge_at(ev->f_cal, lv);
        }
    }
    return (int)ev->n_groups++;
}

/* The slice for now_ms, cleared if it held an older period. */
static int slice_at(ks_evaluator_t *ev, int64_t now_ms)
{
    int stale, s = ks_slices_slot(&ev->win, now_ms, &stale);
    if (stale)
        for (int g = 0; g < KS_EVAL_GROUPS; g++)
            ev->slice[s][g].n = 0, ev->slice[s][g].expired = 0;
    return s;
}

void ks_evaluator_add(ks_evaluator_t *ev, const ks_eval_pred_t *p, int label, int64_t now_ms)
{
    pthread_mutex_lock(&ev->lock);
    int g = group_of(ev, p);
    if (g >= 0) {
        slice_group_t *sg = &ev->slice[slice_at(ev, now_ms)][g];
        if (sg->n == sg->cap) {
            sg->cap = sg->cap ? sg->cap * 2 : 1024;
            sg->score = ks_xrealloc(sg->score, sg->cap * sizeof(double));
            sg->label = ks_xrealloc(sg->label, sg->cap * sizeof(int));
        }
        sg->score[sg->n] = p->score;
        sg->label[sg->n++] = label != 0;
    }
    pthread_mutex_unlock(&ev->lock);
}

void ks_evaluator_expired(ks_evaluator_t *ev, const ks_eval_pred_t *p, int64_t now_ms)
{
    pthread_mutex_lock(&ev->lock);
    int g = group_of(ev, p);
    if (g >= 0)
        ev->slice[slice_at(ev, now_ms)][g].expired++;
    pthread_mutex_unlock(&ev->lock);
}

void ks_evaluator_outcome(ks_evaluator_t *ev, ks_eval_outcome_t o)
{
    __atomic_fetch_add(&ev->outcomes[o], 1, __ATOMIC_RELAXED);
    if (ev->publish)
        ks_counter_add(ev->c_outcome[o], 1);
}

uint64_t ks_evaluator_outcomes(ks_evaluator_t *ev, ks_eval_outcome_t o)
{
    return __atomic_load_n(&ev->outcomes[o], __ATOMIC_RELAXED);
}

uint64_t ks_evaluator_untracked(ks_evaluator_t *ev)
{
    pthread_mutex_lock(&ev->lock);
    uint64_t n = ev->untracked;
    pthread_mutex_unlock(&ev->lock);
    return n;
}

size_t ks_evaluator_compute(ks_evaluator_t *ev, int64_t now_ms, ks_eval_group_status_t *st,
                            size_t max)
{
    pthread_mutex_lock(&ev->lock);
    size_t n_groups = ev->n_groups;
    for (size_t g = 0; g < n_groups; g++) {
        size_t n = 0;
        uint64_t expired = 0;
        for (int s = 0; s < KS_SLICES; s++)
            if (ks_slices_live(&ev->win, s, now_ms))
                n += ev->slice[s][g].n;
        if (n > ev->scratch_cap) {
            ev->scratch_cap = n * 2;
            ev->sc = ks_xrealloc(ev->sc, ev->scratch_cap * sizeof(double));
            ev->lb = ks_xrealloc(ev->lb, ev->scratch_cap * sizeof(int));
        }
        n = 0;
        for (int s = 0; s < KS_SLICES; s++) {
            if (!ks_slices_live(&ev->win, s, now_ms))
                continue;
            const slice_group_t *sg = &ev->slice[s][g];
            expired += sg->expired;
            if (sg->n == 0)
                continue; /* its arrays may be NULL: no memcpy from NULL */
            memcpy(ev->sc + n, sg->score, sg->n * sizeof(double));
            memcpy(ev->lb + n, sg->label, sg->n * sizeof(int));
            n += sg->n;
        }
        ks_eval_group_status_t gs;
        memset(&gs, 0, sizeof(gs));
        snprintf(gs.version, sizeof(gs.version), "%s", ev->group[g].version);
        snprintf(gs.variant, sizeof(gs.variant), "%s", ev->group[g].variant);
        ks_eval_compute(ev->sc, ev->lb, n, ev->threshold, &gs.m);
        gs.expired = expired;
        gs.labelled_ratio = n + expired ? (double)n / (double)(n + expired) : NAN;
        ks_eval_calibration(ev->sc, ev->lb, n, KS_EVAL_DECILES, gs.cal_count, gs.cal_mean,
                            gs.cal_rate);
        if (ev->publish) {
            double v[7] = {gs.m.auc, gs.m.log_loss, gs.m.brier, gs.m.precision, gs.m.recall,
                           gs.labelled_ratio, (double)n};
            for (int k = 0; k < 7; k++)
                ks_gauge_set(ev->group[g].g[k], v[k]);
            for (int d = 0; d < KS_EVAL_DECILES; d++)
                ks_gauge_set(ev->group[g].cal[d], gs.cal_rate[d]);
        }
        if (st && g < max)
            st[g] = gs;
    }
    pthread_mutex_unlock(&ev->lock);
    return n_groups;
}
