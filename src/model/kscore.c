/*
 * kscore.c - the kscore JSON model format, version 1 (docs/model-format.md):
 * what python/ (kscore-export) writes for scikit-learn models, and what a
 * hand-written linear model looks like.
 *
 *   { "format": "kscore-model", "format_version": 1,
 *     "model_type": "linear" | "tree_ensemble" | "mlp",
 *     "task": "classification" | "regression",
 *     "feature_names": [...], "classes": [...], "version": "...",
 *     "objective": "...", "metadata": {...},
 *     "preprocess": [ {"type": "standard_scaler", "mean": [...], "scale": [...]},
 *                     {"type": "minmax_scaler", "scale": [...], "min": [...]} ],
 *     "linear": {...} | "tree_ensemble": {...} | "mlp": {...} }
 *
 * Every array is checked against the sizes the header declares before
 * anything is evaluated; unknown model types, links or pre-processing steps
 * are refused by name. Numbers come from base/json.c, correctly rounded, so a
 * double written by Python's repr() reads back bit-identical.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "model/backends.h"
#include "model/model_internal.h"
#include "base/json.h"
#include "model/reference.h"

#define KS_MAX_FEATURES   1000000
#define KS_MAX_CLASSES    4096
#define KS_MLP_MAX_WIDTH  1024
#define KS_MLP_MAX_LAYERS 64
#define KS_ROWS_SCRATCH   4096

typedef enum { MT_LINEAR, MT_TREES, MT_MLP } model_type_t;
typedef enum { ACT_IDENTITY, ACT_RELU, ACT_TANH, ACT_LOGISTIC } activation_t;

typedef struct mlp_layer {
    size_t n_in, n_out;
    double *weights;   /* n_in x n_out, row-major (scikit-learn coefs_[i]) */
    double *bias;      /* n_out */
} mlp_layer_t;

typedef struct kscore_impl {
    model_type_t type;
    ks_scaler_t *steps;
    size_t n_steps;
    size_t n_features;
    size_t n_raw;
    ks_link_t link;
    /* linear */
    double *coef;       /* n_raw x n_features */
    double *intercept;  /* n_raw */
    /* mlp */
    mlp_layer_t *layers;
    size_t n_layers;
    activation_t hidden;
    /* trees */
    ks_ensemble_t *ens;
} kscore_impl_t;

static void impl_free(void *p)
{
    kscore_impl_t *k = p;
    if (!k)
        return;
    for (size_t i = 0; i < k->n_steps; i++) {
        free(k->steps[i].offset);
        free(k->steps[i].scale);
    }
    free(k->steps);
    free(k->coef);
    free(k->intercept);
    for (size_t i = 0; i < k->n_layers; i++) {
        free(k->layers[i].weights);
        free(k->layers[i].bias);
    }
    free(k->layers);
    ks_ensemble_free(k->ens);
    free(k);
}

static int kscore_probe(const char *buf, size_t len)
{
    /* The marker string must appear near the top (the exporter writes it first). */
    return ks_probe_json_marker(buf, len, "\"kscore-model\"");
}

/* ---------------------------------------------------------------- links */

static int parse_link(const char *name, ks_task_t task, size_t n_raw, size_t n_classes, ks_link_t *out,
                      char *errbuf, size_t errsize)
{
    if (!name)
        name = "identity";
    if (task == KS_TASK_REGRESSION) {
        if (n_raw != 1)
            return ks_err(errbuf, errsize, KS_EINVAL,
                          "a regression model must have exactly 1 output (has %zu)", n_raw);
        if (!strcmp(name, "identity"))
            *out = KS_LINK_IDENTITY;
        else if (!strcmp(name, "logistic"))
            *out = KS_LINK_SIGMOID;
        else if (!strcmp(name, "exp"))
            *out = KS_LINK_EXP;
        else
            return ks_err(errbuf, errsize, KS_EINVAL,
                          "link '%s' is not supported for regression (use identity, logistic or exp)", name);
        return KS_OK;
    }
    if (!strcmp(name, "logistic") && n_raw == 1 && n_classes == 2)
        *out = KS_LINK_SIGMOID_BINARY;
    else if (!strcmp(name, "softmax") && n_raw == n_classes)
        *out = KS_LINK_SOFTMAX;
    else if (!strcmp(name, "identity") && n_raw == n_classes)
        *out = KS_LINK_IDENTITY;
    else if (!strcmp(name, "identity") && n_raw == 1 && n_classes == 2)
        *out = KS_LINK_BINARY_PROBA;
    else
        return ks_err(errbuf, errsize, KS_EINVAL,
                      "link '%s' with %zu raw outputs does not fit a classifier of %zu classes "
                      "(use logistic with 1 output for binary, softmax with one output per class)",
                      name, n_raw, n_classes);
    return KS_OK;
}

