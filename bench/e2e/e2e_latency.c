/*
 * e2e_latency.c - the end-to-end benchmark's measuring consumer: reads a
 * pipeline's output topic and records, per record, arrival time minus the
 * event's send stamp (`sent_at_us`, written by `kscore gen`) in an HDR-style
 * histogram (hist.h), then prints percentiles as one JSON object on stdout.
 *
 * It is a separate process on purpose: latency is what a downstream consumer
 * sees, broker round trips included, not what the pipeline believes. It
 * assigns every partition of the topic from the beginning (no consumer group,
 * so no rebalance delay: the group id is only what assign() requires) and stops when it has seen the expected number of
 * records, or at a hard time limit. The expected count may be given up front
 * (--expect) or later through a file (--expect-file, written by the bench
 * script when the generator has finished and knows how many it sent).
 *
 * Besides latency it reports what a throughput measurement needs from the
 * same records: the smallest and largest Kafka message timestamp (the
 * pipeline producer's create time), so a run over a pre-filled topic can be
 * read back afterwards and rated without a consumer competing for the CPU
 * while the pipeline runs; --rate-from-ms T rates only the records created
 * from T on (window_rate), e.g. once a consumer group has settled. If records carry kscore's in-process `latency_ms`,
 * its percentiles are reported too (the pipeline's own share of the time).
 * The output record's create timestamp (set when the pipeline called
 * produce, in ms) splits each latency in two: stamp -> produce (generator
 * linger, broker, the pipeline's fetch, batching and scoring) and produce ->
 * arrival (the pipeline's producer linger, broker, our fetch).
 *
 * Usage: e2e-latency --topic T [--brokers B] [--from-us T0] [--to-us T1]
 *                    [--expect N | --expect-file F] [--ready-after N]
 *                    [--timeout S] [--grace S] [--spectrum FILE] [--series FILE]
 *                    [--rate-from-ms T]
 * --series writes, per second of send stamps in the window, the count, p50,
 * p99 and max latency: to see whether a tail is steady or one stall.
 *        e2e-latency --self-test      checks the histogram against exact quantiles
 * Exit: 0 all expected records seen, 1 timeout or Kafka error, 2 bad usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "hist.h"

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct opts {
    const char *brokers, *topic, *expect_file, *spectrum, *series, *field;
    int64_t from_us, to_us, rate_from_ms;
    uint64_t expect, ready_after;
    double timeout_s, grace_s;
} opts_t;

static volatile sig_atomic_t stop;
static void on_sig(int s)
{
    (void)s;
    stop = 1;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Finds "name": in a JSON record and parses the number after it. The records
 * are flat where these fields live (top level), so a substring search is
 * enough and costs no allocation. */
static int find_number(const char *p, size_t len, const char *pat, size_t pat_len, double *out)
{
    const char *at = memmem(p, len, pat, pat_len);
    if (!at)
        return -1;
    at += pat_len;
    char tmp[40];
    size_t n = 0;
    while (at + n < p + len && n < sizeof(tmp) - 1 &&
           (strchr("0123456789+-.eE", at[n]) != NULL && at[n] != '\0'))
        n++;
    if (n == 0)
        return -1;
    memcpy(tmp, at, n);
    tmp[n] = '\0';
    char *end;
    *out = strtod(tmp, &end);
    return *end == '\0' ? 0 : -1;
}

static int read_expect_file(const char *path, uint64_t *out)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    unsigned long long v;
    int ok = fscanf(f, "%llu", &v) == 1;
    fclose(f);
    if (!ok)
        return -1;
    *out = v;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* --self-test: the histogram's quantiles against exact ones over a million
 * log-normal values (1 us .. minutes): never below the exact value, and above
 * it by at most one bucket (0.1%). */
