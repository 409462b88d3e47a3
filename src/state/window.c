/*
 * window.c - window features: config parsing, the per-partition store, and
 * its changelog records (see window.h and docs/windows.md).
 *
 * Layout of the state. A key (one value of a group's key field) is a wkey_t
 * in an open-addressing table and in an LRU list; it holds its newest event
 * time and, per feature of its group, an fstate_t: for sized aggregations a
 * sorted array of non-empty buckets (the element size depends on the
 * aggregation: a count bucket is 16 bytes), for last/ewma a few scalars.
 * time_since_last reads the key's newest time and keeps nothing of its own.
 *
 * Numbers. Counts are integers; sums are exact (xsum.h), so sum and avg are
 * the correctly rounded results, equal to math.fsum offline; stddev is the
 * population standard deviation sqrt((n*S2 - S1^2) / n^2) with n*S2 - S1^2
 * computed exactly from the exact S1 and S2 (x^2 enters S2 as an exact fma
 * pair), then one division and one sqrt: within a few ulps of the true value
 * and exactly 0 for constant values. ewma keeps a weighted sum and weight
 * rescaled to the newest time (a few ulps per event, not cumulative since old
 * terms decay).
 */
#include "state/window.h"
#include "base/buf.h"
#include "base/common.h"
#include "features/murmur3.h"
#include "features/timestamp.h"
#include "state/distinct.h"
#include "state/xsum.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================ config */

static const char *const agg_names[KS_WAGG__COUNT] = {
    "count", "sum", "avg", "min", "max", "stddev", "count_distinct", "last", "time_since_last",
    "ewma",
};

const char *ks_wagg_name(ks_wagg_t a)
{
    return a < KS_WAGG__COUNT ? agg_names[a] : "?";
}

static int agg_sized(ks_wagg_t a)
{
    return a <= KS_WAGG_COUNT_DISTINCT;
}

#define DEFAULT_MAX_DISTINCT 10000

static int node_duration(ks_node_t *n, int64_t *ms, char *errbuf, size_t errsize)
{
    const char *s;
    int rc = ks_node_string(n, &s, errbuf, errsize);
    if (rc)
        return rc;
    if (ks_duration_parse(s, ms) != KS_OK)
        return ks_node_err(n, errbuf, errsize,
                           "'%s' is not a duration (a positive whole number and a unit: ms, s, "
                           "m, h or d, e.g. 90s, 5m, 1h)", s);
    return KS_OK;
}


/* A declared (not virtual) field named by a scalar node, of an accepted type. */
static int field_ref(ks_node_t *n, const ks_schema_t *schema, unsigned accepted, const char *what,
                     int *out, char *errbuf, size_t errsize)
{
    const char *name;
    int rc = ks_node_string(n, &name, errbuf, errsize);
    if (rc)
        return rc;
    int idx = ks_schema_find(schema, name);
    if (idx < 0 || (size_t)idx >= schema->n_decoded)
        return ks_node_err(n, errbuf, errsize,
                           "unknown field '%s' (declare it under input.fields)", name);
    ks_field_type_t t = schema->fields[idx].type;
    if (!(accepted & (1u << t)))
        return ks_node_err(n, errbuf, errsize, "field '%s' has type %s; %s", name,
                           ks_field_type_name(t), what);
    *out = idx;
    return KS_OK;
}

#define TBIT(t) (1u << (t))

static int group_of(ks_windows_t *w, int key_field)
{
    for (size_t g = 0; g < w->n_groups; g++)
        if (w->groups[g].key_field == key_field)
            return (int)g;
    w->groups = ks_xrealloc(w->groups, (w->n_groups + 1) * sizeof(*w->groups));
    memset(&w->groups[w->n_groups], 0, sizeof(*w->groups));
    w->groups[w->n_groups].key_field = key_field;
    return (int)w->n_groups++;
}

static int parse_window(ks_windows_t *w, ks_wfeature_t *f, ks_node_t *spec, ks_schema_t *schema,
                        char *errbuf, size_t errsize)
{
    static const char *const keys[] = {"key", "agg", "of", "size", "resolution", "half_life",
                                       "max_distinct", NULL};
    ks_node_t *key, *agg, *of, *size, *res, *hl, *md;
    const char *s;
    int rc, key_field;

    if ((rc = ks_node_expect(spec, KS_NODE_MAP, errbuf, errsize)) ||
        (rc = ks_node_check_keys(spec, keys, "a window", errbuf, errsize)))
        return rc;
    if (!(key = ks_node_get(spec, "key")))
        return ks_node_err(spec, errbuf, errsize, "a window needs 'key' (the field it is kept per)");
    if (!(agg = ks_node_get(spec, "agg")))
        return ks_node_err(spec, errbuf, errsize,
                           "a window needs 'agg' (count, sum, avg, min, max, stddev, "
                           "count_distinct, last, time_since_last or ewma)");
    if ((rc = field_ref(key, schema,
                        TBIT(KS_FIELD_STRING) | TBIT(KS_FIELD_NUMBER) | TBIT(KS_FIELD_BOOL) |
                            TBIT(KS_FIELD_ANY),
                        "a window key is a string, number, bool or any field", &key_field, errbuf,
                        errsize)) ||
        (rc = ks_node_string(agg, &s, errbuf, errsize)))
        return rc;
    for (f->agg = 0; f->agg < KS_WAGG__COUNT && strcmp(agg_names[f->agg], s) != 0; f->agg++)
        ;
    if (f->agg == KS_WAGG__COUNT)
        return ks_node_err(agg, errbuf, errsize,
                           "unknown aggregation '%s' (expected count, sum, avg, min, max, "
                           "stddev, count_distinct, last, time_since_last or ewma)", s);
    of = ks_node_get(spec, "of");
    size = ks_node_get(spec, "size");
    res = ks_node_get(spec, "resolution");
    hl = ks_node_get(spec, "half_life");
    md = ks_node_get(spec, "max_distinct");

    f->of_field = -1;
    int needs_of = f->agg != KS_WAGG_COUNT && f->agg != KS_WAGG_TIME_SINCE_LAST;
    if (needs_of && !of)
        return ks_node_err(spec, errbuf, errsize, "a %s window needs 'of' (the field it aggregates)",
                           agg_names[f->agg]);
    if (f->agg == KS_WAGG_TIME_SINCE_LAST && of)
        return ks_node_err(of, errbuf, errsize, "time_since_last takes no 'of' (it reads the time)");
    if (of) {
        int numeric = f->agg != KS_WAGG_COUNT && f->agg != KS_WAGG_COUNT_DISTINCT;
        unsigned accepted = numeric ? TBIT(KS_FIELD_NUMBER) | TBIT(KS_FIELD_BOOL)
                                    : TBIT(KS_FIELD_STRING) | TBIT(KS_FIELD_NUMBER) |
                                          TBIT(KS_FIELD_BOOL) | TBIT(KS_FIELD_ANY) |
                                          TBIT(KS_FIELD_TIMESTAMP);
        if ((rc = field_ref(of, schema, accepted,
                            numeric ? "this aggregation needs a number (or bool) field"
                                    : "this aggregation needs a scalar field",
                            &f->of_field, errbuf, errsize)))
            return rc;
    }
    if (agg_sized(f->agg)) {
        if (!size)
            return ks_node_err(spec, errbuf, errsize, "a %s window needs 'size' (e.g. 1h)",
                               agg_names[f->agg]);
        if ((rc = node_duration(size, &f->size_ms, errbuf, errsize)))
            return rc;
        if (res) {
            if ((rc = node_duration(res, &f->res_ms, errbuf, errsize)))
                return rc;
            if (f->res_ms > f->size_ms || f->size_ms % f->res_ms)
                return ks_node_err(res, errbuf, errsize,
                                   "the resolution must divide the window size (%lld ms) evenly",
                                   (long long)f->size_ms);
        } else {
            if (f->size_ms % 60)
                return ks_node_err(size, errbuf, errsize,
                                   "the default resolution is size / 60, which is not a whole "
                                   "number of milliseconds here: set 'resolution'");
            f->res_ms = f->size_ms / 60;
        }
        f->n_buckets = f->size_ms / f->res_ms;
    } else {
        if (size)
            return ks_node_err(size, errbuf, errsize, "%s has no window size", agg_names[f->agg]);
        if (res)
            return ks_node_err(res, errbuf, errsize, "%s has no resolution", agg_names[f->agg]);
    }
    if (f->agg == KS_WAGG_EWMA) {
        int64_t ms;
        if (!hl)
            return ks_node_err(spec, errbuf, errsize, "an ewma window needs 'half_life' (e.g. 1h)");
        if ((rc = node_duration(hl, &ms, errbuf, errsize)))
            return rc;
        f->half_life_ms = (double)ms;
    } else if (hl) {
        return ks_node_err(hl, errbuf, errsize, "only ewma takes a half_life");
    }
    f->max_distinct = DEFAULT_MAX_DISTINCT;
    if (md) {
        long long v;
        if (f->agg != KS_WAGG_COUNT_DISTINCT)
            return ks_node_err(md, errbuf, errsize, "only count_distinct takes max_distinct");
        if ((rc = ks_node_int(md, 1, 10000000, &v, errbuf, errsize)))
            return rc;
        f->max_distinct = (uint32_t)v;
    }

    f->group = group_of(w, key_field);
    ks_wgroup_t *g = &w->groups[f->group];
    f->of_slot = -1;
    if (f->of_field >= 0) {
        size_t k;
        for (k = 0; k < g->n_of && g->of_fields[k] != f->of_field; k++)
            ;
        if (k == g->n_of) {
            g->of_fields = ks_xrealloc(g->of_fields, (g->n_of + 1) * sizeof(int));
            g->of_fields[g->n_of++] = f->of_field;
        }
        f->of_slot = (int)k;
    }
    g->feats = ks_xrealloc(g->feats, (g->n_feats + 1) * sizeof(int));
    g->feats[g->n_feats++] = (int)(f - w->feats);
    return KS_OK;
}