/* -------------------------------------------------------- pre-processing */

static int load_steps(kscore_impl_t *k, const ks_json_t *pre, char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    if (!pre)
        return KS_OK;
    if (!ks_json_is(pre, KS_JSON_ARRAY))
        return ks_json_err(pre, errbuf, errsize, "'preprocess' must be an array of steps");
    size_t n = ks_json_len(pre);
    k->steps = ks_xcalloc(n ? n : 1, sizeof(ks_scaler_t));
    k->n_steps = n;
    for (size_t i = 0; i < n; i++) {
        const ks_json_t *st = ks_json_at(pre, i);
        ks_scaler_t *s = &k->steps[i];
        const char *type = ks_json_str(ks_json_get(st, "type"));
        size_t len;
        const char *off_key, *scale_key;
        if (!type) {
            rc = ks_json_err(st, errbuf, errsize, "preprocess step %zu has no 'type'", i);
            goto out;
        }
        if (!strcmp(type, "standard_scaler")) {
            s->kind = KS_SCALE_STANDARD;
            off_key = "mean";
            scale_key = "scale";
        } else if (!strcmp(type, "minmax_scaler")) {
            s->kind = KS_SCALE_MINMAX;
            off_key = "min";
            scale_key = "scale";
        } else {
            rc = ks_json_err(st, errbuf, errsize,
                             "preprocess step type '%s' is not supported (standard_scaler, minmax_scaler)", type);
            goto out;
        }
        rc = ks_mj_f64_array(ks_json_get(st, off_key), off_key, k->n_features, 0, &s->offset, &len, errbuf,
                             errsize);
        if (rc)
            goto out;
        rc = ks_mj_f64_array(ks_json_get(st, scale_key), scale_key, k->n_features, 0, &s->scale, &len,
                             errbuf, errsize);
        if (rc)
            goto out;
    }
out:
    return rc;
}

/* ---------------------------------------------------------------- linear */

/* Checks that every row of a 2-D JSON array has `cols` items before anything
 * of rows x cols is allocated (a hostile file could otherwise claim a huge
 * matrix with a few bytes). */
static int check_matrix(const ks_json_t *m, const char *what, size_t cols, char *errbuf, size_t errsize)
{
    for (size_t r = 0; r < ks_json_len(m); r++) {
        const ks_json_t *row = ks_json_at(m, r);
        if (!ks_json_is(row, KS_JSON_ARRAY) || ks_json_len(row) != cols)
            return ks_json_err(row, errbuf, errsize, "'%s' row %zu must be an array of %zu numbers", what, r, cols);
    }
    return KS_OK;
}

static int load_linear(ks_model_t *m, kscore_impl_t *k, const ks_json_t *lin, char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    double *row = NULL;
    size_t len;
    if (!ks_json_is(lin, KS_JSON_OBJECT))
        return ks_err(errbuf, errsize, KS_EINVAL, "model_type 'linear' needs a 'linear' object");
    const ks_json_t *coef = ks_json_need(lin, "coef", KS_JSON_ARRAY, errbuf, errsize);
    if (!coef)
        return KS_EINVAL;
    k->n_raw = ks_json_len(coef);
    if (k->n_raw == 0 || k->n_raw > KS_MAX_CLASSES)
        return ks_json_err(coef, errbuf, errsize, "'coef' must have 1 to %d rows (has %zu)", KS_MAX_CLASSES,
                           k->n_raw);
    if ((rc = check_matrix(coef, "coef", k->n_features, errbuf, errsize)))
        goto out;
    k->coef = ks_xmalloc(k->n_raw * k->n_features * sizeof(double));
    for (size_t r = 0; r < k->n_raw; r++) {
        rc = ks_mj_f64_array(ks_json_at(coef, r), "coef row", k->n_features, 0, &row, &len, errbuf, errsize);
        if (rc)
            goto out;
        memcpy(k->coef + r * k->n_features, row, k->n_features * sizeof(double));
        free(row);
        row = NULL;
    }
    rc = ks_mj_f64_array(ks_json_get(lin, "intercept"), "intercept", k->n_raw, 0, &k->intercept, &len,
                         errbuf, errsize);
    if (rc)
        goto out;
    rc = parse_link(ks_json_str(ks_json_get(lin, "link")), m->task, k->n_raw, m->n_classes, &k->link, errbuf,
                    errsize);
out:
    free(row);
    return rc;
}

