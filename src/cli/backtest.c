/*
 * backtest.c - `kscore backtest`: replays history through the offline path
 * (ks_pipeline_predict_stream: the same stages as `kscore run`) once for the
 * model in the config and once per candidate, joins the predictions with
 * labels by id, and writes a report to --out DIR:
 *
 *   report.md         one table row per model: AUC, log loss, Brier score,
 *                     precision and recall at output.threshold (0.5 if
 *                     unset), agreement with the first model, score quantiles;
 *                     then calibration by score decile
 *   metrics.json      the same numbers, for machines
 *   predictions.csv   id,label,<score of each model>: every labelled event
 *                     scored by all models (what the metrics are computed on)
 *   roc.png, calibration.png, scores.png   gnuplot (Debian: gnuplot-nox)
 *
 *   kscore backtest -c pipeline.yaml --events history.jsonl --labels labels.jsonl
 *                   [--model candidate.json ...] --out DIR [--set k=v ...]
 *                   [--label-field label] [--labels-id-field id]
 *
 * or, instead of --events, a topic range: --topic T --from TIME [--to TIME]
 * (ISO-8601, e.g. 2026-11-01T00:00Z; --to defaults to now, exclusive): the
 * records whose timestamps fall in [from, to) of every partition are read
 * with the config's kafka: properties (no consumer group joined, nothing
 * committed) into DIR/events.jsonl, one value a line, and replayed from
 * there.
 *
 * Labels are JSON lines {"id": ..., "label": 0|1|true|false|"0"|"1"}; the
 * id is matched with the prediction's "id" (output.id_field, required).
 * Duplicate label ids keep the first and are counted; a label line that
 * cannot be read is counted and skipped; predictions without a label are
 * counted ("labelled" column) - none of these is fatal. Binary classifiers
 * only (the record's "score").
 *
 * Each model is a fresh config load with --set model.path=<candidate>, so a
 * candidate is served exactly as it would be deployed with that config.
 *
 * Model versions and paths are outside input (a candidate's file says its
 * own version): every one written into a generated file goes through the
 * quoting of that file - put_json_string, put_md_text (a table cell: no
 * '|', newline or Markdown markup from it) and put_gp_string (a gnuplot
 * single-quoted string: quotes doubled, control characters and backquotes
 * dropped, so no text of it can end the string and run `system(...)`).
 */
#include "cli/cli.h"
#include "kscore/kscore.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "base/buf.h"
#include "base/common.h"
#include "base/json.h"
#include "engine/config.h"
#include "features/strtab.h"
#include "features/timestamp.h"
#include "kafka/client.h"
#include "model/evaluate.h"

extern char **environ;

#define MAX_MODELS 16
#define CAL_BINS 10
#define HIST_BINS 20

typedef struct labels {
    ks_strtab_t ids;
    char **id;        /* per label index */
    int *y;
    size_t n;
    size_t duplicates, unreadable;
} labels_t;

typedef struct run {
    const char *path;          /* the model file (NULL: the config's) */
    char version[256];
    double *score;             /* per label index; NaN = not scored */
    size_t predicted, unlabelled, dead_letters;
    double threshold;
} run_t;

/* The id member as text: strings as they are, integers without exponent. */
static const char *id_text(const ks_json_t *v, char *buf, size_t size)
{
    if (ks_json_str(v))
        return ks_json_str(v);
    if (ks_json_is(v, KS_JSON_NUMBER)) {
        double d = ks_json_num(v, 0);
        if (d == floor(d) && fabs(d) < 1e15)
            snprintf(buf, size, "%lld", (long long)d);
        else
            snprintf(buf, size, "%.17g", d);
        return buf;
    }
    return NULL;
}

