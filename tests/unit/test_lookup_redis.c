/*
 * test_lookup_redis.c - the lookup resolver against a real redis-server
 * (Debian's), which this test starts itself on a free loopback port and
 * stops by its PID:
 *
 *   - 10,000 users' profiles in Redis: every looked-up value equals what was
 *     stored; one pipelined exchange per batch, keys deduplicated, cache hits
 *     on the second pass
 *   - malformed values (bad JSON, wrong types, a 2 MB value, a hash where a
 *     string is expected) and missing keys: defaults, counted, not degraded
 *   - a slow Redis (DEBUG SLEEP): the batch waits no longer than timeout_ms
 *   - Redis killed mid-run: defaults flagged degraded, the breaker opens and
 *     stops calling; Redis restarted: the breaker's probe closes it and the
 *     values are right again, without a new resolver
 * Every wait is a bounded loop on a condition.
 */
#include "test.h"

#include "base/buf.h"
#include "base/common.h"
#include "base/conftree.h"
#include "base/metrics.h"
#include "decode/schema.h"
#include "lookup/lookup.h"
#include "lookup/redis.h"

#include <hiredis/hiredis.h>

#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#define RUN_T(fn, arg) do { int before_ = test_failures_; fn(arg); \
    fprintf(stderr, "%s %s\n", test_failures_ == before_ ? "ok  " : "FAIL", #fn); } while (0)

#define USERS 10000
#define BATCH 500

static int port;
static pid_t server;
static char dir[] = "/tmp/kscore-redis-XXXXXX";

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || getsockname(fd, (struct sockaddr *)&a, &l))
        return -1;
    close(fd);
    return ntohs(a.sin_port);
}

