/*
 * json_decoder.c - the schema-directed JSON event decoder (see decoder.h).
 *
 * At ks_decoder_new the declared paths become a small trie of "levels": the
 * root level holds the top-level names the schema mentions, and each
 * intermediate name ("payment" of "payment.amount") has its own level. While
 * scanning an object, each key is matched against the names of the current
 * level only (a small hash table per level, then length and bytes); a match on a leaf fills that field's
 * slot, a match on an intermediate descends, anything else is skipped - but
 * skipped values are still fully validated (grammar, UTF-8, escapes, depth).
 * One pass, no DOM, no allocation except for strings that contain escapes
 * (unescaped into the caller's arena) and numbers longer than 512 characters.
 *
 * Speed: events of one topic repeat their keys in the same order, so each
 * level remembers which name came at each position of the last object; a
 * key is first compared with that name's bytes and closing quote (8 bytes at
 * a time), and only when that fails is it lexed, hashed and looked up (a
 * name is only predicted when it is printable ASCII without '"' or '\', so
 * matching bytes are a valid key that needs no unescaping). Strings are
 * scanned 8 bytes at a time for the closing quote (ks_json_plain_end); only
 * a string with an escape, a control or a non-ASCII byte takes the full
 * validating lexer.
 *
 * Semantics, decided here and tested in tests/unit/test_decode.c:
 *  - The payload must be exactly one JSON object, surrounded by optional JSON
 *    whitespace; anything else is KS_ERRCLASS_DESERIALIZATION with the byte
 *    offset. Invalid UTF-8 anywhere (also in skipped strings and keys) is too.
 *    Nesting deeper than KS_JSON_MAX_DEPTH is too.
 *  - Duplicate keys: the last occurrence wins, for leaves and for parents
 *    alike (a repeated "payment" object replaces everything read from the
 *    earlier one). A wrong type in an earlier duplicate does not count.
 *  - Numbers are bit-identical to strtod in the C locale (-0 kept, subnormals
 *    kept, underflow to 0). A number whose magnitude overflows a double
 *    (1e400) in a declared number/timestamp/any field is a KS_ERRCLASS_TYPE
 *    error ("out of the range of a double"): JSON cannot spell infinity, and
 *    feeding inf to a model would only move the failure downstream.
 *  - Types: number <- JSON number; string <- JSON string; bool <- true/false;
 *    timestamp <- number or string; any <- any scalar. Any other JSON type
 *    (including an object or array for a declared field, or a bool for a
 *    number) is KS_ERRCLASS_TYPE naming the field.
 *  - null or absent: the default if set; else KS_ERRCLASS_MISSING_FIELD if
 *    required; else the slot stays KS_VAL_NULL / KS_VAL_MISSING. A parent that
 *    is null counts as absent for the fields below it; a parent of another
 *    type (a string where "payment" should be an object) is a type error for
 *    each declared field below it.
 *  - Errors are reported for the first problem found: malformed input first,
 *    then field problems in declaration order.
 */
#include "decode/decoder.h"
#include "base/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a slot or a parent held when it was not acceptable (bad[]/lstate[]). */
enum {
    SEEN_NONE = 0,
    SEEN_OBJECT,       /* lstate: the parent was an object (normal) */
    SEEN_NULL,         /* lstate: the parent was null (fields below: absent) */
    BAD_STRING,
    BAD_NUMBER,
    BAD_BOOL,
    BAD_OBJECT,
    BAD_ARRAY,
    BAD_RANGE,         /* number overflowing a double */
};

typedef struct dlevel dlevel_t;

typedef struct dname {
    const char *name;
    uint32_t len;
    int field;         /* >= 0: a leaf, index into schema->fields */
    dlevel_t *sub;     /* else: an intermediate object level */
    char *quoted;      /* name '"', zero-padded to whole 8-byte words */
    int predictable;   /* printable ASCII, no '"' or '\\': its bytes are a key */
} dname_t;

