/*
 * model.c - stage "model": the model in service scores the feature matrix in
 * one call. The batch takes a reference on the model (released when its
 * records are produced), so a hot swap never frees a model under a batch and
 * a batch is scored by one model only. Columns are reordered to the model's
 * feature order when they differ from the configured order. A failed call
 * or a non-finite output fails the row (class "inference").
 *
 * Under a routing (model.deployments_topic, stage "route" ran first), each
 * variant scores its own rows in one call, gathered from F in its model's
 * column order, and its outputs are scattered back to the rows' places in
 * `out`, so the encoder and sinks see one output row per good row as usual
 * (deployments.c only routes models with the champion's outputs). A shadow
 * model then scores every row of F; its failures are counted, never fail
 * a row, and its outputs are compared with the served ones (agreement of
 * labels, |delta score|). Per-variant calls are timed for the metrics and
 * the guard in thread CPU time, the model's own cost: on a busy machine a
 * preempted call would otherwise make whichever variant it hit look slow
 * (the stage's wall time is kscore_stage_duration_seconds{stage="model"}).
 * Each row of a call counts the call's time (what it waited for its model),
 * so the p99 is over events whatever a variant's share.
 */
#include "base/common.h"
#include "engine/pipeline.h"
#include "engine/stage.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct model_thread {
    struct ks_pipeline *p;
    size_t *frow, *brow;       /* one variant's rows: in F, in the batch */
    size_t rows_cap;
    double *x, *o;             /* its model input and outputs */
    size_t x_cap, o_cap;
    double *shadow_out;        /* per F row */
    uint8_t *shadow_ok;
    size_t s_cap, so_cap;
} model_thread_t;

static int model_thread_init(void *ctx, const ks_stage_env_t *env, void **tctx, char *errbuf,
                             size_t errsize)
{
    model_thread_t *t = ks_xcalloc(1, sizeof(*t));
    t->p = env->p;
    *tctx = t;
    return KS_OK;
}

static void model_thread_free(void *tctx)
{
    model_thread_t *t = tctx;
    free(t->frow);
    free(t->brow);
    free(t->x);
    free(t->o);
    free(t->shadow_out);
    free(t->shadow_ok);
    free(t);
}

/* This thread's CPU time, ns. */
static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *grow(void *p, size_t *cap, size_t want, size_t size)
{
    if (want <= *cap)
        return p;
    *cap = want;
    return ks_xrealloc(p, want * size);
}

/* The index of the top output and whether every output is finite. */
static int check_outputs(const ks_model_t *m, const double *o, size_t *best)
{
    size_t k;
    *best = 0;
    for (k = 0; k < m->n_outputs && isfinite(o[k]); k++)
        if (o[k] > o[*best])
            *best = k;
    return k == m->n_outputs;
}

/* The score histograms and |delta| use: P(class 1), the top probability, or
 * the value. */
static double score_of(const ks_serving_t *sv, const double *o, size_t best)
{
    if (sv->model->task != KS_TASK_CLASSIFICATION)
        return o[0];
    return sv->binary ? o[1] : o[best];
}

static void observe(const ks_serving_t *sv, const double *o, size_t best)
{
    ks_histogram_observe(sv->score, score_of(sv, o, best));
    if (sv->model->task == KS_TASK_CLASSIFICATION)
        ks_histogram_observe(sv->confidence, o[best]);
}

/* Scores k rows of F (frow[]) with sv into o (k x n_outputs). */
static int predict_rows(model_thread_t *t, const ks_batch_t *b, const ks_serving_t *sv,
                        const size_t *frow, size_t k, double *o)
{
    const ks_model_t *m = sv->model;
    size_t nf = m->n_features;
    t->x = grow(t->x, &t->x_cap, k * (nf ? nf : 1), sizeof(double));
    for (size_t r = 0; r < k; r++) {
        const double *f = b->F + frow[r] * b->n_cols;
        for (size_t j = 0; j < nf; j++)
            t->x[r * nf + j] = f[sv->model_col[j]];
    }
    return ks_model_predict(m, t->x, k, o);
}

/* The champion serves every row: one call on F (or F reordered). */
static void run_single(ks_batch_t *b, const ks_route_variant_t *var)
{
    const ks_serving_t *sv = b->sv;
    const ks_model_t *m = sv->model;
    ks_batch_size_model(b, !sv->identity_cols, m->n_features, m->n_outputs);
    if (sv->identity_cols) {
        b->X = b->F;
    } else {
        for (size_t r = 0; r < b->rows; r++)
            for (size_t j = 0; j < m->n_features; j++)
                b->xbuf[r * m->n_features + j] = b->F[r * b->n_cols + sv->model_col[j]];
        b->X = b->xbuf;
    }
    int64_t t0 = var ? cpu_ns() : 0;
    int rc = ks_model_predict(m, b->X, b->rows, b->out);
    if (var) /* every row of the call waited for all of it */
        ks_histogram_observe_n(var->latency, (double)(cpu_ns() - t0) / 1e9, b->rows);
    uint64_t ok = 0, bad = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (!ks_batch_ok(b, i))
            continue;
        size_t best;
        if (rc) {
            ks_batch_fail(b, i, KS_ERRCLASS_INFERENCE, "model",
                          "the model failed to predict this batch");
            bad++;
            continue;
        }
        const double *o = b->out + b->good_row[i] * m->n_outputs;
        if (!check_outputs(m, o, &best)) {
            ks_batch_fail(b, i, KS_ERRCLASS_INFERENCE, "model",
                          "the model returned a non-finite output");
            bad++;
            continue;
        }
        observe(sv, o, best);
        ok++;
    }
    if (var) {
        ks_counter_add(var->predictions, ok);
        ks_counter_add(var->errors, bad);
    }
}

