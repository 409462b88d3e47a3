/*
 * conftree.c - YAML (libyaml event API) into a tree of nodes that remember
 * file and line, --set overrides, typed reads with located error messages,
 * and the unknown-key check. See conftree.h.
 */
#include "base/conftree.h"
#include "base/common.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#define MAX_DEPTH 64

static ks_node_t *node_new(ks_node_kind_t kind, const char *file, int line)
{
    ks_node_t *n = ks_xcalloc(1, sizeof(*n));
    n->kind = kind;
    n->file = file;
    n->line = line;
    return n;
}

static void node_append(ks_node_t *parent, ks_node_t *child)
{
    parent->items = ks_xrealloc(parent->items, (parent->n_items + 1) * sizeof(*parent->items));
    parent->items[parent->n_items++] = child;
    child->parent = parent;
}

void ks_node_free(ks_node_t *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n_items; i++)
        ks_node_free(n->items[i]);
    free(n->items);
    free(n->key);
    free(n->scalar);
    free(n);
}

static int parse_node(yaml_parser_t *p, yaml_event_t *ev, const char *file, int depth,
                      ks_node_t **out, char *errbuf, size_t errsize);

static int next_event(yaml_parser_t *p, yaml_event_t *ev, const char *file, char *errbuf,
                      size_t errsize)
{
    if (!yaml_parser_parse(p, ev))
        return ks_err(errbuf, errsize, KS_EINVAL, "%s:%zu: YAML syntax error: %s%s%s", file,
                      p->problem_mark.line + 1, p->problem ? p->problem : "unknown problem",
                      p->context ? " " : "", p->context ? p->context : "");
    return KS_OK;
}

static int parse_node(yaml_parser_t *p, yaml_event_t *ev, const char *file, int depth,
                      ks_node_t **out, char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    int line = (int)ev->start_mark.line + 1;
    ks_node_t *n = NULL;

    if (depth > MAX_DEPTH)
        return ks_err(errbuf, errsize, KS_EINVAL, "%s:%d: nesting deeper than %d levels", file,
                      line, MAX_DEPTH);
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        n = node_new(KS_NODE_SCALAR, file, line);
        n->scalar = ks_xstrndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
        n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        break;
    case YAML_ALIAS_EVENT:
        return ks_err(errbuf, errsize, KS_EINVAL,
                      "%s:%d: YAML aliases (*name) are not supported in kscore configs", file,
                      line);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        int is_map = ev->type == YAML_MAPPING_START_EVENT;
        n = node_new(is_map ? KS_NODE_MAP : KS_NODE_SEQ, file, line);
        for (;;) {
            yaml_event_t item;
            if ((rc = next_event(p, &item, file, errbuf, errsize)))
                goto out;
            if (item.type == YAML_SEQUENCE_END_EVENT || item.type == YAML_MAPPING_END_EVENT) {
                yaml_event_delete(&item);
                break;
            }
            char *key = NULL;
            int key_line = (int)item.start_mark.line + 1;
            if (is_map) {
                if (item.type != YAML_SCALAR_EVENT) {
                    yaml_event_delete(&item);
                    rc = ks_err(errbuf, errsize, KS_EINVAL, "%s:%d: map keys must be plain strings",
                                file, key_line);
                    goto out;
                }
                key = ks_xstrndup((const char *)item.data.scalar.value, item.data.scalar.length);
                yaml_event_delete(&item);
                if (ks_node_get(n, key)) {
                    rc = ks_err(errbuf, errsize, KS_EINVAL, "%s:%d: duplicate key '%s'", file,
                                key_line, key);
                    free(key);
                    goto out;
                }
                if ((rc = next_event(p, &item, file, errbuf, errsize))) {
                    free(key);
                    goto out;
                }
            }
            ks_node_t *child = NULL;
            rc = parse_node(p, &item, file, depth + 1, &child, errbuf, errsize);
            yaml_event_delete(&item);
            if (rc) {
                free(key);
                goto out;
            }
            child->key = key;
            if (key)
                child->line = key_line;
            node_append(n, child);
        }
        break;
    }
    default:
        return ks_err(errbuf, errsize, KS_EINVAL, "%s:%d: unexpected YAML event", file, line);
    }
out:
    if (rc) {
        ks_node_free(n);
        n = NULL;
    }
    *out = n;
    return rc;
}