/* One command on a fresh connection, 2 s deadline; the reply or NULL. */
static redisReply *cmd(int argc, const char **argv)
{
    ks_redis_addr_t a = {.host = "127.0.0.1", .port = port};
    ks_redis_t *r = ks_redis_new(&a);
    size_t len[8];
    for (int i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    redisReply *rep = NULL;
    ks_redis_append(r, argc, argv, len);
    ks_redis_exchange(r, &rep, 1, ks_now_mono_ns() + 2000000000LL, NULL, 0);
    ks_redis_free(r);
    return rep;
}

static int start_server(void)
{
    char p[16];
    snprintf(p, sizeof(p), "%d", port);
    server = fork();
    if (server == 0) {
        int devnull = open("/dev/null", 1);
        dup2(devnull, 1);
        execlp("redis-server", "redis-server", "--port", p, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", dir, "--enable-debug-command", "local",
               (char *)NULL);
        _exit(127);
    }
    /* until it answers PING: bounded in count and time (10 s) */
    int64_t deadline = ks_now_mono_ns() + 10000000000LL;
    while (ks_now_mono_ns() < deadline) {
        const char *ping[] = {"PING"};
        redisReply *r = cmd(1, ping);
        int ok = r && r->type == REDIS_REPLY_STATUS;
        ks_redis_reply_free(r);
        if (ok)
            return 0;
        if (waitpid(server, NULL, WNOHANG) == server)
            return -1;
        usleep(20000);
    }
    return -1;
}

static void kill_server(void)
{
    if (server > 0) {
        kill(server, SIGKILL);
        waitpid(server, NULL, 0);
        server = 0;
    }
}

static void expected(int u, char *buf, size_t size)
{
    snprintf(buf, size, "{\"tx_count_1h\": %d, \"avg_amount_1h\": %d.25, \"segment\": \"seg%d\"}",
             u % 97, u % 1000, u % 7);
}

/* Stores every profile in one pipeline, plus the odd values. */
static void populate(void)
{
    ks_redis_addr_t a = {.host = "127.0.0.1", .port = port};
    ks_redis_t *r = ks_redis_new(&a);
    redisReply **reps = calloc(USERS + 8, sizeof(*reps));
    char key[64], val[256];
    for (int u = 0; u < USERS; u++) {
        snprintf(key, sizeof(key), "features:u%d", u);
        expected(u, val, sizeof(val));
        const char *argv[] = {"SET", key, val};
        size_t len[] = {3, strlen(key), strlen(val)};
        ks_redis_append(r, 3, argv, len);
    }
    size_t huge_len = 2u << 20;
    char *huge = malloc(huge_len);
    memset(huge, ' ', huge_len);
    memcpy(huge, "{\"tx_count_1h\": 5", 17);
    huge[huge_len - 1] = '}';
    const char *odd[][3] = {{"SET", "features:bad-json", "{\"tx_count_1h\": 3"},
                            {"SET", "features:wrong-type", "{\"tx_count_1h\": \"many\", \"segment\": \"ok\"}"},
                            {"HSET", "features:a-hash", "tx_count_1h"}};
    for (int i = 0; i < 3; i++) {
        const char *argv[] = {odd[i][0], odd[i][1], odd[i][2], "1"};
        size_t len[] = {strlen(argv[0]), strlen(argv[1]), strlen(argv[2]), 1};
        ks_redis_append(r, i == 2 ? 4 : 3, argv, len);
    }
    const char *hargv[] = {"SET", "features:huge", huge};
    size_t hlen[] = {3, 13, huge_len};
    ks_redis_append(r, 3, hargv, hlen);
    char err[256] = "";
    int rc = ks_redis_exchange(r, reps, USERS + 4, ks_now_mono_ns() + 30000000000LL, err, sizeof(err));
    CHECK_MSG(rc == 0, "populate: %s", err);
    for (int i = 0; i < USERS + 4; i++)
        ks_redis_reply_free(reps[i]);
    free(reps);
    free(huge);
    ks_redis_free(r);
}

static ks_lookup_def_t def;

static void make_def(void)
{
    char yaml[1024], err[512];
    snprintf(yaml, sizeof(yaml),
             "name: profile\n"
             "redis: {url: \"redis://127.0.0.1:%d/0\", timeout_ms: 50}\n"
             "key: \"features:{user_id}\"\n"
             "fields:\n"
             "  tx_count_1h: {type: number, default: -1}\n"
             "  avg_amount_1h: {type: number, default: -2}\n"
             "  segment: {type: string, default: unknown}\n"
             "cache: {ttl_ms: 60000, max_entries: 20000}\n"
             "breaker: {failures: 2, cooldown_ms: 200}\n", port);
    const char *schema_yaml = "user_id: string\n";
    ks_node_t *root = NULL, *sroot = NULL;
    ks_schema_t *s = NULL;
    CHECK(ks_node_parse_string("schema", schema_yaml, strlen(schema_yaml), &sroot, err, sizeof(err)) == 0);
    CHECK(ks_schema_parse(sroot, &s, err, sizeof(err)) == 0);
    CHECK(ks_node_parse_string("pipeline.yaml", yaml, strlen(yaml), &root, err, sizeof(err)) == 0);
    CHECK_MSG(ks_lookup_parse(root, s, NULL, &def, err, sizeof(err)) == 0, "%s", err);
    ks_node_free(root);
    ks_node_free(sroot);
    ks_schema_free(s);
}

/* One batch of BATCH users starting at `first` (each user twice: dedup).
 * Returns the number of wrong values; *degraded the degraded slots. */
static int batch(ks_lookups_t *t, int first, int *degraded)
{
    uint32_t slot[BATCH];
    int users[BATCH], bad = 0;
    char key[64], want[256];
    *degraded = 0;
    ks_lookups_begin(t);
    for (int i = 0; i < BATCH; i++) {
        users[i] = (first + i / 2) % USERS;
        int n = snprintf(key, sizeof(key), "features:u%d", users[i]);
        slot[i] = ks_lookups_add(t, 0, key, (size_t)n);
    }
    ks_lookups_fetch(t);
    for (int i = 0; i < BATCH; i++) {
        int deg;
        const ks_value_t *v = ks_lookups_values(t, 0, slot[i], &deg);
        if (deg) {
            (*degraded)++;
            if (v[0].num != -1 || v[1].num != -2 || v[2].len != 7)
                bad++;
            continue;
        }
        int u = users[i];
        snprintf(want, sizeof(want), "seg%d", u % 7);
        if (v[0].num != u % 97 || v[1].num != (u % 1000) + 0.25 || v[2].type != KS_VAL_STR ||
            v[2].len != strlen(want) || memcmp(v[2].str, want, v[2].len))
            bad++;
    }
    return bad;
}

static double metric(const char *prefix)
{
    ks_buf_t b = {0};
    ks_metrics_render(&b);
    ks_buf_putc(&b, 0);
    const char *p = strstr(b.data, prefix);
    double v = p ? atof(p + strlen(prefix)) : -1;
    ks_buf_free(&b);
    return v;
}

static void test_values_equal_redis(ks_lookups_t *t)
{
    uint64_t c0, e0, c1, e1;
    int deg, bad = 0, degraded = 0;
    ks_lookups_counts(t, &c0, &e0);
    for (int first = 0; first < 2 * USERS; first += BATCH / 2) {
        bad += batch(t, first, &deg);
        degraded += deg;
    }
    ks_lookups_counts(t, &c1, &e1);
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(degraded, 0);
    /* first pass: one exchange per batch, one GET per distinct user; second: all hits */
    CHECK_EQ_INT(e1 - e0, USERS / (BATCH / 2));
    CHECK_EQ_INT(c1 - c0, USERS);
    fprintf(stderr, "  %d batches of %d: %llu exchanges, %llu GETs\n", 2 * USERS / (BATCH / 2),
            BATCH, (unsigned long long)(e1 - e0), (unsigned long long)(c1 - c0));
}

static void test_odd_values(ks_lookups_t *t)
{
    const char *keys[] = {"features:bad-json", "features:wrong-type", "features:a-hash",
                          "features:huge", "features:nobody"};
    uint32_t s[5];
    double malformed0 = metric("kscore_lookup_malformed_total{lookup=\"profile\"} ");
    ks_lookups_begin(t);
    for (int i = 0; i < 5; i++)
        s[i] = ks_lookups_add(t, 0, keys[i], strlen(keys[i]));
    ks_lookups_fetch(t);
    int deg;
    for (int i = 0; i < 5; i++) {
        const ks_value_t *v = ks_lookups_values(t, 0, s[i], &deg);
        CHECK(!deg);
        CHECK(v[0].num == -1 && v[1].num == -2);
        if (i == 1)
            CHECK(v[2].len == 2 && !memcmp(v[2].str, "ok", 2)); /* the good field is kept */
        else
            CHECK(v[2].len == 7 && !memcmp(v[2].str, "unknown", 7));
    }
    /* bad JSON 3 fields, wrong type 1 (+ avg absent: fine), hash 3, huge 3 */
    CHECK_EQ_INT(metric("kscore_lookup_malformed_total{lookup=\"profile\"} ") - malformed0, 10);
}

/* A fresh resolver (empty cache) for the failure tests. */
static ks_lookups_t *fresh(void)
{
    const ks_lookup_def_t *defs[] = {&def};
    return ks_lookups_new(defs, 1);
}

static void test_slow_redis(ks_lookups_t *unused)
{
    ks_lookups_t *t = fresh();
    /* DEBUG SLEEP blocks the server for 1 s; sent on its own connection,
     * whose reply we do not wait for */
    ks_redis_addr_t a = {.host = "127.0.0.1", .port = port};
    ks_redis_t *r = ks_redis_new(&a);
    const char *argv[] = {"DEBUG", "SLEEP", "1"};
    size_t len[] = {5, 5, 1};
    redisReply *rep;
    ks_redis_append(r, 3, argv, len);
    ks_redis_exchange(r, &rep, 1, ks_now_mono_ns() + 30000000LL, NULL, 0); /* times out */
    ks_redis_free(r);

    int deg;
    int64_t t0 = ks_now_mono_ns();
    int bad = batch(t, USERS / 3 + 17, &deg); /* uncached users */
    double ms = (double)(ks_now_mono_ns() - t0) / 1e6;
    CHECK_EQ_INT(bad, 0);
    CHECK(deg > 0);
    CHECK_MSG(ms < 50 + 40, "a batch against a sleeping Redis took %.1f ms (timeout_ms 50)", ms);
    fprintf(stderr, "  slow Redis: batch returned in %.1f ms with %d degraded keys\n", ms, deg);
    ks_lookups_free(t);
}

static void test_outage(ks_lookups_t *unused)
{
    ks_lookups_t *t = fresh();
    char pfx_opens[128], pfx_open[128];
    snprintf(pfx_opens, sizeof(pfx_opens), "kscore_lookup_breaker_opens_total{server=\"127.0.0.1:%d/0\"} ", port);
    snprintf(pfx_open, sizeof(pfx_open), "kscore_lookup_breaker_open{server=\"127.0.0.1:%d/0\"} ", port);
    double opens0 = metric(pfx_opens);
    /* the slow test may have left it open: wait (bounded) for a clean run */
    int deg = 1, bad = 0;
    for (int i = 0; i < 200 && deg; i++) {
        bad += batch(t, 0, &deg);
        if (deg)
            usleep(10000);
    }
    CHECK_EQ_INT(deg, 0);
    CHECK_EQ_INT(metric(pfx_open), 0);

    kill_server();
    uint64_t c0, e0, c1, e1;
    ks_lookups_counts(t, &c0, &e0);
    int degraded = 0;
    /* uncached users: each batch degrades; after 2 failures the breaker opens */
    for (int i = 0; i < 10; i++) {
        bad += batch(t, USERS / 2 + i * BATCH, &deg);
        degraded += deg;
    }
    ks_lookups_counts(t, &c1, &e1);
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(degraded, 10 * BATCH); /* every row: each user is in the batch twice */
    CHECK_MSG(e1 - e0 <= 3, "%llu exchanges tried while the breaker should be open",
              (unsigned long long)(e1 - e0));
    CHECK(metric(pfx_opens) >= opens0 + 1);
    CHECK_EQ_INT(metric(pfx_open), 1);
    /* cached users are still served (not degraded) during the outage */
    bad += batch(t, 0, &deg);
    CHECK_EQ_INT(deg, 0);

    CHECK(start_server() == 0);
    populate();
    /* the breaker probes after its cool-down: bounded wait for service */
    int64_t deadline = ks_now_mono_ns() + 10000000000LL;
    int back = 0;
    while (!back && ks_now_mono_ns() < deadline) {
        bad += batch(t, USERS / 2, &deg);
        back = deg == 0;
        if (!back)
            usleep(20000);
    }
    CHECK(back);
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(metric(pfx_open), 0);
    fprintf(stderr, "  outage: %d degraded keys, %llu exchanges while down, breaker opened %g time(s), closed again\n",
            degraded, (unsigned long long)(e1 - e0), metric(pfx_opens) - opens0);
    ks_lookups_free(t);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    int started = -1;
    for (int attempt = 0; attempt < 5 && started; attempt++) {
        port = free_port();
        started = port > 0 ? start_server() : -1;
        if (started)
            kill_server();
    }
    CHECK_MSG(started == 0, "cannot start redis-server (is it installed? scripts/deps)");
    if (started == 0) {
        populate();
        make_def();
        const ks_lookup_def_t *defs[] = {&def};
        ks_lookups_t *t = ks_lookups_new(defs, 1);
        RUN_T(test_values_equal_redis, t);
        RUN_T(test_odd_values, t);
        RUN_T(test_slow_redis, t);
        RUN_T(test_outage, t);
        ks_lookups_free(t);
        ks_lookup_def_free(&def);
    }
    kill_server();
    char rm[128];
    snprintf(rm, sizeof(rm), "rm -rf %s", dir);
    if (system(rm) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    return test_summary();
}
