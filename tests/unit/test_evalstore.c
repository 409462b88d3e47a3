/*
 * test_evalstore.c - the prediction store of online evaluation
 * (engine/evalstore.h): joins, duplicates, late and unknown labels, expiry,
 * the bound, ids with spaces and newlines, and a restart (close, reopen:
 * every waiting prediction is still there, settled ids are still
 * remembered; a torn last line is skipped).
 *
 * One opener: a second start on the same file is refused (KS_EINVAL, the
 * file and our pid named) until the first closes; ks_evalstore_check
 * creates nothing. Compaction while running: a writer thread puts 100,000
 * predictions while the test joins some, churns settled ids out and syncs;
 * at least one compaction overlaps the writer, the log stays under twice
 * the live entries' lines, and a reopen finds every waiting prediction
 * (score bit for bit) and every joined id, against the test's own record.
 * A crash-torn last line that still parses as a record is not replayed,
 * and appends after it are not glued to it.
 *
 * The labels topic's positions: set in memory, written by a sync after its
 * fdatasync (after the joins they stand for, in the file), read back after
 * close/reopen, kept (one line each) by a compaction while running and at
 * start, forgotten when another topic's are set; a crash (the file as a
 * sync left it, copied) resumes at the last synced position, where a label
 * joined before it is a duplicate; a torn or malformed position line is
 * skipped.
 */
#include "test.h"

#include <pthread.h>
#include <stdatomic.h>
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

