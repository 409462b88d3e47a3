/*
 * test_model.c - the model runtime on small hand-written kscore JSON models
 * whose outputs are computed by hand: logistic (binary, multinomial), linear
 * regression with a scaler, tree ensembles under both comparison rules, an
 * MLP; plus metadata, versions, refcounting and refusal of broken files.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "cli/model_cli.h"
#include "test.h"
#include "base/sha256.h"

static ks_model_t *load(const char *json, char *err, size_t errsize)
{
    ks_model_t *m = NULL;
    int rc = ks_model_load_buffer("test.json", json, strlen(json), &m, err, errsize);
    if (rc != 0)
        return NULL;
    return m;
}

#define HEAD(task) "{\"format\": \"kscore-model\", \"format_version\": 1, \"task\": \"" task "\", "

static void test_sha256(void)
{
    uint8_t d[32];
    char hex[65];
    ks_sha256("abc", 3, d);
    ks_sha256_hex(d, 32, hex);
    CHECK_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ks_sha256("", 0, d);
    ks_sha256_hex(d, 32, hex);
    CHECK_EQ_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /* 56 bytes: padding spills into a second block. */
    const char *s = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    ks_sha256(s, strlen(s), d);
    ks_sha256_hex(d, 32, hex);
    CHECK_EQ_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_logistic_binary(void)
{
    char err[512] = "";
    ks_model_t *m = load(HEAD("classification")
        "\"model_type\": \"linear\", \"feature_names\": [\"a\", \"b\"], \"classes\": [0, 1],"
        "\"version\": \"lr-7\", \"metadata\": {\"library\": \"scikit-learn\", \"library_version\": \"1.9.1\"},"
        "\"linear\": {\"coef\": [[0.5, -1.0]], \"intercept\": [0.25], \"link\": \"logistic\"}}",
        err, sizeof(err));
    CHECK_MSG(m != NULL, "%s", err);
    if (!m)
        return;
    CHECK_EQ_INT(m->task, KS_TASK_CLASSIFICATION);
    CHECK_EQ_INT(m->n_features, 2);
    CHECK_EQ_STR(m->feature_names[1], "b");
    CHECK_EQ_INT(m->n_outputs, 2);
    CHECK_EQ_INT(m->n_classes, 2);
    CHECK_EQ_STR(m->class_labels[0], "0");
    CHECK_EQ_STR(m->class_labels[1], "1");
    CHECK_EQ_STR(m->version, "lr-7");
    CHECK_EQ_STR(m->source, "scikit-learn 1.9.1");
    double X[] = {2, 1, 0, 0, NAN, 1};
    double out[6];
    CHECK_EQ_INT(ks_model_predict(m, X, 3, out), 0);
    /* z = 0.5*2 - 1*1 + 0.25 = 0.25; p = 1/(1+exp(-0.25)) */
    CHECK_NEAR(out[1], 0.56217650088579807, 1e-15);
    CHECK_NEAR(out[0], 0.43782349911420193, 1e-15);
    /* z = 0.25 */
    CHECK_NEAR(out[3], 0.56217650088579807, 1e-15);
    /* NaN input propagates (the pipeline fills or rejects missing values). */
    CHECK(isnan(out[5]));
    ks_model_unref(m);
}

static void test_logistic_multinomial(void)
{
    char err[512] = "";
    ks_model_t *m = load(HEAD("classification")
        "\"model_type\": \"linear\", \"feature_names\": [\"x\", \"y\"], \"classes\": [\"cat\", \"dog\", \"eel\"],"
        "\"linear\": {\"coef\": [[1, 0], [0, 1], [0, 0]], \"intercept\": [0, 0, 0], \"link\": \"softmax\"}}",
        err, sizeof(err));
    CHECK_MSG(m != NULL, "%s", err);
    if (!m)
        return;
    CHECK_EQ_INT(m->n_outputs, 3);
    CHECK_EQ_STR(m->class_labels[2], "eel");
    /* No version in the file: a content hash. */
    CHECK(strncmp(m->version, "sha256:", 7) == 0 && strlen(m->version) == 19);
    double X[] = {1, 2};
    double out[3];
    CHECK_EQ_INT(ks_model_predict(m, X, 1, out), 0);
    /* softmax(1, 2, 0) */
    CHECK_NEAR(out[0], 0.24472847105479764, 1e-15);
    CHECK_NEAR(out[1], 0.6652409557748219, 1e-15);
    CHECK_NEAR(out[2], 0.09003057317038046, 1e-15);
    ks_model_unref(m);
}

