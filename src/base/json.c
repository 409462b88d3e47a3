/*
 * json.c - strict JSON DOM parser and the token helpers the event decoder
 * shares with it (see json.h for the contract).
 *
 * The parser is recursive descent with an explicit depth limit. Children of a
 * container are first pushed onto one growable scratch stack of nodes; when the
 * container closes they are copied in one memcpy into the document's block
 * memory, so every array/object ends up contiguous and the scratch stack is
 * reused (each node is copied exactly once). Strings are copied (unescaped)
 * into the same blocks, NUL-terminated.
 *
 * Numbers: the digits are accumulated while the grammar is checked. When the
 * decimal significand fits in 53 bits and the power of ten is exact as a double
 * (|e| <= 22, or a little more for short significands), one IEEE multiply or
 * divide gives the correctly rounded result (Clinger's fast path). Everything
 * else goes to strtod_l() with a "C" locale object on a NUL-terminated copy of
 * the token, which is what strtod does by definition; so the result is always
 * bit-identical to strtod. Line and column are only computed when the parser
 * reports an error; nodes record line and byte column cheaply from the start
 * of the current line, which skip_ws keeps up to date.
 */
#include "base/json.h"

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- numbers */

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_init(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

static const double exact_pow10[23] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

#define TWO_POW_53 ((uint64_t)1 << 53)

/* Slow path: strtod_l on a NUL-terminated copy of [p, q). */
static const char *convert_slow(const char *p, const char *q, double *out)
{
    char local[512];
    size_t n = (size_t)(q - p);
    char *tmp = local;
    const char *msg = NULL;

    pthread_once(&c_locale_once, c_locale_init);
    if (c_locale == (locale_t)0)
        return "cannot create the C locale to convert numbers";
    if (n >= sizeof(local)) {
        tmp = malloc(n + 1);
        if (!tmp)
            return "out of memory converting a long number";
    }
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    char *endp = NULL;
    *out = strtod_l(tmp, &endp, c_locale);
    if (endp != tmp + n)
        msg = "invalid number"; /* cannot happen after the grammar check */
    if (tmp != local)
        free(tmp);
    return msg;
}

#define ONES8 0x0101010101010101ull
#define DIGIT_HI 0x3030303030303030ull
#define NIBBLE_HI 0xF0F0F0F0F0F0F0F0ull

/* The end of the run of ASCII digits at p: 8 bytes at a time. A byte is a
 * digit when its high nibble is 3 and adding 6 keeps it so; an add that
 * carries into the next byte starts at a non-digit, so the lowest flagged
 * byte is always the first non-digit. */
static inline const char *skip_digits(const char *p, const char *end)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (end - p >= 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        uint64_t nd = ((x & NIBBLE_HI) ^ DIGIT_HI) | (((x + 6 * ONES8) & NIBBLE_HI) ^ DIGIT_HI);
        if (nd)
            return p + (__builtin_ctzll(nd) >> 3);
        p += 8;
    }
#endif
    while (p < end && (unsigned)(*p - '0') <= 9)
        p++;
    return p;
}

/* Value of 8 ASCII digits at p: pairs, then quads, then the eight. */
static inline uint64_t eight_digits(const char *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    x -= DIGIT_HI;
    x = (x * 10 + (x >> 8)) & 0x00FF00FF00FF00FFull;
    x = (x * 100 + (x >> 16)) & 0x0000FFFF0000FFFFull;
    return (x * 10000 + (x >> 32)) & 0xFFFFFFFFull;
#else
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v * 10 + (uint64_t)(p[i] - '0');
    return v;
#endif
}

/* Appends the digits [p, q) to the significand m (ndig digits so far, at most
 * 19 kept; the rest only say whether a nonzero digit was dropped). Returns
 * how many digits were kept. */
