/*
 * json.h - a small, strict JSON DOM for files kscore reads at start-up (model
 * files: kscore JSON models, XGBoost JSON), plus the token-level helpers the
 * streaming event decoder (decode/json_decoder.c) shares with it.
 *
 * Grammar is RFC 8259, strictly: one value (any type) surrounded by optional
 * whitespace (space, tab, CR, LF) and nothing else; no comments, no trailing
 * commas, no NaN/Infinity, no leading '+' or zeros. Strings must be valid UTF-8
 * (no overlong forms, no encoded surrogates, nothing above U+10FFFF); control
 * characters must be escaped; \uXXXX escapes are decoded to UTF-8, surrogate
 * pairs are combined and lone surrogates are an error. Numbers are converted
 * to the nearest double exactly as strtod() does in the C locale (-0 kept);
 * a number whose magnitude overflows a double is an error in the DOM (there is
 * no JSON spelling for infinity, so such a file is almost surely broken).
 * Objects keep their members in file order; duplicate keys are kept, and
 * ks_json_get() returns the last one (the same "last wins" rule the event
 * decoder applies).
 *
 * Limits, so a hostile file cannot crash the process or blow the stack:
 * nesting depth KS_JSON_MAX_DEPTH, input size KS_JSON_MAX_INPUT. Allocation
 * failures are reported as KS_ENOMEM, never abort.
 *
 * Memory: one parse = one document: all nodes and strings live in a few large
 * blocks owned by the root; ks_json_free(root) releases everything at once.
 * Child nodes of an array or object are contiguous, so ks_json_at() is O(1).
 * A parsed document is immutable and may be read from any number of threads.
 */
#ifndef KS_JSON_H
#define KS_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/common.h"

#define KS_JSON_MAX_DEPTH 512
#define KS_JSON_MAX_INPUT ((size_t)UINT32_MAX - 1)

typedef enum {
    KS_JSON_NULL = 0,
    KS_JSON_BOOL,
    KS_JSON_NUMBER,
    KS_JSON_STRING,
    KS_JSON_ARRAY,
    KS_JSON_OBJECT,
} ks_json_type_t;

/* One node. Fields are readable directly, but the accessors below are the
 * documented way (they check the type and accept NULL). */
typedef struct ks_json {
    const char *key;          /* member name (NUL-terminated) inside an object, else NULL */
    union {
        double num;           /* KS_JSON_NUMBER */
        const char *str;      /* KS_JSON_STRING: NUL-terminated (may also hold \u0000) */
        struct ks_json *items;/* KS_JSON_ARRAY / KS_JSON_OBJECT: len contiguous nodes */
    } u;
    uint32_t len;             /* string bytes / number of items / 0 */
    uint32_t line, col;       /* where the value starts (1-based; col counts bytes) */
    uint8_t type;             /* ks_json_type_t */
    uint8_t boolean;          /* KS_JSON_BOOL */
    uint8_t key_has_nul;      /* the key holds \u0000: no C string names it */
} ks_json_t;

/* Parses `len` bytes of `buf` (need not be NUL-terminated) into a new document.
 * On success *root owns everything (free with ks_json_free) and does not point
 * into `buf`. On failure returns KS_EINVAL (with "line L, column C: ..." in
 * errbuf) or KS_ENOMEM, and *root is NULL. Thread-safe. */
int ks_json_parse(const char *buf, size_t len, ks_json_t **root, char *errbuf, size_t errsize);

/* Frees a document; only for a root returned by ks_json_parse. NULL is fine. */
void ks_json_free(ks_json_t *root);

