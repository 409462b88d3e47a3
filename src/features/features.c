/*
 * features.c - the `features:` section: parsing and validating the feature
 * list at start-up, and computing the feature vector of one event on the hot
 * path. The user-facing reference is docs/features.md; in short:
 *
 *   - {name: amount, expr: amount}                 expression (expr.h)
 *   - amount                                       shorthand for the line above
 *   - {name: mcc_idx, map: {field: mcc, values: {grocery: 0, travel: 1}, default: -1}}
 *   - {name: mcc, onehot: {field: mcc, values: [grocery, travel]}}
 *   - {name: user_bucket, hash: {field: user_id, buckets: 1024, seed: 0}}
 *   - {name: hour, hour_of_day: ts}                or {field: ts, unit: ms}
 *   - {name: dow, day_of_week: ts}                 Monday = 0
 *   - {name: n_1h, window: {key: user_id, agg: count, size: 1h}}
 *                                                  a window feature (docs/windows.md)
 *   - any feature but onehot: `default: 0` replaces a NaN result
 *
 * Every kind is a row of `kinds[]`: its YAML key, a parse function that
 * validates its spec (with file:line errors) and precomputes what the hot path
 * needs, and a compute function that writes the feature's columns for one
 * event. Adding a kind is adding a row and two functions; nothing else here
 * switches on the kind.
 *
 * Hot path (ks_features_compute): one indirect call per feature, no
 * allocation. `map`/`onehot` look categories up in a hash table built at parse
 * time (strings), a sorted array (numbers) or two slots (bools); `hash` runs
 * MurmurHash3 over the bytes once; timestamps are parsed without libc time
 * functions. Errors are only for events that carry a wrong type (a string
 * where a number is needed, a bool as a timestamp, an unparseable ISO-8601
 * string); missing and null values become NaN, then the feature's default.
 */
#include "features/features.h"
#include "base/common.h"
#include "features/expr.h"
#include "features/murmur3.h"
#include "features/strtab.h"
#include "features/timestamp.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- types */

/* Category lookup for map/onehot: index of a listed value, by value type. */
typedef struct numkey {
    double key;
    uint32_t index;
} numkey_t;

typedef struct category_table {
    ks_strtab_t strings;     /* string values (all keys for string/any fields) */
    numkey_t *numbers;       /* sorted; keys that read as numbers */
    size_t n_numbers;
    int32_t bools[2];        /* index of false / true, -1 if not listed */
} category_table_t;

typedef struct feature feature_t;

typedef struct kind_ops {
    const char *key;         /* YAML key naming the kind */
    int allows_default;
    int (*parse)(feature_t *f, ks_node_t *spec, const ks_schema_t *schema, char *errbuf,
                 size_t errsize);
    int (*compute)(const feature_t *f, const ks_value_t *fields, double *out, char *errbuf,
                   size_t errsize);
    void (*free)(feature_t *f);
} kind_ops_t;

struct feature {
    const kind_ops_t *kind;
    char *name;
    size_t col;              /* first output column */
    size_t n_cols;
    int has_default;
    double dflt;
    ks_node_t *node;         /* the spec (start-up only, for error messages) */

    /* the input field of map/onehot/hash/time features */
    int field;
    char *field_name;

    ks_expr_t *expr;         /* expr */
    category_table_t cats;   /* map, onehot */
    char **cat_names;        /* onehot: the listed values, for column names */
    double *map_values;      /* map: value per category index */
    int has_unknown;         /* map: `default` for an unlisted or missing category */
    double unknown;
    uint64_t buckets;        /* hash */
    uint32_t seed;
    int64_t per_second;      /* time: units of a numeric timestamp per second */
};

struct ks_features {
    feature_t *feats;
    size_t n_feats;
    char **col_names;
    size_t n_cols;
};

/* ---------------------------------------------------------------- helpers */

static const char *field_type_name(ks_field_type_t t)
{
    switch (t) {
    case KS_FIELD_NUMBER: return "number";
    case KS_FIELD_STRING: return "string";
    case KS_FIELD_BOOL: return "bool";
    case KS_FIELD_TIMESTAMP: return "timestamp";
    case KS_FIELD_ANY: return "any";
    }
    return "?";
}