static inline int take_digits(const char *p, const char *q, uint64_t *m, int *ndig, int *truncated)
{
    int kept = 0;
    while (q - p >= 8 && *ndig + 8 <= 19) {
        *m = *m * 100000000 + eight_digits(p);
        p += 8;
        *ndig += 8;
        kept += 8;
    }
    for (; p < q; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (*ndig < 19) {
            *m = *m * 10 + d;
            ++*ndig;
            kept++;
        } else {
            *truncated |= (d != 0);
        }
    }
    return kept;
}

const char *ks_json_lex_number(const char *start, const char *end, const char **stop, double *out)
{
    const char *p = start;
    int neg = 0;

    /* the grammar first: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    if (p >= end || (unsigned)(*p - '0') > 9) {
        *stop = p;
        return "expected a digit";
    }
    const char *int_b = p, *frac_b = NULL, *frac_e = NULL;
    if (*p == '0') {
        p++;
        if (p < end && (unsigned)(*p - '0') <= 9) {
            *stop = p;
            return "leading zeros are not allowed in numbers";
        }
    } else {
        p = skip_digits(p + 1, end);
    }
    const char *int_e = p;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || (unsigned)(*p - '0') > 9) {
            *stop = p;
            return "expected a digit after the decimal point";
        }
        frac_b = p;
        p = frac_e = skip_digits(p + 1, end);
    }
    long exp10 = 0; /* value = m * 10^exp10 (if !truncated) */
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        int eneg = 0;
        long e = 0;
        if (p < end && (*p == '+' || *p == '-')) {
            eneg = (*p == '-');
            p++;
        }
        if (p >= end || (unsigned)(*p - '0') > 9) {
            *stop = p;
            return "expected a digit in the exponent";
        }
        while (p < end && (unsigned)(*p - '0') <= 9) {
            if (e < 1000000)
                e = e * 10 + (*p - '0');
            p++;
        }
        exp10 = eneg ? -e : e;
    }
    *stop = p;
    if (!out)
        return NULL;

    /* the significand: up to 19 significant digits */
    uint64_t m = 0;
    int ndig = 0, truncated = 0;
    if (*int_b != '0') {
        int kept = take_digits(int_b, int_e, &m, &ndig, &truncated);
        exp10 += (int_e - int_b) - kept; /* integer digits beyond 19 */
    }
    if (frac_b) {
        const char *f = frac_b;
        if (m == 0) { /* leading zeros are not significant */
            while (f < frac_e && *f == '0')
                f++;
            exp10 -= f - frac_b;
        }
        exp10 -= take_digits(f, frac_e, &m, &ndig, &truncated);
    }

    if (!truncated) {
        if (m == 0) {
            *out = neg ? -0.0 : 0.0;
            return NULL;
        }
        if (m <= TWO_POW_53) {
            if (exp10 >= -22 && exp10 <= 22) {
                double d = (double)m;
                d = exp10 < 0 ? d / exact_pow10[-exp10] : d * exact_pow10[exp10];
                *out = neg ? -d : d;
                return NULL;
            }
            if (exp10 > 22 && exp10 <= 22 + 15) {
                /* Move the excess power into the integer if it stays exact. */
                uint64_t mm = m;
                long k = exp10 - 22;
                while (k > 0 && mm <= TWO_POW_53 / 10) {
                    mm *= 10;
                    k--;
                }
                if (k == 0) {
                    double d = (double)mm * exact_pow10[22];
                    *out = neg ? -d : d;
                    return NULL;
                }
            }
        }
    }
    return convert_slow(start, p, out);
}

/* ---------------------------------------------------------------- strings */

size_t ks_utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t avail = (size_t)(end - p);
    if (c < 0x80)
        return 1;
    if (c < 0xC2) /* continuation byte or overlong 2-byte lead */
        return 0;
    if (c < 0xE0) {
        if (avail < 2 || (p[1] & 0xC0) != 0x80)
            return 0;
        return 2;
    }
    if (c < 0xF0) {
        if (avail < 3)
            return 0;
        unsigned lo = 0x80, hi = 0xBF;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* UTF-16 surrogates */
        if (p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80)
            return 0;
        return 3;
    }
    if (c < 0xF5) {
        if (avail < 4)
            return 0;
        unsigned lo = 0x80, hi = 0xBF;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
        if (p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        return 4;
    }
    return 0;
}

