/*
 * drift.c - stage "drift": feeds each scored batch to the pipeline's drift
 * window (engine/drift.h), which compares the model's inputs and score with
 * the training reference stored with the model (model/reference.h) and
 * publishes PSI gauges. Runs after "model" (it reads X and the outputs) and
 * fails no row.
 *
 * The window holds the champion's reference (the model in service), so it
 * sees only the rows the champion scored. Under a canary or A/B routing
 * (model.deployments_topic) the batch has no single input matrix (b->X is
 * NULL: each variant scored its own rows): the champion's rows are gathered
 * from F in its column order, with their outputs, into thread-local
 * buffers; a candidate's rows are left out, so its features and scores are
 * never counted as the champion's.
 *
 * Cost per batch: one binary search over the bin edges per feature value
 * and per score, into thread-local counts, then one mutex to add them to the
 * window; PSI is recomputed at most once a second.
 *
 * drift.enabled: auto (default) watches whenever the model in service has a
 * reference; true makes a model without one a start-up error; false turns
 * the stage off. A hot swap to another model restarts the window (the
 * reference is the new model's).
 */
#include "base/common.h"
#include "base/log.h"
#include "engine/drift.h"
#include "engine/pipeline.h"
#include "engine/stage.h"

#include <stdlib.h>
#include <string.h>

typedef struct drift_conf {
    int64_t window_ms;
    uint64_t min_rows;
    int required;
} drift_conf_t;

typedef struct drift_thread {
    struct ks_pipeline *p;
    ks_drift_local_t *local;
    double *x, *o;             /* the champion's rows under a routing */
    size_t x_cap, o_cap;
} drift_thread_t;

static const ks_config_key_t drift_keys[] = {
    {"drift.enabled", KS_CONF_ENUM, KS_CONF_OFF(drift_enabled), KS_CONF_NOHAS, 0, "auto", 0, 0,
     "auto|true|false",
     "Compare served features and scores with the model's training reference (PSI per "
     "feature and for the score, see docs/quality.md). auto: when the model has a "
     "reference; true: a model without one is an error; false: off."},
    {"drift.window", KS_CONF_STRING, KS_CONF_OFF(drift_window), KS_CONF_NOHAS, 0, "15m", 0, 0,
     NULL,
     "Sliding window the drift metrics cover (500ms, 30s, 15m, 2h, 1d); it moves in steps "
     "of 1/15 of its length."},
    {"drift.min_rows", KS_CONF_INT, KS_CONF_OFF(drift_min_rows), KS_CONF_NOHAS, 0, "500", 1,
     1000000000, NULL,
     "Rows the window must hold before PSI is reported (NaN until then)."},
};

static int configure(struct ks_config *cfg, ks_node_t *root, void **out, char *errbuf,
                     size_t errsize)
{
    (void)root;
    *out = NULL;
    if (!strcmp(cfg->drift_enabled, "false"))
        return KS_OK;
    drift_conf_t *c = ks_xcalloc(1, sizeof(*c));
    if (ks_duration_parse(cfg->drift_window, &c->window_ms) || c->window_ms < 15) {
        free(c);
        return ks_err(errbuf, errsize, KS_EINVAL,
                      "%s: drift.window '%s' is not a duration (e.g. 15m, 30s, 2h)", cfg->path,
                      cfg->drift_window);
    }
    c->min_rows = (uint64_t)cfg->drift_min_rows;
    c->required = !strcmp(cfg->drift_enabled, "true");
    *out = c;
    return KS_OK;
}

static int init(struct ks_pipeline *p, const void *conf, void **ctx, char *errbuf,
                size_t errsize)
{
    const drift_conf_t *c = conf;
    ks_serving_t *sv = ks_pipeline_acquire(p);
    int rc = KS_OK;
    if (c->required && !sv->model->reference) {
        rc = ks_err(errbuf, errsize, KS_EINVAL,
                    "drift.enabled is true but the model %s has no training reference "
                    "(kscore-export --reference train.csv, or kscore model reference %s "
                    "--sample train.csv)", sv->model->path, sv->model->path);
        goto out;
    }
    p->drift = ks_drift_new(c->window_ms, c->min_rows, 1);
    ks_drift_set_model(p->drift, sv->model);
    *ctx = p;
out:
    ks_serving_release(sv);
    return rc;
}