static int parse_section(ks_windows_t *w, ks_node_t *sec, ks_schema_t *schema, char *errbuf,
                         size_t errsize)
{
    static const char *const keys[] = {"time", "time_unit", "grace", "key_ttl", NULL};
    ks_node_t *time, *unit, *grace, *ttl;
    const char *s;
    int rc;

    w->time_per_second = 1;
    if ((rc = ks_node_expect(sec, KS_NODE_MAP, errbuf, errsize)) ||
        (rc = ks_node_check_keys(sec, keys, "windows", errbuf, errsize)))
        return rc;
    if (!(time = ks_node_get(sec, "time")))
        return ks_node_err(sec, errbuf, errsize,
                           "windows needs 'time': an event-time field, or `processing`");
    if ((rc = ks_node_string(time, &s, errbuf, errsize)))
        return rc;
    if (strcmp(s, "processing") == 0) {
        w->time_field = -1;
    } else if ((rc = field_ref(time, schema,
                               TBIT(KS_FIELD_TIMESTAMP) | TBIT(KS_FIELD_NUMBER) |
                                   TBIT(KS_FIELD_STRING) | TBIT(KS_FIELD_ANY),
                               "the event time is a timestamp or number field", &w->time_field,
                               errbuf, errsize))) {
        return rc;
    }
    if ((unit = ks_node_get(sec, "time_unit"))) {
        static const struct { const char *name; int64_t per_second; } units[] = {
            {"s", 1}, {"ms", 1000}, {"us", 1000000}, {"ns", 1000000000},
        };
        size_t i;
        if ((rc = ks_node_string(unit, &s, errbuf, errsize)))
            return rc;
        for (i = 0; i < KS_ARRAY_LEN(units) && strcmp(units[i].name, s) != 0; i++)
            ;
        if (i == KS_ARRAY_LEN(units))
            return ks_node_err(unit, errbuf, errsize,
                               "unknown time unit '%s' (expected s, ms, us or ns)", s);
        w->time_per_second = units[i].per_second;
    }
    if ((grace = ks_node_get(sec, "grace"))) {
        if ((rc = ks_node_string(grace, &s, errbuf, errsize)))
            return rc;
        if (strcmp(s, "0") == 0)
            w->grace_ms = 0;
        else if ((rc = node_duration(grace, &w->grace_ms, errbuf, errsize)))
            return rc;
    }
    w->key_ttl_ms = -1;
    if ((ttl = ks_node_get(sec, "key_ttl")) && (rc = node_duration(ttl, &w->key_ttl_ms, errbuf, errsize)))
        return rc;
    return KS_OK;
}

int ks_windows_parse(ks_node_t *root, ks_schema_t *schema, ks_windows_t **out, char *errbuf,
                     size_t errsize)
{
    int rc = KS_OK;
    ks_node_t *sec = ks_node_get(root, "windows"), *feats = ks_node_get(root, "features");
    ks_windows_t *w = ks_xcalloc(1, sizeof(*w));

    *out = NULL;
    size_t n = 0;
    for (size_t i = 0; feats && feats->kind == KS_NODE_SEQ && i < feats->n_items; i++)
        n += feats->items[i]->kind == KS_NODE_MAP && ks_node_get(feats->items[i], "window");
    if (!n && !sec)
        goto out;
    if (!sec) {
        rc = ks_node_err(feats, errbuf, errsize,
                         "window features need a windows: section with 'time' (an event-time "
                         "field, or processing)");
        goto out;
    }
    if ((rc = parse_section(w, sec, schema, errbuf, errsize)))
        goto out;
    if (!n) {
        rc = ks_node_err(sec, errbuf, errsize,
                         "windows: is set but no feature has a window (e.g. {name: n_1h, "
                         "window: {key: user_id, agg: count, size: 1h}})");
        goto out;
    }
    w->feats = ks_xcalloc(n, sizeof(*w->feats));
    int64_t largest = 0;
    for (size_t i = 0; i < feats->n_items; i++) {
        ks_node_t *item = feats->items[i], *spec, *name;
        const char *s;
        if (item->kind != KS_NODE_MAP || !(spec = ks_node_get(item, "window")))
            continue;
        ks_wfeature_t *f = &w->feats[w->n_feats++];
        if (!(name = ks_node_get(item, "name"))) {
            rc = ks_node_err(item, errbuf, errsize, "a feature needs a 'name'");
            goto out;
        }
        if ((rc = ks_node_string(name, &s, errbuf, errsize)))
            goto out;
        f->name = ks_xstrdup(s);
        if ((rc = parse_window(w, f, spec, schema, errbuf, errsize)))
            goto out;
        if ((f->out_field = ks_schema_add_virtual(schema, s, KS_FIELD_NUMBER)) < 0) {
            rc = ks_node_err(name, errbuf, errsize,
                             "window feature '%s' has the name of a field; names must be unique",
                             s);
            goto out;
        }
        if (f->size_ms > largest)
            largest = f->size_ms;
    }
    if (w->key_ttl_ms < 0)
        w->key_ttl_ms = largest ? largest + w->grace_ms : 86400000;
    *out = w;
    w = NULL;
out:
    ks_windows_free(w);
    return rc;
}

