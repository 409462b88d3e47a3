/*
 * test.h - the unit test harness: a handful of macros, no framework.
 *
 *   static void test_something(void) { CHECK(x == 1); CHECK_EQ_STR(a, b); }
 *   int main(void) { RUN(test_something); return test_summary(); }
 *
 * A failed CHECK prints file:line and the expression and the test keeps going;
 * the process exits 1 if anything failed (ctest reports it).
 */
#ifndef KS_TEST_H
#define KS_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int test_failures_ = 0, test_checks_ = 0;

#define CHECK(cond) do { test_checks_++; if (!(cond)) { test_failures_++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_MSG(cond, ...) do { test_checks_++; if (!(cond)) { test_failures_++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)
#define CHECK_EQ_INT(a, b) do { long long a_ = (a), b_ = (b); test_checks_++; if (a_ != b_) { \
    test_failures_++; fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", \
    __FILE__, __LINE__, #a, #b, a_, b_); } } while (0)
#define CHECK_EQ_STR(a, b) do { const char *a_ = (a), *b_ = (b); test_checks_++; \
    if (!a_ || !b_ || strcmp(a_, b_) != 0) { test_failures_++; \
    fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, \
    #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); } } while (0)
#define CHECK_NEAR(a, b, tol) do { double a_ = (a), b_ = (b); test_checks_++; \
    if (!(fabs(a_ - b_) <= (tol))) { test_failures_++; \
    fprintf(stderr, "%s:%d: %s ~= %s failed: %.17g vs %.17g\n", __FILE__, __LINE__, \
    #a, #b, a_, b_); } } while (0)
#define CHECK_CONTAINS(hay, needle) do { const char *h_ = (hay), *n_ = (needle); test_checks_++; \
    if (!h_ || !strstr(h_, n_)) { test_failures_++; \
    fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__, \
    h_ ? h_ : "(null)", n_); } } while (0)

#define RUN(fn) do { int before_ = test_failures_; fn(); \
    fprintf(stderr, "%s %s\n", test_failures_ == before_ ? "ok  " : "FAIL", #fn); } while (0)

/* xorshift64: a small deterministic generator for randomized checks; each
 * test keeps its own seeded state. */
static inline uint64_t test_xorshift64(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

static inline int test_summary(void)
{
    fprintf(stderr, "%d checks, %d failed\n", test_checks_, test_failures_);
    return test_failures_ ? 1 : 0;
}

#endif