static int find_field(const ks_schema_t *s, const char *name)
{
    for (size_t i = 0; s && i < s->n_fields; i++)
        if (strcmp(s->fields[i].name, name) == 0)
            return (int)i;
    return -1;
}


/* Reads the required `field:` of a kind spec and checks its declared type
 * against `accepted` (a bit per ks_field_type_t). */
static int parse_field_ref(feature_t *f, ks_node_t *node, const ks_schema_t *schema,
                           unsigned accepted, const char *kind, char *errbuf, size_t errsize)
{
    const char *name;
    int rc = ks_node_string(node, &name, errbuf, errsize);
    if (rc)
        return rc;
    int idx = find_field(schema, name);
    if (idx < 0)
        return ks_node_err(node, errbuf, errsize,
                           "unknown field '%s' (declare it under input.fields)", name);
    ks_field_type_t t = schema->fields[idx].type;
    if (!(accepted & (1u << t))) {
        char list[128];
        size_t len = 0;
        list[0] = '\0';
        for (unsigned k = 0; k <= KS_FIELD_ANY; k++)
            if (accepted & (1u << k))
                len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", len ? ", " : "",
                                        field_type_name((ks_field_type_t)k));
        return ks_node_err(node, errbuf, errsize,
                           "field '%s' has type %s; a %s feature needs a field of type %s", name,
                           field_type_name(t), kind, list);
    }
    f->field = idx;
    f->field_name = ks_xstrdup(name);
    return KS_OK;
}

#define TYPE_BIT(t) (1u << (t))

/* A printable, bounded rendering of event bytes for error messages. */
static void show_bytes(const char *s, size_t len, char *buf, size_t size)
{
    size_t n = len < size - 4 ? len : size - 4;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = (c >= 0x20 && c < 0x7f && c != '"') ? (char)c : '?';
    }
    strcpy(buf + n, len > n ? "..." : "");
}

/* ---------------------------------------------------------------- categories */

static int cmp_numkey(const void *a, const void *b)
{
    double x = ((const numkey_t *)a)->key, y = ((const numkey_t *)b)->key;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* Reads a category as a finite number ("3", "2.5", "-1e3"), or fails. */
static int category_number(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!s[0] || *end || errno == ERANGE || !isfinite(v))
        return 0;
    *out = v == 0 ? 0.0 : v; /* -0 and 0 are one category */
    return 1;
}

/* Adds listed category number `index` (text `s`, from node `n`) to the table,
 * under the field's type: a string field matches text, a number field numbers,
 * a bool field true/false; an `any` field matches whichever the event holds. */
static int category_add(category_table_t *t, ks_field_type_t type, ks_node_t *n,
                        const char *s, uint32_t index, const char *field, char *errbuf,
                        size_t errsize)
{
    int matched = 0;
    if (type == KS_FIELD_STRING || type == KS_FIELD_ANY) {
        if (ks_strtab_add(&t->strings, s, strlen(s), index) != KS_OK)
            return ks_node_err(n, errbuf, errsize, "'%s' is listed twice", s);
        matched = 1;
    }
    double v;
    if ((type == KS_FIELD_NUMBER || type == KS_FIELD_ANY) && category_number(s, &v)) {
        for (size_t i = 0; i < t->n_numbers; i++)
            if (t->numbers[i].key == v)
                return ks_node_err(n, errbuf, errsize, "%s is listed twice (as the number %.17g)",
                                   s, v);
        t->numbers[t->n_numbers++] = (numkey_t){v, index};
        matched = 1;
    }
    if (type == KS_FIELD_BOOL || type == KS_FIELD_ANY) {
        int b = strcmp(s, "true") == 0 ? 1 : strcmp(s, "false") == 0 ? 0 : -1;
        if (b >= 0) {
            if (t->bools[b] >= 0)
                return ks_node_err(n, errbuf, errsize, "'%s' is listed twice", s);
            t->bools[b] = (int32_t)index;
            matched = 1;
        }
    }
    if (!matched)
        return ks_node_err(n, errbuf, errsize, "'%s' can never match field '%s' of type %s", s,
                           field, type == KS_FIELD_NUMBER ? "number" : "bool");
    return KS_OK;
}

