/*
 * test_windows.c - window features (state/window.h) against the offline
 * oracle tests/windows/oracle.py, written from the definition:
 *
 *   - every feature of every event of a generated stream (many keys, events
 *     out of order within and beyond the grace, missing values, idle keys):
 *     counts, sums, avg, min/max, distinct counts, last and times identical;
 *     stddev and ewma within 1e-12 relative (their exact value is irrational;
 *     both sides round differently);
 *   - the same stream with crashes: changelog records are kept after every
 *     batch, and at random points the state is thrown away and restored from
 *     the records up to a committed offset that may fall inside a batch, then
 *     the events from there are replayed: every output equals the oracle's;
 *   - the same with local snapshots (state/snapshot.h): written at batch
 *     boundaries with some of the last records still "in flight" (they land
 *     after the snapshot's changelog offset); at each crash the newest
 *     snapshot at or before the committed offset is loaded and only the
 *     records after its offset applied: every output equals the oracle's;
 *     damaged and truncated snapshot files are refused;
 *   - the config errors, durations, HyperLogLog accuracy and the budget.
 *
 * KSCORE_WINDOWS_EVENTS / KSCORE_WINDOWS_KEYS size the stream (default
 * 200,000 events, 10,000 keys); the oracle runs under KSCORE_PYTHON, else the
 * project venv, else python3.
 */
#include "test.h"

#include "base/buf.h"
#include "base/common.h"
#include "base/conftree.h"
#include "decode/schema.h"
#include "state/distinct.h"
#include "state/snapshot.h"
#include "state/window.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char python[512];

static void find_python(void)
{
    const char *env = getenv("KSCORE_PYTHON");
    if (env && *env)
        snprintf(python, sizeof(python), "%s", env);
    else if (access(".venv/bin/python", X_OK) == 0)
        snprintf(python, sizeof(python), ".venv/bin/python");
    else
        snprintf(python, sizeof(python), "python3");
}

static int run(const char *fmt, ...) KS_PRINTF(1, 2);
static int run(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
    return rc;
}

/* ---------------------------------------------------------------- setup */

typedef struct setup {
    ks_node_t *root;
    ks_schema_t *schema;
    ks_windows_t *w;
    char *yaml;
} setup_t;

static int setup_from(setup_t *s, const char *yaml, char *err, size_t errsize)
{
    memset(s, 0, sizeof(*s));
    s->yaml = ks_xstrdup(yaml);
    int rc = ks_node_parse_string("test.yaml", s->yaml, strlen(s->yaml), &s->root, err, errsize);
    if (rc)
        return rc;
    ks_node_t *input = ks_node_get(s->root, "input");
    if ((rc = ks_schema_parse(ks_node_get(input, "fields"), &s->schema, err, errsize)))
        return rc;
    return ks_windows_parse(s->root, s->schema, &s->w, err, errsize);
}

static void setup_free(setup_t *s)
{
    ks_windows_free(s->w);
    ks_schema_free(s->schema);
    ks_node_free(s->root);
    free(s->yaml);
}

/* ---------------------------------------------------------------- events */

typedef struct event {
    int64_t offset, t;
    char user[16], merchant[16];
    int has_merchant, has_amount;
    double amount;
} event_t;

typedef struct expected {
    int error;
    double v[32];
    int missing[32];
} expected_t;

static char *next_col(char **p)
{
    char *s = *p, *tab = strchr(s, '\t');
    if (tab) {
        *tab = '\0';
        *p = tab + 1;
    } else {
        char *nl = strchr(s, '\n');
        if (nl)
            *nl = '\0';
        *p = s + strlen(s);
    }
    return s;
}

static size_t read_events(const char *path, event_t **out)
{
    FILE *f = fopen(path, "r");
    char line[256];
    size_t n = 0, cap = 1024;
    event_t *ev = ks_xcalloc(cap, sizeof(*ev));
    while (f && fgets(line, sizeof(line), f)) {
        if (n == cap)
            ev = ks_xrealloc(ev, (cap *= 2) * sizeof(*ev));
        event_t *e = &ev[n++];
        memset(e, 0, sizeof(*e));
        char *p = line;
        e->offset = atoll(next_col(&p));
        snprintf(e->user, sizeof(e->user), "%s", next_col(&p));
        char *m = next_col(&p);
        e->has_merchant = *m != '\0';
        snprintf(e->merchant, sizeof(e->merchant), "%s", m);
        e->t = atoll(next_col(&p));
        char *a = next_col(&p);
        e->has_amount = *a != '\0';
        e->amount = e->has_amount ? strtod(a, NULL) : 0;
    }
    if (f)
        fclose(f);
    *out = ev;
    return n;
}

