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

static int integral(double v)
{
    return v == (double)(int64_t)v && fabs(v) < 1e15 && !(v == 0 && signbit(v));
}

/* Non-finite and integral values, shared by both double writers; returns 1
 * if it wrote v. */
static int put_special(ks_buf_t *b, double v)
{
    if (!isfinite(v)) {
        ks_buf_puts(b, "null");
        return 1;
    }
    if (integral(v)) {
        ks_buf_printf(b, "%lld", (long long)v);
        return 1;
    }
    return 0;
}

void ks_buf_json_double(ks_buf_t *b, double v)
{
    if (put_special(b, v))
        return;
    /* input-like numbers (44.22) round-trip at 15 digits; else 17 always do */
    char tmp[32];
    snprintf(tmp, sizeof(tmp), "%.15g", v);
    if (strtod(tmp, NULL) != v)
        snprintf(tmp, sizeof(tmp), "%.17g", v);
    ks_buf_puts(b, tmp);
}

void ks_buf_json_double17(ks_buf_t *b, double v)
{
    if (put_special(b, v))
        return;
    ks_buf_reserve(b, 32);
    b->len += (size_t)snprintf(b->data + b->len, 32, "%.17g", v);
}

/* n zero-padded decimal digits of v at p */
static void put_digits(char *p, unsigned v, int n)
{
    while (n-- > 0) {
        p[n] = (char)('0' + v % 10);
        v /= 10;
    }
}

void ks_buf_iso8601_ms(ks_buf_t *b, int64_t epoch_ms)
{
    /* civil-from-days (proleptic Gregorian), no gmtime_r/printf on the hot path */
    int64_t ms = epoch_ms % 1000, secs = epoch_ms / 1000;
    if (ms < 0) {
        ms += 1000;
        secs -= 1;
    }
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days -= 1;
    }
    int64_t z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153, d = doy - (153 * mp + 2) / 5 + 1;
    unsigned m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    if (y < 0 || y > 9999) { /* out of ISO's 4-digit range: let libc say it */
        time_t t = (time_t)secs;
        struct tm tm;
        gmtime_r(&t, &tm);
        ks_buf_printf(b, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                      tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)ms);
        return;
    }
    ks_buf_reserve(b, 24);
    char *p = b->data + b->len;
    put_digits(p, (unsigned)y, 4);
    p[4] = '-';
    put_digits(p + 5, m, 2);
    p[7] = '-';
    put_digits(p + 8, d, 2);
    p[10] = 'T';
    put_digits(p + 11, (unsigned)(sod / 3600), 2);
    p[13] = ':';
    put_digits(p + 14, (unsigned)(sod / 60 % 60), 2);
    p[16] = ':';
    put_digits(p + 17, (unsigned)(sod % 60), 2);
    p[19] = '.';
    put_digits(p + 20, (unsigned)ms, 3);
    p[23] = 'Z';
    b->len += 24;
    b->data[b->len] = '\0';
}

void ks_buf_fixed3(ks_buf_t *b, double v)
{
    if (!(v >= 0 && v < 1e12)) {
        ks_buf_printf(b, "%.3f", v);
        return;
    }
    uint64_t thousandths = (uint64_t)(v * 1000 + 0.5);
    char tmp[32];
    int n = 0;
    uint64_t whole = thousandths / 1000;
    char rev[24];
    int k = 0;
    do {
        rev[k++] = (char)('0' + whole % 10);
        whole /= 10;
    } while (whole);
    while (k)
        tmp[n++] = rev[--k];
    tmp[n++] = '.';
    put_digits(tmp + n, (unsigned)(thousandths % 1000), 3);
    n += 3;
    ks_buf_append(b, tmp, (size_t)n);
}

void ks_buf_free(ks_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