/* Member positions per object whose names are remembered (see above). */
#define ORDER_MAX 32

struct dlevel {
    int id;            /* index into lstate[] */
    dname_t *names;
    size_t n_names;
    int16_t *slots;    /* open-addressing hash of names: index or -1 */
    uint32_t slot_mask;
    int *fields_below; /* all leaf fields under this level (for "last wins") */
    size_t n_fields_below;
    int *levels_below; /* all levels under this level, itself excluded */
    size_t n_levels_below;
    int16_t order[ORDER_MAX]; /* name at each member position last time, or -1 */
};

struct ks_decoder {
    const ks_schema_t *schema;
    dlevel_t **levels;          /* levels[0] is the root */
    size_t n_levels;
    int *field_parent;          /* innermost level holding each field */
    uint8_t *type;              /* each field's ks_field_type_t */
    uint8_t *bad;               /* per field, per decode */
    uint8_t *lstate;            /* per level, per decode */
    char *keybuf;               /* unescaped keys, sized for the longest name */
    size_t keybuf_size;
    size_t max_name;
};

/* Per-call state of one decode. */
typedef struct scan {
    ks_decoder_t *d;
    const unsigned char *buf, *p, *end;
    ks_value_t *out;
    ks_arena_t *arena;
    const char *errmsg;         /* malformed: message */
    const unsigned char *errat; /* malformed: where */
} scan_t;

/* --------------------------------------------------------------- building */

/* Hash of a key for a level's table: cheap, and distinct for typical names. */
static inline uint32_t key_hash(const char *k, size_t n)
{
    const unsigned char *u = (const unsigned char *)k;
    return (uint32_t)n * 0x9E3779B1u ^ (uint32_t)u[0] * 0x85EBCA77u ^
           (uint32_t)u[n - 1] * 0xC2B2AE3Du ^ (uint32_t)u[n >> 1] * 0x27D4EB2Fu;
}

static void level_index(dlevel_t *l)
{
    uint32_t size = 8;
    while (size < 2 * l->n_names)
        size *= 2;
    l->slots = ks_xmalloc(size * sizeof(*l->slots));
    memset(l->slots, 0xff, size * sizeof(*l->slots));
    l->slot_mask = size - 1;
    for (size_t i = 0; i < l->n_names; i++) {
        uint32_t h = key_hash(l->names[i].name, l->names[i].len) & l->slot_mask;
        while (l->slots[h] >= 0)
            h = (h + 1) & l->slot_mask;
        l->slots[h] = (int16_t)i;
    }
}

static dlevel_t *level_new(ks_decoder_t *d)
{
    dlevel_t *l = ks_xcalloc(1, sizeof(*l));
    l->id = (int)d->n_levels;
    memset(l->order, 0xff, sizeof(l->order));
    d->levels = ks_xrealloc(d->levels, (d->n_levels + 1) * sizeof(*d->levels));
    d->levels[d->n_levels++] = l;
    return l;
}

static dname_t *level_find(dlevel_t *l, const char *name)
{
    for (size_t i = 0; i < l->n_names; i++)
        if (strcmp(l->names[i].name, name) == 0)
            return &l->names[i];
    return NULL;
}

static dname_t *level_add(dlevel_t *l, const char *name)
{
    l->names = ks_xrealloc(l->names, (l->n_names + 1) * sizeof(*l->names));
    dname_t *n = &l->names[l->n_names++];
    n->name = name;
    n->len = (uint32_t)strlen(name);
    n->field = -1;
    n->sub = NULL;
    n->quoted = ks_xcalloc(n->len / 8 + 2, 8);
    memcpy(n->quoted, name, n->len);
    n->quoted[n->len] = '"';
    n->predictable = n->len > 0;
    for (uint32_t i = 0; i < n->len; i++)
        if ((unsigned char)name[i] < 0x20 || (unsigned char)name[i] > 0x7e || name[i] == '"' ||
            name[i] == '\\')
            n->predictable = 0;
    return n;
}

