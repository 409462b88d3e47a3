/*
 * stage.c - the stage registry and the runner (see stage.h).
 *
 * The registry lists every stage type in the order it runs. A stage whose
 * `configure` leaves no config (its section is absent) is not part of the
 * pipeline; the rest are instantiated once per pipeline (init) and once per
 * thread (thread_init), and each batch goes through them in order, each
 * timed into kscore_stage_duration_seconds{stage="<name>"}. A features-only
 * pipeline (ks_pipeline_new_features) stops after the features stage.
 */
#include "engine/stage.h"
#include "base/common.h"
#include "base/metrics.h"
#include "engine/pipeline.h"

#include <stdlib.h>
#include <string.h>

const ks_stage_type_t *const ks_stage_types[] = {
    &ks_stage_decode,
    &ks_stage_lookups,
    &ks_stage_windows, /* after lookups: a held batch is held before its events count */
    &ks_stage_features,
    &ks_stage_route,
    &ks_stage_model,
    &ks_stage_drift,
    &ks_stage_evaluation,
    &ks_stage_encode,
};
const size_t ks_stage_types_n = KS_ARRAY_LEN(ks_stage_types);

_Static_assert(KS_ARRAY_LEN(ks_stage_types) <= KS_STAGES_MAX, "raise KS_STAGES_MAX");

typedef struct stage {
    const ks_stage_type_t *type;
    const void *conf;
    void *ctx;
    ks_histogram_t *seconds;
} stage_t;

struct ks_stages {
    stage_t *s;
    size_t n;
};

struct ks_stage_runner {
    const ks_stages_t *stages;
    void **tctx;
};

int ks_stages_new(struct ks_pipeline *p, ks_stages_t **out, char *errbuf, size_t errsize)
{
    ks_stages_t *st = ks_xcalloc(1, sizeof(*st));
    int rc = KS_OK;
    st->s = ks_xcalloc(ks_stage_types_n, sizeof(*st->s));
    for (size_t i = 0; i < ks_stage_types_n; i++) {
        const ks_stage_type_t *t = ks_stage_types[i];
        const void *conf = p->cfg->stage_conf[i];
        if (t->configure && !conf)
            continue; /* not configured: not part of this pipeline */
        stage_t *s = &st->s[st->n];
        s->type = t;
        s->conf = conf;
        s->seconds = ks_engine_metrics_stage(&p->metrics, t->name);
        if (t->init && (rc = t->init(p, conf, &s->ctx, errbuf, errsize)))
            goto out;
        st->n++;
        if (p->features_only && t == &ks_stage_features)
            break; /* `kscore features`: nothing after the features */
    }
out:
    if (rc) {
        ks_stages_free(st);
        st = NULL;
    }
    *out = st;
    return rc;
}

void ks_stages_free(ks_stages_t *st)
{
    if (!st)
        return;
    for (size_t i = st->n; i-- > 0;)
        if (st->s[i].type->free)
            st->s[i].type->free(st->s[i].ctx);
    free(st->s);
    free(st);
}

size_t ks_stages_count(const ks_stages_t *st)
{
    return st->n;
}

const char *ks_stages_name(const ks_stages_t *st, size_t i)
{
    return st->s[i].type->name;
}

int ks_stage_runner_new(ks_stages_t *st, const ks_stage_env_t *env, ks_stage_runner_t **out,
                        char *errbuf, size_t errsize)
{
    ks_stage_runner_t *r = ks_xcalloc(1, sizeof(*r));
    int rc = KS_OK;
    r->stages = st;
    r->tctx = ks_xcalloc(st->n ? st->n : 1, sizeof(void *));
    for (size_t i = 0; i < st->n; i++) {
        const ks_stage_type_t *t = st->s[i].type;
        if (t->thread_init && (rc = t->thread_init(st->s[i].ctx, env, &r->tctx[i], errbuf,
                                                   errsize))) {
            /* thread_free only what was set up */
            for (size_t k = i; k-- > 0;)
                if (st->s[k].type->thread_free)
                    st->s[k].type->thread_free(r->tctx[k]);
            free(r->tctx);
            free(r);
            r = NULL;
            break;
        }
    }
    *out = r;
    return rc;
}

void ks_stage_runner_run(ks_stage_runner_t *r, ks_batch_t *b)
{
    const ks_stages_t *st = r->stages;
    int64_t t0 = ks_now_mono_ns();
    for (size_t i = 0; i < st->n; i++) {
        st->s[i].type->run(r->tctx[i], b);
        int64_t t1 = ks_now_mono_ns();
        ks_histogram_observe(st->s[i].seconds, (double)(t1 - t0) / 1e9);
        t0 = t1;
        if (b->hold_ms > 0)
            break; /* held: the caller runs the batch again, from the start */
    }
}

void ks_stage_runner_assign(ks_stage_runner_t *r, const rd_kafka_topic_partition_list_t *parts)
{
    for (size_t i = 0; i < r->stages->n; i++)
        if (r->stages->s[i].type->on_assign)
            r->stages->s[i].type->on_assign(r->tctx[i], parts);
}

void ks_stage_runner_revoke(ks_stage_runner_t *r, const rd_kafka_topic_partition_list_t *parts)
{
    for (size_t i = r->stages->n; i-- > 0;)
        if (r->stages->s[i].type->on_revoke)
            r->stages->s[i].type->on_revoke(r->tctx[i], parts);
}

void ks_stage_runner_flush(ks_stage_runner_t *r)
{
    for (size_t i = 0; i < r->stages->n; i++)
        if (r->stages->s[i].type->flush)
            r->stages->s[i].type->flush(r->tctx[i]);
}

void ks_stage_runner_free(ks_stage_runner_t *r)
{
    if (!r)
        return;
    for (size_t i = r->stages->n; i-- > 0;)
        if (r->stages->s[i].type->thread_free)
            r->stages->s[i].type->thread_free(r->tctx[i]);
    free(r->tctx);
    free(r);
}
