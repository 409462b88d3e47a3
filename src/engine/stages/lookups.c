/*
 * lookups.c - the `lookups` stage: per-event values from a feature store
 * (Redis, or a JSONL snapshot offline), read by a key built from the event's
 * fields, before the features are computed. The lookup itself - cache,
 * pipelined round trip, breaker, typed fields - is lookup/lookup.h; this file
 * is its place in the pipeline:
 *
 *   configure    parses the `lookups:` list and adds each lookup's fields to
 *                the schema as virtual fields "<lookup>.<field>", so that
 *                `expr: profile.tx_count_1h` works like any field
 *   thread_init  one resolver per worker: its own Redis connections, cache
 *                and breakers (no locks on the hot path)
 *   run          builds every good row's keys, resolves them (one pipelined
 *                exchange per server, bounded by timeout_ms), fills the
 *                virtual fields, and marks rows served defaults because
 *                Redis was unavailable in b->degraded, which the encoder
 *                turns into "degraded": ["profile"]
 *
 * Redis never fails a row: no event is dead-lettered because of it. A lookup
 * with `required: true` is never served degraded: when any of its keys could
 * not be read (Redis down or slow, breaker open) the stage holds the whole
 * batch (engine/stage.h, "Holding a batch"), and the worker pauses
 * consumption and runs the batch again every min(breaker.cooldown_ms, 250)
 * ms until Redis answers. Values read meanwhile are cached, so a retry asks
 * only for what is still missing; while the breaker is open a retry costs no
 * Redis call.
 */
#include "base/common.h"
#include "base/log.h"
#include "engine/stage.h"
#include "lookup/lookup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NO_KEY UINT32_MAX

typedef struct lookups_conf {
    ks_lookup_def_t *defs;
    const ks_lookup_def_t **def_ptrs;
    const char **names;      /* per lookup: the "degraded" names */
    char **hold_reason;      /* per required lookup: why a batch is held (readiness) */
    size_t n;
} lookups_conf_t;

typedef struct lookups_thread {
    const lookups_conf_t *conf;
    ks_lookups_t *res;
    ks_buf_t key;
    uint32_t *slot;          /* rows x lookups */
    uint32_t *degraded;      /* rows */
    size_t cap;
} lookups_thread_t;

static void conf_free(void *p)
{
    lookups_conf_t *c = p;
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        ks_lookup_def_free(&c->defs[i]);
    free(c->defs);
    free(c->def_ptrs);
    free(c->names);
    for (size_t i = 0; c->hold_reason && i < c->n; i++)
        free(c->hold_reason[i]);
    free(c->hold_reason);
    free(c);
}

static int configure(struct ks_config *cfg, ks_node_t *root, void **out, char *errbuf,
                     size_t errsize)
{
    int rc = KS_OK;
    ks_node_t *list = ks_node_get(root, "lookups");
    lookups_conf_t *c = NULL;
    char dir[4096] = ".";

    *out = NULL;
    if (!list)
        goto out;
    if ((rc = ks_node_expect(list, KS_NODE_SEQ, errbuf, errsize)))
        goto out;
    if (list->n_items > KS_LOOKUPS_MAX) {
        rc = ks_node_err(list, errbuf, errsize, "at most %d lookups", KS_LOOKUPS_MAX);
        goto out;
    }
    if (cfg->path) {
        const char *slash = strrchr(cfg->path, '/');
        if (slash)
            snprintf(dir, sizeof(dir), "%.*s", (int)(slash - cfg->path), cfg->path);
    }
    c = ks_xcalloc(1, sizeof(*c));
    c->defs = ks_xcalloc(list->n_items ? list->n_items : 1, sizeof(ks_lookup_def_t));
    c->def_ptrs = ks_xcalloc(list->n_items ? list->n_items : 1, sizeof(*c->def_ptrs));
    c->names = ks_xcalloc(list->n_items ? list->n_items : 1, sizeof(char *));
    c->hold_reason = ks_xcalloc(list->n_items ? list->n_items : 1, sizeof(char *));
    for (size_t i = 0; i < list->n_items; i++) {
        ks_lookup_def_t *d = &c->defs[i];
        c->n++;
        if ((rc = ks_lookup_parse(list->items[i], cfg->schema, dir, d, errbuf, errsize)))
            goto out;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(c->defs[j].name, d->name)) {
                rc = ks_node_err(list->items[i], errbuf, errsize,
                                 "lookup '%s' is declared twice", d->name);
                goto out;
            }
        for (size_t k = 0; k < d->n_fields; k++) {
            char name[512];
            snprintf(name, sizeof(name), "%s.%s", d->name, d->fields[k].name);
            d->fields[k].vfield = ks_schema_add_virtual(cfg->schema, name, d->fields[k].type);
            if (d->fields[k].vfield < 0) {
                rc = ks_node_err(list->items[i], errbuf, errsize,
                                 "'%s' is already a field; rename the lookup or the field",
                                 name);
                goto out;
            }
        }
        c->def_ptrs[i] = d;
        c->names[i] = d->name;
        if (d->required && d->url) {
            char where[300], why[512];
            ks_redis_addr_str(&d->addr, where, sizeof(where));
            snprintf(why, sizeof(why),
                     "waiting for the required lookup '%s': Redis %s does not answer", d->name,
                     where);
            c->hold_reason[i] = ks_xstrdup(why);
        }
    }
    if (c->n) { /* `lookups: []` is no lookup at all */
        *out = c;
        c = NULL;
    }
