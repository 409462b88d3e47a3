/*
 * test_worker.c - the Kafka worker, in process, on librdkafka's mock cluster
 * (rdkafka_mock.h): commits on rebalance (eager and cooperative), the drain
 * on revocation and on shutdown, backpressure, dead-letter headers, injected
 * produce errors; and the delivery behaviours of issue 8 section 4 (poison
 * records, too-large outputs, record-level produce errors, missing topics,
 * weak delivery settings, failed commits, the shutdown deadline).
 *
 * Only the public API drives the engine (ks_config_load with `--set`
 * overrides, ks_pipeline_new/run/stop/free, the pipeline running on its own
 * thread), plus the metrics registry for counters; librdkafka itself feeds
 * the input topic, reads outputs and dead letters, and reads the group's
 * committed offsets. So these tests do not depend on how the engine is laid
 * out inside.
 *
 * Every test builds a fresh 2-broker mock cluster: broker 1 leads the input
 * topic and coordinates the group; broker 2 leads the output and dead-letter
 * topics, so produce latency (rd_kafka_mock_broker_set_rtt) and produce
 * errors (rd_kafka_mock_broker_push_request_error_rtts) hit only kscore's
 * producer. Events are {"id":"e<i>","x":<i>} with key "k<i>" and a header
 * trace=t<i>; each pipeline's model has its own version ("A", "B"), which its
 * output records name, so a test can tell which pipeline scored an event.
 *
 * Waits are bounded loops on conditions; nothing sleeps for a fixed time to
 * let something happen. A pipeline that does not stop within its bound ends
 * the process (it cannot be freed while its threads run).
 *
 * KSCORE_TEST_ONLY=<name> runs the tests whose name contains it;
 * KSCORE_TEST_LOG=info|debug shows the engine's log.
 */
#include "base/buf.h"
#include "base/log.h"
#include "base/metrics.h"
#include "kscore/kscore.h"
#include "test.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* this test's topics and group (fresh names on the shared mock cluster) */
#define IN_TOPIC   W.in
#define OUT_TOPIC  W.out
#define DLQ_TOPIC  W.dlq
#define GROUP      W.group
#define IN_PARTS   4
#define OUT_PARTS  4
#define DLQ_PARTS  1
#define MAX_EVENTS 40000
#define MAX_TESTS  32
#define HDR        "__kscore.errors."

#define ApiKey_Produce            0
#define ApiKey_OffsetCommit       8
#define ApiKey_AddPartitionsToTxn 24
#define ApiKey_EndTxn             26
#define ApiKey_TxnOffsetCommit    28

/* ---- time -------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the world: mock cluster, input events, what came out --------------- */

typedef struct event {
    int32_t partition;   /* where the feeder's delivery report put it, -1 = not yet */
    int64_t offset;
    int out_a, out_b;    /* output records naming model version A / B */
    int dlq;             /* dead letters */
    char last_src;       /* 'A' or 'B': the pipeline of the last output read */
    int a_then_b, b_then_a; /* outputs by one pipeline, then by the other */
} event_t;

typedef struct dead_letter {
    rd_kafka_message_t *m; /* kept for header checks */
} dead_letter_t;

/* One mock cluster for the whole binary, each test with its own topics and
 * group. The mock serves its control requests (leaders, coordinators, RTT,
 * errors) only when its I/O loop wakes, about once a second when no client
 * talks to it: a "waker" client asking for metadata every 10 ms keeps those
 * requests to milliseconds. */
static rd_kafka_t *mock_rk, *mock_waker;
static rd_kafka_topic_t *mock_waker_topic;
static rd_kafka_mock_cluster_t *mock_mc;
static int test_seq;

typedef struct world {
    rd_kafka_mock_cluster_t *mc;
    char in[32], out[32], dlq[32], group[32];
    int rtt_set, errors_pushed; /* what world_free must reset */
    char bootstraps[256];
    char dir[64];           /* temp dir: config and model files */

    rd_kafka_t *feeder;     /* produces input events */
    atomic_int fed_acked, fed_failed;
    rd_kafka_t *reader;     /* reads outputs and dead letters (assigned, no group) */
    rd_kafka_t *admin;      /* group.id = GROUP: committed offsets, watermarks */

    event_t *ev;
    int n_ev;               /* events produced so far */
    dead_letter_t *dl;
    int n_dl;
    long n_out_unknown;     /* outputs whose id is not one of ours */
    int64_t seen_out_bytes_max;
} world_t;

static world_t W;

static const char *MODEL_FMT =
    "{\"format\":\"kscore-model\",\"format_version\":1,\"model_type\":\"linear\","
    "\"task\":\"classification\",\"feature_names\":[\"x\"],\"classes\":[\"0\",\"1\"],"
    "\"version\":\"%s\",\"linear\":{\"coef\":[[0.001]],\"intercept\":[0],\"link\":\"logistic\"}}\n";

static const char *CONFIG_FMT =
    "kafka:\n"
    "  bootstrap.servers: \"%s\"\n"
    "  consumer: {session.timeout.ms: 2500, heartbeat.interval.ms: 100}\n"
    "workers: 1\n"
    "log: {level: %s}\n"
    "metrics: {enabled: \"false\"}\n"
    "input:\n"
    "  topics: [%s]\n"
    "  group_id: %s\n"
    "  fields:\n"
    "    id:  {type: string, required: true}\n"
    "    x:   {type: number, required: true}\n"
    "    pad: {type: string, default: \"\"}\n"
    "features:\n"
    "  - {name: x, expr: x}\n"
    "model: {path: model-a.json, watch_interval_ms: 0}\n"
    "batch: {max_size: 100, max_wait_ms: 5}\n"
    "output: {topic: %s, id_field: id, carry_fields: [pad]}\n"
    "dead_letter: {topic: %s}\n"
    "commit: {interval_ms: 100}\n"
    "shutdown: {timeout_ms: 10000}\n";

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

static void on_feed_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    int i = (int)(intptr_t)m->_private - 1;
    if (m->err) {
        fprintf(stderr, "feeder: event %d not delivered: %s\n", i, rd_kafka_err2str(m->err));
        atomic_fetch_add(&W.fed_failed, 1);
        return;
    }
    W.ev[i].partition = m->partition;
    W.ev[i].offset = m->offset;
    atomic_fetch_add(&W.fed_acked, 1);
}

static rd_kafka_t *new_client(rd_kafka_type_t type, const char *const *props)
{
    char err[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    if (rd_kafka_conf_set(c, "bootstrap.servers", W.bootstraps, err, sizeof(err)))
        goto fail;
    for (size_t i = 0; props && props[i]; i += 2)
        if (rd_kafka_conf_set(c, props[i], props[i + 1], err, sizeof(err)))
            goto fail;
    if (type == RD_KAFKA_PRODUCER)
        rd_kafka_conf_set_dr_msg_cb(c, on_feed_delivery);
    rd_kafka_t *rk = rd_kafka_new(type, c, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "test client: %s\n", err);
        exit(1);
    }
    return rk;
fail:
    fprintf(stderr, "test client config: %s\n", err);
    exit(1);
}

/* Fresh topics, group and clients for one test. */
static void world_init(void)
{
    char err[256];
    memset(&W, 0, sizeof(W));
    if (!mock_mc) {
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        rd_kafka_conf_set(c, "log_level", "3", err, sizeof(err));
        mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
        if (!mock_rk || !(mock_mc = rd_kafka_mock_cluster_new(mock_rk, 2))) {
            fprintf(stderr, "cannot create the mock cluster: %s\n", err);
            exit(1);
        }
        rd_kafka_conf_t *wc = rd_kafka_conf_new();
        if (rd_kafka_conf_set(wc, "bootstrap.servers", rd_kafka_mock_cluster_bootstraps(mock_mc),
                              err, sizeof(err)) ||
            rd_kafka_conf_set(wc, "topic.metadata.refresh.interval.ms", "10", err, sizeof(err)) ||
            rd_kafka_conf_set(wc, "log_level", "3", err, sizeof(err)) ||
            !(mock_waker = rd_kafka_new(RD_KAFKA_PRODUCER, wc, err, sizeof(err)))) {
            fprintf(stderr, "cannot create the mock's waker client: %s\n", err);
            exit(1);
        }
        mock_waker_topic = rd_kafka_topic_new(mock_waker, "waker", NULL);
        /* every test's topics, leaders and coordinator in one go */
        for (int k = 1; k <= MAX_TESTS; k++) {
            char name[32];
            struct { const char *prefix; int parts; int leader; } topics[] = {
                {"in", IN_PARTS, 1}, {"out", OUT_PARTS, 2}, {"dlq", DLQ_PARTS, 2}};
            for (size_t t = 0; t < 3; t++) {
                snprintf(name, sizeof(name), "%s-%d", topics[t].prefix, k);
                if (rd_kafka_mock_topic_create(mock_mc, name, topics[t].parts, 1)) {
                    fprintf(stderr, "cannot create mock topic %s\n", name);
                    exit(1);
                }
                for (int p = 0; p < topics[t].parts; p++)
                    rd_kafka_mock_partition_set_leader(mock_mc, name, p, topics[t].leader);
            }
            snprintf(name, sizeof(name), "g-%d", k);
            rd_kafka_mock_coordinator_set(mock_mc, "group", name, 1);
            /* the transactional.id of worker 0 with transaction.instance_id=test */
            snprintf(name, sizeof(name), "kscore-g-%d-test-0", k);
            rd_kafka_mock_coordinator_set(mock_mc, "transaction", name, 1);
        }
    }
    W.mc = mock_mc;
    if (++test_seq > MAX_TESTS) {
        fprintf(stderr, "more than MAX_TESTS (%d) tests\n", MAX_TESTS);
        exit(1);
    }
    snprintf(W.in, sizeof(W.in), "in-%d", test_seq);
    snprintf(W.out, sizeof(W.out), "out-%d", test_seq);
    snprintf(W.dlq, sizeof(W.dlq), "dlq-%d", test_seq);
    snprintf(W.group, sizeof(W.group), "g-%d", test_seq);
    snprintf(W.bootstraps, sizeof(W.bootstraps), "%s", rd_kafka_mock_cluster_bootstraps(W.mc));

    snprintf(W.dir, sizeof(W.dir), "/tmp/ks-test-worker-XXXXXX");
    if (!mkdtemp(W.dir)) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        exit(1);
    }
    char path[128], text[1024];
    snprintf(path, sizeof(path), "%s/model-a.json", W.dir);
    snprintf(text, sizeof(text), MODEL_FMT, "A");
    write_file(path, text);
    snprintf(path, sizeof(path), "%s/model-b.json", W.dir);
    snprintf(text, sizeof(text), MODEL_FMT, "B");
    write_file(path, text);
    snprintf(path, sizeof(path), "%s/p.yaml", W.dir);
    char cfg[2048];
    const char *level = getenv("KSCORE_TEST_LOG");
    snprintf(cfg, sizeof(cfg), CONFIG_FMT, W.bootstraps, level && *level ? level : "warn", W.in,
             W.group, W.out, W.dlq);
    write_file(path, cfg);

    W.ev = calloc(MAX_EVENTS, sizeof(*W.ev));
    W.dl = calloc(MAX_EVENTS, sizeof(*W.dl));
    for (int i = 0; i < MAX_EVENTS; i++)
        W.ev[i].partition = -1;
    const char *feed_props[] = {"linger.ms", "2", "enable.idempotence", "true",
                                "message.max.bytes", "2000000", NULL};
    W.feeder = new_client(RD_KAFKA_PRODUCER, feed_props);
    const char *reader_props[] = {"group.id", "test-reader", "enable.auto.commit", "false",
                                  "fetch.wait.max.ms", "10", NULL};
    W.reader = new_client(RD_KAFKA_CONSUMER, reader_props);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(OUT_PARTS + DLQ_PARTS);
    for (int p = 0; p < OUT_PARTS; p++)
        rd_kafka_topic_partition_list_add(l, OUT_TOPIC, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    for (int p = 0; p < DLQ_PARTS; p++)
        rd_kafka_topic_partition_list_add(l, DLQ_TOPIC, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    if (rd_kafka_assign(W.reader, l)) {
        fprintf(stderr, "reader: cannot assign\n");
        exit(1);
    }
    rd_kafka_topic_partition_list_destroy(l);
    const char *admin_props[] = {"group.id", GROUP, "enable.auto.commit", "false", NULL};
    W.admin = new_client(RD_KAFKA_CONSUMER, admin_props);
}

static void world_free(void)
{
    for (int i = 0; i < W.n_dl; i++)
        rd_kafka_message_destroy(W.dl[i].m);
    rd_kafka_consumer_close(W.reader);
    rd_kafka_destroy(W.reader);
    rd_kafka_destroy(W.admin);
    rd_kafka_flush(W.feeder, 5000);
    rd_kafka_destroy(W.feeder);
    if (W.rtt_set) {
        rd_kafka_mock_broker_set_rtt(W.mc, 1, 0);
        rd_kafka_mock_broker_set_rtt(W.mc, 2, 0);
    }
    if (W.errors_pushed) {
        static const int16_t keys[] = {ApiKey_Produce, ApiKey_OffsetCommit,
                                       ApiKey_AddPartitionsToTxn, ApiKey_EndTxn,
                                       ApiKey_TxnOffsetCommit};
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
            rd_kafka_mock_clear_request_errors(W.mc, keys[k]);
    }
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", W.dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", W.dir);
    free(W.ev);
    free(W.dl);
}

