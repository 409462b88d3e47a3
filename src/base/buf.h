/*
 * buf.h - a growable byte buffer for building records (output JSON, DLQ
 * records). Reused across events: ks_buf_reset() keeps the memory, so the
 * steady state allocates nothing. One buffer belongs to one thread.
 *
 * The data is always NUL-terminated (data[len] == '\0' once anything was
 * written). Appending is inline: the output encoder appends a few dozen
 * pieces per record, and a call per piece was a fifth of its cost.
 */
#ifndef KS_BUF_H
#define KS_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct ks_buf {
    char *data;
    size_t len, cap;
} ks_buf_t;

/* Grows the buffer so that extra bytes and a NUL fit after len (the slow
 * path of ks_buf_reserve). */
void ks_buf_grow(ks_buf_t *b, size_t extra);

static inline void ks_buf_reserve(ks_buf_t *b, size_t extra)
{
    if (b->cap - b->len < extra + 1)
        ks_buf_grow(b, extra);
}

static inline void ks_buf_append(ks_buf_t *b, const void *p, size_t n)
{
    ks_buf_reserve(b, n);
    if (n) /* (p may be NULL for nothing: memcpy must not see it) */
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static inline void ks_buf_puts(ks_buf_t *b, const char *s)
{
    ks_buf_append(b, s, strlen(s));
}

static inline void ks_buf_putc(ks_buf_t *b, char c)
{
    ks_buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void ks_buf_printf(ks_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends a JSON string literal (quotes included), escaping as RFC 8259 needs. */
void ks_buf_json_string(ks_buf_t *b, const char *s, size_t n);
/* Appends one CSV field (RFC 4180): as it is, or in double quotes with
 * inner quotes doubled when it holds a comma, a quote, CR or LF. */
void ks_buf_csv_field(ks_buf_t *b, const char *s, size_t n);
/* Append a double so that it parses back to the same bits; non-finite values
 * as null. json_double writes the shortest such text (base/fmtnum.h: "44.22",
 * "0.1", integers without exponent, never longer than %.17g);
 * json_double17 always prints 17 significant digits, as %.17g does. */
void ks_buf_json_double(ks_buf_t *b, double v);
void ks_buf_json_double17(ks_buf_t *b, double v);
/* Writes v exactly as printf("%.*g", prec, v) would (prec 1..17) into out
 * (at least 32 bytes); returns the length. Integer arithmetic in the common
 * range, snprintf outside it. */
int ks_fmt_double(char *out, double v, int prec);
/* Appends an epoch-milliseconds time as ISO-8601 UTC "2026-11-22T01:39:27.123Z". */
void ks_buf_iso8601_ms(ks_buf_t *b, int64_t epoch_ms);
/* Appends v >= 0 with exactly three decimals ("12.345"), like "%.3f". */
void ks_buf_fixed3(ks_buf_t *b, double v);
static inline void ks_buf_reset(ks_buf_t *b) { b->len = 0; }
void ks_buf_free(ks_buf_t *b);

#endif