out:
    conf_free(c);
    return rc;
}

static int init(struct ks_pipeline *p, const void *conf, void **ctx, char *errbuf,
                size_t errsize)
{
    *ctx = (void *)conf; /* the parsed definitions are all the shared state */
    return KS_OK;
}

static int thread_init(void *ctx, const ks_stage_env_t *env, void **out, char *errbuf,
                       size_t errsize)
{
    const lookups_conf_t *c = ctx;
    lookups_thread_t *t = ks_xcalloc(1, sizeof(*t));
    t->conf = c;
    t->res = ks_lookups_new(c->def_ptrs, c->n);
    *out = t;
    return KS_OK;
}

static void thread_free(void *p)
{
    lookups_thread_t *t = p;
    if (!t)
        return;
    ks_lookups_free(t->res);
    ks_buf_free(&t->key);
    free(t->slot);
    free(t->degraded);
    free(t);
}

static void run(void *p, ks_batch_t *b)
{
    lookups_thread_t *t = p;
    const lookups_conf_t *c = t->conf;
    size_t nl = c->n;

    if (b->n > t->cap) {
        t->slot = ks_xrealloc(t->slot, b->n * nl * sizeof(uint32_t));
        t->degraded = ks_xrealloc(t->degraded, b->n * sizeof(uint32_t));
        t->cap = b->n;
    }
    ks_lookups_begin(t->res);
    for (size_t i = 0; i < b->n; i++) {
        if (!ks_batch_ok(b, i))
            continue;
        const ks_value_t *row = ks_batch_row(b, i);
        for (size_t l = 0; l < nl; l++) {
            uint32_t s = NO_KEY;
            if (ks_lookup_render_key(&c->defs[l], row, &t->key) == 0)
                s = ks_lookups_add(t->res, l, t->key.data, t->key.len);
            else
                ks_counter_add(ks_lookups_metrics(t->res, l)->no_key, 1);
            t->slot[i * nl + l] = s;
        }
    }
    ks_lookups_fetch(t->res);
    for (size_t l = 0; l < nl; l++) {
        const ks_lookup_def_t *d = &c->defs[l];
        if (c->hold_reason[l] && ks_lookups_failed(t->res, l)) {
            /* required: no row is served defaults; the batch waits for Redis */
            long long ms = d->breaker_cooldown_ms < 250 ? d->breaker_cooldown_ms : 250;
            b->hold_ms = ms > 0 ? ms : 1;
            b->hold_reason = c->hold_reason[l];
            return;
        }
    }
    for (size_t l = 0; l < nl; l++) {
        const ks_lookup_def_t *d = &c->defs[l];
        uint64_t degraded_rows = 0;
        for (size_t i = 0; i < b->n; i++) {
            if (l == 0)
                t->degraded[i] = 0;
            if (!ks_batch_ok(b, i))
                continue;
            ks_value_t *row = b->fields + i * b->n_fields;
            uint32_t s = t->slot[i * nl + l];
            int deg = 0;
            const ks_value_t *v = NULL;
            if (s != NO_KEY)
                v = ks_lookups_values(t->res, l, s, &deg);
            for (size_t k = 0; k < d->n_fields; k++)
                row[d->fields[k].vfield] = v ? v[k] : d->fields[k].dflt;
            if (deg) {
                t->degraded[i] |= 1u << l;
                degraded_rows++;
            }
        }
        if (degraded_rows)
            ks_counter_add(ks_lookups_metrics(t->res, l)->degraded_rows, degraded_rows);
    }
    b->degraded = t->degraded;
    b->degraded_names = c->names;
}

static const ks_config_section_t sections[] = {
    {"lookups",
     "Feature-store lookups (docs/lookups.md): a list of {name, redis: {url, timeout_ms}, "
     "key (template over input fields, \"features:{user_id}\"), type (json | hash | string), "
     "fields ({name: {type, default}}), cache: {ttl_ms, max_entries}, breaker: {failures, "
     "cooldown_ms}, max_value_bytes, required, snapshot (JSONL file instead of Redis)}. "
     "Each field is read by features as <name>.<field>."},
};

const ks_stage_type_t ks_stage_lookups = {
    .name = "lookups",
    .sections = sections,
    .n_sections = KS_ARRAY_LEN(sections),
    .configure = configure,
    .conf_free = conf_free,
    .init = init,
    .thread_init = thread_init,
    .run = run,
    .thread_free = thread_free,
};