static int hexval(unsigned c)
{
    if (c - '0' <= 9)
        return (int)(c - '0');
    c |= 0x20;
    if (c - 'a' <= 5)
        return (int)(c - 'a' + 10);
    return -1;
}

/* Reads 4 hex digits at p (p + 4 <= end checked by caller); -1 if invalid. */
static long hex4(const unsigned char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

const char *ks_json_lex_string(const char *start, const char *end_, const char **stop, int *escaped)
{
    const unsigned char *p = (const unsigned char *)start;
    const unsigned char *end = (const unsigned char *)end_;
    const char *msg = NULL;

    *escaped = 0;
    for (;;) {
        p = (const unsigned char *)ks_json_plain_end((const char *)p, (const char *)end);
        if (p >= end) {
            msg = "unterminated string";
            goto out;
        }
        unsigned c = *p;
        if (c == '"')
            break;
        if (c < 0x20) {
            msg = "control character in string (must be escaped)";
            goto out;
        }
        if (c >= 0x80) {
            size_t n = ks_utf8_seq(p, end);
            if (n == 0) {
                msg = "invalid UTF-8 in string";
                goto out;
            }
            p += n;
            continue;
        }
        /* backslash */
        *escaped = 1;
        if (p + 1 >= end) {
            msg = "unterminated string";
            goto out;
        }
        switch (p[1]) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            p += 2;
            break;
        case 'u': {
            if (end - p < 6) {
                msg = "truncated \\u escape";
                goto out;
            }
            long u = hex4(p + 2);
            if (u < 0) {
                msg = "invalid \\u escape (expected 4 hex digits)";
                goto out;
            }
            if (u >= 0xDC00 && u <= 0xDFFF) {
                msg = "lone low surrogate in \\u escape";
                goto out;
            }
            if (u >= 0xD800 && u <= 0xDBFF) {
                if (end - p < 12 || p[6] != '\\' || p[7] != 'u') {
                    msg = "high surrogate not followed by a low surrogate escape";
                    goto out;
                }
                long lo = hex4(p + 8);
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    if (lo >= 0)
                        p += 6;
                    msg = lo < 0 ? "high surrogate not followed by a low surrogate escape"
                                 : "high surrogate followed by a non-low-surrogate escape";
                    goto out;
                }
                p += 12;
            } else {
                p += 6;
            }
            break;
        }
        default:
            msg = "invalid escape in string";
            goto out;
        }
    }
out:
    *stop = (const char *)p;
    return msg;
}