static int read_labels(const char *path, const char *id_field, const char *label_field,
                       labels_t *L, char *errbuf, size_t errsize)
{
    char *buf = NULL, idb[64];
    size_t len = 0, lines = 1;
    int rc = ks_read_file(path, &buf, &len, errbuf, errsize);
    if (rc)
        return rc;
    for (size_t i = 0; i < len; i++)
        lines += buf[i] == '\n';
    ks_strtab_init(&L->ids, lines);
    L->id = ks_xcalloc(lines, sizeof(char *));
    L->y = ks_xcalloc(lines, sizeof(int));
    for (char *line = buf, *nl; line < buf + len; line = nl + 1) {
        nl = memchr(line, '\n', (size_t)(buf + len - line));
        if (!nl)
            nl = buf + len;
        if (nl == line)
            continue;
        ks_json_t *root = NULL;
        char why[256];
        if (ks_json_parse(line, (size_t)(nl - line), &root, why, sizeof(why))) {
            L->unreadable++;
            continue;
        }
        const char *id = id_text(ks_json_get(root, id_field), idb, sizeof(idb));
        const ks_json_t *lv = ks_json_get(root, label_field);
        int y = -1;
        if (ks_json_is(lv, KS_JSON_BOOL))
            y = ks_json_bool(lv, 0);
        else if (ks_json_is(lv, KS_JSON_NUMBER) && (ks_json_num(lv, -1) == 0 || ks_json_num(lv, -1) == 1))
            y = (int)ks_json_num(lv, 0);
        else if (ks_json_str(lv) && (!strcmp(ks_json_str(lv), "0") || !strcmp(ks_json_str(lv), "1")))
            y = ks_json_str(lv)[0] - '0';
        if (!id || y < 0) {
            L->unreadable++;
        } else if (ks_strtab_add(&L->ids, id, strlen(id), (uint32_t)L->n) == KS_OK) {
            L->id[L->n] = ks_xstrdup(id);
            L->y[L->n++] = y;
        } else {
            L->duplicates++;
        }
        ks_json_free(root);
    }
    free(buf);
    if (L->n == 0)
        return ks_err(errbuf, errsize, KS_EINVAL,
                      "%s: no label read (expected JSON lines with \"%s\" and \"%s\": 0 or 1)",
                      path, id_field, label_field);
    return KS_OK;
}

/* Scores the events with one model; fills r. */
static int run_model(const char *config, const char *const *sets, size_t n_sets,
                     const char *events, const labels_t *L, run_t *r, char *errbuf,
                     size_t errsize)
{
    const char *all[64];
    char set[PATH_MAX + 16], abs[PATH_MAX];
    size_t n = 0;
    ks_config_t *cfg = NULL;
    ks_pipeline_t *p = NULL;
    FILE *in = NULL, *out = NULL, *dlq = NULL;
    char *line = NULL, idb[64];
    size_t cap = 0;
    int rc = KS_OK;

    for (size_t i = 0; i < n_sets && n < 62; i++)
        all[n++] = sets[i];
    if (r->path) {
        if (!realpath(r->path, abs))
            return ks_err(errbuf, errsize, KS_EINVAL, "%s: %s", r->path, strerror(errno));
        snprintf(set, sizeof(set), "model.path=%s", abs);
        all[n++] = set;
    }
    if ((rc = ks_config_load(config, all, n, &cfg, errbuf, errsize)) ||
        (rc = ks_pipeline_new(cfg, &p, errbuf, errsize)))
        goto out;
    if (!cfg->output_id_field) {
        rc = ks_err(errbuf, errsize, KS_EINVAL,
                    "%s: backtests join labels by id: set output.id_field", config);
        goto out;
    }
    r->threshold = cfg->output_has_threshold ? cfg->output_threshold : 0.5;
    if (!(in = fopen(events, "r"))) {
        rc = ks_err(errbuf, errsize, KS_EIO, "cannot open %s: %s", events, strerror(errno));
        goto out;
    }
    out = tmpfile();
    dlq = tmpfile();
    if (!out || !dlq) {
        rc = ks_err(errbuf, errsize, KS_EIO, "cannot create a temporary file: %s", strerror(errno));
        goto out;
    }
    if (ks_pipeline_predict_stream(p, in, out, dlq) != KS_EXIT_OK) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "scoring %s with %s failed", events,
                    r->path ? r->path : "the config's model");
        goto out;
    }
    rewind(dlq);
    while (getline(&line, &cap, dlq) > 0)
        r->dead_letters++;
    rewind(out);
    r->score = ks_xmalloc(L->n * sizeof(double));
    for (size_t i = 0; i < L->n; i++)
        r->score[i] = NAN;
    ssize_t got;
    while ((got = getline(&line, &cap, out)) > 0) {
        ks_json_t *root = NULL;
        char why[256];
        uint32_t li;
        if (ks_json_parse(line, (size_t)got, &root, why, sizeof(why)))
            continue;
        const ks_json_t *s = ks_json_get(root, "score");
        const char *id = id_text(ks_json_get(root, "id"), idb, sizeof(idb));
        const char *ver = ks_json_str(ks_json_get(root, "model_version"));
        if (!ks_json_is(s, KS_JSON_NUMBER)) {
            ks_json_free(root);
            rc = ks_err(errbuf, errsize, KS_EINVAL,
                        "%s: the predictions have no \"score\": backtests need a binary classifier",
                        r->path ? r->path : config);
            goto out;
        }
        if (ver && !r->version[0])
            snprintf(r->version, sizeof(r->version), "%s", ver);
        r->predicted++;
        if (id && ks_strtab_find(&L->ids, id, strlen(id), &li))
            r->score[li] = ks_json_num(s, NAN);
        else
            r->unlabelled++;
        ks_json_free(root);
    }