static void test_linear_regression_scaled(void)
{
    char err[512] = "";
    ks_model_t *m = load(HEAD("regression")
        "\"model_type\": \"linear\", \"feature_names\": [\"u\", \"v\"],"
        "\"preprocess\": [{\"type\": \"standard_scaler\", \"mean\": [1, 2], \"scale\": [2, 4]}],"
        "\"linear\": {\"coef\": [[3, -2]], \"intercept\": [1]}}",
        err, sizeof(err));
    CHECK_MSG(m != NULL, "%s", err);
    if (!m)
        return;
    CHECK_EQ_INT(m->task, KS_TASK_REGRESSION);
    CHECK_EQ_INT(m->n_outputs, 1);
    CHECK_EQ_INT(m->n_classes, 0);
    double X[] = {5, 10, 1, 2, -1, 6};
    double out[3];
    CHECK_EQ_INT(ks_model_predict(m, X, 3, out), 0);
    CHECK_NEAR(out[0], 3.0, 1e-15);   /* (2, 2) -> 6 - 4 + 1 */
    CHECK_NEAR(out[1], 1.0, 1e-15);   /* (0, 0) -> 1 */
    CHECK_NEAR(out[2], -4.0, 1e-15);  /* (-1, 1) -> -3 - 2 + 1 */
    ks_model_unref(m);

    m = load(HEAD("regression")
        "\"model_type\": \"linear\", \"feature_names\": [\"u\"],"
        "\"preprocess\": [{\"type\": \"minmax_scaler\", \"scale\": [0.5], \"min\": [-1]}],"
        "\"linear\": {\"coef\": [[10]], \"intercept\": [0], \"link\": \"exp\"}}",
        err, sizeof(err));
    CHECK_MSG(m != NULL, "%s", err);
    if (!m)
        return;
    double x = 2, y;
    CHECK_EQ_INT(ks_model_predict(m, &x, 1, &y), 0);
    CHECK_NEAR(y, 1.0, 1e-15); /* 2*0.5 - 1 = 0 -> exp(0) */
    ks_model_unref(m);
}

/* One stump on feature 0 at 0.1: float32 rule sends x = 0.1 right (float32(0.1)
 * is 0.100000001 > 0.1), the float64 rule sends it left. Missing goes left. */
static void test_tree_comparison_rules(void)
{
    char err[512] = "";
    const char *fmt = HEAD("regression")
        "\"model_type\": \"tree_ensemble\", \"feature_names\": [\"x\"],"
        "\"tree_ensemble\": {\"comparison\": \"%s\", \"n_raw\": 1, \"base_score\": [100],"
        "\"trees\": [{\"left\": [1, -1, -1], \"right\": [2, -1, -1], \"feature\": [0, -2, -2],"
        "\"threshold\": [0.1, -2, -2], \"missing_left\": [1, 0, 0], \"value\": [0, 1, 2]}]}}";
    char json[1024];
    snprintf(json, sizeof(json), fmt, "float32");
    ks_model_t *m = load(json, err, sizeof(err));
    CHECK_MSG(m != NULL, "%s", err);
    if (!m)
        return;
    double X[] = {0.1, 0.0999, 0.2, NAN, 0.10000000149011612, 0.10000000149011611};
    double out[6];
    CHECK_EQ_INT(ks_model_predict(m, X, 6, out), 0);
    CHECK_NEAR(out[0], 102, 0);
    CHECK_NEAR(out[1], 101, 0);
    CHECK_NEAR(out[2], 102, 0);
    CHECK_NEAR(out[3], 101, 0);
    CHECK_NEAR(out[4], 102, 0);
    CHECK_NEAR(out[5], 102, 0);
    ks_model_unref(m);

    snprintf(json, sizeof(json), fmt, "float64");
    m = load(json, err, sizeof(err));
    CHECK_MSG(m != NULL, "%s", err);
    if (!m)
        return;
    CHECK_EQ_INT(ks_model_predict(m, X, 6, out), 0);
    CHECK_NEAR(out[0], 101, 0);
    CHECK_NEAR(out[1], 101, 0);
    CHECK_NEAR(out[2], 102, 0);
    CHECK_NEAR(out[3], 101, 0);
    CHECK_NEAR(out[4], 102, 0);
    ks_model_unref(m);
}

