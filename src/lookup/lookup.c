/*
 * lookup.c - feature-store lookups (see lookup.h): the config section, key
 * templates, turning Redis values into typed fields, JSONL snapshots, and the
 * per-thread resolver that dedups a batch's keys, serves the cache, and makes
 * one pipelined exchange per server for the rest.
 */
#include "lookup/lookup.h"
#include "base/arena.h"
#include "base/common.h"
#include "base/json.h"
#include "base/log.h"
#include "lookup/breaker.h"

#include <hiredis/hiredis.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "features/murmur3.h"

/* ------------------------------------------------------------ config ---- */

const char *ks_lookup_kind_name(ks_lookup_kind_t k)
{
    return k == KS_LOOKUP_HASH ? "hash" : k == KS_LOOKUP_STRING ? "string" : "json";
}

static int valid_name(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return 0;
    return 1;
}

static int parse_template(ks_lookup_def_t *d, ks_node_t *n, const ks_schema_t *schema,
                          char *errbuf, size_t errsize)
{
    const char *t = d->key_template, *p = t;
    d->parts = ks_xcalloc(strlen(t) + 1, sizeof(ks_key_part_t));
    while (*p) {
        ks_key_part_t *kp = &d->parts[d->n_parts];
        if (*p == '{') {
            const char *close = strchr(p, '}');
            if (!close || close == p + 1)
                return ks_node_err(n, errbuf, errsize,
                                   "'%s': '{' at column %d opens no field name", t,
                                   (int)(p - t) + 1);
            char *name = ks_xstrndup(p + 1, (size_t)(close - p - 1));
            kp->field = ks_schema_find(schema, name);
            if (kp->field < 0) {
                int rc = ks_node_err(n, errbuf, errsize,
                                     "'%s': '%s' is not an input field (declare it under "
                                     "input.fields)", t, name);
                free(name);
                return rc;
            }
            free(name);
            p = close + 1;
        } else {
            size_t l = strcspn(p, "{");
            if (memchr(p, '}', l))
                return ks_node_err(n, errbuf, errsize, "'%s': '}' without '{'", t);
            kp->text = ks_xstrndup(p, l);
            kp->len = l;
            kp->field = -1;
            p += l;
        }
        d->n_parts++;
    }
    for (size_t i = 0; i < d->n_parts; i++)
        if (d->parts[i].field >= 0)
            return KS_OK;
    return ks_node_err(n, errbuf, errsize,
                       "'%s' names no input field: every event would read the same key "
                       "(write e.g. \"features:{user_id}\")", t);
}

static int parse_field(ks_node_t *n, ks_lookup_kind_t kind, ks_lookup_field_t *f, char *errbuf,
                       size_t errsize)
{
    ks_node_t *type = NULL, *dflt = NULL;
    f->name = ks_xstrdup(n->key);
    f->vfield = -1;
    if (n->kind == KS_NODE_SCALAR) {
        type = n;
    } else {
        int rc = ks_node_expect(n, KS_NODE_MAP, errbuf, errsize);
        if (rc)
            return rc;
        for (size_t i = 0; i < n->n_items; i++) {
            ks_node_t *c = n->items[i];
            if (!strcmp(c->key, "type"))
                type = c;
            else if (!strcmp(c->key, "default"))
                dflt = c;
            else
                return ks_node_err(c, errbuf, errsize,
                                   "unknown key in a lookup field (expected type, default)");
        }
    }
    const char *tn = NULL;
    if (!type)
        return ks_node_err(n, errbuf, errsize, "missing 'type' (number, string or bool)");
    if (ks_node_string(type, &tn, errbuf, errsize))
        return KS_EINVAL;
    if (!strcmp(tn, "number"))
        f->type = KS_FIELD_NUMBER;
    else if (!strcmp(tn, "string"))
        f->type = KS_FIELD_STRING;
    else if (!strcmp(tn, "bool"))
        f->type = KS_FIELD_BOOL;
    else
        return ks_node_err(type, errbuf, errsize,
                           "unknown lookup field type '%s' (number, string or bool)", tn);
    if (dflt) {
        int rc = 0;
        if (f->type == KS_FIELD_NUMBER) {
            f->dflt.type = KS_VAL_NUM;
            rc = ks_node_double(dflt, &f->dflt.num, errbuf, errsize);
        } else if (f->type == KS_FIELD_BOOL) {
            int b = 0;
            f->dflt.type = KS_VAL_BOOL;
            rc = ks_node_bool(dflt, &b, errbuf, errsize);
            f->dflt.b = (uint8_t)b;
        } else {
            const char *s = NULL;
            if (!(rc = ks_node_string(dflt, &s, errbuf, errsize))) {
                f->dflt_str = ks_xstrdup(s);
                f->dflt.type = KS_VAL_STR;
                f->dflt.str = f->dflt_str;
                f->dflt.len = (uint32_t)strlen(s);
            }
        }
        if (rc)
            return rc;
    }
    /* json: a dotted name is a path into the object */
    f->n_path = 1;
    for (const char *p = f->name; *p; p++)
        f->n_path += *p == '.';
    f->path = ks_xcalloc((size_t)f->n_path, sizeof(char *));
    if (kind == KS_LOOKUP_JSON) {
        const char *p = f->name;
        for (int k = 0; k < f->n_path; k++) {
            size_t l = strcspn(p, ".");
            if (!l)
                return ks_node_err(n, errbuf, errsize, "empty path segment in '%s'", f->name);
            f->path[k] = ks_xstrndup(p, l);
            p += l + (p[l] == '.');
        }
    } else {
        f->n_path = 1;
        f->path[0] = ks_xstrdup(f->name);
    }
    return KS_OK;
}

