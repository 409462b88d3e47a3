/*
 * test_http.c - the metrics/health/status endpoint (obs/http.c) and the
 * librdkafka statistics collector (obs/kafka_stats.c), without a broker: a
 * real pipeline object built from the basic example, a real server on a
 * free loopback port, plain HTTP/1.0 requests over a socket.
 */
#include "base/common.h"
#include "base/metrics.h"
#include "engine/pipeline.h"
#include "obs/http.h"
#include "obs/kafka_stats.h"
#include "kscore/kscore.h"
#include "base/json.h"
#include "test.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct reply {
    int status;
    char *body;   /* malloc'd, NUL-terminated */
    char *headers;
} reply_t;

/* GET (or another method) http://127.0.0.1:port/path, HTTP/1.0. */
static reply_t request(int port, const char *method, const char *path)
{
    reply_t r = {0, NULL, NULL};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return r;
    }
    char req[256];
    int n = snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: localhost\r\n\r\n", method, path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return r;
    }
    ks_buf_t b = {0};
    char chunk[4096];
    ssize_t got;
    while ((got = read(fd, chunk, sizeof(chunk))) > 0)
        ks_buf_append(&b, chunk, (size_t)got);
    close(fd);
    ks_buf_putc(&b, '\0');
    sscanf(b.data, "HTTP/1.%*d %d", &r.status);
    char *sep = strstr(b.data, "\r\n\r\n");
    if (sep) {
        *sep = '\0';
        r.headers = ks_xstrdup(b.data);
        r.body = ks_xstrdup(sep + 4);
    }
    ks_buf_free(&b);
    return r;
}

static void reply_free(reply_t *r)
{
    free(r->body);
    free(r->headers);
}

static int url_port(const char *url)
{
    const char *c = strrchr(url, ':');
    return c ? atoi(c + 1) : 0;
}

static void test_quantile(void)
{
    static const double bounds[] = {1, 2, 4};
    uint64_t counts[] = {0, 10, 0, 0};
    /* all ten in (1, 2]: p50 interpolates to the middle */
    CHECK_NEAR(ks_http_quantile(bounds, 3, counts, 0.5), 1.5, 1e-12);
    CHECK_NEAR(ks_http_quantile(bounds, 3, counts, 1.0), 2.0, 1e-12);
    uint64_t first[] = {4, 0, 0, 0};
    CHECK_NEAR(ks_http_quantile(bounds, 3, first, 0.5), 0.5, 1e-12); /* from 0 to 1 */
    uint64_t inf[] = {0, 0, 0, 5};
    CHECK_NEAR(ks_http_quantile(bounds, 3, inf, 0.99), 4.0, 1e-12);  /* +Inf: highest bound */
    uint64_t none[] = {0, 0, 0, 0};
    CHECK(isnan(ks_http_quantile(bounds, 3, none, 0.5)));
    uint64_t mix[] = {50, 40, 9, 1};
    CHECK_NEAR(ks_http_quantile(bounds, 3, mix, 0.95), 2 + 2 * (5.0 / 9), 1e-12);
}

/* The embedded page is the generated form of status_page.html, and it loads
 * nothing from elsewhere. */
static void test_status_page_embedded(void)
{
    char *html = NULL, err[256];
    size_t len = 0;
    CHECK_MSG(ks_read_file("src/obs/status_page.html", &html, &len, err, sizeof(err)) == KS_OK,
              "%s", err);
    CHECK_MSG(html && strcmp(html, ks_status_page_html) == 0,
              "src/obs/status_page.c is out of date: run python3 src/obs/gen_status_page.py");
    CHECK(strstr(ks_status_page_html, "<canvas") != NULL);
    CHECK(strstr(ks_status_page_html, "status.json") != NULL);
    CHECK(strstr(ks_status_page_html, "src=\"http") == NULL);
    CHECK(strstr(ks_status_page_html, "href=\"http") == NULL);
    CHECK(strstr(ks_status_page_html, "@import") == NULL);
    CHECK(strstr(ks_status_page_html, "url(") == NULL);
    free(html);
}