static size_t put_utf8(char *o, unsigned long cp)
{
    unsigned char *u = (unsigned char *)o;
    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        u[0] = (unsigned char)(0xC0 | (cp >> 6));
        u[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        u[0] = (unsigned char)(0xE0 | (cp >> 12));
        u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    u[0] = (unsigned char)(0xF0 | (cp >> 18));
    u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    u[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t ks_json_unescape(const char *start, const char *close, char *out)
{
    const unsigned char *p = (const unsigned char *)start;
    const unsigned char *end = (const unsigned char *)close;
    char *o = out;

    while (p < end) {
        const unsigned char *q = memchr(p, '\\', (size_t)(end - p));
        if (!q)
            q = end;
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        p = q;
        if (p >= end)
            break;
        unsigned c = p[1];
        p += 2;
        switch (c) {
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned long cp = (unsigned long)hex4(p);
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned long lo = (unsigned long)hex4(p + 2);
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            o += put_utf8(o, cp);
            break;
        }
        default: *o++ = (char)c; break; /* " \ / */
        }
    }
    return (size_t)(o - out);
}

/* ---------------------------------------------------------------- the DOM */

typedef struct block {
    struct block *next;
    size_t size;
    size_t used;
    _Alignas(16) char data[];
} block_t;

typedef struct doc {
    ks_json_t root;        /* first member: a root pointer is a doc pointer */
    block_t *blocks;
} doc_t;

typedef struct parser {
    const unsigned char *buf, *p, *end;
    const unsigned char *line_start;
    uint32_t line;
    int depth;
    ks_json_t *stack;      /* scratch: children of the open containers */
    size_t n_stack, cap_stack;
    doc_t *doc;
    size_t next_block;     /* size of the next block to allocate */
    char *errbuf;
    size_t errsize;
} parser_t;

static void *doc_alloc(parser_t *ps, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    block_t *b = ps->doc->blocks;
    if (!b || b->size - b->used < n) {
        size_t size = ps->next_block;
        if (size < n)
            size = n;
        b = malloc(sizeof(*b) + size);
        if (!b)
            return NULL;
        b->size = size;
        b->used = 0;
        b->next = ps->doc->blocks;
        ps->doc->blocks = b;
        if (ps->next_block < ((size_t)64 << 20))
            ps->next_block *= 2;
    }
    void *r = b->data + b->used;
    b->used += n;
    return r;
}

/* Reports an error at `at`. Line: counted from the last known line start if
 * `at` is past it (it always is: the parser never looks back). */
static int parse_fail(parser_t *ps, const unsigned char *at, const char *msg)
{
    uint32_t line = ps->line;
    const unsigned char *ls = ps->line_start;
    for (const unsigned char *q = ls; q < at; q++) {
        if (*q == '\n') {
            line++;
            ls = q + 1;
        }
    }
    uint32_t col = (uint32_t)(at - ls) + 1;
    if (at >= ps->end)
        return ks_err(ps->errbuf, ps->errsize, KS_EINVAL,
                      "invalid JSON at line %u, column %u (end of input): %s", line, col, msg);
    return ks_err(ps->errbuf, ps->errsize, KS_EINVAL,
                  "invalid JSON at line %u, column %u (byte %zu): %s", line, col,
                  (size_t)(at - ps->buf), msg);
}

static int nomem(parser_t *ps)
{
    return ks_err(ps->errbuf, ps->errsize, KS_ENOMEM, "out of memory parsing JSON");
}

static inline void skip_ws(parser_t *ps)
{
    const unsigned char *p = ps->p, *end = ps->end;
    while (p < end) {
        unsigned c = *p;
        if (c == ' ' || c == '\t' || c == '\r') {
            p++;
        } else if (c == '\n') {
            p++;
            ps->line++;
            ps->line_start = p;
        } else {
            break;
        }
    }
    ps->p = p;
}

/* Pushes a node for a value starting at ps->p; returns its index via *idx. */
static int push_node(parser_t *ps, const char *key, size_t *idx)
{
    if (ps->n_stack == ps->cap_stack) {
        size_t cap = ps->cap_stack ? ps->cap_stack * 2 : 256;
        ks_json_t *s = realloc(ps->stack, cap * sizeof(*s));
        if (!s)
            return nomem(ps);
        ps->stack = s;
        ps->cap_stack = cap;
    }
    ks_json_t *n = &ps->stack[ps->n_stack];
    memset(n, 0, sizeof(*n));
    n->key = key;
    n->line = ps->line;
    n->col = (uint32_t)(ps->p - ps->line_start) + 1;
    *idx = ps->n_stack++;
    return KS_OK;
}

/* Parses a string at ps->p (on the opening quote) into document memory. */
static int parse_string_into(parser_t *ps, const char **out, uint32_t *out_len)
{
    const char *body = (const char *)ps->p + 1;
    const char *close;
    int escaped;
    const char *msg = ks_json_lex_string(body, (const char *)ps->end, &close, &escaped);
    if (msg)
        return parse_fail(ps, (const unsigned char *)close, msg);
    size_t raw = (size_t)(close - body);
    char *s = doc_alloc(ps, raw + 1);
    if (!s)
        return nomem(ps);
    size_t n = raw;
    if (escaped)
        n = ks_json_unescape(body, close, s);
    else
        memcpy(s, body, raw);
    s[n] = '\0';
    *out = s;
    *out_len = (uint32_t)n;
    ps->p = (const unsigned char *)close + 1;
    return KS_OK;
}

static int parse_value(parser_t *ps, const char *key);

/* Moves the children pushed since `base` into document memory under node idx. */
static int close_container(parser_t *ps, size_t idx, size_t base)
{
    size_t n = ps->n_stack - base;
    ks_json_t *items = NULL;
    if (n > 0) {
        items = doc_alloc(ps, n * sizeof(ks_json_t));
        if (!items)
            return nomem(ps);
        memcpy(items, ps->stack + base, n * sizeof(ks_json_t));
    }
    ps->n_stack = base;
    ps->stack[idx].u.items = items;
    ps->stack[idx].len = (uint32_t)n;
    return KS_OK;
}

static int parse_array(parser_t *ps, size_t idx)
{
    int rc = KS_OK;
    size_t base = ps->n_stack;
    ps->p++; /* '[' */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        goto done;
    }
    for (;;) {
        if ((rc = parse_value(ps, NULL)) != KS_OK)
            goto out;
        skip_ws(ps);
        if (ps->p >= ps->end) {
            rc = parse_fail(ps, ps->p, "unterminated array");
            goto out;
        }
        if (*ps->p == ',') {
            ps->p++;
            skip_ws(ps);
            continue;
        }
        if (*ps->p == ']') {
            ps->p++;
            break;
        }
        rc = parse_fail(ps, ps->p, "expected ',' or ']' in array");
        goto out;
    }
done:
    rc = close_container(ps, idx, base);
out:
    return rc;
}

static int parse_object(parser_t *ps, size_t idx)
{
    int rc = KS_OK;
    size_t base = ps->n_stack;
    ps->p++; /* '{' */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        goto done;
    }
    for (;;) {
        if (ps->p >= ps->end || *ps->p != '"') {
            rc = parse_fail(ps, ps->p, ps->p >= ps->end ? "unterminated object"
                                                         : "expected a string key in object");
            goto out;
        }
        const char *key;
        uint32_t key_len;
        if ((rc = parse_string_into(ps, &key, &key_len)) != KS_OK)
            goto out;
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':') {
            rc = parse_fail(ps, ps->p, "expected ':' after object key");
            goto out;
        }
        ps->p++;
        skip_ws(ps);
        if ((rc = parse_value(ps, key)) != KS_OK)
            goto out;
        if (KS_UNLIKELY(strlen(key) != key_len))
            ps->stack[ps->n_stack - 1].key_has_nul = 1;
        skip_ws(ps);
        if (ps->p >= ps->end) {
            rc = parse_fail(ps, ps->p, "unterminated object");
            goto out;
        }
        if (*ps->p == ',') {
            ps->p++;
            skip_ws(ps);
            continue;
        }
        if (*ps->p == '}') {
            ps->p++;
            break;
        }
        rc = parse_fail(ps, ps->p, "expected ',' or '}' in object");
        goto out;
    }
