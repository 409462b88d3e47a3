/*
 * test_evaluation.c - online evaluation end to end below Kafka: 100,000
 * predictions of two model versions go into the store (engine/evalstore.h)
 * as they are made; labels arrive out of order, a day or so later, some
 * after max_wait (7 days), some twice, some for ids never predicted; the
 * store is closed and reopened halfway (a restart) and must lose no waiting
 * prediction; the evaluator's AUC, log loss and Brier per version equal
 * scikit-learn's on the same joined pairs to 1e-9, and the outcome counts
 * equal the oracle's.
 *
 * Fixtures: tests/quality/make_eval_fixtures.py (not committed: ~5 MB);
 * generated on first run with the project venv (scripts/python-env).
 *
 * A short window (15 minutes, slices of a minute): 40 minutes of joins and
 * unlabelled expiries for two variants, checked at 7 times as pairs leave
 * the window: per group the pair count, labelled share, calibration by
 * decile (count, mean score, positive rate) and AUC / log loss / Brier /
 * precision / recall equal an oracle the test computes from the events it
 * keeps (the window: the 15 one-minute slices ending with now's). The 16
 * group limit: a 17th (version, variant) is counted untracked, not
 * evaluated. A model that is not a binary classifier is refused with
 * evaluation: configured.
 */
#include "test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/common.h"
#include "base/json.h"
#include "base/slices.h"
#include "engine/evalstore.h"
#include "engine/evaluation.h"
#include "kscore/kscore.h"

#define FIX "tests/quality/fixtures/eval/"
#define DAY (86400LL * 1000)

typedef struct pr {
    char id[32], version[8];
    int64_t t;
    double score;
} pr_t;

typedef struct lb {
    char id[32];
    int64_t t;
    int y;
} lb_t;

static void on_expire(void *ctx, const ks_eval_pred_t *p)
{
    (void)ctx;
    (void)p;
}

