/*
 * status.c - the engine as observers see it (see status.h).
 */
#include "engine/status.h"
#include "engine/deployments.h"
#include "engine/guard.h"
#include "engine/pipeline.h"
#include "base/common.h"

#include <math.h>
#include <string.h>

#include <math.h>
#include <string.h>

const struct ks_config *ks_status_config(const struct ks_pipeline *p)
{
    return p->cfg;
}

const ks_engine_metrics_t *ks_status_metrics(const struct ks_pipeline *p)
{
    return &p->metrics;
}

void ks_status_model_get(struct ks_pipeline *p, ks_status_model_t *m)
{
    ks_serving_t *sv = ks_pipeline_acquire(p);
    const ks_model_t *model = sv->model;
    m->version = model->version;
    m->backend = model->backend->name;
    m->objective = model->objective ? model->objective : "";
    m->classification = model->task == KS_TASK_CLASSIFICATION;
    m->n_features = model->n_features;
    m->score = sv->score;
    m->hold = sv;
}

void ks_status_model_put(ks_status_model_t *m)
{
    ks_serving_release(m->hold);
    m->hold = NULL;
}

void ks_status_state(const struct ks_pipeline *p, int *stopping, int *fatal)
{
    *stopping = atomic_load(&((struct ks_pipeline *)p)->stop) != 0;
    *fatal = atomic_load(&((struct ks_pipeline *)p)->fatal) != 0;
}

int ks_status_holding(const struct ks_pipeline *p, const char **reason)
{
    struct ks_pipeline *q = (struct ks_pipeline *)p;
    int n = atomic_load(&q->holding);
    if (reason) {
        const char *r = atomic_load(&q->hold_reason);
        *reason = r ? r : "a stage held a batch";
    }
    return n;
}

int ks_status_restoring(const struct ks_pipeline *p)
{
    return atomic_load(&((struct ks_pipeline *)p)->restoring);
}

void ks_status_drift(struct ks_pipeline *p, ks_drift_status_t *st)
{
    if (p->drift) {
        ks_drift_snapshot(p->drift, ks_now_wall_ms(), st);
    } else {
        memset(st, 0, sizeof(*st));
        st->score_psi = NAN;
    }
}

void ks_status_evaluation(struct ks_pipeline *p, ks_status_eval_t *st)
{
    memset(st, 0, sizeof(*st));
    if (!p->evaluator)
        return;
    st->active = 1;
    size_t n = ks_evaluator_compute(p->evaluator, ks_now_wall_ms(), st->group,
                                    KS_STATUS_EVAL_GROUPS);
    st->n_groups = n < KS_STATUS_EVAL_GROUPS ? n : KS_STATUS_EVAL_GROUPS;
    for (int o = 0; o < 4; o++)
        st->outcomes[o] = ks_evaluator_outcomes(p->evaluator, (ks_eval_outcome_t)o);
    ks_evalstore_stats(p->evalstore, &st->store);
}

void ks_status_refresh(struct ks_pipeline *p)
{
    int64_t now = ks_now_wall_ms();
    if (p->drift)
        ks_drift_refresh(p->drift, now);
    if (p->evaluator)
        ks_evaluator_compute(p->evaluator, now, NULL, 0);
}

void ks_status_observe_kafka(struct ks_pipeline *p, const ks_kafka_observer_t *obs)
{
    p->kafka_obs = *obs;
}

static void put_num(ks_buf_t *b, double v)
{
    if (isfinite(v))
        ks_buf_printf(b, "%.6g", v);
    else
        ks_buf_puts(b, "null");
}

void ks_status_deployments_json(struct ks_pipeline *p, ks_buf_t *b)
{
    ks_routing_t *rt;
    ks_serving_t *sv;
    if (!p->deploy) {
        ks_buf_puts(b, "null");
        return;
    }
    ks_pipeline_acquire_routing(p, &rt, &sv);
    ks_buf_puts(b, "{\"variants\":[");
    for (size_t i = 0; i < rt->n; i++) {
        const ks_route_variant_t *v = &rt->v[i];
        uint32_t lo = i ? rt->upto[i - 1] : 0, hi = rt->n > 1 ? rt->upto[i] : KS_DEPLOY_BUCKETS;
        ks_buf_printf(b, "%s{\"variant\":\"%s\",\"model_version\":", i ? "," : "", v->name);
        ks_buf_json_string(b, v->sv->model->version, strlen(v->sv->model->version));
        ks_buf_printf(b, ",\"share\":%g,\"predictions\":%llu,\"errors\":%llu}",
                      (double)(hi - lo) / KS_DEPLOY_BUCKETS,
                      (unsigned long long)atomic_load(&v->predictions->v),
                      (unsigned long long)atomic_load(&v->errors->v));
    }
    ks_buf_puts(b, "],\"shadow\":");
    if (rt->shadow.sv) {
        const ks_histogram_t *d = rt->shadow_delta;
        uint64_t counts[KS_GUARD_MAXB] = {0}, n = 0;
        for (size_t i = 0; i <= d->n_bounds && i < KS_GUARD_MAXB; i++)
            n += counts[i] = atomic_load(&d->buckets[i]);
        double sum;
        uint64_t bits = atomic_load(&d->sum_bits);
        memcpy(&sum, &bits, sizeof(sum));
        uint64_t compared = atomic_load(&rt->shadow_compared->v);
        ks_buf_puts(b, "{\"model_version\":");
        ks_buf_json_string(b, rt->shadow.sv->model->version,
                           strlen(rt->shadow.sv->model->version));
        ks_buf_printf(b, ",\"predictions\":%llu,\"errors\":%llu,\"compared\":%llu,"
                         "\"agreement\":",
                      (unsigned long long)atomic_load(&rt->shadow.predictions->v),
                      (unsigned long long)atomic_load(&rt->shadow.errors->v),
                      (unsigned long long)compared);
        put_num(b, compared ? (double)atomic_load(&rt->shadow_agreed->v) / (double)compared : NAN);
        ks_buf_puts(b, ",\"mean_abs_delta\":");
        put_num(b, n ? sum / (double)n : NAN);
        ks_buf_puts(b, ",\"p99_abs_delta\":");
        put_num(b, ks_guard_quantile(d->bounds, d->n_bounds, counts, 0.99));
        ks_buf_putc(b, '}');
    } else {
        ks_buf_puts(b, "null");
    }
    ks_buf_putc(b, ',');
    ks_routing_release(rt);
    ks_serving_release(sv);
    /* the state, with its instance: {"instance":...,"state":{...}} minus braces */
    ks_buf_t st = {0};
    ks_deployments_status_json(p, &st);
    ks_buf_append(b, st.data + 1, st.len - 1);
    ks_buf_free(&st);
}
