/*
 * status.c - the engine as observers see it (see status.h).
 */
#include "engine/status.h"
#include "engine/pipeline.h"
#include "base/common.h"

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
