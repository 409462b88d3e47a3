/*
 * test_drift.c - the training reference and the drift window
 * (model/reference.h, engine/drift.h) against a numpy oracle.
 *
 * Fixtures (tests/quality/make_fixtures.py): a real scikit-learn model
 * exported with kscore-export and its training reference, the training
 * sample, and two 4,000-row streams (one drawn from the training
 * distribution, one with `amount` shifted by one standard deviation) with the
 * PSI numpy computes for each feature and for scikit-learn's scores.
 *
 * Checks: kscore's own reference builder (`kscore model reference`) gives
 * the exporter's edges and shares bit for bit; the window's PSI and
 * missing-rate changes equal numpy's to 1e-9; the training-like stream keeps
 * every PSI under 0.1 and the shift pushes amount's over 0.2; the window
 * slides (a stream older than drift.window no longer counts); too few rows
 * report NaN; a sidecar naming a feature the model lacks fails the load.
 * Under a canary routing (a real pipeline folding a deployment message, as
 * tests/unit/test_deploy.c does), the drift stage counts exactly the rows
 * the champion scored: the window equals an oracle window fed only those
 * rows, and the canary's rows (another model, shifted scores) are left out.
 */
#include "test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/common.h"
#include "base/json.h"
#include "base/sha256.h"
#include "cli/model_cli.h"
#include "base/slices.h"
#include "engine/deployments.h"
#include "engine/drift.h"
#include "engine/pipeline.h"
#include "kscore/kscore.h"
#include "model/model.h"
#include "model/reference.h"

#define FIX "tests/quality/fixtures/"

static ks_model_t *model;
static ks_json_t *expected;

/* A numeric CSV with a header (empty cell = NaN) -> rows x cols. */
static double *read_matrix(const char *path, size_t cols, size_t *rows)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    size_t n = 0, cap = 1024;
    double *X = malloc(cap * cols * sizeof(double));
    if (!f || !fgets(line, sizeof(line), f)) {
        *rows = 0;
        return X;
    }
    while (fgets(line, sizeof(line), f)) {
        if (n == cap)
            X = realloc(X, (cap *= 2) * cols * sizeof(double));
        char *p = line;
        for (size_t j = 0; j < cols; j++) {
            char *end;
            double v = strtod(p, &end);
            X[n * cols + j] = end == p ? NAN : v;
            p = strchr(end, ',');
            p = p ? p + 1 : end;
        }
        n++;
    }
    fclose(f);
    *rows = n;
    return X;
}

/* Scores X with the model and feeds it to the window in batches of 500. */
static void feed(ks_drift_t *d, const double *X, size_t rows, int64_t now_ms)
{
    ks_drift_local_t *l = ks_drift_local_new(d);
    double *out = malloc(500 * model->n_outputs * sizeof(double));
    for (size_t r = 0; r < rows; r += 500) {
        size_t n = rows - r < 500 ? rows - r : 500;
        CHECK_EQ_INT(ks_model_predict(model, X + r * model->n_features, n, out), 0);
        CHECK_EQ_INT(ks_drift_observe(l, model, X + r * model->n_features, out, n, now_ms), 0);
    }
    free(out);
    ks_drift_local_free(l);
}

