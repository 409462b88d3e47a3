/*
 * route.c - stage "route": with model.deployments_topic, takes the batch's
 * hold on the routing in service (engine/pipeline.h ks_routing_t: champion,
 * canary or A/B variants, shadow) and picks each good row's variant by a
 * hash of its entity key, so a key stays on one variant across batches,
 * workers, replicas and restarts (deploy.h). The model stage then scores
 * each variant's rows with its model, and the shadow model every row.
 *
 * The key is routing.key (default output.id_field): a string's bytes, a
 * number's shortest JSON text; without the field (or when it is missing)
 * the input record's Kafka key; a row with no key at all goes to the
 * champion. The stage also keeps a few recent feature rows for the warm-up
 * of deployed models (ks_pipeline_keep_recent).
 *
 * This file also holds the deployment config keys (model.deployments_*,
 * routing.key, shadow.topic, guard.*): the stage runs exactly when they are
 * in use.
 */
#include "base/common.h"
#include "engine/pipeline.h"
#include "engine/stage.h"
#include "features/murmur3.h"

#include <stdlib.h>
#include <string.h>

static const ks_config_key_t route_keys[] = {
    {"model.deployments_topic", KS_CONF_STRING, KS_CONF_OFF(deployments_topic), KS_CONF_NOHAS, 0,
     NULL, 0, 0, NULL,
     "Compacted topic of model deployments (docs/deployments.md), read from the beginning by "
     "every instance so all replicas route alike; model.path is then the first champion and "
     "is no longer watched (default: off)."},
    {"model.deployments_status_topic", KS_CONF_STRING, KS_CONF_OFF(deployments_status_topic),
     KS_CONF_NOHAS, 0, NULL, 0, 0, NULL,
     "Topic receiving one status record per deployment message and instance: applied, "
     "unchanged, refused (with the reason) or rolled_back by the guard (default: none)."},
    {"routing.key", KS_CONF_STRING, KS_CONF_OFF(routing_key), KS_CONF_NOHAS, 0, NULL, 0, 0, NULL,
     "Input field whose value picks a row's canary or A/B variant (murmur3 of its bytes); "
     "default output.id_field, else the input record's key."},
    {"shadow.topic", KS_CONF_STRING, KS_CONF_OFF(shadow_topic), KS_CONF_NOHAS, 0, NULL, 0, 0,
     NULL,
     "Topic receiving the shadow model's records (the output record's shape plus "
     "\"shadow_of\"); never waited for, never committed on; with delivery: exactly_once "
     "they ride in each batch's transaction (default: metrics only)."},
    {"guard.max_error_rate", KS_CONF_DOUBLE, KS_CONF_OFF(guard_max_error_rate),
     KS_CONF_OFF(guard_has_error_rate), 0, NULL, 0, 0, NULL,
     "Roll a candidate back when its share of failed predictions over guard.window exceeds "
     "this and the champion's (0..1; default: no limit)."},
    {"guard.max_p99_ms", KS_CONF_DOUBLE, KS_CONF_OFF(guard_max_p99_ms),
     KS_CONF_OFF(guard_has_p99), 0, NULL, 0, 0, NULL,
     "Roll a candidate back when the p99 of its model compute time (thread CPU of the call "
     "that scored each row) over guard.window exceeds this many ms and the champion's "
     "(default: no limit)."},
    {"guard.max_score_psi", KS_CONF_DOUBLE, KS_CONF_OFF(guard_max_score_psi),
     KS_CONF_OFF(guard_has_psi), 0, NULL, 0, 0, NULL,
     "Roll a candidate back when the population stability index of its scores against the "
     "champion's over guard.window exceeds this (e.g. 0.25; default: no limit)."},
    {"guard.window", KS_CONF_STRING, KS_CONF_OFF(guard_window), KS_CONF_NOHAS, 0, "5m", 0, 0,
     NULL, "The guard's sliding window: a number with ms, s, m or h."},
    {"guard.min_events", KS_CONF_INT, KS_CONF_OFF(guard_min_events), KS_CONF_NOHAS, 0, "200", 1,
     100000000, NULL,
     "Predictions a candidate (and the champion) need in the window before the guard judges."},
    {"guard.interval_ms", KS_CONF_INT, KS_CONF_OFF(guard_interval_ms), KS_CONF_NOHAS, 0, "1000",
     10, 600000, NULL, "How often the guard compares the candidates with the champion."},
};

typedef struct route_conf {
    int key_field;             /* schema index, or -1: the Kafka key */
} route_conf_t;

