/*
 * test_buf.c - the output formatting helpers against libc: ISO-8601 times vs
 * gmtime, fixed3 vs "%.3f", and doubles that must parse back to the same bits.
 */
#include "base/buf.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

static uint64_t rng = 88172645463325252ULL;
static uint64_t next(void)
{
    return test_xorshift64(&rng);
}

static void test_iso8601(void)
{
    ks_buf_t b = {0};
    for (int i = 0; i < 200000; i++) {
        /* years 1900..2200, both signs of epoch, every millisecond value */
        int64_t ms = (int64_t)(next() % 9467280000000ULL) - 2208988800000LL;
        ks_buf_reset(&b);
        ks_buf_iso8601_ms(&b, ms);
        time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        char want[96];
        snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(ms - (int64_t)secs * 1000));
        if (strcmp(b.data, want) != 0) {
            CHECK_EQ_STR(b.data, want);
            break;
        }
    }
    ks_buf_free(&b);
}

static void test_fixed3_and_doubles(void)
{
    ks_buf_t b = {0};
    for (int i = 0; i < 100000; i++) {
        double v = (double)(next() % 100000000) / 997.0;
        char want[64];
        snprintf(want, sizeof(want), "%.3f", v);
        ks_buf_reset(&b);
        ks_buf_fixed3(&b, v);
        /* both round to the nearest thousandth; they may differ only at exact .5 ties */
        if (strcmp(b.data, want) != 0 && fabs(strtod(b.data, NULL) - strtod(want, NULL)) > 0.0011) {
            CHECK_EQ_STR(b.data, want);
            break;
        }
        uint64_t bits = next();
        double d;
        memcpy(&d, &bits, sizeof(d));
        if (!isfinite(d))
            continue;
        ks_buf_reset(&b);
        ks_buf_json_double(&b, d);
        CHECK(strtod(b.data, NULL) == d);
        ks_buf_reset(&b);
        ks_buf_json_double17(&b, d);
        CHECK(strtod(b.data, NULL) == d);
    }
    ks_buf_reset(&b);
    ks_buf_json_double(&b, 44.22);
    CHECK_EQ_STR(b.data, "44.22");
    ks_buf_reset(&b);
    ks_buf_json_double(&b, -0.0);
    CHECK_EQ_STR(b.data, "-0");
    ks_buf_reset(&b);
    ks_buf_json_string(&b, "a\"\\\n\x01", 5);
    CHECK_EQ_STR(b.data, "\"a\\\"\\\\\\n\\u0001\"");
    ks_buf_free(&b);
}

/* ks_fmt_double must print exactly what printf prints, in and out of its
 * integer fast range, for every precision; json_double must round-trip and
 * never be longer than %.17g. */