static size_t read_expected(const char *path, size_t n_feats, expected_t **out)
{
    FILE *f = fopen(path, "r");
    char line[2048];
    size_t n = 0, cap = 1024;
    expected_t *ex = ks_xcalloc(cap, sizeof(*ex));
    while (f && fgets(line, sizeof(line), f)) {
        if (n == cap)
            ex = ks_xrealloc(ex, (cap *= 2) * sizeof(*ex));
        expected_t *x = &ex[n++];
        memset(x, 0, sizeof(*x));
        char *p = line;
        next_col(&p);
        for (size_t j = 0; j < n_feats; j++) {
            char *c = next_col(&p);
            if (j == 0 && strcmp(c, "error") == 0) {
                x->error = 1;
                break;
            }
            x->missing[j] = *c == '\0';
            x->v[j] = x->missing[j] ? 0 : strtod(c, NULL);
        }
    }
    if (f)
        fclose(f);
    *out = ex;
    return n;
}

static void fill_row(const setup_t *s, ks_value_t *row, const event_t *e)
{
    int fu = ks_schema_find(s->schema, "user_id"), fm = ks_schema_find(s->schema, "merchant_id");
    int fa = ks_schema_find(s->schema, "amount"), ft = ks_schema_find(s->schema, "ts");
    memset(row, 0, s->schema->n_fields * sizeof(*row));
    row[fu] = (ks_value_t){.type = KS_VAL_STR, .len = (uint32_t)strlen(e->user), .str = e->user};
    if (e->has_merchant)
        row[fm] = (ks_value_t){.type = KS_VAL_STR, .len = (uint32_t)strlen(e->merchant),
                               .str = e->merchant};
    if (e->has_amount)
        row[fa] = (ks_value_t){.type = KS_VAL_NUM, .num = e->amount};
    row[ft] = (ks_value_t){.type = KS_VAL_NUM, .num = (double)e->t};
}

static int approx_agg(ks_wagg_t a)
{
    return a == KS_WAGG_STDDEV || a == KS_WAGG_EWMA;
}

static size_t mismatches_shown;

/* Applies event i and compares its features with the oracle's. */
static int check_event(const setup_t *s, ks_wstore_t *st, ks_value_t *row, const event_t *e,
                       const expected_t *x, const char *pass)
{
    char err[256];
    int64_t t;
    fill_row(s, row, e);
    int rc = ks_windows_event_time(s->w, row, 0, &t, err, sizeof(err));
    if (rc == KS_OK)
        rc = ks_wstore_apply(st, row, t, e->offset, err, sizeof(err));
    if (x->error || rc != KS_OK) {
        if (!!x->error != (rc != KS_OK) && mismatches_shown++ < 10)
            fprintf(stderr, "%s: offset %lld: oracle %s, kscore %s\n", pass,
                    (long long)e->offset, x->error ? "refuses" : "accepts",
                    rc ? err : "accepts");
        return !!x->error == (rc != KS_OK);
    }
    int ok = 1;
    for (size_t j = 0; j < s->w->n_feats; j++) {
        const ks_wfeature_t *f = &s->w->feats[j];
        const ks_value_t *v = &row[f->out_field];
        int got_missing = v->type != KS_VAL_NUM;
        int good;
        if (x->missing[j] || got_missing)
            good = x->missing[j] == got_missing;
        else if (approx_agg(f->agg))
            good = v->num == x->v[j] ||
                   fabs(v->num - x->v[j]) <= 1e-12 * fabs(x->v[j]);
        else
            good = v->num == x->v[j];
        if (!good && mismatches_shown++ < 10)
            fprintf(stderr, "%s: offset %lld key %s: %s = %.17g%s, oracle %.17g%s\n", pass,
                    (long long)e->offset, e->user, f->name, got_missing ? 0 : v->num,
                    got_missing ? " (missing)" : "", x->v[j], x->missing[j] ? " (missing)" : "");
        ok &= good;
    }
    return ok;
}