void ks_windows_free(ks_windows_t *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_feats; i++)
        free(w->feats[i].name);
    for (size_t g = 0; g < w->n_groups; g++) {
        free(w->groups[g].feats);
        free(w->groups[g].of_fields);
    }
    free(w->feats);
    free(w->groups);
    free(w);
}

int ks_windows_event_time(const ks_windows_t *w, const ks_value_t *row, int64_t now_ms,
                          int64_t *t_ms, char *errbuf, size_t errsize)
{
    if (w->time_field < 0) {
        *t_ms = now_ms;
        return KS_OK;
    }
    const ks_value_t *v = &row[w->time_field];
    switch (v->type) {
    case KS_VAL_NUM: {
        /* the same double operations as the offline definition */
        double ms = w->time_per_second == 1      ? floor(v->num * 1000.0)
                    : w->time_per_second == 1000 ? floor(v->num)
                                                 : floor(v->num / (double)(w->time_per_second / 1000));
        if (!(fabs(ms) < 4e15)) /* ~ year 128,000: beyond any event */
            return ks_err(errbuf, errsize, KS_EINVAL, "event time %.17g is out of range", v->num);
        *t_ms = (int64_t)ms;
        return KS_OK;
    }
    case KS_VAL_STR: {
        int64_t secs;
        int32_t nanos;
        if (ks_timestamp_parse_iso8601(v->str, v->len, &secs, &nanos) != KS_OK)
            return ks_err(errbuf, errsize, KS_EINVAL,
                          "the event time is not an ISO-8601 timestamp like 2024-03-01T12:34:56Z");
        *t_ms = secs * 1000 + nanos / 1000000;
        return KS_OK;
    }
    case KS_VAL_BOOL:
        return ks_err(errbuf, errsize, KS_EINVAL, "the event time holds a bool");
    default:
        return ks_err(errbuf, errsize, KS_EINVAL, "the event time field is missing");
    }
}

/* ================================================================ state */

typedef struct wbucket {
    int64_t idx;   /* floor(t / resolution) */
    int64_t n;     /* values (or events, for count without `of`) in the bucket */
    union {
        double v;        /* min, max */
        ks_xsum_t s;     /* sum, avg, stddev: the sum */
        ks_distinct_t d; /* count_distinct */
    } a;
    ks_xsum_t s2;  /* stddev: the sum of squares */
} wbucket_t;

typedef struct fstate {
    union {
        struct { char *b; uint32_t n, cap; } bk;   /* sized: buckets, ascending idx */
        struct { double s, w; int64_t ref; } ew;   /* ewma: sums weighted at time ref */
        double last;
    } u;
    uint8_t has;
} fstate_t;

typedef struct lru {
    struct lru *prev, *next;    /* most recent first */
} lru_t;

typedef struct wkey {
    lru_t lru;                  /* first: a list node is its key */
    uint64_t hash;
    int64_t newest;             /* newest event time (valid when has_newest) */
    int32_t touched;            /* index into the batch's touched list, -1 */
    uint32_t key_len;
    uint32_t bytes;             /* accounted bytes */
    uint8_t group, has_newest;
    fstate_t st[];              /* the group's features; then the key bytes */
} wkey_t;

enum { OF_MISSING, OF_NUM, OF_STR };

typedef struct ofval {
    uint8_t tag;
    double num;
    uint64_t h;     /* OF_STR: the value's hash */
} ofval_t;

typedef struct touched {
    wkey_t *k;
    size_t pre_off, pre_len;
    int has_pre;
    int64_t first_offset, pre_stream;
    uint32_t first_ev, last_ev;
} touched_t;

typedef struct logev {
    int64_t offset, t;
    uint32_t next;   /* next event of the same key, UINT32_MAX = none */
    uint32_t ofv;    /* its values: ofv_log[ofv .. ofv + n_of) */
    uint8_t reset;   /* the key was idle-expired before this event */
} logev_t;

typedef struct slot {
    uint64_t hash;
    wkey_t *k;      /* NULL = empty */
} slot_t;

struct ks_wstore {
    const ks_windows_t *w;
    slot_t *slots;
    size_t mask, n_keys;
    lru_t lru;                  /* sentinel */
    int64_t stream;             /* newest event time in the partition */
    int has_stream;
    uint64_t max_bytes;
    int log;
    size_t sweep_pos;
    ks_wstore_stats_t stats;

    ks_buf_t kb;                /* key bytes of the event being applied */
    ofval_t *ofv;               /* its `of` values (largest group) */
    ks_xsum_t acc, acc2, acc3;
    ks_distinct_union_t uni;

    touched_t *touched;         /* changelog: keys touched in this batch */
    size_t n_touched, touched_cap;
    logev_t *ev;
    size_t n_ev, ev_cap;
    ofval_t *ofv_log;
    size_t n_ofv_log, ofv_log_cap;
    ks_buf_t pre;               /* pre-states of touched keys */
    ks_buf_t rec;               /* the record being built */
};

#define NO_EV UINT32_MAX

static size_t bucket_stride(ks_wagg_t a)
{
    switch (a) {
    case KS_WAGG_COUNT: return offsetof(wbucket_t, a);
    case KS_WAGG_MIN:
    case KS_WAGG_MAX: return offsetof(wbucket_t, a) + sizeof(double);
    case KS_WAGG_SUM:
    case KS_WAGG_AVG: return offsetof(wbucket_t, a) + sizeof(ks_xsum_t);
    case KS_WAGG_COUNT_DISTINCT: return offsetof(wbucket_t, a) + sizeof(ks_distinct_t);
    default: return sizeof(wbucket_t);
    }
}

static inline wbucket_t *bucket_at(const fstate_t *fs, size_t stride, size_t i)
{
    return (wbucket_t *)(fs->u.bk.b + i * stride);
}

static inline const ks_wfeature_t *feat_of(const ks_windows_t *w, const wkey_t *k, size_t j)
{
    return &w->feats[w->groups[k->group].feats[j]];
}

static inline const char *key_bytes_of(const ks_windows_t *w, const wkey_t *k)
{
    return (const char *)(k->st + w->groups[k->group].n_feats);
}

static void bucket_release(ks_wagg_t a, wbucket_t *b)
{
    if (a == KS_WAGG_SUM || a == KS_WAGG_AVG || a == KS_WAGG_STDDEV)
        ks_xsum_free(&b->a.s);
    if (a == KS_WAGG_STDDEV)
        ks_xsum_free(&b->s2);
    if (a == KS_WAGG_COUNT_DISTINCT)
        ks_distinct_free(&b->a.d);
}

static void fstate_clear(const ks_wfeature_t *f, fstate_t *fs)
{
    if (agg_sized(f->agg)) {
        size_t stride = bucket_stride(f->agg);
        for (uint32_t i = 0; i < fs->u.bk.n; i++)
            bucket_release(f->agg, bucket_at(fs, stride, i));
        free(fs->u.bk.b);
    }
    memset(fs, 0, sizeof(*fs));
}

static void key_clear(const ks_windows_t *w, wkey_t *k)
{
    for (size_t j = 0; j < w->groups[k->group].n_feats; j++)
        fstate_clear(feat_of(w, k, j), &k->st[j]);
    k->has_newest = 0;
    k->newest = 0;
}

/* Bytes a key holds, for the budget: its allocation, its bucket arrays and
 * their payloads, its table slot, and the allocator's overhead. */