static void push_int(int **arr, size_t *n, int v)
{
    *arr = ks_xrealloc(*arr, (*n + 1) * sizeof(int));
    (*arr)[(*n)++] = v;
}

int ks_decoder_new(const ks_schema_t *schema, ks_decoder_t **out, char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    ks_decoder_t *d = ks_xcalloc(1, sizeof(*d));
    d->schema = schema;
    *out = NULL;

    dlevel_t *root = level_new(d);
    d->field_parent = ks_xcalloc(schema->n_decoded ? schema->n_decoded : 1, sizeof(int));
    for (size_t i = 0; i < schema->n_decoded; i++) {
        const ks_field_t *f = &schema->fields[i];
        dlevel_t *l = root;
        dlevel_t *chain[KS_JSON_MAX_DEPTH];
        int depth = 0;
        if (f->n_path < 1 || f->n_path >= KS_JSON_MAX_DEPTH) {
            rc = ks_err(errbuf, errsize, KS_EINVAL, "input field '%s': path depth %d is not "
                        "supported", f->name, f->n_path);
            goto out;
        }
        for (int k = 0; k < f->n_path; k++) {
            size_t nl = strlen(f->path[k]);
            if (nl > d->max_name)
                d->max_name = nl;
            chain[depth++] = l;
            dname_t *n = level_find(l, f->path[k]);
            int leaf = (k == f->n_path - 1);
            if (leaf) {
                if (n) {
                    rc = ks_err(errbuf, errsize, KS_EINVAL,
                                "input field '%s' is declared twice or also as the parent of "
                                "another field", f->name);
                    goto out;
                }
                n = level_add(l, f->path[k]);
                n->field = (int)i;
            } else {
                if (n && n->field >= 0) {
                    rc = ks_err(errbuf, errsize, KS_EINVAL,
                                "input field '%s' lies inside another declared field", f->name);
                    goto out;
                }
                if (!n) {
                    n = level_add(l, f->path[k]);
                    n->sub = level_new(d);
                    for (int c = 1; c < depth; c++) /* chain[0] is root: never reset */
                        push_int(&chain[c]->levels_below, &chain[c]->n_levels_below,
                                 n->sub->id);
                }
                l = n->sub;
            }
        }
        if (root->n_names > INT16_MAX || l->n_names > INT16_MAX) {
            rc = ks_err(errbuf, errsize, KS_EINVAL, "too many input fields in one object "
                        "(at most %d)", INT16_MAX);
            goto out;
        }
        d->field_parent[i] = l->id;
        for (int c = 1; c < depth; c++) /* chain[0] is root: never reset */
            push_int(&chain[c]->fields_below, &chain[c]->n_fields_below, (int)i);
    }
    for (size_t i = 0; i < d->n_levels; i++)
        level_index(d->levels[i]);
    d->bad = ks_xcalloc(schema->n_decoded ? schema->n_decoded : 1, 1);
    d->type = ks_xcalloc(schema->n_decoded ? schema->n_decoded : 1, 1);
    for (size_t i = 0; i < schema->n_decoded; i++)
        d->type[i] = (uint8_t)schema->fields[i].type;
    d->lstate = ks_xcalloc(d->n_levels, 1);
    /* an escaped key of more than 6 bytes per character cannot match */
    d->keybuf_size = 6 * d->max_name + 16;
    d->keybuf = ks_xmalloc(d->keybuf_size);
    *out = d;
out:
    if (rc)
        ks_decoder_free(d);
    return rc;
}

void ks_decoder_free(ks_decoder_t *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_levels; i++) {
        for (size_t j = 0; j < d->levels[i]->n_names; j++)
            free(d->levels[i]->names[j].quoted);
        free(d->levels[i]->names);
        free(d->levels[i]->slots);
        free(d->levels[i]->fields_below);
        free(d->levels[i]->levels_below);
        free(d->levels[i]);
    }
    free(d->levels);
    free(d->field_parent);
    free(d->bad);
    free(d->type);
    free(d->lstate);
    free(d->keybuf);
    free(d);
}