static void predict_linear(const kscore_impl_t *k, const double *X, size_t n, double *out)
{
    double raw[KS_MAX_CLASSES];
    size_t nf = k->n_features, n_out = ks_link_n_outputs(k->link, k->n_raw);
    for (size_t r = 0; r < n; r++) {
        const double *x = X + r * nf;
        for (size_t c = 0; c < k->n_raw; c++) {
            const double *w = k->coef + c * nf;
            double s = 0;
            for (size_t j = 0; j < nf; j++)
                s += x[j] * w[j];
            raw[c] = s + k->intercept[c];
        }
        ks_link_apply(k->link, 1.0, raw, k->n_raw, out + r * n_out);
    }
}

/* ------------------------------------------------------------------- mlp */

static int parse_activation(const char *s, activation_t *out)
{
    if (!s)
        return KS_EINVAL;
    if (!strcmp(s, "identity"))
        *out = ACT_IDENTITY;
    else if (!strcmp(s, "relu"))
        *out = ACT_RELU;
    else if (!strcmp(s, "tanh"))
        *out = ACT_TANH;
    else if (!strcmp(s, "logistic"))
        *out = ACT_LOGISTIC;
    else
        return KS_EINVAL;
    return KS_OK;
}

static int load_mlp(ks_model_t *m, kscore_impl_t *k, const ks_json_t *mlp, char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    double *row = NULL;
    size_t len;
    if (!ks_json_is(mlp, KS_JSON_OBJECT))
        return ks_err(errbuf, errsize, KS_EINVAL, "model_type 'mlp' needs an 'mlp' object");
    const char *act = ks_json_str(ks_json_get(mlp, "hidden_activation"));
    if (parse_activation(act, &k->hidden))
        return ks_json_err(mlp, errbuf, errsize,
                           "'hidden_activation' must be identity, relu, tanh or logistic (is %s)",
                           act ? act : "missing");
    const ks_json_t *layers = ks_json_need(mlp, "layers", KS_JSON_ARRAY, errbuf, errsize);
    if (!layers)
        return KS_EINVAL;
    size_t nl = ks_json_len(layers);
    if (nl == 0 || nl > KS_MLP_MAX_LAYERS)
        return ks_json_err(layers, errbuf, errsize, "'layers' must hold 1 to %d layers", KS_MLP_MAX_LAYERS);
    k->layers = ks_xcalloc(nl, sizeof(mlp_layer_t));
    k->n_layers = nl;
    size_t n_in = k->n_features;
    for (size_t i = 0; i < nl; i++) {
        const ks_json_t *L = ks_json_at(layers, i);
        mlp_layer_t *ly = &k->layers[i];
        const ks_json_t *W = ks_json_need(L, "weights", KS_JSON_ARRAY, errbuf, errsize);
        if (!W) {
            rc = KS_EINVAL;
            goto out;
        }
        if (ks_json_len(W) != n_in) {
            rc = ks_json_err(W, errbuf, errsize, "layer %zu: 'weights' has %zu rows, expected %zu (its inputs)",
                             i, ks_json_len(W), n_in);
            goto out;
        }
        const ks_json_t *first = ks_json_at(W, 0);
        size_t n_out = ks_json_len(first);
        if (n_out == 0 || n_out > KS_MLP_MAX_WIDTH) {
            rc = ks_json_err(W, errbuf, errsize, "layer %zu: width must be 1 to %d", i, KS_MLP_MAX_WIDTH);
            goto out;
        }
        if ((rc = check_matrix(W, "weights", n_out, errbuf, errsize)))
            goto out;
        ly->n_in = n_in;
        ly->n_out = n_out;
        ly->weights = ks_xmalloc(n_in * n_out * sizeof(double));
        for (size_t r = 0; r < n_in; r++) {
            rc = ks_mj_f64_array(ks_json_at(W, r), "weights row", n_out, 0, &row, &len, errbuf, errsize);
            if (rc)
                goto out;
            memcpy(ly->weights + r * n_out, row, n_out * sizeof(double));
            free(row);
            row = NULL;
        }
        rc = ks_mj_f64_array(ks_json_get(L, "bias"), "bias", n_out, 0, &ly->bias, &len, errbuf, errsize);
        if (rc)
            goto out;
        n_in = n_out;
    }
    k->n_raw = n_in;
    rc = parse_link(ks_json_str(ks_json_get(mlp, "link")), m->task, k->n_raw, m->n_classes, &k->link, errbuf,
                    errsize);
out:
    free(row);
    return rc;
}