static uint32_t key_size(const ks_windows_t *w, const wkey_t *k)
{
    size_t nf = w->groups[k->group].n_feats;
    size_t sz = sizeof(wkey_t) + nf * sizeof(fstate_t) + k->key_len + 16 + 2 * sizeof(void *);
    for (size_t j = 0; j < nf; j++) {
        const ks_wfeature_t *f = feat_of(w, k, j);
        const fstate_t *fs = &k->st[j];
        if (!agg_sized(f->agg) || !fs->u.bk.cap)
            continue;
        size_t stride = bucket_stride(f->agg);
        sz += fs->u.bk.cap * stride + 16;
        for (uint32_t i = 0; i < fs->u.bk.n; i++) {
            const wbucket_t *b = bucket_at(fs, stride, i);
            if (f->agg == KS_WAGG_SUM || f->agg == KS_WAGG_AVG || f->agg == KS_WAGG_STDDEV)
                sz += ks_xsum_bytes(&b->a.s) + 16;
            if (f->agg == KS_WAGG_STDDEV)
                sz += ks_xsum_bytes(&b->s2) + 16;
            if (f->agg == KS_WAGG_COUNT_DISTINCT)
                sz += ks_distinct_bytes(&b->a.d) + 16;
        }
    }
    return sz > UINT32_MAX ? UINT32_MAX : (uint32_t)sz;
}

static void account(ks_wstore_t *s, wkey_t *k)
{
    uint32_t now = key_size(s->w, k);
    s->stats.bytes = s->stats.bytes - k->bytes + now;
    k->bytes = now;
}

/* ---- sized windows ---- */

static void bucket_add(ks_wstore_t *s, const ks_wfeature_t *f, fstate_t *fs, int64_t t,
                       const ofval_t *v)
{
    size_t stride = bucket_stride(f->agg);
    int64_t idx = ks_timestamp_floordiv(t, f->res_ms);
    uint32_t i = fs->u.bk.n;
    while (i > 0 && bucket_at(fs, stride, i - 1)->idx > idx)
        i--;
    wbucket_t *b;
    if (i > 0 && bucket_at(fs, stride, i - 1)->idx == idx) {
        b = bucket_at(fs, stride, i - 1);
    } else {
        if (fs->u.bk.n == fs->u.bk.cap) {
            fs->u.bk.cap = fs->u.bk.cap ? fs->u.bk.cap * 2 : 1;
            fs->u.bk.b = ks_xrealloc(fs->u.bk.b, fs->u.bk.cap * stride);
        }
        memmove(fs->u.bk.b + (i + 1) * stride, fs->u.bk.b + i * stride,
                (fs->u.bk.n - i) * stride);
        fs->u.bk.n++;
        b = bucket_at(fs, stride, i);
        memset(b, 0, stride);
        b->idx = idx;
    }
    double x = v ? v->num : 0;
    switch (f->agg) {
    case KS_WAGG_COUNT:
        break;
    case KS_WAGG_SUM:
    case KS_WAGG_AVG:
        ks_xsum_add(&b->a.s, x);
        break;
    case KS_WAGG_MIN:
        if (b->n == 0 || x < b->a.v)
            b->a.v = x;
        break;
    case KS_WAGG_MAX:
        if (b->n == 0 || x > b->a.v)
            b->a.v = x;
        break;
    case KS_WAGG_STDDEV: {
        double hi, lo;
        ks_xsum_add(&b->a.s, x);
        ks_two_prod(x, x, &hi, &lo);
        ks_xsum_add(&b->s2, hi);
        ks_xsum_add(&b->s2, lo);
        break;
    }
    case KS_WAGG_COUNT_DISTINCT: {
        uint64_t h = v->tag == OF_STR ? v->h : ks_distinct_hash_number(v->num);
        s->stats.distinct_switches += (uint64_t)ks_distinct_add(&b->a.d, h, f->max_distinct);
        break;
    }
    default:
        break;
    }
    b->n++;
}

/* Forgets buckets no event can reach any more: a non-late event is at or
 * after newest - size - grace, and its window starts size - res earlier. */
static void bucket_expire(const ks_windows_t *w, const ks_wfeature_t *f, fstate_t *fs,
                          int64_t newest)
{
    size_t stride = bucket_stride(f->agg);
    int64_t horizon =
        ks_timestamp_floordiv(newest - f->size_ms - w->grace_ms, f->res_ms) - f->n_buckets + 1;
    uint32_t drop = 0;
    while (drop < fs->u.bk.n && bucket_at(fs, stride, drop)->idx < horizon)
        bucket_release(f->agg, bucket_at(fs, stride, drop++));
    if (!drop)
        return;
    memmove(fs->u.bk.b, fs->u.bk.b + drop * stride, (fs->u.bk.n - drop) * stride);
    fs->u.bk.n -= drop; /* the array stays: the key's next event needs one again */
}

static double stddev_of(ks_wstore_t *s, const ks_xsum_t *s1, const ks_xsum_t *s2, int64_t n)
{
    /* n*S2 - S1^2, exactly, then rounded once */
    double dn = (double)n, hi, lo;
    if (s1->special != 0 || isnan(s1->special) || s2->special != 0 || isnan(s2->special))
        return NAN;
    ks_xsum_clear(&s->acc3);
    const double *p1 = ks_xsum_parts(s1), *p2 = ks_xsum_parts(s2);
    for (uint32_t i = 0; i < s2->n; i++) {
        ks_two_prod(p2[i], dn, &hi, &lo);
        ks_xsum_add(&s->acc3, hi);
        ks_xsum_add(&s->acc3, lo);
    }
    for (uint32_t i = 0; i < s1->n; i++)
        for (uint32_t j = 0; j < s1->n; j++) {
            ks_two_prod(p1[i], p1[j], &hi, &lo);
            ks_xsum_add(&s->acc3, -hi);
            ks_xsum_add(&s->acc3, -lo);
        }
    double num = ks_xsum_round(&s->acc3);
    if (num < 0)
        num = 0;
    return sqrt(num / (dn * dn));
}

static double window_query(ks_wstore_t *s, const ks_wfeature_t *f, const fstate_t *fs, int64_t t)
{
    size_t stride = bucket_stride(f->agg);
    int64_t hi_idx = ks_timestamp_floordiv(t, f->res_ms), lo_idx = hi_idx - f->n_buckets + 1;
    int64_t n = 0;
    double m = NAN;
    ks_xsum_clear(&s->acc);
    ks_xsum_clear(&s->acc2);
    if (f->agg == KS_WAGG_COUNT_DISTINCT)
        ks_distinct_union_reset(&s->uni);
    for (uint32_t i = fs->u.bk.n; i > 0; i--) {
        const wbucket_t *b = bucket_at(fs, stride, i - 1);
        if (b->idx > hi_idx)
            continue;
        if (b->idx < lo_idx)
            break;
        switch (f->agg) {
        case KS_WAGG_SUM:
        case KS_WAGG_AVG:
            ks_xsum_merge(&s->acc, &b->a.s);
            break;
        case KS_WAGG_STDDEV:
            ks_xsum_merge(&s->acc, &b->a.s);
            ks_xsum_merge(&s->acc2, &b->s2);
            break;
        case KS_WAGG_MIN:
            if (n == 0 || b->a.v < m)
                m = b->a.v;
            break;
        case KS_WAGG_MAX:
            if (n == 0 || b->a.v > m)
                m = b->a.v;
            break;
        case KS_WAGG_COUNT_DISTINCT:
            ks_distinct_union_add(&s->uni, &b->a.d);
            break;
        default:
            break;
        }
        n += b->n;
    }
    switch (f->agg) {
    case KS_WAGG_COUNT: return (double)n;
    case KS_WAGG_SUM: return ks_xsum_round(&s->acc);
    case KS_WAGG_AVG: return n ? ks_xsum_round(&s->acc) / (double)n : NAN;
    case KS_WAGG_STDDEV: return n ? stddev_of(s, &s->acc, &s->acc2, n) : NAN;
    case KS_WAGG_MIN:
    case KS_WAGG_MAX: return n ? m : NAN;
    case KS_WAGG_COUNT_DISTINCT: return n ? ks_distinct_union_count(&s->uni, f->max_distinct) : 0;
    default: return NAN;
    }
}

