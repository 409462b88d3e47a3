/*
 * buf.c - growable byte buffer and the JSON/time formatting helpers used by
 * the output encoder (see buf.h).
 */
#include "util/buf.h"
#include "core/common.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void ks_buf_reserve(ks_buf_t *b, size_t extra)
{
    if (b->cap - b->len >= extra + 1)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra + 1)
        cap *= 2;
    b->data = ks_xrealloc(b->data, cap);
    b->cap = cap;
}

void ks_buf_append(ks_buf_t *b, const void *p, size_t n)
{
    ks_buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void ks_buf_puts(ks_buf_t *b, const char *s)
{
    ks_buf_append(b, s, strlen(s));
}

void ks_buf_putc(ks_buf_t *b, char c)
{
    ks_buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void ks_buf_printf(ks_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    ks_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void ks_buf_json_string(ks_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    ks_buf_reserve(b, n + 2);
    b->data[b->len++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            ks_buf_reserve(b, 1);
            b->data[b->len++] = (char)c;
            continue;
        }
        ks_buf_reserve(b, 6);
        b->data[b->len++] = '\\';
        switch (c) {
        case '"': b->data[b->len++] = '"'; break;
        case '\\': b->data[b->len++] = '\\'; break;
        case '\n': b->data[b->len++] = 'n'; break;
        case '\r': b->data[b->len++] = 'r'; break;
        case '\t': b->data[b->len++] = 't'; break;
        default:
            b->data[b->len++] = 'u';
            b->data[b->len++] = '0';
            b->data[b->len++] = '0';
            b->data[b->len++] = hex[c >> 4];
            b->data[b->len++] = hex[c & 15];
        }
    }
    ks_buf_reserve(b, 1);
    b->data[b->len++] = '"';
    b->data[b->len] = '\0';
}

void ks_buf_json_double(ks_buf_t *b, double v)
{
    if (!isfinite(v)) {
        ks_buf_puts(b, "null");
        return;
    }
    if (v == (double)(int64_t)v && fabs(v) < 1e15 && !(v == 0 && signbit(v))) {
        ks_buf_printf(b, "%lld", (long long)v);
        return;
    }
    /* shortest of %.15g/%.16g/%.17g that round-trips */
    char tmp[32];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (prec == 17 || strtod(tmp, NULL) == v)
            break;
    }
    ks_buf_puts(b, tmp);
}

void ks_buf_iso8601_ms(ks_buf_t *b, int64_t epoch_ms)
{
    time_t secs = (time_t)(epoch_ms / 1000);
    int ms = (int)(epoch_ms % 1000);
    if (ms < 0) {
        ms += 1000;
        secs -= 1;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    ks_buf_printf(b, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

void ks_buf_free(ks_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
