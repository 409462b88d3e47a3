/*
 * features.c - stage "features": the configured features (features/) of
 * every good row into the feature matrix F, one row per good event. A
 * feature that cannot be computed fails its row (class "feature").
 */
#include "base/common.h"
#include "engine/pipeline.h"
#include "engine/stage.h"
#include "features/features.h"

#include <stdint.h>
#include <stdlib.h>

typedef struct features_thread {
    const ks_features_t *f;
    char err[256];
} features_thread_t;

static int features_thread_init(void *ctx, const ks_stage_env_t *env, void **tctx, char *errbuf,
                                size_t errsize)
{
    features_thread_t *t = ks_xcalloc(1, sizeof(*t));
    t->f = env->p->cfg->features;
    *tctx = t;
    return KS_OK;
}

static void features_run(void *tctx, ks_batch_t *b)
{
    features_thread_t *t = tctx;
    size_t rows = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (!ks_batch_ok(b, i))
            continue;
        if (ks_features_compute(t->f, ks_batch_row(b, i), b->F + rows * b->n_cols, t->err,
                                sizeof(t->err))) {
            ks_batch_fail(b, i, KS_ERRCLASS_FEATURE, "features", t->err);
            continue;
        }
        b->good_row[i] = rows++;
    }
    b->rows = rows;
}

const ks_stage_type_t ks_stage_features = {
    .name = "features",
    .thread_init = features_thread_init,
    .run = features_run,
    .thread_free = free,
};
