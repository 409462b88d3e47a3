/*
 * bench_lookup.c - feature-store lookups at batch granularity vs one GET per
 * event, in the same run against the same Redis (bench/lookup/run starts it).
 *
 *   per_event    the hand-written consumer's pattern: one blocking GET per
 *                event (here in C over the same connection code, so the
 *                difference is the round trips, not the language)
 *   batch        kscore's resolver, cache off: per batch, keys deduplicated,
 *                one pipelined exchange
 *   batch_cached the same with the cache warm: the lookup's own cost per
 *                event at batch size B when every key hits
 *
 * Usage: bench_lookup PORT [EVENTS] [USERS] [BATCH]
 * Prints one JSON line per mode: events/s, Redis commands per event, p50/p99
 * of the time one event (per_event) or one batch waits for its values, and
 * ns per event.
 */
#include "base/common.h"
#include "base/conftree.h"
#include "decode/schema.h"
#include "lookup/lookup.h"
#include "lookup/redis.h"

#include <hiredis/hiredis.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    qsort(v, n, sizeof(double), cmp_d);
    return n ? v[(size_t)(p * (double)(n - 1))] : 0;
}

static void report(const char *mode, size_t events, double secs, uint64_t commands, double *lat,
                   size_t n_lat, size_t batch)
{
    printf("{\"mode\":\"%s\",\"events\":%zu,\"batch\":%zu,\"events_per_s\":%.0f,"
           "\"commands_per_event\":%.4f,\"wait_p50_us\":%.1f,\"wait_p99_us\":%.1f,"
           "\"ns_per_event\":%.1f}\n",
           mode, events, batch, (double)events / secs, (double)commands / (double)events,
           pct(lat, n_lat, 0.5) * 1e6, pct(lat, n_lat, 0.99) * 1e6, secs * 1e9 / (double)events);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_lookup PORT [EVENTS] [USERS] [BATCH]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    size_t events = argc > 2 ? strtoul(argv[2], NULL, 10) : 200000;
    size_t users = argc > 3 ? strtoul(argv[3], NULL, 10) : 100000;
    size_t bsz = argc > 4 ? strtoul(argv[4], NULL, 10) : 500;
    ks_redis_addr_t addr = {.host = "127.0.0.1", .port = port};
    char key[64], val[160], err[256];

    /* profiles: one pipeline */
    ks_redis_t *r = ks_redis_new(&addr);
    for (size_t u = 0; u < users; u++) {
        int kl = snprintf(key, sizeof(key), "features:u%zu", u);
        int vl = snprintf(val, sizeof(val),
                          "{\"tx_count_1h\": %zu, \"avg_amount_1h\": %zu.5, \"segment\": \"s%zu\"}",
                          u % 50, u % 900, u % 5);
        const char *av[] = {"SET", key, val};
        size_t al[] = {3, (size_t)kl, (size_t)vl};
        ks_redis_append(r, 3, av, al);
    }
    redisReply **reps = calloc(users, sizeof(*reps));
    if (ks_redis_exchange(r, reps, users, ks_now_mono_ns() + 60000000000LL, err, sizeof(err))) {
        fprintf(stderr, "bench_lookup: cannot load profiles: %s\n", err);
        return 1;
    }
    for (size_t u = 0; u < users; u++)
        ks_redis_reply_free(reps[u]);

    /* the events' users: a fixed pseudo-random sequence */
    uint32_t *ev = malloc(events * sizeof(uint32_t));
    uint64_t s = 42;
    for (size_t i = 0; i < events; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        ev[i] = (uint32_t)((s >> 33) % users);
    }
    double *lat = malloc(events * sizeof(double));

    /* per event: one GET, wait for it, next */
    int64_t t0 = ks_now_mono_ns();
    for (size_t i = 0; i < events; i++) {
        int kl = snprintf(key, sizeof(key), "features:u%u", ev[i]);
        const char *av[] = {"GET", key};
        size_t al[] = {3, (size_t)kl};
        int64_t a = ks_now_mono_ns();
        ks_redis_append(r, 2, av, al);
        if (ks_redis_exchange(r, reps, 1, a + 1000000000LL, err, sizeof(err))) {
            fprintf(stderr, "bench_lookup: GET: %s\n", err);
            return 1;
        }
        ks_redis_reply_free(reps[0]);
        lat[i] = (double)(ks_now_mono_ns() - a) / 1e9;
    }
    report("per_event", events, (double)(ks_now_mono_ns() - t0) / 1e9, events, lat, events, 1);
    ks_redis_free(r);

    /* batches through the resolver */
    ks_lookup_def_t def;
    ks_node_t *root = NULL, *sroot = NULL;
    ks_schema_t *schema = NULL;
    char yaml[512];
    for (int cached = 0; cached < 2; cached++) {
        snprintf(yaml, sizeof(yaml),
                 "name: profile\nredis: {url: \"redis://127.0.0.1:%d/0\", timeout_ms: 1000}\n"
                 "key: \"features:{user_id}\"\nfields: {tx_count_1h: {type: number, default: 0}, "
                 "avg_amount_1h: {type: number, default: 0}, segment: {type: string, default: x}}\n"
                 "cache: {ttl_ms: %d, max_entries: %zu}\n", port, cached ? 600000 : 0, users);
        if (ks_node_parse_string("schema", "user_id: string\n", 16, &sroot, err, sizeof(err)) ||
            ks_schema_parse(sroot, &schema, err, sizeof(err)) ||
            ks_node_parse_string("bench", yaml, strlen(yaml), &root, err, sizeof(err)) ||
            ks_lookup_parse(root, schema, NULL, &def, err, sizeof(err))) {
            fprintf(stderr, "bench_lookup: %s\n", err);
            return 1;
        }
        const ks_lookup_def_t *defs[] = {&def};
        ks_lookups_t *t = ks_lookups_new(defs, 1);
        if (cached) { /* warm every key */
            for (size_t i = 0; i < users; i += bsz) {
                ks_lookups_begin(t);
                for (size_t u = i; u < i + bsz && u < users; u++) {
                    int kl = snprintf(key, sizeof(key), "features:u%zu", u);
                    ks_lookups_add(t, 0, key, (size_t)kl);
                }
                ks_lookups_fetch(t);
            }
        }
        uint64_t c0, e0, c1, e1;
        ks_lookups_counts(t, &c0, &e0);
        size_t nb = 0;
        double check = 0;
        t0 = ks_now_mono_ns();
        for (size_t i = 0; i < events; i += bsz) {
            int64_t a = ks_now_mono_ns();
            uint32_t slots[4096];
            size_t n = i + bsz <= events ? bsz : events - i;
            ks_lookups_begin(t);
            for (size_t k = 0; k < n; k++) {
                int kl = snprintf(key, sizeof(key), "features:u%u", ev[i + k]);
                slots[k % 4096] = ks_lookups_add(t, 0, key, (size_t)kl);
            }
            ks_lookups_fetch(t);
            for (size_t k = 0; k < n; k++) {
                int deg;
                check += ks_lookups_values(t, 0, slots[k % 4096], &deg)[0].num;
            }
            lat[nb++] = (double)(ks_now_mono_ns() - a) / 1e9;
        }
        double secs = (double)(ks_now_mono_ns() - t0) / 1e9;
        ks_lookups_counts(t, &c1, &e1);
        report(cached ? "batch_cached" : "batch", events, secs, c1 - c0, lat, nb, bsz);
        if (check < 0)
            printf("impossible\n");
        ks_lookups_free(t);
        ks_lookup_def_free(&def);
        ks_node_free(root);
        ks_node_free(sroot);
        ks_schema_free(schema);
    }
    free(ev);
    free(lat);
    free(reps);
    return 0;
}