static int self_test(void)
{
    enum { N = 1000000 };
    static const double qs[] = {0.5, 0.9, 0.95, 0.99, 0.999, 0.9999, 1.0};
    uint64_t *v = malloc(N * sizeof(*v)), s = 42;
    ks_hist_t h;
    int bad = 0;
    if (!v || ks_hist_init(&h))
        return 1;
    for (int i = 0; i < N; i++) {
        double g = 0; /* sum of 12 uniforms - 6: about N(0,1) */
        for (int k = 0; k < 12; k++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            g += (double)(s >> 11) / 9007199254740992.0;
        }
        v[i] = (uint64_t)exp(8.0 + 2.5 * (g - 6.0));
        ks_hist_record(&h, v[i]);
    }
    qsort(v, N, sizeof(*v), cmp_u64);
    for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
        size_t rank = (size_t)ceil(qs[k] * N);
        uint64_t exact = v[rank ? rank - 1 : 0], got = ks_hist_quantile(&h, qs[k]);
        int ok = got >= exact && (double)got <= (double)exact * (1.0 + 1.0 / KS_HIST_SUB) + 1;
        printf("%s q=%-7g exact=%llu hist=%llu\n", ok ? "ok  " : "FAIL", qs[k],
               (unsigned long long)exact, (unsigned long long)got);
        bad |= !ok;
    }
    ks_hist_free(&h);
    free(v);
    return bad;
}

static void usage(void)
{
    fprintf(stderr, "usage: e2e-latency --topic T [--brokers B] [--from-us T0] [--to-us T1]\n"
                    "       [--expect N | --expect-file F] [--ready-after N] [--timeout S]\n"
                    "       [--grace S] [--spectrum FILE] [--series FILE] [--field sent_at_us]\n"
                    "       [--rate-from-ms T]\n");
}

static int parse(int argc, char **argv, opts_t *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!v)
            return -1;
        i++;
        if (!strcmp(a, "--brokers"))
            o->brokers = v;
        else if (!strcmp(a, "--topic"))
            o->topic = v;
        else if (!strcmp(a, "--expect-file"))
            o->expect_file = v;
        else if (!strcmp(a, "--spectrum"))
            o->spectrum = v;
        else if (!strcmp(a, "--series"))
            o->series = v;
        else if (!strcmp(a, "--field"))
            o->field = v;
        else if (!strcmp(a, "--from-us"))
            o->from_us = strtoll(v, &end, 10);
        else if (!strcmp(a, "--rate-from-ms"))
            o->rate_from_ms = strtoll(v, &end, 10);
        else if (!strcmp(a, "--to-us"))
            o->to_us = strtoll(v, &end, 10);
        else if (!strcmp(a, "--expect"))
            o->expect = strtoull(v, &end, 10);
        else if (!strcmp(a, "--ready-after"))
            o->ready_after = strtoull(v, &end, 10);
        else if (!strcmp(a, "--timeout"))
            o->timeout_s = strtod(v, &end);
        else if (!strcmp(a, "--grace"))
            o->grace_s = strtod(v, &end);
        else
            return -1;
        if (end && (*end || end == v))
            return -1;
    }
    return o->topic && o->timeout_s > 0 ? 0 : -1;
}

/* Assigns every partition of the topic from the beginning; waits (bounded)
 * for the topic's metadata. */
static int assign_all(rd_kafka_t *rk, const char *topic, int64_t deadline_us)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int rc = -1;
    while (now_us() < deadline_us && !stop) {
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
        if (!err && md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt > 0)
            break;
        if (md)
            rd_kafka_metadata_destroy(md);
        md = NULL;
        struct timespec ts = {0, 200000000};
        nanosleep(&ts, NULL);
    }
    if (md) {
        rd_kafka_topic_partition_list_t *l =
            rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
        for (int p = 0; p < md->topics[0].partition_cnt; p++)
            rd_kafka_topic_partition_list_add(l, topic, md->topics[0].partitions[p].id)->offset =
                RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_resp_err_t err = rd_kafka_assign(rk, l);
        if (err)
            fprintf(stderr, "e2e-latency: assign: %s\n", rd_kafka_err2str(err));
        else
            rc = 0;
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_metadata_destroy(md);
    } else {
        fprintf(stderr, "e2e-latency: topic %s has no metadata (does it exist?)\n", topic);
    }
    rd_kafka_topic_destroy(rkt);
    return rc;
}