out:
    free(line);
    if (in)
        fclose(in);
    if (out)
        fclose(out);
    if (dlq)
        fclose(dlq);
    if (p)
        ks_pipeline_free(p);
    ks_config_free(cfg);
    return rc;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* numpy's linear quantile of sorted v. */
static double quantile(const double *v, size_t n, double q)
{
    if (!n)
        return NAN;
    double h = (double)(n - 1) * q, f = floor(h);
    size_t lo = (size_t)f;
    return lo + 1 < n ? v[lo] + (h - f) * (v[lo + 1] - v[lo]) : v[n - 1];
}

static void put_num(FILE *f, double v, int digits)
{
    if (isnan(v))
        fputs("-", f);
    else
        fprintf(f, "%.*f", digits, v);
}

/* s as a JSON string. */
static void put_json_string(FILE *f, const char *s)
{
    ks_buf_t b = {0};
    ks_buf_json_string(&b, s, strlen(s));
    fwrite(b.data, 1, b.len, f);
    ks_buf_free(&b);
}

/* s as Markdown text (a table cell, a sentence): control characters become
 * spaces and the characters Markdown acts on are backslash-escaped, '|'
 * (which would end the cell) among them. */
static void put_md_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            c = ' ';
        else if (strchr("\\`|<>*_[]", c))
            fputc('\\', f);
        fputc(c, f);
    }
}

/* s as a gnuplot single-quoted string (gnuplot doubles a quote inside one;
 * a newline would end the string and the command, a backquote is command
 * substitution in older gnuplots: both dropped, with the other control
 * characters). */
static void put_gp_string(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\'')
            fputc('\'', f);
        if (c >= 0x20 && c != 0x7f && c != '`')
            fputc(c, f);
    }
    fputc('\'', f);
}

static void json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.17g", v);
    else
        fputs("null", f);
}

static int run_gnuplot(const char *script, char *errbuf, size_t errsize)
{
    pid_t pid;
    int status;
    char *argv[] = {"gnuplot", (char *)script, NULL};
    if (posix_spawnp(&pid, "gnuplot", NULL, NULL, argv, environ) != 0)
        return ks_err(errbuf, errsize, KS_EIO,
                      "cannot run gnuplot for the plots (Debian package gnuplot-nox; "
                      "scripts/deps installs it)");
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return ks_err(errbuf, errsize, KS_EIO, "gnuplot %s failed", script);
    return KS_OK;
}

static int parse_time(const char *s, int64_t *ms)
{
    int64_t secs;
    int32_t nanos;
    if (ks_timestamp_parse_iso8601(s, strlen(s), &secs, &nanos))
        return KS_EINVAL;
    *ms = secs * 1000 + nanos / 1000000;
    return KS_OK;
}

/* Writes the values of topic's records with timestamps in [from_ms, to_ms)
 * to `path`, one a line (a newline inside a value, JSON whitespace, becomes
 * a space). */