static void category_init(category_table_t *t, size_t n)
{
    ks_strtab_init(&t->strings, n);
    t->numbers = ks_xcalloc(n, sizeof(*t->numbers));
    t->n_numbers = 0;
    t->bools[0] = t->bools[1] = -1;
}

static void category_finish(category_table_t *t)
{
    qsort(t->numbers, t->n_numbers, sizeof(*t->numbers), cmp_numkey);
}

static void category_free(category_table_t *t)
{
    ks_strtab_free(&t->strings);
    free(t->numbers);
    t->numbers = NULL;
}

/* Index of the event's value among the listed categories, or -1 (unlisted,
 * missing or null). Binary search for numbers; NaN matches nothing. */
static int64_t category_find(const category_table_t *t, const ks_value_t *v)
{
    uint32_t idx;
    switch (v->type) {
    case KS_VAL_STR:
        return t->strings.slots && ks_strtab_find(&t->strings, v->str, v->len, &idx) ? (int64_t)idx : -1;
    case KS_VAL_NUM: {
        size_t lo = 0, hi = t->n_numbers;
        double x = v->num;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (t->numbers[mid].key < x)
                lo = mid + 1;
            else
                hi = mid;
        }
        return lo < t->n_numbers && t->numbers[lo].key == x ? (int64_t)t->numbers[lo].index : -1;
    }
    case KS_VAL_BOOL:
        return t->bools[v->b ? 1 : 0];
    default:
        return -1;
    }
}

#define CATEGORY_TYPES \
    (TYPE_BIT(KS_FIELD_STRING) | TYPE_BIT(KS_FIELD_NUMBER) | TYPE_BIT(KS_FIELD_BOOL) | \
     TYPE_BIT(KS_FIELD_ANY))

/* ---------------------------------------------------------------- expr */

static int expr_parse(feature_t *f, ks_node_t *spec, const ks_schema_t *schema, char *errbuf,
                      size_t errsize)
{
    const char *text;
    char msg[300];
    int rc = ks_node_string(spec, &text, errbuf, errsize);
    if (rc)
        return rc;
    if (ks_expr_compile(text, schema, &f->expr, msg, sizeof(msg)) != KS_OK)
        return ks_node_err(spec, errbuf, errsize, "%s", msg);
    return KS_OK;
}

static int expr_compute(const feature_t *f, const ks_value_t *fields, double *out,
                        char *errbuf, size_t errsize)
{
    return ks_expr_eval(f->expr, fields, out, errbuf, errsize);
}

static void expr_free(feature_t *f)
{
    ks_expr_free(f->expr);
}

/* ---------------------------------------------------------------- map */

static int map_parse(feature_t *f, ks_node_t *spec, const ks_schema_t *schema, char *errbuf,
                     size_t errsize)
{
    static const char *const keys[] = {"field", "values", "default", NULL};
    int rc;
    ks_node_t *field, *values, *dflt;

    if ((rc = ks_node_expect(spec, KS_NODE_MAP, errbuf, errsize)) ||
        (rc = ks_node_check_keys(spec, keys, "map", errbuf, errsize)))
        return rc;
    if (!(field = ks_node_get(spec, "field")))
        return ks_node_err(spec, errbuf, errsize, "a map feature needs 'field'");
    if (!(values = ks_node_get(spec, "values")))
        return ks_node_err(spec, errbuf, errsize,
                           "a map feature needs 'values' (category: number, ...)");
    if ((rc = parse_field_ref(f, field, schema, CATEGORY_TYPES, "map", errbuf, errsize)) ||
        (rc = ks_node_expect(values, KS_NODE_MAP, errbuf, errsize)))
        return rc;
    if (values->n_items == 0)
        return ks_node_err(values, errbuf, errsize, "lists no values");
    if ((dflt = ks_node_get(spec, "default"))) {
        if ((rc = ks_node_double(dflt, &f->unknown, errbuf, errsize)))
            return rc;
        f->has_unknown = 1;
    }
    f->map_values = ks_xcalloc(values->n_items, sizeof(double));
    category_init(&f->cats, values->n_items);
    for (size_t i = 0; i < values->n_items; i++) {
        ks_node_t *v = values->items[i];
        if ((rc = ks_node_double(v, &f->map_values[i], errbuf, errsize)) ||
            (rc = category_add(&f->cats, schema->fields[f->field].type, v, v->key, (uint32_t)i,
                               f->field_name, errbuf, errsize)))
            return rc;
    }
    category_finish(&f->cats);
    return KS_OK;
}