int ks_node_parse_string(const char *name, const char *text, size_t len, ks_node_t **root,
                         char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    yaml_parser_t p;
    yaml_event_t ev;
    ks_node_t *doc = NULL;
    int have_doc = 0;

    *root = NULL;
    if (!yaml_parser_initialize(&p))
        return ks_err(errbuf, errsize, KS_ENOMEM, "cannot initialise the YAML parser");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    for (;;) {
        if ((rc = next_event(&p, &ev, name, errbuf, errsize)))
            goto out;
        yaml_event_type_t t = ev.type;
        if (t == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (t == YAML_DOCUMENT_START_EVENT && have_doc) {
            rc = ks_err(errbuf, errsize, KS_EINVAL,
                        "%s:%zu: only one YAML document is allowed per config file", name,
                        ev.start_mark.line + 1);
            yaml_event_delete(&ev);
            goto out;
        }
        if (t == YAML_DOCUMENT_START_EVENT)
            have_doc = 1;
        if (t == YAML_SCALAR_EVENT || t == YAML_SEQUENCE_START_EVENT ||
            t == YAML_MAPPING_START_EVENT || t == YAML_ALIAS_EVENT) {
            rc = parse_node(&p, &ev, name, 0, &doc, errbuf, errsize);
            yaml_event_delete(&ev);
            if (rc)
                goto out;
            continue;
        }
        yaml_event_delete(&ev);
    }
    if (!doc)
        doc = node_new(KS_NODE_MAP, name, 1);
    if (doc->kind != KS_NODE_MAP) {
        rc = ks_err(errbuf, errsize, KS_EINVAL,
                    "%s:%d: the config must be a map of sections (kafka:, input:, ...)", name,
                    doc->line);
        goto out;
    }
    *root = doc;
    doc = NULL;
out:
    ks_node_free(doc);
    yaml_parser_delete(&p);
    return rc;
}

int ks_node_parse_file(const char *path, ks_node_t **root, char *errbuf, size_t errsize)
{
    char *text = NULL;
    size_t len = 0;
    int rc = ks_read_file(path, &text, &len, errbuf, errsize);
    if (rc)
        return rc;
    rc = ks_node_parse_string(path, text, len, root, errbuf, errsize);
    free(text);
    return rc;
}

ks_node_t *ks_node_get(const ks_node_t *map, const char *key)
{
    if (!map || map->kind != KS_NODE_MAP)
        return NULL;
    for (size_t i = 0; i < map->n_items; i++)
        if (map->items[i]->key && strcmp(map->items[i]->key, key) == 0)
            return map->items[i];
    return NULL;
}

void ks_node_keypath(const ks_node_t *n, char *buf, size_t size)
{
    const ks_node_t *chain[MAX_DEPTH + 2];
    int depth = 0;
    for (const ks_node_t *c = n; c && c->parent && depth < MAX_DEPTH + 2; c = c->parent)
        chain[depth++] = c;
    size_t len = 0;
    buf[0] = '\0';
    for (int i = depth - 1; i >= 0 && len < size; i--) {
        const ks_node_t *c = chain[i];
        int w;
        if (c->key)
            w = snprintf(buf + len, size - len, "%s%s", len ? "." : "", c->key);
        else {
            size_t idx = 0;
            while (idx < c->parent->n_items && c->parent->items[idx] != c)
                idx++;
            w = snprintf(buf + len, size - len, "[%zu]", idx);
        }
        if (w < 0)
            break;
        len += (size_t)w;
    }
}

int ks_node_err(const ks_node_t *n, char *errbuf, size_t errsize, const char *fmt, ...)
{
    char path[256], msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ks_node_keypath(n, path, sizeof(path));
    return ks_err(errbuf, errsize, KS_EINVAL, "%s:%d: %s: %s", n->file, n->line,
                  path[0] ? path : "(top level)", msg);
}

static const char *kind_name(ks_node_kind_t k)
{
    return k == KS_NODE_MAP ? "a map" : k == KS_NODE_SEQ ? "a list" : "a scalar";
}

int ks_node_expect(ks_node_t *n, ks_node_kind_t kind, char *errbuf, size_t errsize)
{
    n->used = 1;
    if (n->kind != kind)
        return ks_node_err(n, errbuf, errsize, "expected %s, got %s", kind_name(kind),
                           kind_name(n->kind));
    return KS_OK;
}

int ks_node_string(ks_node_t *n, const char **out, char *errbuf, size_t errsize)
{
    int rc = ks_node_expect(n, KS_NODE_SCALAR, errbuf, errsize);
    if (rc == KS_OK)
        *out = n->scalar;
    return rc;
}

int ks_node_int(ks_node_t *n, long long min, long long max, long long *out, char *errbuf,
                size_t errsize)
{
    int rc = ks_node_expect(n, KS_NODE_SCALAR, errbuf, errsize);
    if (rc)
        return rc;
    char *end;
    errno = 0;
    long long v = strtoll(n->scalar, &end, 10);
    if (n->quoted || !n->scalar[0] || *end || errno)
        return ks_node_err(n, errbuf, errsize, "expected an integer, got \"%s\"", n->scalar);
    if (v < min || v > max)
        return ks_node_err(n, errbuf, errsize, "%lld is out of range [%lld, %lld]", v, min, max);
    *out = v;
    return KS_OK;
}

int ks_node_double(ks_node_t *n, double *out, char *errbuf, size_t errsize)
{
    int rc = ks_node_expect(n, KS_NODE_SCALAR, errbuf, errsize);
    if (rc)
        return rc;
    char *end;
    errno = 0;
    double v = strtod(n->scalar, &end);
    if (n->quoted || !n->scalar[0] || *end || errno == ERANGE || isnan(v))
        return ks_node_err(n, errbuf, errsize, "expected a number, got \"%s\"", n->scalar);
    *out = v;
    return KS_OK;
}

int ks_node_bool(ks_node_t *n, int *out, char *errbuf, size_t errsize)
{
    int rc = ks_node_expect(n, KS_NODE_SCALAR, errbuf, errsize);
    if (rc)
        return rc;
    static const char *yes[] = {"true", "yes", "on"}, *no[] = {"false", "no", "off"};
    for (size_t i = 0; i < 3 && !n->quoted; i++) {
        if (strcasecmp(n->scalar, yes[i]) == 0) {
            *out = 1;
            return KS_OK;
        }
        if (strcasecmp(n->scalar, no[i]) == 0) {
            *out = 0;
            return KS_OK;
        }
    }
    return ks_node_err(n, errbuf, errsize, "expected true or false, got \"%s\"", n->scalar);
}

void ks_node_mark_used(ks_node_t *n)
{
    n->used = 1;
    for (size_t i = 0; i < n->n_items; i++)
        ks_node_mark_used(n->items[i]);
}

int ks_node_check_unused(const ks_node_t *n, char *errbuf, size_t errsize)
{
    if (n->parent && !n->used) {
        char path[256];
        ks_node_keypath(n, path, sizeof(path));
        return ks_err(errbuf, errsize, KS_EINVAL, "%s:%d: unknown key '%s'", n->file, n->line,
                      path);
    }
    for (size_t i = 0; i < n->n_items; i++) {
        int rc = ks_node_check_unused(n->items[i], errbuf, errsize);
        if (rc)
            return rc;
    }
    return KS_OK;
}

/* --set: find the child of `map` matching a prefix of `path`, preferring the
 * longest existing key (keys may contain dots). Returns the matched length. */
static ks_node_t *match_prefix(ks_node_t *map, const char *path, size_t *matched)
{
    ks_node_t *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; map->kind == KS_NODE_MAP && i < map->n_items; i++) {
        const char *k = map->items[i]->key;
        size_t kl = strlen(k);
        if (kl > best_len && strncmp(path, k, kl) == 0 && (path[kl] == '.' || path[kl] == '\0')) {
            best = map->items[i];
            best_len = kl;
        }
    }
    *matched = best_len;
    return best;
}