static void test_fmt_double_matches_printf(void)
{
    char got[48], want[48];
    int mismatches = 0;
    for (int i = 0; i < 2000000 && mismatches < 5; i++) {
        double v;
        uint64_t r = next();
        switch (i % 4) {
        case 0: /* any bits */
            memcpy(&v, &r, sizeof(v));
            break;
        case 1: /* probabilities */
            v = (double)(r >> 11) / 9007199254740992.0;
            break;
        case 2: /* money-like and their neighbours */
            v = nextafter((double)(r % 10000000) / 100.0, (r & 1) ? 1e300 : -1e300);
            break;
        default: /* log-uniform over the fast range and past its edges */
            v = pow(10, -8 + (double)(r % 30000) / 1000.0) * ((r >> 40) & 1 ? -1 : 1);
        }
        if (!isfinite(v))
            continue;
        int prec = i % 7 == 0 ? 1 + (int)(r >> 59) % 17 : 17;
        ks_fmt_double(got, v, prec);
        snprintf(want, sizeof(want), "%.*g", prec, v);
        if (strcmp(got, want) != 0) {
            mismatches++;
            CHECK_EQ_STR(got, want);
        }
        char want17[48];
        snprintf(want17, sizeof(want17), "%.17g", v);
        ks_buf_t b = {0};
        ks_buf_json_double(&b, v);
        if (strtod(b.data, NULL) != v || b.len > strlen(want17)) {
            mismatches++;
            CHECK_MSG(0, "json_double(%.17g) = %s", v, b.data);
        }
        ks_buf_free(&b);
    }
    /* halfway cases and powers of two, where rounding and the lower gap differ */
    for (int k = -20; k < 52 && mismatches < 5; k++) {
        double p2 = ldexp(1, k);
        double vs[] = {p2, nextafter(p2, 0), nextafter(p2, 1e300), 0.5 + ldexp(1, -k - 30)};
        for (size_t j = 0; j < 4; j++) {
            ks_fmt_double(got, vs[j], 17);
            snprintf(want, sizeof(want), "%.17g", vs[j]);
            CHECK_EQ_STR(got, want);
            ks_buf_t b = {0};
            ks_buf_json_double(&b, vs[j]);
            CHECK(strtod(b.data, NULL) == vs[j]);
            ks_buf_free(&b);
        }
    }
    /* next to powers of ten, where rounding can carry into one more digit */
    for (int k = -7; k <= 16 && mismatches < 5; k++) {
        double p10 = pow(10, k), vs[] = {p10, nextafter(p10, 0), nextafter(nextafter(p10, 0), 0),
                                         nextafter(p10, 1e300)};
        for (size_t j = 0; j < 4; j++)
            for (int prec = 1; prec <= 17; prec++) {
                ks_fmt_double(got, vs[j], prec);
                snprintf(want, sizeof(want), "%.*g", prec, vs[j]);
                if (strcmp(got, want) != 0) {
                    mismatches++;
                    CHECK_EQ_STR(got, want);
                }
            }
    }
    ks_buf_t b = {0};
    ks_buf_json_double(&b, 0.1);
    CHECK_EQ_STR(b.data, "0.1");
    ks_buf_reset(&b);
    ks_buf_json_double(&b, 0.38876206603455088);
    CHECK_EQ_STR(b.data, "0.3887620660345509");
    ks_buf_reset(&b);
    ks_buf_json_double(&b, 1e-5);
    CHECK_EQ_STR(b.data, "1e-05");
    ks_buf_reset(&b);
    ks_buf_json_double(&b, 44.22);
    CHECK_EQ_STR(b.data, "44.22");
    ks_buf_free(&b);
}

/* json_string against a byte-at-a-time escaper, on strings of every byte
 * (controls, quotes, backslashes, UTF-8 and stray high bytes), 0-40 long. */
static void test_json_string_matches_reference(void)
{
    ks_buf_t b = {0};
    char in[48], want[48 * 6 + 3];
    for (int i = 0; i < 200000; i++) {
        size_t n = next() % 41, w = 0;
        for (size_t k = 0; k < n; k++) {
            uint64_t r = next();
            static const char special[] = "\"\\\n\r\t\x01\x1f\x7f";
            if (r % 4 == 0)
                in[k] = (char)(r >> 8); /* any byte */
            else if (r % 4 == 1)
                in[k] = special[(r >> 8) % 8];
            else
                in[k] = (char)('a' + (r >> 8) % 26);
        }
        want[w++] = '"';
        for (size_t k = 0; k < n; k++) {
            unsigned char c = (unsigned char)in[k];
            if (c == '"' || c == '\\')
                w += (size_t)sprintf(want + w, "\\%c", c);
            else if (c == '\n')
                w += (size_t)sprintf(want + w, "\\n");
            else if (c == '\r')
                w += (size_t)sprintf(want + w, "\\r");
            else if (c == '\t')
                w += (size_t)sprintf(want + w, "\\t");
            else if (c < 0x20)
                w += (size_t)sprintf(want + w, "\\u%04x", c);
            else
                want[w++] = (char)c;
        }
        want[w++] = '"';
        ks_buf_reset(&b);
        ks_buf_json_string(&b, in, n);
        if (b.len != w || memcmp(b.data, want, w) != 0 || b.data[b.len] != '\0') {
            CHECK_MSG(0, "json_string of %zu bytes differs (case %d)", n, i);
            break;
        }
    }
    ks_buf_free(&b);
}

int main(void)
{
    RUN(test_json_string_matches_reference);
    RUN(test_fmt_double_matches_printf);
    RUN(test_iso8601);
    RUN(test_fixed3_and_doubles);
    return test_summary();
}