static void activate(activation_t a, double *v, size_t n)
{
    switch (a) {
    case ACT_IDENTITY:
        break;
    case ACT_RELU:
        for (size_t i = 0; i < n; i++)
            v[i] = v[i] > 0 ? v[i] : 0.0;
        break;
    case ACT_TANH:
        for (size_t i = 0; i < n; i++)
            v[i] = tanh(v[i]);
        break;
    case ACT_LOGISTIC:
        for (size_t i = 0; i < n; i++)
            v[i] = 1.0 / (1.0 + exp(-v[i]));
        break;
    }
}

#define MLP_ROWS 4   /* rows computed together: each weight row is loaded once per MLP_ROWS rows */

/* One dense layer for n <= MLP_ROWS rows: out[r] = bias + x[r] . W, as axpys
 * over W's rows so the inner loop runs over contiguous weights and
 * vectorises. Every output element is computed by the same sequence of
 * operations whatever n is, so results do not depend on the batch size.
 * Built twice (AVX2 and baseline), picked at load time by the dynamic linker. */
typedef double v4d_t __attribute__((vector_size(32)));

/* Unaligned vector load/store (macros: a vector-typed function argument or
 * return value would change the ABI between the AVX2 and baseline builds). */
#define LOAD4(v, p)  memcpy(&(v), (p), sizeof(v4d_t))
#define STORE4(p, v) memcpy((p), &(v), sizeof(v4d_t))

/* One dense layer for n <= MLP_ROWS rows: out[r][j] = bias[j] + sum_i
 * x[r][i] * W[i][j], accumulated in i order in registers, four outputs (one
 * 256-bit vector) and up to four rows at a time, so each weight vector is
 * loaded once per four rows. Every output element is computed by the same
 * sequence of operations whatever n is (no fused multiply-add), so results
 * do not depend on the batch size. Built twice (AVX2 and baseline), picked
 * when the library is loaded. */
__attribute__((target_clones("avx2", "default")))
static void dense(const mlp_layer_t *ly, const double *restrict x, size_t x_stride, size_t n,
                  double *restrict out, size_t out_stride)
{
    const size_t n_in = ly->n_in, n_out = ly->n_out;
    const double *restrict W = ly->weights;
    size_t j = 0;
    for (; j + 4 <= n_out; j += 4) {
        v4d_t b;
        LOAD4(b, ly->bias + j);
        if (n == MLP_ROWS) {
            const double *x0 = x, *x1 = x + x_stride, *x2 = x + 2 * x_stride, *x3 = x + 3 * x_stride;
            v4d_t a0 = b, a1 = b, a2 = b, a3 = b;
            for (size_t i = 0; i < n_in; i++) {
                v4d_t w;
                LOAD4(w, W + i * n_out + j);
                a0 += x0[i] * w;
                a1 += x1[i] * w;
                a2 += x2[i] * w;
                a3 += x3[i] * w;
            }
            STORE4(out + j, a0);
            STORE4(out + out_stride + j, a1);
            STORE4(out + 2 * out_stride + j, a2);
            STORE4(out + 3 * out_stride + j, a3);
        } else {
            for (size_t r = 0; r < n; r++) {
                const double *xr = x + r * x_stride;
                v4d_t a = b;
                for (size_t i = 0; i < n_in; i++) {
                    v4d_t w;
                    LOAD4(w, W + i * n_out + j);
                    a += xr[i] * w;
                }
                STORE4(out + r * out_stride + j, a);
            }
        }
    }
    for (; j < n_out; j++) {
        for (size_t r = 0; r < n; r++) {
            const double *xr = x + r * x_stride;
            double a = ly->bias[j];
            for (size_t i = 0; i < n_in; i++)
                a += xr[i] * W[i * n_out + j];
            out[r * out_stride + j] = a;
        }
    }
}