/* Every sample line of the exposition format: name{labels} value. */
static int exposition_ok(const char *text, char *bad, size_t badsize)
{
    const char *line = text;
    while (*line) {
        const char *end = strchr(line, '\n');
        if (!end)
            end = line + strlen(line);
        size_t n = (size_t)(end - line);
        if (n && line[0] != '#') {
            size_t i = 0;
            while (i < n && (isalnum((unsigned char)line[i]) || line[i] == '_' || line[i] == ':'))
                i++;
            int ok = i > 0;
            if (ok && line[i] == '{') {
                const char *close = memchr(line + i, '}', n - i);
                ok = close != NULL;
                i = close ? (size_t)(close - line) + 1 : n;
            }
            ok = ok && i < n && line[i] == ' ';
            if (ok) {
                char num[64];
                snprintf(num, sizeof(num), "%.*s", (int)(n - i - 1), line + i + 1);
                char *e;
                strtod(num, &e);
                ok = (*e == '\0' && e != num) || !strcmp(num, "+Inf") || !strcmp(num, "NaN");
            }
            if (!ok) {
                snprintf(bad, badsize, "%.*s", (int)n, line);
                return 0;
            }
        }
        line = *end ? end + 1 : end;
    }
    return 1;
}

static const char *consumer_stats =
    "{\"name\":\"kscore-0#consumer-2\",\"type\":\"consumer\",\"msg_cnt\":0,"
    "\"brokers\":{\"127.0.0.1:9092/1\":{\"name\":\"127.0.0.1:9092/1\",\"nodeid\":1,"
    "\"source\":\"configured\",\"state\":\"UP\",\"rtt\":{\"avg\":1500,\"p99\":2500}},"
    "\"GroupCoordinator\":{\"name\":\"GroupCoordinator\",\"nodeid\":1,\"source\":\"logical\","
    "\"state\":\"UP\",\"rtt\":{\"avg\":9,\"p99\":9}}},"
    "\"topics\":{\"tx\":{\"partitions\":{"
    "\"0\":{\"partition\":0,\"consumer_lag\":42,\"hi_offset\":100,\"app_offset\":60},"
    "\"1\":{\"partition\":1,\"consumer_lag\":-1,\"hi_offset\":50,\"app_offset\":45},"
    "\"2\":{\"partition\":2,\"consumer_lag\":7,\"hi_offset\":9,\"app_offset\":2},"
    "\"-1\":{\"partition\":-1,\"consumer_lag\":-1}}}}}";

static const char *producer_stats =
    "{\"type\":\"producer\",\"msg_cnt\":12,\"msg_size\":3456,\"msg_max\":100000,"
    "\"brokers\":{\"127.0.0.1:9092/1\":{\"nodeid\":1,\"source\":\"learned\",\"state\":\"DOWN\","
    "\"rtt\":{\"avg\":0,\"p99\":0}}}}";

static rd_kafka_topic_partition_list_t *parts(int n, const int *ids)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, "tx", ids[i]);
    return l;
}

static char *render(void)
{
    ks_buf_t b = {0};
    ks_metrics_render(&b);
    ks_buf_putc(&b, '\0');
    return b.data;
}

