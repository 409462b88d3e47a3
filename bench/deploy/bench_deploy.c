/*
 * bench_deploy.c - what model deployments cost the hot path, in process (no
 * broker: the engine's stages on the basic example's events, the way a
 * worker runs them), so the numbers are the engine's and not the noise of a
 * shared machine's Kafka:
 *
 *   shadow      throughput of decode -> features -> route -> model -> encode
 *               without deployments (no route stage), with the champion
 *               alone, with a shadow model (metrics only)
 *               and with its records encoded for shadow.topic, rounds
 *               interleaved in one run, 5 of each: the best per thread-CPU
 *               second (what a shared machine does not disturb) and per
 *               wall-clock second;
 *   promotions  EVENTS events in batches of BATCH at a steady RATE (open
 *               loop: batch k starts at t0 + k * BATCH / RATE) on one thread
 *               while another folds 10 promotions (each loads, fits and warms
 *               up a model file, then swaps); reports the largest gap between
 *               consecutive batch completions whose interval holds a swap,
 *               and the largest of all the others, and that no row failed.
 *
 * Usage: bench_deploy EVENTS.jsonl CHAMPION.json CANDIDATE.json [EVENTS [RATE [BATCH]]]
 * (bench/deploy/run makes the files and prints BENCHMARKS.md's block.)
 * Prints JSON lines.
 */
#include "base/common.h"
#include "base/sha256.h"
#include "engine/deployments.h"
#include "engine/pipeline.h"
#include "kscore/kscore.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char **lines;
static size_t n_lines;

static void die(const char *what, const char *err)
{
    fprintf(stderr, "bench_deploy: %s: %s\n", what, err);
    exit(1);
}

static void read_events(const char *path)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0, have = 0;
    ssize_t len;
    if (!f)
        die(path, "cannot open");
    while ((len = getline(&line, &cap, f)) > 0) {
        if (n_lines == have)
            lines = realloc(lines, (have = have ? have * 2 : 1024) * sizeof(char *));
        line[len - 1] = '\0';
        lines[n_lines++] = strdup(line);
    }
    free(line);
    fclose(f);
}

static void sha_of(const char *path, char hex[65])
{
    char *buf, err[256];
    size_t len;
    uint8_t d[32];
    if (ks_read_file(path, &buf, &len, err, sizeof(err)))
        die(path, err);
    ks_sha256(buf, len, d);
    ks_sha256_hex(d, 32, hex);
    free(buf);
}

/* This thread's CPU time, ns: throughput per CPU second does not depend on
 * what else the machine runs (wall-clock rounds are reported beside it). */
static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One batch of rows [from, from + n) of the events, scored; returns the
 * rows that failed. */
static size_t run_batch(ks_stage_runner_t *r, ks_batch_t *b, size_t from, size_t n)
{
    size_t failed = 0;
    ks_batch_reset(b, n);
    for (size_t i = 0; i < n; i++) {
        const char *v = lines[(from + i) % n_lines];
        b->ev[i] = (ks_event_t){v, strlen(v), NULL, 0, -1, ks_now_mono_ns(), NULL, -1,
                                (int64_t)(from + i), NULL};
    }
    ks_stage_runner_run(r, b);
    for (size_t i = 0; i < n; i++)
        failed += !ks_batch_ok(b, i);
    ks_batch_release_models(b);
    return failed;
}

static void apply(ks_pipeline_t *p, const char *json)
{
    const char *why;
    char err[1024];
    if (ks_deployments_apply(p, json, strlen(json), 0, &why, err, sizeof(err)))
        die(why, err);
}

/* ---- promotions while batches run at a steady rate ---------------------- */

typedef struct promoter {
    ks_pipeline_t *p;
    const char *paths[2], *shas[2];
    int64_t start_ns, every_ns;
    int64_t swaps[10];
    int64_t load_ns[10];
} promoter_t;