/* ---------------------------------------------------------------- changelog */

typedef struct rec {
    char *key, *val;
    size_t klen, vlen;
} rec_t;

typedef struct log {
    rec_t *r;
    size_t n, cap;
} log_t;

static void log_emit(void *opaque, const void *key, size_t klen, const void *val, size_t vlen)
{
    log_t *l = opaque;
    if (l->n == l->cap)
        l->r = ks_xrealloc(l->r, (l->cap = l->cap ? l->cap * 2 : 4096) * sizeof(rec_t));
    rec_t *r = &l->r[l->n++];
    r->key = ks_xmalloc(klen);
    memcpy(r->key, key, klen);
    r->val = ks_xmalloc(vlen);
    memcpy(r->val, val, vlen);
    r->klen = klen;
    r->vlen = vlen;
}

static void log_free(log_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->r[i].key);
        free(l->r[i].val);
    }
    free(l->r);
}

/* ---------------------------------------------------------------- tests */

static setup_t S;
static event_t *EV;
static expected_t *EX;
static size_t N;

static void test_oracle_stream(void)
{
    ks_value_t *row = ks_xcalloc(S.schema->n_fields, sizeof(*row));
    ks_wstore_t *st = ks_wstore_new(S.w, 0, 0);
    size_t bad = 0;
    for (size_t i = 0; i < N; i++) {
        bad += !check_event(&S, st, row, &EV[i], &EX[i], "stream");
        if (i % 500 == 499)
            ks_wstore_flush(st, EV[i].offset, NULL, NULL); /* the idle sweep */
    }
    CHECK_EQ_INT(bad, 0);
    const ks_wstore_stats_t *stats = ks_wstore_stats(st);
    fprintf(stderr, "  %zu events: %llu late, %llu keys held, %llu idle keys dropped, %.1f MB\n", N,
            (unsigned long long)stats->late, (unsigned long long)stats->keys,
            (unsigned long long)stats->evicted_idle, stats->bytes / 1e6);
    CHECK(stats->late > 0);          /* the stream exercises lateness ... */
    CHECK(stats->evicted_idle > 0);  /* ... and idle keys */
    ks_wstore_free(st);
    free(row);
}

/* Batches of random size; after each one the changelog records are kept.
 * Crashes at random: a committed offset is drawn between the last crash
 * point and the events processed (inside a batch too), the store is rebuilt
 * from the records, and processing resumes at the committed offset. */
static void test_crash_restore(void)
{
    ks_value_t *row = ks_xcalloc(S.schema->n_fields, sizeof(*row));
    ks_wstore_t *st = ks_wstore_new(S.w, 0, 1);
    log_t lg = {0};
    size_t bad = 0, i = 0, crashes = 0, committed = 0, replayed = 0;
    uint64_t rng = 12345;
    while (i < N) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t batch = 1 + (rng >> 33) % 700, end = i + batch < N ? i + batch : N;
        for (; i < end; i++)
            bad += !check_event(&S, st, row, &EV[i], &EX[i], "crash");
        ks_wstore_flush(st, EV[end - 1].offset, log_emit, &lg);
        if ((rng >> 20) % 48 == 0 && i < N) {
            /* crash: the committed offset is somewhere after the last one */
            size_t c = committed + (size_t)((rng >> 40) % (i - committed + 1));
            ks_wstore_free(st);
            st = ks_wstore_new(S.w, 0, 1);
            int64_t coff = c < N ? EV[c].offset : EV[N - 1].offset + 1;
            for (size_t r = 0; r < lg.n; r++)
                CHECK(ks_wstore_restore(st, lg.r[r].key, lg.r[r].klen, lg.r[r].val, lg.r[r].vlen,
                                        coff) >= 0);
            replayed += i - c;
            i = committed = c;
            crashes++;
        }
    }
    fprintf(stderr, "  %zu crashes, %zu events replayed, %zu changelog records\n", crashes,
            replayed, lg.n);
    CHECK(crashes >= 3);
    CHECK_EQ_INT(bad, 0);
    ks_wstore_free(st);
    log_free(&lg);
    free(row);
}

/* As test_crash_restore, with snapshots: every few batches one is written
 * (P = the next event's offset, L = the records logged so far minus a few
 * still "in flight"); a crash restores from the newest snapshot with P <= C
 * plus the records from its L, or from all records when there is none. */
