/*
 * metrics.c - registry, lock-free updates and Prometheus text rendering (see
 * metrics.h).
 */
#include "base/metrics.h"
#include "base/common.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } kind_t;

typedef struct child {
    struct child *next;
    char *values[KS_METRICS_MAX_LABELS];
    int hidden; /* gauge reset: not rendered until set again */
    union {
        ks_counter_t counter;
        ks_gauge_t gauge;
        ks_histogram_t hist;
    };
} child_t;

struct ks_metric_family {
    struct ks_metric_family *next;
    kind_t kind;
    char *name, *help;
    char *labels[KS_METRICS_MAX_LABELS];
    int n_labels;
    const double *bounds;
    size_t n_bounds;
    child_t *children; /* appended at the tail; rendering order = creation order */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static ks_metric_family_t *families, **families_tail = &families;

const double ks_buckets_latency_seconds[] = {
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003,
    0.004,   0.005,    0.0075,  0.01,   0.015,   0.02,   0.03,    0.05,  0.075,  0.1,   0.15,
    0.25,    0.5,      1,       2.5,    5,       10,     30,      60};
const size_t ks_buckets_latency_seconds_n = KS_ARRAY_LEN(ks_buckets_latency_seconds);
const double ks_buckets_unit_interval[] = {0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5,
                                           0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1};
const size_t ks_buckets_unit_interval_n = KS_ARRAY_LEN(ks_buckets_unit_interval);
const double ks_buckets_batch_size[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000,
                                        10000, 100000};
const size_t ks_buckets_batch_size_n = KS_ARRAY_LEN(ks_buckets_batch_size);

static ks_metric_family_t *family(kind_t kind, const char *name, const char *help,
                                  const char *labels, const double *bounds, size_t n_bounds)
{
    pthread_mutex_lock(&lock);
    ks_metric_family_t *f;
    for (f = families; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            goto out;
    f = ks_xcalloc(1, sizeof(*f));
    f->kind = kind;
    f->name = ks_xstrdup(name);
    f->help = ks_xstrdup(help);
    f->bounds = bounds;
    f->n_bounds = n_bounds;
    if (labels) {
        char *copy = ks_xstrdup(labels), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t && f->n_labels < KS_METRICS_MAX_LABELS;
             t = strtok_r(NULL, ",", &save))
            f->labels[f->n_labels++] = ks_xstrdup(t);
        free(copy);
    }
    *families_tail = f;
    families_tail = &f->next;
out:
    pthread_mutex_unlock(&lock);
    return f;
}

ks_metric_family_t *ks_metrics_counter(const char *name, const char *help, const char *labels)
{
    return family(KIND_COUNTER, name, help, labels, NULL, 0);
}

ks_metric_family_t *ks_metrics_gauge(const char *name, const char *help, const char *labels)
{
    return family(KIND_GAUGE, name, help, labels, NULL, 0);
}

ks_metric_family_t *ks_metrics_histogram(const char *name, const char *help, const char *labels,
                                         const double *bounds, size_t n_bounds)
{
    return family(KIND_HISTOGRAM, name, help, labels, bounds, n_bounds);
}

/* The child with these label values, created on first use; a histogram
 * child gets `bounds` (NULL: the family's). */
static child_t *child_at(ks_metric_family_t *f, const char *const *values, const double *bounds,
                         size_t n_bounds)
{
    pthread_mutex_lock(&lock);
    child_t *c, **tail = &f->children;
    for (c = f->children; c; tail = &c->next, c = c->next) {
        int same = 1;
        for (int i = 0; i < f->n_labels && same; i++)
            same = strcmp(c->values[i], values[i]) == 0;
        if (same)
            goto out;
    }
    c = ks_xcalloc(1, sizeof(*c));
    for (int i = 0; i < f->n_labels; i++)
        c->values[i] = ks_xstrdup(values[i]);
    if (f->kind == KIND_HISTOGRAM) {
        c->hist.bounds = bounds ? bounds : f->bounds;
        c->hist.n_bounds = bounds ? n_bounds : f->n_bounds;
        c->hist.buckets = ks_xcalloc(c->hist.n_bounds + 1, sizeof(_Atomic uint64_t));
    }
    *tail = c;
out:
    c->hidden = 0;
    pthread_mutex_unlock(&lock);
    return c;
}

ks_histogram_t *ks_metrics_histogram_at_bounds(ks_metric_family_t *f, const char *const *values,
                                              const double *bounds, size_t n_bounds)
{
    return &child_at(f, values, bounds, n_bounds)->hist;
}

ks_counter_t *ks_metrics_counter_at(ks_metric_family_t *f, const char *const *values)
{
    return &child_at(f, values, NULL, 0)->counter;
}

ks_gauge_t *ks_metrics_gauge_at(ks_metric_family_t *f, const char *const *values)
{
    return &child_at(f, values, NULL, 0)->gauge;
}

ks_histogram_t *ks_metrics_histogram_at(ks_metric_family_t *f, const char *const *values)
{
    return &child_at(f, values, NULL, 0)->hist;
}

void ks_metrics_gauge_reset(ks_metric_family_t *f)
{
    pthread_mutex_lock(&lock);
    for (child_t *c = f->children; c; c = c->next)
        c->hidden = 1;
    pthread_mutex_unlock(&lock);
}

static uint64_t dbits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof(b));
    return b;
}