static void test_one_opener(void)
{
    char dir[] = "/tmp/ks_evalstore_XXXXXX", path[300], err[512], pid[32];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/eval.log", dir);
    /* checking touches nothing */
    CHECK_EQ_INT(ks_evalstore_check(path, err, sizeof(err)), 0);
    CHECK(access(path, F_OK) != 0);
    CHECK(ks_evalstore_check(dir, err, sizeof(err)) == KS_EINVAL);
    CHECK_CONTAINS(err, "not a regular file");
    char nodir[400];
    snprintf(nodir, sizeof(nodir), "%s/no/such/dir/eval.log", dir);
    CHECK(ks_evalstore_check(nodir, err, sizeof(err)) == KS_EINVAL);
    CHECK_CONTAINS(err, "cannot be created");

    ks_evalstore_t *a = NULL, *b = NULL;
    CHECK_EQ_INT(ks_evalstore_open(path, 100, DAY, 1800000000000, &a, err, sizeof(err)), 0);
    CHECK_EQ_INT(ks_evalstore_open(path, 100, DAY, 1800000000000, &b, err, sizeof(err)),
                 KS_EINVAL);
    CHECK(b == NULL);
    CHECK_CONTAINS(err, path);
    CHECK_CONTAINS(err, "in use by another process");
    snprintf(pid, sizeof(pid), "pid %ld ", (long)getpid());
    CHECK_CONTAINS(err, pid);
    /* nothing was rewritten by the refused opener: a's appends still land */
    ks_eval_pred_t p = pred(0.5, 1800000000000, "v1");
    CHECK_EQ_INT(ks_evalstore_put(a, "x1", 2, &p), 0);
    ks_evalstore_close(a);
    CHECK_EQ_INT(ks_evalstore_open(path, 100, DAY, 1800000000000, &b, err, sizeof(err)), 0);
    ks_evalstore_stats_t st;
    ks_evalstore_stats(b, &st);
    CHECK_EQ_INT(st.waiting, 1);
    ks_evalstore_close(b);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

enum { N_W = 100000 };

typedef struct writer {
    ks_evalstore_t *s;
    int64_t t;
    atomic_int done;   /* predictions put so far */
    int failed;        /* puts refused (the CHECK macros are not thread-safe) */
} writer_t;

static void *write_preds(void *arg)
{
    writer_t *w = arg;
    char id[32];
    for (int i = 0; i < N_W; i++) {
        snprintf(id, sizeof(id), "w%d", i);
        ks_eval_pred_t p = pred((double)i / N_W, w->t, "v1");
        w->failed += ks_evalstore_put(w->s, id, strlen(id), &p) != 0;
        atomic_store(&w->done, i + 1);
        if (i % 100 == 99)
            usleep(1000); /* a stream, not a burst: compactions overlap it */
    }
    return NULL;
}

static void test_compaction_running(void)
{
    char dir[] = "/tmp/ks_evalstore_XXXXXX", path[300], err[512], id[48];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/eval.log", dir);
    const int64_t wait = 1000, t = 1800000000000;
    writer_t w = {.t = t};
    CHECK_EQ_INT(ks_evalstore_open(path, 400000, wait, t, &w.s, err, sizeof(err)), 0);
    uint8_t *joined = calloc(N_W, 1);
    int n_joined = 0, overlapped = 0, round = 0;
    pthread_t th;
    CHECK(pthread_create(&th, NULL, write_preds, &w) == 0);
    for (int next = 0; atomic_load(&w.done) < N_W; round++) {
        /* churn: 20,000 ids scored long ago expire, then are forgotten:
         * dead lines in the log */
        for (int k = 0; k < 20000; k++) {
            snprintf(id, sizeof(id), "c%d_%d", round, k);
            ks_eval_pred_t p = pred(0.5, t - 10 * wait, "v1");
            CHECK_EQ_INT(ks_evalstore_put(w.s, id, strlen(id), &p), 0);
        }
        CHECK_EQ_INT(ks_evalstore_expire(w.s, t, NULL, NULL), 20000);
        CHECK_EQ_INT(ks_evalstore_expire(w.s, t, NULL, NULL), 0);
        /* join every 7th prediction written so far */
        for (int done = atomic_load(&w.done); next < done; next += 7) {
            ks_eval_pred_t got;
            snprintf(id, sizeof(id), "w%d", next);
            CHECK_EQ_INT(ks_evalstore_label(w.s, id, strlen(id), t, &got), KS_EVAL_JOINED);
            joined[next] = 1;
            n_joined++;
        }
        ks_evalstore_stats_t before, after;
        ks_evalstore_stats(w.s, &before);
        int done_before = atomic_load(&w.done);
        CHECK_EQ_INT(ks_evalstore_sync(w.s), 0);
        ks_evalstore_stats(w.s, &after);
        overlapped += after.compactions > before.compactions && atomic_load(&w.done) > done_before;
    }
    pthread_join(th, NULL);
    CHECK_EQ_INT(w.failed, 0);
    CHECK_EQ_INT(ks_evalstore_sync(w.s), 0);
    ks_evalstore_stats_t st;
    ks_evalstore_stats(w.s, &st);
    fprintf(stderr, "  %d rounds, %llu compactions (%d while the writer wrote), %llu log lines "
            "for %llu waiting and %llu remembered\n", round,
            (unsigned long long)st.compactions, overlapped, (unsigned long long)st.log_lines,
            (unsigned long long)st.waiting, (unsigned long long)st.remembered);
    CHECK(st.compactions >= 1);
    CHECK(overlapped >= 1);
    CHECK_EQ_INT(st.waiting, N_W - n_joined);
    CHECK_EQ_INT(st.remembered, n_joined);
    CHECK(st.log_lines <= 2 * (st.waiting + 2 * st.remembered));
    /* the file holds exactly the lines counted */
    FILE *f = fopen(path, "r");
    long lines = 0;
    for (int c; f && (c = fgetc(f)) != EOF;)
        lines += c == '\n';
    if (f)
        fclose(f);
    CHECK_EQ_INT(lines, (long long)st.log_lines);
    ks_evalstore_close(w.s);

    /* a restart finds every prediction as the test recorded it */
    ks_evalstore_t *s = NULL;
    CHECK_EQ_INT(ks_evalstore_open(path, 400000, wait, t, &s, err, sizeof(err)), 0);
    ks_evalstore_stats(s, &st);
    CHECK_EQ_INT(st.waiting, N_W - n_joined);
    CHECK_EQ_INT(st.remembered, n_joined);
    int wrong = 0;
    for (int i = 0; i < N_W; i++) {
        ks_eval_pred_t got;
        snprintf(id, sizeof(id), "w%d", i);
        ks_eval_outcome_t o = ks_evalstore_label(s, id, strlen(id), t, &got);
        wrong += joined[i] ? o != KS_EVAL_DUPLICATE
                           : o != KS_EVAL_JOINED || got.score != (double)i / N_W;
    }
    CHECK_EQ_INT(wrong, 0);
    snprintf(id, sizeof(id), "c%d_%d", round - 1, 7);
    ks_eval_pred_t got;
    CHECK_EQ_INT(ks_evalstore_label(s, id, strlen(id), t, &got), KS_EVAL_UNKNOWN);
    ks_evalstore_close(s);
    free(joined);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

static void test_torn_line(void)
{
    char dir[] = "/tmp/ks_evalstore_XXXXXX", path[300], err[512];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/eval.log", dir);
    int64_t t0 = 1800000000000;
    FILE *f = fopen(path, "w");
    /* the crash cut "P ... e35\n" after "e3": a complete-looking record */
    fprintf(f, "P %lld 0.5 v1 primary e1\nJ e1\nP %lld 0.25 v1 primary e2\n"
               "P %lld 0.75 v1 primary e3", (long long)t0, (long long)t0, (long long)t0);
    fclose(f);
    ks_evalstore_t *s = NULL;
    ks_eval_pred_t got;
    CHECK_EQ_INT(ks_evalstore_open(path, 100, DAY, t0, &s, err, sizeof(err)), 0);
    ks_evalstore_stats_t st;
    ks_evalstore_stats(s, &st);
    CHECK_EQ_INT(st.waiting, 1);
    CHECK_EQ_INT(st.remembered, 1);
    ks_eval_pred_t p = pred(0.125, t0, "v1");
    CHECK_EQ_INT(ks_evalstore_put(s, "e4", 2, &p), 0);
    ks_evalstore_close(s);
    CHECK_EQ_INT(ks_evalstore_open(path, 100, DAY, t0, &s, err, sizeof(err)), 0);
    CHECK_EQ_INT(ks_evalstore_label(s, "e3", 2, t0, &got), KS_EVAL_UNKNOWN);
    CHECK_EQ_INT(ks_evalstore_label(s, "e1", 2, t0, &got), KS_EVAL_DUPLICATE);
    CHECK_EQ_INT(ks_evalstore_label(s, "e2", 2, t0, &got), KS_EVAL_JOINED);
    CHECK(got.score == 0.25);
    CHECK_EQ_INT(ks_evalstore_label(s, "e4", 2, t0, &got), KS_EVAL_JOINED);
    CHECK(got.score == 0.125);
    ks_evalstore_close(s);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

/* The lines of a file, for looking at its records. */
static int file_lines(const char *path, char lines[][128], int max)
{
    FILE *f = fopen(path, "r");
    int n = 0;
    while (f && n < max && fgets(lines[n], 128, f))
        lines[n][strcspn(lines[n], "\n")] = 0, n++;
    if (f)
        fclose(f);
    return n;
}

static int line_index(char lines[][128], int n, const char *want)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(lines[i], want))
            return i;
    return -1;
}

static void copy_file(const char *from, const char *to)
{
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "cp %s %s", from, to);
    CHECK(system(cmd) == 0);
}