static void test_oracle(void)
{
    if (access(FIX "expected.json", R_OK) != 0) {
        fprintf(stderr, "evaluation fixtures missing: generating them\n");
        CHECK(system("scripts/python-env >&2 && .venv/bin/python tests/quality/make_eval_fixtures.py "
                     FIX " >/dev/null") == 0);
    }
    size_t np = 0, nl = 0;
    pr_t *P = malloc(100000 * sizeof(pr_t));
    lb_t *L = malloc(200000 * sizeof(lb_t));
    FILE *f = fopen(FIX "predictions.csv", "r");
    CHECK(f != NULL);
    if (!f)
        return;
    while (np < 100000 && fscanf(f, "%31[^,],%lld,%lf,%7s\n", P[np].id, (long long *)&P[np].t,
                                 &P[np].score, P[np].version) == 4)
        np++;
    fclose(f);
    f = fopen(FIX "labels.csv", "r");
    while (f && nl < 200000 && fscanf(f, "%lld,%31[^,],%d\n", (long long *)&L[nl].t, L[nl].id,
                                      &L[nl].y) == 3)
        nl++;
    if (f)
        fclose(f);
    CHECK_EQ_INT(np, 100000);
    CHECK(nl > 90000);

    char dir[] = "/tmp/ks_eval_XXXXXX", path[300], err[512];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/eval.log", dir);
    ks_evalstore_t *s = NULL;
    CHECK_EQ_INT(ks_evalstore_open(path, 200000, 7 * DAY, P[0].t, &s, err, sizeof(err)), 0);
    ks_evaluator_t *ev = ks_evaluator_new(365 * DAY, 0.5, 0);
    size_t i = 0, j = 0, restarted = 0;
    int64_t last_expire = 0;
    while (i < np || j < nl) {
        int take_pred = i < np && (j >= nl || P[i].t <= L[j].t);
        int64_t now = take_pred ? P[i].t : L[j].t;
        if (now - last_expire > 3600 * 1000) { /* the hourly sweep */
            ks_evalstore_expire(s, now, on_expire, NULL);
            last_expire = now;
        }
        if (take_pred) {
            ks_eval_pred_t p = {.score = P[i].score, .time_ms = P[i].t};
            snprintf(p.version, sizeof(p.version), "%s", P[i].version);
            snprintf(p.variant, sizeof(p.variant), "primary");
            CHECK(ks_evalstore_put(s, P[i].id, strlen(P[i].id), &p) == 0);
            i++;
            continue;
        }
        ks_eval_pred_t p;
        ks_eval_outcome_t o = ks_evalstore_label(s, L[j].id, strlen(L[j].id), now, &p);
        ks_evaluator_outcome(ev, o);
        if (o == KS_EVAL_JOINED)
            ks_evaluator_add(ev, &p, L[j].y, now);
        j++;
        if (!restarted && j == nl / 2) { /* a restart: close, reopen */
            ks_evalstore_stats_t before, after;
            ks_evalstore_stats(s, &before);
            ks_evalstore_close(s);
            CHECK_EQ_INT(ks_evalstore_open(path, 200000, 7 * DAY, now, &s, err, sizeof(err)), 0);
            ks_evalstore_stats(s, &after);
            CHECK_MSG(after.waiting == before.waiting && after.remembered == before.remembered,
                      "restart: %llu waiting / %llu remembered before, %llu / %llu after",
                      (unsigned long long)before.waiting, (unsigned long long)before.remembered,
                      (unsigned long long)after.waiting, (unsigned long long)after.remembered);
            restarted = 1;
        }
    }
    CHECK(restarted);

    char *buf;
    size_t len;
    ks_json_t *exp = NULL;
    CHECK_EQ_INT(ks_read_file(FIX "expected.json", &buf, &len, err, sizeof(err)), 0);
    CHECK_EQ_INT(ks_json_parse(buf, len, &exp, err, sizeof(err)), 0);
    free(buf);
    const ks_json_t *c = ks_json_get(exp, "counts");
    CHECK_EQ_INT(ks_evaluator_outcomes(ev, KS_EVAL_JOINED), ks_json_num(ks_json_get(c, "joined"), -1));
    CHECK_EQ_INT(ks_evaluator_outcomes(ev, KS_EVAL_UNKNOWN), ks_json_num(ks_json_get(c, "unknown"), -1));
    CHECK_EQ_INT(ks_evaluator_outcomes(ev, KS_EVAL_DUPLICATE),
                 ks_json_num(ks_json_get(c, "duplicate"), -1));
    CHECK_EQ_INT(ks_evaluator_outcomes(ev, KS_EVAL_LATE), ks_json_num(ks_json_get(c, "late"), -1));
    ks_eval_group_status_t g[4];
    size_t ng = ks_evaluator_compute(ev, L[nl - 1].t, g, 4);
    CHECK_EQ_INT(ng, 2);
    for (size_t k = 0; k < ng && k < 4; k++) {
        const ks_json_t *v = ks_json_get(ks_json_get(exp, "versions"), g[k].version);
        CHECK(v != NULL);
        CHECK_EQ_INT(g[k].m.n, ks_json_num(ks_json_get(v, "n"), -1));
        CHECK_NEAR(g[k].m.auc, ks_json_num(ks_json_get(v, "auc"), NAN), 1e-9);
        CHECK_NEAR(g[k].m.log_loss, ks_json_num(ks_json_get(v, "log_loss"), NAN), 1e-9);
        CHECK_NEAR(g[k].m.brier, ks_json_num(ks_json_get(v, "brier"), NAN), 1e-9);
        fprintf(stderr, "     %s: %zu pairs, AUC %.12f, log loss %.12f, Brier %.12f\n",
                g[k].version, g[k].m.n, g[k].m.auc, g[k].m.log_loss, g[k].m.brier);
    }
    ks_json_free(exp);
    ks_evaluator_free(ev);
    ks_evalstore_close(s);
    unlink(path);
    rmdir(dir);
    free(P);
    free(L);
}

/* ---- a short window against the test's own oracle ----------------------- */

typedef struct wev {
    int64_t t;
    int group;      /* 0: variant a, 1: variant b */
    int expired;    /* an unlabelled expiry, else a joined pair */
    double score;
    int y;
} wev_t;