static int map_compute(const feature_t *f, const ks_value_t *fields, double *out, char *errbuf,
                       size_t errsize)
{
    /* like pandas' df[field].map(values).fillna(default): a missing or null
     * category is not listed either */
    int64_t idx = category_find(&f->cats, &fields[f->field]);
    *out = idx >= 0 ? f->map_values[idx] : f->has_unknown ? f->unknown : NAN;
    return KS_OK;
}

static void map_free(feature_t *f)
{
    category_free(&f->cats);
    free(f->map_values);
}

/* ---------------------------------------------------------------- onehot */

static int onehot_parse(feature_t *f, ks_node_t *spec, const ks_schema_t *schema, char *errbuf,
                        size_t errsize)
{
    static const char *const keys[] = {"field", "values", NULL};
    int rc;
    ks_node_t *field, *values;

    if ((rc = ks_node_expect(spec, KS_NODE_MAP, errbuf, errsize)) ||
        (rc = ks_node_check_keys(spec, keys, "onehot", errbuf, errsize)))
        return rc;
    if (!(field = ks_node_get(spec, "field")))
        return ks_node_err(spec, errbuf, errsize, "a onehot feature needs 'field'");
    if (!(values = ks_node_get(spec, "values")))
        return ks_node_err(spec, errbuf, errsize,
                           "a onehot feature needs 'values' (a list of categories)");
    if ((rc = parse_field_ref(f, field, schema, CATEGORY_TYPES, "onehot", errbuf, errsize)) ||
        (rc = ks_node_expect(values, KS_NODE_SEQ, errbuf, errsize)))
        return rc;
    if (values->n_items == 0)
        return ks_node_err(values, errbuf, errsize, "lists no values");
    f->n_cols = values->n_items;
    f->cat_names = ks_xcalloc(values->n_items, sizeof(char *));
    category_init(&f->cats, values->n_items);
    for (size_t i = 0; i < values->n_items; i++) {
        ks_node_t *v = values->items[i];
        const char *s;
        if ((rc = ks_node_string(v, &s, errbuf, errsize)) ||
            (rc = category_add(&f->cats, schema->fields[f->field].type, v, s, (uint32_t)i,
                               f->field_name, errbuf, errsize)))
            return rc;
        f->cat_names[i] = ks_xstrdup(s);
    }
    category_finish(&f->cats);
    return KS_OK;
}

static int onehot_compute(const feature_t *f, const ks_value_t *fields, double *out,
                          char *errbuf, size_t errsize)
{
    for (size_t i = 0; i < f->n_cols; i++)
        out[i] = 0.0;
    int64_t idx = category_find(&f->cats, &fields[f->field]);
    if (idx >= 0)
        out[idx] = 1.0;
    return KS_OK;
}

static void onehot_free(feature_t *f)
{
    category_free(&f->cats);
    for (size_t i = 0; f->cat_names && i < f->n_cols; i++)
        free(f->cat_names[i]);
    free(f->cat_names);
}

/* ---------------------------------------------------------------- hash */

static int hash_parse(feature_t *f, ks_node_t *spec, const ks_schema_t *schema, char *errbuf,
                      size_t errsize)
{
    static const char *const keys[] = {"field", "buckets", "seed", NULL};
    int rc;
    ks_node_t *field, *buckets, *seed;
    long long v;

    if ((rc = ks_node_expect(spec, KS_NODE_MAP, errbuf, errsize)) ||
        (rc = ks_node_check_keys(spec, keys, "hash", errbuf, errsize)))
        return rc;
    if (!(field = ks_node_get(spec, "field")))
        return ks_node_err(spec, errbuf, errsize, "a hash feature needs 'field'");
    if (!(buckets = ks_node_get(spec, "buckets")))
        return ks_node_err(spec, errbuf, errsize, "a hash feature needs 'buckets'");
    if ((rc = parse_field_ref(f, field, schema,
                              TYPE_BIT(KS_FIELD_STRING) | TYPE_BIT(KS_FIELD_ANY), "hash", errbuf,
                              errsize)) ||
        (rc = ks_node_int(buckets, 1, 4294967296LL, &v, errbuf, errsize)))
        return rc;
    f->buckets = (uint64_t)v;
    if ((seed = ks_node_get(spec, "seed"))) {
        if ((rc = ks_node_int(seed, 0, 4294967295LL, &v, errbuf, errsize)))
            return rc;
        f->seed = (uint32_t)v;
    }
    return KS_OK;
}

