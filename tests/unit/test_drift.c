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
 */
#include "test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/common.h"
#include "base/json.h"
#include "cli/model_cli.h"
#include "base/slices.h"
#include "engine/drift.h"
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

static void test_duration(void)
{
    int64_t v;
    CHECK(ks_parse_duration_ms("15m", &v) == 0 && v == 900000);
    CHECK(ks_parse_duration_ms("7d", &v) == 0 && v == 604800000);
    CHECK(ks_parse_duration_ms("250ms", &v) == 0 && v == 250);
    CHECK(ks_parse_duration_ms("15 m", &v) != 0);
    CHECK(ks_parse_duration_ms("-1s", &v) != 0);
    CHECK(ks_parse_duration_ms("m", &v) != 0);
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
    RUN(test_duration);
    ks_model_unref(model);
    ks_json_free(expected);
    return test_summary();
}