static char snapdir[300];

static void test_snapshot_restore(void)
{
    ks_value_t *row = ks_xcalloc(S.schema->n_fields, sizeof(*row));
    ks_wstore_t *st = ks_wstore_new(S.w, 0, 1);
    log_t lg = {0};
    size_t bad = 0, i = 0, crashes = 0, from_snap = 0, committed = 0, n_snaps = 0;
    uint64_t rng = 777;
    char path[700], err[512];
    struct { int64_t pos; size_t l; } snaps[64];
    uint64_t fp = ks_windows_fingerprint(S.w, S.schema);
    while (i < N) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t batch = 1 + (rng >> 33) % 700, end = i + batch < N ? i + batch : N;
        for (; i < end; i++)
            bad += !check_event(&S, st, row, &EV[i], &EX[i], "snapshot");
        size_t before = lg.n;
        ks_wstore_flush(st, EV[end - 1].offset, log_emit, &lg);
        if ((rng >> 12) % 9 == 0 && i < N && n_snaps < 64) {
            /* this batch's records may land after L */
            size_t inflight = (size_t)((rng >> 44) % (lg.n - before + 1));
            ks_wsnap_header_t h = {.fingerprint = fp, .position = EV[i].offset,
                                   .changelog_end = (int64_t)(lg.n - inflight)};
            snprintf(h.topic, sizeof(h.topic), "t");
            snprintf(path, sizeof(path), "%s/s%zu.snap", snapdir, n_snaps);
            uint64_t bytes = 0;
            CHECK(ks_wsnap_write(st, path, &h, &bytes, err, sizeof(err)) == KS_OK);
            snaps[n_snaps].pos = h.position;
            snaps[n_snaps++].l = lg.n - inflight;
        }
        if ((rng >> 20) % 40 == 0 && i < N) {
            size_t c = committed + (size_t)((rng >> 40) % (i - committed + 1));
            int64_t coff = EV[c].offset;
            size_t from = 0;
            ks_wstore_free(st);
            st = ks_wstore_new(S.w, 0, 1);
            for (size_t k = n_snaps; k-- > 0;) {
                if (snaps[k].pos > coff)
                    continue; /* stale: ahead of the committed offset */
                ks_wsnap_reader_t *r = NULL;
                ks_wsnap_header_t h;
                uint64_t keys;
                snprintf(path, sizeof(path), "%s/s%zu.snap", snapdir, k);
                CHECK(ks_wsnap_open(path, &r, &h, err, sizeof(err)) == KS_OK);
                CHECK(h.fingerprint == fp && h.position == snaps[k].pos);
                CHECK(r && ks_wsnap_load(r, st, &keys, err, sizeof(err)) == KS_OK);
                ks_wsnap_close(r);
                from = snaps[k].l;
                from_snap++;
                break;
            }
            for (size_t r = from; r < lg.n; r++)
                CHECK(ks_wstore_restore(st, lg.r[r].key, lg.r[r].klen, lg.r[r].val, lg.r[r].vlen,
                                        coff) >= 0);
            i = committed = c;
            crashes++;
        }
    }
    fprintf(stderr, "  %zu snapshots, %zu crashes (%zu restored from a snapshot)\n", n_snaps,
            crashes, from_snap);
    CHECK(from_snap >= 2);
    CHECK_EQ_INT(bad, 0);

    /* damaged files: a flipped byte anywhere, or a cut, is refused */
    snprintf(path, sizeof(path), "%s/s0.snap", snapdir);
    char *data = NULL;
    size_t len = 0, refused = 0, tries = 0;
    CHECK(ks_read_file(path, &data, &len, err, sizeof(err)) == KS_OK);
    for (size_t k = 0; data && k < 40; k++, tries++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        char *v = ks_xmalloc(len);
        memcpy(v, data, len);
        size_t cut = len;
        if (k % 2)
            cut = (size_t)(rng >> 20) % len;
        else
            v[(rng >> 20) % len] ^= (char)(1 + (rng >> 50) % 255);
        snprintf(path, sizeof(path), "%s/bad.snap", snapdir);
        FILE *f = fopen(path, "wb");
        CHECK(f && fwrite(v, 1, cut, f) == cut);
        if (f)
            fclose(f);
        ks_wsnap_reader_t *r = NULL;
        ks_wsnap_header_t h;
        uint64_t keys;
        ks_wstore_t *s2 = ks_wstore_new(S.w, 0, 1);
        if (ks_wsnap_open(path, &r, &h, err, sizeof(err)) != KS_OK ||
            ks_wsnap_load(r, s2, &keys, err, sizeof(err)) != KS_OK)
            refused++;
        ks_wsnap_close(r);
        ks_wstore_free(s2);
        free(v);
    }
    CHECK_EQ_INT(refused, tries);
    free(data);
    ks_wstore_free(st);
    log_free(&lg);
    free(row);
}

