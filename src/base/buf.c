/*
 * buf.c - growable byte buffer and the JSON/time formatting helpers used by
 * the output encoder (see buf.h).
 */
#include "base/buf.h"
#include "base/common.h"
#include "base/fmtnum.h"
#include "base/json.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void ks_buf_grow(ks_buf_t *b, size_t extra)
{
    if (b->cap - b->len >= extra + 1)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra + 1)
        cap *= 2;
    b->data = ks_xrealloc(b->data, cap);
    b->cap = cap;
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

void ks_buf_csv_field(ks_buf_t *b, const char *s, size_t n)
{
    int quote = 0;
    for (size_t i = 0; i < n && !quote; i++)
        quote = s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
    if (!quote) {
        ks_buf_append(b, s, n);
        return;
    }
    ks_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            ks_buf_putc(b, '"');
        ks_buf_putc(b, s[i]);
    }
    ks_buf_putc(b, '"');
}

/* Length of the run of bytes at s (n of them) that need no escaping: the
 * scan stops at non-ASCII bytes too, which are copied as they are. */
static size_t json_plain_run(const char *s, size_t n)
{
    const char *p = s, *end = s + n;
    for (;;) {
        p = ks_json_plain_end(p, end);
        if (p == end || (unsigned char)*p < 0x80)
            return (size_t)(p - s);
        p++;
    }
}

void ks_buf_json_string(ks_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    ks_buf_reserve(b, n + 2);
    b->data[b->len++] = '"';
    for (size_t i = 0;;) {
        size_t run = json_plain_run(s + i, n - i);
        ks_buf_append(b, s + i, run);
        i += run;
        if (i >= n)
            break;
        unsigned char c = (unsigned char)s[i++];
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
    ks_buf_putc(b, '"');
}

static int integral(double v)
{
    return v == (double)(int64_t)v && fabs(v) < 1e15 && !(v == 0 && signbit(v));
}

/* Non-finite and integral values for json_double17; returns 1 if it wrote v. */
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

/* ---- %.*g without printf ----------------------------------------------------
 *
 * For 1e-6 <= |v| < 2^53 the digits are computed exactly in 128-bit integers:
 * with v = f * 2^e (f < 2^53, -128 < e <= 0) and s = prec - 1 - floor(log10 v),
 * v * 10^s = f * 10^s / 2^-e, and f * 10^s < 2^127 for s <= 22. Rounding the
 * quotient half-to-even gives exactly the digits printf("%.*g") prints.
 * Anything outside that range goes to snprintf. (The shortest round-trip
 * text, json_double's, is base/fmtnum.c's.)
 */
typedef unsigned __int128 u128;

static u128 pow10_tab[39];

static void pow10_init(void)
{
    u128 r = 1;
    for (int k = 0; k < 39; k++, r *= 10)
        pow10_tab[k] = r;
}

static inline u128 pow10_u128(int k)
{
    return pow10_tab[k];
}

/* Exact prec-digit decimal of v > 0: *n has prec digits, *e10 is the power of
 * ten of its first digit. Returns 0 when v is outside the fast range. */
static int exact_digits(double v, int prec, uint64_t *n, int *e10)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    int bexp = (int)((bits >> 52) & 0x7ff);
    if (bexp == 0 || v < 1e-6 || v >= 9007199254740992.0)
        return 0;
    uint64_t f = (bits & ((UINT64_C(1) << 52) - 1)) | (UINT64_C(1) << 52);
    int sh = 1075 - bexp; /* v = f / 2^sh */
    if (sh <= 0 || sh >= 120)
        return 0;
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, pow10_init);
    /* floor(log10 v) from the binary exponent (within one; the loop corrects) */
    int e = ((bexp - 1023) * 78913) >> 18, carried = 0;
    for (int tries = 0; tries < 4; tries++) {
        int s = prec - 1 - e;
        if (s < 0 || s > 22)
            return 0;
        u128 p10 = pow10_u128(s), a = (u128)f * p10;
        u128 q = a >> sh, r = a - (q << sh), half = (u128)1 << (sh - 1);
        if (q < pow10_u128(prec - 1) && !carried) { /* below prec digits: e one too high */
            e--;
            continue;
        }
        int up = r > half || (r == half && (q & 1));
        q += up;
        if (q >= pow10_u128(prec)) { /* too many digits, or rounding carried into one more */
            carried = q == pow10_u128(prec) && (q - up) < pow10_u128(prec);
            e++;
            continue;
        }
        *n = (uint64_t)q;
        *e10 = e;
        return 1;
    }
    return 0;
}

/* Writes prec digits of n with exponent e10 the way %g does (trailing zeros
 * dropped, exponent form below 1e-4 or from 10^prec). Returns the length. */
static int format_g(char *out, int neg, uint64_t n, int prec, int e10)
{
    char d[24];
    for (int i = prec - 1; i >= 0; i--) {
        d[i] = (char)('0' + n % 10);
        n /= 10;
    }
    int nd = prec;
    while (nd > 1 && d[nd - 1] == '0')
        nd--;
    int len = 0;
    if (neg)
        out[len++] = '-';
    if (e10 < -4 || e10 >= prec) {
        out[len++] = d[0];
        if (nd > 1) {
            out[len++] = '.';
            memcpy(out + len, d + 1, (size_t)nd - 1);
            len += nd - 1;
        }
        len += sprintf(out + len, "e%c%02d", e10 < 0 ? '-' : '+', e10 < 0 ? -e10 : e10);
    } else if (e10 < 0) {
        out[len++] = '0';
        out[len++] = '.';
        for (int i = 0; i < -e10 - 1; i++)
            out[len++] = '0';
        memcpy(out + len, d, (size_t)nd);
        len += nd;
    } else {
        memcpy(out + len, d, (size_t)e10 + 1 <= (size_t)nd ? (size_t)e10 + 1 : (size_t)nd);
        len += e10 + 1 <= nd ? e10 + 1 : nd;
        for (int i = nd; i < e10 + 1; i++)
            out[len++] = '0';
        if (nd > e10 + 1) {
            out[len++] = '.';
            memcpy(out + len, d + e10 + 1, (size_t)(nd - e10 - 1));
            len += nd - e10 - 1;
        }
    }
    out[len] = '\0';
    return len;
}

int ks_fmt_double(char *out, double v, int prec)
{
    uint64_t n;
    int e10;
    if (exact_digits(fabs(v), prec, &n, &e10))
        return format_g(out, v < 0, n, prec, e10);
    return snprintf(out, 32, "%.*g", prec, v);
}

void ks_buf_json_double(ks_buf_t *b, double v)
{
    if (!isfinite(v)) {
        ks_buf_puts(b, "null");
        return;
    }
    ks_buf_reserve(b, KS_FMT_SHORTEST_MAX);
    b->len += (size_t)ks_fmt_shortest(b->data + b->len, v);
}

void ks_buf_json_double17(ks_buf_t *b, double v)
{
    if (put_special(b, v))
        return;
    ks_buf_reserve(b, 40);
    b->len += (size_t)ks_fmt_double(b->data + b->len, v, 17);
    b->data[b->len] = '\0';
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