static uint64_t rng_state = 88172645463325252ULL;
static double rnd(void) /* xorshift64, [0, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

/* The oracle's metrics of group g over the window ending at now. */
static void oracle(const wev_t *E, size_t n, int g, int64_t now, int64_t slice_ms,
                   ks_eval_group_status_t *o)
{
    memset(o, 0, sizeof(*o));
    double ll = 0, br = 0, pos = 0, neg = 0, conc = 0, tp = 0, fp = 0, fn = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t id = E[i].t / slice_ms, now_id = now / slice_ms;
        if (E[i].group != g || E[i].t > now || id <= now_id - KS_SLICES)
            continue;
        if (E[i].expired) {
            o->expired++;
            continue;
        }
        double s = E[i].score;
        int b = s >= 1 ? 9 : (int)(s * 10);
        o->cal_count[b]++;
        o->cal_mean[b] += s;
        o->cal_rate[b] += E[i].y;
        double c = fmin(fmax(s, 2.220446049250313e-16), 1 - 2.220446049250313e-16);
        ll -= E[i].y ? log(c) : log(1 - c);
        br += (s - E[i].y) * (s - E[i].y);
        tp += s >= 0.5 && E[i].y;
        fp += s >= 0.5 && !E[i].y;
        fn += s < 0.5 && E[i].y;
        E[i].y ? pos++ : neg++;
        for (size_t j = 0; j < i; j++) { /* Mann-Whitney: every (positive, negative) pair */
            int64_t jd = E[j].t / slice_ms;
            if (E[j].group != g || E[j].expired || jd <= now_id - KS_SLICES || E[j].y == E[i].y)
                continue;
            double sp = E[i].y ? s : E[j].score, sn = E[i].y ? E[j].score : s;
            conc += sp > sn ? 1 : sp == sn ? 0.5 : 0;
        }
        k++;
    }
    o->m.n = k;
    o->m.auc = pos && neg ? conc / (pos * neg) : NAN;
    o->m.log_loss = k ? ll / (double)k : NAN;
    o->m.brier = k ? br / (double)k : NAN;
    o->m.precision = tp + fp ? tp / (tp + fp) : 0;
    o->m.recall = tp + fn ? tp / (tp + fn) : 0;
    o->labelled_ratio = k + o->expired ? (double)k / (double)(k + o->expired) : NAN;
    for (int b = 0; b < KS_EVAL_DECILES; b++) {
        o->cal_mean[b] = o->cal_count[b] ? o->cal_mean[b] / (double)o->cal_count[b] : NAN;
        o->cal_rate[b] = o->cal_count[b] ? o->cal_rate[b] / (double)o->cal_count[b] : NAN;
    }
}

static int same(double a, double b, double tol)
{
    return (isnan(a) && isnan(b)) || fabs(a - b) <= tol;
}

static void test_short_window(void)
{
    const int64_t window = 15 * 60 * 1000, slice = window / KS_SLICES, t0 = 1800000000000;
    const char *variant[2] = {"a", "b"};
    size_t n = 0, cap = 40 * 60 / 3 + 1;
    wev_t *E = calloc(cap, sizeof(*E));
    ks_evaluator_t *ev = ks_evaluator_new(window, 0.5, 0);
    int64_t checks[] = {10, 14, 15, 16, 25, 39, 55}; /* minutes after t0 */
    size_t c = 0, compared = 0;
    for (int64_t t = t0; t <= t0 + 56 * 60000; t += 3000) {
        while (c < KS_ARRAY_LEN(checks) && t > t0 + checks[c] * 60000) {
            int64_t now = t0 + checks[c++] * 60000;
            ks_eval_group_status_t got[KS_EVAL_GROUPS];
            size_t ng = ks_evaluator_compute(ev, now, got, KS_EVAL_GROUPS);
            CHECK_EQ_INT(ng, 2);
            for (int g = 0; g < 2 && g < (int)ng; g++) {
                ks_eval_group_status_t want;
                oracle(E, n, g, now, slice, &want);
                CHECK_EQ_STR(got[g].variant, variant[g]);
                CHECK_MSG(got[g].m.n == want.m.n && got[g].expired == want.expired,
                          "minute %lld group %d: %zu pairs / %llu expired, oracle %zu / %llu",
                          (long long)checks[c - 1], g, got[g].m.n,
                          (unsigned long long)got[g].expired, want.m.n,
                          (unsigned long long)want.expired);
                CHECK(same(got[g].labelled_ratio, want.labelled_ratio, 1e-12));
                CHECK(same(got[g].m.auc, want.m.auc, 1e-9));
                CHECK(same(got[g].m.log_loss, want.m.log_loss, 1e-9));
                CHECK(same(got[g].m.brier, want.m.brier, 1e-9));
                if (want.m.n) {
                    CHECK(same(got[g].m.precision, want.m.precision, 1e-12));
                    CHECK(same(got[g].m.recall, want.m.recall, 1e-12));
                }
                for (int b = 0; b < KS_EVAL_DECILES; b++) {
                    CHECK_EQ_INT(got[g].cal_count[b], want.cal_count[b]);
                    CHECK(same(got[g].cal_mean[b], want.cal_mean[b], 1e-12));
                    CHECK(same(got[g].cal_rate[b], want.cal_rate[b], 1e-12));
                }
                compared += want.m.n;
                if (checks[c - 1] == 55)
                    CHECK_EQ_INT(want.m.n, 0); /* everything has left the window */
            }
        }
        if (t > t0 + 40 * 60000 || n == cap)
            continue; /* the last 15 minutes: nothing new, the window empties */
        wev_t *e = &E[n++];
        e->t = t;
        e->group = rnd() < 0.4;
        e->expired = rnd() < 0.15 + 0.1 * e->group;
        /* scores on decile edges too (0.1 belongs to decile 1), ties for AUC */
        e->score = rnd() < 0.2 ? (double)(int)(rnd() * 11) / 10 : round(rnd() * 1000) / 1000;
        e->y = rnd() < e->score;
        ks_eval_pred_t p = {.score = e->score, .time_ms = t - 60000};
        snprintf(p.version, sizeof(p.version), "v1");
        snprintf(p.variant, sizeof(p.variant), "%s", variant[e->group]);
        if (e->expired)
            ks_evaluator_expired(ev, &p, t);
        else
            ks_evaluator_add(ev, &p, e->y, t);
    }
    CHECK_EQ_INT(c, KS_ARRAY_LEN(checks));
    CHECK(compared > 1000);
    fprintf(stderr, "     %zu events, %zu pair checks at %zu times\n", n, compared, c);
    ks_evaluator_free(ev);
    free(E);
}