static int thread_init(void *ctx, const ks_stage_env_t *env, void **tctx, char *errbuf,
                       size_t errsize)
{
    struct ks_pipeline *p = ctx;
    drift_thread_t *t = ks_xcalloc(1, sizeof(*t));
    t->p = p;
    t->local = ks_drift_local_new(p->drift);
    *tctx = t;
    return KS_OK;
}

/* The rows of b that sv's model scored: their model inputs and outputs.
 * Without a split routing that is every row of F, as the model stage left
 * them (X, out); under one, the rows of the variants served by sv's model,
 * gathered into t's buffers. Returns the number of rows. */
static size_t served_rows(drift_thread_t *t, const ks_batch_t *b, const ks_serving_t *sv,
                          const double **X, const double **out)
{
    const ks_routing_t *rt = b->rt;
    if (!rt || rt->n == 1 || !b->variant) {
        *X = b->X;
        *out = b->out;
        return b->rows;
    }
    const ks_model_t *m = sv->model;
    size_t nf = m->n_features, n_out = m->n_outputs, k = 0;
    if (b->rows * nf > t->x_cap)
        t->x = ks_xrealloc(t->x, (t->x_cap = b->rows * nf) * sizeof(double));
    if (b->rows * n_out > t->o_cap)
        t->o = ks_xrealloc(t->o, (t->o_cap = b->rows * n_out) * sizeof(double));
    for (size_t i = 0; i < b->n; i++) {
        size_t r = b->good_row[i]; /* SIZE_MAX: failed, a model error included */
        if (r == SIZE_MAX || rt->v[b->variant[i]].sv->model != m)
            continue;
        for (size_t j = 0; j < nf; j++)
            t->x[k * nf + j] = b->F[r * b->n_cols + sv->model_col[j]];
        memcpy(t->o + k * n_out, b->out + r * n_out, n_out * sizeof(double));
        k++;
    }
    *X = t->x;
    *out = t->o;
    return k;
}

static void run(void *tctx, ks_batch_t *b)
{
    drift_thread_t *t = tctx;
    if (!b->sv || b->rows == 0)
        return;
    ks_model_t *m = b->sv->model;
    int64_t now = ks_now_wall_ms();
    if (ks_drift_model(t->p->drift) != m) {
        /* Another model than the watched one: switch if it is the one in
         * service now (a hot swap); a batch of the outgoing model is
         * skipped. */
        ks_serving_t *cur = ks_pipeline_acquire(t->p);
        if (cur->model == m && ks_drift_model(t->p->drift) != m) {
            ks_drift_set_model(t->p->drift, m);
            if (!m->reference)
                ks_log(KS_LOG_WARN,
                       "drift: model %s has no training reference; drift is not watched",
                       m->version);
        }
        ks_serving_release(cur);
    }
    if (!m->reference)
        return;
    const double *X, *out;
    size_t rows = served_rows(t, b, b->sv, &X, &out);
    ks_drift_observe(t->local, m, X, out, rows, now); /* KS_ESTATE: not watched, skipped */
}

static void thread_free(void *tctx)
{
    drift_thread_t *t = tctx;
    ks_drift_local_free(t->local);
    free(t->x);
    free(t->o);
    free(t);
}

static void drift_free(void *ctx)
{
    struct ks_pipeline *p = ctx;
    ks_drift_free(p->drift);
    p->drift = NULL;
}

const ks_stage_type_t ks_stage_drift = {
    .name = "drift",
    .keys = drift_keys,
    .n_keys = KS_ARRAY_LEN(drift_keys),
    .configure = configure,
    .conf_free = free,
    .init = init,
    .thread_init = thread_init,
    .run = run,
    .thread_free = thread_free,
    .free = drift_free,
};
