/*
 * schema.c - parses `input.fields` (see schema.h) into the list of fields the
 * decoder extracts.
 *
 * Each entry of the map is one field; its key is the dotted JSON path. The
 * value is either a type name (`amount: number`) or a map with `type`
 * (required), `required` (default false) and `default` (a scalar of the
 * field's type). Everything read is marked used; any other key inside a field
 * spec is an error naming file and line. A few combinations are refused at
 * start-up because they could never decode: a required field with a default
 * (the default would always win), empty path segments ("a..b"), and a path
 * declared both as a value and as the parent of another field
 * ("payment" and "payment.amount").
 */
#include "decode/schema.h"
#include "base/common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    ks_field_type_t type;
} type_names[] = {
    {"number", KS_FIELD_NUMBER},       {"string", KS_FIELD_STRING}, {"bool", KS_FIELD_BOOL},
    {"timestamp", KS_FIELD_TIMESTAMP}, {"any", KS_FIELD_ANY},
};

const char *ks_field_type_name(ks_field_type_t t)
{
    for (size_t i = 0; i < KS_ARRAY_LEN(type_names); i++)
        if (type_names[i].type == t)
            return type_names[i].name;
    return "unknown";
}

static int parse_type(ks_node_t *n, ks_field_type_t *out, char *errbuf, size_t errsize)
{
    const char *s;
    int rc = ks_node_string(n, &s, errbuf, errsize);
    if (rc)
        return rc;
    for (size_t i = 0; i < KS_ARRAY_LEN(type_names); i++) {
        if (strcmp(s, type_names[i].name) == 0) {
            *out = type_names[i].type;
            return KS_OK;
        }
    }
    if (strcmp(s, "boolean") == 0) {
        *out = KS_FIELD_BOOL;
        return KS_OK;
    }
    return ks_node_err(n, errbuf, errsize,
                       "unknown field type \"%s\" (expected number, string, bool, timestamp or any)",
                       s);
}

/* Splits "a.b.c" into f->path; refuses empty segments. */
static int split_path(ks_field_t *f, const ks_node_t *n, char *errbuf, size_t errsize)
{
    const char *name = f->name;
    size_t len = strlen(name);
    int segs = 1;
    for (size_t i = 0; i < len; i++)
        segs += name[i] == '.';
    if (len == 0 || name[0] == '.' || name[len - 1] == '.' || strstr(name, ".."))
        return ks_node_err(n, errbuf, errsize,
                           "a field name is a dotted JSON path with no empty parts, got \"%s\"",
                           name);
    f->path = ks_xcalloc((size_t)segs, sizeof(char *));
    f->n_path = segs;
    const char *p = name;
    for (int i = 0; i < segs; i++) {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        f->path[i] = ks_xstrndup(p, l);
        p += l + 1;
    }
    return KS_OK;
}

/* The default value: a YAML scalar read as the field's type. */
static int parse_default(ks_field_t *f, ks_node_t *n, char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    double d;
    int b;
    const char *s;

    switch (f->type) {
    case KS_FIELD_NUMBER:
        if ((rc = ks_node_double(n, &d, errbuf, errsize)))
            goto out;
        if (!isfinite(d)) {
            rc = ks_node_err(n, errbuf, errsize, "the default must be a finite number");
            goto out;
        }
        f->dflt.type = KS_VAL_NUM;
        f->dflt.num = d;
        break;
    case KS_FIELD_BOOL:
        if ((rc = ks_node_bool(n, &b, errbuf, errsize)))
            goto out;
        f->dflt.type = KS_VAL_BOOL;
        f->dflt.b = (uint8_t)b;
        break;
    case KS_FIELD_STRING:
        if ((rc = ks_node_string(n, &s, errbuf, errsize)))
            goto out;
        goto as_string;
    case KS_FIELD_TIMESTAMP:
    case KS_FIELD_ANY:
        if ((rc = ks_node_string(n, &s, errbuf, errsize)))
            goto out;
        if (!n->quoted) {
            char *end;
            if (f->type == KS_FIELD_ANY && (strcmp(s, "true") == 0 || strcmp(s, "false") == 0)) {
                f->dflt.type = KS_VAL_BOOL;
                f->dflt.b = s[0] == 't';
                break;
            }
            d = strtod(s, &end);
            if (s[0] && !*end && isfinite(d)) {
                f->dflt.type = KS_VAL_NUM;
                f->dflt.num = d;
                break;
            }
        }
        goto as_string;
    }
    f->has_default = 1;
    goto out;
as_string:
    f->dflt_str = ks_xstrdup(s);
    f->dflt.type = KS_VAL_STR;
    f->dflt.str = f->dflt_str;
    f->dflt.len = (uint32_t)strlen(s);
    f->has_default = 1;
out:
    return rc;
}