static int hash_compute(const feature_t *f, const ks_value_t *fields, double *out,
                        char *errbuf, size_t errsize)
{
    const ks_value_t *v = &fields[f->field];
    if (KS_LIKELY(v->type == KS_VAL_STR)) {
        *out = (double)(ks_murmur3_32(v->str, v->len, f->seed) % f->buckets);
        return KS_OK;
    }
    if (v->type == KS_VAL_MISSING || v->type == KS_VAL_NULL) {
        *out = NAN;
        return KS_OK;
    }
    return ks_err(errbuf, errsize, KS_EINVAL, "field '%s' holds a %s; hashing needs a string",
                  f->field_name, v->type == KS_VAL_NUM ? "number" : "bool");
}

/* ---------------------------------------------------------------- time */

#define TIME_TYPES \
    (TYPE_BIT(KS_FIELD_TIMESTAMP) | TYPE_BIT(KS_FIELD_NUMBER) | TYPE_BIT(KS_FIELD_STRING) | \
     TYPE_BIT(KS_FIELD_ANY))

/* Seconds since 1970 at year 0000-01-01 and after 9999-12-31: the accepted range. */
#define MIN_EPOCH_SECONDS (-62167219200LL)
#define MAX_EPOCH_SECONDS 253402300799LL

static int time_parse(feature_t *f, ks_node_t *spec, const ks_schema_t *schema, char *errbuf,
                      size_t errsize)
{
    static const char *const keys[] = {"field", "unit", NULL};
    int rc;
    ks_node_t *field = spec, *unit = NULL;

    f->per_second = 1;
    if (spec->kind == KS_NODE_MAP) {
        if ((rc = ks_node_expect(spec, KS_NODE_MAP, errbuf, errsize)) ||
            (rc = ks_node_check_keys(spec, keys, f->kind->key, errbuf, errsize)))
            return rc;
        if (!(field = ks_node_get(spec, "field")))
            return ks_node_err(spec, errbuf, errsize, "needs 'field'");
        unit = ks_node_get(spec, "unit");
    }
    if ((rc = parse_field_ref(f, field, schema, TIME_TYPES, f->kind->key, errbuf, errsize)))
        return rc;
    if (unit) {
        static const struct { const char *name; int64_t per_second; } units[] = {
            {"s", 1}, {"ms", 1000}, {"us", 1000000}, {"ns", 1000000000},
        };
        const char *u;
        if ((rc = ks_node_string(unit, &u, errbuf, errsize)))
            return rc;
        size_t i;
        for (i = 0; i < KS_ARRAY_LEN(units) && strcmp(u, units[i].name) != 0; i++)
            ;
        if (i == KS_ARRAY_LEN(units))
            return ks_node_err(unit, errbuf, errsize, "unknown unit '%s' (expected s, ms, us or ns)",
                               u);
        f->per_second = units[i].per_second;
    }
    return KS_OK;
}

/* The event's timestamp as whole seconds since the epoch (floored), or
 * *missing = 1. Numbers are epoch counts in the feature's unit; strings are
 * ISO-8601. */