static void ewma_add(const ks_wfeature_t *f, fstate_t *fs, int64_t t, double x)
{
    if (!fs->has) {
        fs->u.ew.s = x;
        fs->u.ew.w = 1;
        fs->u.ew.ref = t;
        fs->has = 1;
    } else if (t >= fs->u.ew.ref) {
        double decay = exp2(-(double)(t - fs->u.ew.ref) / f->half_life_ms);
        fs->u.ew.s = fs->u.ew.s * decay + x;
        fs->u.ew.w = fs->u.ew.w * decay + 1;
        fs->u.ew.ref = t;
    } else {
        double weight = exp2(-(double)(fs->u.ew.ref - t) / f->half_life_ms);
        fs->u.ew.s += x * weight;
        fs->u.ew.w += weight;
    }
}

/* One event of key k: writes the features into row (when not NULL) and
 * updates the state. Returns 1 when the event was late for a feature. */
static int key_event(ks_wstore_t *s, wkey_t *k, int64_t t, const ofval_t *ofv, ks_value_t *row)
{
    const ks_windows_t *w = s->w;
    const ks_wgroup_t *g = &w->groups[k->group];
    int has_prev = k->has_newest, any_late = 0;
    int64_t prev = k->newest, newest = has_prev && prev > t ? prev : t;

    for (size_t j = 0; j < g->n_feats; j++) {
        const ks_wfeature_t *f = &w->feats[g->feats[j]];
        fstate_t *fs = &k->st[j];
        const ofval_t *v = f->of_slot >= 0 ? &ofv[f->of_slot] : NULL;
        int present = !v || v->tag != OF_MISSING;
        double out = NAN;
        switch (f->agg) {
        case KS_WAGG_TIME_SINCE_LAST:
            if (has_prev)
                out = prev > t ? 0.0 : (double)(t - prev) / 1000.0;
            break;
        case KS_WAGG_LAST:
            if (fs->has)
                out = fs->u.last;
            if (present) {
                fs->u.last = v->num;
                fs->has = 1;
            }
            break;
        case KS_WAGG_EWMA:
            if (present)
                ewma_add(f, fs, t, v->num);
            if (fs->has)
                out = fs->u.ew.s / fs->u.ew.w;
            break;
        default: {
            int late = has_prev && t < prev - (f->size_ms + w->grace_ms);
            any_late |= late;
            if (!late && present)
                bucket_add(s, f, fs, t, v);
            if (row)
                out = window_query(s, f, fs, t);
            bucket_expire(w, f, fs, newest);
            break;
        }
        }
        if (row) {
            ks_value_t *dst = &row[f->out_field];
            if (isnan(out)) {
                dst->type = KS_VAL_MISSING;
            } else {
                dst->type = KS_VAL_NUM;
                dst->num = out;
            }
        }
    }
    k->newest = newest;
    k->has_newest = 1;
    return any_late;
}

/* ---- the key table ---- */

static uint64_t key_hash(int group, const char *kb, size_t len)
{
    /* one MurmurHash3 pass, spread to 64 bits (fmix64) */
    uint64_t h = ((uint64_t)(unsigned)group << 32) | ks_murmur3_32(kb, len, 0x2545f491u);
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h *= UINT64_C(0xc4ceb9fe1a85ec53);
    h ^= h >> 33;
    return h;
}

static size_t find_slot(const ks_wstore_t *s, int group, const char *kb, size_t len, uint64_t h)
{
    size_t i = (size_t)h & s->mask;
    for (;; i = (i + 1) & s->mask) {
        const slot_t *sl = &s->slots[i];
        if (!sl->k || (sl->hash == h && sl->k->group == group && sl->k->key_len == len &&
                       memcmp(key_bytes_of(s->w, sl->k), kb, len) == 0))
            return i;
    }
}

static void table_grow(ks_wstore_t *s)
{
    size_t ncap = s->slots ? (s->mask + 1) * 2 : 1024;
    slot_t *old = s->slots;
    size_t old_cap = s->slots ? s->mask + 1 : 0;
    s->slots = ks_xcalloc(ncap, sizeof(slot_t));
    s->mask = ncap - 1;
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].k)
            continue;
        size_t j = (size_t)old[i].hash & s->mask;
        while (s->slots[j].k)
            j = (j + 1) & s->mask;
        s->slots[j] = old[i];
    }
    free(old);
}

static void lru_unlink(wkey_t *k)
{
    k->lru.prev->next = k->lru.next;
    k->lru.next->prev = k->lru.prev;
}

static void lru_front(ks_wstore_t *s, wkey_t *k)
{
    k->lru.next = s->lru.next;
    k->lru.prev = &s->lru;
    s->lru.next->prev = &k->lru;
    s->lru.next = &k->lru;
}

static wkey_t *key_get(ks_wstore_t *s, int group, const char *kb, size_t len, int create,
                       int *created)
{
    if (!s->slots || (s->n_keys + 1) * 10 > (s->mask + 1) * 7)
        table_grow(s);
    uint64_t h = key_hash(group, kb, len);
    size_t i = find_slot(s, group, kb, len, h);
    *created = 0;
    if (s->slots[i].k || !create)
        return s->slots[i].k;
    size_t nf = s->w->groups[group].n_feats;
    wkey_t *k = ks_xcalloc(1, sizeof(wkey_t) + nf * sizeof(fstate_t) + len);
    k->hash = h;
    k->group = (uint8_t)group;
    k->key_len = (uint32_t)len;
    k->touched = -1;
    memcpy((char *)(k->st + nf), kb, len);
    s->slots[i] = (slot_t){h, k};
    s->n_keys++;
    s->stats.keys = s->n_keys;
    lru_front(s, k);
    account(s, k);
    *created = 1;
    return k;
}

/* Removes slot i (backward-shift deletion) and frees its key. */
static void key_remove_slot(ks_wstore_t *s, size_t i)
{
    wkey_t *k = s->slots[i].k;
    size_t j = i;
    for (;;) {
        j = (j + 1) & s->mask;
        if (!s->slots[j].k)
            break;
        size_t ideal = (size_t)s->slots[j].hash & s->mask;
        /* move j back to i if i lies cyclically in [ideal, j) */
        if (((j - ideal) & s->mask) >= ((j - i) & s->mask)) {
            s->slots[i] = s->slots[j];
            i = j;
        }
    }
    s->slots[i] = (slot_t){0, NULL};
    lru_unlink(k);
    key_clear(s->w, k);
    s->stats.bytes -= k->bytes;
    s->n_keys--;
    s->stats.keys = s->n_keys;
    free(k);
}

/* ---- serialization (little-endian host assumed, like the rest of kscore's records) ---- */

static void put_u8(ks_buf_t *b, uint8_t v) { ks_buf_append(b, &v, 1); }
static void put_u32(ks_buf_t *b, uint32_t v) { ks_buf_append(b, &v, 4); }
static void put_i64(ks_buf_t *b, int64_t v) { ks_buf_append(b, &v, 8); }
static void put_f64(ks_buf_t *b, double v) { ks_buf_append(b, &v, 8); }