/* A forest of two trees with vector leaves (class probabilities), averaged. */
static void test_forest_average(void)
{
    char err[512] = "";
    ks_model_t *m = load(HEAD("classification")
        "\"model_type\": \"tree_ensemble\", \"feature_names\": [\"a\", \"b\"], \"classes\": [\"n\", \"y\"],"
        "\"tree_ensemble\": {\"comparison\": \"float32\", \"n_raw\": 2, \"leaf_width\": 2,"
        "\"base_score\": [0, 0], \"average\": true, \"link\": \"identity\","
        "\"trees\": ["
        " {\"left\": [1, -1, -1], \"right\": [2, -1, -1], \"feature\": [0, -2, -2], \"threshold\": [0.5, 0, 0],"
        "  \"value\": [0, 0, 1, 0, 0.25, 0.75]},"
        " {\"left\": [2, -1, -1], \"right\": [1, -1, -1], \"feature\": [1, -2, -2], \"threshold\": [0.0, 0, 0],"
        "  \"value\": [0, 0, 0.5, 0.5, 0.0, 1.0]}]}}",
        err, sizeof(err));
    CHECK_MSG(m != NULL, "%s", err);
    if (!m)
        return;
    double X[] = {0, 0, 1, 1};
    double out[4];
    CHECK_EQ_INT(ks_model_predict(m, X, 2, out), 0);
    /* row 0: tree0 left (1,0), tree1 left = node 2 (0,1) -> (0.5, 0.5) */
    CHECK_NEAR(out[0], 0.5, 1e-15);
    CHECK_NEAR(out[1], 0.5, 1e-15);
    /* row 1: tree0 right (.25,.75), tree1 right = node 1 (.5,.5) -> (.375,.625) */
    CHECK_NEAR(out[2], 0.375, 1e-15);
    CHECK_NEAR(out[3], 0.625, 1e-15);
    ks_model_unref(m);
}

static void test_mlp(void)
{
    char err[512] = "";
    /* 2 -> 2 (relu) -> 1, logistic: h = relu([x0 - x1, x0 + x1]), z = h0 - h1 + 0.5 */
    ks_model_t *m = load(HEAD("classification")
        "\"model_type\": \"mlp\", \"feature_names\": [\"a\", \"b\"], \"classes\": [0, 1],"
        "\"mlp\": {\"hidden_activation\": \"relu\", \"link\": \"logistic\", \"layers\": ["
        " {\"weights\": [[1, 1], [-1, 1]], \"bias\": [0, 0]},"
        " {\"weights\": [[1], [-1]], \"bias\": [0.5]}]}}",
        err, sizeof(err));
    CHECK_MSG(m != NULL, "%s", err);
    if (!m)
        return;
    double X[] = {3, 1, -1, -2};
    double out[4];
    CHECK_EQ_INT(ks_model_predict(m, X, 2, out), 0);
    /* row 0: h = (2, 4) -> z = -1.5 */
    CHECK_NEAR(out[1], 1 / (1 + exp(1.5)), 1e-15);
    /* row 1: h = relu(1, -3) = (1, 0) -> z = 1.5 */
    CHECK_NEAR(out[1 + 2], 1 / (1 + exp(-1.5)), 1e-15);
    ks_model_unref(m);
}

static void test_refcount(void)
{
    char err[512];
    ks_model_t *m = load(HEAD("regression")
        "\"model_type\": \"linear\", \"feature_names\": [\"u\"], \"linear\": {\"coef\": [[1]], \"intercept\": [0]}}",
        err, sizeof(err));
    CHECK(m != NULL);
    if (!m)
        return;
    CHECK(ks_model_ref(m) == m);
    CHECK_EQ_INT(m->refcount, 2);
    ks_model_unref(m);
    CHECK_EQ_INT(m->refcount, 1);
    ks_model_unref(m);
    ks_model_unref(NULL);
}

static void expect_refused(const char *json, const char *needle)
{
    char err[512] = "";
    ks_model_t *m = NULL;
    int rc = ks_model_load_buffer("bad.json", json, strlen(json), &m, err, sizeof(err));
    CHECK_MSG(rc != 0 && m == NULL, "accepted: %s", json);
    CHECK_CONTAINS(err, needle);
    CHECK_CONTAINS(err, "bad.json");
    if (m)
        ks_model_unref(m);
}