/* --------------------------------------------------------------- scanning */

static const uint8_t is_ws[256] = {[' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1};

static void skip_ws_run(scan_t *s)
{
    const unsigned char *p = s->p, *end = s->end;
    while (p < end && is_ws[*p])
        p++;
    s->p = p;
}

/* Events rarely hold whitespace: one compare when the next byte is not. */
static inline void skip_ws(scan_t *s)
{
    if (KS_UNLIKELY(s->p < s->end && *s->p <= ' '))
        skip_ws_run(s);
}

static int fail(scan_t *s, const unsigned char *at, const char *msg)
{
    s->errmsg = msg;
    s->errat = at;
    return KS_EINVAL;
}

/* Lexes the string at s->p (on the quote); returns body and close. Plain
 * ASCII up to the closing quote needs no more than finding it; from the
 * first escape, control or non-ASCII byte on, ks_json_lex_string validates
 * the rest (what came before it needs nothing). */
static inline int lex_string(scan_t *s, const char **body, const char **close, int *escaped)
{
    const char *b = (const char *)s->p + 1;
    const char *q = ks_json_plain_end(b, (const char *)s->end);
    if (KS_LIKELY(q < (const char *)s->end && *q == '"')) {
        *body = b;
        *close = q;
        *escaped = 0;
        s->p = (const unsigned char *)q + 1;
        return KS_OK;
    }
    const char *msg = ks_json_lex_string(q, (const char *)s->end, close, escaped);
    if (KS_UNLIKELY(msg != NULL))
        return fail(s, (const unsigned char *)*close, msg);
    *body = b;
    s->p = (const unsigned char *)*close + 1;
    return KS_OK;
}

/* Are the n bytes at a (readable up to a_end) those of w (zero-padded to
 * whole 8-byte words)? */
static inline int bytes_equal(const char *a, const char *a_end, const char *w, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if ((size_t)(a_end - a) >= ((n + 7) & ~(size_t)7)) {
        size_t i = 0;
        for (; n - i > 8; i += 8) {
            uint64_t x, y;
            memcpy(&x, a + i, 8);
            memcpy(&y, w + i, 8);
            if (x != y)
                return 0;
        }
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, w + i, 8);
        return ((x ^ y) & (~0ull >> (64 - 8 * (n - i)))) == 0;
    }
#endif
    return (size_t)(a_end - a) >= n && memcmp(a, w, n) == 0;
}

static int skip_value(scan_t *s, int depth);

static int skip_container(scan_t *s, int depth)
{
    int rc = KS_OK;
    int obj = (*s->p == '{');
    unsigned char close = obj ? '}' : ']';
    if (depth > KS_JSON_MAX_DEPTH)
        return fail(s, s->p, "nesting too deep");
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return KS_OK;
    }
    for (;;) {
        if (obj) {
            const char *b, *c;
            int esc;
            if (s->p >= s->end || *s->p != '"')
                return fail(s, s->p, "expected a string key");
            if ((rc = lex_string(s, &b, &c, &esc)))
                return rc;
            skip_ws(s);
            if (s->p >= s->end || *s->p != ':')
                return fail(s, s->p, "expected ':' after a key");
            s->p++;
            skip_ws(s);
        }
        if ((rc = skip_value(s, depth)))
            return rc;
        skip_ws(s);
        if (s->p >= s->end)
            return fail(s, s->p, obj ? "unterminated object" : "unterminated array");
        if (*s->p == ',') {
            s->p++;
            skip_ws(s);
            continue;
        }
        if (*s->p == close) {
            s->p++;
            return KS_OK;
        }
        return fail(s, s->p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static inline int match_lit(scan_t *s, const char *w, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0)
        return fail(s, s->p, "invalid literal");
    s->p += n;
    return KS_OK;
}

/* Validates and skips one value at s->p (whitespace already skipped). */
static int skip_value(scan_t *s, int depth)
{
    if (s->p >= s->end)
        return fail(s, s->p, "expected a value");
    switch (*s->p) {
    case '"': {
        const char *b, *c;
        int esc;
        return lex_string(s, &b, &c, &esc);
    }
    case '{':
    case '[':
        return skip_container(s, depth + 1);
    case 't': return match_lit(s, "true", 4);
    case 'f': return match_lit(s, "false", 5);
    case 'n': return match_lit(s, "null", 4);
    default: {
        const char *stop;
        const char *msg = ks_json_lex_number((const char *)s->p, (const char *)s->end, &stop, NULL);
        if (msg)
            return fail(s, (const unsigned char *)stop, msg);
        s->p = (const unsigned char *)stop;
        return KS_OK;
    }
    }
}

static const double exact_pow10[16] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};

/* The common number: -?(0|[1-9][0-9]*)(.[0-9]+)? with at most 15 digits in
 * all, no exponent. Its significand and power of ten are exact doubles, so
 * one IEEE division is the correctly rounded value, strtod's (Clinger's
 * fast path). Returns 0 for anything else, which ks_json_lex_number
 * reads (or rejects) in full. */
static inline int fast_number(scan_t *s, double *out)
{
    const unsigned char *q = s->p, *end = s->end;
    int neg = q < end && *q == '-';
    q += neg;
    const unsigned char *d0 = q;
    uint64_t m = 0;
    while (q < end && (unsigned)(*q - '0') <= 9 && q - d0 < 16)
        m = m * 10 + (unsigned)(*q++ - '0');
    size_t n = (size_t)(q - d0), nfrac = 0;
    if (n == 0 || (n > 1 && *d0 == '0'))
        return 0;
    if (q < end && *q == '.') {
        const unsigned char *f0 = ++q;
        while (q < end && (unsigned)(*q - '0') <= 9 && n + (size_t)(q - f0) < 16)
            m = m * 10 + (unsigned)(*q++ - '0');
        nfrac = (size_t)(q - f0);
        if (nfrac == 0)
            return 0;
    }
    if (n + nfrac > 15 || (q < end && ((unsigned)(*q - '0') <= 9 || (*q | 0x20) == 'e')))
        return 0;
    double v = (double)m / exact_pow10[nfrac];
    *out = neg ? -v : v;
    s->p = q;
    return 1;
}

/* Reads the value of declared field `fi` at s->p into its slot (or records
 * why it does not fit in bad[fi]). */
static int read_field(scan_t *s, int fi, int depth)
{
    ks_decoder_t *d = s->d;
    ks_field_type_t t = d->type[fi];
    ks_value_t *v = &s->out[fi];
    int rc = KS_OK;

    d->bad[fi] = SEEN_NONE;
    v->type = KS_VAL_MISSING;
    if (s->p >= s->end)
        return fail(s, s->p, "expected a value");
    unsigned c = *s->p;
    if (c == '"') {
        const char *body, *close;
        int esc;
        if ((rc = lex_string(s, &body, &close, &esc)))
            return rc;
        if (t == KS_FIELD_NUMBER || t == KS_FIELD_BOOL) {
            d->bad[fi] = BAD_STRING;
            return KS_OK;
        }
        size_t n = (size_t)(close - body);
        v->type = KS_VAL_STR;
        if (esc) {
            char *o = ks_arena_alloc(s->arena, n ? n : 1);
            n = ks_json_unescape(body, close, o);
            v->str = o;
        } else {
            v->str = body;
        }
        v->len = (uint32_t)n;
        return KS_OK;
    }
    if (c == '-' || (c - '0') <= 9) {
        const char *stop;
        double num;
        int want = (t == KS_FIELD_NUMBER || t == KS_FIELD_TIMESTAMP || t == KS_FIELD_ANY);
        const unsigned char *tok = s->p;
        if (!want || !fast_number(s, &num)) {
            const char *msg = ks_json_lex_number((const char *)s->p, (const char *)s->end, &stop,
                                                 want ? &num : NULL);
            if (msg)
                return fail(s, (const unsigned char *)stop, msg);
            s->p = (const unsigned char *)stop;
            if (!want) {
                d->bad[fi] = BAD_NUMBER;
                return KS_OK;
            }
            if (KS_UNLIKELY(isinf(num))) {
                d->bad[fi] = BAD_RANGE;
                return KS_OK;
            }
        }
        v->type = KS_VAL_NUM;
        v->num = num;
        /* the token, for writers that copy it (value.h); long ones are not */
        v->num_len = s->p - tok <= KS_NUM_TOKEN_MAX ? (uint16_t)(s->p - tok) : 0;
        v->num_off = (uint32_t)(tok - s->buf);
        return KS_OK;
    }
    switch (c) {
    case 't':
    case 'f':
        if ((rc = c == 't' ? match_lit(s, "true", 4) : match_lit(s, "false", 5)))
            return rc;
        if (t == KS_FIELD_BOOL || t == KS_FIELD_ANY) {
            v->type = KS_VAL_BOOL;
            v->b = (c == 't');
        } else {
            d->bad[fi] = BAD_BOOL;
        }
        return KS_OK;
    case 'n':
        if ((rc = match_lit(s, "null", 4)))
            return rc;
        v->type = KS_VAL_NULL;
        return KS_OK;
    case '{':
    case '[':
        d->bad[fi] = c == '{' ? BAD_OBJECT : BAD_ARRAY;
        return skip_container(s, depth + 1);
    default:
        return fail(s, s->p, "expected a value");
    }
}

/* Forgets what an earlier occurrence of a parent key contributed. */
static void reset_level(ks_decoder_t *d, const dlevel_t *l, ks_value_t *out)
{
    for (size_t i = 0; i < l->n_fields_below; i++) {
        out[l->fields_below[i]].type = KS_VAL_MISSING;
        d->bad[l->fields_below[i]] = SEEN_NONE;
    }
    for (size_t i = 0; i < l->n_levels_below; i++)
        d->lstate[l->levels_below[i]] = SEEN_NONE;
}

/* Matches a key (n > 0, readable up to k_end) against the names of a level;
 * NULL if none. */
static inline const dname_t *match_key(const dlevel_t *l, const char *k, size_t n,
                                       const char *k_end)
{
    uint32_t h = key_hash(k, n) & l->slot_mask;
    int16_t i;
    while ((i = l->slots[h]) >= 0) {
        const dname_t *dn = &l->names[i];
        if (dn->len == n && bytes_equal(k, k_end, dn->quoted, n))
            return dn;
        h = (h + 1) & l->slot_mask;
    }
    return NULL;
}

/* Scans an object at s->p ('{') whose wanted names are level `l` (which
 * learns the order of its names). */
static int scan_object(scan_t *s, dlevel_t *l, int depth)
{
    ks_decoder_t *d = s->d;
    int rc = KS_OK;
    if (depth > KS_JSON_MAX_DEPTH)
        return fail(s, s->p, "nesting too deep");
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return KS_OK;
    }
    for (int pos = 0;; pos++) {
        const char *kb, *kc;
        int esc;
        if (KS_UNLIKELY(s->p >= s->end || *s->p != '"'))
            return fail(s, s->p, s->p >= s->end ? "unterminated object" : "expected a string key");
        const dname_t *dn = NULL;
        int want = pos < ORDER_MAX ? l->order[pos] : -1;
        if (want >= 0 && bytes_equal((const char *)s->p + 1, (const char *)s->end,
                                     l->names[want].quoted, l->names[want].len + 1)) {
            dn = &l->names[want]; /* the name the last object had here */
            s->p += dn->len + 2;
        } else {
            if ((rc = lex_string(s, &kb, &kc, &esc)))
                return rc;
            size_t kl = (size_t)(kc - kb);
            if (!esc) {
                if (kl > 0 && kl <= d->max_name)
                    dn = match_key(l, kb, kl, (const char *)s->end);
            } else if (kl <= d->keybuf_size) {
                size_t n = ks_json_unescape(kb, kc, d->keybuf);
                if (n > 0 && n <= d->max_name)
                    dn = match_key(l, d->keybuf, n, d->keybuf + d->keybuf_size);
            }
            if (pos < ORDER_MAX)
                l->order[pos] = (int16_t)(dn && dn->predictable ? dn - l->names : -1);
        }
        if (KS_UNLIKELY(s->p >= s->end || *s->p != ':')) {
            skip_ws(s);
            if (s->p >= s->end || *s->p != ':')
                return fail(s, s->p, "expected ':' after a key");
        }
        s->p++;
        skip_ws(s);

        if (!dn) {
            rc = skip_value(s, depth);
        } else if (dn->field >= 0) {
            rc = read_field(s, dn->field, depth);
        } else {
            dlevel_t *sub = dn->sub;
            if (d->lstate[sub->id] != SEEN_NONE)
                reset_level(d, sub, s->out);
            if (s->p < s->end && *s->p == '{') {
                d->lstate[sub->id] = SEEN_OBJECT;
                rc = scan_object(s, sub, depth + 1);
            } else {
                unsigned c = s->p < s->end ? *s->p : 0;
                d->lstate[sub->id] = c == 'n' ? SEEN_NULL : c == '"' ? BAD_STRING
                                   : c == 't' || c == 'f' ? BAD_BOOL : c == '[' ? BAD_ARRAY
                                   : BAD_NUMBER;
                rc = skip_value(s, depth);
            }
        }
        if (rc)
            return rc;
        if (KS_UNLIKELY(s->p >= s->end || (*s->p != ',' && *s->p != '}'))) {
            skip_ws(s);
            if (KS_UNLIKELY(s->p >= s->end))
                return fail(s, s->p, "unterminated object");
        }
        if (*s->p == ',') {
            s->p++;
            if (KS_UNLIKELY(s->p < s->end && *s->p != '"'))
                skip_ws(s);
            continue;
        }
        if (*s->p == '}') {
            s->p++;
            return KS_OK;
        }
        return fail(s, s->p, "expected ',' or '}'");
    }
}