done:
    rc = close_container(ps, idx, base);
out:
    return rc;
}

static int match_word(parser_t *ps, const char *w, size_t n)
{
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, w, n) != 0)
        return 0;
    ps->p += n;
    return 1;
}

/* Parses one value at ps->p (whitespace already skipped) and pushes its node. */
static int parse_value(parser_t *ps, const char *key)
{
    int rc;
    size_t idx = 0;
    if (ps->p >= ps->end)
        return parse_fail(ps, ps->p, "expected a value");
    if ((rc = push_node(ps, key, &idx)) != KS_OK)
        return rc;
    ks_json_t *n = &ps->stack[idx];
    unsigned c = *ps->p;
    switch (c) {
    case '{':
    case '[':
        if (ps->depth >= KS_JSON_MAX_DEPTH) {
            char msg[64];
            snprintf(msg, sizeof(msg), "nesting deeper than %d levels", KS_JSON_MAX_DEPTH);
            return parse_fail(ps, ps->p, msg);
        }
        ps->depth++;
        n->type = c == '{' ? KS_JSON_OBJECT : KS_JSON_ARRAY;
        rc = c == '{' ? parse_object(ps, idx) : parse_array(ps, idx);
        ps->depth--;
        return rc;
    case '"':
        n->type = KS_JSON_STRING;
        return parse_string_into(ps, &n->u.str, &n->len);
    case 't':
        n->type = KS_JSON_BOOL;
        n->boolean = 1;
        return match_word(ps, "true", 4) ? KS_OK : parse_fail(ps, ps->p, "invalid literal");
    case 'f':
        n->type = KS_JSON_BOOL;
        return match_word(ps, "false", 5) ? KS_OK : parse_fail(ps, ps->p, "invalid literal");
    case 'n':
        n->type = KS_JSON_NULL;
        return match_word(ps, "null", 4) ? KS_OK : parse_fail(ps, ps->p, "invalid literal");
    default:
        if (c == '-' || (c - '0') <= 9) {
            const char *stop;
            double d;
            const char *msg = ks_json_lex_number((const char *)ps->p, (const char *)ps->end,
                                                 &stop, &d);
            if (msg)
                return parse_fail(ps, (const unsigned char *)stop, msg);
            if (isinf(d))
                return parse_fail(ps, ps->p, "number out of the range of a double");
            n->type = KS_JSON_NUMBER;
            n->u.num = d;
            ps->p = (const unsigned char *)stop;
            return KS_OK;
        }
        return parse_fail(ps, ps->p, "expected a value");
    }
}