static void predict_mlp(const kscore_impl_t *k, const double *X, size_t n, double *out)
{
    double a[MLP_ROWS * KS_MLP_MAX_WIDTH], b[MLP_ROWS * KS_MLP_MAX_WIDTH];
    size_t n_out = ks_link_n_outputs(k->link, k->n_raw);
    for (size_t r0 = 0; r0 < n; r0 += MLP_ROWS) {
        size_t nr = n - r0 < MLP_ROWS ? n - r0 : MLP_ROWS;
        const double *in = X + r0 * k->n_features;
        size_t in_stride = k->n_features;
        double *cur = a, *other = b;
        for (size_t l = 0; l < k->n_layers; l++) {
            const mlp_layer_t *ly = &k->layers[l];
            dense(ly, in, in_stride, nr, cur, KS_MLP_MAX_WIDTH);
            if (l + 1 < k->n_layers)
                for (size_t r = 0; r < nr; r++)
                    activate(k->hidden, cur + r * KS_MLP_MAX_WIDTH, ly->n_out);
            in = cur;
            in_stride = KS_MLP_MAX_WIDTH;
            cur = other;
            other = (double *)in;
        }
        for (size_t r = 0; r < nr; r++)
            ks_link_apply(k->link, 1.0, in + r * KS_MLP_MAX_WIDTH, k->n_raw, out + (r0 + r) * n_out);
    }
}

/* ------------------------------------------------------------------ trees */