/* Each variant scores its rows; outputs land at their rows' places in out. */
static void run_variants(model_thread_t *t, ks_batch_t *b, const ks_routing_t *rt)
{
    size_t n_out = b->sv->model->n_outputs;
    ks_batch_size_model(b, 0, 0, n_out);
    b->X = NULL; /* no single model input matrix: see ks_batch_row_serving */
    t->frow = grow(t->frow, &t->rows_cap, b->n, sizeof(size_t));
    t->brow = ks_xrealloc(t->brow, t->rows_cap * sizeof(size_t));
    for (size_t v = 0; v < rt->n; v++) {
        const ks_route_variant_t *var = &rt->v[v];
        const ks_model_t *m = var->sv->model;
        size_t k = 0;
        for (size_t i = 0; i < b->n; i++)
            if (ks_batch_ok(b, i) && b->variant[i] == v) {
                t->frow[k] = b->good_row[i];
                t->brow[k++] = i;
            }
        if (k == 0)
            continue;
        t->o = grow(t->o, &t->o_cap, k * n_out, sizeof(double));
        int64_t t0 = cpu_ns();
        int rc = predict_rows(t, b, var->sv, t->frow, k, t->o);
        ks_histogram_observe_n(var->latency, (double)(cpu_ns() - t0) / 1e9, k);
        uint64_t ok = 0;
        for (size_t r = 0; r < k; r++) {
            const double *o = t->o + r * n_out;
            size_t best;
            if (rc || !check_outputs(m, o, &best)) {
                ks_batch_fail(b, t->brow[r], KS_ERRCLASS_INFERENCE, "model",
                              rc ? "the model failed to predict this batch"
                                 : "the model returned a non-finite output");
                continue;
            }
            memcpy(b->out + t->frow[r] * n_out, o, n_out * sizeof(double));
            observe(var->sv, o, best);
            ok++;
        }
        ks_counter_add(var->predictions, ok);
        ks_counter_add(var->errors, k - ok);
    }
}

/* The shadow scores every row of F; compared with what each row was served. */
static void run_shadow(model_thread_t *t, ks_batch_t *b, const ks_routing_t *rt)
{
    const ks_route_variant_t *var = &rt->shadow;
    const ks_serving_t *ssv = var->sv;
    const ks_model_t *m = ssv->model;
    size_t n_out = m->n_outputs, rows = b->rows;
    t->frow = grow(t->frow, &t->rows_cap, rows ? rows : 1, sizeof(size_t));
    t->brow = ks_xrealloc(t->brow, t->rows_cap * sizeof(size_t));
    t->shadow_out = grow(t->shadow_out, &t->so_cap, (rows ? rows : 1) * n_out, sizeof(double));
    t->shadow_ok = grow(t->shadow_ok, &t->s_cap, rows ? rows : 1, 1);
    for (size_t r = 0; r < rows; r++)
        t->frow[r] = r;
    int64_t t0 = cpu_ns();
    int rc = rows ? predict_rows(t, b, ssv, t->frow, rows, t->shadow_out) : 0;
    ks_histogram_observe_n(var->latency, (double)(cpu_ns() - t0) / 1e9, rows);
    uint64_t ok = 0, compared = 0, agreed = 0;
    for (size_t r = 0; r < rows; r++) {
        size_t best = 0;
        t->shadow_ok[r] = !rc && check_outputs(m, t->shadow_out + r * n_out, &best);
        if (t->shadow_ok[r]) {
            observe(ssv, t->shadow_out + r * n_out, best);
            ok++;
        }
    }
    for (size_t i = 0; i < b->n; i++) {
        if (!ks_batch_ok(b, i) || !t->shadow_ok[b->good_row[i]])
            continue;
        const ks_serving_t *sv = ks_batch_row_serving(b, i);
        const double *so = t->shadow_out + b->good_row[i] * n_out;
        const double *o = b->out + b->good_row[i] * n_out;
        size_t sbest, best;
        check_outputs(m, so, &sbest);
        check_outputs(sv->model, o, &best);
        double d = sv->model->task == KS_TASK_CLASSIFICATION && !sv->binary
                       ? so[best] - o[best] /* the served class's probability */
                       : score_of(ssv, so, sbest) - score_of(sv, o, best);
        ks_histogram_observe(rt->shadow_delta, fabs(d));
        compared++;
        if (sv->model->task == KS_TASK_CLASSIFICATION && sbest == best)
            agreed++;
    }
    ks_counter_add(var->predictions, ok);
    ks_counter_add(var->errors, rows - ok);
    ks_counter_add(rt->shadow_compared, compared);
    ks_counter_add(rt->shadow_agreed, agreed);
    b->shadow_out = t->shadow_out;
    b->shadow_ok = t->shadow_ok;
}

static void model_run(void *tctx, ks_batch_t *b)
{
    model_thread_t *t = tctx;
    if (!b->sv)
        b->sv = ks_pipeline_acquire(t->p);
    const ks_routing_t *rt = b->rt;
    b->shadow_out = NULL;
    b->shadow_ok = NULL;
    if (b->rows == 0)
        return;
    if (!rt || rt->n == 1)
        run_single(b, rt ? &rt->v[0] : NULL);
    else
        run_variants(t, b, rt);
    if (rt && rt->shadow.sv)
        run_shadow(t, b, rt);
}

const ks_stage_type_t ks_stage_model = {
    .name = "model",
    .thread_init = model_thread_init,
    .run = model_run,
    .thread_free = model_thread_free,
};