static void test_builder_matches_exporter(void)
{
    char err[512];
    ks_reference_t *r = NULL;
    FILE *f = fopen(FIX "train.csv", "r");
    CHECK(f != NULL);
    CHECK_EQ_INT(ks_model_reference_csv(model, f, 10, &r, err, sizeof(err)), 0);
    fclose(f);
    const ks_reference_t *e = model->reference;
    CHECK(e != NULL && r != NULL);
    CHECK_EQ_INT(r->n_features, e->n_features);
    CHECK_EQ_INT(r->rows, 4000);
    for (size_t j = 0; j < e->n_features; j++) {
        CHECK_EQ_STR(r->features[j].name, e->features[j].name);
        CHECK(r->features[j].missing_rate == e->features[j].missing_rate);
        CHECK_EQ_INT(r->features[j].hist.n_edges, e->features[j].hist.n_edges);
        for (size_t k = 0; k < e->features[j].hist.n_edges; k++)
            CHECK_MSG(r->features[j].hist.edges[k] == e->features[j].hist.edges[k],
                      "feature %zu edge %zu: %.17g vs exporter %.17g", j, k,
                      r->features[j].hist.edges[k], e->features[j].hist.edges[k]);
        for (size_t k = 0; k <= e->features[j].hist.n_edges; k++)
            CHECK(r->features[j].hist.frac[k] == e->features[j].hist.frac[k]);
    }
    /* the score: kscore's predictions vs scikit-learn's, so edges to 1e-12 */
    CHECK(r->has_score && r->score_output == 1);
    CHECK_EQ_INT(r->score.n_edges, e->score.n_edges);
    for (size_t k = 0; k < e->score.n_edges; k++)
        CHECK_NEAR(r->score.edges[k], e->score.edges[k], 1e-12);
    /* round trip through JSON */
    ks_buf_t b = {0};
    ks_json_t *root = NULL;
    ks_reference_t *back = NULL;
    ks_reference_write(r, &b);
    CHECK_EQ_INT(ks_json_parse(b.data, b.len, &root, err, sizeof(err)), 0);
    CHECK_EQ_INT(ks_reference_parse(root, &back, err, sizeof(err)), 0);
    CHECK(back && back->features[2].hist.n_edges == r->features[2].hist.n_edges &&
          back->score.edges[3] == r->score.edges[3]);
    ks_reference_free(back);
    ks_json_free(root);
    ks_buf_free(&b);
    ks_reference_free(r);
}

static void check_stream(const char *name, int shifted)
{
    char path[256];
    size_t rows;
    snprintf(path, sizeof(path), FIX "stream_%s.csv", name);
    double *X = read_matrix(path, 3, &rows);
    CHECK_EQ_INT(rows, 4000);
    ks_drift_t *d = ks_drift_new(15 * 60 * 1000, 1000, 0);
    ks_drift_set_model(d, model);
    int64_t t0 = 1800000000000;
    feed(d, X, rows, t0);
    ks_drift_status_t st;
    ks_drift_snapshot(d, t0 + 10, &st);
    CHECK(st.active);
    CHECK_EQ_INT(st.rows, 4000);
    const ks_json_t *e = ks_json_get(expected, name);
    const char *names[] = {"amount", "ratio", "n_tx"};
    for (int j = 0; j < 3; j++) {
        double mc, psi = ks_drift_feature_psi(d, names[j], &mc);
        double want = ks_json_num(ks_json_get(ks_json_get(e, "psi"), names[j]), NAN);
        CHECK_NEAR(psi, want, 1e-9);
        CHECK_NEAR(mc, ks_json_num(ks_json_get(ks_json_get(e, "missing_change"), names[j]), NAN),
                   1e-12);
        if (!shifted || j > 0)
            CHECK_MSG(psi < 0.1, "%s: %s PSI %g", name, names[j], psi);
        else
            CHECK_MSG(psi > 0.2, "%s: %s PSI %g", name, names[j], psi);
    }
    CHECK_NEAR(ks_drift_score_psi(d), ks_json_num(ks_json_get(e, "score_psi"), NAN), 1e-9);
    if (shifted) {
        CHECK_EQ_STR(st.worst[0].feature, "amount");
        CHECK(st.worst[0].psi > 0.2);
    }
    ks_drift_free(d);
    free(X);
}

static void test_psi_same(void) { check_stream("same", 0); }
static void test_psi_shifted(void) { check_stream("shifted", 1); }