static void sleep_until(int64_t t_ns)
{
    struct timespec ts = {(time_t)(t_ns / 1000000000), (long)(t_ns % 1000000000)};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static void *promote_main(void *arg)
{
    promoter_t *pr = arg;
    char json[4096];
    for (int k = 0; k < 10; k++) {
        sleep_until(pr->start_ns + (k + 1) * pr->every_ns);
        int w = k % 2; /* alternately the candidate and the first champion, as new versions */
        snprintf(json, sizeof(json),
                 "{\"action\":\"promote\",\"version\":\"promo-%d\",\"path\":\"%s\",\"sha256\":\"%s\"}",
                 k, pr->paths[w], pr->shas[w]);
        int64_t t0 = ks_now_mono_ns();
        apply(pr->p, json);
        pr->swaps[k] = ks_now_mono_ns();
        pr->load_ns[k] = pr->swaps[k] - t0;
    }
    return NULL;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_deploy EVENTS.jsonl CHAMPION.json CANDIDATE.json "
                        "[EVENTS [RATE [BATCH]]]\n");
        return 2;
    }
    size_t events = argc > 4 ? strtoul(argv[4], NULL, 10) : 1000000;
    double rate = argc > 5 ? strtod(argv[5], NULL) : 100000;
    size_t batch = argc > 6 ? strtoul(argv[6], NULL, 10) : 500;
    char err[1024], set_model[1200], hex[2][65], json[4096];
    read_events(argv[1]);
    snprintf(set_model, sizeof(set_model), "model.path=%s", argv[2]);
    const char *sets[] = {"model.deployments_topic=bench-deployments", set_model,
                          "log.level=warn"};
    ks_config_t *cfg;
    ks_pipeline_t *p;
    if (ks_config_load("examples/basic/pipeline.yaml", sets, 3, &cfg, err, sizeof(err)) ||
        ks_pipeline_new(cfg, &p, err, sizeof(err)))
        die("pipeline", err);
    sha_of(argv[2], hex[0]);
    sha_of(argv[3], hex[1]);
    ks_stage_env_t env = {p, -1, NULL, NULL};
    ks_stage_runner_t *r;
    if (ks_stage_runner_new(p->stages, &env, &r, err, sizeof(err)))
        die("runner", err);
    /* the same pipeline without model.deployments_topic: the route stage's own cost */
    ks_config_t *cfg0;
    ks_pipeline_t *p0;
    ks_stage_runner_t *r0;
    if (ks_config_load("examples/basic/pipeline.yaml", sets + 1, 2, &cfg0, err, sizeof(err)) ||
        ks_pipeline_new(cfg0, &p0, err, sizeof(err)))
        die("pipeline", err);
    ks_stage_env_t env0 = {p0, -1, NULL, NULL};
    if (ks_stage_runner_new(p0->stages, &env0, &r0, err, sizeof(err)))
        die("runner", err);
    ks_batch_t b;
    ks_batch_init(&b, cfg->schema->n_fields, p->n_cols);

    /* ---- shadow cost: alternating rounds on the same events ---- */
    snprintf(json, sizeof(json),
             "{\"action\":\"shadow\",\"version\":\"shadow-candidate\",\"path\":\"%s\","
             "\"sha256\":\"%s\"}", argv[3], hex[1]);
    size_t round_events = n_lines < 200000 ? n_lines : 200000;
    /* deployments off, champion only, + shadow (metrics), + shadow records */
    double best[4] = {0, 0, 0, 0}, best_wall[4] = {0, 0, 0, 0};
    run_batch(r, &b, 0, batch); /* warm caches */
    run_batch(r0, &b, 0, batch);
    for (int round = 0; round < 20; round++) {
        int mode = round % 4;
        if (mode == 0) {
            int64_t t0 = ks_now_mono_ns(), c0 = cpu_ns();
            for (size_t at = 0; at < round_events; at += batch)
                if (run_batch(r0, &b, at, at + batch <= round_events ? batch : round_events - at))
                    die("round", "rows failed");
            double eps = (double)round_events / ((double)(cpu_ns() - c0) / 1e9);
            double wall = (double)round_events / ((double)(ks_now_mono_ns() - t0) / 1e9);
            best[0] = eps > best[0] ? eps : best[0];
            best_wall[0] = wall > best_wall[0] ? wall : best_wall[0];
            continue;
        }
        mode--; /* 0 champion only, 1 shadow, 2 shadow records: best[mode + 1] */
        if (mode)
            apply(p, json);
        /* the encoder writes shadow records only with shadow.topic set (the
         * bench's own config object: no Kafka is involved) */
        cfg->shadow_topic = mode == 2 ? "bench-shadow" : NULL;
        int64_t t0 = ks_now_mono_ns(), c0 = cpu_ns();
        size_t failed = 0;
        for (size_t at = 0; at < round_events; at += batch)
            failed += run_batch(r, &b, at, at + batch <= round_events ? batch : round_events - at);
        double eps = (double)round_events / ((double)(cpu_ns() - c0) / 1e9);
        double wall = (double)round_events / ((double)(ks_now_mono_ns() - t0) / 1e9);
        if (failed)
            die("shadow round", "rows failed");
        if (eps > best[mode + 1])
            best[mode + 1] = eps;
        if (wall > best_wall[mode + 1])
            best_wall[mode + 1] = wall;
        if (mode)
            apply(p, "{\"action\":\"retire\",\"version\":\"shadow-candidate\"}");
    }
    cfg->shadow_topic = NULL;
    printf("{\"bench\":\"shadow\",\"events_per_round\":%zu,\"rounds\":5,\"batch\":%zu,"
           "\"no_deployments_events_per_cpu_s\":%.0f,"
           "\"champion_only_events_per_cpu_s\":%.0f,\"with_shadow_events_per_cpu_s\":%.0f,"
           "\"with_shadow_records_events_per_cpu_s\":%.0f,\"routing_cost_pct\":%.1f,"
           "\"shadow_cost_pct\":%.1f,\"shadow_records_cost_pct\":%.1f,"
           "\"no_deployments_events_per_s\":%.0f,\"champion_only_events_per_s\":%.0f,"
           "\"with_shadow_events_per_s\":%.0f,\"with_shadow_records_events_per_s\":%.0f}\n",
           round_events, batch, best[0], best[1], best[2], best[3], 100 * (1 - best[1] / best[0]),
           100 * (1 - best[2] / best[1]), 100 * (1 - best[3] / best[1]), best_wall[0],
           best_wall[1], best_wall[2], best_wall[3]);
    fflush(stdout);

    /* ---- 10 promotions during EVENTS events at RATE ---- */
    size_t n_batches = (events + batch - 1) / batch;
    int64_t interval = (int64_t)((double)batch / rate * 1e9);
    int64_t *done = calloc(n_batches, sizeof(int64_t));
    promoter_t pr = {p, {argv[3], argv[2]}, {hex[1], hex[0]}, 0, 0, {0}, {0}};
    int64_t t0 = ks_now_mono_ns() + 100000000;
    pr.start_ns = t0;
    pr.every_ns = (int64_t)n_batches * interval / 11;
    pthread_t th;
    pthread_create(&th, NULL, promote_main, &pr);
    size_t failed = 0, late = 0;
    for (size_t k = 0; k < n_batches; k++) {
        int64_t due = t0 + (int64_t)k * interval;
        if (ks_now_mono_ns() < due)
            sleep_until(due);
        else if (k)
            late++;
        size_t n = k + 1 < n_batches ? batch : events - k * batch;
        failed += run_batch(r, &b, k * batch, n);
        done[k] = ks_now_mono_ns();
    }
    pthread_join(th, NULL);
    /* a gap is "around a swap" when the swap falls in it or in its neighbours */
    int64_t max_swap = 0, max_other = 0, max_load = 0;
    int64_t *others = calloc(n_batches, sizeof(int64_t));
    size_t n_others = 0;
    for (size_t k = 1; k < n_batches; k++) {
        int64_t gap = done[k] - done[k - 1], lo = done[k - 1] - interval, hi = done[k] + interval;
        int near = 0;
        for (int s = 0; s < 10; s++)
            near |= pr.swaps[s] >= lo && pr.swaps[s] <= hi;
        if (near && gap > max_swap)
            max_swap = gap;
        if (!near && gap > max_other)
            max_other = gap;
        if (!near)
            others[n_others++] = gap;
    }
    qsort(others, n_others, sizeof(int64_t), cmp64);
    double p99_other = n_others ? (double)others[(size_t)(0.99 * (double)(n_others - 1))] / 1e6 : 0;
    free(others);
    for (int s = 0; s < 10; s++)
        if (pr.load_ns[s] > max_load)
            max_load = pr.load_ns[s];
    printf("{\"bench\":\"promotions\",\"events\":%zu,\"rate\":%.0f,\"batch\":%zu,"
           "\"batches\":%zu,\"promotions\":10,\"failed_rows\":%zu,\"late_batches\":%zu,"
           "\"max_gap_around_swaps_ms\":%.3f,\"max_gap_without_swaps_ms\":%.3f,"
           "\"p99_gap_without_swaps_ms\":%.3f,"
           "\"nominal_gap_ms\":%.3f,\"slowest_promotion_ms\":%.1f,\"champion\":\"%s\"}\n",
           events, rate, batch, n_batches, failed, late, (double)max_swap / 1e6,
           (double)max_other / 1e6, p99_other, (double)interval / 1e6, (double)max_load / 1e6,
           p->serving->model->version);
    free(done);
    ks_batch_destroy(&b);
    ks_stage_runner_free(r0);
    ks_pipeline_free(p0);
    ks_config_free(cfg0);
    ks_stage_runner_free(r);
    ks_pipeline_free(p);
    ks_config_free(cfg);
    for (size_t i = 0; i < n_lines; i++)
        free(lines[i]);
    free(lines);
    return failed ? 1 : 0;
}