/* Reads an int key of a sub-map {a: 1, b: 2} into the matching slot. */
typedef struct {
    const char *key;
    long long *out, min, max;
} int_key_t;

static int parse_int_map(ks_node_t *n, const int_key_t *keys, size_t nk, const char *other,
                         const char **other_out, char *errbuf, size_t errsize)
{
    int rc = ks_node_expect(n, KS_NODE_MAP, errbuf, errsize);
    if (rc)
        return rc;
    for (size_t i = 0; i < n->n_items; i++) {
        ks_node_t *c = n->items[i];
        size_t k;
        if (other && !strcmp(c->key, other)) {
            if ((rc = ks_node_string(c, other_out, errbuf, errsize)))
                return rc;
            continue;
        }
        for (k = 0; k < nk && strcmp(c->key, keys[k].key); k++)
            ;
        if (k == nk) {
            char want[160] = "";
            for (size_t j = 0; j < nk; j++)
                snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%s",
                         j ? ", " : "", keys[j].key);
            return ks_node_err(c, errbuf, errsize, "unknown key (expected %s%s%s)",
                               other ? other : "", other ? ", " : "", want);
        }
        if ((rc = ks_node_int(c, keys[k].min, keys[k].max, keys[k].out, errbuf, errsize)))
            return rc;
    }
    return KS_OK;
}