static void test_window_slides(void)
{
    size_t rows_s, rows_t;
    double *S = read_matrix(FIX "stream_shifted.csv", 3, &rows_s);
    double *T = read_matrix(FIX "stream_same.csv", 3, &rows_t);
    int64_t window = 15 * 60 * 1000, t0 = 1800000000000;
    ks_drift_t *d = ks_drift_new(window, 1000, 0);
    ks_drift_set_model(d, model);
    ks_drift_status_t st;

    feed(d, S, 800, t0); /* under min_rows: NaN */
    ks_drift_snapshot(d, t0, &st);
    CHECK(isnan(ks_drift_feature_psi(d, "amount", NULL)));
    CHECK(isnan(st.score_psi));
    feed(d, S + 800 * 3, rows_s - 800, t0);
    ks_drift_snapshot(d, t0, &st);
    CHECK(ks_drift_feature_psi(d, "amount", NULL) > 0.2);
    /* half a window later the shifted rows still count */
    feed(d, T, rows_t, t0 + window / 2);
    ks_drift_snapshot(d, t0 + window / 2, &st);
    CHECK_EQ_INT(st.rows, rows_s + rows_t);
    /* a window after the shifted rows they are gone: the same-stream PSI */
    ks_drift_snapshot(d, t0 + window + window / KS_SLICES, &st);
    CHECK_EQ_INT(st.rows, rows_t);
    CHECK_NEAR(ks_drift_feature_psi(d, "amount", NULL),
               ks_json_num(ks_json_get(ks_json_get(ks_json_get(expected, "same"), "psi"),
                                       "amount"), NAN), 1e-9);
    /* another model: the window starts over */
    ks_drift_set_model(d, NULL);
    ks_drift_snapshot(d, t0 + window, &st);
    CHECK(!st.active);
    ks_drift_free(d);
    free(S);
    free(T);
}