static int load_trees(ks_model_t *m, kscore_impl_t *k, const ks_json_t *te, char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    double *thr = NULL, *val = NULL, *base = NULL;
    int64_t *left = NULL, *right = NULL, *feat = NULL, *miss = NULL, *cat = NULL;
    ks_tree_node_spec_t *spec = NULL;
    uint32_t **cat_left = NULL, **cat_known = NULL;
    size_t *cat_len = NULL, n_cats = 0, len;
    char sub[384];

    if (!ks_json_is(te, KS_JSON_OBJECT))
        return ks_err(errbuf, errsize, KS_EINVAL, "model_type 'tree_ensemble' needs a 'tree_ensemble' object");
    const char *cmp = ks_json_str(ks_json_get(te, "comparison"));
    ks_cmp_t c;
    if (cmp && !strcmp(cmp, "float32"))
        c = KS_CMP_F32;
    else if (cmp && !strcmp(cmp, "float64"))
        c = KS_CMP_F64;
    else
        return ks_json_err(te, errbuf, errsize, "'comparison' must be \"float32\" or \"float64\"");
    double n_raw_d = ks_json_num(ks_json_get(te, "n_raw"), 0), lw_d = ks_json_num(ks_json_get(te, "leaf_width"), 1);
    if (!(n_raw_d >= 1 && n_raw_d <= KS_MAX_CLASSES) || n_raw_d != floor(n_raw_d))
        return ks_json_err(te, errbuf, errsize, "'n_raw' must be an integer from 1 to %d", KS_MAX_CLASSES);
    k->n_raw = (size_t)n_raw_d;
    if (!(lw_d == 1 || lw_d == n_raw_d))
        return ks_json_err(te, errbuf, errsize, "'leaf_width' must be 1 or n_raw");
    size_t lw = (size_t)lw_d;
    k->ens = ks_ensemble_new(c, k->n_features, k->n_raw, lw);
    rc = ks_mj_f64_array(ks_json_get(te, "base_score"), "base_score", k->n_raw, 0, &base, &len, errbuf, errsize);
    if (rc)
        goto out;
    memcpy(k->ens->base, base, k->n_raw * sizeof(double));
    if (ks_json_bool(ks_json_get(te, "average"), 0))
        k->ens->tree_div = -1; /* set to the tree count below */
    rc = parse_link(ks_json_str(ks_json_get(te, "link")), m->task, k->n_raw, m->n_classes, &k->link, errbuf,
                    errsize);
    if (rc)
        goto out;
    k->ens->link = k->link;

    /* Categorical bitsets (optional): [{"left": [words], "known": [words]}] */
    const ks_json_t *cats = ks_json_get(te, "categories");
    if (cats) {
        if (!ks_json_is(cats, KS_JSON_ARRAY)) {
            rc = ks_json_err(cats, errbuf, errsize, "'categories' must be an array");
            goto out;
        }
        n_cats = ks_json_len(cats);
        cat_left = ks_xcalloc(n_cats ? n_cats : 1, sizeof(uint32_t *));
        cat_known = ks_xcalloc(n_cats ? n_cats : 1, sizeof(uint32_t *));
        cat_len = ks_xcalloc(n_cats ? n_cats : 1, sizeof(size_t));
        for (size_t i = 0; i < n_cats; i++) {
            const ks_json_t *cs = ks_json_at(cats, i);
            int64_t *w = NULL;
            size_t nw, nk;
            rc = ks_mj_i64_array(ks_json_get(cs, "left"), "categories.left", KS_ANY_LEN, 0, UINT32_MAX, &w, &nw,
                                 errbuf, errsize);
            if (rc)
                goto out;
            cat_len[i] = nw;
            cat_left[i] = ks_xmalloc((nw ? nw : 1) * sizeof(uint32_t));
            for (size_t j = 0; j < nw; j++)
                cat_left[i][j] = (uint32_t)w[j];
            free(w);
            if (ks_json_get(cs, "known")) {
                rc = ks_mj_i64_array(ks_json_get(cs, "known"), "categories.known", nw, 0, UINT32_MAX, &w, &nk,
                                     errbuf, errsize);
                if (rc)
                    goto out;
                cat_known[i] = ks_xmalloc((nk ? nk : 1) * sizeof(uint32_t));
                for (size_t j = 0; j < nk; j++)
                    cat_known[i][j] = (uint32_t)w[j];
                free(w);
            }
        }
    }

    const ks_json_t *trees = ks_json_need(te, "trees", KS_JSON_ARRAY, errbuf, errsize);
    if (!trees) {
        rc = KS_EINVAL;
        goto out;
    }
    size_t nt = ks_json_len(trees);
    if (nt == 0) {
        rc = ks_json_err(trees, errbuf, errsize, "'trees' is empty");
        goto out;
    }
    for (size_t t = 0; t < nt; t++) {
        const ks_json_t *tr = ks_json_at(trees, t);
        size_t n;
        rc = ks_mj_i64_array(ks_json_get(tr, "left"), "left", KS_ANY_LEN, -1, INT32_MAX, &left, &n, sub,
                             sizeof(sub));
        if (!rc)
            rc = ks_mj_i64_array(ks_json_get(tr, "right"), "right", n, -1, INT32_MAX, &right, &len, sub,
                                 sizeof(sub));
        if (!rc)
            rc = ks_mj_i64_array(ks_json_get(tr, "feature"), "feature", n, -2, INT32_MAX, &feat, &len, sub,
                                 sizeof(sub));
        if (!rc)
            rc = ks_mj_f64_array(ks_json_get(tr, "threshold"), "threshold", n, 1, &thr, &len, sub, sizeof(sub));
        if (!rc)
            rc = ks_mj_f64_array(ks_json_get(tr, "value"), "value", n * lw, 0, &val, &len, sub, sizeof(sub));
        if (!rc && ks_json_get(tr, "missing_left"))
            rc = ks_mj_i64_array(ks_json_get(tr, "missing_left"), "missing_left", n, 0, 1, &miss, &len, sub,
                                 sizeof(sub));
        if (!rc && ks_json_get(tr, "categorical"))
            rc = ks_mj_i64_array(ks_json_get(tr, "categorical"), "categorical", n, -1, (int64_t)n_cats - 1,
                                 &cat, &len, sub, sizeof(sub));
        double g = ks_json_num(ks_json_get(tr, "group"), 0);
        if (!rc && (!(g >= 0 && g < (double)k->n_raw) || g != floor(g)))
            rc = ks_err(sub, sizeof(sub), KS_EINVAL, "'group' must be an integer below n_raw");
        if (rc) {
            rc = ks_err(errbuf, errsize, rc, "tree %zu: %s", t, sub);
            goto out;
        }
        spec = ks_xrealloc(spec, (n ? n : 1) * sizeof(*spec));
        memset(spec, 0, (n ? n : 1) * sizeof(*spec));
        for (size_t i = 0; i < n; i++) {
            ks_tree_node_spec_t *s = &spec[i];
            if (left[i] < 0 || right[i] < 0) {
                s->kind = KS_SPLIT_LEAF;
                s->leaf = val[i * lw];
                s->leaf_vec = val + i * lw;
                continue;
            }
            s->left = left[i];
            s->right = right[i];
            s->feature = feat[i];
            s->default_left = miss ? (int)miss[i] : 0;
            if (cat && cat[i] >= 0) {
                s->kind = KS_SPLIT_CAT;
                s->cat_left = cat_left[cat[i]];
                s->cat_known = cat_known[cat[i]];
                s->cat_words = cat_len[cat[i]];
            } else {
                s->kind = KS_SPLIT_NUM;
                s->threshold = thr[i];
            }
        }
        rc = ks_ensemble_add_tree(k->ens, spec, n, 0, (size_t)g, errbuf, errsize);
        if (rc)
            goto out;
        free(left), free(right), free(feat), free(thr), free(val), free(miss), free(cat);
        left = right = feat = miss = cat = NULL;
        thr = val = NULL;
    }
    if (k->ens->tree_div < 0)
        k->ens->tree_div = (double)nt;
out:
    free(left), free(right), free(feat), free(thr), free(val), free(miss), free(cat);
    free(spec);
    free(base);
    for (size_t i = 0; i < n_cats; i++) {
        if (cat_left)
            free(cat_left[i]);
        if (cat_known)
            free(cat_known[i]);
    }
    free(cat_left);
    free(cat_known);
    free(cat_len);
    return rc;
}