/* Accessors: all accept NULL and wrong types gracefully. */
ks_json_type_t ks_json_type(const ks_json_t *v);       /* NULL -> KS_JSON_NULL */
const char *ks_json_type_name(ks_json_type_t t);      /* "object", "number", ... */
int ks_json_is(const ks_json_t *v, ks_json_type_t t); /* v && v->type == t */
/* Member of an object by key (the last one if the key repeats), else NULL. */
const ks_json_t *ks_json_get(const ks_json_t *obj, const char *key);
/* Items of an array / members of an object / bytes of a string; else 0. */
size_t ks_json_len(const ks_json_t *v);
/* i-th item of an array or member of an object (in file order), else NULL. */
const ks_json_t *ks_json_at(const ks_json_t *v, size_t i);
/* Member name of a node inside an object, else NULL. */
const char *ks_json_key(const ks_json_t *v);
/* Value accessors: return `dflt` / NULL when v is not of that type. */
double ks_json_num(const ks_json_t *v, double dflt);
const char *ks_json_str(const ks_json_t *v);           /* NUL-terminated; NULL if not a string */
int ks_json_bool(const ks_json_t *v, int dflt);

/* Loader helpers that write a sentence into errbuf ("line 3, column 7: ..."). */
/* Formats "line L, column C: <fmt>" for node v and returns KS_EINVAL. */
int ks_json_err(const ks_json_t *v, char *errbuf, size_t errsize, const char *fmt, ...)
    KS_PRINTF(4, 5);
/* Member `key` of object `obj` that must exist and have type `t`; NULL with a
 * message ("... key 'trees' is missing" / "... 'trees' must be an array, not
 * a string") otherwise. */
const ks_json_t *ks_json_need(const ks_json_t *obj, const char *key, ks_json_type_t t,
                              char *errbuf, size_t errsize);
/* Reads a number member into *out (KS_EINVAL with a message if missing or not
 * a number). */
int ks_json_need_num(const ks_json_t *obj, const char *key, double *out,
                     char *errbuf, size_t errsize);

/* ---- Token-level helpers (shared with the streaming decoder). ----
 * Each takes [p, end) starting at the token and returns NULL on success or a
 * static error message, with *stop set to the end of the token (success) or
 * to the offending byte (error). */

/* A number token: validates the JSON number grammar and, if out != NULL,
 * converts it exactly as strtod would in the C locale (overflow gives
 * +-HUGE_VAL; the caller decides; underflow gives the correctly rounded
 * subnormal or zero). Tokens over 512 bytes are converted through one
 * temporary malloc (the only allocation here; failure reports a message). */
const char *ks_json_lex_number(const char *p, const char *end, const char **stop, double *out);

/* The first byte in [p, end) that a JSON string does not hold as it is: '"',
 * '\\', a control character or a non-ASCII byte (end if none). Eight bytes
 * at a time: the lowest flagged byte of a word is always a true hit, because
 * the borrows of the byte tests only carry upwards. The lexers below, the
 * event decoder and the string writer (base/buf.c) all scan with it. */
static inline const char *ks_json_plain_end(const char *p, const char *end)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = 0x0101010101010101ull;
    while (end - p >= 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
        uint64_t m = (((q - ones) & ~q) | ((b - ones) & ~b) | ((x - ones * 0x20) & ~x) | x) &
                     (ones * 0x80);
        if (m)
            return p + (__builtin_ctzll(m) >> 3);
        p += 8;
    }
#endif
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80)
            break;
        p++;
    }
    return p;
}

/* A string body, p just after the opening quote: validates UTF-8, control
 * characters and escapes (incl. surrogate pairs). *stop = the closing quote.
 * *escaped is set to 1 if the body holds any backslash escape. */
const char *ks_json_lex_string(const char *p, const char *end, const char **stop, int *escaped);

/* Unescapes a body validated by ks_json_lex_string ([p, close)) into out,
 * which needs room for (close - p) bytes; returns the number of bytes written. */
size_t ks_json_unescape(const char *p, const char *close, char *out);

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if it is invalid or
 * truncated by `end` (strict: no overlongs, no surrogates, <= U+10FFFF). */
size_t ks_utf8_seq(const unsigned char *p, const unsigned char *end);

#endif