static void test_positions(void)
{
    char dir[] = "/tmp/ks_evalstore_XXXXXX", path[300], crash[320], err[512];
    static char lines[4096][128];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/eval.log", dir);
    snprintf(crash, sizeof(crash), "%s/crash.log", dir);
    const int64_t t0 = 1800000000000;
    ks_evalstore_t *s = NULL, *c = NULL;
    ks_eval_pred_t got, p = pred(0.5, t0, "v1");
    CHECK_EQ_INT(ks_evalstore_open(path, 4000, DAY, t0, &s, err, sizeof(err)), 0);
    CHECK_EQ_INT(ks_evalstore_position(s, "labels", 0), -1); /* a fresh store */
    CHECK_EQ_INT(ks_evalstore_put(s, "e1", 2, &p), 0);
    CHECK_EQ_INT(ks_evalstore_put(s, "e2", 2, &p), 0);
    CHECK_EQ_INT(ks_evalstore_label(s, "e1", 2, t0, &got), KS_EVAL_JOINED);
    ks_evalstore_set_position(s, "labels", 0, 41);
    ks_evalstore_set_position(s, "labels", 2, 7);
    ks_evalstore_set_position(s, "labels", -1, 5);                         /* ignored */
    ks_evalstore_set_position(s, "labels", KS_EVALSTORE_MAX_PARTITIONS, 5); /* ignored */
    ks_evalstore_set_position(s, "labels", 1, -3);                         /* ignored */
    CHECK_EQ_INT(ks_evalstore_position(s, "labels", 0), 41);
    CHECK_EQ_INT(ks_evalstore_position(s, "labels", 1), -1);
    CHECK_EQ_INT(ks_evalstore_position(s, "labels", 2), 7);
    CHECK_EQ_INT(ks_evalstore_position(s, "other", 0), -1);
    /* not in the file before a sync; after it, behind the join */
    int n = file_lines(path, lines, 4096);
    CHECK_EQ_INT(line_index(lines, n, "O labels 0 41"), -1);
    CHECK_EQ_INT(ks_evalstore_sync(s), 0);
    n = file_lines(path, lines, 4096);
    CHECK(line_index(lines, n, "J e1") >= 0);
    CHECK(line_index(lines, n, "O labels 0 41") > line_index(lines, n, "J e1"));
    CHECK(line_index(lines, n, "O labels 2 7") > line_index(lines, n, "J e1"));
    /* an unmoved position is not written again */
    CHECK_EQ_INT(ks_evalstore_sync(s), 0);
    CHECK_EQ_INT(file_lines(path, lines, 4096), n);

    /* a crash now: e2's label is applied, its position set, nothing synced */
    copy_file(path, crash);
    CHECK_EQ_INT(ks_evalstore_label(s, "e2", 2, t0, &got), KS_EVAL_JOINED);
    ks_evalstore_set_position(s, "labels", 0, 42);
    CHECK_EQ_INT(ks_evalstore_open(crash, 4000, DAY, t0, &c, err, sizeof(err)), 0);
    CHECK_EQ_INT(ks_evalstore_position(c, "labels", 0), 41);
    CHECK_EQ_INT(ks_evalstore_position(c, "labels", 2), 7);
    /* read again from 41: e1 (joined before the synced position) is a
     * duplicate, never a second join; e2's join was not on disk: it joins */
    CHECK_EQ_INT(ks_evalstore_label(c, "e1", 2, t0, &got), KS_EVAL_DUPLICATE);
    CHECK_EQ_INT(ks_evalstore_label(c, "e2", 2, t0, &got), KS_EVAL_JOINED);
    ks_evalstore_close(c);

    /* close and reopen: the last positions, the restart point */
    ks_evalstore_close(s);
    CHECK_EQ_INT(ks_evalstore_open(path, 4000, DAY, t0, &s, err, sizeof(err)), 0);
    CHECK_EQ_INT(ks_evalstore_position(s, "labels", 0), 42);
    CHECK_EQ_INT(ks_evalstore_position(s, "labels", 2), 7);
    CHECK_EQ_INT(ks_evalstore_position(s, "labels", 1), -1);
    CHECK_EQ_INT(ks_evalstore_label(s, "e2", 2, t0, &got), KS_EVAL_DUPLICATE);
    /* the start's compaction kept one line per position */
    n = file_lines(path, lines, 4096);
    int o_lines = 0;
    for (int i = 0; i < n; i++)
        o_lines += lines[i][0] == 'O';
    CHECK_EQ_INT(o_lines, 2);

    /* compaction while running: 2,000 moves of three positions and 1,000
     * dead predictions make the log compact; the positions stay */
    for (int i = 0; i < 1000; i++) {
        char id[32];
        snprintf(id, sizeof(id), "old%d", i);
        ks_eval_pred_t old = pred(0.5, t0 - 10 * DAY, "v1");
        CHECK_EQ_INT(ks_evalstore_put(s, id, strlen(id), &old), 0);
    }
    CHECK_EQ_INT(ks_evalstore_expire(s, t0, NULL, NULL), 1000);
    CHECK_EQ_INT(ks_evalstore_expire(s, t0, NULL, NULL), 0); /* forgotten */
    ks_evalstore_stats_t st;
    int checked = 0;
    for (int i = 0; i < 2000; i++) {
        for (int part = 0; part < 3; part++)
            ks_evalstore_set_position(s, "labels", part, 100 + i);
        ks_evalstore_stats(s, &st);
        uint64_t before = st.compactions;
        CHECK_EQ_INT(ks_evalstore_sync(s), 0);
        ks_evalstore_stats(s, &st);
        if (st.compactions > before && !checked++) {
            /* the compacted file holds the positions (one line each), so
             * this sync had none left to append */
            char want[64];
            n = file_lines(path, lines, 4096);
            o_lines = 0;
            for (int k = 0; k < n; k++)
                o_lines += lines[k][0] == 'O';
            CHECK_EQ_INT(o_lines, 3);
            snprintf(want, sizeof(want), "O labels 2 %d", 100 + i);
            CHECK(line_index(lines, n, want) >= 0);
        }
    }
    CHECK_EQ_INT(checked, (long long)st.compactions);
    CHECK(st.compactions >= 1);
    CHECK(st.log_lines < 2048);
    copy_file(path, crash); /* as a crash would leave it */
    CHECK_EQ_INT(ks_evalstore_open(crash, 4000, DAY, t0, &c, err, sizeof(err)), 0);
    for (int part = 0; part < 3; part++)
        CHECK_EQ_INT(ks_evalstore_position(c, "labels", part), 2099);
    CHECK_EQ_INT(ks_evalstore_label(c, "e1", 2, t0, &got), KS_EVAL_DUPLICATE);
    ks_evalstore_close(c);

    /* another labels topic: the old topic's positions are forgotten */
    ks_evalstore_set_position(s, "labels-v2", 0, 3);
    CHECK_EQ_INT(ks_evalstore_position(s, "labels", 0), -1);
    CHECK_EQ_INT(ks_evalstore_position(s, "labels-v2", 0), 3);
    ks_evalstore_close(s);
    CHECK_EQ_INT(ks_evalstore_open(path, 4000, DAY, t0, &s, err, sizeof(err)), 0);
    CHECK_EQ_INT(ks_evalstore_position(s, "labels", 0), -1);
    CHECK_EQ_INT(ks_evalstore_position(s, "labels-v2", 0), 3);
    ks_evalstore_close(s);

    /* torn and malformed position lines are skipped */
    FILE *f = fopen(path, "w");
    fprintf(f, "O labels 0 5\nO labels 1 x\nO labels -1 6\nO labels 2 99999999999999999999\n"
               "O labels 1\nO labels 0 7");
    fclose(f);
    CHECK_EQ_INT(ks_evalstore_open(path, 4000, DAY, t0, &s, err, sizeof(err)), 0);
    CHECK_EQ_INT(ks_evalstore_position(s, "labels", 0), 5);
    CHECK_EQ_INT(ks_evalstore_position(s, "labels", 1), -1);
    CHECK_EQ_INT(ks_evalstore_position(s, "labels", 2), -1);
    ks_evalstore_close(s);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

int main(void)
{
    RUN(test_store);
    RUN(test_one_opener);
    RUN(test_compaction_running);
    RUN(test_torn_line);
    RUN(test_positions);
    return test_summary();
}