static int dump_topic(const char *config, const char *const *sets, size_t n_sets,
                      const char *topic, int64_t from_ms, int64_t to_ms, const char *path,
                      size_t *n_out, char *errbuf, size_t errsize)
{
    ks_config_t *cfg = NULL;
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_partition_list_t *start = NULL, *end = NULL;
    const struct rd_kafka_metadata *md = NULL;
    ks_kafka_ctx_t kctx = {.name = "backtest", .worker = -1};
    int64_t *stop_at = NULL;
    FILE *out = NULL;
    int rc;
    *n_out = 0;
    if ((rc = ks_config_load(config, sets, n_sets, &cfg, errbuf, errsize)))
        goto out;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if ((rc = ks_config_apply_kafka(cfg, KS_KAFKA_CONSUMER, conf, errbuf, errsize)) ||
        (rc = ks_kafka_conf_set(conf, "group.id", "kscore-backtest", errbuf, errsize)) ||
        (rc = ks_kafka_conf_set(conf, "enable.auto.commit", "false", errbuf, errsize)) ||
        (rc = ks_kafka_conf_set(conf, "enable.partition.eof", "true", errbuf, errsize))) {
        rd_kafka_conf_destroy(conf);
        goto out;
    }
    if ((rc = ks_kafka_client_new(&kctx, RD_KAFKA_CONSUMER, conf, &rk, errbuf, errsize)))
        goto out;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 15000);
    rd_kafka_topic_destroy(rkt);
    if (err || md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt == 0) {
        rc = ks_err(errbuf, errsize, KS_EKAFKA, "topic %s: %s", topic,
                    rd_kafka_err2str(err ? err : md->topics[0].err ? md->topics[0].err
                                                                   : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
        goto out;
    }
    int np = md->topics[0].partition_cnt;
    start = rd_kafka_topic_partition_list_new(np);
    end = rd_kafka_topic_partition_list_new(np);
    for (int i = 0; i < np; i++) {
        int32_t part = md->topics[0].partitions[i].id;
        rd_kafka_topic_partition_list_add(start, topic, part)->offset = from_ms;
        rd_kafka_topic_partition_list_add(end, topic, part)->offset = to_ms;
    }
    if ((err = rd_kafka_offsets_for_times(rk, start, 15000)) ||
        (err = rd_kafka_offsets_for_times(rk, end, 15000))) {
        rc = ks_err(errbuf, errsize, KS_EKAFKA, "topic %s: cannot look up offsets by time: %s",
                    topic, rd_kafka_err2str(err));
        goto out;
    }
    stop_at = ks_xcalloc((size_t)np, sizeof(int64_t));
    int active = 0;
    for (int i = 0; i < np; i++) {
        int64_t lo, hi;
        rd_kafka_topic_partition_t *sp = &start->elems[i], *ep = &end->elems[i];
        if ((err = rd_kafka_query_watermark_offsets(rk, topic, sp->partition, &lo, &hi, 15000))) {
            rc = ks_err(errbuf, errsize, KS_EKAFKA, "topic %s: %s", topic, rd_kafka_err2str(err));
            goto out;
        }
        if (sp->offset < 0)
            sp->offset = hi; /* nothing at or after from */
        stop_at[i] = ep->offset < 0 ? hi : ep->offset;
        if (sp->offset < stop_at[i])
            active++;
        else
            sp->offset = RD_KAFKA_OFFSET_END;
    }
    if (!(out = fopen(path, "w"))) {
        rc = ks_err(errbuf, errsize, KS_EIO, "cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    if (active && (err = rd_kafka_assign(rk, start))) {
        rc = ks_err(errbuf, errsize, KS_EKAFKA, "topic %s: %s", topic, rd_kafka_err2str(err));
        goto out;
    }
    while (active > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 1000);
        if (!m)
            continue;
        int i = 0;
        while (i < np && start->elems[i].partition != m->partition)
            i++;
        if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            rc = ks_err(errbuf, errsize, KS_EKAFKA, "topic %s: %s", topic,
                        rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            goto out;
        }
        if (i < np && stop_at[i] >= 0) {
            if (!m->err && m->offset < stop_at[i]) {
                const char *v = m->payload;
                for (size_t k = 0; k < m->len; k++)
                    fputc(v[k] == '\n' || v[k] == '\r' ? ' ' : v[k], out);
                fputc('\n', out);
                (*n_out)++;
            }
            if (m->err || m->offset + 1 >= stop_at[i]) {
                stop_at[i] = -1; /* done */
                active--;
            }
        }
        rd_kafka_message_destroy(m);
    }
    if (fclose(out)) {
        out = NULL;
        rc = ks_err(errbuf, errsize, KS_EIO, "cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    out = NULL;
out:
    if (out)
        fclose(out);
    free(stop_at);
    if (start)
        rd_kafka_topic_partition_list_destroy(start);
    if (end)
        rd_kafka_topic_partition_list_destroy(end);
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    ks_config_free(cfg);
    return rc;
}

int ks_backtest_cli(int argc, char **argv)
{
    const char *config = NULL, *events = NULL, *labels_path = NULL, *dir = NULL;
    const char *label_field = "label", *id_field = "id";
    const char *topic = NULL, *from = NULL, *to = NULL;
    char events_path[PATH_MAX];
    const char *sets[64];
    size_t n_sets = 0, n_runs = 1;
    run_t runs[MAX_MODELS] = {{0}};
    labels_t L = {0};
    char err[1024], path[PATH_MAX];
    int rc = KS_EXIT_USAGE;
    FILE *f = NULL;
    double **js = NULL; /* per run: the joined scores */
    int *jy = NULL;
    size_t nj = 0;

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            goto usage;
        if (!strcmp(a, "-c") || !strcmp(a, "--config"))
            config = v;
        else if (!strcmp(a, "--events"))
            events = v;
        else if (!strcmp(a, "--labels"))
            labels_path = v;
        else if (!strcmp(a, "--out"))
            dir = v;
        else if (!strcmp(a, "--topic"))
            topic = v;
        else if (!strcmp(a, "--from"))
            from = v;
        else if (!strcmp(a, "--to"))
            to = v;
        else if (!strcmp(a, "--label-field"))
            label_field = v;
        else if (!strcmp(a, "--labels-id-field"))
            id_field = v;
        else if (!strcmp(a, "--set") && n_sets < 60)
            sets[n_sets++] = v;
        else if (!strcmp(a, "--model") && n_runs < MAX_MODELS)
            runs[n_runs++].path = v;
        else
            goto usage;
        i++;
    }
    if (!config || !labels_path || !dir || !events == !topic || (topic && !from) ||
        (!topic && (from || to)))
        goto usage;
    if (mkdir(dir, 0777) && errno != EEXIST) {
        fprintf(stderr, "kscore: cannot create %s: %s\n", dir, strerror(errno));
        goto out;
    }
    if (topic) {
        int64_t from_ms, to_ms = ks_now_wall_ms();
        size_t n = 0;
        if (parse_time(from, &from_ms) || (to && parse_time(to, &to_ms)) || to_ms <= from_ms) {
            fprintf(stderr, "kscore: --from %s --to %s: expected ISO-8601 times, from before to "
                            "(e.g. 2026-11-01T00:00Z)\n", from, to ? to : "(now)");
            goto out;
        }
        snprintf(events_path, sizeof(events_path), "%s/events.jsonl", dir);
        if (dump_topic(config, sets, n_sets, topic, from_ms, to_ms, events_path, &n, err,
                       sizeof(err))) {
            fprintf(stderr, "kscore: %s\n", err);
            rc = KS_EXIT_RUNTIME;
            goto out;
        }
        fprintf(stderr, "kscore: read %zu records of %s in [%s, %s) into %s\n", n, topic, from,
                to ? to : "now", events_path);
        events = events_path;
    }
    if (read_labels(labels_path, id_field, label_field, &L, err, sizeof(err))) {
        fprintf(stderr, "kscore: %s\n", err);
        goto out;
    }
    for (size_t k = 0; k < n_runs; k++)
        if (run_model(config, sets, n_sets, events, &L, &runs[k], err, sizeof(err))) {
            fprintf(stderr, "kscore: %s\n", err);
            goto out;
        }
    rc = KS_EXIT_RUNTIME;

    /* the pairs every model scored */
    js = ks_xcalloc(n_runs, sizeof(double *));
    for (size_t k = 0; k < n_runs; k++)
        js[k] = ks_xmalloc(L.n * sizeof(double));
    jy = ks_xmalloc(L.n * sizeof(int));
    snprintf(path, sizeof(path), "%s/predictions.csv", dir);
    if (!(f = fopen(path, "w")))
        goto io;
    fputs("id,label", f);
    for (size_t k = 0; k < n_runs; k++)
        fprintf(f, ",score_%zu", k);
    fputc('\n', f);
    for (size_t i = 0; i < L.n; i++) {
        size_t k = 0;
        while (k < n_runs && !isnan(runs[k].score[i]))
            k++;
        if (k < n_runs)
            continue;
        fprintf(f, "%s,%d", L.id[i], L.y[i]);
        for (k = 0; k < n_runs; k++) {
            js[k][nj] = runs[k].score[i];
            fprintf(f, ",%.17g", runs[k].score[i]);
        }
        fputc('\n', f);
        jy[nj++] = L.y[i];
    }
    if (fclose(f))
        goto io;
    f = NULL;
    if (nj == 0) {
        fprintf(stderr, "kscore: no prediction matched a label id (predictions' \"id\" vs the "
                        "labels' \"%s\")\n", id_field);
        goto out;
    }

    ks_eval_t ev[MAX_MODELS];
    double agree[MAX_MODELS], mad[MAX_MODELS], q[MAX_MODELS][4];
    for (size_t k = 0; k < n_runs; k++) {
        ks_eval_compute(js[k], jy, nj, runs[k].threshold, &ev[k]);
        size_t same = 0;
        double d = 0, mean = 0;
        for (size_t i = 0; i < nj; i++) {
            same += (js[k][i] >= runs[k].threshold) == (js[0][i] >= runs[0].threshold);
            d += fabs(js[k][i] - js[0][i]);
            mean += js[k][i];
        }
        agree[k] = (double)same / (double)nj;
        mad[k] = d / (double)nj;
        double *s = ks_xmalloc(nj * sizeof(double));
        memcpy(s, js[k], nj * sizeof(double));
        qsort(s, nj, sizeof(double), cmp_d);
        q[k][0] = mean / (double)nj;
        q[k][1] = quantile(s, nj, 0.1);
        q[k][2] = quantile(s, nj, 0.5);
        q[k][3] = quantile(s, nj, 0.9);
        free(s);
    }

    /* metrics.json */
    snprintf(path, sizeof(path), "%s/metrics.json", dir);
    if (!(f = fopen(path, "w")))
        goto io;
    fprintf(f, "{\"labels\":%zu,\"label_duplicates\":%zu,\"label_unreadable\":%zu,\"joined\":%zu,"
               "\"models\":[", L.n, L.duplicates, L.unreadable, nj);
    for (size_t k = 0; k < n_runs; k++) {
        fputs(k ? ",\n{\"model\":" : "\n{\"model\":", f);
        put_json_string(f, runs[k].path ? runs[k].path : "config");
        fputs(",\"version\":", f);
        put_json_string(f, runs[k].version);
        fprintf(f, ",\"predicted\":%zu,\"dead_letters\":%zu,\"unlabelled\":%zu,"
                   "\"positives\":%zu,\"auc\":",
                runs[k].predicted, runs[k].dead_letters, runs[k].unlabelled, ev[k].positives);
        json_num(f, ev[k].auc);
        fputs(",\"log_loss\":", f);
        json_num(f, ev[k].log_loss);
        fputs(",\"brier\":", f);
        json_num(f, ev[k].brier);
        fputs(",\"threshold\":", f);
        json_num(f, ev[k].threshold);
        fputs(",\"precision\":", f);
        json_num(f, ev[k].precision);
        fputs(",\"recall\":", f);
        json_num(f, ev[k].recall);
        fputs(",\"agreement\":", f);
        json_num(f, agree[k]);
        fputs(",\"mean_abs_score_diff\":", f);
        json_num(f, mad[k]);
        fputs(",\"score_mean\":", f);
        json_num(f, q[k][0]);
        fputc('}', f);
    }
    fputs("]}\n", f);
    if (fclose(f))
        goto io;
    f = NULL;

    /* report.md */
    snprintf(path, sizeof(path), "%s/report.md", dir);
    if (!(f = fopen(path, "w")))
        goto io;
    fputs("# Backtest\n\nEvents: ", f);
    put_md_text(f, events);
    fputs("; labels: ", f);
    put_md_text(f, labels_path);
    fprintf(f, " (%zu ids; %zu duplicates and %zu unreadable lines skipped). Every model scored "
               "the same events through the pipeline ", L.n, L.duplicates, L.unreadable);
    put_md_text(f, config);
    fprintf(f, "; the metrics cover the %zu labelled events all models scored.\n\n", nj);
    fputs("| # | model | version | predicted | labelled | positives | AUC | log loss | Brier "
          "| threshold | precision | recall | agreement | mean abs diff | mean score | p10 | p50 "
          "| p90 |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n", f);
    for (size_t k = 0; k < n_runs; k++) {
        fprintf(f, "| %zu | ", k);
        put_md_text(f, runs[k].path ? runs[k].path : "(config)");
        fputs(" | ", f);
        put_md_text(f, runs[k].version);
        fprintf(f, " | %zu | %zu | %zu | ", runs[k].predicted,
                runs[k].predicted - runs[k].unlabelled, ev[k].positives);
        double cols[] = {ev[k].auc, ev[k].log_loss, ev[k].brier, ev[k].threshold,
                         ev[k].precision, ev[k].recall, agree[k], mad[k], q[k][0], q[k][1],
                         q[k][2], q[k][3]};
        for (size_t c = 0; c < KS_ARRAY_LEN(cols); c++) {
            put_num(f, cols[c], 4);
            fputs(" | ", f);
        }
        fputc('\n', f);
    }
    fputs("\nagreement: share of events where the model's decision (score >= threshold) is "
          "the first model's; mean abs diff: mean |score - first model's score|.\n\n"
          "## Calibration by score decile\n\n| # | bin | events | mean score | positive rate "
          "|\n|---|---|---|---|---|\n", f);
    for (size_t k = 0; k < n_runs; k++) {
        uint64_t cnt[CAL_BINS];
        double ms[CAL_BINS], pr[CAL_BINS];
        ks_eval_calibration(js[k], jy, nj, CAL_BINS, cnt, ms, pr);
        for (size_t b = 0; b < CAL_BINS; b++) {
            if (!cnt[b])
                continue;
            fprintf(f, "| %zu | %.1f-%.1f | %llu | ", k, (double)b / CAL_BINS,
                    (double)(b + 1) / CAL_BINS, (unsigned long long)cnt[b]);
            put_num(f, ms[b], 4);
            fputs(" | ", f);
            put_num(f, pr[b], 4);
            fputs(" |\n", f);
        }
    }
    fputs("\n![ROC curves](roc.png)\n![Calibration](calibration.png)\n"
          "![Score histograms](scores.png)\n", f);
    if (fclose(f))
        goto io;
    f = NULL;

    /* plot data and the gnuplot script */
    for (size_t k = 0; k < n_runs; k++) {
        double *fpr, *tpr;
        size_t np = ks_eval_roc(js[k], jy, nj, &fpr, &tpr);
        snprintf(path, sizeof(path), "%s/roc_%zu.dat", dir, k);
        if (!(f = fopen(path, "w"))) {
            free(fpr);
            free(tpr);
            goto io;
        }
        for (size_t i = 0; i < np; i++)
            fprintf(f, "%.9g %.9g\n", fpr[i], tpr[i]);
        free(fpr);
        free(tpr);
        fclose(f);
        uint64_t cnt[CAL_BINS];
        double ms[CAL_BINS], pr[CAL_BINS];
        ks_eval_calibration(js[k], jy, nj, CAL_BINS, cnt, ms, pr);
        snprintf(path, sizeof(path), "%s/calibration_%zu.dat", dir, k);
        if (!(f = fopen(path, "w")))
            goto io;
        for (size_t b = 0; b < CAL_BINS; b++)
            if (cnt[b])
                fprintf(f, "%.9g %.9g\n", ms[b], pr[b]);
        fclose(f);
        uint64_t h[HIST_BINS] = {0};
        for (size_t i = 0; i < nj; i++) {
            size_t b = js[k][i] <= 0 ? 0 : (size_t)(js[k][i] * HIST_BINS);
            h[b < HIST_BINS ? b : HIST_BINS - 1]++;
        }
        snprintf(path, sizeof(path), "%s/scores_%zu.dat", dir, k);
        if (!(f = fopen(path, "w")))
            goto io;
        for (size_t b = 0; b < HIST_BINS; b++)
            fprintf(f, "%.4f %.9g\n", (b + 0.5) / HIST_BINS, (double)h[b] / (double)nj);
        fclose(f);
    }
    f = NULL;
    snprintf(path, sizeof(path), "%s/plots.gp", dir);
    if (!(f = fopen(path, "w")))
        goto io;
    fputs("# generated by kscore backtest\ncd ", f);
    put_gp_string(f, dir);
    fputs("\nset terminal pngcairo size 800,600\nset key bottom right noenhanced\nset grid\n", f);
    const char *plots[][4] = {
        {"roc", "ROC", "set xlabel 'false positive rate'; set ylabel 'true positive rate'; "
                       "set xrange [0:1]; set yrange [0:1]", "with lines lw 2"},
        {"calibration", "Calibration by score decile",
         "set xlabel 'mean score'; set ylabel 'positive rate'; set xrange [0:1]; "
         "set yrange [0:1]", "with linespoints lw 2"},
        {"scores", "Score histograms", "set xlabel 'score'; set ylabel 'share of events'; "
                                       "set xrange [0:1]; set autoscale y", "with steps lw 2"},
    };
    for (size_t g = 0; g < KS_ARRAY_LEN(plots); g++) {
        fprintf(f, "set output '%s.png'\nset title '%s'\n%s\nplot ", plots[g][0], plots[g][1],
                plots[g][2]);
        if (g < 2)
            fputs("x with lines dt 2 lc 'gray' title 'diagonal', ", f);
        for (size_t k = 0; k < n_runs; k++) {
            char title[300];
            snprintf(title, sizeof(title), "#%zu %s", k, runs[k].version);
            fprintf(f, "%s'%s_%zu.dat' %s title ", k ? ", " : "", plots[g][0], k, plots[g][3]);
            put_gp_string(f, title);
        }
        fputs("\n", f);
    }
    if (fclose(f))
        goto io;
    f = NULL;
    if (run_gnuplot(path, err, sizeof(err))) {
        fprintf(stderr, "kscore: %s (report.md and metrics.json are written)\n", err);
        goto out;
    }
    fprintf(stderr, "kscore: wrote %s/report.md (%zu models, %zu labelled events)\n", dir,
            n_runs, nj);
    rc = KS_EXIT_OK;
    goto out;
io:
    fprintf(stderr, "kscore: cannot write %s: %s\n", path, strerror(errno));
    rc = KS_EXIT_RUNTIME;
    goto out;
usage:
    fprintf(stderr, "usage: kscore backtest -c pipeline.yaml (--events history.jsonl | --topic T "
                    "--from TIME [--to TIME]) --labels labels.jsonl [--model candidate.json ...] "
                    "--out DIR [--set key=value ...] [--label-field label] "
                    "[--labels-id-field id]\n");
    rc = KS_EXIT_USAGE;
out:
    if (f)
        fclose(f);
    for (size_t k = 0; k < n_runs; k++) {
        free(runs[k].score);
        if (js)
            free(js[k]);
    }
    free(js);
    free(jy);
    for (size_t i = 0; i < L.n; i++)
        free(L.id[i]);
    free(L.id);
    free(L.y);
    if (L.ids.slots)
        ks_strtab_free(&L.ids);
    return rc;
}