/* ------------------------------------------------------------------ load */

static int kscore_load(ks_model_t *m, const char *buf, size_t len, char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    ks_json_t *root = NULL;
    kscore_impl_t *k = ks_xcalloc(1, sizeof(*k));
    size_t n;

    rc = ks_json_parse(buf, len, &root, errbuf, errsize);
    if (rc)
        goto out;
    const char *fmt = ks_json_str(ks_json_get(root, "format"));
    if (!fmt || strcmp(fmt, "kscore-model")) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "'format' must be \"kscore-model\"");
        goto out;
    }
    double fv = ks_json_num(ks_json_get(root, "format_version"), -1);
    if (fv != 1) {
        rc = ks_err(errbuf, errsize, KS_EINVAL,
                    "format_version %g is not supported by this kscore (it reads version 1)", fv);
        goto out;
    }
    const char *task = ks_json_str(ks_json_get(root, "task"));
    if (task && !strcmp(task, "classification"))
        m->task = KS_TASK_CLASSIFICATION;
    else if (task && !strcmp(task, "regression"))
        m->task = KS_TASK_REGRESSION;
    else {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "'task' must be \"classification\" or \"regression\"");
        goto out;
    }
    rc = ks_mj_str_array(ks_json_get(root, "feature_names"), "feature_names", KS_ANY_LEN, &m->feature_names,
                         &m->n_features, errbuf, errsize);
    if (rc)
        goto out;
    if (m->n_features == 0 || m->n_features > KS_MAX_FEATURES) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "'feature_names' must list 1 to %d features", KS_MAX_FEATURES);
        goto out;
    }
    k->n_features = m->n_features;
    if (m->task == KS_TASK_CLASSIFICATION) {
        rc = ks_mj_str_array(ks_json_get(root, "classes"), "classes", KS_ANY_LEN, &m->class_labels, &n, errbuf,
                             errsize);
        if (rc)
            goto out;
        m->n_classes = n;
        if (n < 2 || n > KS_MAX_CLASSES) {
            rc = ks_err(errbuf, errsize, KS_EINVAL, "'classes' must list 2 to %d classes", KS_MAX_CLASSES);
            goto out;
        }
    }
    const char *version = ks_json_str(ks_json_get(root, "version"));
    if (version && version[0])
        m->version = ks_xstrdup(version);
    const char *objective = ks_json_str(ks_json_get(root, "objective"));
    const ks_json_t *meta = ks_json_get(root, "metadata");
    const char *lib = ks_json_str(ks_json_get(meta, "library"));
    const char *libv = ks_json_str(ks_json_get(meta, "library_version"));
    const char *est = ks_json_str(ks_json_get(meta, "estimator"));
    if (lib) {
        size_t sl = strlen(lib) + (libv ? strlen(libv) : 0) + 2;
        m->source = ks_xmalloc(sl);
        snprintf(m->source, sl, "%s%s%s", lib, libv ? " " : "", libv ? libv : "");
    }

    rc = load_steps(k, ks_json_get(root, "preprocess"), errbuf, errsize);
    if (rc)
        goto out;
    const ks_json_t *ref = ks_json_get(root, "reference");
    if (ref && (rc = ks_reference_parse(ref, &m->reference, errbuf, errsize)))
        goto out;
    const char *mt = ks_json_str(ks_json_get(root, "model_type"));
    if (mt && !strcmp(mt, "linear")) {
        k->type = MT_LINEAR;
        rc = load_linear(m, k, ks_json_get(root, "linear"), errbuf, errsize);
    } else if (mt && !strcmp(mt, "tree_ensemble")) {
        k->type = MT_TREES;
        rc = load_trees(m, k, ks_json_get(root, "tree_ensemble"), errbuf, errsize);
    } else if (mt && !strcmp(mt, "mlp")) {
        k->type = MT_MLP;
        rc = load_mlp(m, k, ks_json_get(root, "mlp"), errbuf, errsize);
    } else {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "model_type '%s' is not supported (linear, tree_ensemble, mlp)",
                    mt ? mt : "(missing)");
    }
    if (rc)
        goto out;
    m->n_outputs = ks_link_n_outputs(k->link, k->n_raw);
    if (objective) {
        m->objective = ks_xstrdup(objective);
    } else {
        char o[160];
        if (est)
            snprintf(o, sizeof(o), "%s", est);
        else
            snprintf(o, sizeof(o), "%s (%s)", mt, ks_link_name(k->link));
        m->objective = ks_xstrdup(o);
    }