int ks_lookup_parse(ks_node_t *item, const ks_schema_t *schema, const char *base_dir,
                    ks_lookup_def_t *d, char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    ks_node_t *name = NULL, *key = NULL, *fields = NULL, *redis = NULL, *snapshot = NULL;
    const char *s = NULL, *url = NULL;

    memset(d, 0, sizeof(*d));
    d->timeout_ms = 20;
    d->ttl_ms = 5000;
    d->max_entries = 100000;
    d->breaker_failures = 3;
    d->breaker_cooldown_ms = 1000;
    d->max_value_bytes = 1 << 20;
    if ((rc = ks_node_expect(item, KS_NODE_MAP, errbuf, errsize)))
        goto out;
    for (size_t i = 0; i < item->n_items; i++) {
        ks_node_t *c = item->items[i];
        if (!strcmp(c->key, "name")) {
            name = c;
        } else if (!strcmp(c->key, "key")) {
            key = c;
        } else if (!strcmp(c->key, "fields")) {
            fields = c;
        } else if (!strcmp(c->key, "redis")) {
            redis = c;
        } else if (!strcmp(c->key, "snapshot")) {
            snapshot = c;
        } else if (!strcmp(c->key, "type")) {
            if ((rc = ks_node_string(c, &s, errbuf, errsize)))
                goto out;
            if (!strcmp(s, "json"))
                d->kind = KS_LOOKUP_JSON;
            else if (!strcmp(s, "hash"))
                d->kind = KS_LOOKUP_HASH;
            else if (!strcmp(s, "string"))
                d->kind = KS_LOOKUP_STRING;
            else {
                rc = ks_node_err(c, errbuf, errsize, "unknown lookup type '%s' (json, hash or string)", s);
                goto out;
            }
        } else if (!strcmp(c->key, "cache")) {
            int_key_t k[] = {{"ttl_ms", &d->ttl_ms, 0, 86400000LL * 365},
                             {"max_entries", &d->max_entries, 0, 100000000}};
            if ((rc = parse_int_map(c, k, 2, NULL, NULL, errbuf, errsize)))
                goto out;
        } else if (!strcmp(c->key, "breaker")) {
            int_key_t k[] = {{"failures", &d->breaker_failures, 1, 1000000},
                             {"cooldown_ms", &d->breaker_cooldown_ms, 1, 3600000}};
            if ((rc = parse_int_map(c, k, 2, NULL, NULL, errbuf, errsize)))
                goto out;
        } else if (!strcmp(c->key, "max_value_bytes")) {
            if ((rc = ks_node_int(c, 1, 512LL << 20, &d->max_value_bytes, errbuf, errsize)))
                goto out;
        } else if (!strcmp(c->key, "required")) {
            if ((rc = ks_node_bool(c, &d->required, errbuf, errsize)))
                goto out;
        } else {
            rc = ks_node_err(c, errbuf, errsize,
                             "unknown key in a lookup (expected name, redis, snapshot, key, type, "
                             "fields, cache, breaker, max_value_bytes, required)");
            goto out;
        }
    }
    if (!name || !key || !fields) {
        rc = ks_node_err(item, errbuf, errsize, "a lookup needs %s",
                         !name ? "a 'name'" : !key ? "a 'key' template" : "'fields'");
        goto out;
    }
    if ((rc = ks_node_string(name, &s, errbuf, errsize)))
        goto out;
    if (!valid_name(s)) {
        rc = ks_node_err(name, errbuf, errsize,
                         "'%s': a lookup name is letters, digits and '_' (fields are "
                         "read as <name>.<field>)", s);
        goto out;
    }
    d->name = ks_xstrdup(s);
    if (redis) {
        int_key_t k[] = {{"timeout_ms", &d->timeout_ms, 1, 60000}};
        if ((rc = parse_int_map(redis, k, 1, "url", &url, errbuf, errsize)))
            goto out;
        if (!url) {
            rc = ks_node_err(redis, errbuf, errsize, "missing 'url' (redis://host:port/db)");
            goto out;
        }
        char why[256];
        if (ks_redis_url_parse(url, &d->addr, why, sizeof(why))) {
            rc = ks_node_err(redis, errbuf, errsize, "%s", why);
            goto out;
        }
        d->url = ks_xstrdup(url);
    }
    if (!redis && !snapshot) {
        rc = ks_node_err(item, errbuf, errsize,
                         "lookup '%s' needs 'redis: {url: ...}' (or 'snapshot: file.jsonl')",
                         d->name);
        goto out;
    }
    if ((rc = ks_node_string(key, &s, errbuf, errsize)))
        goto out;
    d->key_template = ks_xstrdup(s);
    if ((rc = parse_template(d, key, schema, errbuf, errsize)))
        goto out;
    if ((rc = ks_node_expect(fields, KS_NODE_MAP, errbuf, errsize)))
        goto out;
    if (fields->n_items == 0 || (d->kind == KS_LOOKUP_STRING && fields->n_items != 1)) {
        rc = ks_node_err(fields, errbuf, errsize, "%s",
                         d->kind == KS_LOOKUP_STRING
                             ? "a string lookup reads exactly one field (the whole value)"
                             : "declare at least one field to read");
        goto out;
    }
    d->fields = ks_xcalloc(fields->n_items, sizeof(ks_lookup_field_t));
    for (size_t i = 0; i < fields->n_items; i++) {
        d->n_fields++;
        if ((rc = parse_field(fields->items[i], d->kind, &d->fields[i], errbuf, errsize)))
            goto out;
    }
    if (snapshot) {
        char path[4096];
        if ((rc = ks_node_string(snapshot, &s, errbuf, errsize)))
            goto out;
        if (s[0] != '/' && base_dir && strcmp(snapshot->file, "--set") != 0)
            snprintf(path, sizeof(path), "%s/%s", base_dir, s);
        else
            snprintf(path, sizeof(path), "%s", s);
        d->snapshot = ks_xstrdup(path);
        char why[512];
        if ((rc = ks_lookup_snapshot_load(d, path, why, sizeof(why)))) {
            rc = ks_node_err(snapshot, errbuf, errsize, "%s", why);
            goto out;
        }
    }
out:
    return rc;
}

void ks_lookup_def_free(ks_lookup_def_t *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_fields; i++) {
        ks_lookup_field_t *f = &d->fields[i];
        for (int k = 0; f->path && k < f->n_path; k++)
            free(f->path[k]);
        free(f->path);
        free(f->name);
        free(f->dflt_str);
    }
    for (size_t i = 0; i < d->n_parts; i++)
        free(d->parts[i].text);
    free(d->parts);
    free(d->fields);
    free(d->name);
    free(d->url);
    free(d->snapshot);
    free(d->key_template);
    ks_lcache_free(d->snap);
    memset(d, 0, sizeof(*d));
}

