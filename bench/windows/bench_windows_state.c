/*
 * bench_windows_state.c - the window store alone (state/window.h), with the
 * issue's example features (per user: count, avg and distinct merchants over
 * 1h, seconds since the last event, max over 24h):
 *
 *   bench_windows_state KEYS EVENTS_PER_KEY
 *
 * Feeds KEYS keys x EVENTS_PER_KEY events (times spread over an hour, 50
 * merchants), keeping changelog records after every 500 events, then
 * rebuilds a store from those records. Prints one JSON line: apply rate,
 * state bytes per key (the store's accounting and the process RSS growth),
 * changelog bytes per record, and the restore rate from the records.
 */
#include "base/common.h"
#include "base/conftree.h"
#include "decode/schema.h"
#include "state/window.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char yaml[] =
    "input:\n  fields:\n    user_id: {type: string}\n    amount: {type: number}\n"
    "    merchant: {type: string}\n    ts: {type: number}\n"
    "windows: {time: ts, time_unit: ms, grace: 5m}\n"
    "features:\n"
    "  - {name: tx_count_1h, window: {key: user_id, agg: count, size: 1h}}\n"
    "  - {name: avg_amount_1h, window: {key: user_id, agg: avg, of: amount, size: 1h}}\n"
    "  - {name: unique_merchants_1h, window: {key: user_id, agg: count_distinct, of: merchant, "
    "size: 1h}}\n"
    "  - {name: secs_since_last, window: {key: user_id, agg: time_since_last}}\n"
    "  - {name: max_amount_24h, window: {key: user_id, agg: max, of: amount, size: 24h, "
    "resolution: 1h}}\n";

static double rss_mb(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return (double)rss * (double)sysconf(_SC_PAGESIZE) / 1e6;
}

typedef struct rec {
    char *key, *val;
    uint32_t klen, vlen;
} rec_t;

typedef struct log {
    rec_t *r;
    size_t n, cap, bytes;
} log_t;

static void keep(void *opaque, const void *key, size_t klen, const void *val, size_t vlen)
{
    log_t *l = opaque;
    if (l->n == l->cap)
        l->r = ks_xrealloc(l->r, (l->cap = l->cap ? l->cap * 2 : 1 << 16) * sizeof(rec_t));
    rec_t *r = &l->r[l->n++];
    r->key = ks_xmalloc(klen);
    memcpy(r->key, key, klen);
    r->val = ks_xmalloc(vlen);
    memcpy(r->val, val, vlen);
    r->klen = (uint32_t)klen;
    r->vlen = (uint32_t)vlen;
    l->bytes += klen + vlen;
}

/* Feeds n events over `keys` keys (times spread over an hour), flushing
 * every 500 events; returns the seconds it took. */
static double feed(ks_wstore_t *s, ks_value_t *row, long keys, int64_t n, log_t *lg)
{
    char user[32], merchant[16], err[256];
    int64_t t0 = 1700000000000LL, start = ks_now_mono_ns();
    uint64_t rng = 42;
    for (int64_t i = 0; i < n; i++) {
        long k = (long)(i % keys);
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        int ul = snprintf(user, sizeof(user), "user-%ld", k);
        int ml = snprintf(merchant, sizeof(merchant), "m%u", (unsigned)(rng >> 58) % 50);
        row[0] = (ks_value_t){.type = KS_VAL_STR, .len = (uint32_t)ul, .str = user};
        row[1] = (ks_value_t){.type = KS_VAL_NUM, .num = (double)((rng >> 40) % 50000) / 100};
        row[2] = (ks_value_t){.type = KS_VAL_STR, .len = (uint32_t)ml, .str = merchant};
        row[3] = (ks_value_t){.type = KS_VAL_NUM, .num = (double)(t0 + i * 3600000 / n)};
        if (ks_wstore_apply(s, row, t0 + i * 3600000 / n, i, err, sizeof(err))) {
            fprintf(stderr, "%s\n", err);
            exit(1);
        }
        if (i % 500 == 499 || i == n - 1)
            ks_wstore_flush(s, i, lg ? keep : NULL, lg);
    }
    return (ks_now_mono_ns() - start) / 1e9;
}

int main(int argc, char **argv)
{
    long keys = argc > 1 ? atol(argv[1]) : 1000000, per = argc > 2 ? atol(argv[2]) : 2;
    char err[512];
    ks_node_t *root;
    ks_schema_t *schema;
    ks_windows_t *w;
    if (ks_node_parse_string("bench.yaml", yaml, strlen(yaml), &root, err, sizeof(err)) ||
        ks_schema_parse(ks_node_get(ks_node_get(root, "input"), "fields"), &schema, err,
                        sizeof(err)) ||
        ks_windows_parse(root, schema, &w, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    ks_value_t *row = ks_xcalloc(schema->n_fields, sizeof(*row));
    log_t lg = {0};
    int64_t n = keys * per;

    /* 1. without a changelog: the apply rate and the memory */
    double rss0 = rss_mb();
    ks_wstore_t *s = ks_wstore_new(w, 0, 0);
    double plain_s = feed(s, row, keys, n, NULL);
    const ks_wstore_stats_t *st = ks_wstore_stats(s);
    double rss1 = rss_mb();
    uint64_t held = st->keys, bytes = st->bytes;
    ks_wstore_free(s);

    /* 2. with the changelog records kept */
    s = ks_wstore_new(w, 0, 1);
    double apply_s = feed(s, row, keys, n, &lg);
    ks_wstore_free(s);

    /* restore: everything committed */
    s = ks_wstore_new(w, 0, 1);
    int64_t start = ks_now_mono_ns();
    for (size_t r = 0; r < lg.n; r++)
        if (ks_wstore_restore(s, lg.r[r].key, lg.r[r].klen, lg.r[r].val, lg.r[r].vlen, n) < 0) {
            fprintf(stderr, "record %zu unreadable\n", r);
            return 1;
        }
    double restore_s = (ks_now_mono_ns() - start) / 1e9;
    int same = ks_wstore_stats(s)->keys == held;
    printf("{\"keys\":%lu,\"events\":%lld,\"apply_events_per_s\":%.0f,"
           "\"apply_with_changelog_events_per_s\":%.0f,"
           "\"state_bytes_per_key\":%.0f,\"rss_mb_per_million_keys\":%.0f,"
           "\"changelog_records\":%zu,\"changelog_bytes_per_record\":%.0f,"
           "\"restore_records_per_s\":%.0f,\"restore_keys_per_s\":%.0f,\"restored_same\":%s}\n",
           (unsigned long)held, (long long)n, n / plain_s, n / apply_s, (double)bytes / held,
           (rss1 - rss0) * 1e6 / held, lg.n, (double)lg.bytes / lg.n, lg.n / restore_s,
           held / restore_s, same ? "true" : "false");
    ks_wstore_free(s);
    for (size_t r = 0; r < lg.n; r++) {
        free(lg.r[r].key);
        free(lg.r[r].val);
    }
    free(lg.r);
    free(row);
    ks_windows_free(w);
    ks_schema_free(schema);
    ks_node_free(root);
    return same ? 0 : 1;
}