int ks_json_parse(const char *buf, size_t len, ks_json_t **root, char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    parser_t ps;
    memset(&ps, 0, sizeof(ps));
    *root = NULL;
    if (len > KS_JSON_MAX_INPUT)
        return ks_err(errbuf, errsize, KS_EINVAL, "JSON input of %zu bytes is larger than the "
                      "%zu-byte limit", len, KS_JSON_MAX_INPUT);
    ps.doc = calloc(1, sizeof(doc_t));
    if (!ps.doc)
        return ks_err(errbuf, errsize, KS_ENOMEM, "out of memory parsing JSON");
    ps.buf = ps.p = ps.line_start = (const unsigned char *)buf;
    ps.end = ps.buf + len;
    ps.line = 1;
    ps.errbuf = errbuf;
    ps.errsize = errsize;
    /* Nodes take ~32 bytes per 2..10 input bytes; start blocks near that. */
    ps.next_block = len < 16384 ? 16384 : (len > ((size_t)32 << 20) ? ((size_t)32 << 20) : len);

    skip_ws(&ps);
    if (ps.p >= ps.end) {
        rc = parse_fail(&ps, ps.p, "empty document");
        goto out;
    }
    if ((rc = parse_value(&ps, NULL)) != KS_OK)
        goto out;
    skip_ws(&ps);
    if (ps.p < ps.end) {
        rc = parse_fail(&ps, ps.p, "unexpected data after the JSON value");
        goto out;
    }
    ps.doc->root = ps.stack[0];
    *root = &ps.doc->root;
out:
    free(ps.stack);
    if (rc != KS_OK)
        ks_json_free(&ps.doc->root);
    return rc;
}

void ks_json_free(ks_json_t *root)
{
    if (!root)
        return;
    doc_t *doc = (doc_t *)root;
    block_t *b = doc->blocks;
    while (b) {
        block_t *next = b->next;
        free(b);
        b = next;
    }
    free(doc);
}

/* ---------------------------------------------------------------- accessors */

ks_json_type_t ks_json_type(const ks_json_t *v)
{
    return v ? (ks_json_type_t)v->type : KS_JSON_NULL;
}