static void node_make_scalar_value(ks_node_t *n, const char *value, int may_be_list)
{
    for (size_t i = 0; i < n->n_items; i++)
        ks_node_free(n->items[i]);
    free(n->items);
    n->items = NULL;
    n->n_items = 0;
    free(n->scalar);
    n->scalar = NULL;
    n->quoted = 0;
    size_t vl = strlen(value);
    int flow = vl >= 2 && value[0] == '[' && value[vl - 1] == ']';
    if (may_be_list && (flow || strchr(value, ','))) {
        n->kind = KS_NODE_SEQ;
        char *copy = flow ? ks_xstrndup(value + 1, vl - 2) : ks_xstrdup(value);
        char *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ')
                tok++;
            size_t tl = strlen(tok);
            while (tl && tok[tl - 1] == ' ')
                tok[--tl] = '\0';
            ks_node_t *item = node_new(KS_NODE_SCALAR, n->file, n->line);
            item->scalar = ks_xstrdup(tok);
            node_append(n, item);
        }
        free(copy);
    } else {
        n->kind = KS_NODE_SCALAR;
        n->scalar = ks_xstrdup(value);
    }
}

int ks_node_set(ks_node_t *root, const char *assignment, const char *const *flat, char *errbuf,
                size_t errsize)
{
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return ks_err(errbuf, errsize, KS_EINVAL,
                      "--set %s: expected key.path=value (e.g. --set batch.max_size=500)",
                      assignment);
    char *path = ks_xstrndup(assignment, (size_t)(eq - assignment));
    const char *value = eq + 1;
    ks_node_t *cur = root;
    const char *p = path;
    const char *flat_rest = NULL; /* where the single flat key starts */
    int rc = KS_OK;

    for (size_t i = 0; flat && flat[i]; i++) {
        size_t fl = strlen(flat[i]);
        if (strncmp(path, flat[i], fl) == 0 && path[fl] == '.' && path[fl + 1] &&
            (!flat_rest || path + fl + 1 > flat_rest))
            flat_rest = path + fl + 1;
    }
    while (*p) {
        /* a list of named maps (lookups, windows): the next segment is an
         * item's `name`: --set lookups.profile.snapshot=file.jsonl */
        if (cur->kind == KS_NODE_SEQ && p != flat_rest) {
            size_t seg = strcspn(p, ".");
            ks_node_t *item = NULL;
            for (size_t i = 0; i < cur->n_items && !item; i++) {
                ks_node_t *name = ks_node_get(cur->items[i], "name");
                if (name && name->kind == KS_NODE_SCALAR && strlen(name->scalar) == seg &&
                    strncmp(name->scalar, p, seg) == 0)
                    item = cur->items[i];
            }
            if (!item || !p[seg]) {
                rc = ks_err(errbuf, errsize, KS_EINVAL,
                            "--set %s: '%.*s' has no item named '%.*s'%s", assignment,
                            (int)(p - path - 1), path, (int)seg, p,
                            item ? " (set a key below it)" : "");
                goto out;
            }
            cur = item;
            p += seg + 1;
            continue;
        }
        if (cur->kind != KS_NODE_MAP) {
            rc = ks_err(errbuf, errsize, KS_EINVAL,
                        "--set %s: '%.*s' is not a map, cannot set a key below it", assignment,
                        (int)(p - path - 1), path);
            goto out;
        }
        size_t matched = 0;
        ks_node_t *child = NULL;
        if (p == flat_rest) {
            matched = strlen(p);
            child = ks_node_get(cur, p);
        } else {
            child = match_prefix(cur, p, &matched);
        }
        if (!child) {
            const char *dot = p == flat_rest ? NULL : strchr(p, '.');
            matched = dot ? (size_t)(dot - p) : strlen(p);
            if (matched == 0) {
                rc = ks_err(errbuf, errsize, KS_EINVAL, "--set %s: empty key in path", assignment);
                goto out;
            }
            child = node_new(p[matched] ? KS_NODE_MAP : KS_NODE_SCALAR, "--set", 1);
            child->key = ks_xstrndup(p, matched);
            if (!p[matched])
                child->scalar = ks_xstrdup("");
            node_append(cur, child);
        }
        cur = child;
        p += matched;
        if (*p == '.')
            p++;
    }
    /* librdkafka values stay whole: bootstrap.servers=a:1,b:2 is one string */
    node_make_scalar_value(cur, value, flat_rest == NULL);
    cur->file = "--set";
    cur->line = 1;
out:
    free(path);
    return rc;
}

int ks_node_check_keys(const ks_node_t *map, const char *const *allowed, const char *what,
                       char *errbuf, size_t errsize)
{
    for (size_t i = 0; i < map->n_items; i++) {
        const ks_node_t *item = map->items[i];
        int ok = 0;
        for (size_t k = 0; allowed[k] && !ok; k++)
            ok = strcmp(item->key, allowed[k]) == 0;
        if (!ok) {
            char list[256];
            size_t len = 0;
            list[0] = '\0';
            for (size_t k = 0; allowed[k] && len < sizeof(list); k++)
                len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", k ? ", " : "",
                                        allowed[k]);
            return ks_node_err(item, errbuf, errsize, "unknown key '%s' in %s (expected %s)",
                               item->key, what, list);
        }
    }
    return KS_OK;
}