out:
    ks_json_free(root);
    if (rc) {
        impl_free(k);
        k = NULL;
    }
    m->impl = k;
    return rc;
}

/* --------------------------------------------------------------- predict */

static void predict_rows(const kscore_impl_t *k, const double *X, size_t n, double *out)
{
    switch (k->type) {
    case MT_LINEAR:
        predict_linear(k, X, n, out);
        break;
    case MT_MLP:
        predict_mlp(k, X, n, out);
        break;
    case MT_TREES:
        ks_ensemble_predict(k->ens, X, n, out);
        break;
    }
}

static int kscore_predict(const ks_model_t *m, const double *X, size_t n_rows, double *out)
{
    const kscore_impl_t *k = m->impl;
    size_t nf = k->n_features, n_out = m->n_outputs;
    if (k->n_steps == 0) {
        predict_rows(k, X, n_rows, out);
        return KS_OK;
    }
    double stack[KS_ROWS_SCRATCH];
    double *scratch = stack, *heap = NULL;
    size_t rows = KS_ROWS_SCRATCH / nf;
    if (rows == 0) {
        heap = ks_xmalloc(nf * sizeof(double));
        scratch = heap;
        rows = 1;
    }
    for (size_t r0 = 0; r0 < n_rows; r0 += rows) {
        size_t nb = n_rows - r0 < rows ? n_rows - r0 : rows;
        for (size_t r = 0; r < nb; r++) {
            const double *in = X + (r0 + r) * nf;
            for (size_t s = 0; s < k->n_steps; s++) {
                ks_scaler_apply(&k->steps[s], nf, in, scratch + r * nf);
                in = scratch + r * nf;
            }
        }
        predict_rows(k, scratch, nb, out + r0 * n_out);
    }
    free(heap);
    return KS_OK;
}

const ks_model_backend_t ks_model_backend_kscore = {
    .name = "kscore JSON",
    .probe = kscore_probe,
    .load = kscore_load,
    .predict = kscore_predict,
    .free_impl = impl_free,
};
