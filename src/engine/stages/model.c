/*
 * model.c - stage "model": the model in service scores the feature matrix in
 * one call. The batch takes a reference on the model (released when its
 * records are produced), so a hot swap never frees a model under a batch and
 * a batch is scored by one model only. Columns are reordered to the model's
 * feature order when they differ from the configured order. A failed call
 * or a non-finite output fails the row (class "inference").
 */
#include "base/common.h"
#include "engine/pipeline.h"
#include "engine/stage.h"

#include <math.h>

static int model_thread_init(void *ctx, const ks_stage_env_t *env, void **tctx, char *errbuf,
                             size_t errsize)
{
    *tctx = env->p;
    return KS_OK;
}

static void model_run(void *tctx, ks_batch_t *b)
{
    struct ks_pipeline *p = tctx;
    if (!b->sv)
        b->sv = ks_pipeline_acquire(p);
    const ks_serving_t *sv = b->sv;
    const ks_model_t *m = sv->model;
    if (b->rows == 0)
        return;
    ks_batch_size_model(b, !sv->identity_cols, m->n_features, m->n_outputs);
    if (sv->identity_cols) {
        b->X = b->F;
    } else {
        for (size_t r = 0; r < b->rows; r++)
            for (size_t j = 0; j < m->n_features; j++)
                b->xbuf[r * m->n_features + j] = b->F[r * b->n_cols + sv->model_col[j]];
        b->X = b->xbuf;
    }
    int rc = ks_model_predict(m, b->X, b->rows, b->out);
    for (size_t i = 0; i < b->n; i++) {
        if (!ks_batch_ok(b, i))
            continue;
        if (rc) {
            ks_batch_fail(b, i, KS_ERRCLASS_INFERENCE, "model",
                          "the model failed to predict this batch");
            continue;
        }
        const double *o = b->out + b->good_row[i] * m->n_outputs;
        size_t k, best = 0;
        for (k = 0; k < m->n_outputs && isfinite(o[k]); k++)
            if (o[k] > o[best])
                best = k;
        if (k < m->n_outputs) {
            ks_batch_fail(b, i, KS_ERRCLASS_INFERENCE, "model",
                          "the model returned a non-finite output");
            continue;
        }
        if (m->task == KS_TASK_CLASSIFICATION) {
            ks_histogram_observe(sv->score, sv->binary ? o[1] : o[best]);
            ks_histogram_observe(sv->confidence, o[best]);
        } else {
            ks_histogram_observe(sv->score, o[0]);
        }
    }
}

const ks_stage_type_t ks_stage_model = {
    .name = "model",
    .thread_init = model_thread_init,
    .run = model_run,
};
