/*
 * hist.h - an HDR-style log-linear latency histogram for the end-to-end
 * benchmark (header-only, single-threaded).
 *
 * Values are non-negative integers (microseconds here). Below 2*SUB they are
 * counted exactly; above, each power of two is split into SUB linear
 * sub-buckets, so a recorded value is known to within 1/SUB of itself
 * (SUB = 1024: 0.1%, three significant digits, like HdrHistogram with
 * numberOfSignificantValueDigits = 3). Memory is fixed: SUB * 42 counters
 * (344 KB) cover 0 .. 2^50 us (35 years); larger values are clamped into the
 * last bucket and counted in `clamped`. Recording is O(1) with no allocation.
 */
#ifndef KS_BENCH_HIST_H
#define KS_BENCH_HIST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define KS_HIST_SUB_BITS 10
#define KS_HIST_SUB (1u << KS_HIST_SUB_BITS)
#define KS_HIST_BUCKETS ((size_t)KS_HIST_SUB * 42)

typedef struct ks_hist {
    uint64_t *counts; /* KS_HIST_BUCKETS counters */
    uint64_t n, clamped;
    uint64_t min, max;
    double sum;
} ks_hist_t;

/* Allocates the counters; returns 0, or -1 when out of memory. */
static inline int ks_hist_init(ks_hist_t *h)
{
    h->counts = calloc(KS_HIST_BUCKETS, sizeof(*h->counts));
    h->n = h->clamped = h->max = 0;
    h->min = UINT64_MAX;
    h->sum = 0;
    return h->counts ? 0 : -1;
}

static inline void ks_hist_free(ks_hist_t *h)
{
    free(h->counts);
    h->counts = NULL;
}

/* Bucket of value v: v itself below 2*SUB, else SUB*e + (v >> e) where e
 * makes (v >> e) fall in [SUB, 2*SUB). */
static inline size_t ks_hist_index(uint64_t v)
{
    if (v < KS_HIST_SUB)
        return (size_t)v;
    int e = 63 - __builtin_clzll(v) - KS_HIST_SUB_BITS;
    return (size_t)KS_HIST_SUB * (size_t)e + (size_t)(v >> e);
}

/* Lowest and highest value that land in bucket i. */
static inline uint64_t ks_hist_lowest(size_t i)
{
    if (i < 2 * KS_HIST_SUB)
        return i;
    size_t e = i / KS_HIST_SUB - 1;
    return (uint64_t)(i - KS_HIST_SUB * e) << e;
}

static inline uint64_t ks_hist_highest(size_t i)
{
    if (i < 2 * KS_HIST_SUB)
        return i;
    size_t e = i / KS_HIST_SUB - 1;
    return ks_hist_lowest(i) + ((uint64_t)1 << e) - 1;
}

static inline void ks_hist_record(ks_hist_t *h, uint64_t v)
{
    size_t i = ks_hist_index(v);
    if (i >= KS_HIST_BUCKETS) {
        i = KS_HIST_BUCKETS - 1;
        h->clamped++;
    }
    h->counts[i]++;
    h->n++;
    h->sum += (double)v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

/* The value at quantile q (0..1): the highest value of the bucket holding the
 * ceil(q*n)-th smallest recording (HdrHistogram reports the bucket's upper
 * edge too, so a percentile is never understated), capped at the true max. */
static inline uint64_t ks_hist_quantile(const ks_hist_t *h, double q)
{
    if (h->n == 0)
        return 0;
    uint64_t want = (uint64_t)ceil(q * (double)h->n), seen = 0;
    if (want < 1)
        want = 1;
    for (size_t i = 0; i < KS_HIST_BUCKETS; i++)
        if (h->counts[i] && (seen += h->counts[i]) >= want) {
            uint64_t v = ks_hist_highest(i);
            return v > h->max ? h->max : v;
        }
    return h->max;
}

/* Writes the percentile spectrum as text, one line per step, "value_ms
 * percentile count 1/(1-percentile)" (the layout of HdrHistogram's
 * outputPercentileDistribution, which plots on a log x axis). */
static inline void ks_hist_write_spectrum(const ks_hist_t *h, FILE *out, double unit_per_ms)
{
    fprintf(out, "# value_ms percentile total_count 1/(1-percentile)\n");
    uint64_t seen = 0;
    for (size_t i = 0; i < KS_HIST_BUCKETS; i++) {
        if (!h->counts[i])
            continue;
        seen += h->counts[i];
        double p = (double)seen / (double)h->n;
        double v = (double)ks_hist_highest(i);
        if ((double)h->max < v)
            v = (double)h->max;
        if (p < 1.0)
            fprintf(out, "%.3f %.6f %llu %.2f\n", v / unit_per_ms, p, (unsigned long long)seen,
                    1.0 / (1.0 - p));
        else
            fprintf(out, "%.3f %.6f %llu inf\n", v / unit_per_ms, p, (unsigned long long)seen);
    }
}

#endif