int ks_lookup_render_key(const ks_lookup_def_t *d, const ks_value_t *row, ks_buf_t *out)
{
    ks_buf_reset(out);
    for (size_t i = 0; i < d->n_parts; i++) {
        const ks_key_part_t *kp = &d->parts[i];
        if (kp->field < 0) {
            ks_buf_append(out, kp->text, kp->len);
            continue;
        }
        const ks_value_t *v = &row[kp->field];
        switch (v->type) {
        case KS_VAL_STR:
            ks_buf_append(out, v->str, v->len);
            break;
        case KS_VAL_NUM:
            if (!isfinite(v->num))
                return -1;
            ks_buf_json_double(out, v->num);
            break;
        case KS_VAL_BOOL:
            ks_buf_puts(out, v->b ? "true" : "false");
            break;
        default:
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------ values ---- */

/* A text value (hash field, string value) as the field's type; 0 if it does
 * not parse as one. */
static int from_text(const ks_lookup_field_t *f, const char *s, size_t n, ks_value_t *v)
{
    if (f->type == KS_FIELD_STRING) {
        v->type = KS_VAL_STR;
        v->str = s;
        v->len = (uint32_t)n;
        return 1;
    }
    if (f->type == KS_FIELD_BOOL) {
        int t = (n == 4 && !memcmp(s, "true", 4)) || (n == 1 && s[0] == '1');
        int fl = (n == 5 && !memcmp(s, "false", 5)) || (n == 1 && s[0] == '0');
        if (!t && !fl)
            return 0;
        v->type = KS_VAL_BOOL;
        v->b = (uint8_t)t;
        return 1;
    }
    char tmp[64];
    if (n == 0 || n >= sizeof(tmp))
        return 0;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    char *end;
    errno = 0;
    double x = strtod(tmp, &end);
    if (*end || errno == ERANGE || !isfinite(x))
        return 0;
    v->type = KS_VAL_NUM;
    v->num = x;
    return 1;
}

/* A JSON node as the field's type: 1 ok, 0 absent/null (default, fine),
 * -1 wrong type (default, malformed). Hash snapshots give text or numbers. */
static int from_json(const ks_lookup_field_t *f, const ks_json_t *j, int text_ok, ks_value_t *v)
{
    switch (ks_json_type(j)) {
    case KS_JSON_NULL:
        return 0;
    case KS_JSON_NUMBER:
        if (f->type == KS_FIELD_NUMBER) {
            v->type = KS_VAL_NUM;
            v->num = j->u.num;
            return 1;
        }
        return -1;
    case KS_JSON_BOOL:
        if (f->type == KS_FIELD_BOOL) {
            v->type = KS_VAL_BOOL;
            v->b = j->boolean;
            return 1;
        }
        return -1;
    case KS_JSON_STRING:
        if (f->type == KS_FIELD_STRING || text_ok)
            return from_text(f, j->u.str, j->len, v) ? 1 : -1;
        return -1;
    default:
        return -1;
    }
}

static const ks_json_t *json_path(const ks_json_t *obj, const ks_lookup_field_t *f)
{
    for (int k = 0; obj && k < f->n_path; k++)
        obj = ks_json_get(obj, f->path[k]);
    return obj;
}

static void set_defaults(const ks_lookup_def_t *d, ks_value_t *vals)
{
    for (size_t k = 0; k < d->n_fields; k++)
        vals[k] = d->fields[k].dflt;
}

/* From a parsed value (json object, hash as object, string scalar). */
static size_t extract_json(const ks_lookup_def_t *d, const ks_json_t *root, ks_value_t *vals)
{
    size_t bad = 0;
    set_defaults(d, vals);
    if (d->kind == KS_LOOKUP_STRING) {
        int r = from_json(&d->fields[0], root, 1, &vals[0]);
        if (r < 0) {
            vals[0] = d->fields[0].dflt;
            bad++;
        }
        return bad;
    }
    if (!ks_json_is(root, KS_JSON_OBJECT))
        return d->n_fields;
    for (size_t k = 0; k < d->n_fields; k++) {
        const ks_json_t *j = d->kind == KS_LOOKUP_JSON ? json_path(root, &d->fields[k])
                                                       : ks_json_get(root, d->fields[k].name);
        if (from_json(&d->fields[k], j, d->kind == KS_LOOKUP_HASH, &vals[k]) < 0) {
            vals[k] = d->fields[k].dflt;
            bad++;
        }
    }
    return bad;
}

size_t ks_lookup_extract(const ks_lookup_def_t *d, const char *bytes, size_t len,
                         const char *const *hvals, const size_t *hlens, ks_value_t *vals,
                         ks_json_t **doc)
{
    size_t bad = 0;
    *doc = NULL;
    set_defaults(d, vals);
    if (d->kind == KS_LOOKUP_HASH) {
        for (size_t k = 0; k < d->n_fields; k++) {
            if (!hvals[k])
                continue;
            if (hlens[k] > (size_t)d->max_value_bytes ||
                !from_text(&d->fields[k], hvals[k], hlens[k], &vals[k])) {
                vals[k] = d->fields[k].dflt;
                bad++;
            }
        }
        return bad;
    }
    if (len > (size_t)d->max_value_bytes)
        return d->n_fields;
    if (d->kind == KS_LOOKUP_STRING) {
        if (!from_text(&d->fields[0], bytes, len, &vals[0])) {
            vals[0] = d->fields[0].dflt;
            bad++;
        }
        return bad;
    }
    if (ks_json_parse(bytes, len, doc, NULL, 0) != KS_OK)
        return d->n_fields;
    return extract_json(d, *doc, vals);
}

/* ---------------------------------------------------------- snapshot ---- */

enum { ST_FOUND = 1, ST_ABSENT = 2 };

int ks_lookup_snapshot_load(ks_lookup_def_t *d, const char *path, char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    char *text = NULL;
    size_t len = 0, lines = 0;
    ks_value_t *vals = ks_xcalloc(d->n_fields ? d->n_fields : 1, sizeof(ks_value_t));

    if ((rc = ks_read_file(path, &text, &len, errbuf, errsize)))
        goto out;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    d->snap = ks_lcache_new(d->n_fields, lines + 1, -1);
    size_t lineno = 0;
    for (char *p = text; p < text + len;) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        char *end = nl ? nl : text + len;
        lineno++;
        char *q = p;
        while (q < end && (*q == ' ' || *q == '\t' || *q == '\r'))
            q++;
        if (q < end) {
            ks_json_t *doc = NULL;
            char why[256];
            if (ks_json_parse(p, (size_t)(end - p), &doc, why, sizeof(why))) {
                rc = ks_err(errbuf, errsize, KS_EINVAL, "%s:%zu: %s", path, lineno, why);
                goto out;
            }
            const char *key = ks_json_str(ks_json_get(doc, "key"));
            const ks_json_t *value = ks_json_get(doc, "value");
            if (!key || !value) {
                ks_json_free(doc);
                rc = ks_err(errbuf, errsize, KS_EINVAL,
                            "%s:%zu: expected {\"key\": \"...\", \"value\": ...}", path, lineno);
                goto out;
            }
            extract_json(d, value, vals);
            ks_lcache_put(d->snap, key, ks_json_len(ks_json_get(doc, "key")), vals, ST_FOUND, 0);
            ks_json_free(doc);
        }
        p = end + 1;
    }
out:
    free(vals);
    free(text);
    return rc;
}

/* ----------------------------------------------------------- metrics ---- */

void ks_lookup_metrics_init(const ks_lookup_def_t *d, ks_lookup_metrics_t *m)
{
    const char *lv[] = {d->name};
    char server[300];
    if (d->url)
        ks_redis_addr_str(&d->addr, server, sizeof(server));
    else
        snprintf(server, sizeof(server), "snapshot");
    const char *sv[] = {server};
    m->hits = ks_metrics_counter_at(
        ks_metrics_counter("kscore_lookup_cache_hits_total",
                           "Lookup keys served from the cache.", "lookup"), lv);
    m->misses = ks_metrics_counter_at(
        ks_metrics_counter("kscore_lookup_cache_misses_total",
                           "Lookup keys not in the cache (asked of Redis, or defaulted "
                           "while it is unavailable).", "lookup"), lv);
    m->errors = ks_metrics_counter_at(
        ks_metrics_counter("kscore_lookup_errors_total",
                           "Lookup round trips that failed or timed out.", "lookup"), lv);
    m->malformed = ks_metrics_counter_at(
        ks_metrics_counter("kscore_lookup_malformed_total",
                           "Looked-up fields that took their default because the stored "
                           "value was malformed (bad JSON, wrong type, too large).", "lookup"), lv);
    m->degraded_rows = ks_metrics_counter_at(
        ks_metrics_counter("kscore_lookup_degraded_total",
                           "Events scored with a lookup's defaults because Redis was "
                           "unavailable (their outputs say \"degraded\").", "lookup"), lv);
    m->commands = ks_metrics_counter_at(
        ks_metrics_counter("kscore_lookup_commands_total", "Redis commands sent.", "lookup"), lv);
    m->no_key = ks_metrics_counter_at(
        ks_metrics_counter("kscore_lookup_no_key_total",
                           "Events whose lookup key could not be built (a template field "
                           "missing or null): defaults.", "lookup"), lv);
    m->round_trip = ks_metrics_histogram_at(
        ks_metrics_histogram("kscore_lookup_round_trip_seconds",
                             "One pipelined Redis exchange (a batch's misses on one server), "
                             "connect included.", "server", ks_buckets_latency_seconds,
                             ks_buckets_latency_seconds_n), sv);
    m->breaker_open = ks_metrics_gauge_at(
        ks_metrics_gauge("kscore_lookup_breaker_open",
                         "Worker threads whose circuit breaker for this Redis server is open "
                         "(not calling it).", "server"), sv);
    m->breaker_opens = ks_metrics_counter_at(
        ks_metrics_counter("kscore_lookup_breaker_opens_total",
                           "Times a circuit breaker for this Redis server opened.", "server"), sv);
}

/* ---------------------------------------------------------- resolver ---- */

typedef struct server {
    const ks_redis_addr_t *addr;
    ks_redis_t *conn;
    ks_breaker_t breaker;
    long long timeout_ms;   /* the smallest of its lookups' */
    const ks_lookup_metrics_t *m; /* its first lookup's (round trip, breaker) */
    int open;               /* breaker counted as open in the gauge */
} server_t;

typedef struct slot {
    const char *key;        /* in the batch arena */
    uint32_t len, hash;
    uint8_t degraded;
    uint8_t pending;        /* waiting for Redis */
} slot_t;

typedef struct lk {
    const ks_lookup_def_t *d;
    ks_lookup_metrics_t m;
    int server;             /* index, -1 for a snapshot */
    ks_lcache_t *cache;
    slot_t *slots;
    size_t n_slots, slots_cap;
    ks_value_t *vals;       /* n_slots x n_fields */
    uint32_t *table;        /* dedup: slot index + 1, 0 = empty */
    size_t table_cap;       /* power of two */
    int failed;
} lk_t;

struct ks_lookups {
    lk_t *lk;
    size_t n;
    server_t *servers;
    size_t n_servers;
    ks_arena_t arena;       /* this batch's keys and string values */
    ks_value_t *scratch;    /* one value's fields */
    struct redisReply **replies;
    size_t replies_cap;
    uint64_t commands, exchanges;
};

ks_lookups_t *ks_lookups_new(const ks_lookup_def_t *const *defs, size_t n)
{
    ks_lookups_t *t = ks_xcalloc(1, sizeof(*t));
    size_t max_fields = 1;
    t->lk = ks_xcalloc(n ? n : 1, sizeof(lk_t));
    t->servers = ks_xcalloc(n ? n : 1, sizeof(server_t));
    t->n = n;
    ks_arena_init(&t->arena, 1 << 16);
    for (size_t i = 0; i < n; i++) {
        lk_t *l = &t->lk[i];
        const ks_lookup_def_t *d = defs[i];
        l->d = d;
        ks_lookup_metrics_init(d, &l->m);
        l->cache = ks_lcache_new(d->n_fields, d->ttl_ms > 0 ? (size_t)d->max_entries : 0,
                                 d->ttl_ms);
        if (d->n_fields > max_fields)
            max_fields = d->n_fields;
        l->server = -1;
        if (d->snapshot)
            continue;
        size_t s;
        for (s = 0; s < t->n_servers; s++) {
            const ks_lookup_def_t *o = NULL;
            for (size_t j = 0; j < i; j++)
                if (t->lk[j].server == (int)s)
                    o = t->lk[j].d;
            if (o && !strcmp(o->addr.host, d->addr.host) && o->addr.port == d->addr.port &&
                o->addr.db == d->addr.db && !strcmp(o->addr.password, d->addr.password))
                break;
        }
        if (s == t->n_servers) {
            server_t *sv = &t->servers[t->n_servers++];
            sv->addr = &d->addr;
            sv->conn = ks_redis_new(&d->addr);
            ks_breaker_init(&sv->breaker, (int)d->breaker_failures, d->breaker_cooldown_ms);
            sv->timeout_ms = d->timeout_ms;
            sv->m = &l->m;
        } else if (d->timeout_ms < t->servers[s].timeout_ms) {
            t->servers[s].timeout_ms = d->timeout_ms;
        }
        l->server = (int)s;
    }
    t->scratch = ks_xcalloc(max_fields, sizeof(ks_value_t));
    return t;
}

void ks_lookups_free(ks_lookups_t *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        ks_lcache_free(t->lk[i].cache);
        free(t->lk[i].slots);
        free(t->lk[i].vals);
        free(t->lk[i].table);
    }
    for (size_t s = 0; s < t->n_servers; s++) {
        if (t->servers[s].open)
            ks_gauge_add(t->servers[s].m->breaker_open, -1);
        ks_redis_free(t->servers[s].conn);
    }
    ks_arena_free(&t->arena);
    free(t->lk);
    free(t->servers);
    free(t->scratch);
    free(t->replies);
    free(t);
}

void ks_lookups_begin(ks_lookups_t *t)
{
    ks_arena_reset(&t->arena);
    for (size_t i = 0; i < t->n; i++) {
        lk_t *l = &t->lk[i];
        if (l->n_slots)
            memset(l->table, 0, l->table_cap * sizeof(uint32_t));
        l->n_slots = 0;
        l->failed = 0;
    }
}

static void table_grow(lk_t *l)
{
    size_t cap = l->table_cap ? l->table_cap * 2 : 1024;
    free(l->table);
    l->table = ks_xcalloc(cap, sizeof(uint32_t));
    l->table_cap = cap;
    for (size_t s = 0; s < l->n_slots; s++) {
        size_t h = l->slots[s].hash & (cap - 1);
        while (l->table[h])
            h = (h + 1) & (cap - 1);
        l->table[h] = (uint32_t)s + 1;
    }
}

uint32_t ks_lookups_add(ks_lookups_t *t, size_t li, const char *key, size_t len)
{
    lk_t *l = &t->lk[li];
    uint32_t h = ks_murmur3_32(key, len, 0);
    if (2 * (l->n_slots + 1) > l->table_cap)
        table_grow(l);
    size_t i = h & (l->table_cap - 1);
    for (; l->table[i]; i = (i + 1) & (l->table_cap - 1)) {
        const slot_t *s = &l->slots[l->table[i] - 1];
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0)
            return l->table[i] - 1;
    }
    if (l->n_slots == l->slots_cap) {
        l->slots_cap = l->slots_cap ? 2 * l->slots_cap : 512;
        l->slots = ks_xrealloc(l->slots, l->slots_cap * sizeof(slot_t));
        l->vals = ks_xrealloc(l->vals, l->slots_cap * l->d->n_fields * sizeof(ks_value_t));
    }
    uint32_t si = (uint32_t)l->n_slots++;
    slot_t *s = &l->slots[si];
    char *k = ks_arena_alloc(&t->arena, len + 1);
    memcpy(k, key, len);
    k[len] = 0;
    s->key = k;
    s->len = (uint32_t)len;
    s->hash = h;
    s->degraded = 0;
    s->pending = 0;
    l->table[i] = si + 1;
    return si;
}