/* Per-second summaries of the window, for --series: a coarse histogram per
 * second (64 log-linear buckets per power of two would be 40 KB each; 8 are
 * plenty for a time plot: 12% resolution). */
#define SERIES_MAX 3600
#define SERIES_SUB_BITS 3
#define SERIES_BUCKETS (8 * 40)
typedef struct second {
    uint32_t counts[SERIES_BUCKETS];
    uint64_t n, max;
} second_t;

static size_t series_index(uint64_t v)
{
    if (v < (1u << SERIES_SUB_BITS))
        return (size_t)v;
    int e = 63 - __builtin_clzll(v) - SERIES_SUB_BITS;
    size_t i = ((size_t)1 << SERIES_SUB_BITS) * (size_t)e + (size_t)(v >> e);
    return i < SERIES_BUCKETS ? i : SERIES_BUCKETS - 1;
}

static uint64_t series_value(size_t i)
{
    if (i < (2u << SERIES_SUB_BITS))
        return i;
    size_t e = i / (1u << SERIES_SUB_BITS) - 1;
    return (uint64_t)(i - ((size_t)1 << SERIES_SUB_BITS) * e + 1) << e; /* upper edge */
}

static uint64_t series_quantile(const second_t *s, double q)
{
    uint64_t want = (uint64_t)ceil(q * (double)s->n), seen = 0;
    if (want < 1)
        want = 1;
    for (size_t i = 0; i < SERIES_BUCKETS; i++)
        if ((seen += s->counts[i]) >= want)
            return series_value(i) < s->max ? series_value(i) : s->max;
    return s->max;
}

static double ms(uint64_t us)
{
    return (double)us / 1000.0;
}