typedef struct rd {
    const uint8_t *p, *end;
    int err;
} rd_t;

static void get(rd_t *r, void *out, size_t n)
{
    if (r->err || (size_t)(r->end - r->p) < n) {
        r->err = 1;
        memset(out, 0, n);
        return;
    }
    memcpy(out, r->p, n);
    r->p += n;
}
static uint8_t get_u8(rd_t *r) { uint8_t v; get(r, &v, 1); return v; }
static uint32_t get_u32(rd_t *r) { uint32_t v; get(r, &v, 4); return v; }
static int64_t get_i64(rd_t *r) { int64_t v; get(r, &v, 8); return v; }
static double get_f64(rd_t *r) { double v; get(r, &v, 8); return v; }

static void put_xsum(ks_buf_t *b, const ks_xsum_t *x)
{
    put_u32(b, x->n);
    ks_buf_append(b, ks_xsum_parts(x), x->n * sizeof(double));
    put_f64(b, x->special);
}

static void get_xsum(rd_t *r, ks_xsum_t *x)
{
    uint32_t n = get_u32(r);
    if (r->err || n > 4096 || (size_t)(r->end - r->p) < n * sizeof(double)) {
        r->err = 1;
        return;
    }
    for (uint32_t i = 0; i < n; i++)
        ks_xsum_add(x, get_f64(r)); /* partials re-added: the same exact value */
    x->special = get_f64(r);
}

static void key_write(const ks_windows_t *w, const wkey_t *k, ks_buf_t *b)
{
    put_u8(b, k->has_newest);
    put_i64(b, k->newest);
    for (size_t j = 0; j < w->groups[k->group].n_feats; j++) {
        const ks_wfeature_t *f = feat_of(w, k, j);
        const fstate_t *fs = &k->st[j];
        if (agg_sized(f->agg)) {
            size_t stride = bucket_stride(f->agg);
            put_u32(b, fs->u.bk.n);
            for (uint32_t i = 0; i < fs->u.bk.n; i++) {
                const wbucket_t *bk = bucket_at(fs, stride, i);
                put_i64(b, bk->idx);
                put_i64(b, bk->n);
                switch (f->agg) {
                case KS_WAGG_MIN:
                case KS_WAGG_MAX: put_f64(b, bk->a.v); break;
                case KS_WAGG_SUM:
                case KS_WAGG_AVG: put_xsum(b, &bk->a.s); break;
                case KS_WAGG_STDDEV: put_xsum(b, &bk->a.s); put_xsum(b, &bk->s2); break;
                case KS_WAGG_COUNT_DISTINCT:
                    put_u8(b, bk->a.d.hll != NULL);
                    if (bk->a.d.hll) {
                        ks_buf_append(b, bk->a.d.hll, KS_HLL_M);
                    } else {
                        put_u32(b, bk->a.d.n);
                        ks_buf_append(b, ks_distinct_hashes(&bk->a.d),
                                      bk->a.d.n * sizeof(uint64_t));
                    }
                    break;
                default: break;
                }
            }
        } else if (f->agg == KS_WAGG_LAST) {
            put_u8(b, fs->has);
            put_f64(b, fs->u.last);
        } else if (f->agg == KS_WAGG_EWMA) {
            put_u8(b, fs->has);
            put_f64(b, fs->u.ew.s);
            put_f64(b, fs->u.ew.w);
            put_i64(b, fs->u.ew.ref);
        }
    }
}

static void key_read(const ks_windows_t *w, wkey_t *k, rd_t *r)
{
    k->has_newest = get_u8(r);
    k->newest = get_i64(r);
    for (size_t j = 0; j < w->groups[k->group].n_feats && !r->err; j++) {
        const ks_wfeature_t *f = feat_of(w, k, j);
        fstate_t *fs = &k->st[j];
        if (agg_sized(f->agg)) {
            size_t stride = bucket_stride(f->agg);
            uint32_t n = get_u32(r);
            if (r->err || n > (uint32_t)(r->end - r->p) / 16) {
                r->err = 1;
                return;
            }
            fs->u.bk.b = n ? ks_xcalloc(n, stride) : NULL;
            fs->u.bk.cap = n;
            for (uint32_t i = 0; i < n && !r->err; i++) {
                wbucket_t *bk = bucket_at(fs, stride, i);
                fs->u.bk.n = i + 1;
                bk->idx = get_i64(r);
                bk->n = get_i64(r);
                if (i > 0 && bk->idx <= bucket_at(fs, stride, i - 1)->idx)
                    r->err = 1;
                switch (f->agg) {
                case KS_WAGG_MIN:
                case KS_WAGG_MAX: bk->a.v = get_f64(r); break;
                case KS_WAGG_SUM:
                case KS_WAGG_AVG: get_xsum(r, &bk->a.s); break;
                case KS_WAGG_STDDEV: get_xsum(r, &bk->a.s); get_xsum(r, &bk->s2); break;
                case KS_WAGG_COUNT_DISTINCT:
                    if (get_u8(r)) {
                        if ((size_t)(r->end - r->p) < KS_HLL_M) {
                            r->err = 1;
                            break;
                        }
                        bk->a.d.hll = ks_xmalloc(KS_HLL_M);
                        get(r, bk->a.d.hll, KS_HLL_M);
                    } else {
                        uint32_t m = get_u32(r);
                        if (r->err || m > (uint32_t)((r->end - r->p) / 8)) {
                            r->err = 1;
                            break;
                        }
                        if (m > 1) {
                            bk->a.d.u.heap = ks_xmalloc(m * sizeof(uint64_t));
                            bk->a.d.cap = m;
                        }
                        bk->a.d.n = m;
                        get(r, m > 1 ? bk->a.d.u.heap : &bk->a.d.u.one, m * sizeof(uint64_t));
                    }
                    break;
                default: break;
                }
            }
        } else if (f->agg == KS_WAGG_LAST) {
            fs->has = get_u8(r);
            fs->u.last = get_f64(r);
        } else if (f->agg == KS_WAGG_EWMA) {
            fs->has = get_u8(r);
            fs->u.ew.s = get_f64(r);
            fs->u.ew.w = get_f64(r);
            fs->u.ew.ref = get_i64(r);
        }
    }
}

#define REC_VERSION 1
enum { REC_STATE = 1, REC_DELETED = 2 };

/* ---- store ---- */

ks_wstore_t *ks_wstore_new(const ks_windows_t *w, uint64_t max_bytes, int log)
{
    ks_wstore_t *s = ks_xcalloc(1, sizeof(*s));
    size_t max_of = 1;
    s->w = w;
    s->max_bytes = max_bytes;
    s->log = log;
    s->lru.next = s->lru.prev = &s->lru;
    for (size_t g = 0; g < w->n_groups; g++)
        if (w->groups[g].n_of > max_of)
            max_of = w->groups[g].n_of;
    s->ofv = ks_xcalloc(max_of, sizeof(ofval_t));
    return s;
}

void ks_wstore_free(ks_wstore_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; s->slots && i <= s->mask; i++) {
        if (s->slots[i].k) {
            key_clear(s->w, s->slots[i].k);
            free(s->slots[i].k);
        }
    }
    free(s->slots);
    free(s->ofv);
    ks_xsum_free(&s->acc);
    ks_xsum_free(&s->acc2);
    ks_xsum_free(&s->acc3);
    ks_distinct_union_free(&s->uni);
    free(s->touched);
    free(s->ev);
    free(s->ofv_log);
    ks_buf_free(&s->kb);
    ks_buf_free(&s->pre);
    ks_buf_free(&s->rec);
    free(s);
}

