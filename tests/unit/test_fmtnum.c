/*
 * test_fmtnum.c - ks_fmt_shortest against libc: millions of doubles (any bit
 * pattern, subnormals, powers of two and ten and their neighbours, integers,
 * signed zeros, model-like probabilities, short decimals) must each read back
 * through strtod to the same bits, be a valid JSON number, be no longer than
 * printf("%.17g"), and (for a sample) carry exactly the digits of the
 * correctly rounded "%.{n}e" for the smallest n that round-trips, or fewer.
 */
#include "base/fmtnum.h"
#include "base/json.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint64_t next(void)
{
    return test_xorshift64(&rng);
}

static int failures;

/* The oracle's digits: the fewest "%.*e" digits that round-trip, trailing
 * zeros dropped; v = digits * 10^exp10. */
static void printf_shortest(double v, uint64_t *digits, int *exp10, int *n)
{
    char buf[48];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*e", prec - 1, fabs(v));
        if (strtod(buf, NULL) == fabs(v))
            break;
    }
    uint64_t f = 0;
    int nd = 0;
    const char *p = buf;
    for (; *p != 'e'; p++)
        if (*p != '.') {
            f = f * 10 + (uint64_t)(*p - '0');
            nd++;
        }
    int k = atoi(p + 1) - (nd - 1);
    while (f && f % 10 == 0) {
        f /= 10;
        k++;
        nd--;
    }
    *digits = f;
    *exp10 = f ? k : 0;
    *n = f ? nd : 1;
}

static int count_digits(uint64_t f)
{
    int n = 1;
    while (f >= 10) {
        f /= 10;
        n++;
    }
    return n;
}

/* Every property for one value; `oracle` also compares the digits. */
static void check(double v, int oracle)
{
    char out[64], p17[48];
    if (!isfinite(v) || failures >= 10)
        return;
    test_checks_++;
    memset(out, 'x', sizeof(out));
    int len = ks_fmt_shortest(out, v);
    snprintf(p17, sizeof(p17), "%.17g", v);
    double back = strtod(out, NULL);
    const char *stop = NULL;
    const char *lexmsg = ks_json_lex_number(out, out + len, &stop, NULL);
    int ok = len > 0 && len < KS_FMT_SHORTEST_MAX && out[len] == '\0' &&
             (size_t)len == strlen(out) && memcmp(&back, &v, sizeof(v)) == 0 &&
             (size_t)len <= strlen(p17) && !lexmsg && stop == out + len;
    if (ok && oracle) {
        uint64_t f, of;
        int k, ok10, on;
        ks_fmt_shortest_digits(v, &f, &k);
        printf_shortest(v, &of, &ok10, &on);
        /* as short as printf's shortest; the same digits when as long */
        ok = count_digits(f) < on || (f == of && (f == 0 || k == ok10));
    }
    if (!ok) {
        failures++;
        CHECK_MSG(0, "%.17g (bits %016llx) -> \"%s\" (%%.17g \"%s\")", v,
                  (unsigned long long)({ uint64_t b_; memcpy(&b_, &v, 8); b_; }), out, p17);
    }
}

static double from_bits(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof(d));
    return d;
}

static void test_known_values(void)
{
    static const struct { double v; const char *want; } cases[] = {
        {0.0, "0"}, {-0.0, "-0"}, {1.0, "1"}, {-42.0, "-42"}, {0.1, "0.1"}, {44.22, "44.22"},
        {65.33, "65.33"}, {1e-5, "1e-05"}, {1.5e-7, "1.5e-07"}, {0.0001, "0.0001"},
        {123456.789, "123456.789"}, {1e16, "10000000000000000"}, {1e17, "1e+17"},
        {1e20, "1e+20"}, {1e22, "1e+22"}, {1e23, "1e+23"}, {2e16, "20000000000000000"},
        {9007199254740993.0, "9007199254740992"}, {0.32101884164240085, "0.32101884164240085"},
        {0.38876206603455088, "0.3887620660345509"}, {5e-324, "5e-324"},
        {2.2250738585072014e-308, "2.2250738585072014e-308"},
        {1.7976931348623157e308, "1.7976931348623157e+308"}, {0.3, "0.3"},
        {2.0 / 3.0, "0.6666666666666666"}, {1.0 / 3.0, "0.3333333333333333"},
        {1e-300, "1e-300"}, {123e-310, "1.23e-308"}, {-1.25, "-1.25"},
        {1234567890123456.7, "1234567890123456.8"},
    };
    char out[64];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ks_fmt_shortest(out, cases[i].v);
        CHECK_EQ_STR(out, cases[i].want);
        check(cases[i].v, 1);
    }
}

/* Every binade: powers of two (the narrower lower gap), their neighbours,
 * the largest value of each binade; and powers of ten with neighbours. */
static void test_edges(void)
{
    for (int e = -1074; e <= 1023; e++) {
        double p = ldexp(1, e);
        double vs[] = {p, nextafter(p, 0), nextafter(p, INFINITY), nextafter(nextafter(p, 0), 0),
                       p * 1.5, p * (2 - ldexp(1, -52))};
        for (size_t j = 0; j < 6; j++) {
            check(vs[j], 1);
            check(-vs[j], 0);
        }
    }
    for (int e = -323; e <= 308; e++) {
        char s[16];
        snprintf(s, sizeof(s), "1e%d", e);
        double p = strtod(s, NULL);
        double vs[] = {p, nextafter(p, 0), nextafter(p, INFINITY), nextafter(nextafter(p, 0), 0),
                       nextafter(nextafter(p, INFINITY), INFINITY), p * 3, p * 7};
        for (size_t j = 0; j < 7; j++)
            check(vs[j], 1);
    }
    check(5e-324, 1);
    check(from_bits(0x000FFFFFFFFFFFFFULL), 1); /* largest subnormal */
    check(from_bits(0x7FEFFFFFFFFFFFFFULL), 1); /* largest double */
}

static void test_random(void)
{
    for (int i = 0; i < 3000000 && failures < 10; i++) {
        uint64_t r = next();
        double v;
        switch (i % 8) {
        case 0: case 1: /* any bit pattern */
            v = from_bits(r);
            break;
        case 2: /* subnormals */
            v = from_bits(r & 0x800FFFFFFFFFFFFFULL);
            break;
        case 3: /* probabilities as models produce them */
            v = 1.0 / (1.0 + exp(-((double)(int64_t)r / 9.2e17)));
            break;
        case 4: /* uniform in [0, 1) with every mantissa bit */
            v = (double)(r >> 11) / 9007199254740992.0;
            break;
        case 5: /* integers, below and above 2^53 */
            v = (double)(r >> (r & 31)) * ((r >> 40) & 1 ? -1 : 1);
            break;
        case 6: { /* short decimals: 1-8 digits at any scale */
            char s[40];
            int nd = 1 + (int)(r % 8);
            snprintf(s, sizeof(s), "%llue%d", (unsigned long long)((r >> 8) % (uint64_t)pow(10, nd)),
                     (int)((r >> 40) % 600) - 300);
            v = strtod(s, NULL);
            break;
        }
        default: /* money-like values and their neighbours */
            v = nextafter((double)(r % 100000000) / 100.0, (r >> 63) ? INFINITY : 0);
        }
        check(v, i % 16 == 0);
    }
}

int main(void)
{
    RUN(test_known_values);
    RUN(test_edges);
    RUN(test_random);
    return test_summary();
}
