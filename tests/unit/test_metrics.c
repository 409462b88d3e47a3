/*
 * test_metrics.c - registry, histogram bucketing and the Prometheus text
 * format, including concurrent updates from several threads.
 */
#include "base/metrics.h"
#include "test.h"

#include <pthread.h>

static ks_counter_t *shared;
static ks_histogram_t *shared_h;

static void *bump(void *arg)
{
    for (int i = 0; i < 100000; i++) {
        ks_counter_add(shared, 1);
        ks_histogram_observe(shared_h, 0.5);
    }
    return arg;
}

static void test_render(void)
{
    static const double bounds[] = {0.1, 1, 10};
    ks_metric_family_t *c = ks_metrics_counter("t_events_total", "Events.", "class");
    const char *a[] = {"x\"y"};
    ks_counter_add(ks_metrics_counter_at(c, a), 3);
    ks_histogram_t *h = ks_metrics_histogram0(ks_metrics_histogram("t_seconds", "Latency.", NULL,
                                                                   bounds, 3));
    ks_histogram_observe(h, 0.1); /* on a bound: counts in le="0.1" */
    ks_histogram_observe(h, 5);
    ks_histogram_observe(h, 50);
    ks_gauge_t *g = ks_metrics_gauge0(ks_metrics_gauge("t_gauge", "G.", NULL));
    ks_gauge_set(g, 2.5);
    ks_buf_t b = {0};
    ks_metrics_render(&b);
    CHECK_CONTAINS(b.data, "# TYPE t_events_total counter\nt_events_total{class=\"x\\\"y\"} 3\n");
    CHECK_CONTAINS(b.data, "t_seconds_bucket{le=\"0.1\"} 1\n");
    CHECK_CONTAINS(b.data, "t_seconds_bucket{le=\"1\"} 1\n");
    CHECK_CONTAINS(b.data, "t_seconds_bucket{le=\"10\"} 2\n");
    CHECK_CONTAINS(b.data, "t_seconds_bucket{le=\"+Inf\"} 3\n");
    CHECK_CONTAINS(b.data, "t_seconds_sum 55.100000000000001\n");
    CHECK_CONTAINS(b.data, "t_seconds_count 3\n");
    CHECK_CONTAINS(b.data, "t_gauge 2.5\n");
    ks_buf_free(&b);
}

/* Children of one family with buckets of their own: a model version's
 * score histogram follows its task across a reload. */
static void test_child_bounds(void)
{
    static const double unit[] = {0.5, 1}, wide[] = {-10, 0, 10, 100};
    ks_metric_family_t *f = ks_metrics_histogram("t_score", "S.", "model_version", unit, 2);
    const char *v1[] = {"clf"}, *v2[] = {"reg"};
    ks_histogram_observe(ks_metrics_histogram_at_bounds(f, v1, unit, 2), 0.7);
    ks_histogram_t *r = ks_metrics_histogram_at_bounds(f, v2, wide, 4);
    ks_histogram_observe(r, 42);
    CHECK_EQ_INT((int)r->n_bounds, 4);
    /* asking again returns the same child, bounds unchanged */
    CHECK(ks_metrics_histogram_at_bounds(f, v2, unit, 2) == r);
    CHECK_EQ_INT((int)r->n_bounds, 4);
    ks_buf_t b = {0};
    ks_metrics_render(&b);
    CHECK_CONTAINS(b.data, "t_score_bucket{model_version=\"clf\",le=\"1\"} 1\n");
    CHECK_CONTAINS(b.data, "t_score_bucket{model_version=\"reg\",le=\"100\"} 1\n");
    CHECK_CONTAINS(b.data, "t_score_bucket{model_version=\"reg\",le=\"10\"} 0\n");
    ks_buf_free(&b);
}

static void test_concurrent(void)
{
    static const double bounds[] = {1};
    shared = ks_metrics_counter0(ks_metrics_counter("t_conc_total", "C.", NULL));
    shared_h = ks_metrics_histogram0(ks_metrics_histogram("t_conc_seconds", "H.", NULL, bounds, 1));
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, bump, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ_INT(atomic_load(&shared->v), 400000);
    CHECK_EQ_INT(atomic_load(&shared_h->count), 400000);
    ks_buf_t b = {0};
    ks_metrics_render(&b);
    CHECK_CONTAINS(b.data, "t_conc_seconds_sum 200000\n");
    ks_buf_free(&b);
}

int main(void)
{
    RUN(test_render);
    RUN(test_child_bounds);
    RUN(test_concurrent);
    return test_summary();
}