static void test_refusals(void)
{
    expect_refused("hello", "not a model file");
    expect_refused("{\"format\": \"kscore-model\", \"format_version\": 2}", "format_version 2");
    expect_refused(HEAD("regression") "\"model_type\": \"svm\", \"feature_names\": [\"a\"]}", "'svm'");
    expect_refused(HEAD("regression") "\"model_type\": \"linear\", \"feature_names\": [\"a\", \"b\"],"
                   "\"linear\": {\"coef\": [[1]], \"intercept\": [0]}}", "array of 2 numbers");
    expect_refused(HEAD("classification") "\"model_type\": \"linear\", \"feature_names\": [\"a\"],"
                   "\"classes\": [0, 1, 2], \"linear\": {\"coef\": [[1]], \"intercept\": [0], \"link\": \"logistic\"}}",
                   "does not fit");
    expect_refused(HEAD("regression") "\"model_type\": \"linear\", \"feature_names\": [\"a\"],"
                   "\"preprocess\": [{\"type\": \"pca\"}], \"linear\": {\"coef\": [[1]], \"intercept\": [0]}}",
                   "'pca'");
    expect_refused(HEAD("regression") "\"model_type\": \"linear\", \"feature_names\": [\"a\"],"
                   "\"linear\": {\"coef\": [[1]], \"intercept\": [0]", "line 1");
    /* Hostile trees: a cycle, a shared child, an out-of-range feature, an
     * out-of-range child, an unreachable node. */
    const char *tree = HEAD("regression")
        "\"model_type\": \"tree_ensemble\", \"feature_names\": [\"x\"],"
        "\"tree_ensemble\": {\"comparison\": \"float64\", \"n_raw\": 1, \"base_score\": [0],"
        "\"trees\": [{\"left\": %s, \"right\": %s, \"feature\": %s, \"threshold\": [0, 0, 0, 0],"
        "\"value\": [0, 0, 0, 0]}]}}";
    char json[1024];
    snprintf(json, sizeof(json), tree, "[1, 0, -1, -1]", "[2, 3, -1, -1]", "[0, 0, 0, 0]");
    expect_refused(json, "reached twice");
    snprintf(json, sizeof(json), tree, "[1, 2, -1, -1]", "[2, 3, -1, -1]", "[0, 0, 0, 0]");
    expect_refused(json, "reached twice");
    snprintf(json, sizeof(json), tree, "[1, -1, -1, -1]", "[2, -1, -1, -1]", "[7, 0, 0, 0]");
    expect_refused(json, "feature 7 is out of range");
    snprintf(json, sizeof(json), tree, "[1, -1, -1, -1]", "[9, -1, -1, -1]", "[0, 0, 0, 0]");
    expect_refused(json, "out of range");
    snprintf(json, sizeof(json), tree, "[1, -1, -1, -1]", "[2, -1, -1, -1]", "[0, 0, 0, 0]");
    expect_refused(json, "node 3 is not reachable");
}

static void test_load_file(void)
{
    char err[512] = "";
    ks_model_t *m = NULL;
    CHECK(ks_model_load_file("/nonexistent/model.json", &m, err, sizeof(err)) != 0);
    CHECK(m == NULL);
    CHECK_CONTAINS(err, "/nonexistent/model.json");
}

static void test_predict_csv(void)
{
    char err[512] = "";
    ks_model_t *m = load(HEAD("classification")
        "\"model_type\": \"linear\", \"feature_names\": [\"a\", \"b\"], \"classes\": [0, 1],"
        "\"linear\": {\"coef\": [[0.5, -1.0]], \"intercept\": [0.25], \"link\": \"logistic\"}}",
        err, sizeof(err));
    CHECK_MSG(m != NULL, "%s", err);
    if (!m)
        return;
    /* columns in another order, an extra column, a blank line */
    const char *csv = "id, b ,a\n7,1,2\n\n8,0,0\n";
    FILE *in = fmemopen((void *)csv, strlen(csv), "r");
    char *outbuf = NULL;
    size_t outlen = 0;
    FILE *out = open_memstream(&outbuf, &outlen);
    CHECK_EQ_INT(ks_model_predict_csv(m, in, out, err, sizeof(err)), 0);
    fclose(in);
    fclose(out);
    CHECK_EQ_STR(outbuf, "0.43782349911420193,0.56217650088579807\n0.43782349911420193,0.56217650088579807\n");
    free(outbuf);

    /* an empty cell is missing (NaN propagates in a linear model) */
    csv = "a,b\n,1\n";
    in = fmemopen((void *)csv, strlen(csv), "r");
    out = open_memstream(&outbuf, &outlen);
    CHECK_EQ_INT(ks_model_predict_csv(m, in, out, err, sizeof(err)), 0);
    fclose(in);
    fclose(out);
    CHECK_EQ_STR(outbuf, "nan,nan\n");
    free(outbuf);

    /* a missing column and a bad number are refused with the line */
    const char *bad[][2] = {{"a,c\n1,2\n", "no column 'b'"}, {"a,b\n1,x\n", "line 2"},
                            {"a,b\n1\n", "line 2: 1 fields"}, {"\n\n", "empty"}};
    for (size_t i = 0; i < 4; i++) {
        in = fmemopen((void *)bad[i][0], strlen(bad[i][0]), "r");
        out = open_memstream(&outbuf, &outlen);
        err[0] = 0;
        CHECK(ks_model_predict_csv(m, in, out, err, sizeof(err)) != 0);
        CHECK_CONTAINS(err, bad[i][1]);
        fclose(in);
        fclose(out);
        free(outbuf);
    }

    out = open_memstream(&outbuf, &outlen);
    CHECK_EQ_INT(ks_model_describe(m, out), 0);
    fclose(out);
    CHECK_CONTAINS(outbuf, "task: classification");
    CHECK_CONTAINS(outbuf, "  1: b");
    CHECK_CONTAINS(outbuf, "version: sha256:");
    free(outbuf);
    ks_model_unref(m);
}

