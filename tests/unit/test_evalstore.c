/*
 * test_evalstore.c - the prediction store of online evaluation
 * (engine/evalstore.h): joins, duplicates, late and unknown labels, expiry,
 * the bound, ids with spaces and newlines, and a restart (close, reopen:
 * every waiting prediction is still there, settled ids are still
 * remembered; a torn last line is skipped).
 */
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/common.h"
#include "engine/evalstore.h"

#define DAY (86400LL * 1000)

static ks_eval_pred_t pred(double score, int64_t t, const char *version)
{
    ks_eval_pred_t p = {.score = score, .time_ms = t};
    snprintf(p.version, sizeof(p.version), "%s", version);
    snprintf(p.variant, sizeof(p.variant), "primary");
    return p;
}

static void count_expired(void *ctx, const ks_eval_pred_t *p)
{
    (void)p;
    (*(int *)ctx)++;
}

static void test_store(void)
{
    char dir[] = "/tmp/ks_evalstore_XXXXXX", path[300], err[512];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/eval.log", dir);
    int64_t t0 = 1800000000000;
    ks_evalstore_t *s = NULL;
    ks_eval_pred_t got;
    CHECK_EQ_INT(ks_evalstore_open(path, 1000, 7 * DAY, t0, &s, err, sizeof(err)), 0);
    char id[32];
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof(id), "e%d", i);
        ks_eval_pred_t p = pred(i / 100.0, t0 + i, "v1");
        CHECK_EQ_INT(ks_evalstore_put(s, id, strlen(id), &p), 0);
    }
    const char *odd = "id with space\nand % newline";
    ks_eval_pred_t po = pred(0.25, t0, "v 2");
    CHECK_EQ_INT(ks_evalstore_put(s, odd, strlen(odd), &po), 0);
    CHECK_EQ_INT(ks_evalstore_label(s, "e7", 2, t0 + DAY, &got), KS_EVAL_JOINED);
    CHECK_NEAR(got.score, 0.07, 0);
    CHECK_EQ_STR(got.version, "v1");
    CHECK_EQ_INT(ks_evalstore_label(s, "e7", 2, t0 + DAY, &got), KS_EVAL_DUPLICATE);
    CHECK_EQ_INT(ks_evalstore_label(s, "nobody", 6, t0 + DAY, &got), KS_EVAL_UNKNOWN);
    ks_evalstore_close(s);

    /* a torn line at the end, as a crash mid-write leaves it */
    FILE *f = fopen(path, "a");
    fputs("P 1800000000000 0.5 v1 pri", f);
    fclose(f);
    CHECK_EQ_INT(ks_evalstore_open(path, 1000, 7 * DAY, t0 + DAY, &s, err, sizeof(err)), 0);
    ks_evalstore_stats_t st;
    ks_evalstore_stats(s, &st);
    CHECK_EQ_INT(st.waiting, 100);   /* 99 + the odd id */
    CHECK_EQ_INT(st.remembered, 1);  /* e7 */
    CHECK_EQ_INT(ks_evalstore_label(s, "e7", 2, t0 + DAY, &got), KS_EVAL_DUPLICATE);
    CHECK_EQ_INT(ks_evalstore_label(s, odd, strlen(odd), t0 + DAY, &got), KS_EVAL_JOINED);
    CHECK_EQ_STR(got.version, "v 2");
    CHECK_EQ_INT(ks_evalstore_label(s, "e8", 2, t0 + DAY, &got), KS_EVAL_JOINED);
    CHECK_NEAR(got.score, 0.08, 0);

    /* 7 days after e0..e49 were scored: the 48 still waiting expire (e7 and
     * e8 were joined); their labels are late */
    int expired = 0;
    CHECK_EQ_INT(ks_evalstore_expire(s, t0 + 7 * DAY + 50, count_expired, &expired), 48);
    CHECK_EQ_INT(expired, 48);
    CHECK_EQ_INT(ks_evalstore_label(s, "e9", 2, t0 + DAY, &got), KS_EVAL_LATE);
    CHECK_EQ_INT(ks_evalstore_label(s, "e60", 3, t0 + DAY, &got), KS_EVAL_JOINED);
    /* past max_wait before expire ran: late all the same */
    CHECK_EQ_INT(ks_evalstore_label(s, "e55", 3, t0 + 8 * DAY, &got), KS_EVAL_LATE);
    CHECK_NEAR(got.score, 0.55, 0);
    /* 15 days: ids settled for more than 2 x max_wait are forgotten; the 49
     * still waiting (e50..e99 but e55, e60) expire now and are remembered */
    CHECK_EQ_INT(ks_evalstore_expire(s, t0 + 15 * DAY, NULL, NULL), 48);
    CHECK_EQ_INT(ks_evalstore_label(s, "e9", 2, t0 + DAY, &got), KS_EVAL_UNKNOWN);
    ks_evalstore_stats(s, &st);
    CHECK_EQ_INT(st.waiting, 0);
    CHECK_EQ_INT(st.remembered, 48);   /* e55 was forgotten with the rest */
    ks_evalstore_close(s);

    /* the bound */
    unlink(path);
    CHECK_EQ_INT(ks_evalstore_open(path, 10, DAY, t0, &s, err, sizeof(err)), 0);
    int refused = 0;
    for (int i = 0; i < 15; i++) {
        snprintf(id, sizeof(id), "b%d", i);
        ks_eval_pred_t p = pred(0.5, t0, "v1");
        refused += ks_evalstore_put(s, id, strlen(id), &p) == KS_ESTATE;
    }
    CHECK_EQ_INT(refused, 5);
    ks_evalstore_stats(s, &st);
    CHECK_EQ_INT(st.full, 5);
    ks_evalstore_close(s);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    RUN(test_store);
    return test_summary();
}