/* Changelog records come from outside (a topic): truncated or corrupted
 * ones are refused or applied, never a crash (this also runs under ASan). */
static void test_corrupt_records(void)
{
    ks_value_t *row = ks_xcalloc(S.schema->n_fields, sizeof(*row));
    ks_wstore_t *st = ks_wstore_new(S.w, 0, 1);
    log_t lg = {0};
    char err[256];
    for (size_t i = 0; i < N && i < 5000; i++) {
        int64_t t;
        fill_row(&S, row, &EV[i]);
        if (ks_windows_event_time(S.w, row, 0, &t, err, sizeof(err)) == KS_OK)
            (void)ks_wstore_apply(st, row, t, EV[i].offset, err, sizeof(err));
        if (i % 200 == 199)
            ks_wstore_flush(st, EV[i].offset, log_emit, &lg);
    }
    ks_wstore_free(st);
    st = ks_wstore_new(S.w, 0, 1);
    uint64_t rng = 99;
    size_t refused = 0;
    for (size_t r = 0; r < lg.n * 4; r++) {
        rec_t *rec = &lg.r[r % lg.n];
        char *v = ks_xmalloc(rec->vlen + 1);
        memcpy(v, rec->val, rec->vlen);
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t len = rec->vlen;
        if ((rng >> 60) & 1)
            len = (size_t)(rng >> 20) % (rec->vlen + 1); /* truncated */
        else
            for (int k = 0; k < 3; k++) /* bytes flipped */
                v[(rng >> (8 * k)) % rec->vlen] ^= (char)(1 + (rng >> 50) % 255);
        int rc = ks_wstore_restore(st, rec->key, rec->klen, v, len, INT64_MAX);
        CHECK(rc == KS_OK || rc == 1 || rc == KS_EINVAL);
        refused += rc == KS_EINVAL;
        free(v);
    }
    CHECK(refused > 0);
    CHECK(ks_wstore_restore(st, "", 0, "x", 1, 10) == KS_EINVAL);
    ks_wstore_free(st);
    log_free(&lg);
    free(row);
}

static void test_budget(void)
{
    ks_value_t *row = ks_xcalloc(S.schema->n_fields, sizeof(*row));
    ks_wstore_t *st = ks_wstore_new(S.w, 200000, 0);
    char err[256];
    for (size_t i = 0; i < N && i < 20000; i++) {
        int64_t t;
        fill_row(&S, row, &EV[i]);
        if (ks_windows_event_time(S.w, row, 0, &t, err, sizeof(err)) == KS_OK)
            (void)ks_wstore_apply(st, row, t, EV[i].offset, err, sizeof(err));
        if (i % 100 == 99)
            ks_wstore_flush(st, EV[i].offset, NULL, NULL);
    }
    const ks_wstore_stats_t *stats = ks_wstore_stats(st);
    CHECK(stats->evicted_budget > 0);
    CHECK(stats->bytes <= 200000 + 100 * 4096);
    ks_wstore_free(st);
    free(row);
}

static void test_hll(void)
{
    ks_distinct_t d = {0};
    ks_distinct_union_t u = {0};
    int switched = 0;
    for (int i = 0; i < 50000; i++) {
        char s[32];
        int n = snprintf(s, sizeof(s), "merchant-%d", i);
        switched += ks_distinct_add(&d, ks_distinct_hash_bytes(s, (size_t)n), 10000);
        if (i == 9999) { /* exact up to max_distinct */
            ks_distinct_union_reset(&u);
            ks_distinct_union_add(&u, &d);
            CHECK_EQ_INT((long long)ks_distinct_union_count(&u, 10000), 10000);
        }
    }
    CHECK_EQ_INT(switched, 1);
    ks_distinct_union_reset(&u);
    ks_distinct_union_add(&u, &d);
    double est = ks_distinct_union_count(&u, 10000);
    CHECK_MSG(fabs(est - 50000) <= 0.02 * 50000, "estimate %.0f", est);
    ks_distinct_free(&d);
    ks_distinct_union_free(&u);
}