static int time_seconds(const feature_t *f, const ks_value_t *v, int64_t *secs, int *missing,
                        char *errbuf, size_t errsize)
{
    char shown[48];
    *missing = 0;
    switch (v->type) {
    case KS_VAL_NUM: {
        double t = v->num;
        if (!isfinite(t)) {
            *missing = 1;
            return KS_OK;
        }
        double s = floor(t / (double)f->per_second);
        if (!(s >= (double)MIN_EPOCH_SECONDS && s <= (double)MAX_EPOCH_SECONDS))
            return ks_err(errbuf, errsize, KS_EINVAL,
                          "field '%s': %.17g is out of range as an epoch timestamp in %s",
                          f->field_name, t,
                          f->per_second == 1 ? "seconds" : f->per_second == 1000 ? "milliseconds"
                          : f->per_second == 1000000 ? "microseconds" : "nanoseconds");
        if (t == floor(t) && fabs(t) < 9.2e18) /* exact integer arithmetic */
            *secs = ks_timestamp_floordiv((int64_t)t, f->per_second);
        else
            *secs = (int64_t)s;
        return KS_OK;
    }
    case KS_VAL_STR: {
        int32_t nanos;
        if (ks_timestamp_parse_iso8601(v->str, v->len, secs, &nanos) == KS_OK)
            return KS_OK;
        show_bytes(v->str, v->len, shown, sizeof(shown));
        return ks_err(errbuf, errsize, KS_EINVAL,
                      "field '%s': \"%s\" is not an ISO-8601 timestamp like "
                      "2024-03-01T12:34:56Z", f->field_name, shown);
    }
    case KS_VAL_BOOL:
        return ks_err(errbuf, errsize, KS_EINVAL, "field '%s' holds a bool, not a timestamp",
                      f->field_name);
    default:
        *missing = 1;
        return KS_OK;
    }
}

static int hour_compute(const feature_t *f, const ks_value_t *fields, double *out, char *errbuf,
                        size_t errsize)
{
    int64_t secs = 0;
    int missing;
    int rc = time_seconds(f, &fields[f->field], &secs, &missing, errbuf, errsize);
    if (rc == KS_OK) {
        int64_t sod = secs - ks_timestamp_floordiv(secs, 86400) * 86400;
        *out = missing ? NAN : (double)(sod / 3600);
    }
    return rc;
}

static int dow_compute(const feature_t *f, const ks_value_t *fields, double *out, char *errbuf,
                       size_t errsize)
{
    int64_t secs = 0;
    int missing;
    int rc = time_seconds(f, &fields[f->field], &secs, &missing, errbuf, errsize);
    if (rc == KS_OK) {
        /* 1970-01-01 was a Thursday: Monday = 0 puts it at 3 */
        int64_t days = ks_timestamp_floordiv(secs, 86400) + 3;
        *out = missing ? NAN : (double)(days - ks_timestamp_floordiv(days, 7) * 7);
    }
    return rc;
}

static void no_free(feature_t *f)
{
}

/* ---------------------------------------------------------------- window */

/* A window feature is computed by the windows stage (engine/stages/windows.c,
 * state/window.h), which parses its spec before the features and adds a
 * virtual field of the feature's name; here it is a reference to that field. */
static int window_parse(feature_t *f, ks_node_t *spec, const ks_schema_t *schema, char *errbuf,
                        size_t errsize)
{
    int idx = find_field(schema, f->name);
    if (idx < 0 || (size_t)idx < schema->n_decoded)
        return ks_node_err(spec, errbuf, errsize,
                           "window feature '%s' has no value: window features are computed by "
                           "the windows stage, which this pipeline does not run", f->name);
    f->field = idx;
    return KS_OK;
}

static int window_compute(const feature_t *f, const ks_value_t *fields, double *out,
                          char *errbuf, size_t errsize)
{
    const ks_value_t *v = &fields[f->field];
    *out = v->type == KS_VAL_NUM ? v->num : NAN;
    return KS_OK;
}

/* ---------------------------------------------------------------- kinds */

static const kind_ops_t kinds[] = {
    {"expr", 1, expr_parse, expr_compute, expr_free},
    {"map", 1, map_parse, map_compute, map_free},
    {"onehot", 0, onehot_parse, onehot_compute, onehot_free},
    {"hash", 1, hash_parse, hash_compute, no_free},
    {"hour_of_day", 1, time_parse, hour_compute, no_free},
    {"day_of_week", 1, time_parse, dow_compute, no_free},
    {"window", 1, window_parse, window_compute, no_free},
};

static const kind_ops_t *find_kind(const char *key)
{
    for (size_t i = 0; i < KS_ARRAY_LEN(kinds); i++)
        if (strcmp(kinds[i].key, key) == 0)
            return &kinds[i];
    return NULL;
}