/* Output broker round-trip time (broker 2 leads only the output and
 * dead-letter topics). */
static void set_rtt(int ms)
{
    W.rtt_set = 1;
    rd_kafka_mock_broker_set_rtt(W.mc, 2, ms);
}

/* ---- feeding input ------------------------------------------------------- */

/* Produces event i (value `value` or the standard one) to partition i % 4. */
static void feed_one(int i, const char *value, size_t len, const char *key)
{
    char v[128], k[32];
    if (!value) {
        len = (size_t)snprintf(v, sizeof(v), "{\"id\":\"e%d\",\"x\":%d}", i, i);
        value = v;
    }
    if (!key) {
        snprintf(k, sizeof(k), "k%d", i);
        key = k;
    }
    char trace[32];
    snprintf(trace, sizeof(trace), "t%d", i);
    rd_kafka_resp_err_t err;
    for (int tries = 0; tries < 1000; tries++) {
        err = rd_kafka_producev(W.feeder, RD_KAFKA_V_TOPIC(IN_TOPIC),
                                RD_KAFKA_V_PARTITION(i % IN_PARTS),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_KEY(key, strlen(key)),
                                RD_KAFKA_V_VALUE((void *)value, len),
                                RD_KAFKA_V_HEADER("trace", trace, -1),
                                RD_KAFKA_V_OPAQUE((void *)(intptr_t)(i + 1)), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(W.feeder, 10);
    }
    if (err) {
        fprintf(stderr, "feeder: cannot produce event %d: %s\n", i, rd_kafka_err2str(err));
        exit(1);
    }
    if (i >= W.n_ev)
        W.n_ev = i + 1;
}

/* Waits until every event produced so far is acknowledged. */
static void feed_flush(void)
{
    rd_kafka_flush(W.feeder, 10000);
    if (atomic_load(&W.fed_acked) + atomic_load(&W.fed_failed) < W.n_ev ||
        atomic_load(&W.fed_failed)) {
        fprintf(stderr, "feeder: %d of %d events acknowledged, %d failed\n",
                atomic_load(&W.fed_acked), W.n_ev, atomic_load(&W.fed_failed));
        exit(1);
    }
}

static void feed_range(int from, int to)
{
    for (int i = from; i < to; i++)
        feed_one(i, NULL, 0, NULL);
    feed_flush();
}

/* A feeder thread: events from `next` on, a few every millisecond, until
 * told to stop (events keep flowing through rebalances). */
typedef struct feeder_thread {
    pthread_t th;
    atomic_int stop;
    int next, max;
} feeder_thread_t;

static void *feeder_main(void *arg)
{
    feeder_thread_t *f = arg;
    struct timespec pace = {0, 4 * 1000000}; /* ~1,000 events/s */
    while (!atomic_load(&f->stop) && f->next < f->max) {
        for (int k = 0; k < 4 && f->next < f->max; k++)
            feed_one(f->next++, NULL, 0, NULL);
        rd_kafka_poll(W.feeder, 0);
        nanosleep(&pace, NULL); /* pacing the stream, not waiting for a condition */
    }
    return NULL;
}

static void feeder_start(feeder_thread_t *f, int from, int max)
{
    memset(f, 0, sizeof(*f));
    f->next = from;
    f->max = max;
    pthread_create(&f->th, NULL, feeder_main, f);
}

static void feeder_stop(feeder_thread_t *f)
{
    atomic_store(&f->stop, 1);
    pthread_join(f->th, NULL);
    feed_flush();
}

/* ---- reading outputs and dead letters ---------------------------------- */

static int header_count(const rd_kafka_message_t *m, const char *name)
{
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(m, &h) || !h)
        return 0;
    int n = 0;
    const void *v;
    size_t len;
    while (rd_kafka_header_get(h, (size_t)n, name, &v, &len) == RD_KAFKA_RESP_ERR_NO_ERROR)
        n++;
    return n;
}