/* Copies values into slot s (strings into the batch arena: a cache entry
 * may be evicted while the batch still needs its strings). */
static void set_slot(ks_lookups_t *t, lk_t *l, uint32_t s, const ks_value_t *vals)
{
    ks_value_t *dst = l->vals + (size_t)s * l->d->n_fields;
    for (size_t k = 0; k < l->d->n_fields; k++) {
        dst[k] = vals[k];
        if (vals[k].type == KS_VAL_STR && vals[k].str != l->d->fields[k].dflt_str) {
            char *p = ks_arena_alloc(&t->arena, vals[k].len + 1);
            memcpy(p, vals[k].str, vals[k].len);
            p[vals[k].len] = 0;
            dst[k].str = p;
        }
    }
}

/* One reply for slot s of l: the value, cached. */
static void take_reply(ks_lookups_t *t, lk_t *l, uint32_t s, const redisReply *rep, int64_t now_ms)
{
    const ks_lookup_def_t *d = l->d;
    ks_json_t *doc = NULL;
    size_t bad = 0;
    uint8_t status = ST_FOUND;
    if (rep->type == REDIS_REPLY_NIL) {
        set_defaults(d, t->scratch);
        status = ST_ABSENT;
    } else if (d->kind == KS_LOOKUP_HASH && rep->type == REDIS_REPLY_ARRAY &&
               rep->elements == d->n_fields) {
        const char *hv[KS_LOOKUPS_MAX * 8];
        size_t hl[KS_LOOKUPS_MAX * 8];
        const char **hvp = d->n_fields <= KS_ARRAY_LEN(hv) ? hv : ks_xcalloc(d->n_fields, sizeof(char *));
        size_t *hlp = d->n_fields <= KS_ARRAY_LEN(hl) ? hl : ks_xcalloc(d->n_fields, sizeof(size_t));
        int any = 0;
        for (size_t k = 0; k < d->n_fields; k++) {
            const redisReply *e = rep->element[k];
            hvp[k] = e->type == REDIS_REPLY_STRING ? e->str : NULL;
            hlp[k] = e->type == REDIS_REPLY_STRING ? e->len : 0;
            any |= hvp[k] != NULL;
        }
        bad = ks_lookup_extract(d, NULL, 0, hvp, hlp, t->scratch, &doc);
        if (!any)
            status = ST_ABSENT;
        if (hvp != hv)
            free((void *)hvp);
        if (hlp != hl)
            free(hlp);
    } else if (d->kind != KS_LOOKUP_HASH && rep->type == REDIS_REPLY_STRING) {
        bad = ks_lookup_extract(d, rep->str, rep->len, NULL, NULL, t->scratch, &doc);
    } else {
        /* WRONGTYPE and the like: the data is wrong, not the server */
        set_defaults(d, t->scratch);
        bad = d->n_fields;
    }
    if (bad)
        ks_counter_add(l->m.malformed, bad);
    ks_lcache_put(l->cache, l->slots[s].key, l->slots[s].len, t->scratch, status, now_ms);
    set_slot(t, l, s, t->scratch);
    ks_json_free(doc);
}