static double bitsd(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof(v));
    return v;
}

void ks_gauge_set(ks_gauge_t *g, double v)
{
    atomic_store_explicit(&g->bits, dbits(v), memory_order_relaxed);
}

void ks_gauge_add(ks_gauge_t *g, double v)
{
    uint64_t old = atomic_load_explicit(&g->bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&g->bits, &old, dbits(bitsd(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

double ks_gauge_get(const ks_gauge_t *g)
{
    return bitsd(atomic_load_explicit(&((ks_gauge_t *)g)->bits, memory_order_relaxed));
}

void ks_histogram_observe_n(ks_histogram_t *h, double v, uint64_t n)
{
    size_t lo = 0, hi = h->n_bounds; /* first bound >= v, or n_bounds (+Inf) */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (h->bounds[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    atomic_fetch_add_explicit(&h->buckets[lo], n, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, n, memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&h->sum_bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&h->sum_bits, &old,
                                                  dbits(bitsd(old) + v * (double)n),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

void ks_histogram_observe(ks_histogram_t *h, double v)
{
    ks_histogram_observe_n(h, v, 1);
}

/* ---- rendering -------------------------------------------------------- */

static void put_number(ks_buf_t *b, double v)
{
    if (isnan(v))
        ks_buf_puts(b, "NaN");
    else if (isinf(v))
        ks_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
    else
        ks_buf_printf(b, "%.17g", v);
}

static void put_label_value(ks_buf_t *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            ks_buf_putc(b, '\\');
        if (*s == '\n') {
            ks_buf_puts(b, "\\n");
            continue;
        }
        ks_buf_putc(b, *s);
    }
}

/* {a="x",b="y"[,le="..."]} */
static void put_labels(ks_buf_t *b, const ks_metric_family_t *f, const child_t *c,
                       const char *le)
{
    if (f->n_labels == 0 && !le)
        return;
    ks_buf_putc(b, '{');
    for (int i = 0; i < f->n_labels; i++) {
        ks_buf_printf(b, "%s%s=\"", i ? "," : "", f->labels[i]);
        put_label_value(b, c->values[i]);
        ks_buf_putc(b, '"');
    }
    if (le)
        ks_buf_printf(b, "%sle=\"%s\"", f->n_labels ? "," : "", le);
    ks_buf_putc(b, '}');
}

void ks_metrics_render(ks_buf_t *b)
{
    static const char *types[] = {"counter", "gauge", "histogram"};
    pthread_mutex_lock(&lock);
    for (ks_metric_family_t *f = families; f; f = f->next) {
        ks_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
                      types[f->kind]);
        for (child_t *c = f->children; c; c = c->next) {
            if (c->hidden)
                continue;
            if (f->kind == KIND_COUNTER) {
                ks_buf_puts(b, f->name);
                put_labels(b, f, c, NULL);
                ks_buf_printf(b, " %llu\n",
                              (unsigned long long)atomic_load(&c->counter.v));
            } else if (f->kind == KIND_GAUGE) {
                ks_buf_puts(b, f->name);
                put_labels(b, f, c, NULL);
                ks_buf_putc(b, ' ');
                put_number(b, ks_gauge_get(&c->gauge));
                ks_buf_putc(b, '\n');
            } else {
                uint64_t cum = 0;
                char le[32];
                for (size_t i = 0; i <= c->hist.n_bounds; i++) {
                    cum += atomic_load(&c->hist.buckets[i]);
                    if (i < c->hist.n_bounds)
                        snprintf(le, sizeof(le), "%g", c->hist.bounds[i]);
                    else
                        snprintf(le, sizeof(le), "+Inf");
                    ks_buf_printf(b, "%s_bucket", f->name);
                    put_labels(b, f, c, le);
                    ks_buf_printf(b, " %llu\n", (unsigned long long)cum);
                }
                ks_buf_printf(b, "%s_sum", f->name);
                put_labels(b, f, c, NULL);
                ks_buf_putc(b, ' ');
                put_number(b, bitsd(atomic_load(&c->hist.sum_bits)));
                ks_buf_printf(b, "\n%s_count", f->name);
                put_labels(b, f, c, NULL);
                ks_buf_printf(b, " %llu\n", (unsigned long long)cum);
            }
        }
    }
    pthread_mutex_unlock(&lock);
}