static void test_kafka_stats(void)
{
    char err[256];
    ks_kstats_t *ks = NULL;
    CHECK(ks_kstats_new(2, &ks, err, sizeof(err)) == KS_OK);
    CHECK_EQ_INT(ks_kstats_assigned(ks), 0);
    CHECK(ks_kstats_reachable(ks, NULL)); /* unknown is not unreachable */

    int a0[] = {0, 1}, a1[] = {2};
    rd_kafka_topic_partition_list_t *l0 = parts(2, a0), *l1 = parts(1, a1);
    ks_kstats_assignment(ks, 0, l0);
    ks_kstats_assignment(ks, 1, l1);
    CHECK_EQ_INT(ks_kstats_assigned(ks), 3);
    CHECK(ks_kstats_apply(ks, 0, KS_KCLIENT_CONSUMER, consumer_stats, strlen(consumer_stats)) == 0);
    CHECK(ks_kstats_apply(ks, 0, KS_KCLIENT_CONSUMER, "{not json", 9) == KS_EINVAL);
    char *text = render();
    CHECK_CONTAINS(text, "kscore_consumer_lag{topic=\"tx\",partition=\"0\"} 42\n");
    /* no commit yet: log end minus position */
    CHECK_CONTAINS(text, "kscore_consumer_lag{topic=\"tx\",partition=\"1\"} 5\n");
    /* partition 2 belongs to worker 1, whose consumer reported nothing yet:
     * the series exists from the assignment on, unknown (NaN) until then */
    CHECK_CONTAINS(text, "kscore_consumer_lag{topic=\"tx\",partition=\"2\"} NaN\n");
    CHECK_CONTAINS(text, "kscore_assigned_partitions 3\n");
    CHECK_CONTAINS(text, "kscore_broker_rtt_seconds{client=\"worker-0/consumer\","
                         "broker=\"127.0.0.1:9092/1\",stat=\"avg\"} 0.0015");
    CHECK_CONTAINS(text, "kscore_broker_rtt_seconds{client=\"worker-0/consumer\","
                         "broker=\"127.0.0.1:9092/1\",stat=\"p99\"} 0.0025");
    CHECK(strstr(text, "GroupCoordinator") == NULL); /* logical broker skipped */
    CHECK_CONTAINS(text, "kscore_broker_connected{client=\"worker-0/consumer\","
                         "broker=\"127.0.0.1:9092/1\"} 1\n");
    free(text);

    /* the producer: queue gauges, and a client with no broker UP makes the
     * brokers unreachable, with a reason */
    CHECK(ks_kstats_apply(ks, 1, KS_KCLIENT_PRODUCER, producer_stats, strlen(producer_stats)) == 0);
    text = render();
    CHECK_CONTAINS(text, "kscore_producer_queue_bytes{worker=\"1\"} 3456\n");
    CHECK_CONTAINS(text, "kscore_producer_queue_max_messages{worker=\"1\"} 100000\n");
    free(text);
    ks_buf_t why = {0};
    CHECK(!ks_kstats_reachable(ks, &why));
    ks_buf_putc(&why, '\0');
    CHECK_CONTAINS(why.data, "worker-1's producer has no connection to any broker");
    ks_kstats_broker_event(ks, 1, KS_KCLIENT_PRODUCER, 1);
    CHECK(ks_kstats_reachable(ks, NULL));
    ks_kstats_broker_event(ks, 0, KS_KCLIENT_CONSUMER, 0); /* all brokers down */
    CHECK(!ks_kstats_reachable(ks, NULL));
    ks_kstats_broker_event(ks, 0, KS_KCLIENT_CONSUMER, 1);

    /* rebalance: worker 0 loses partition 1: its lag disappears at once,
     * partition 0 keeps its last known value */
    int a0b[] = {0};
    rd_kafka_topic_partition_list_t *l0b = parts(1, a0b);
    ks_kstats_assignment(ks, 0, l0b);
    text = render();
    CHECK_CONTAINS(text, "kscore_consumer_lag{topic=\"tx\",partition=\"0\"} 42\n");
    CHECK(strstr(text, "kscore_consumer_lag{topic=\"tx\",partition=\"1\"}") == NULL);
    CHECK_CONTAINS(text, "kscore_assigned_partitions 2\n");
    free(text);

    ks_buf_t js = {0};
    ks_kstats_json(ks, &js);
    ks_json_t *root = NULL;
    CHECK(ks_json_parse(js.data, js.len, &root, err, sizeof(err)) == KS_OK);
    CHECK_EQ_INT((long long)ks_json_num(ks_json_get(root, "assigned"), -1), 2);
    CHECK_EQ_INT((long long)ks_json_len(ks_json_get(root, "partitions")), 2);
    ks_json_free(root);

    /* the queue path: submitted documents are applied by the collector thread */
    ks_kstats_assignment(ks, 1, l1);
    ks_kstats_submit(ks, 1, KS_KCLIENT_CONSUMER, consumer_stats, strlen(consumer_stats));
    int seen = 0;
    for (int i = 0; i < 200 && !seen; i++) {
        text = render();
        seen = strstr(text, "kscore_consumer_lag{topic=\"tx\",partition=\"2\"} 7\n") != NULL;
        free(text);
        if (!seen)
            usleep(10000);
    }
    CHECK_MSG(seen, "the collector thread did not apply a submitted document within 2 s");

    ks_kstats_assignment(ks, 0, NULL);
    ks_kstats_assignment(ks, 1, NULL);
    CHECK_EQ_INT(ks_kstats_assigned(ks), 0);
    ks_buf_free(&why);
    ks_buf_free(&js);
    rd_kafka_topic_partition_list_destroy(l0);
    rd_kafka_topic_partition_list_destroy(l0b);
    rd_kafka_topic_partition_list_destroy(l1);
    ks_kstats_free(ks);
}