/* An error reply about the server's state rather than the key's data
 * (-LOADING while a restarted Redis reads its dump, -BUSY, -MASTERDOWN,
 * -TRYAGAIN...): Redis cannot serve the key now, so its values are degraded
 * (and a required lookup waits), not malformed. WRONGTYPE is about the data. */
static int server_busy(const redisReply *rep)
{
    return rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "WRONGTYPE", 9) != 0;
}

static void degrade(ks_lookups_t *t, lk_t *l, uint32_t s)
{
    set_slot(t, l, s, (set_defaults(l->d, t->scratch), t->scratch));
    l->slots[s].degraded = 1;
    l->failed = 1;
}

static void exchange(ks_lookups_t *t, size_t si, int64_t now_ms)
{
    server_t *sv = &t->servers[si];
    size_t n = 0;
    for (size_t i = 0; i < t->n; i++) {
        lk_t *l = &t->lk[i];
        if (l->server == (int)si)
            for (size_t s = 0; s < l->n_slots; s++)
                n += l->slots[s].pending;
    }
    if (!n)
        return;
    int allowed = ks_breaker_allow(&sv->breaker, now_ms);
    int ok = 0;
    char err[256] = "";
    if (allowed) {
        if (n > t->replies_cap) {
            t->replies_cap = n;
            t->replies = ks_xrealloc(t->replies, n * sizeof(*t->replies));
        }
        /* one pipeline: every pending key of every lookup on this server */
        for (size_t i = 0; i < t->n; i++) {
            lk_t *l = &t->lk[i];
            if (l->server != (int)si)
                continue;
            size_t argc = l->d->kind == KS_LOOKUP_HASH ? 2 + l->d->n_fields : 2;
            const char *argv[2 + 256];
            size_t argl[2 + 256];
            const char **av = argc <= KS_ARRAY_LEN(argv) ? argv : ks_xcalloc(argc, sizeof(char *));
            size_t *al = argc <= KS_ARRAY_LEN(argl) ? argl : ks_xcalloc(argc, sizeof(size_t));
            av[0] = l->d->kind == KS_LOOKUP_HASH ? "HMGET" : "GET";
            al[0] = strlen(av[0]);
            for (size_t k = 0; l->d->kind == KS_LOOKUP_HASH && k < l->d->n_fields; k++) {
                av[2 + k] = l->d->fields[k].name;
                al[2 + k] = strlen(l->d->fields[k].name);
            }
            uint64_t sent = 0;
            for (size_t s = 0; s < l->n_slots; s++) {
                if (!l->slots[s].pending)
                    continue;
                av[1] = l->slots[s].key;
                al[1] = l->slots[s].len;
                ks_redis_append(sv->conn, (int)argc, av, al);
                sent++;
            }
            ks_counter_add(l->m.commands, sent);
            if (av != argv)
                free((void *)av);
            if (al != argl)
                free(al);
        }
        t->commands += n;
        t->exchanges++;
        int64_t t0 = ks_now_mono_ns();
        ok = ks_redis_exchange(sv->conn, t->replies, n, t0 + sv->timeout_ms * 1000000LL, err,
                               sizeof(err)) == KS_OK;
        ks_histogram_observe(sv->m->round_trip, (double)(ks_now_mono_ns() - t0) / 1e9);
    }
    size_t r = 0;
    for (size_t i = 0; i < t->n; i++) {
        lk_t *l = &t->lk[i];
        if (l->server != (int)si)
            continue;
        if (allowed && !ok)
            ks_counter_add(l->m.errors, 1);
        for (size_t s = 0; s < l->n_slots; s++) {
            if (!l->slots[s].pending)
                continue;
            l->slots[s].pending = 0;
            if (ok) {
                const redisReply *rep = t->replies[r];
                if (server_busy(rep)) /* e.g. -LOADING after a restart */
                    degrade(t, l, (uint32_t)s);
                else
                    take_reply(t, l, (uint32_t)s, rep, now_ms);
                ks_redis_reply_free(t->replies[r++]);
            } else {
                degrade(t, l, (uint32_t)s);
            }
        }
    }
    if (allowed) {
        char where[300];
        ks_redis_addr_str(sv->addr, where, sizeof(where));
        if (ok) {
            if (sv->breaker.state != KS_BREAKER_CLOSED)
                ks_log(KS_LOG_INFO, "lookup: Redis %s answers again; breaker closed", where);
            ks_breaker_success(&sv->breaker);
        } else if (ks_breaker_failure(&sv->breaker, now_ms)) {
            ks_counter_add(sv->m->breaker_opens, 1);
            ks_log(KS_LOG_WARN, "lookup: Redis %s unavailable (%s); breaker open: defaults "
                   "for %lld ms, then a probe", where, err, (long long)sv->breaker.cooldown_ms);
        }
    }
    int open = sv->breaker.state != KS_BREAKER_CLOSED;
    if (open != sv->open) {
        ks_gauge_add(sv->m->breaker_open, open ? 1 : -1);
        sv->open = open;
    }
}