static const char *bad_name(int b)
{
    switch (b) {
    case BAD_STRING: return "a string";
    case BAD_NUMBER: return "a number";
    case BAD_BOOL: return "a boolean";
    case BAD_OBJECT: return "an object";
    case BAD_ARRAY: return "an array";
    default: return "something else";
    }
}

static const char *expected_name(ks_field_type_t t)
{
    switch (t) {
    case KS_FIELD_NUMBER: return "a number";
    case KS_FIELD_STRING: return "a string";
    case KS_FIELD_BOOL: return "true or false";
    case KS_FIELD_TIMESTAMP: return "a number or a string";
    case KS_FIELD_ANY: return "a scalar (number, string, boolean or null)";
    }
    return "?";
}

/* Is any parent level of field fi something other than an object or null?
 * Returns the state and writes the parent's dotted name. */
static int bad_parent(const ks_decoder_t *d, const ks_field_t *f, char *name, size_t size)
{
    /* walk the path from the root to find the outermost non-object parent */
    const dlevel_t *l = d->levels[0];
    size_t off = 0;
    for (int k = 0; k < f->n_path - 1; k++) {
        const dname_t *dn = level_find((dlevel_t *)l, f->path[k]);
        int w = snprintf(name + off, size - off, "%s%s", k ? "." : "", f->path[k]);
        if (w > 0 && (size_t)w < size - off)
            off += (size_t)w;
        uint8_t st = d->lstate[dn->sub->id];
        if (st == SEEN_NONE || st == SEEN_NULL)
            return SEEN_NONE;
        if (st != SEEN_OBJECT)
            return st;
        l = dn->sub;
    }
    return SEEN_NONE;
}