static void test_server(void)
{
    char err[512];
    ks_config_t *cfg = NULL;
    ks_pipeline_t *p = NULL;
    ks_http_t *h = NULL, *h2 = NULL;
    ks_kstats_t *ks = NULL;
    const char *sets[] = {"metrics.listen=127.0.0.1:0"};
    CHECK_MSG(ks_config_load("examples/basic/pipeline.yaml", sets, 1, &cfg, err, sizeof(err)) == 0,
              "%s", err);
    CHECK_MSG(ks_pipeline_new(cfg, &p, err, sizeof(err)) == 0, "%s", err);
    if (!p)
        return;
    CHECK(ks_kstats_new(2, &ks, err, sizeof(err)) == KS_OK);
    CHECK_MSG(ks_http_start(p, ks, cfg->metrics_listen, &h, err, sizeof(err)) == KS_OK, "%s", err);
    if (!h)
        return;
    int port = url_port(ks_http_url(h));
    CHECK(port > 0);
    CHECK_CONTAINS(ks_http_url(h), "http://127.0.0.1:");

    reply_t r = request(port, "GET", "/healthz");
    CHECK_EQ_INT(r.status, 200);
    CHECK_CONTAINS(r.body, "\"status\":\"ok\"");
    reply_free(&r);

    /* no partitions yet: 503 and the reason */
    r = request(port, "GET", "/readyz");
    CHECK_EQ_INT(r.status, 503);
    CHECK_CONTAINS(r.body, "\"ready\":false");
    CHECK_CONTAINS(r.body, "\"model_loaded\":{\"ok\":true");
    CHECK_CONTAINS(r.body, "no input partitions assigned yet");
    CHECK_CONTAINS(r.headers, "application/json");
    reply_free(&r);

    int ids[] = {0};
    rd_kafka_topic_partition_list_t *l = parts(1, ids);
    ks_kstats_assignment(ks, 0, l);
    r = request(port, "GET", "/readyz");
    CHECK_EQ_INT(r.status, 200);
    CHECK_CONTAINS(r.body, "\"ready\":true");
    reply_free(&r);
    ks_kstats_broker_event(ks, 1, KS_KCLIENT_PRODUCER, 0);
    r = request(port, "GET", "/readyz");
    CHECK_EQ_INT(r.status, 503);
    CHECK_CONTAINS(r.body, "brokers unreachable: worker-1's producer");
    reply_free(&r);
    ks_kstats_broker_event(ks, 1, KS_KCLIENT_PRODUCER, 1);
    /* window state being restored (engine/stages/windows.c): not ready */
    atomic_store(&p->restoring, 2);
    r = request(port, "GET", "/readyz");
    CHECK_EQ_INT(r.status, 503);
    CHECK_CONTAINS(r.body, "restoring the window state of 2 partition(s)");
    CHECK_CONTAINS(r.body, "\"state_restored\":{\"ok\":false,\"restoring\":2}");
    reply_free(&r);
    atomic_store(&p->restoring, 0);
    r = request(port, "GET", "/readyz");
    CHECK_EQ_INT(r.status, 200);
    reply_free(&r);

    /* a worker holding a batch (a required lookup without Redis): not ready,
     * saying why; ready again when it passes */
    atomic_store(&p->hold_reason, "waiting for the required lookup 'profile'");
    atomic_store(&p->holding, 1);
    r = request(port, "GET", "/readyz");
    CHECK_EQ_INT(r.status, 503);
    CHECK_CONTAINS(r.body, "\"not_held\":{\"ok\":false,\"workers_holding\":1}");
    CHECK_CONTAINS(r.body, "waiting for the required lookup 'profile': consumption paused on 1 "
                           "worker(s)");
    reply_free(&r);
    atomic_store(&p->holding, 0);
    r = request(port, "GET", "/readyz");
    CHECK_EQ_INT(r.status, 200);
    reply_free(&r);

    ks_counter_add(p->metrics.consumed, 5);
    ks_histogram_observe(p->metrics.end_to_end, 0.004);
    r = request(port, "GET", "/metrics");
    CHECK_EQ_INT(r.status, 200);
    CHECK_CONTAINS(r.headers, "text/plain; version=0.0.4");
    CHECK_CONTAINS(r.body, "\nkscore_events_consumed_total 5\n");
    CHECK_CONTAINS(r.body, "kscore_end_to_end_latency_seconds_bucket{le=\"0.005\"} 1\n");
    CHECK_CONTAINS(r.body, "# TYPE process_cpu_seconds_total counter\n");
    CHECK_CONTAINS(r.body, "\nprocess_resident_memory_bytes ");
    CHECK_CONTAINS(r.body, "\nprocess_start_time_seconds ");
    CHECK_CONTAINS(r.body, "\nprocess_open_fds ");
    CHECK_CONTAINS(r.body, "kscore_build_info{version=\"");
    char bad[256] = "";
    CHECK_MSG(r.body && exposition_ok(r.body, bad, sizeof(bad)), "bad exposition line: %s", bad);
    const char *rss = r.body ? strstr(r.body, "\nprocess_resident_memory_bytes ") : NULL;
    CHECK(rss && atof(rss + 31) > 1e5);
    const char *st = r.body ? strstr(r.body, "\nprocess_start_time_seconds ") : NULL;
    CHECK(st && fabs(atof(st + 28) - (double)ks_now_wall_ms() / 1e3) < 3600);
    reply_free(&r);

    r = request(port, "GET", "/status.json");
    CHECK_EQ_INT(r.status, 200);
    ks_json_t *root = NULL;
    CHECK_MSG(r.body && ks_json_parse(r.body, strlen(r.body), &root, err, sizeof(err)) == KS_OK,
              "%s", err);
    CHECK_EQ_INT((long long)ks_json_num(ks_json_get(ks_json_get(root, "totals"), "consumed"), -1),
                 5);
    CHECK(ks_json_is(ks_json_get(ks_json_get(root, "series"), "consumed_per_s"), KS_JSON_ARRAY));
    CHECK(ks_json_is(ks_json_get(ks_json_get(root, "latency_ms"), "stages"), KS_JSON_OBJECT));
    CHECK_EQ_STR(ks_json_str(ks_json_get(ks_json_get(root, "model"), "version")),
                 p->serving->model->version);
    CHECK(ks_json_is(ks_json_get(root, "errors"), KS_JSON_ARRAY));
    CHECK(ks_json_is(ks_json_get(ks_json_get(root, "kafka"), "partitions"), KS_JSON_ARRAY));
    ks_json_free(root);
    reply_free(&r);

    r = request(port, "GET", "/");
    CHECK_EQ_INT(r.status, 200);
    CHECK_CONTAINS(r.headers, "text/html");
    CHECK(r.body && strcmp(r.body, ks_status_page_html) == 0);
    reply_free(&r);

    r = request(port, "HEAD", "/metrics");
    CHECK_EQ_INT(r.status, 200);
    reply_free(&r);
    r = request(port, "POST", "/metrics");
    CHECK_EQ_INT(r.status, 405);
    reply_free(&r);
    r = request(port, "GET", "/nope");
    CHECK_EQ_INT(r.status, 404);
    reply_free(&r);

    /* the same port again: a start-up error that names the address and why */
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    CHECK(ks_http_start(p, ks, addr, &h2, err, sizeof(err)) == KS_EIO);
    CHECK(h2 == NULL);
    CHECK_CONTAINS(err, addr);
    CHECK_CONTAINS(err, "Address already in use");
    CHECK(ks_http_start(p, ks, "localhost", &h2, err, sizeof(err)) == KS_EINVAL);
    CHECK_CONTAINS(err, "is not HOST:PORT");
    CHECK(ks_http_start(p, ks, "127.0.0.1:99999", &h2, err, sizeof(err)) == KS_EINVAL);

    ks_http_stop(h);
    /* stopped: the port is free again */
    CHECK(request(port, "GET", "/healthz").status == 0);
    CHECK_MSG(ks_http_start(p, ks, addr, &h2, err, sizeof(err)) == KS_OK, "%s", err);
    ks_http_stop(h2);

    rd_kafka_topic_partition_list_destroy(l);
    ks_kstats_free(ks);
    ks_pipeline_free(p);
    ks_config_free(cfg);
}

int main(void)
{
    RUN(test_quantile);
    RUN(test_status_page_embedded);
    RUN(test_kafka_stats);
    RUN(test_server);
    return test_summary();
}
