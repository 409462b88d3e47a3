/*
 * test_buf.c - the output formatting helpers against libc: ISO-8601 times vs
 * gmtime, fixed3 vs "%.3f", and doubles that must parse back to the same bits.
 */
#include "util/buf.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

static uint64_t rng = 88172645463325252ULL;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
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

int main(void)
{
    RUN(test_iso8601);
    RUN(test_fixed3_and_doubles);
    return test_summary();
}
