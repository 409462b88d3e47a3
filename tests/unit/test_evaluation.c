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
 */
#include "test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/common.h"
#include "base/json.h"
#include "engine/evalstore.h"
#include "engine/evaluation.h"

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

int main(void)
{
    RUN(test_oracle);
    return test_summary();
}