static void test_durations(void)
{
    int64_t ms;
    CHECK(ks_duration_parse("90s", &ms) == KS_OK && ms == 90000);
    CHECK(ks_duration_parse("1h", &ms) == KS_OK && ms == 3600000);
    CHECK(ks_duration_parse("250ms", &ms) == KS_OK && ms == 250);
    CHECK(ks_duration_parse("2d", &ms) == KS_OK && ms == 172800000);
    CHECK(ks_duration_parse("5m", &ms) == KS_OK && ms == 300000);
    CHECK(ks_duration_parse("0s", &ms) != KS_OK);
    CHECK(ks_duration_parse("1.5h", &ms) != KS_OK);
    CHECK(ks_duration_parse("h", &ms) != KS_OK);
    CHECK(ks_duration_parse("10", &ms) != KS_OK);
    CHECK(ks_duration_parse("99999999999999999999d", &ms) != KS_OK);
}

static void expect_config_error(const char *windows_and_features, const char *needle)
{
    char yaml[2048], err[512] = "";
    setup_t s;
    snprintf(yaml, sizeof(yaml),
             "input:\n  fields:\n    user_id: {type: string}\n    amount: {type: number}\n"
             "    ts: {type: timestamp}\n%s", windows_and_features);
    int rc = setup_from(&s, yaml, err, sizeof(err));
    CHECK_MSG(rc != KS_OK, "accepted: %s", windows_and_features);
    CHECK_CONTAINS(err, needle);
    setup_free(&s);
}

static void test_config_errors(void)
{
    const char *w = "windows: {time: ts}\n";
    char buf[1024];
#define BAD(feature, needle) do { snprintf(buf, sizeof(buf), "%sfeatures:\n  - %s\n", w, feature); \
    expect_config_error(buf, needle); } while (0)
    BAD("{name: a, window: {key: nope, agg: count, size: 1h}}", "unknown field 'nope'");
    BAD("{name: a, window: {key: user_id, agg: median, of: amount, size: 1h}}", "unknown aggregation");
    BAD("{name: a, window: {key: user_id, agg: avg, size: 1h}}", "needs 'of'");
    BAD("{name: a, window: {key: user_id, agg: count}}", "needs 'size'");
    BAD("{name: a, window: {key: user_id, agg: count, size: 1h, resolution: 7m}}", "divide");
    BAD("{name: a, window: {key: user_id, agg: count, size: 1x}}", "not a duration");
    BAD("{name: a, window: {key: user_id, agg: time_since_last, size: 1h}}", "no window size");
    BAD("{name: a, window: {key: user_id, agg: ewma, of: amount}}", "half_life");
    BAD("{name: a, window: {key: user_id, agg: sum, of: user_id, size: 1h}}", "number");
    BAD("{name: amount, window: {key: user_id, agg: count, size: 1h}}", "name of a field");
    BAD("{name: a, window: {key: user_id, agg: count, size: 1h, bogus: 1}}", "unknown key 'bogus'");
    BAD("{window: {key: user_id, agg: count, size: 1h}}", "needs a 'name'");
    BAD("{name: a, window: {key: user_id, agg: count, size: 61ms}}", "resolution");
#undef BAD
    expect_config_error("features:\n  - {name: a, window: {key: user_id, agg: count, size: 1h}}\n",
                        "windows: section");
    expect_config_error("windows: {time: ts}\nfeatures:\n  - {name: a, expr: amount}\n",
                        "no feature has a window");
    expect_config_error("windows: {time: user}\nfeatures:\n  - {name: a, window: {key: user_id, "
                        "agg: count, size: 1h}}\n", "unknown field");
    expect_config_error("windows: {time: ts, grace: soon}\nfeatures:\n  - {name: a, window: {key: "
                        "user_id, agg: count, size: 1h}}\n", "not a duration");
}