const char *ks_json_type_name(ks_json_type_t t)
{
    switch (t) {
    case KS_JSON_NULL: return "null";
    case KS_JSON_BOOL: return "boolean";
    case KS_JSON_NUMBER: return "number";
    case KS_JSON_STRING: return "string";
    case KS_JSON_ARRAY: return "array";
    case KS_JSON_OBJECT: return "object";
    }
    return "unknown";
}

int ks_json_is(const ks_json_t *v, ks_json_type_t t)
{
    return v && v->type == t;
}

const ks_json_t *ks_json_get(const ks_json_t *obj, const char *key)
{
    if (!obj || obj->type != KS_JSON_OBJECT || !key)
        return NULL;
    for (size_t i = obj->len; i-- > 0;) {
        const ks_json_t *m = &obj->u.items[i];
        if (!m->key_has_nul && strcmp(m->key, key) == 0)
            return m;
    }
    return NULL;
}

size_t ks_json_len(const ks_json_t *v)
{
    if (!v)
        return 0;
    switch (v->type) {
    case KS_JSON_STRING:
    case KS_JSON_ARRAY:
    case KS_JSON_OBJECT:
        return v->len;
    default:
        return 0;
    }
}

const ks_json_t *ks_json_at(const ks_json_t *v, size_t i)
{
    if (!v || (v->type != KS_JSON_ARRAY && v->type != KS_JSON_OBJECT) || i >= v->len)
        return NULL;
    return &v->u.items[i];
}

const char *ks_json_key(const ks_json_t *v)
{
    return v ? v->key : NULL;
}

double ks_json_num(const ks_json_t *v, double dflt)
{
    return v && v->type == KS_JSON_NUMBER ? v->u.num : dflt;
}

const char *ks_json_str(const ks_json_t *v)
{
    return v && v->type == KS_JSON_STRING ? v->u.str : NULL;
}

int ks_json_bool(const ks_json_t *v, int dflt)
{
    return v && v->type == KS_JSON_BOOL ? v->boolean : dflt;
}

int ks_json_err(const ks_json_t *v, char *errbuf, size_t errsize, const char *fmt, ...)
{
    if (errbuf && errsize > 0) {
        int n = 0;
        if (v)
            n = snprintf(errbuf, errsize, "line %u, column %u: ", v->line, v->col);
        if (n < 0)
            n = 0;
        if ((size_t)n < errsize) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(errbuf + n, errsize - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return KS_EINVAL;
}

const ks_json_t *ks_json_need(const ks_json_t *obj, const char *key, ks_json_type_t t,
                              char *errbuf, size_t errsize)
{
    if (!obj || obj->type != KS_JSON_OBJECT) {
        ks_json_err(obj, errbuf, errsize, "expected an object holding '%s', got %s", key,
                    ks_json_type_name(ks_json_type(obj)));
        return NULL;
    }
    const ks_json_t *m = ks_json_get(obj, key);
    if (!m) {
        ks_json_err(obj, errbuf, errsize, "key '%s' is missing", key);
        return NULL;
    }
    if (m->type != t) {
        ks_json_err(m, errbuf, errsize, "'%s' must be %s %s, not %s %s", key,
                    t == KS_JSON_ARRAY || t == KS_JSON_OBJECT ? "an" : "a",
                    ks_json_type_name(t),
                    m->type == KS_JSON_ARRAY || m->type == KS_JSON_OBJECT ? "an" : "a",
                    ks_json_type_name((ks_json_type_t)m->type));
        return NULL;
    }
    return m;
}

int ks_json_need_num(const ks_json_t *obj, const char *key, double *out,
                     char *errbuf, size_t errsize)
{
    const ks_json_t *m = ks_json_need(obj, key, KS_JSON_NUMBER, errbuf, errsize);
    if (!m)
        return KS_EINVAL;
    *out = m->u.num;
    return KS_OK;
}