typedef struct route_thread {
    struct ks_pipeline *p;
    int key_field;
    uint8_t *variant;
    size_t cap;
    ks_buf_t num;              /* a numeric key's text */
} route_thread_t;

static int route_configure(struct ks_config *cfg, ks_node_t *root, void **conf, char *errbuf,
                           size_t errsize)
{
    *conf = NULL;
    if (!cfg->deployments_topic)
        return KS_OK;
    ks_node_t *n = ks_node_get(ks_node_get(root, "guard"), "window");
    int64_t window_ms;
    if (ks_duration_parse(cfg->guard_window, &window_ms) != KS_OK)
        return n ? ks_node_err(n, errbuf, errsize,
                               "expected a duration such as 30s, 5m or 1h, got \"%s\"",
                               cfg->guard_window)
                 : ks_err(errbuf, errsize, KS_EINVAL, "%s: guard.window: bad duration \"%s\"",
                          cfg->path, cfg->guard_window);
    cfg->guard_window_ms = window_ms;
    route_conf_t *rc = ks_xcalloc(1, sizeof(*rc));
    const char *key = cfg->routing_key ? cfg->routing_key : cfg->output_id_field;
    rc->key_field = key ? ks_schema_find(cfg->schema, key) : -1;
    if (key && rc->key_field < 0) {
        free(rc);
        n = ks_node_get(ks_node_get(root, "routing"), "key");
        return n ? ks_node_err(n, errbuf, errsize, "field '%s' is not declared under input.fields",
                               key)
                 : ks_err(errbuf, errsize, KS_EINVAL,
                          "%s: routing.key: field '%s' is not declared under input.fields",
                          cfg->path, key);
    }
    *conf = rc;
    return KS_OK;
}

static int route_init(struct ks_pipeline *p, const void *conf, void **ctx, char *errbuf,
                      size_t errsize)
{
    *ctx = (void *)conf;
    return KS_OK;
}

static int route_thread_init(void *ctx, const ks_stage_env_t *env, void **tctx, char *errbuf,
                             size_t errsize)
{
    const route_conf_t *rc = ctx;
    route_thread_t *t = ks_xcalloc(1, sizeof(*t));
    t->p = env->p;
    t->key_field = rc->key_field;
    *tctx = t;
    return KS_OK;
}

/* Row i's key bytes, or NULL. */
static const char *row_key(route_thread_t *t, const ks_batch_t *b, size_t i, size_t *len)
{
    if (t->key_field >= 0) {
        const ks_value_t *v = &ks_batch_row(b, i)[t->key_field];
        if (v->type == KS_VAL_STR) {
            *len = v->len;
            return v->str;
        }
        if (v->type == KS_VAL_NUM) {
            ks_buf_reset(&t->num);
            ks_buf_json_double(&t->num, v->num);
            *len = t->num.len;
            return t->num.data;
        }
    }
    *len = b->ev[i].key_len;
    return b->ev[i].key;
}

static void route_run(void *tctx, ks_batch_t *b)
{
    route_thread_t *t = tctx;
    ks_serving_t *sv;
    ks_routing_t *rt;
    ks_pipeline_acquire_routing(t->p, &rt, &sv);
    b->rt = rt;
    b->sv = sv;
    if (b->n > t->cap) {
        t->variant = ks_xrealloc(t->variant, b->n);
        t->cap = b->n;
    }
    if (rt->n > 1) {
        for (size_t i = 0; i < b->n; i++) {
            size_t len;
            const char *key = ks_batch_ok(b, i) ? row_key(t, b, i, &len) : NULL;
            t->variant[i] = key ? (uint8_t)ks_deploy_pick(ks_murmur3_32(key, len, rt->seed),
                                                          rt->upto, rt->n)
                                : (uint8_t)rt->champion;
        }
    } else {
        memset(t->variant, (int)rt->champion, b->n);
    }
    b->variant = t->variant;
    ks_pipeline_keep_recent(t->p, b);
}

static void route_thread_free(void *tctx)
{
    route_thread_t *t = tctx;
    free(t->variant);
    ks_buf_free(&t->num);
    free(t);
}

const ks_stage_type_t ks_stage_route = {
    .name = "route",
    .keys = route_keys,
    .n_keys = KS_ARRAY_LEN(route_keys),
    .configure = route_configure,
    .conf_free = free,
    .init = route_init,
    .thread_init = route_thread_init,
    .run = route_run,
    .thread_free = route_thread_free,
};