static int parse_field(ks_node_t *n, ks_field_t *f, char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    ks_node_t *type_node = NULL, *dflt_node = NULL;

    f->name = ks_xstrdup(n->key);
    if ((rc = split_path(f, n, errbuf, errsize)))
        goto out;
    if (n->kind == KS_NODE_SCALAR) {
        rc = parse_type(n, &f->type, errbuf, errsize);
        goto out;
    }
    if (n->kind != KS_NODE_MAP) {
        rc = ks_node_err(n, errbuf, errsize,
                         "a field is a type name (\"amount: number\") or a map "
                         "{type, required, default}, not a list");
        goto out;
    }
    n->used = 1;
    for (size_t i = 0; i < n->n_items; i++) {
        ks_node_t *c = n->items[i];
        if (strcmp(c->key, "type") == 0) {
            type_node = c;
        } else if (strcmp(c->key, "required") == 0) {
            if ((rc = ks_node_bool(c, &f->required, errbuf, errsize)))
                goto out;
        } else if (strcmp(c->key, "default") == 0) {
            dflt_node = c;
        } else {
            rc = ks_node_err(c, errbuf, errsize,
                             "unknown key in a field spec (expected type, required, default)");
            goto out;
        }
    }
    if (!type_node) {
        rc = ks_node_err(n, errbuf, errsize,
                         "missing 'type' (number, string, bool, timestamp or any)");
        goto out;
    }
    if ((rc = parse_type(type_node, &f->type, errbuf, errsize)))
        goto out;
    if (dflt_node) {
        if (f->required) {
            rc = ks_node_err(dflt_node, errbuf, errsize,
                             "a required field cannot have a default (drop one of them)");
            goto out;
        }
        if ((rc = parse_default(f, dflt_node, errbuf, errsize)))
            goto out;
    }
out:
    return rc;
}

/* Refuses a path that is both a value and a prefix of another field. */
static int check_prefixes(const ks_schema_t *s, ks_node_t *map, char *errbuf, size_t errsize)
{
    for (size_t i = 0; i < s->n_fields; i++) {
        const ks_field_t *a = &s->fields[i];
        size_t la = strlen(a->name);
        for (size_t j = 0; j < s->n_fields; j++) {
            const ks_field_t *b = &s->fields[j];
            if (i == j)
                continue;
            if (strcmp(a->name, b->name) == 0)
                return ks_node_err(map->items[j], errbuf, errsize,
                                   "field '%s' is declared twice", b->name);
            if (strncmp(a->name, b->name, la) == 0 && b->name[la] == '.')
                return ks_node_err(map->items[j], errbuf, errsize,
                                   "field '%s' lies inside field '%s', which is declared as a "
                                   "value; declare only the leaves", b->name, a->name);
        }
    }
    return KS_OK;
}

int ks_schema_parse(ks_node_t *fields_map, ks_schema_t **out, char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    ks_schema_t *s = ks_xcalloc(1, sizeof(*s));

    *out = NULL;
    if ((rc = ks_node_expect(fields_map, KS_NODE_MAP, errbuf, errsize)))
        goto out;
    if (fields_map->n_items == 0) {
        rc = ks_node_err(fields_map, errbuf, errsize, "declare at least one input field");
        goto out;
    }
    s->fields = ks_xcalloc(fields_map->n_items, sizeof(ks_field_t));
    for (size_t i = 0; i < fields_map->n_items; i++) {
        s->n_fields++;
        if ((rc = parse_field(fields_map->items[i], &s->fields[i], errbuf, errsize)))
            goto out;
    }
    if ((rc = check_prefixes(s, fields_map, errbuf, errsize)))
        goto out;
    s->n_decoded = s->n_fields;
    *out = s;
out:
    if (rc)
        ks_schema_free(s);
    return rc;
}

int ks_schema_add_virtual(ks_schema_t *s, const char *name, ks_field_type_t type)
{
    if (ks_schema_find(s, name) >= 0)
        return -1;
    s->fields = ks_xrealloc(s->fields, (s->n_fields + 1) * sizeof(ks_field_t));
    ks_field_t *f = &s->fields[s->n_fields];
    memset(f, 0, sizeof(*f));
    f->name = ks_xstrdup(name);
    f->type = type;
    return (int)s->n_fields++;
}

int ks_schema_find(const ks_schema_t *s, const char *name)
{
    for (size_t i = 0; s && i < s->n_fields; i++)
        if (strcmp(s->fields[i].name, name) == 0)
            return (int)i;
    return -1;
}

void ks_schema_free(ks_schema_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_fields; i++) {
        ks_field_t *f = &s->fields[i];
        for (int k = 0; f->path && k < f->n_path; k++)
            free(f->path[k]);
        free(f->path);
        free(f->name);
        free(f->dflt_str);
    }
    free(s->fields);
    free(s);
}
