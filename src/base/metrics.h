/*
 * metrics.h - the process-wide metrics registry: counters, gauges and
 * histograms with labels, rendered in the Prometheus text exposition format.
 *
 * Families are registered at start-up (ks_metrics_counter/gauge/histogram);
 * a child (one label-value combination) is looked up once, also at start-up,
 * and the hot path only does relaxed atomic adds on it: no locks, no lookups,
 * no allocation per event. Rendering walks the registry under its mutex.
 *
 * Thread-safety: registration and rendering lock; updates are lock-free and
 * may come from any thread.
 */
#ifndef KS_METRICS_H
#define KS_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define KS_METRICS_MAX_LABELS 3

typedef struct ks_counter {
    _Atomic uint64_t v;
} ks_counter_t;

typedef struct ks_gauge {
    _Atomic uint64_t bits; /* a double */
} ks_gauge_t;

typedef struct ks_histogram {
    const double *bounds;  /* upper bounds, ascending; +Inf implied */
    size_t n_bounds;
    _Atomic uint64_t *buckets; /* n_bounds + 1, non-cumulative */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_bits; /* a double */
} ks_histogram_t;

typedef struct ks_metric_family ks_metric_family_t;

/* Registers a family; `labels` is a comma-separated list of label names or
 * NULL. Registering the same name twice returns the existing family. */
ks_metric_family_t *ks_metrics_counter(const char *name, const char *help, const char *labels);
ks_metric_family_t *ks_metrics_gauge(const char *name, const char *help, const char *labels);
ks_metric_family_t *ks_metrics_histogram(const char *name, const char *help, const char *labels,
                                         const double *bounds, size_t n_bounds);

/* The child for these label values (as many as the family has labels),
 * created on first use. Pointers stay valid for the process lifetime. */
ks_counter_t *ks_metrics_counter_at(ks_metric_family_t *f, const char *const *values);
ks_gauge_t *ks_metrics_gauge_at(ks_metric_family_t *f, const char *const *values);
ks_histogram_t *ks_metrics_histogram_at(ks_metric_family_t *f, const char *const *values);
/* A histogram child with buckets of its own (bounds static, ascending): e.g.
 * each model version's score histogram with the buckets of its task. The
 * bounds of an existing child stay as they were created. */
ks_histogram_t *ks_metrics_histogram_at_bounds(ks_metric_family_t *f, const char *const *values,
                                              const double *bounds, size_t n_bounds);
/* Shorthands for families without labels. */
#define ks_metrics_counter0(f)   ks_metrics_counter_at((f), NULL)
#define ks_metrics_gauge0(f)     ks_metrics_gauge_at((f), NULL)
#define ks_metrics_histogram0(f) ks_metrics_histogram_at((f), NULL)

static inline void ks_counter_add(ks_counter_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(&c->v, n, memory_order_relaxed);
}

void ks_gauge_set(ks_gauge_t *g, double v);
void ks_gauge_add(ks_gauge_t *g, double v);
double ks_gauge_get(const ks_gauge_t *g);
void ks_histogram_observe(ks_histogram_t *h, double v);
/* Same value observed n times (a whole batch at once). */
void ks_histogram_observe_n(ks_histogram_t *h, double v, uint64_t n);

/* Removes every child of a gauge family (e.g. per-partition lag after a
 * rebalance); the children's memory stays valid. */
void ks_metrics_gauge_reset(ks_metric_family_t *f);

/* Appends the whole registry in the Prometheus text format (0.0.4). */
void ks_metrics_render(ks_buf_t *out);

/* Bucket layouts used across kscore. */
extern const double ks_buckets_latency_seconds[]; /* 10 us .. 60 s, log-spaced */
extern const size_t ks_buckets_latency_seconds_n;
extern const double ks_buckets_unit_interval[];   /* 0.05 .. 1 */
extern const size_t ks_buckets_unit_interval_n;
extern const double ks_buckets_batch_size[];      /* 1 .. 100000 */
extern const size_t ks_buckets_batch_size_n;

#endif