/* Defaults, required checks and type errors, in declaration order. */
static int finish(ks_decoder_t *d, ks_value_t *out, ks_decode_error_t *err)
{
    const ks_schema_t *sc = d->schema;
    for (size_t i = 0; i < sc->n_decoded; i++) {
        const ks_field_t *f = &sc->fields[i];
        ks_value_t *v = &out[i];
        if (KS_UNLIKELY(d->bad[i] != SEEN_NONE)) {
            err->cls = KS_ERRCLASS_TYPE;
            if (d->bad[i] == BAD_RANGE)
                snprintf(err->msg, sizeof(err->msg),
                         "field '%s': number out of the range of a double", f->name);
            else
                snprintf(err->msg, sizeof(err->msg), "field '%s': expected %s, got %s",
                         f->name, expected_name(f->type), bad_name(d->bad[i]));
            return KS_EINVAL;
        }
        if (KS_LIKELY(v->type != KS_VAL_MISSING && v->type != KS_VAL_NULL))
            continue;
        if (f->n_path > 1 && v->type == KS_VAL_MISSING) {
            char pname[128];
            int st = bad_parent(d, f, pname, sizeof(pname));
            if (st != SEEN_NONE) {
                err->cls = KS_ERRCLASS_TYPE;
                snprintf(err->msg, sizeof(err->msg),
                         "field '%s': expected '%s' to be an object, got %s", f->name, pname,
                         bad_name(st));
                return KS_EINVAL;
            }
        }
        if (f->has_default) {
            *v = f->dflt;
        } else if (f->required) {
            err->cls = KS_ERRCLASS_MISSING_FIELD;
            snprintf(err->msg, sizeof(err->msg), "required field '%s' is %s", f->name,
                     v->type == KS_VAL_NULL ? "null" : "missing");
            return KS_EINVAL;
        }
    }
    return KS_OK;
}