static void test_group_limit(void)
{
    ks_evaluator_t *ev = ks_evaluator_new(60000, 0.5, 0);
    int64_t t = 1800000000000;
    for (int v = 0; v < KS_EVAL_GROUPS + 2; v++) {
        ks_eval_pred_t p = {.score = 0.7, .time_ms = t};
        snprintf(p.version, sizeof(p.version), "v%d", v);
        snprintf(p.variant, sizeof(p.variant), "champion");
        ks_evaluator_add(ev, &p, 1, t);
        ks_evaluator_add(ev, &p, 0, t);
        ks_evaluator_expired(ev, &p, t);
    }
    ks_eval_group_status_t g[KS_EVAL_GROUPS];
    CHECK_EQ_INT(ks_evaluator_compute(ev, t, g, KS_EVAL_GROUPS), KS_EVAL_GROUPS);
    CHECK_EQ_STR(g[KS_EVAL_GROUPS - 1].version, "v15");
    CHECK_EQ_INT(g[KS_EVAL_GROUPS - 1].m.n, 2);
    CHECK_EQ_INT(ks_evaluator_untracked(ev), 2 * 3); /* v16 and v17: 2 pairs, 1 expiry each */
    ks_evaluator_free(ev);
}

static void test_needs_binary(void)
{
    char dir[] = "/tmp/ks_eval_XXXXXX", path[300], yaml[300], set[400], err[1024], *m, *y;
    size_t len;
    CHECK(mkdtemp(dir) != NULL);
    /* the basic example's model as a regressor, and its config without
     * output.threshold (refused for a regressor before evaluation is) */
    CHECK_EQ_INT(ks_read_file("examples/basic/model.json", &m, &len, err, sizeof(err)), 0);
    CHECK_EQ_INT(ks_read_file("examples/basic/pipeline.yaml", &y, &len, err, sizeof(err)), 0);
    char *at = strstr(m, "\"task\":\"classification\""), *th = strstr(y, "  threshold: 0.5\n");
    CHECK(at != NULL && th != NULL);
    if (!at || !th)
        return;
    snprintf(path, sizeof(path), "%s/regr.json", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "%.*s\"task\":\"regression\"%s", (int)(at - m), m,
            at + strlen("\"task\":\"classification\""));
    fclose(f);
    snprintf(yaml, sizeof(yaml), "%s/pipeline.yaml", dir);
    f = fopen(yaml, "w");
    fprintf(f, "%.*s%s", (int)(th - y), y, th + strlen("  threshold: 0.5\n"));
    fclose(f);
    free(m);
    free(y);
    snprintf(set, sizeof(set), "model.path=%s", path);
    const char *sets[] = {"evaluation.labels_topic=labels", set};
    ks_config_t *cfg = NULL;
    ks_pipeline_t *p = NULL;
    CHECK_MSG(ks_config_load(yaml, sets, 2, &cfg, err, sizeof(err)) == 0, "%s", err);
    CHECK(cfg && ks_pipeline_new(cfg, &p, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, "is a regressor, not a binary classifier");
    ks_pipeline_free(p);
    ks_config_free(cfg);
    /* without evaluation: the same config and model load */
    CHECK_MSG(ks_config_load(yaml, sets + 1, 1, &cfg, err, sizeof(err)) == 0, "%s", err);
    CHECK_MSG(cfg && ks_pipeline_new(cfg, &p, err, sizeof(err)) == 0, "%s", err);
    ks_pipeline_free(p);
    ks_config_free(cfg);
    unlink(path);
    unlink(yaml);
    rmdir(dir);
}

int main(void)
{
    RUN(test_short_window);
    RUN(test_group_limit);
    RUN(test_needs_binary);
    RUN(test_oracle);
    return test_summary();
}