void ks_lookups_fetch(ks_lookups_t *t)
{
    int64_t now_ms = ks_now_mono_ns() / 1000000;
    for (size_t i = 0; i < t->n; i++) {
        lk_t *l = &t->lk[i];
        uint64_t hits = 0, misses = 0;
        for (size_t s = 0; s < l->n_slots; s++) {
            slot_t *sl = &l->slots[s];
            const ks_lcache_entry_t *e =
                l->d->snap ? ks_lcache_peek(l->d->snap, sl->key, sl->len)
                           : ks_lcache_get(l->cache, sl->key, sl->len, now_ms);
            if (e) {
                hits++;
                set_slot(t, l, (uint32_t)s, e->vals);
            } else if (l->d->snap) {
                misses++;
                set_slot(t, l, (uint32_t)s, (set_defaults(l->d, t->scratch), t->scratch));
            } else {
                misses++;
                sl->pending = 1;
            }
        }
        ks_counter_add(l->m.hits, hits);
        ks_counter_add(l->m.misses, misses);
    }
    for (size_t s = 0; s < t->n_servers; s++)
        exchange(t, s, now_ms);
}

const ks_value_t *ks_lookups_values(const ks_lookups_t *t, size_t l, uint32_t s, int *degraded)
{
    const lk_t *k = &t->lk[l];
    *degraded = k->slots[s].degraded;
    return k->vals + (size_t)s * k->d->n_fields;
}

void ks_lookups_counts(const ks_lookups_t *t, uint64_t *commands, uint64_t *exchanges)
{
    *commands = t->commands;
    *exchanges = t->exchanges;
}

const ks_lookup_metrics_t *ks_lookups_metrics(const ks_lookups_t *t, size_t l)
{
    return &t->lk[l].m;
}

int ks_lookups_failed(const ks_lookups_t *t, size_t l) { return t->lk[l].failed; }