/* ---------------------------------------------------------------- parse */

static int parse_feature(feature_t *f, ks_node_t *item, const ks_schema_t *schema, char *errbuf,
                         size_t errsize)
{
    int rc = KS_OK;
    ks_node_t *spec = NULL, *name = NULL, *dflt = NULL;
    const char *s;

    f->node = item;
    f->n_cols = 1;
    f->field = -1;
    if (item->kind == KS_NODE_SCALAR) {
        /* `- amount`: a declared field as-is */
        item->used = 1;
        if (find_field(schema, item->scalar) < 0)
            return ks_node_err(item, errbuf, errsize,
                               "'%s' is not a declared input field (a feature is a field name "
                               "or a map like {name: ..., expr: ...})", item->scalar);
        f->kind = find_kind("expr");
        f->name = ks_xstrdup(item->scalar);
        return expr_parse(f, item, schema, errbuf, errsize);
    }
    if ((rc = ks_node_expect(item, KS_NODE_MAP, errbuf, errsize)))
        return rc;
    for (size_t i = 0; i < item->n_items; i++) {
        ks_node_t *c = item->items[i];
        const kind_ops_t *k = find_kind(c->key);
        if (k) {
            if (f->kind)
                return ks_node_err(c, errbuf, errsize,
                                   "a feature has exactly one kind, this one has both '%s' and "
                                   "'%s'", f->kind->key, k->key);
            f->kind = k;
            spec = c;
        } else if (strcmp(c->key, "name") == 0) {
            name = c;
        } else if (strcmp(c->key, "default") == 0) {
            dflt = c;
        } else {
            return ks_node_err(c, errbuf, errsize,
                               "unknown key '%s' in a feature (expected name, default and one "
                               "of expr, map, onehot, hash, hour_of_day, day_of_week, window)",
                               c->key);
        }
    }
    if (!name)
        return ks_node_err(item, errbuf, errsize, "a feature needs a 'name'");
    if ((rc = ks_node_string(name, &s, errbuf, errsize)))
        return rc;
    if (!s[0])
        return ks_node_err(name, errbuf, errsize, "a feature name cannot be empty");
    f->name = ks_xstrdup(s);
    if (!f->kind)
        return ks_node_err(item, errbuf, errsize,
                           "feature '%s' needs one of expr, map, onehot, hash, hour_of_day, "
                           "day_of_week, window", s);
    if (dflt) {
        if (!f->kind->allows_default)
            return ks_node_err(dflt, errbuf, errsize,
                               "a %s feature never yields a missing value (an unlisted or "
                               "missing category gives all zeros), so it takes no default",
                               f->kind->key);
        if ((rc = ks_node_double(dflt, &f->dflt, errbuf, errsize)))
            return rc;
        f->has_default = 1;
    }
    spec->used = 1;
    return f->kind->parse(f, spec, schema, errbuf, errsize);
}

/* Column names, for the duplicate check: sorted, pointing at their feature. */
typedef struct colref {
    const char *name;
    const feature_t *feat;
} colref_t;

static int cmp_colref(const void *a, const void *b)
{
    const colref_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    /* ties in declaration order, so the later one is reported */
    return c ? c : x->feat < y->feat ? -1 : x->feat > y->feat ? 1 : 0;
}

static int check_unique_names(ks_features_t *fs, char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    colref_t *refs = ks_xcalloc(fs->n_cols, sizeof(*refs));
    size_t n = 0;
    for (size_t i = 0; i < fs->n_feats; i++)
        for (size_t c = 0; c < fs->feats[i].n_cols; c++)
            refs[n++] = (colref_t){fs->col_names[fs->feats[i].col + c], &fs->feats[i]};
    qsort(refs, n, sizeof(*refs), cmp_colref);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(refs[i].name, refs[i - 1].name) != 0)
            continue;
        const feature_t *later = refs[i].feat, *earlier = refs[i - 1].feat;
        if (later == earlier) { /* onehot values "a" and "a" cannot happen; be safe */
            rc = ks_node_err(later->node, errbuf, errsize, "column '%s' appears twice",
                             refs[i].name);
            goto out;
        }
        ks_node_t *at = later->node;
        if (later->node->kind == KS_NODE_MAP && ks_node_get(later->node, "name"))
            at = ks_node_get(later->node, "name");
        char where[128];
        ks_node_keypath(earlier->node, where, sizeof(where));
        rc = ks_node_err(at, errbuf, errsize,
                         "feature column '%s' is already produced by %s (line %d); names must "
                         "be unique, one-hot columns included", refs[i].name, where,
                         earlier->node->line);
        goto out;
    }