int ks_decoder_decode(ks_decoder_t *d, const char *buf, size_t len, ks_value_t *out,
                      ks_arena_t *arena, ks_decode_error_t *err)
{
    int rc = KS_OK;
    scan_t s;
    const ks_schema_t *sc = d->schema;

    err->cls = KS_ERRCLASS_NONE;
    err->msg[0] = '\0';
    for (size_t i = 0; i < sc->n_decoded; i++)
        out[i].type = KS_VAL_MISSING;
    memset(d->bad, 0, sc->n_decoded);
    memset(d->lstate, 0, d->n_levels);

    s.d = d;
    s.buf = s.p = (const unsigned char *)buf;
    s.end = s.buf + len;
    s.out = out;
    s.arena = arena;
    s.errmsg = NULL;
    s.errat = NULL;

    if (len > KS_JSON_MAX_INPUT) {
        rc = KS_EINVAL;
        err->cls = KS_ERRCLASS_DESERIALIZATION;
        snprintf(err->msg, sizeof(err->msg), "event of %zu bytes is too large", len);
        goto out;
    }
    skip_ws(&s);
    if (s.p >= s.end || *s.p != '{') {
        rc = fail(&s, s.p, s.p >= s.end ? "empty event" : "the event is not a JSON object");
        goto malformed;
    }
    if ((rc = scan_object(&s, d->levels[0], 1)))
        goto malformed;
    skip_ws(&s);
    if (s.p < s.end) {
        rc = fail(&s, s.p, "unexpected data after the JSON object");
        goto malformed;
    }
    rc = finish(d, out, err);
    goto out;
malformed:
    err->cls = KS_ERRCLASS_DESERIALIZATION;
    snprintf(err->msg, sizeof(err->msg), "invalid JSON at byte %zu: %s",
             (size_t)(s.errat - s.buf), s.errmsg ? s.errmsg : "malformed");
    /* slots may hold pointers into a half-read payload: clear them */
    for (size_t i = 0; i < sc->n_decoded; i++)
        out[i].type = KS_VAL_MISSING;
out:
    return rc;
}