int main(int argc, char **argv)
{
    opts_t o = {.brokers = "127.0.0.1:9092", .field = "sent_at_us", .timeout_s = 300,
                .grace_s = 30, .to_us = INT64_MAX};
    char err[512], pat[128];
    int rc = 1;
    rd_kafka_t *rk = NULL;
    ks_hist_t lat = {0}, inproc = {0}, before = {0}, after = {0};
    uint64_t records = 0, no_stamp = 0, in_window = 0, rate_records = 0;
    int64_t ts_min = INT64_MAX, ts_max = INT64_MIN;
    int64_t arr_first = 0, arr_last = 0;
    second_t *secs = NULL;

    if (argc == 2 && !strcmp(argv[1], "--self-test"))
        return self_test();
    if (parse(argc, argv, &o)) {
        usage();
        return 2;
    }
    int pat_len = snprintf(pat, sizeof(pat), "\"%s\":", o.field);
    if (ks_hist_init(&lat) || ks_hist_init(&inproc) || ks_hist_init(&before) ||
        ks_hist_init(&after)) {
        fprintf(stderr, "e2e-latency: out of memory\n");
        return 1;
    }
    if (o.series && !(secs = calloc(SERIES_MAX, sizeof(*secs)))) {
        fprintf(stderr, "e2e-latency: out of memory\n");
        goto out;
    }
    signal(SIGINT, on_sig);
    signal(SIGTERM, on_sig);

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *props[][2] = {{"bootstrap.servers", o.brokers},
                              {"enable.auto.commit", "false"},
                              {"enable.partition.eof", "false"},
                              {"fetch.wait.max.ms", "100"},
                              {"client.id", "e2e-latency"},
                              /* assign() needs a group id; no group is joined */
                              {"group.id", "e2e-latency"}};
    for (size_t i = 0; i < sizeof(props) / sizeof(props[0]); i++)
        if (rd_kafka_conf_set(conf, props[i][0], props[i][1], err, sizeof(err))) {
            fprintf(stderr, "e2e-latency: %s\n", err);
            rd_kafka_conf_destroy(conf);
            goto out;
        }
    if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err)))) {
        fprintf(stderr, "e2e-latency: %s\n", err);
        rd_kafka_conf_destroy(conf);
        goto out;
    }
    int64_t start = now_us();
    int64_t deadline = start + (int64_t)(o.timeout_s * 1e6);
    if (assign_all(rk, o.topic, deadline))
        goto out;

    int64_t grace_deadline = INT64_MAX, next_file_check = 0;
    int ready = o.ready_after == 0;
    if (ready)
        fprintf(stderr, "{\"ready\":true}\n");
    while (!stop) {
        int64_t now = now_us();
        if (now >= deadline || now >= grace_deadline)
            break;
        if (o.expect_file && !o.expect && now >= next_file_check) {
            next_file_check = now + 100000;
            if (read_expect_file(o.expect_file, &o.expect) == 0)
                grace_deadline = now + (int64_t)(o.grace_s * 1e6);
        }
        if (o.expect && records >= o.expect) {
            rc = 0;
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (m->err) {
            fprintf(stderr, "e2e-latency: %s\n", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        int64_t arrival = now_us();
        records++;
        int64_t ts = rd_kafka_message_timestamp(m, NULL);
        if (o.rate_from_ms && ts >= o.rate_from_ms)
            rate_records++;
        if (ts >= 0) {
            if (ts < ts_min)
                ts_min = ts;
            if (ts > ts_max)
                ts_max = ts;
        }
        double stamp, lms;
        if (!m->payload ||
            find_number(m->payload, m->len, pat, (size_t)pat_len, &stamp) != 0) {
            no_stamp++;
        } else if ((int64_t)stamp >= o.from_us && (int64_t)stamp < o.to_us) {
            int64_t d = arrival - (int64_t)stamp;
            ks_hist_record(&lat, d > 0 ? (uint64_t)d : 0);
            if (ts >= 0) { /* split at the pipeline's produce call (ms resolution) */
                int64_t b = ts * 1000 - (int64_t)stamp, a = arrival - ts * 1000;
                ks_hist_record(&before, b > 0 ? (uint64_t)b : 0);
                ks_hist_record(&after, a > 0 ? (uint64_t)a : 0);
            }
            if (secs) {
                int64_t sec = ((int64_t)stamp - (o.from_us > 0 ? o.from_us : 0)) / 1000000;
                if (o.from_us > 0 && sec >= 0 && sec < SERIES_MAX) {
                    uint64_t v = d > 0 ? (uint64_t)d : 0;
                    secs[sec].counts[series_index(v)]++;
                    secs[sec].n++;
                    if (v > secs[sec].max)
                        secs[sec].max = v;
                }
            }
            if (in_window++ == 0)
                arr_first = arrival;
            arr_last = arrival;
            if (find_number(m->payload, m->len, "\"latency_ms\":", 13, &lms) == 0 && lms >= 0)
                ks_hist_record(&inproc, (uint64_t)(lms * 1000.0 + 0.5));
        }
        rd_kafka_message_destroy(m);
        if (!ready && records >= o.ready_after) {
            ready = 1;
            fprintf(stderr, "{\"ready\":true}\n");
        }
    }
    if (rc != 0)
        fprintf(stderr, "e2e-latency: stopped with %llu of %llu expected records (%s)\n",
                (unsigned long long)records, (unsigned long long)o.expect,
                stop ? "signal" : "time limit");

    double span_s = (double)(arr_last - arr_first) / 1e6;
    double ts_span_s = ts_max > ts_min ? (double)(ts_max - ts_min) / 1e3 : 0;
    printf("{\"topic\":\"%s\",\"complete\":%s,\"records\":%llu,\"expected\":%llu,"
           "\"no_stamp\":%llu,\"measured\":%llu,"
           "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p95_ms\":%.3f,\"p99_ms\":%.3f,"
           "\"p999_ms\":%.3f,\"p9999_ms\":%.3f,\"max_ms\":%.3f,\"min_ms\":%.3f,"
           "\"mean_ms\":%.3f,\"clamped\":%llu,"
           "\"inproc_p50_ms\":%.3f,\"inproc_p99_ms\":%.3f,\"inproc_max_ms\":%.3f,"
           "\"to_produce_p50_ms\":%.3f,\"to_produce_p99_ms\":%.3f,"
           "\"after_produce_p50_ms\":%.3f,\"after_produce_p99_ms\":%.3f,"
           "\"arrival_rate\":%.0f,\"ts_first_ms\":%lld,\"ts_last_ms\":%lld,"
           "\"ts_rate\":%.0f,\"window_records\":%llu,\"window_rate\":%.0f}\n",
           o.topic, rc == 0 ? "true" : "false", (unsigned long long)records,
           (unsigned long long)o.expect, (unsigned long long)no_stamp,
           (unsigned long long)in_window, ms(ks_hist_quantile(&lat, 0.5)),
           ms(ks_hist_quantile(&lat, 0.9)), ms(ks_hist_quantile(&lat, 0.95)),
           ms(ks_hist_quantile(&lat, 0.99)), ms(ks_hist_quantile(&lat, 0.999)),
           ms(ks_hist_quantile(&lat, 0.9999)), ms(lat.n ? lat.max : 0),
           ms(lat.n ? lat.min : 0), lat.n ? lat.sum / (double)lat.n / 1000.0 : 0,
           (unsigned long long)lat.clamped, ms(ks_hist_quantile(&inproc, 0.5)),
           ms(ks_hist_quantile(&inproc, 0.99)), ms(inproc.n ? inproc.max : 0),
           ms(ks_hist_quantile(&before, 0.5)), ms(ks_hist_quantile(&before, 0.99)),
           ms(ks_hist_quantile(&after, 0.5)), ms(ks_hist_quantile(&after, 0.99)),
           span_s > 0 ? (double)(in_window - 1) / span_s : 0,
           (long long)(ts_min == INT64_MAX ? 0 : ts_min),
           (long long)(ts_max == INT64_MIN ? 0 : ts_max),
           ts_span_s > 0 ? (double)(records - 1) / ts_span_s : 0,
           (unsigned long long)rate_records,
           o.rate_from_ms && ts_max > o.rate_from_ms
               ? (double)rate_records / ((double)(ts_max - o.rate_from_ms) / 1e3)
               : 0);
    if (o.spectrum) {
        FILE *f = fopen(o.spectrum, "w");
        if (f) {
            ks_hist_write_spectrum(&lat, f, 1000.0);
            fclose(f);
        } else {
            fprintf(stderr, "e2e-latency: cannot write %s\n", o.spectrum);
        }
    }
    if (o.series && secs) {
        FILE *f = fopen(o.series, "w");
        if (f) {
            fprintf(f, "# second_from_window_start count p50_ms p99_ms max_ms\n");
            for (int i = 0; i < SERIES_MAX; i++)
                if (secs[i].n)
                    fprintf(f, "%d %llu %.3f %.3f %.3f\n", i, (unsigned long long)secs[i].n,
                            ms(series_quantile(&secs[i], 0.5)), ms(series_quantile(&secs[i], 0.99)),
                            ms(secs[i].max));
            fclose(f);
        } else {
            fprintf(stderr, "e2e-latency: cannot write %s\n", o.series);
        }
    }
out:
    free(secs);
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    ks_hist_free(&lat);
    ks_hist_free(&inproc);
    ks_hist_free(&before);
    ks_hist_free(&after);
    return rc;
}