out:
    free(refs);
    return rc;
}

int ks_features_parse(ks_node_t *features_seq, const ks_schema_t *schema, ks_features_t **out,
                      char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    ks_features_t *fs = ks_xcalloc(1, sizeof(*fs));

    *out = NULL;
    if (!features_seq) {
        rc = ks_err(errbuf, errsize, KS_EINVAL,
                    "the config has no features: section (the list of the model's inputs)");
        goto out;
    }
    if ((rc = ks_node_expect(features_seq, KS_NODE_SEQ, errbuf, errsize)))
        goto out;
    if (features_seq->n_items == 0) {
        rc = ks_node_err(features_seq, errbuf, errsize, "lists no features");
        goto out;
    }
    fs->feats = ks_xcalloc(features_seq->n_items, sizeof(*fs->feats));
    for (size_t i = 0; i < features_seq->n_items; i++) {
        feature_t *f = &fs->feats[fs->n_feats++];
        if ((rc = parse_feature(f, features_seq->items[i], schema, errbuf, errsize)))
            goto out;
        f->col = fs->n_cols;
        fs->n_cols += f->n_cols;
    }
    fs->col_names = ks_xcalloc(fs->n_cols, sizeof(char *));
    for (size_t i = 0; i < fs->n_feats; i++) {
        feature_t *f = &fs->feats[i];
        for (size_t c = 0; c < f->n_cols; c++) {
            if (f->cat_names) {
                size_t len = strlen(f->name) + 1 + strlen(f->cat_names[c]) + 1;
                char *s = ks_xmalloc(len);
                snprintf(s, len, "%s=%s", f->name, f->cat_names[c]);
                fs->col_names[f->col + c] = s;
            } else {
                fs->col_names[f->col + c] = ks_xstrdup(f->name);
            }
        }
    }
    if ((rc = check_unique_names(fs, errbuf, errsize)))
        goto out;
    for (size_t i = 0; i < fs->n_feats; i++)
        fs->feats[i].node = NULL; /* the config tree may be freed after parsing */
    *out = fs;
    fs = NULL;
out:
    ks_features_free(fs);
    return rc;
}

/* ---------------------------------------------------------------- compute */

size_t ks_features_count(const ks_features_t *f)
{
    return f->n_cols;
}

const char *ks_features_name(const ks_features_t *f, size_t i)
{
    return i < f->n_cols ? f->col_names[i] : NULL;
}

int ks_features_compute(const ks_features_t *fs, const ks_value_t *fields, double *out,
                        char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    for (size_t i = 0; i < fs->n_feats; i++) {
        const feature_t *f = &fs->feats[i];
        double *dst = out + f->col;
        rc = f->kind->compute(f, fields, dst, errbuf, errsize);
        if (KS_UNLIKELY(rc != KS_OK)) {
            char msg[256] = "";
            if (errbuf && errsize)
                snprintf(msg, sizeof(msg), "%s", errbuf);
            rc = ks_err(errbuf, errsize, rc, "feature '%s': %s", f->name, msg);
            goto out;
        }
        if (f->has_default && isnan(*dst))
            *dst = f->dflt;
    }
out:
    return rc;
}

void ks_features_free(ks_features_t *fs)
{
    if (!fs)
        return;
    for (size_t i = 0; i < fs->n_feats; i++) {
        feature_t *f = &fs->feats[i];
        if (f->kind)
            f->kind->free(f);
        free(f->name);
        free(f->field_name);
    }
    for (size_t i = 0; fs->col_names && i < fs->n_cols; i++)
        free(fs->col_names[i]);
    free(fs->col_names);
    free(fs->feats);
    free(fs);
}