const ks_wstore_stats_t *ks_wstore_stats(const ks_wstore_t *s)
{
    return &s->stats;
}

/* The key bytes of a key value: a type byte, then the string bytes, the
 * double (0 for -0) or the bool. */
static void key_of_value(ks_buf_t *kb, const ks_value_t *v)
{
    ks_buf_reset(kb);
    if (v->type == KS_VAL_STR) {
        ks_buf_putc(kb, 's');
        ks_buf_append(kb, v->str, v->len);
    } else if (v->type == KS_VAL_NUM) {
        double d = v->num == 0 ? 0.0 : v->num;
        ks_buf_putc(kb, 'n');
        ks_buf_append(kb, &d, sizeof(d));
    } else {
        ks_buf_putc(kb, 'b');
        ks_buf_putc(kb, v->b ? 1 : 0);
    }
}

static void of_values(const ks_wgroup_t *g, const ks_value_t *row, ofval_t *ofv)
{
    for (size_t i = 0; i < g->n_of; i++) {
        const ks_value_t *v = &row[g->of_fields[i]];
        ofval_t *o = &ofv[i];
        o->h = 0;
        o->num = 0;
        if (v->type == KS_VAL_NUM && !isnan(v->num)) {
            o->tag = OF_NUM;
            o->num = v->num;
        } else if (v->type == KS_VAL_BOOL) {
            o->tag = OF_NUM;
            o->num = v->b ? 1.0 : 0.0;
        } else if (v->type == KS_VAL_STR) {
            o->tag = OF_STR;
            o->h = ks_distinct_hash_bytes(v->str, v->len);
        } else {
            o->tag = OF_MISSING;
        }
    }
}

static int key_expired(const ks_wstore_t *s, const wkey_t *k)
{
    return s->has_stream && k->has_newest && k->newest < s->stream - s->w->key_ttl_ms;
}

/* Changelog: the key's first event in this batch keeps its pre-state. */
static void log_event(ks_wstore_t *s, wkey_t *k, int created, int64_t offset, int64_t t,
                      const ofval_t *ofv, size_t n_of, int reset)
{
    if (k->touched < 0) {
        if (s->n_touched == s->touched_cap) {
            s->touched_cap = s->touched_cap ? s->touched_cap * 2 : 256;
            s->touched = ks_xrealloc(s->touched, s->touched_cap * sizeof(touched_t));
        }
        touched_t *tc = &s->touched[s->n_touched];
        k->touched = (int32_t)s->n_touched++;
        tc->k = k;
        tc->has_pre = !created;
        tc->pre_off = s->pre.len;
        if (!created)
            key_write(s->w, k, &s->pre);
        tc->pre_len = s->pre.len - tc->pre_off;
        tc->first_offset = offset;
        tc->pre_stream = s->has_stream ? s->stream : INT64_MIN;
        tc->first_ev = tc->last_ev = NO_EV;
    }
    touched_t *tc = &s->touched[k->touched];
    if (s->n_ev == s->ev_cap) {
        s->ev_cap = s->ev_cap ? s->ev_cap * 2 : 1024;
        s->ev = ks_xrealloc(s->ev, s->ev_cap * sizeof(logev_t));
    }
    if (s->n_ofv_log + n_of > s->ofv_log_cap) {
        s->ofv_log_cap = (s->n_ofv_log + n_of) * 2 + 64;
        s->ofv_log = ks_xrealloc(s->ofv_log, s->ofv_log_cap * sizeof(ofval_t));
    }
    uint32_t e = (uint32_t)s->n_ev++;
    s->ev[e] = (logev_t){offset, t, NO_EV, (uint32_t)s->n_ofv_log, (uint8_t)reset};
    memcpy(s->ofv_log + s->n_ofv_log, ofv, n_of * sizeof(ofval_t));
    s->n_ofv_log += n_of;
    if (tc->last_ev == NO_EV)
        tc->first_ev = e;
    else
        s->ev[tc->last_ev].next = e;
    tc->last_ev = e;
}

int ks_wstore_apply(ks_wstore_t *s, ks_value_t *row, int64_t t_ms, int64_t offset, char *errbuf,
                    size_t errsize)
{
    const ks_windows_t *w = s->w;
    int late = 0;
    for (size_t g = 0; g < w->n_groups; g++) {
        const ks_value_t *kv = &row[w->groups[g].key_field];
        if (kv->type == KS_VAL_MISSING || kv->type == KS_VAL_NULL)
            return ks_err(errbuf, errsize, KS_EINVAL, "the window key field is %s",
                          kv->type == KS_VAL_NULL ? "null" : "missing");
    }
    for (size_t g = 0; g < w->n_groups; g++) {
        const ks_wgroup_t *grp = &w->groups[g];
        int created;
        key_of_value(&s->kb, &row[grp->key_field]);
        wkey_t *k = key_get(s, (int)g, s->kb.data, s->kb.len, 1, &created);
        of_values(grp, row, s->ofv);
        if (s->log)
            log_event(s, k, created, offset, t_ms, s->ofv, grp->n_of, 0);
        if (!created && key_expired(s, k)) {
            key_clear(w, k);
            if (s->log)
                s->ev[s->n_ev - 1].reset = 1;
        }
        late |= key_event(s, k, t_ms, s->ofv, row);
        lru_unlink(k);
        lru_front(s, k);
        account(s, k);
    }
    if (!s->has_stream || t_ms > s->stream) {
        s->stream = t_ms;
        s->has_stream = 1;
    }
    s->stats.late += (uint64_t)late;
    return KS_OK;
}

/* Starts a changelog record of key k: its key in s->kb, the value's header
 * (version, kind, stamp, the partition's newest time) in s->rec. */
static void record_begin(ks_wstore_t *s, const wkey_t *k, uint8_t kind, int64_t stamp,
                         int64_t stream)
{
    ks_buf_reset(&s->kb);
    put_u8(&s->kb, k->group);
    ks_buf_append(&s->kb, key_bytes_of(s->w, k), k->key_len);
    ks_buf_reset(&s->rec);
    put_u8(&s->rec, REC_VERSION);
    put_u8(&s->rec, kind);
    put_i64(&s->rec, stamp);
    put_i64(&s->rec, stream);
}

static void emit_deleted(ks_wstore_t *s, const wkey_t *k, int64_t stamp, ks_wstore_emit_fn emit,
                         void *opaque)
{
    if (!s->log || !emit)
        return;
    record_begin(s, k, REC_DELETED, stamp, s->has_stream ? s->stream : INT64_MIN);
    emit(opaque, s->kb.data, s->kb.len, s->rec.data, s->rec.len);
}