/* The value of header `name` (the last one) as a string in buf, or NULL. */
static const char *header_str(const rd_kafka_message_t *m, const char *name, char *buf,
                              size_t size)
{
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t len;
    if (rd_kafka_message_headers(m, &h) || !h ||
        rd_kafka_header_get_last(h, name, &v, &len) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    if (!v)
        return "(null)";
    snprintf(buf, size, "%.*s", (int)len, (const char *)v);
    return buf;
}

/* "e123" in the output record's "id" -> 123; -1 if absent. */
static int output_id(const rd_kafka_message_t *m)
{
    const char *p = m->payload;
    const char *end = p + m->len;
    static const char pat[] = "\"id\":\"e";
    for (; p && p + sizeof(pat) < end; p++)
        if (memcmp(p, pat, sizeof(pat) - 1) == 0)
            return atoi(p + sizeof(pat) - 1);
    return -1;
}

static int has_text(const rd_kafka_message_t *m, const char *text)
{
    return m->payload && memmem(m->payload, m->len, text, strlen(text)) != NULL;
}

/* The event a dead letter is for, from its __kscore.errors.partition and
 * .offset headers (the dead letter of a refused output record carries the
 * output's key, not the event's), or -1. */
static int dead_letter_event(const rd_kafka_message_t *m)
{
    char pbuf[32], obuf[32];
    const char *ps = header_str(m, HDR "partition", pbuf, sizeof(pbuf));
    const char *os = header_str(m, HDR "offset", obuf, sizeof(obuf));
    if (!ps || !os)
        return -1;
    int32_t part = (int32_t)atoi(ps);
    int64_t off = atoll(os);
    for (int i = 0; i < W.n_ev; i++)
        if (W.ev[i].partition == part && W.ev[i].offset == off)
            return i;
    return -1;
}

/* Reads what the reader has, for up to timeout_ms (returns at the first
 * empty poll after that). */
static void read_outputs(int timeout_ms)
{
    int64_t until = now_ms() + timeout_ms;
    do {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(W.reader, 20);
        if (!m)
            continue;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                fprintf(stderr, "reader: %s\n", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        const char *topic = rd_kafka_topic_name(m->rkt);
        if (strcmp(topic, OUT_TOPIC) == 0) {
            int i = output_id(m);
            if ((int64_t)m->len > W.seen_out_bytes_max)
                W.seen_out_bytes_max = (int64_t)m->len;
            if (i < 0 || i >= MAX_EVENTS)
                W.n_out_unknown++;
            else {
                /* both pipelines key outputs by id, so one event's outputs
                 * share a partition and are read in log order */
                event_t *e = &W.ev[i];
                char src = has_text(m, "\"model_version\":\"B\"") ? 'B' : 'A';
                if (src == 'B')
                    e->out_b++;
                else
                    e->out_a++;
                if (e->last_src == 'A' && src == 'B')
                    e->a_then_b++;
                if (e->last_src == 'B' && src == 'A')
                    e->b_then_a++;
                e->last_src = src;
            }
            rd_kafka_message_destroy(m);
        } else {
            int i = dead_letter_event(m);
            char key[16];
            if (i < 0 && m->key && m->key_len > 1 && m->key_len < sizeof(key) &&
                ((const char *)m->key)[0] == 'k') {
                memcpy(key, m->key, m->key_len);
                key[m->key_len] = '\0';
                i = atoi(key + 1);
            }
            if (i >= 0 && i < MAX_EVENTS)
                W.ev[i].dlq++;
            if (W.n_dl < MAX_EVENTS)
                W.dl[W.n_dl++].m = m;
            else
                rd_kafka_message_destroy(m);
        }
    } while (now_ms() < until);
}

static int outputs_of(int i)
{
    return W.ev[i].out_a + W.ev[i].out_b + W.ev[i].dlq;
}

/* Events (of the first n) without any output yet. */
static int missing_outputs(int n)
{
    int missing = 0;
    for (int i = 0; i < n; i++)
        missing += outputs_of(i) == 0;
    return missing;
}

static int total_outputs(int n, int (*of)(int))
{
    int t = 0;
    for (int i = 0; i < n; i++)
        t += of(i);
    return t;
}

static int out_a_of(int i) { return W.ev[i].out_a; }
static int out_b_of(int i) { return W.ev[i].out_b; }

/* Reads until every one of the first n events has an output or timeout_ms
 * passes; returns the number still missing. */
static int wait_all_outputs(int n, int timeout_ms)
{
    int64_t until = now_ms() + timeout_ms;
    int missing;
    while ((missing = missing_outputs(n)) > 0 && now_ms() < until)
        read_outputs(50);
    return missing;
}

/* Reads until `of` summed over the first n events reaches `want`. */
static int wait_outputs_sum(int n, int (*of)(int), int want, int timeout_ms)
{
    int64_t until = now_ms() + timeout_ms;
    while (total_outputs(n, of) < want && now_ms() < until)
        read_outputs(50);
    return total_outputs(n, of) >= want;
}

/* Every one of the first n events has exactly one output; prints the first
 * few that do not. Returns the number of duplicates seen. */
static int check_exactly_once(const char *what, int n)
{
    int missing = 0, dups = 0, shown = 0;
    for (int i = 0; i < n; i++) {
        int k = outputs_of(i);
        if (k == 1)
            continue;
        if (k == 0)
            missing++;
        else
            dups += k - 1;
        if (shown++ < 5)
            fprintf(stderr, "  %s: event e%d (in[%d]@%lld) has %d outputs (A %d, B %d, dlq %d)\n",
                    what, i, W.ev[i].partition, (long long)W.ev[i].offset, k, W.ev[i].out_a,
                    W.ev[i].out_b, W.ev[i].dlq);
    }
    CHECK_MSG(missing == 0, "%s: %d of %d events have no output", what, missing, n);
    CHECK_MSG(dups == 0, "%s: %d duplicate outputs", what, dups);
    CHECK_MSG(W.n_out_unknown == 0, "%s: %ld output records with an unknown id", what,
              W.n_out_unknown);
    return dups;
}

/* ---- committed offsets --------------------------------------------------- */

/* The group's committed offset of each input partition (-1 = none). */
static void committed_offsets(int64_t *c)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(IN_PARTS);
    for (int p = 0; p < IN_PARTS; p++)
        rd_kafka_topic_partition_list_add(l, IN_TOPIC, p);
    rd_kafka_resp_err_t err = rd_kafka_committed(W.admin, l, 5000);
    for (int p = 0; p < IN_PARTS; p++)
        c[p] = err ? -2 : l->elems[p].offset < 0 ? -1 : l->elems[p].offset;
    if (err)
        fprintf(stderr, "committed offsets: %s\n", rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(l);
}

static int64_t end_offset(const char *topic, int p)
{
    int64_t lo = -1, hi = -1;
    rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(W.admin, topic, p, &lo, &hi, 5000);
    if (err)
        fprintf(stderr, "watermarks of %s[%d]: %s\n", topic, p, rd_kafka_err2str(err));
    return err ? -2 : hi;
}

/* After a clean stop: every input partition's committed offset is its end. */
static void check_committed_at_end(const char *what)
{
    int64_t c[IN_PARTS];
    committed_offsets(c);
    for (int p = 0; p < IN_PARTS; p++) {
        int64_t end = end_offset(IN_TOPIC, p);
        CHECK_MSG(c[p] == end, "%s: in[%d] committed offset %lld, end offset %lld", what, p,
                  (long long)c[p], (long long)end);
    }
}

/* At-least-once: a committed offset never covers an event without an
 * acknowledged output. Outputs are acknowledged before their offsets are
 * committed, so they are in the log when the commit is seen: read for a
 * bounded time until they are all there. */
static void check_commits_covered(const char *what)
{
    int64_t c[IN_PARTS];
    committed_offsets(c);
    int64_t until = now_ms() + 5000;
    int bad = -1;
    do {
        bad = -1;
        for (int i = 0; i < W.n_ev && bad < 0; i++)
            if (W.ev[i].partition >= 0 && W.ev[i].offset < c[W.ev[i].partition] &&
                outputs_of(i) == 0)
                bad = i;
        if (bad >= 0)
            read_outputs(50);
    } while (bad >= 0 && now_ms() < until);
    CHECK_MSG(bad < 0,
              "%s: committed offset %lld of in[%d] covers event e%d at offset %lld, which has "
              "no output", what, bad >= 0 ? (long long)c[W.ev[bad].partition] : 0LL,
              bad >= 0 ? W.ev[bad].partition : 0, bad, bad >= 0 ? (long long)W.ev[bad].offset : 0LL);
}

/* After a clean stop: nothing output is left uncommitted (a restart would
 * repeat it): every event with an output lies below its partition's
 * committed offset. */
static void check_outputs_committed(const char *what)
{
    int64_t c[IN_PARTS];
    committed_offsets(c);
    read_outputs(200);
    int bad = 0, shown = 0;
    for (int i = 0; i < W.n_ev; i++) {
        if (outputs_of(i) && W.ev[i].partition >= 0 && W.ev[i].offset >= c[W.ev[i].partition]) {
            bad++;
            if (shown++ < 3)
                fprintf(stderr, "  %s: e%d (in[%d]@%lld) has an output but the committed offset "
                        "is %lld\n", what, i, W.ev[i].partition, (long long)W.ev[i].offset,
                        (long long)c[W.ev[i].partition]);
        }
    }
    CHECK_MSG(bad == 0, "%s: %d events have outputs beyond the committed offsets", what, bad);
}

/* ---- metrics ------------------------------------------------------------- */

/* The sum of every sample of a metric family in the registry. */
static double metric(const char *name)
{
    ks_buf_t b = {0};
    ks_metrics_render(&b);
    ks_buf_putc(&b, '\0');
    double sum = 0;
    size_t nl = strlen(name);
    for (const char *line = b.data; line && *line;) {
        const char *eol = strchr(line, '\n');
        if (line[0] != '#' && strncmp(line, name, nl) == 0 && (line[nl] == ' ' || line[nl] == '{')) {
            const char *sp = eol ? eol : line + strlen(line);
            while (sp > line && sp[-1] != ' ')
                sp--;
            sum += strtod(sp, NULL);
        }
        line = eol ? eol + 1 : NULL;
    }
    ks_buf_free(&b);
    return sum;
}

/* 1 if one of the engine's recent warnings or errors contains `text`
 * (ks_log_recent_json: the status page's list). */
static int log_has(const char *text)
{
    ks_buf_t b = {0};
    ks_log_recent_json(&b, KS_LOG_RECENT);
    ks_buf_putc(&b, '\0');
    int found = strstr(b.data, text) != NULL;
    ks_buf_free(&b);
    return found;
}

/* Waits (bounded) until the engine logged a warning or error with `text`. */
static int wait_log(const char *text, int timeout_ms)
{
    int64_t until = now_ms() + timeout_ms;
    struct timespec poll = {0, 20 * 1000000};
    while (!log_has(text) && now_ms() < until)
        nanosleep(&poll, NULL);
    return log_has(text);
}

/* Pushes `n` errors (no delay) for the next requests of `api` that broker
 * `broker` serves. Broker stacks cannot be cleared: a test hits all it
 * pushes (errors_left checks it). */
static void push_errors(int32_t broker, int16_t api, size_t n, const rd_kafka_resp_err_t *errs)
{
    for (size_t i = 0; i < n; i++)
        rd_kafka_mock_broker_push_request_error_rtts(W.mc, broker, api, 1, errs[i], 0);
}

/* Injected errors for `api` on `broker` not hit yet. */
static size_t errors_left(int32_t broker, int16_t api)
{
    size_t left = 0;
    rd_kafka_mock_broker_error_stack_cnt(W.mc, broker, api, &left);
    return left;
}

/* Waits (bounded) until `name` moved past `from` by at least `by`. */
static int wait_metric(const char *name, double from, double by, int timeout_ms)
{
    int64_t until = now_ms() + timeout_ms;
    struct timespec poll = {0, 10 * 1000000};
    while (metric(name) - from < by && now_ms() < until)
        nanosleep(&poll, NULL);
    return metric(name) - from >= by;
}

/* ---- pipelines ------------------------------------------------------------ */

typedef struct runner {
    const char *name;
    ks_config_t *cfg;
    ks_pipeline_t *p;
    pthread_t th;
    atomic_int done;
    int rc;
    int running;
    int64_t stopped_in_ms; /* how long ks_pipeline_run took to return after stop */
} runner_t;

static void *runner_main(void *arg)
{
    runner_t *r = arg;
    r->rc = ks_pipeline_run(r->p);
    atomic_store(&r->done, 1);
    return NULL;
}

/* Loads the test config with `--set` overrides (NULL-terminated). Returns the
 * error code; the message in err. */
static int load_config(ks_config_t **cfg, char *err, size_t errsize, const char *const *sets)
{
    char path[128];
    size_t n = 0;
    while (sets && sets[n])
        n++;
    snprintf(path, sizeof(path), "%s/p.yaml", W.dir);
    return ks_config_load(path, sets, n, cfg, err, errsize);
}

/* Starts a pipeline on its own thread: args[0] names it, the rest (up to a
 * NULL) are --set overrides. */
static int runner_start_v(runner_t *r, const char *const *args)
{
    const char *name = args[0];
    const char *const *sets = args + 1;
    char err[1024];
    memset(r, 0, sizeof(*r));
    r->name = name;
    if (load_config(&r->cfg, err, sizeof(err), sets)) {
        fprintf(stderr, "%s: config: %s\n", name, err);
        return -1;
    }
    if (ks_pipeline_new(r->cfg, &r->p, err, sizeof(err))) {
        fprintf(stderr, "%s: ks_pipeline_new: %s\n", name, err);
        ks_config_free(r->cfg);
        r->cfg = NULL;
        return -1;
    }
    if (pthread_create(&r->th, NULL, runner_main, r)) {
        fprintf(stderr, "%s: cannot start a thread\n", name);
        exit(1);
    }
    r->running = 1;
    return 0;
}

#define runner_start(r, ...) runner_start_v((r), (const char *const[]){__VA_ARGS__, NULL})

/* Waits (bounded) for a pipeline's thread to end by itself. */
static int runner_wait(runner_t *r, int timeout_ms)
{
    int64_t until = now_ms() + timeout_ms;
    struct timespec poll = {0, 5 * 1000000};
    while (!atomic_load(&r->done) && now_ms() < until)
        nanosleep(&poll, NULL);
    return atomic_load(&r->done);
}

/* Stops a pipeline (bounded: a pipeline that does not stop ends the test
 * binary, it cannot be freed) and frees it; returns its exit code. */
static int runner_stop(runner_t *r)
{
    if (!r->running)
        return -1;
    int64_t t0 = now_ms();
    ks_pipeline_stop(r->p);
    if (!runner_wait(r, 40000)) {
        fprintf(stderr, "FATAL: pipeline %s did not stop within 40 s after ks_pipeline_stop\n",
                r->name);
        _exit(1);
    }
    r->stopped_in_ms = now_ms() - t0;
    pthread_join(r->th, NULL);
    r->running = 0;
    if (ks_pipeline_free(r->p) != 0) {
        CHECK_MSG(0, "pipeline %s left a worker behind at shutdown", r->name);
        return r->rc; /* its config must stay: leaked on purpose */
    }
    ks_config_free(r->cfg);
    return r->rc;
}

/* ---- tests ------------------------------------------------------------------ */

static int64_t t_start;

static void test_begin(void)
{
    int64_t t0 = now_ms();
    world_init();
    t_start = now_ms();
    if (getenv("KSCORE_TEST_TIMING"))
        fprintf(stderr, "     (world_init: %lld ms)\n", (long long)(t_start - t0));
}

static void test_end(const char *name)
{
    world_free();
    fprintf(stderr, "     (%s: %.1f s)\n", name, (double)(now_ms() - t_start) / 1000);
}

#define MAX_RUNNERS 2

static int a_then_b_of(int i) { return W.ev[i].a_then_b; }
static int b_then_a_of(int i) { return W.ev[i].b_then_a; }

/* 1. Rebalances with events flowing: pipeline B joins A's group, then
 * leaves; the feeder keeps producing throughout. Checked: nothing is lost;
 * at every sample, and at the end, no committed offset covers an event
 * without an output; after the stops every partition's committed offset is
 * its end offset; and when B leaves, no event B output is output again by A:
 * B's revocation drains its outputs and commits them before its LeaveGroup.
 *
 * Events A output that B outputs again after taking partitions over are
 * reported, not failed, because both librdkafka 2.0.2 and the mock allow
 * them within at-least-once: A's periodic async commit sent while the group
 * is joining is answered after the generation moved on (requests on the
 * coordinator connection wait behind the JoinGroup, as on a real broker) with
 * ILLEGAL_GENERATION, and librdkafka then declares A's whole assignment lost
 * ("LOST: ... OffsetCommit error: Illegal generation"), so A's revocation
 * commit fails and the new owners resume from A's last successful commit
 * (commit.interval_ms=100 keeps that recent). With the eager assignors the
 * mock also refuses every commit once a rebalance has begun
 * (REBALANCE_IN_PROGRESS while Joining, where a real broker accepts the
 * current generation's commits in PreparingRebalance).
 *
 * With `rtt_ms`, kscore's outputs are slow to be acknowledged, so the
 * revoking member has outputs in flight that its drain must wait for. */
static void rebalance_scenario(const char *what, const char *assignor, int rtt_ms)
{
    char strategy[128];
    snprintf(strategy, sizeof(strategy), "kafka.consumer.partition.assignment.strategy=%s",
             assignor);
    runner_t a, b;
    feeder_thread_t f;
    if (rtt_ms)
        set_rtt(rtt_ms);
    if (runner_start(&a, "A", strategy, "commit.interval_ms=100")) {
        CHECK_MSG(0, "%s: pipeline A did not start", what);
        return;
    }
    feeder_start(&f, 0, MAX_EVENTS);
    CHECK_MSG(wait_outputs_sum(MAX_EVENTS, out_a_of, 200, 20000),
              "%s: A produced %d outputs in 20 s, expected 200", what,
              total_outputs(MAX_EVENTS, out_a_of));
    check_commits_covered(what);
    if (runner_start(&b, "B", strategy, "commit.interval_ms=100", "model.path=model-b.json")) {
        CHECK_MSG(0, "%s: pipeline B did not start", what);
        feeder_stop(&f);
        runner_stop(&a);
        return;
    }
    CHECK_MSG(wait_outputs_sum(MAX_EVENTS, out_b_of, 300, 20000),
              "%s: B produced %d outputs in 20 s after joining the group, expected 300 (did it "
              "get partitions?)", what, total_outputs(MAX_EVENTS, out_b_of));
    check_commits_covered(what);
    int rc_b = runner_stop(&b);
    CHECK_MSG(rc_b == KS_EXIT_OK, "%s: B exited %d after leaving the group", what, rc_b);
    int a_before = total_outputs(MAX_EVENTS, out_a_of);
    /* A takes B's partitions back; events still flow */
    CHECK_MSG(wait_outputs_sum(MAX_EVENTS, out_a_of, a_before + 400, 20000),
              "%s: A produced only %d more outputs in 20 s after B left", what,
              total_outputs(MAX_EVENTS, out_a_of) - a_before);
    check_commits_covered(what);
    feeder_stop(&f);
    int n = W.n_ev;
    if (rtt_ms)
        set_rtt(0);
    int missing = wait_all_outputs(n, 30000);
    CHECK_MSG(missing == 0, "%s: %d of %d events have no output 30 s after the stream ended",
              what, missing, n);
    check_commits_covered(what);
    int rc_a = runner_stop(&a);
    CHECK_MSG(rc_a == KS_EXIT_OK, "%s: A exited %d", what, rc_a);
    read_outputs(200);
    check_committed_at_end(what);
    missing = missing_outputs(n);
    CHECK_MSG(missing == 0, "%s: %d of %d events have no output", what, missing, n);
    int b_then_a = total_outputs(n, b_then_a_of), a_then_b = total_outputs(n, a_then_b_of);
    CHECK_MSG(b_then_a == 0, "%s: %d events output by B were output again by A after B left "
              "the group (B's revocation did not drain and commit)", what, b_then_a);
    int outs = total_outputs(n, outputs_of);
    fprintf(stderr, "     (%s: %d events, %d scored by A, %d by B; repeated: %d in all, %d by "
            "B after A)\n", what, n, total_outputs(n, out_a_of), total_outputs(n, out_b_of),
            outs - n, a_then_b);
}

/* 1 and 4a: commits on rebalance and the drain on revocation. The output
 * broker answers after 100 ms, so a revoking member always has outputs in
 * flight. */
static void test_rebalance_commits_eager_range(void)
{
    test_begin();
    rebalance_scenario("eager (range)", "range", 100);
    test_end(__func__);
}

static void test_rebalance_commits_cooperative_sticky(void)
{
    test_begin();
    rebalance_scenario("cooperative-sticky", "cooperative-sticky", 100);
    test_end(__func__);
}

/* 4b. The drain on shutdown: stopped while outputs are in flight (the output
 * broker answers after 150 ms), the pipeline exits 0 having committed exactly
 * what it output; a second run in the group then has nothing left to do or
 * finishes the stream, repeating nothing; after its clean stop committed ==
 * end everywhere. */
static void test_drain_on_shutdown(void)
{
    test_begin();
    const int n = 3000;
    feed_range(0, n);
    set_rtt(500);
    runner_t a, b;
    double consumed0 = metric("kscore_events_consumed_total"), consumed = 0;
    CHECK(runner_start(&a, "A", "commit.interval_ms=60000") == 0);
    /* stop as soon as events are consumed: their outputs take 500 ms */
    int64_t until = now_ms() + 20000;
    while ((consumed = metric("kscore_events_consumed_total") - consumed0) < 50 &&
           now_ms() < until)
        read_outputs(5);
    read_outputs(0);
    int seen_at_stop = total_outputs(n, out_a_of);
    int rc = runner_stop(&a);
    CHECK_MSG(consumed >= 50, "A consumed %.0f events in 20 s", consumed);
    CHECK_MSG(seen_at_stop < consumed, "nothing was in flight at the stop (consumed %.0f, "
              "outputs %d)", consumed, seen_at_stop);
    consumed = metric("kscore_events_consumed_total") - consumed0;
    CHECK_MSG(rc == KS_EXIT_OK, "A exited %d after a clean stop", rc);
    set_rtt(0); /* the reader fetches from that broker too */
    wait_outputs_sum(n, out_a_of, (int)consumed, 10000);
    int out_first = total_outputs(n, out_a_of);
    CHECK_MSG(out_first == (int)consumed, "A consumed %.0f events but output %d before exiting",
              consumed, out_first);
    check_commits_covered("after the stop");
    check_outputs_committed("after the stop");
    CHECK(runner_start(&b, "B", "model.path=model-b.json") == 0);
    int missing = wait_all_outputs(n, 30000);
    CHECK_MSG(missing == 0, "%d of %d events have no output after the second run", missing, n);
    rc = runner_stop(&b);
    CHECK_MSG(rc == KS_EXIT_OK, "B exited %d", rc);
    read_outputs(200);
    check_exactly_once("stop with outputs in flight, then restart", n);
    check_committed_at_end("after the second run");
    fprintf(stderr, "     (stopped with %d outputs seen; the first run output %d, the second "
            "%d)\n", seen_at_stop, out_first, total_outputs(n, out_b_of));
    test_end(__func__);
}

/* 2. Backpressure: a 20-message producer queue, batches of 100 and a slow
 * output broker: the queue fills, the worker pauses its partitions, resumes
 * when the queue drains, and every event gets exactly one output. One event
 * in three is malformed, so dead letters also wait for room in the queue:
 * the dead-letter counter still counts each of them once. */
static void test_backpressure_pause_resume(void)
{
    test_begin();
    const int n = 450;
    int n_bad = 0;
    for (int i = 0; i < n; i++) {
        if (i % 3) {
            feed_one(i, NULL, 0, NULL);
            continue;
        }
        char v[64];
        int len = snprintf(v, sizeof(v), "{\"id\":\"e%d\"}", i); /* x missing */
        feed_one(i, v, (size_t)len, NULL);
        n_bad++;
    }
    feed_flush();
    set_rtt(10);
    double pauses0 = metric("kscore_backpressure_pauses_total");
    double dl0 = metric("kscore_events_dead_lettered_total");
    runner_t a;
    CHECK(runner_start(&a, "A", "kafka.producer.queue.buffering.max.messages=20") == 0);
    int missing = wait_all_outputs(n, 40000);
    CHECK_MSG(missing == 0, "%d of %d events have no output after 40 s", missing, n);
    double pauses = metric("kscore_backpressure_pauses_total") - pauses0;
    int rc = runner_stop(&a);
    double dl = metric("kscore_events_dead_lettered_total") - dl0;
    CHECK_MSG(rc == KS_EXIT_OK, "A exited %d", rc);
    CHECK_MSG(pauses >= 1, "kscore_backpressure_pauses_total did not move (%.0f)", pauses);
    CHECK_MSG(dl == n_bad, "kscore_events_dead_lettered_total moved by %.0f for %d dead letters",
              dl, n_bad);
    read_outputs(200);
    check_exactly_once("backpressure", n);
    CHECK_EQ_INT(W.n_dl, n_bad);
    check_committed_at_end("backpressure");
    fprintf(stderr, "     (%.0f pauses)\n", pauses);
    test_end(__func__);
}

/* 3. Dead letters: each kind of malformed event is dead-lettered with the
 * original key, value bytes and headers (in order, duplicates and null values
 * included) plus exactly one of each __kscore.errors.* header, with exact
 * values; the valid events around them are scored, headers carried. */
typedef struct bad_event {
    int i;
    const char *value;
    size_t len;
    const char *cls, *msg, *stage;
} bad_event_t;

static void test_dead_letter_headers(void)
{
    test_begin();
    static const char bad_utf8[] = "{\"id\":\"e31\",\"x\":1,\"s\":\"\xff\"}";
    bad_event_t bad[] = {
        {3, "not json", 8, "deserialization", "invalid JSON at byte 0: the event is not a JSON object", "decode"},
        {10, "{\"id\":\"e10\"}", 12, "missing_field", "required field 'x' is missing", "decode"},
        {17, "{\"id\":\"e17\",\"x\":\"abc\"}", 22, "type_mismatch", "field 'x': expected a number, got a string", "decode"},
        {22, "{\"id\":\"e22\",\"x\":null}", 21, "missing_field", "required field 'x' is null", "decode"},
        {31, bad_utf8, sizeof(bad_utf8) - 1, "deserialization", NULL /* checked by prefix */, "decode"},
        {40, "", 0, "deserialization", "invalid JSON at byte 0: empty event", "decode"},
        {45, "{\"id\":\"e45\",\"x\":1} trailing", 27, "deserialization", "invalid JSON at byte 19: unexpected data after the JSON object", "decode"},
    };
    const int n_bad = (int)(sizeof(bad) / sizeof(bad[0]));
    const int n = 60;
    double dl0 = metric("kscore_events_dead_lettered_total");
    for (int i = 0; i < n; i++) {
        int b = -1;
        for (int k = 0; k < n_bad; k++)
            if (bad[k].i == i)
                b = k;
        if (b < 0) {
            feed_one(i, NULL, 0, NULL);
            continue;
        }
        /* original headers: a duplicate name, a binary value, a null value */
        char key[16], trace[16];
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(trace, sizeof(trace), "t%d", i);
        rd_kafka_headers_t *h = rd_kafka_headers_new(4);
        rd_kafka_header_add(h, "trace", -1, trace, -1);
        rd_kafka_header_add(h, "bin", -1, "\x00\x01\xff", 3);
        rd_kafka_header_add(h, "nullh", -1, NULL, 0);
        rd_kafka_header_add(h, "trace", -1, "second", -1);
        rd_kafka_resp_err_t err = rd_kafka_producev(
            W.feeder, RD_KAFKA_V_TOPIC(IN_TOPIC), RD_KAFKA_V_PARTITION(i % IN_PARTS),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, strlen(key)),
            RD_KAFKA_V_VALUE(bad[b].len ? (void *)bad[b].value : NULL, bad[b].len),
            RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE((void *)(intptr_t)(i + 1)), RD_KAFKA_V_END);
        if (err) {
            rd_kafka_headers_destroy(h);
            CHECK_MSG(0, "feeder: %s", rd_kafka_err2str(err));
        }
        W.n_ev = i + 1;
    }
    feed_flush();
    runner_t a;
    CHECK(runner_start(&a, "A") == 0);
    int missing = wait_all_outputs(n, 20000);
    CHECK_MSG(missing == 0, "%d of %d events have no output or dead letter", missing, n);
    int rc = runner_stop(&a);
    CHECK_MSG(rc == KS_EXIT_OK, "A exited %d", rc);
    read_outputs(200);
    check_exactly_once("dead letters", n);
    CHECK_EQ_INT(W.n_dl, n_bad);
    double dl = metric("kscore_events_dead_lettered_total") - dl0;
    CHECK_MSG(dl == n_bad, "kscore_events_dead_lettered_total moved by %.0f, expected %d", dl,
              n_bad);

    for (int k = 0; k < n_bad; k++) {
        const bad_event_t *be = &bad[k];
        rd_kafka_message_t *m = NULL;
        char key[16], buf[512], num[32];
        snprintf(key, sizeof(key), "k%d", be->i);
        for (int d = 0; d < W.n_dl; d++)
            if (W.dl[d].m->key_len == strlen(key) && memcmp(W.dl[d].m->key, key, strlen(key)) == 0)
                m = W.dl[d].m;
        CHECK_MSG(m != NULL, "no dead letter with key %s (event e%d)", key, be->i);
        if (!m)
            continue;
        CHECK_MSG(m->len == be->len && (be->len == 0 || memcmp(m->payload, be->value, be->len) == 0),
                  "e%d: dead letter value differs from the original (%zu vs %zu bytes)", be->i,
                  m->len, be->len);
        CHECK_EQ_STR(header_str(m, HDR "class", buf, sizeof(buf)), be->cls);
        if (be->msg)
            CHECK_EQ_STR(header_str(m, HDR "message", buf, sizeof(buf)), be->msg);
        else
            CHECK_CONTAINS(header_str(m, HDR "message", buf, sizeof(buf)), "invalid JSON at byte ");
        CHECK_EQ_STR(header_str(m, HDR "stage", buf, sizeof(buf)), be->stage);
        CHECK_EQ_STR(header_str(m, HDR "topic", buf, sizeof(buf)), IN_TOPIC);
        snprintf(num, sizeof(num), "%d", W.ev[be->i].partition);
        CHECK_EQ_STR(header_str(m, HDR "partition", buf, sizeof(buf)), num);
        snprintf(num, sizeof(num), "%lld", (long long)W.ev[be->i].offset);
        CHECK_EQ_STR(header_str(m, HDR "offset", buf, sizeof(buf)), num);
        static const char *const names[] = {"class", "message", "stage", "topic", "partition", "offset"};
        for (size_t j = 0; j < 6; j++) {
            char hn[64];
            snprintf(hn, sizeof(hn), HDR "%s", names[j]);
            CHECK_MSG(header_count(m, hn) == 1, "e%d: %d headers named %s, expected 1", be->i,
                      header_count(m, hn), hn);
        }
        /* the original headers, first and in order */
        rd_kafka_headers_t *h = NULL;
        const char *name;
        const void *v;
        size_t len;
        CHECK(rd_kafka_message_headers(m, &h) == 0 && h);
        if (!h)
            continue;
        CHECK_MSG(rd_kafka_header_cnt(h) == 4 + 6, "e%d: %zu headers, expected 10", be->i,
                  rd_kafka_header_cnt(h));
        struct { const char *name, *value; size_t len; } orig[] = {
            {"trace", NULL, 0}, {"bin", "\x00\x01\xff", 3}, {"nullh", NULL, 0}, {"trace", "second", 6}};
        char trace[16];
        snprintf(trace, sizeof(trace), "t%d", be->i);
        orig[0].value = trace;
        orig[0].len = strlen(trace);
        for (size_t j = 0; j < 4; j++) {
            int ok = rd_kafka_header_get_all(h, j, &name, &v, &len) == 0 &&
                     strcmp(name, orig[j].name) == 0 && len == orig[j].len &&
                     (orig[j].value ? v && memcmp(v, orig[j].value, len) == 0 : v == NULL);
            CHECK_MSG(ok, "e%d: original header #%zu (%s) not kept as it was", be->i, j,
                      orig[j].name);
        }
    }
    test_end(__func__);
}

/* 5a. Retriable produce errors (leader moved, timeouts, a dropped
 * connection, too few replicas) on kscore's output broker: the idempotent
 * producer retries; nothing is lost and nothing is duplicated. */
static void test_produce_retriable_errors(void)
{
    test_begin();
    const int n = 1000;
    feed_range(0, n);
    rd_kafka_mock_broker_push_request_error_rtts(
        W.mc, 2, ApiKey_Produce, 6,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, 0,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, 0,
        RD_KAFKA_RESP_ERR__TRANSPORT, 0,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, 0,
        RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, 0,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND, 0);
    runner_t a;
    CHECK(runner_start(&a, "A") == 0);
    int missing = wait_all_outputs(n, 30000);
    CHECK_MSG(missing == 0, "%d of %d events have no output after 30 s", missing, n);
    size_t left = 99;
    rd_kafka_mock_broker_error_stack_cnt(W.mc, 2, ApiKey_Produce, &left);
    CHECK_MSG(left == 0, "%zu injected produce errors were never hit", left);
    int rc = runner_stop(&a);
    CHECK_MSG(rc == KS_EXIT_OK, "A exited %d after retriable produce errors", rc);
    read_outputs(200);
    check_exactly_once("retriable produce errors", n);
    check_committed_at_end("retriable produce errors");
    test_end(__func__);
}

/* ---- issue 8 section 4: bad records and bad settings -----------------------
 *
 * Written against the engine before the restructure, where each failed.
 */

/* The dead letter of event i, or NULL. */
static rd_kafka_message_t *dead_letter_of(int i)
{
    for (int d = 0; d < W.n_dl; d++)
        if (dead_letter_event(W.dl[d].m) == i)
            return W.dl[d].m;
    return NULL;
}

/* A dead letter that had to be truncated: at most `max_bytes` of value, a
 * prefix of the original; one header whose name says it was truncated, one
 * whose value is the original size (the header names are the engine's to
 * choose: the test looks for "truncat" in a name and the size in a value). */
static void check_truncated(const rd_kafka_message_t *m, const char *orig, size_t orig_len,
                            size_t max_bytes)
{
    char size[32];
    snprintf(size, sizeof(size), "%zu", orig_len);
    CHECK_MSG(m->len <= max_bytes, "the dead letter holds %zu bytes, more than %zu", m->len,
              max_bytes);
    CHECK_MSG(m->len < orig_len && (m->len == 0 || memcmp(m->payload, orig, m->len) == 0),
              "the dead letter's %zu bytes are not a truncated prefix of the original %zu",
              m->len, orig_len);
    rd_kafka_headers_t *h = NULL;
    int named = 0, sized = 0;
    const char *name;
    const void *v;
    size_t len;
    if (rd_kafka_message_headers(m, &h) == 0 && h)
        for (size_t j = 0; rd_kafka_header_get_all(h, j, &name, &v, &len) == 0; j++) {
            named += strstr(name, "truncat") != NULL;
            sized += v && len == strlen(size) && memcmp(v, size, len) == 0;
        }
    CHECK_MSG(named >= 1, "no header says the dead letter was truncated");
    CHECK_MSG(sized >= 1, "no header gives the original size %s", size);
}

/* Poison record: a 1,000,050-byte malformed event (the producer's
 * message.max.bytes is 1,000,000) fails that event only: its dead letter is
 * truncated, says so and gives the original size; every other event of every
 * partition, after it too, is scored; the pipeline exits 0 and commits all. */
static void test_poison_large_event_dead_lettered(void)
{
    test_begin();
    const int n = 400, poison = 201; /* partition 1, in the middle */
    const size_t big = 1000050;
    char *value = malloc(big);
    memset(value, 'a', big);
    value[0] = '{';
    runner_t a;
    for (int i = 0; i < n; i++)
        if (i == poison)
            feed_one(i, value, big, NULL);
        else
            feed_one(i, NULL, 0, NULL);
    feed_flush();
    CHECK(runner_start(&a, "A") == 0);
    int missing = wait_all_outputs(n, 20000);
    CHECK_MSG(missing == 0, "%d of %d events have no output or dead letter 20 s after a "
              "1,000,050-byte malformed event", missing, n);
    CHECK_MSG(!atomic_load(&a.done), "the pipeline stopped by itself on a poison record");
    int rc = runner_stop(&a);
    CHECK_MSG(rc == KS_EXIT_OK, "A exited %d", rc);
    read_outputs(200);
    check_exactly_once("poison record", n);
    check_committed_at_end("poison record");
    rd_kafka_message_t *m = dead_letter_of(poison);
    CHECK_MSG(m != NULL, "no dead letter for the 1,000,050-byte event");
    if (m) {
        char buf[64], num[32];
        check_truncated(m, value, big, 1000000);
        CHECK_EQ_STR(header_str(m, HDR "class", buf, sizeof(buf)), "deserialization");
        snprintf(num, sizeof(num), "%lld", (long long)W.ev[poison].offset);
        CHECK_EQ_STR(header_str(m, HDR "offset", buf, sizeof(buf)), num);
        CHECK_EQ_STR(header_str(m, HDR "partition", buf, sizeof(buf)), "1");
    }
    free(value);
    test_end(__func__);
}

/* An event whose output is too large for the producer (message.max.bytes
 * 4000, a 5,000-byte carried field): the output record goes to the
 * dead-letter topic instead (class delivery, stage output), truncated
 * because it is too large there as well; everything else flows; the
 * pipeline exits 0 and commits all. */
static void test_output_too_large_dead_lettered(void)
{
    test_begin();
    const int n = 200, fat = 50; /* partition 2 */
    char value[6000];
    int len = snprintf(value, sizeof(value), "{\"id\":\"e%d\",\"x\":1,\"pad\":\"", fat);
    memset(value + len, 'p', 5000);
    len += 5000;
    len += snprintf(value + len, sizeof(value) - (size_t)len, "\"}");
    runner_t a;
    for (int i = 0; i < n; i++)
        feed_one(i, i == fat ? value : NULL, i == fat ? (size_t)len : 0, NULL);
    feed_flush();
    CHECK(runner_start(&a, "A", "kafka.producer.message.max.bytes=4000") == 0);
    int missing = wait_all_outputs(n, 20000);
    CHECK_MSG(missing == 0, "%d of %d events have no output or dead letter 20 s after an event "
              "whose output is too large", missing, n);
    CHECK_MSG(!atomic_load(&a.done), "the pipeline stopped by itself on a too-large output");
    int rc = runner_stop(&a);
    CHECK_MSG(rc == KS_EXIT_OK, "A exited %d", rc);
    read_outputs(200);
    check_exactly_once("output too large", n);
    check_committed_at_end("output too large");
    rd_kafka_message_t *m = dead_letter_of(fat);
    CHECK_MSG(m != NULL, "the event with a too-large output has no dead letter");
    if (m) {
        /* the dead letter is the output record that could not be written,
         * cut (the event itself stays in the input topic) */
        char buf[64], num[32], id[32];
        CHECK_MSG(m->len > 0 && m->len <= 4000, "the dead letter holds %zu bytes", m->len);
        int idl = snprintf(id, sizeof(id), "{\"id\":\"e%d\"", fat);
        CHECK_MSG(m->len >= (size_t)idl && memcmp(m->payload, id, (size_t)idl) == 0,
                  "the dead letter does not start with the output record %s...", id);
        CHECK_EQ_STR(header_str(m, HDR "truncated", buf, sizeof(buf)), "true");
        const char *os = header_str(m, HDR "original_size", buf, sizeof(buf));
        long long orig = os ? atoll(os) : -1;
        CHECK_MSG(orig > 5000 && (size_t)orig > m->len,
                  "original_size %lld: not the size of the too-large output record", orig);
        CHECK_EQ_STR(header_str(m, HDR "class", buf, sizeof(buf)), "delivery");
        CHECK_EQ_STR(header_str(m, HDR "stage", buf, sizeof(buf)), "output");
        snprintf(num, sizeof(num), "%lld", (long long)W.ev[fat].offset);
        CHECK_EQ_STR(header_str(m, HDR "offset", buf, sizeof(buf)), num);
        CHECK_EQ_STR(header_str(m, HDR "partition", buf, sizeof(buf)), "2");
    }
    test_end(__func__);
}

/* Record-level permanent errors in delivery reports: the output broker
 * answers produce requests with `errs` (one request each). A broker answers
 * a produce request (one partition's batch) with one error for all its
 * records, and here the mock refuses whole requests whatever they hold: each
 * of their records is fine. So each is written again once and goes through:
 * every event has exactly one output, none is dead-lettered, nothing stops,
 * nothing is lost or repeated. (Before, every event of a refused request
 * went to the dead letters: about 150 for one CORRUPT_MESSAGE; and the
 * engine before the restructure stopped with exit 1.) A record refused
 * twice is dead-lettered: test_produce_refused_twice_dead_lettered. */
static void record_errors_scenario(const char *what, const rd_kafka_resp_err_t *errs, int n_errs)
{
    const int n = 600;
    feed_range(0, n);
    push_errors(2, ApiKey_Produce, (size_t)n_errs, errs);
    double dl0 = metric("kscore_events_dead_lettered_total");
    runner_t a;
    CHECK(runner_start(&a, "A") == 0);
    int missing = wait_all_outputs(n, 20000);
    CHECK_MSG(missing == 0, "%s: %d of %d events have no output or dead letter 20 s after "
              "record-level produce errors", what, missing, n);
    CHECK_MSG(!atomic_load(&a.done), "%s: the pipeline stopped by itself", what);
    size_t left = errors_left(2, ApiKey_Produce);
    CHECK_MSG(left == 0, "%s: %zu injected produce errors were never hit", what, left);
    int rc = runner_stop(&a);
    CHECK_MSG(rc == KS_EXIT_OK, "%s: A exited %d", what, rc);
    read_outputs(200);
    check_exactly_once(what, n);
    check_committed_at_end(what);
    double dl = metric("kscore_events_dead_lettered_total") - dl0;
    CHECK_MSG(W.n_dl == 0 && dl == 0, "%s: %d dead letters (the counter moved by %.0f) for %d "
              "refused requests whose records are all fine: innocent events dead-lettered",
              what, W.n_dl, dl, n_errs);
    CHECK_MSG(log_has("writing it again"), "%s: no refused record was written again", what);
}

static void test_produce_record_errors_dead_lettered(void)
{
    test_begin();
    const rd_kafka_resp_err_t errs[] = {RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
                                        RD_KAFKA_RESP_ERR_INVALID_RECORD,
                                        RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE};
    record_errors_scenario("MESSAGE_TOO_LARGE, INVALID_RECORD, RECORD_LIST_TOO_LARGE", errs, 3);
    test_end(__func__);
}

/* CORRUPT_MESSAGE (librdkafka's INVALID_MSG, "Broker: Invalid message") is
 * record-level too: a record failing its CRC (a corrupted transfer: written
 * again, it goes through), or (brokers before 2.4) a record without a key
 * on a compacted topic. */
static void test_produce_corrupt_message_dead_lettered(void)
{
    test_begin();
    const rd_kafka_resp_err_t errs[] = {RD_KAFKA_RESP_ERR_INVALID_MSG};
    record_errors_scenario("CORRUPT_MESSAGE", errs, 1);
    test_end(__func__);
}

/* A record refused twice fails its event only. One event, so that each
 * produce request holds its record alone: its output is refused twice (it
 * then goes to the dead-letter topic, class delivery, stage output), and
 * that dead letter is refused twice (it is then written truncated: the
 * output record is under 1 KiB, so with no value, headers saying so and
 * the original size). The events after it flow; exit 0; all committed. */
static void test_produce_refused_twice_dead_lettered(void)
{
    test_begin();
    const int n = 100;
    const rd_kafka_resp_err_t errs[] = {
        RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
        RD_KAFKA_RESP_ERR_INVALID_RECORD, RD_KAFKA_RESP_ERR_INVALID_RECORD};
    feed_range(0, 1);
    push_errors(2, ApiKey_Produce, 4, errs);
    double dl0 = metric("kscore_events_dead_lettered_total");
    runner_t a;
    CHECK(runner_start(&a, "A") == 0);
    CHECK_MSG(wait_all_outputs(1, 20000) == 0, "e0 has no output or dead letter after 20 s");
    CHECK_EQ_INT(errors_left(2, ApiKey_Produce), 0);
    feed_range(1, n);
    int missing = wait_all_outputs(n, 20000);
    CHECK_MSG(missing == 0, "%d of %d events have no output after e0's", missing, n);
    CHECK_MSG(!atomic_load(&a.done), "the pipeline stopped by itself");
    int rc = runner_stop(&a);
    CHECK_MSG(rc == KS_EXIT_OK, "A exited %d", rc);
    read_outputs(200);
    check_exactly_once("refused twice", n);
    check_committed_at_end("refused twice");
    CHECK_EQ_INT(W.n_dl, 1);
    double dl = metric("kscore_events_dead_lettered_total") - dl0;
    CHECK_MSG(dl == 1, "kscore_events_dead_lettered_total moved by %.0f, expected 1", dl);
    rd_kafka_message_t *m = dead_letter_of(0);
    CHECK_MSG(m != NULL, "no dead letter names e0's partition and offset");
    if (m) {
        char buf[256];
        CHECK_EQ_STR(header_str(m, HDR "class", buf, sizeof(buf)), "delivery");
        CHECK_EQ_STR(header_str(m, HDR "stage", buf, sizeof(buf)), "output");
        CHECK_CONTAINS(header_str(m, HDR "message", buf, sizeof(buf)), "refused");
        CHECK_EQ_STR(header_str(m, HDR "truncated", buf, sizeof(buf)), "true");
        const char *os = header_str(m, HDR "original_size", buf, sizeof(buf));
        CHECK_MSG(os && atoll(os) > 20, "original_size %s: not an output record's size",
                  os ? os : "(none)");
        CHECK_MSG(m->len == 0, "the twice-refused dead letter still holds %zu bytes", m->len);
    }
    test_end(__func__);
}

/* delivery: exactly_once (see "exactly-once on the mock cluster" below) */
#define EOS "delivery=exactly_once", "transaction.instance_id=test"

/* Feeds n events, injects `err` for the next `api` request that broker
 * `broker` serves, runs pipeline A (with delivery: exactly_once when `eos`)
 * and waits (bounded) for it to stop by itself. Returns its exit code, or -1
 * if it did not stop (it is stopped then). */
static int run_into_error(const char *what, int n, int32_t broker, int16_t api,
                          rd_kafka_resp_err_t err, int eos)
{
    feed_range(0, n);
    push_errors(broker, api, 1, &err);
    runner_t a;
    const char *const plain[] = {"A", NULL}, *const txn[] = {"A", EOS, NULL};
    if (runner_start_v(&a, eos ? txn : plain)) {
        CHECK_MSG(0, "%s: pipeline A did not start", what);
        return -1;
    }
    int stopped = runner_wait(&a, 20000);
    CHECK_MSG(stopped, "%s: the pipeline did not stop by itself within 20 s", what);
    CHECK_MSG(errors_left(broker, api) == 0, "%s: the injected error was never hit", what);
    int rc = runner_stop(&a);
    return stopped ? rc : -1;
}

/* Errors about a whole topic stop the pipeline: the output broker answers
 * a produce request with TOPIC_AUTHORIZATION_FAILED. kscore stops by itself
 * with exit code 1 (KS_EXIT_RUNTIME), and no committed offset covers an
 * event whose output was not written (the refused request's events have
 * none). */
static void test_produce_topic_error_stops(void)
{
    test_begin();
    const int n = 400;
    int rc = run_into_error("TOPIC_AUTHORIZATION_FAILED", n, 2, ApiKey_Produce,
                            RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, 0);
    CHECK_MSG(rc == KS_EXIT_RUNTIME, "A exited %d after TOPIC_AUTHORIZATION_FAILED, expected %d",
              rc, KS_EXIT_RUNTIME);
    read_outputs(500);
    int missing = missing_outputs(n);
    CHECK_MSG(missing > 0, "every event has an output: the refused request had none?");
    check_commits_covered("topic authorization");
    CHECK_EQ_INT(W.n_dl, 0);
    fprintf(stderr, "     (stopped with %d of %d events without output)\n", missing, n);
    test_end(__func__);
}

typedef struct missing_topic {
    const char *which, *set, *key, *set2;
    ks_config_t *cfg;
    ks_pipeline_t *p;
    int rc;
    int64_t took;
    char err[1024];
} missing_topic_t;

static void *missing_topic_check(void *arg)
{
    missing_topic_t *m = arg;
    int64_t t0 = now_ms();
    m->rc = ks_pipeline_check_topics(m->p, 10000, m->err, sizeof(m->err));
    m->took = now_ms() - t0;
    return NULL;
}

/* Missing topics: with an input, output, dead-letter, labels or evaluation
 * topic that does not exist (the mock reports it as unknown), the start-up
 * check ks_pipeline_check_topics (which `kscore run` calls before running)
 * fails within seconds with exit code 2, naming the topic and its config key.
 * The checks run side by side (each waits MISSING_FOR_MS, kafka/topics.c,
 * before it calls a topic missing). */
static void test_missing_topics_fail_fast(void)
{
    test_begin();
    const char *missing = "no-such-topic";
    char labels[128];
    snprintf(labels, sizeof(labels), "evaluation.labels_topic=%s", IN_TOPIC);
    missing_topic_t m[] = {
        {.which = "input", .set = "input.topics=no-such-topic", .key = "input.topics"},
        {.which = "output", .set = "output.topic=no-such-topic", .key = "output.topic"},
        {.which = "dead-letter", .set = "dead_letter.topic=no-such-topic",
         .key = "dead_letter.topic"},
        {.which = "labels", .set = "evaluation.labels_topic=no-such-topic",
         .key = "evaluation.labels_topic"},
        {.which = "joined-records", .set = labels, .key = "evaluation.topic",
         .set2 = "evaluation.topic=no-such-topic"},
    };
    const size_t n = sizeof(m) / sizeof(m[0]);
    pthread_t th[sizeof(m) / sizeof(m[0])];
    rd_kafka_mock_topic_set_error(W.mc, missing, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    for (size_t i = 0; i < n; i++) {
        const char *sets[] = {m[i].set, m[i].set2, NULL};
        if (load_config(&m[i].cfg, m[i].err, sizeof(m[i].err), sets)) {
            CHECK_MSG(0, "%s: config: %s", m[i].which, m[i].err);
            continue;
        }
        if (ks_pipeline_new(m[i].cfg, &m[i].p, m[i].err, sizeof(m[i].err))) {
            CHECK_MSG(strstr(m[i].err, missing) != NULL,
                      "ks_pipeline_new failed without naming the %s topic: %s", m[i].which,
                      m[i].err);
            ks_config_free(m[i].cfg);
            m[i].cfg = NULL;
            continue;
        }
        pthread_create(&th[i], NULL, missing_topic_check, &m[i]);
    }
    for (size_t i = 0; i < n; i++) {
        if (!m[i].p)
            continue;
        pthread_join(th[i], NULL);
        CHECK_MSG(m[i].rc == KS_EXIT_USAGE, "ks_pipeline_check_topics returned %d for a missing "
                  "%s topic (expected %d, exit code 2): %s", m[i].rc, m[i].which,
                  KS_EXIT_USAGE, m[i].err);
        CHECK_MSG(strstr(m[i].err, missing) != NULL, "the message does not name the topic: %s",
                  m[i].err);
        CHECK_MSG(strstr(m[i].err, m[i].key) != NULL, "the message does not name the key %s: %s",
                  m[i].key, m[i].err);
        CHECK_MSG(m[i].took < 10000, "the check took %lld ms", (long long)m[i].took);
        ks_pipeline_free(m[i].p);
        ks_config_free(m[i].cfg);
    }
    /* the configured topics that do exist pass the same check */
    char err[1024] = "";
    ks_config_t *cfg = NULL;
    ks_pipeline_t *p = NULL;
    if (load_config(&cfg, err, sizeof(err), NULL) == 0 && ks_pipeline_new(cfg, &p, err, sizeof(err)) == 0) {
        /* (2 s: the mock answers metadata at once, never DescribeConfigs,
         * which the check then waits for until the time is out) */
        int rc = ks_pipeline_check_topics(p, 2000, err, sizeof(err));
        CHECK_MSG(rc == KS_EXIT_OK, "ks_pipeline_check_topics refused existing topics (%d): %s", rc,
                  err);
        ks_pipeline_free(p);
    } else
        CHECK_MSG(0, "%s", err);
    ks_config_free(cfg);
    test_end(__func__);
}

/* Settings that silently break the delivery guarantee are refused when the
 * config is loaded (the CLI's exit code 2), saying why. */
static void refused_setting(const char *set, const char *why)
{
    char err[1024] = "";
    ks_config_t *cfg = NULL;
    const char *sets[] = {set, NULL};
    int rc = load_config(&cfg, err, sizeof(err), sets);
    CHECK_MSG(rc != 0, "--set %s was accepted", set);
    if (rc)
        CHECK_MSG(strstr(err, why) != NULL, "--set %s refused without saying '%s': %s", set, why,
                  err);
    else
        ks_config_free(cfg);
}

static void test_config_refuses_acks_0(void)
{
    test_begin();
    refused_setting("kafka.producer.acks=0", "acks");
    refused_setting("kafka.acks=1", "acks");
    test_end(__func__);
}

/* enable.idempotence is refused for every spelling librdkafka reads as
 * false (false, f, 0, in any case) and accepted for every spelling it reads
 * as true (true, t, 1, in any case). */
static void test_config_refuses_idempotence_off(void)
{
    test_begin();
    static const char *const off[] = {"false", "False", "FALSE", "f", "F", "0"};
    static const char *const on[] = {"true", "True", "TRUE", "t", "T", "1"};
    char set[96];
    for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++) {
        snprintf(set, sizeof(set), "kafka.producer.enable.idempotence=%s", off[i]);
        refused_setting(set, "idempotence");
        snprintf(set, sizeof(set), "kafka.enable.idempotence=%s", off[i]);
        refused_setting(set, "idempotence");
    }
    for (size_t i = 0; i < sizeof(on) / sizeof(on[0]); i++) {
        char err[1024] = "";
        ks_config_t *cfg = NULL;
        snprintf(set, sizeof(set), "kafka.producer.enable.idempotence=%s", on[i]);
        const char *sets[] = {set, NULL};
        int rc = load_config(&cfg, err, sizeof(err), sets);
        CHECK_MSG(rc == 0, "--set %s (librdkafka reads it as true) was refused: %s", set, err);
        ks_config_free(cfg);
    }
    test_end(__func__);
}

/* A failed asynchronous commit is not counted as done: with the first
 * commits refused by the coordinator, the pipeline, idle after scoring
 * everything, still gets its offsets committed while it runs. */
static void test_failed_async_commit_retried(void)
{
    test_begin();
    const int n = 400;
    feed_range(0, n);
    /* 15 refusals: more than the commits made while the events are scored */
    rd_kafka_resp_err_t errs[15];
    for (int i = 0; i < 15; i++)
        errs[i] = RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE;
    W.errors_pushed = 1;
    rd_kafka_mock_push_request_errors_array(W.mc, ApiKey_OffsetCommit, 15, errs);
    runner_t a;
    CHECK(runner_start(&a, "A") == 0);
    int missing = wait_all_outputs(n, 20000);
    CHECK_MSG(missing == 0, "%d of %d events have no output", missing, n);
    int64_t until = now_ms() + 10000;
    int at_end = 0;
    while (!at_end && now_ms() < until) {
        int64_t c[IN_PARTS];
        committed_offsets(c);
        at_end = 1;
        for (int p = 0; p < IN_PARTS; p++)
            at_end &= c[p] == end_offset(IN_TOPIC, p);
        if (!at_end)
            read_outputs(100);
    }
    CHECK_MSG(at_end, "10 s after scoring everything, the running pipeline has not committed "
              "its offsets again after refused commits");
    runner_stop(&a);
    test_end(__func__);
}

/* Shutdown with outputs that cannot be acknowledged (the output broker
 * answers after 8 s, shutdown.timeout_ms is 1,000): one absolute deadline
 * for the whole shutdown, and a non-zero exit because outputs were left
 * unacknowledged. */
static void shutdown_stuck_scenario(int64_t *took_ms, int *rc)
{
    const int n = 200;
    feed_range(0, n);
    set_rtt(8000);
    double consumed0 = metric("kscore_events_consumed_total");
    runner_t a;
    *rc = -1;
    *took_ms = -1;
    if (runner_start(&a, "A", "shutdown.timeout_ms=1000")) {
        CHECK_MSG(0, "pipeline A did not start");
        return;
    }
    int64_t until = now_ms() + 20000;
    struct timespec poll = {0, 10 * 1000000};
    while (metric("kscore_events_consumed_total") - consumed0 < n && now_ms() < until)
        nanosleep(&poll, NULL);
    *rc = runner_stop(&a);
    *took_ms = a.stopped_in_ms;
    set_rtt(0);
}

static void test_shutdown_deadline_and_exit_code(void)
{
    test_begin();
    int64_t took;
    int rc;
    shutdown_stuck_scenario(&took, &rc);
    CHECK_MSG(took >= 0 && took <= 1700, "ks_pipeline_run returned %lld ms after the stop with "
              "shutdown.timeout_ms=1000 (expected one deadline for the whole shutdown: at most "
              "1,700 ms)", (long long)took);
    CHECK_MSG(rc == KS_EXIT_RUNTIME, "ks_pipeline_run returned %d with outputs left "
              "unacknowledged at shutdown (expected %d)", rc, KS_EXIT_RUNTIME);
    fprintf(stderr, "     (stopped in %lld ms, exit %d)\n", (long long)took, rc);
    test_end(__func__);
}

/* ---- rebalances and shutdown, continued ----------------------------------- */

/* The number just before `after` in the engine's most recent warning
 * containing `text`, or -1. */
static long logged_number(const char *text, const char *after)
{
    ks_buf_t b = {0};
    ks_log_recent_json(&b, KS_LOG_RECENT);
    ks_buf_putc(&b, '\0');
    long v = -1;
    for (const char *p = strstr(b.data, text); p; p = strstr(p + 1, text)) {
        const char *end = strchr(p, '}'), *q = strstr(p, after);
        if (!q || (end && q > end))
            continue;
        while (q > p && q[-1] == ' ')
            q--;
        while (q > p && q[-1] >= '0' && q[-1] <= '9')
            q--;
        v = strtol(q, NULL, 10);
    }
    ks_buf_free(&b);
    return v;
}

/* 4c. A cooperative-sticky revocation that cannot drain in time. A's
 * producer queue holds 5 messages and its output broker answers after
 * 3,000 ms, so A always holds a scored batch waiting for room; when B joins,
 * A's drain of the partitions moving to B outlasts its bound
 * (shutdown.timeout_ms, 300 ms, bounds a revocation too) and A drops what it
 * holds of those partitions only (worker.c drop_revoked): the events in hand
 * of the partitions it keeps stay (the log says how many: some must). Once
 * the broker is fast again every event has an output (A's or B's; B repeats
 * those A wrote but could not commit). B stops, A takes its partitions back
 * and then stops: both exit 0 and every committed offset is at its end. A
 * kept event dropped from A's hand, its offset still tracked, would freeze
 * that partition's offset (and leave A's stop with an unacknowledged output:
 * exit 1). A commits only on revocation and at its stop (commit.interval_ms
 * 60,000): an asynchronous commit sent while B joins would be refused with
 * ILLEGAL_GENERATION and make librdkafka declare A's whole assignment lost,
 * revoking all of it, not the moving partitions only (see
 * rebalance_scenario). */
static void test_cooperative_revocation_drain_timeout(void)
{
    test_begin();
    const int n = 800;
    /* one record per batch (the mock returns one stored batch per partition
     * and fetch): A's batches then hold events of every partition */
    const char *one[] = {"batch.num.messages", "1", "enable.idempotence", "true", NULL};
    rd_kafka_t *feeder = W.feeder;
    W.feeder = new_client(RD_KAFKA_PRODUCER, one);
    feed_range(0, n);
    rd_kafka_destroy(W.feeder);
    W.feeder = feeder;
    set_rtt(3000);
    const char *coop = "kafka.consumer.partition.assignment.strategy=cooperative-sticky";
    double pauses0 = metric("kscore_backpressure_pauses_total");
    runner_t a, b;
    /* (batches of 100, gathered for up to 1 s: events of every partition) */
    CHECK(runner_start(&a, "A", coop, "shutdown.timeout_ms=300", "commit.interval_ms=60000",
                       "kafka.producer.queue.buffering.max.messages=5",
                       "batch.max_wait_ms=1000") == 0);
    CHECK_MSG(wait_metric("kscore_backpressure_pauses_total", pauses0, 1, 20000),
              "A never waited for room in its producer queue");
    CHECK(runner_start(&b, "B", coop, "model.path=model-b.json") == 0);
    CHECK_MSG(wait_log("not finished in time", 20000),
              "A's revocation never ran out of time (nothing dropped): the scenario did not "
              "happen");
    long kept = logged_number("not finished in time", "of the partitions kept");
    CHECK_MSG(kept > 0, "A kept %ld event(s) in hand of the partitions it keeps: it revoked "
              "all of them, or dropped those too", kept);
    set_rtt(0);
    int missing = wait_all_outputs(n, 30000);
    CHECK_MSG(missing == 0, "%d of %d events have no output", missing, n);
    CHECK_MSG(total_outputs(n, out_b_of) > 0, "B scored nothing: it got no partitions");
    int rc_b = runner_stop(&b);
    /* A stops once it has B's partitions (its final commit is then not
     * refused by a rebalance: it has only 300 ms to rejoin) */
    double rebalances = metric("kscore_rebalances_total");
    CHECK_MSG(wait_metric("kscore_rebalances_total", rebalances, 1, 15000),
              "A was not assigned B's partitions within 15 s of B leaving");
    int rc_a = runner_stop(&a);
    CHECK_MSG(rc_a == KS_EXIT_OK && rc_b == KS_EXIT_OK, "A exited %d, B %d", rc_a, rc_b);
    read_outputs(200);
    check_committed_at_end("cooperative drain timeout");
    fprintf(stderr, "     (%d events: %d scored by A, %d by B; A kept %ld in hand)\n", n,
            total_outputs(n, out_a_of), total_outputs(n, out_b_of), kept);
    test_end(__func__);
}

/* The final commit at shutdown refused with ILLEGAL_GENERATION (the group
 * moved to a new generation under the stopping member: seen in the
 * cooperative-sticky scenario under load, librdkafka 2.0.2's mock keeping a
 * stale generation after an incremental assign). librdkafka then rejoins;
 * the worker serves that rejoin and commits again, so the clean stop still
 * commits everything and exits 0. Commits are otherwise never made
 * (commit.interval_ms 60,000): the injected error hits the final one. */
static void test_final_commit_after_rejoin(void)
{
    test_begin();
    const int n = 400;
    const rd_kafka_resp_err_t errs[] = {RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION};
    feed_range(0, n);
    runner_t a;
    CHECK(runner_start(&a, "A", "commit.interval_ms=60000") == 0);
    int missing = wait_all_outputs(n, 20000);
    CHECK_MSG(missing == 0, "%d of %d events have no output", missing, n);
    push_errors(1, ApiKey_OffsetCommit, 1, errs);
    int rc = runner_stop(&a);
    CHECK_EQ_INT(errors_left(1, ApiKey_OffsetCommit), 0);
    CHECK_MSG(rc == KS_EXIT_OK, "A exited %d", rc);
    check_committed_at_end("final commit refused with ILLEGAL_GENERATION");
    fprintf(stderr, "     (stopped in %lld ms)\n", (long long)a.stopped_in_ms);
    test_end(__func__);
}

/* ---- exactly-once on the mock cluster --------------------------------------
 *
 * The mock implements InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn,
 * TxnOffsetCommit and EndTxn, but keeps no transaction state: readers see
 * aborted records, TxnOffsetCommit stores no offset (the group's committed
 * offsets stay unset) and nothing is ever fenced. So these tests check
 * kscore's side: kscore_transactions_committed_total / _aborted_total, the
 * events consumed again after an abort, exit codes, and that every event has
 * at least one output. transaction.instance_id=test makes worker 0's
 * transactional.id kscore-g-<n>-test-0, whose coordinator is broker 1.
 */

typedef struct txn_counts {
    double commits, aborts, consumed;
} txn_counts_t;

static txn_counts_t txn_counts(void)
{
    return (txn_counts_t){metric("kscore_transactions_committed_total"),
                          metric("kscore_transactions_aborted_total"),
                          metric("kscore_events_consumed_total")};
}

/* 5a. Abortable errors: the first TxnOffsetCommit answered
 * ILLEGAL_GENERATION, later an EndTxn(commit) answered UNKNOWN_SERVER_ERROR
 * (librdkafka: "abortable"). Each time the transaction is aborted, the
 * consumer rewinds (its events are consumed again), the pipeline goes on,
 * and every event has an output; exit 0. */
static void test_exactly_once_abortable_errors(void)
{
    test_begin();
    const int n = 300;
    const rd_kafka_resp_err_t toc[] = {RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION};
    const rd_kafka_resp_err_t end[] = {RD_KAFKA_RESP_ERR_UNKNOWN};
    feed_range(0, n);
    push_errors(1, ApiKey_TxnOffsetCommit, 1, toc);
    txn_counts_t c0 = txn_counts();
    runner_t a;
    CHECK(runner_start(&a, "A", EOS) == 0);
    CHECK_MSG(wait_metric("kscore_transactions_aborted_total", c0.aborts, 1, 20000),
              "no transaction aborted after TxnOffsetCommit failed with ILLEGAL_GENERATION");
    CHECK_EQ_INT(errors_left(1, ApiKey_TxnOffsetCommit), 0);
    CHECK_MSG(wait_metric("kscore_transactions_committed_total", c0.commits, 1, 20000),
              "no transaction committed after the abort");
    int missing = wait_all_outputs(n, 20000);
    CHECK_MSG(missing == 0, "%d of %d events have no output after the abort", missing, n);
    txn_counts_t c1 = txn_counts();
    push_errors(1, ApiKey_EndTxn, 1, end);
    feed_range(n, 2 * n);
    CHECK_MSG(wait_metric("kscore_transactions_aborted_total", c1.aborts, 1, 20000),
              "no transaction aborted after EndTxn(commit) failed with UNKNOWN_SERVER_ERROR");
    CHECK_EQ_INT(errors_left(1, ApiKey_EndTxn), 0);
    missing = wait_all_outputs(2 * n, 20000);
    CHECK_MSG(missing == 0, "%d of %d events have no output after the second abort", missing,
              2 * n);
    CHECK_MSG(wait_metric("kscore_transactions_committed_total", c1.commits, 1, 20000),
              "no transaction committed after the second abort");
    CHECK_MSG(!atomic_load(&a.done), "the pipeline stopped on an abortable error");
    int rc = runner_stop(&a);
    CHECK_MSG(rc == KS_EXIT_OK, "A exited %d after abortable errors", rc);
    txn_counts_t c2 = txn_counts();
    CHECK_MSG(c2.consumed - c0.consumed > 2 * n, "%.0f events consumed for %d: the aborted "
              "transactions' events were not consumed again", c2.consumed - c0.consumed, 2 * n);
    CHECK_EQ_INT(W.n_dl, 0);
    fprintf(stderr, "     (%.0f commits, %.0f aborts, %.0f events consumed for %d)\n",
            c2.commits - c0.commits, c2.aborts - c0.aborts, c2.consumed - c0.consumed, 2 * n);
    test_end(__func__);
}

/* 5b. A fatal producer error on a transactional request (`api` answered
 * `err`, which librdkafka treats as fatal: fenced): the pipeline stops by
 * itself with exit 1 and never commits a transaction after it (here the
 * error hits the first one). */
static void txn_fatal_scenario(const char *what, int16_t api, rd_kafka_resp_err_t err)
{
    txn_counts_t c0 = txn_counts();
    int rc = run_into_error(what, 200, 1, api, err, 1);
    txn_counts_t c1 = txn_counts();
    CHECK_MSG(rc == KS_EXIT_RUNTIME, "%s: A exited %d, expected %d", what, rc, KS_EXIT_RUNTIME);
    CHECK_MSG(c1.commits == c0.commits, "%s: %.0f transactions committed after the fatal error",
              what, c1.commits - c0.commits);
}

static void test_exactly_once_fatal_errors(void)
{
    test_begin();
    txn_fatal_scenario("PRODUCER_FENCED on AddPartitionsToTxn", ApiKey_AddPartitionsToTxn,
                       RD_KAFKA_RESP_ERR_PRODUCER_FENCED);
    txn_fatal_scenario("INVALID_PRODUCER_EPOCH on EndTxn", ApiKey_EndTxn,
                       RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH);
    test_end(__func__);
}

/* A topic-level error under exactly_once (TOPIC_AUTHORIZATION_FAILED on
 * produce): the pipeline stops with exit 1 rather than abort and replay
 * forever; the producer is healthy, so the open transaction is aborted
 * (worker.c txn_commit after p->fatal), never committed. */
static void test_exactly_once_topic_error_stops(void)
{
    test_begin();
    txn_counts_t c0 = txn_counts();
    int rc = run_into_error("TOPIC_AUTHORIZATION_FAILED", 200, 2, ApiKey_Produce,
                            RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, 1);
    txn_counts_t c1 = txn_counts();
    CHECK_MSG(rc == KS_EXIT_RUNTIME, "A exited %d, expected %d", rc, KS_EXIT_RUNTIME);
    CHECK_MSG(c1.commits == c0.commits, "%.0f transactions committed", c1.commits - c0.commits);
    CHECK_MSG(c1.aborts - c0.aborts >= 1, "the open transaction was not aborted");
    test_end(__func__);
}

/* Records refused under exactly_once. One event first: its output is
 * refused twice (each time its transaction aborts and the event is consumed
 * again), then it goes to the dead-letter topic. Then a refusal in a
 * running stream: the transaction aborts at once (librdkafka refuses further
 * records into it), its events are processed again and written as usual
 * (refused once is not refused). Nothing stops; exit 0. */
static void test_exactly_once_record_refused(void)
{
    test_begin();
    const int n = 400;
    const rd_kafka_resp_err_t errs[] = {RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
                                        RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE};
    feed_range(0, 1);
    push_errors(2, ApiKey_Produce, 2, errs);
    txn_counts_t c0 = txn_counts();
    runner_t a;
    CHECK(runner_start(&a, "A", EOS) == 0);
    int64_t until = now_ms() + 20000;
    while (!W.ev[0].dlq && now_ms() < until)
        read_outputs(50);
    CHECK_MSG(W.ev[0].dlq == 1, "e0, refused twice, has %d dead letters", W.ev[0].dlq);
    CHECK_EQ_INT(errors_left(2, ApiKey_Produce), 0);
    txn_counts_t c1 = txn_counts();
    CHECK_MSG(c1.aborts - c0.aborts >= 2, "%.0f aborts for two refusals", c1.aborts - c0.aborts);
    push_errors(2, ApiKey_Produce, 1, errs);
    feed_range(1, n);
    int missing = wait_all_outputs(n, 20000);
    CHECK_MSG(missing == 0, "%d of %d events have no output", missing, n);
    CHECK_EQ_INT(errors_left(2, ApiKey_Produce), 0);
    CHECK_MSG(wait_metric("kscore_transactions_aborted_total", c1.aborts, 1, 10000),
              "no abort after a refusal in the stream");
    CHECK_MSG(!atomic_load(&a.done), "the pipeline stopped on a refused record");
    int rc = runner_stop(&a);
    CHECK_MSG(rc == KS_EXIT_OK, "A exited %d", rc);
    read_outputs(200);
    CHECK_MSG(W.n_dl == 1, "%d dead letters, expected e0's only", W.n_dl);
    rd_kafka_message_t *m = dead_letter_of(0);
    if (m) {
        char buf[256];
        CHECK_EQ_STR(header_str(m, HDR "class", buf, sizeof(buf)), "delivery");
        CHECK_EQ_STR(header_str(m, HDR "stage", buf, sizeof(buf)), "output");
    }
    txn_counts_t c2 = txn_counts();
    fprintf(stderr, "     (%.0f commits, %.0f aborts)\n", c2.commits - c0.commits,
            c2.aborts - c0.aborts);
    test_end(__func__);
}

/* 4d. A worker abandoned at shutdown does not hide a failed stop. With
 * outputs unacknowledged at the stop (the output broker answers after 8 s;
 * shutdown.timeout_ms 500) the worker says so (p->unacknowledged) and leaves
 * the group; the coordinator answers the commit of that final revocation
 * only after 7 s, so the worker is still inside it when the pipeline stops
 * waiting (shutdown.timeout_ms + 5 s) and abandons it. ks_pipeline_run must
 * return 1 (it returned 0: the abandoned worker's status was dropped). The
 * abandoned pipeline is never freed (its thread may still run); the test
 * waits for that thread to end. Runs last: the
 * abandoned clients live until the process exits. */
static ks_pipeline_t *abandoned_pipeline; /* still reachable (LeakSanitizer) */
static ks_config_t *abandoned_config;

static void test_abandoned_worker_exit_code(void)
{
    test_begin();
    const int n = 200;
    feed_range(0, n);
    runner_t a;
    double consumed0 = metric("kscore_events_consumed_total");
    CHECK(runner_start(&a, "A", "shutdown.timeout_ms=500", "commit.interval_ms=60000") == 0);
    int missing = wait_all_outputs(n, 20000);
    CHECK_MSG(missing == 0, "%d of %d events have no output", missing, n);
    set_rtt(8000);
    feed_range(n, n + 50);
    CHECK(wait_metric("kscore_events_consumed_total", consumed0, n + 50, 20000));
    /* broker 1 coordinates the group: its first commit (the shutdown's) is
     * answered at once, the next (the final revocation's) after 7 s */
    rd_kafka_mock_broker_push_request_error_rtts(W.mc, 1, ApiKey_OffsetCommit, 2,
                                                 RD_KAFKA_RESP_ERR_NO_ERROR, 0,
                                                 RD_KAFKA_RESP_ERR_NO_ERROR, 7000);
    ks_pipeline_stop(a.p);
    int64_t t0 = now_ms();
    CHECK_MSG(runner_wait(&a, 30000), "ks_pipeline_run did not return within 30 s");
    int64_t took = now_ms() - t0;
    pthread_join(a.th, NULL);
    CHECK_MSG(a.rc == KS_EXIT_RUNTIME, "ks_pipeline_run returned %d with outputs left "
              "unacknowledged by a worker it then abandoned (expected %d)", a.rc,
              KS_EXIT_RUNTIME);
    CHECK_MSG(took >= 5000, "stopped in %lld ms: the worker was not abandoned (the scenario "
              "did not happen)", (long long)took);
    CHECK(log_has("were not acknowledged within shutdown.timeout_ms"));
    if (ks_pipeline_free(a.p) == 0) {
        CHECK_MSG(0, "the pipeline was freed: no worker was abandoned");
        ks_config_free(a.cfg);
    } else {
        abandoned_pipeline = a.p;
        abandoned_config = a.cfg;
    }
    /* the abandoned thread ends once its commit returns */
    CHECK_MSG(wait_log("after the pipeline stopped waiting for it", 20000),
              "the abandoned worker did not finish within 20 s");
    CHECK_EQ_INT(errors_left(1, ApiKey_OffsetCommit), 0);
    set_rtt(0);
    fprintf(stderr, "     (ks_pipeline_run returned %d after %lld ms)\n", a.rc, (long long)took);
    test_end(__func__);
}

/* ---- main ------------------------------------------------------------------- */

static int selected(const char *name)
{
    const char *only = getenv("KSCORE_TEST_ONLY");
    return !only || !*only || strstr(name, only) != NULL;
}

#define RUN_SEL(fn) do { if (selected(#fn)) RUN(fn); } while (0)

int main(void)
{
    int64_t t0 = now_ms();
    RUN_SEL(test_dead_letter_headers);
    RUN_SEL(test_rebalance_commits_eager_range);
    RUN_SEL(test_rebalance_commits_cooperative_sticky);
    RUN_SEL(test_drain_on_shutdown);
    RUN_SEL(test_backpressure_pause_resume);
    RUN_SEL(test_produce_retriable_errors);
    /* issue 8 section 4 */
    RUN_SEL(test_poison_large_event_dead_lettered);
    RUN_SEL(test_output_too_large_dead_lettered);
    RUN_SEL(test_produce_record_errors_dead_lettered);
    RUN_SEL(test_missing_topics_fail_fast);
    RUN_SEL(test_config_refuses_acks_0);
    RUN_SEL(test_config_refuses_idempotence_off);
    RUN_SEL(test_failed_async_commit_retried);
    RUN_SEL(test_shutdown_deadline_and_exit_code);
    RUN_SEL(test_produce_corrupt_message_dead_lettered);
    RUN_SEL(test_produce_refused_twice_dead_lettered);
    RUN_SEL(test_produce_topic_error_stops);
    RUN_SEL(test_cooperative_revocation_drain_timeout);
    RUN_SEL(test_final_commit_after_rejoin);
    /* delivery: exactly_once */
    RUN_SEL(test_exactly_once_abortable_errors);
    RUN_SEL(test_exactly_once_fatal_errors);
    RUN_SEL(test_exactly_once_topic_error_stops);
    RUN_SEL(test_exactly_once_record_refused);
    /* last: leaves an abandoned worker's clients behind */
    RUN_SEL(test_abandoned_worker_exit_code);
    if (abandoned_pipeline) /* its clients lose the cluster below: not our failures */
        ks_log_set_level((ks_log_level_t)(KS_LOG_ERROR + 1));
    if (mock_mc) {
        rd_kafka_topic_destroy(mock_waker_topic);
        rd_kafka_destroy(mock_waker);
        rd_kafka_mock_cluster_destroy(mock_mc);
        rd_kafka_destroy(mock_rk);
    }
    fprintf(stderr, "test_worker: %.1f s\n", (double)(now_ms() - t0) / 1000);
    return test_summary();
}
