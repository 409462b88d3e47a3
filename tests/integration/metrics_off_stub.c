/*
 * metrics_off_stub.c - a do-nothing stand-in for base/metrics.c, linked
 * instead of it by test_metrics_overhead.sh to build a "metrics off" kscore
 * (same sources, same flags, every metrics update a no-op call) so that the
 * overhead of the instrumentation can be measured. Not part of the library.
 * It must define every external symbol base/metrics.c defines (else the
 * archive's metrics.o is linked too and the link fails on duplicates).
 */
#include "base/metrics.h"

static const double no_bounds[1] = {1};
static _Atomic uint64_t no_buckets[2];
static ks_counter_t counter;
static ks_gauge_t gauge;
static ks_histogram_t histogram = {no_bounds, 0, no_buckets, 0, 0};
static int family;

const double ks_buckets_latency_seconds[] = {1};
const size_t ks_buckets_latency_seconds_n = 1;
const double ks_buckets_unit_interval[] = {1};
const size_t ks_buckets_unit_interval_n = 1;
const double ks_buckets_batch_size[] = {1};
const size_t ks_buckets_batch_size_n = 1;

ks_metric_family_t *ks_metrics_counter(const char *n, const char *h, const char *l)
{
    return (ks_metric_family_t *)&family;
}
ks_metric_family_t *ks_metrics_gauge(const char *n, const char *h, const char *l)
{
    return (ks_metric_family_t *)&family;
}
ks_metric_family_t *ks_metrics_histogram(const char *n, const char *h, const char *l,
                                         const double *b, size_t nb)
{
    return (ks_metric_family_t *)&family;
}
ks_counter_t *ks_metrics_counter_at(ks_metric_family_t *f, const char *const *v) { return &counter; }
ks_gauge_t *ks_metrics_gauge_at(ks_metric_family_t *f, const char *const *v) { return &gauge; }
ks_histogram_t *ks_metrics_histogram_at(ks_metric_family_t *f, const char *const *v)
{
    return &histogram;
}
ks_histogram_t *ks_metrics_histogram_at_bounds(ks_metric_family_t *f, const char *const *v,
                                              const double *bounds, size_t n_bounds)
{
    return &histogram;
}
void ks_gauge_set(ks_gauge_t *g, double v) {}
void ks_gauge_add(ks_gauge_t *g, double v) {}
double ks_gauge_get(const ks_gauge_t *g) { return 0; }
void ks_histogram_observe(ks_histogram_t *h, double v) {}
void ks_histogram_observe_n(ks_histogram_t *h, double v, uint64_t n) {}
void ks_metrics_gauge_reset(ks_metric_family_t *f) {}
void ks_metrics_render(ks_buf_t *out) {}