void ks_wstore_flush(ks_wstore_t *s, int64_t last_offset, ks_wstore_emit_fn emit, void *opaque)
{
    const ks_windows_t *w = s->w;
    size_t sweep = 1024 + 4 * s->n_touched;

    /* 1. the touched keys' records */
    for (size_t i = 0; i < s->n_touched && s->log; i++) {
        touched_t *tc = &s->touched[i];
        wkey_t *k = tc->k;
        uint32_t n_ev = 0;
        size_t n_of = w->groups[k->group].n_of;
        for (uint32_t e = tc->first_ev; e != NO_EV; e = s->ev[e].next)
            n_ev++;
        record_begin(s, k, REC_STATE, tc->first_offset, tc->pre_stream);
        put_u8(&s->rec, (uint8_t)tc->has_pre);
        ks_buf_append(&s->rec, s->pre.data + tc->pre_off, tc->pre_len);
        put_u32(&s->rec, n_ev);
        for (uint32_t e = tc->first_ev; e != NO_EV; e = s->ev[e].next) {
            const logev_t *ev = &s->ev[e];
            put_i64(&s->rec, ev->offset);
            put_i64(&s->rec, ev->t);
            put_u8(&s->rec, ev->reset);
            for (size_t o = 0; o < n_of; o++) {
                const ofval_t *v = &s->ofv_log[ev->ofv + o];
                put_u8(&s->rec, v->tag);
                if (v->tag == OF_STR)
                    ks_buf_append(&s->rec, &v->h, 8);
                else
                    put_f64(&s->rec, v->num);
            }
        }
        if (emit)
            emit(opaque, s->kb.data, s->kb.len, s->rec.data, s->rec.len);
        k->touched = -1;
    }
    s->n_touched = s->n_ev = s->n_ofv_log = 0;
    ks_buf_reset(&s->pre);

    /* 2. idle keys: a bounded sweep over the table */
    if (s->slots) {
        size_t cap = s->mask + 1;
        for (size_t n = 0; n < sweep && n < cap && s->n_keys; n++) {
            size_t i = s->sweep_pos & s->mask;
            wkey_t *k = s->slots[i].k;
            if (k && key_expired(s, k)) {
                emit_deleted(s, k, last_offset, emit, opaque);
                key_remove_slot(s, i); /* a shifted key may now sit at i: look again */
                s->stats.evicted_idle++;
                continue;
            }
            s->sweep_pos = (i + 1) & s->mask;
        }
    }

    /* 3. the budget: least recently used first */
    while (s->max_bytes && s->stats.bytes > s->max_bytes && s->lru.prev != &s->lru) {
        wkey_t *k = (wkey_t *)s->lru.prev;
        const char *kb = key_bytes_of(w, k);
        size_t i = find_slot(s, k->group, kb, k->key_len, k->hash);
        emit_deleted(s, k, last_offset, emit, opaque);
        key_remove_slot(s, i);
        s->stats.evicted_budget++;
    }
}

int ks_wstore_restore(ks_wstore_t *s, const void *key, size_t klen, const void *val, size_t vlen,
                      int64_t committed)
{
    const ks_windows_t *w = s->w;
    rd_t r = {val, (const uint8_t *)val + vlen, 0};
    const uint8_t *kp = key;
    if (klen < 2 || kp[0] >= w->n_groups || !val)
        return KS_EINVAL;
    int group = kp[0];
    const char *kb = (const char *)kp + 1;
    size_t kl = klen - 1;
    if (get_u8(&r) != REC_VERSION)
        return KS_EINVAL;
    uint8_t kind = get_u8(&r);
    int64_t stamp = get_i64(&r), stream = get_i64(&r);
    if (r.err || (kind != REC_STATE && kind != REC_DELETED))
        return KS_EINVAL;
    if (stamp >= committed)
        return 1;
    if (stream != INT64_MIN && (!s->has_stream || stream > s->stream)) {
        s->stream = stream;
        s->has_stream = 1;
    }
    int created;
    wkey_t *k = key_get(s, group, kb, kl, 0, &created);
    if (kind == REC_DELETED) {
        if (k)
            key_remove_slot(s, find_slot(s, group, kb, kl, k->hash));
        return KS_OK;
    }
    if (!k)
        k = key_get(s, group, kb, kl, 1, &created);
    key_clear(w, k);
    if (get_u8(&r))
        key_read(w, k, &r);
    const ks_wgroup_t *g = &w->groups[group];
    uint32_t n_ev = get_u32(&r);
    uint64_t late = s->stats.late, switches = s->stats.distinct_switches;
    for (uint32_t e = 0; e < n_ev && !r.err; e++) {
        int64_t offset = get_i64(&r), t = get_i64(&r);
        uint8_t reset = get_u8(&r);
        for (size_t o = 0; o < g->n_of; o++) {
            ofval_t *v = &s->ofv[o];
            v->tag = get_u8(&r);
            if (v->tag == OF_STR) {
                get(&r, &v->h, 8);
            } else {
                v->num = get_f64(&r);
                if (v->tag != OF_NUM && v->tag != OF_MISSING)
                    r.err = 1;
            }
        }
        if (r.err || offset >= committed)
            break;
        if (reset)
            key_clear(w, k);
        key_event(s, k, t, s->ofv, NULL);
        if (t > s->stream || !s->has_stream) {
            s->stream = t;
            s->has_stream = 1;
        }
    }
    s->stats.late = late;
    s->stats.distinct_switches = switches;
    if (r.err) {
        key_remove_slot(s, find_slot(s, group, kb, kl, k->hash));
        return KS_EINVAL;
    }
    account(s, k);
    return KS_OK;
}

/* ---- snapshots (state/snapshot.h writes and reads the files) ---- */

void ks_wstore_each(ks_wstore_t *s, int64_t stamp, ks_wstore_emit_fn emit, void *opaque)
{
    const ks_windows_t *w = s->w;
    /* least recently used first: restoring in this order (each key goes to
     * the front) rebuilds the same LRU order */
    for (const lru_t *l = s->lru.prev; l != &s->lru; l = l->prev) {
        const wkey_t *k = (const wkey_t *)l;
        record_begin(s, k, REC_STATE, stamp, s->has_stream ? s->stream : INT64_MIN);
        put_u8(&s->rec, 1);
        key_write(w, k, &s->rec);
        put_u32(&s->rec, 0); /* no events: the record is the full state */
        emit(opaque, s->kb.data, s->kb.len, s->rec.data, s->rec.len);
    }
}

static void fp_str(ks_buf_t *b, const char *s)
{
    ks_buf_append(b, s, strlen(s) + 1);
}

uint64_t ks_windows_fingerprint(const ks_windows_t *w, const ks_schema_t *schema)
{
    ks_buf_t b = {0};
    put_u32(&b, REC_VERSION);
    fp_str(&b, w->time_field >= 0 ? schema->fields[w->time_field].name : "(processing)");
    put_i64(&b, w->time_per_second);
    put_i64(&b, w->grace_ms);
    put_i64(&b, w->key_ttl_ms);
    for (size_t g = 0; g < w->n_groups; g++) {
        const ks_wgroup_t *grp = &w->groups[g];
        fp_str(&b, schema->fields[grp->key_field].name);
        put_u32(&b, (uint32_t)grp->n_feats);
        for (size_t j = 0; j < grp->n_feats; j++)
            put_u32(&b, (uint32_t)grp->feats[j]);
        put_u32(&b, (uint32_t)grp->n_of);
        for (size_t o = 0; o < grp->n_of; o++)
            fp_str(&b, schema->fields[grp->of_fields[o]].name);
    }
    for (size_t i = 0; i < w->n_feats; i++) {
        const ks_wfeature_t *f = &w->feats[i];
        fp_str(&b, f->name);
        put_u32(&b, (uint32_t)f->agg);
        put_u32(&b, (uint32_t)f->group);
        put_u32(&b, (uint32_t)(f->of_slot + 1));
        put_i64(&b, f->size_ms);
        put_i64(&b, f->res_ms);
        put_f64(&b, f->half_life_ms);
        put_u32(&b, f->max_distinct);
    }
    uint64_t h = ((uint64_t)ks_murmur3_32(b.data, b.len, 0x6b73636fu) << 32) |
                 ks_murmur3_32(b.data, b.len, 0x77736e70u);
    ks_buf_free(&b);
    return h;
}