/* Hand-written XGBoost and LightGBM files: semantics at the threshold and
 * the refusals that need a message. */
static void test_xgboost_lightgbm_small(void)
{
    char err[512] = "";
    ks_model_t *m = NULL;
    /* one stump: x < 0.5 (float) left -> -1, else +1; missing goes right; base_score 0.5 */
    const char *xgb =
        "{\"learner\": {\"feature_names\": [\"x\"], \"gradient_booster\": {\"model\": {\"trees\": [{"
        "\"left_children\": [1, -1, -1], \"right_children\": [2, -1, -1], \"split_indices\": [0, 0, 0],"
        "\"split_conditions\": [0.5, -1, 1], \"default_left\": [0, 0, 0], \"split_type\": [%d, 0, 0],"
        "\"tree_param\": {\"num_nodes\": \"3\", \"size_leaf_vector\": \"1\"}}], \"tree_info\": [0]},"
        "\"name\": \"gbtree\"}, \"learner_model_param\": {\"base_score\": \"[5E-1]\", \"num_class\": \"0\","
        "\"num_feature\": \"1\", \"num_target\": \"1\"}, \"objective\": {\"name\": \"%s\"}},"
        "\"version\": [3, 2, 0]}";
    char buf[2048];
    snprintf(buf, sizeof(buf), xgb, 0, "reg:squarederror");
    CHECK_EQ_INT(ks_model_load_buffer("x.json", buf, strlen(buf), &m, err, sizeof(err)), 0);
    if (m) {
        double X[] = {0.5, 0.49999997, NAN, 0.4999999999};
        double y[4];
        CHECK_EQ_INT(ks_model_predict(m, X, 4, y), 0);
        CHECK_NEAR(y[0], 1.5, 0);   /* 0.5 < 0.5 is false */
        CHECK_NEAR(y[1], -0.5, 0);  /* the float just below 0.5 */
        CHECK_NEAR(y[2], 1.5, 0);   /* missing -> default (right) */
        CHECK_NEAR(y[3], 1.5, 0);   /* rounds to 0.5f first, as XGBoost's float input */
        CHECK_EQ_STR(m->source, "xgboost 3.2.0");
        ks_model_unref(m);
    }
    snprintf(buf, sizeof(buf), xgb, 1, "reg:squarederror");
    CHECK(ks_model_load_buffer("x.json", buf, strlen(buf), &m, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, "categorical splits");
    snprintf(buf, sizeof(buf), xgb, 0, "binary:hinge");
    CHECK(ks_model_load_buffer("x.json", buf, strlen(buf), &m, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, "binary:hinge");

    /* LightGBM: one split at 0.5 on x (missing type NaN, default left), binary */
    const char *lgb = "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n"
        "max_feature_idx=0\nobjective=binary sigmoid:1\nfeature_names=x\n\n"
        "Tree=0\nnum_leaves=2\nnum_cat=0\nsplit_feature=0\nthreshold=0.5\ndecision_type=%d\n"
        "left_child=-1\nright_child=%s\nleaf_value=-1 1\nshrinkage=1\n\n\nend of trees\n";
    snprintf(buf, sizeof(buf), lgb, 10, "-2");
    CHECK_EQ_INT(ks_model_load_buffer("l.txt", buf, strlen(buf), &m, err, sizeof(err)), 0);
    if (m) {
        double X[] = {0.5, 0.50000000000000011, NAN};
        double y[6];
        CHECK_EQ_INT(ks_model_predict(m, X, 3, y), 0);
        CHECK_NEAR(y[1], 1 / (1 + exp(1.0)), 1e-15);  /* 0.5 <= 0.5 left */
        CHECK_NEAR(y[3], 1 / (1 + exp(-1.0)), 1e-15); /* just above: right */
        CHECK_NEAR(y[5], 1 / (1 + exp(1.0)), 1e-15);  /* NaN: default left */
        CHECK_EQ_INT(m->n_classes, 2);
        ks_model_unref(m);
    }
    snprintf(buf, sizeof(buf), lgb, 10, "0"); /* right child = the root: a cycle */
    CHECK(ks_model_load_buffer("l.txt", buf, strlen(buf), &m, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, "reached twice");
    snprintf(buf, sizeof(buf), lgb, 10, "-9");
    CHECK(ks_model_load_buffer("l.txt", buf, strlen(buf), &m, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, "out of range");
    snprintf(buf, sizeof(buf), lgb, 10, "-2");
    buf[strlen(buf) - 14] = '\0'; /* truncated before "end of trees" */
    CHECK(ks_model_load_buffer("l.txt", buf, strlen(buf), &m, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, "truncated");
}

/* Many threads predicting with one model while taking and dropping
 * references: every thread sees the same outputs, the model outlives them. */
typedef struct {
    ks_model_t *m;
    const double *X;
    const double *want;
    size_t rows;
    int mismatches;
} thread_arg_t;

static void *predict_thread(void *p)
{
    thread_arg_t *a = p;
    double out[64 * 2];
    for (int it = 0; it < 200; it++) {
        ks_model_t *m = ks_model_ref(a->m);
        size_t n = (size_t)(it % 7) * 9 + 1;
        if (n > a->rows)
            n = a->rows;
        ks_model_predict(m, a->X, n, out);
        if (memcmp(out, a->want, n * 2 * sizeof(double)) != 0)
            a->mismatches++;
        ks_model_unref(m);
    }
    return NULL;
}

static void test_threads(void)
{
    char err[512] = "";
    ks_model_t *m = load(HEAD("classification")
        "\"model_type\": \"tree_ensemble\", \"feature_names\": [\"a\", \"b\"], \"classes\": [0, 1],"
        "\"tree_ensemble\": {\"comparison\": \"float32\", \"n_raw\": 1, \"base_score\": [0.1], \"link\": \"logistic\","
        "\"trees\": [{\"left\": [1, 3, -1, -1, -1], \"right\": [2, 4, -1, -1, -1], \"feature\": [0, 1, 0, 0, 0],"
        "\"threshold\": [0.5, -1, 0, 0, 0], \"missing_left\": [0, 1, 0, 0, 0], \"value\": [0, 0, 0.7, -0.3, 0.2]},"
        "{\"left\": [1, -1, -1], \"right\": [2, -1, -1], \"feature\": [1, 0, 0], \"threshold\": [0.25, 0, 0],"
        "\"value\": [0, 1, -1]}]}}",
        err, sizeof(err));
    CHECK_MSG(m != NULL, "%s", err);
    if (!m)
        return;
    double X[64 * 2], want[64 * 2];
    for (int i = 0; i < 128; i++)
        X[i] = (i % 11 == 0) ? NAN : (double)((i * 37) % 17) / 8.0 - 1.0;
    CHECK_EQ_INT(ks_model_predict(m, X, 64, want), 0);
    pthread_t th[4];
    thread_arg_t args[4];
    for (int t = 0; t < 4; t++) {
        args[t] = (thread_arg_t){m, X, want, 64, 0};
        pthread_create(&th[t], NULL, predict_thread, &args[t]);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        CHECK_EQ_INT(args[t].mismatches, 0);
    }
    CHECK_EQ_INT(m->refcount, 1);
    ks_model_unref(m);
}

int main(void)
{
    RUN(test_sha256);
    RUN(test_logistic_binary);
    RUN(test_logistic_multinomial);
    RUN(test_linear_regression_scaled);
    RUN(test_tree_comparison_rules);
    RUN(test_forest_average);
    RUN(test_mlp);
    RUN(test_refcount);
    RUN(test_refusals);
    RUN(test_load_file);
    RUN(test_predict_csv);
    RUN(test_xgboost_lightgbm_small);
    RUN(test_threads);
    return test_summary();
}
