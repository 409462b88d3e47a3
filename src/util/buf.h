/*
 * buf.h - a growable byte buffer for building records (output JSON, DLQ
 * records). Reused across events: ks_buf_reset() keeps the memory, so the
 * steady state allocates nothing. One buffer belongs to one thread.
 */
#ifndef KS_BUF_H
#define KS_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct ks_buf {
    char *data;
    size_t len, cap;
} ks_buf_t;

void ks_buf_reserve(ks_buf_t *b, size_t extra);
void ks_buf_append(ks_buf_t *b, const void *p, size_t n);
void ks_buf_puts(ks_buf_t *b, const char *s);
void ks_buf_putc(ks_buf_t *b, char c);
void ks_buf_printf(ks_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends a JSON string literal (quotes included), escaping as RFC 8259 needs. */
void ks_buf_json_string(ks_buf_t *b, const char *s, size_t n);
/* Appends a double so that it parses back to the same bits (%.17g; integers
 * print without exponent); non-finite values print as null. */
void ks_buf_json_double(ks_buf_t *b, double v);
/* Appends an epoch-milliseconds time as ISO-8601 UTC "2026-11-22T01:39:27.123Z". */
void ks_buf_iso8601_ms(ks_buf_t *b, int64_t epoch_ms);
static inline void ks_buf_reset(ks_buf_t *b) { b->len = 0; }
void ks_buf_free(ks_buf_t *b);

#endif