static void test_sidecar(void)
{
    char err[512], dir[] = "/tmp/ks_drift_XXXXXX", path[300], side[320];
    ks_model_t *m = NULL;
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/m.json", dir);
    snprintf(side, sizeof(side), "%s/m.json.reference.json", dir);
    char *buf;
    size_t len;
    CHECK_EQ_INT(ks_read_file(FIX "model.json", &buf, &len, err, sizeof(err)), 0);
    FILE *f = fopen(path, "w");
    fwrite(buf, 1, len, f);
    fclose(f);
    free(buf);
    f = fopen(side, "w");
    fputs("{\"format\":\"kscore-reference\",\"format_version\":1,\"features\":[{\"name\":\"amt\","
          "\"missing_rate\":0,\"edges\":[1],\"fractions\":[0.5,0.5]}]}", f);
    fclose(f);
    CHECK(ks_model_load_file(path, &m, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, "'amt'");
    f = fopen(side, "w");
    fputs("{\"format\":\"kscore-reference\",\"format_version\":1,\"features\":[{\"name\":"
          "\"amount\",\"missing_rate\":0,\"edges\":[50],\"fractions\":[0.5,0.5]}]}", f);
    fclose(f);
    CHECK_EQ_INT(ks_model_load_file(path, &m, err, sizeof(err)), 0);
    CHECK(m && m->reference && m->reference->n_features == 1 && !m->reference->has_score);
    ks_model_unref(m);
    f = fopen(side, "w");
    fputs("{\"format\":\"kscore-reference\",\"format_version\":1,\"features\":[{\"name\":"
          "\"amount\",\"missing_rate\":0,\"edges\":[50,40],\"fractions\":[0.5,0.2,0.3]}]}", f);
    fclose(f);
    CHECK(ks_model_load_file(path, &m, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, "ascending");
    unlink(side);
    unlink(path);
    rmdir(dir);
}

/* text with the first `from` replaced by `to` (malloc'd). */
static char *replace_once(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    CHECK_MSG(at != NULL, "no '%s' in the model", from);
    ks_buf_t b = {0};
    if (at)
        ks_buf_printf(&b, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    return b.data;
}

/* Drift under a canary: the batch has no single input matrix (each variant
 * scored its own rows); the window must hold exactly the champion's rows. */
static void test_canary_rows(void)
{
    char dir[] = "/tmp/ks_drift_canary_XXXXXX", path[300], v2[300], fix[4096], err[1024];
    char hex[65], json[1024];
    CHECK(mkdtemp(dir) != NULL);
    CHECK(realpath(FIX "model.json", fix) != NULL);
    snprintf(v2, sizeof(v2), "%s/v2.json", dir);
    /* another version whose scores differ: a larger base score */
    {   /* another version whose scores differ: a larger base score */
        char *m, *m2, *m3;
        size_t len;
        CHECK_EQ_INT(ks_read_file(FIX "model.json", &m, &len, err, sizeof(err)), 0);
        m2 = replace_once(m, "\"version\":\"drift-test-1\"", "\"version\":\"v2\"");
        m3 = replace_once(m2, "\"base_score\":[", "\"base_score\":[2.5,");
        char *extra = m3 ? strstr(m3, "[2.5,") + 4 : NULL; /* drop the old base score */
        if (extra)
            memmove(extra, strchr(extra, ']'), strlen(strchr(extra, ']')) + 1);
        FILE *f = fopen(v2, "w");
        fputs(m3 ? m3 : "", f);
        fclose(f);
        uint8_t dig[32];
        ks_sha256(m3 ? m3 : "", m3 ? strlen(m3) : 0, dig);
        ks_sha256_hex(dig, 32, hex);
        free(m);
        free(m2);
        free(m3);
    }
    snprintf(path, sizeof(path), "%s/pipeline.yaml", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "input:\n  topics: [x]\n  fields:\n    id: {type: string, required: true}\n"
               "    amount: {type: number}\n    ratio: {type: number}\n"
               "    n_tx: {type: number}\n"
               "features:\n  - {name: amount, expr: amount}\n  - {name: ratio, expr: ratio}\n"
               "  - {name: n_tx, expr: n_tx}\n"
               "model:\n  path: %s\n  deployments_topic: deploys\n"
               "output:\n  topic: x\n  id_field: id\ndead_letter:\n  topic: x\n"
               "batch:\n  max_size: 5000\ndrift:\n  window: 15m\n  min_rows: 100\n", fix);
    fclose(f);
    ks_config_t *cfg = NULL;
    ks_pipeline_t *p = NULL;
    CHECK_MSG(ks_config_load(path, NULL, 0, &cfg, err, sizeof(err)) == 0, "%s", err);
    CHECK_MSG(cfg && ks_pipeline_new(cfg, &p, err, sizeof(err)) == 0, "%s", err);
    if (!p)
        return;
    CHECK(p->drift != NULL);

    size_t rows;
    double *X = read_matrix(FIX "stream_shifted.csv", 3, &rows);
    char **ev = calloc(rows, sizeof(char *));
    for (size_t i = 0; i < rows; i++) {
        ks_buf_t b = {0};
        ks_buf_printf(&b, "{\"id\":\"h%zu\",\"amount\":%.17g,", i, X[i * 3]);
        if (!isnan(X[i * 3 + 1]))
            ks_buf_printf(&b, "\"ratio\":%.17g,", X[i * 3 + 1]);
        ks_buf_printf(&b, "\"n_tx\":%.17g}", X[i * 3 + 2]);
        ev[i] = b.data;
    }
    ks_stage_env_t env = {p, -1, NULL, NULL};
    ks_stage_runner_t *r = NULL;
    CHECK_MSG(ks_stage_runner_new(p->stages, &env, &r, err, sizeof(err)) == 0, "%s", err);
    ks_batch_t b;
    ks_batch_init(&b, cfg->schema->n_fields, p->n_cols);
    snprintf(json, sizeof(json), "{\"action\":\"canary\",\"version\":\"v2\",\"path\":"
             "\"%s\",\"sha256\":\"%s\",\"percent\":30}", v2, hex);
    const char *why = NULL;
    CHECK_MSG(ks_deployments_apply(p, json, strlen(json), 0, &why, err, sizeof(err)) == 0,
              "%s: %s", why ? why : "", err);
    CHECK_EQ_INT((long long)p->routing->n, 2);

    ks_batch_reset(&b, rows);
    for (size_t i = 0; i < rows; i++)
        b.ev[i] = (ks_event_t){ev[i], strlen(ev[i]), NULL, 0, -1, ks_now_mono_ns(), NULL, -1,
                               (int64_t)i, NULL};
    ks_stage_runner_run(r, &b); /* the drift stage read b.X == NULL before the fix */
    CHECK(b.X == NULL && b.rt != NULL);

    /* the oracle: a window fed only the rows the champion scored */
    ks_model_t *champ = p->serving->model;
    double *XC = malloc(rows * 3 * sizeof(double));
    size_t nc = 0, bad = 0;
    for (size_t i = 0; i < rows; i++) {
        bad += !ks_batch_ok(&b, i);
        if (ks_batch_ok(&b, i) && b.rt->v[b.variant[i]].sv->model == champ)
            memcpy(XC + 3 * nc++, X + 3 * i, 3 * sizeof(double));
    }
    CHECK_EQ_INT((long long)bad, 0);
    CHECK_MSG(nc > rows * 6 / 10 && nc < rows * 8 / 10, "%zu of %zu rows on the champion", nc,
              rows);
    ks_drift_t *want = ks_drift_new(15 * 60 * 1000, 100, 0);
    ks_drift_set_model(want, champ);
    ks_model_t *saved = model;
    model = champ;
    int64_t now = ks_now_wall_ms();
    feed(want, XC, nc, now);
    model = saved;
    ks_drift_status_t st, wst;
    ks_drift_snapshot(p->drift, now, &st);
    ks_drift_snapshot(want, now, &wst);
    CHECK(st.active);
    CHECK_EQ_STR(st.version, "drift-test-1");
    CHECK_EQ_INT((long long)st.rows, (long long)nc);
    const char *names[] = {"amount", "ratio", "n_tx"};
    for (int j = 0; j < 3; j++)
        CHECK_NEAR(ks_drift_feature_psi(p->drift, names[j], NULL),
                   ks_drift_feature_psi(want, names[j], NULL), 1e-12);
    CHECK_NEAR(st.score_psi, wst.score_psi, 1e-12);
    ks_drift_free(want);
    free(XC);

    ks_batch_release_models(&b);
    ks_batch_destroy(&b);
    ks_stage_runner_free(r);
    ks_pipeline_free(p);
    ks_config_free(cfg);
    for (size_t i = 0; i < rows; i++)
        free(ev[i]);
    free(ev);
    free(X);
    unlink(v2);
    unlink(path);
    rmdir(dir);
}

static void test_duration(void)
{
    int64_t v;
    CHECK(ks_duration_parse("15m", &v) == 0 && v == 900000);
    CHECK(ks_duration_parse("7d", &v) == 0 && v == 604800000);
    CHECK(ks_duration_parse("250ms", &v) == 0 && v == 250);
    CHECK(ks_duration_parse("15 m", &v) != 0);
    CHECK(ks_duration_parse("-1s", &v) != 0);
    CHECK(ks_duration_parse("m", &v) != 0);
}

int main(void)
{
    char err[512], *buf = NULL;
    size_t len;
    if (ks_model_load_file(FIX "model.json", &model, err, sizeof(err)) ||
        ks_read_file(FIX "expected.json", &buf, &len, err, sizeof(err)) ||
        ks_json_parse(buf, len, &expected, err, sizeof(err))) {
        fprintf(stderr, "fixtures: %s\n", err);
        return 1;
    }
    free(buf);
    RUN(test_builder_matches_exporter);
    RUN(test_psi_same);
    RUN(test_psi_shifted);
    RUN(test_window_slides);
    RUN(test_sidecar);
    RUN(test_canary_rows);
    RUN(test_duration);
    ks_model_unref(model);
    ks_json_free(expected);
    return test_summary();
}