static void test_iso_time_and_missing_key(void)
{
    setup_t s;
    char err[256] = "";
    const char *yaml = "input:\n  fields:\n    user_id: {type: string}\n    ts: {type: timestamp}\n"
                       "windows: {time: ts}\nfeatures:\n"
                       "  - {name: n, window: {key: user_id, agg: count, size: 1h}}\n"
                       "  - {name: gap, window: {key: user_id, agg: time_since_last}}\n";
    CHECK(setup_from(&s, yaml, err, sizeof(err)) == KS_OK);
    ks_value_t row[4];
    int64_t t;
    ks_wstore_t *st = ks_wstore_new(s.w, 0, 0);
    memset(row, 0, sizeof(row));
    row[0] = (ks_value_t){.type = KS_VAL_STR, .len = 1, .str = "a"};
    row[1] = (ks_value_t){.type = KS_VAL_STR, .len = 24, .str = "2024-03-01T12:00:00.250Z"};
    CHECK(ks_windows_event_time(s.w, row, 0, &t, err, sizeof(err)) == KS_OK);
    CHECK_EQ_INT(t, 1709294400250LL);
    CHECK(ks_wstore_apply(st, row, t, 0, err, sizeof(err)) == KS_OK);
    CHECK(row[2].type == KS_VAL_NUM && row[2].num == 1);
    CHECK(row[3].type == KS_VAL_MISSING); /* first event of the key */
    row[1] = (ks_value_t){.type = KS_VAL_STR, .len = 20, .str = "2024-03-01T12:00:10Z"};
    CHECK(ks_windows_event_time(s.w, row, 0, &t, err, sizeof(err)) == KS_OK);
    CHECK(ks_wstore_apply(st, row, t, 1, err, sizeof(err)) == KS_OK);
    CHECK(row[2].num == 2);
    CHECK(row[3].type == KS_VAL_NUM && row[3].num == 9.75);
    row[0].type = KS_VAL_NULL;
    CHECK(ks_wstore_apply(st, row, t, 2, err, sizeof(err)) != KS_OK);
    CHECK_CONTAINS(err, "null");
    row[1].type = KS_VAL_MISSING;
    CHECK(ks_windows_event_time(s.w, row, 0, &t, err, sizeof(err)) != KS_OK);
    ks_wstore_free(st);
    setup_free(&s);
}

int main(void)
{
    char cfg[] = "/tmp/kscore-windows-XXXXXX", path[600], err[512] = "";
    const char *n_env = getenv("KSCORE_WINDOWS_EVENTS"), *k_env = getenv("KSCORE_WINDOWS_KEYS");
    long n = n_env ? atol(n_env) : 200000, keys = k_env ? atol(k_env) : 10000;

    find_python();
    RUN(test_durations);
    RUN(test_config_errors);
    RUN(test_iso_time_and_missing_key);
    RUN(test_hll);

    CHECK(mkdtemp(cfg) != NULL);
    CHECK(run("%s tests/windows/oracle.py config > %s/pipeline.yaml", python, cfg) == 0);
    CHECK(run("%s tests/windows/oracle.py gen %ld %ld 7 %s/events.tsv", python, n, keys, cfg) == 0);
    CHECK(run("%s tests/windows/oracle.py expect %s/events.tsv %s/expected.tsv", python, cfg,
              cfg) == 0);
    char *yaml = NULL;
    size_t len;
    snprintf(path, sizeof(path), "%s/pipeline.yaml", cfg);
    CHECK(ks_read_file(path, &yaml, &len, err, sizeof(err)) == KS_OK);
    if (yaml && setup_from(&S, yaml, err, sizeof(err)) == KS_OK) {
        snprintf(path, sizeof(path), "%s/events.tsv", cfg);
        N = read_events(path, &EV);
        snprintf(path, sizeof(path), "%s/expected.tsv", cfg);
        CHECK_EQ_INT(read_expected(path, S.w->n_feats, &EX), N);
        CHECK(N == (size_t)n);
        RUN(test_oracle_stream);
        RUN(test_crash_restore);
        snprintf(snapdir, sizeof(snapdir), "%s/snapshots", cfg);
        RUN(test_snapshot_restore);
        RUN(test_budget);
        RUN(test_corrupt_records);
        setup_free(&S);
    } else {
        CHECK_MSG(0, "oracle config: %s", err);
    }
    free(yaml);
    free(EV);
    free(EX);
    run("rm -rf %s", cfg);
    return test_summary();
}
