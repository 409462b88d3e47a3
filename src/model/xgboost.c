/*
 * xgboost.c - XGBoost JSON model files (Booster.save_model("m.json")).
 *
 * Read: learner.learner_model_param (num_feature, num_class, base_score -
 * a number written as a string, "5E-1" or "[5E-1]" in XGBoost >= 2, or a
 * per-class vector "[a,b,c]"), learner.objective.name, learner.feature_names,
 * and learner.gradient_booster: gbtree (or dart, whose weight_drop scales each
 * tree) with model.trees[] and model.tree_info[] (the output group of each
 * tree). Per tree: left_children, right_children (-1 at leaves),
 * split_indices, split_conditions (the leaf value at leaves), default_left,
 * split_type (1 = categorical: refused with a message).
 *
 * Semantics, as XGBoost's CPU predictor: the input is held as float32; a
 * split goes left iff float(x) < float(condition), a missing value (NaN)
 * goes the default direction; leaf values are float32 and summed in float32
 * in tree order onto the base margin. In the shared engine the comparison
 * becomes x <= nextafterf(condition, -inf) with inputs rounded to float32
 * (equivalent for every float), and the ensemble accumulates in float32.
 * The base margin is base_score through the objective's inverse link:
 * logit for binary:logistic / reg:logistic, log for count:poisson and the
 * other log-link objectives, as is for the rest.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "model/backends.h"
#include "model/model_internal.h"
#include "base/json.h"

#define XGB_MAX_FEATURES 1000000
#define XGB_MAX_CLASSES  4096

typedef struct xgb_impl {
    ks_ensemble_t *ens;
} xgb_impl_t;

static void xgb_free(void *p)
{
    xgb_impl_t *x = p;
    if (!x)
        return;
    ks_ensemble_free(x->ens);
    free(x);
}

static int xgb_probe(const char *buf, size_t len)
{
    return ks_probe_json_marker(buf, len, "\"learner\"");
}

/* A model parameter XGBoost writes as a string ("20") or number. */
static int param_int(const ks_json_t *obj, const char *key, long long lo, long long hi, long long dflt,
                     long long *out, char *errbuf, size_t errsize)
{
    const ks_json_t *v = ks_json_get(obj, key);
    double d;
    if (!v) {
        if (dflt < lo)
            return ks_err(errbuf, errsize, KS_EINVAL, "learner_model_param has no '%s'", key);
        *out = dflt;
        return KS_OK;
    }
    if (ks_mj_number_lenient(v, &d) || !(d >= (double)lo && d <= (double)hi) || d != floor(d))
        return ks_json_err(v, errbuf, errsize, "'%s' must be an integer in [%lld, %lld]", key, lo, hi);
    *out = (long long)d;
    return KS_OK;
}

/* base_score: "5E-1", "[5E-1]", "[1E0,2E0,3E0]" or a number -> n values. */
static int parse_base_score(const ks_json_t *v, double *out, size_t n, char *errbuf, size_t errsize)
{
    if (!v) {
        for (size_t i = 0; i < n; i++)
            out[i] = 0.5;
        return KS_OK;
    }
    if (ks_json_is(v, KS_JSON_NUMBER)) {
        for (size_t i = 0; i < n; i++)
            out[i] = v->u.num;
        return KS_OK;
    }
    const char *s = ks_json_str(v);
    if (!s)
        return ks_json_err(v, errbuf, errsize, "base_score must be a number or a string");
    const char *p = s, *end = s + strlen(s);
    if (*p == '[') {
        p++;
        if (end > p && end[-1] == ']')
            end--;
        else
            return ks_json_err(v, errbuf, errsize, "base_score '%s' is malformed", s);
    }
    size_t k = 0;
    double vals[XGB_MAX_CLASSES];
    while (p < end) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        const char *e = c ? c : end;
        if (k >= XGB_MAX_CLASSES || ks_parse_double(p, e, &vals[k]) || !isfinite(vals[k]))
            return ks_json_err(v, errbuf, errsize, "base_score '%s' is malformed", s);
        k++;
        p = c ? c + 1 : end;
    }
    if (k == 1) {
        for (size_t i = 0; i < n; i++)
            out[i] = vals[0];
    } else if (k == n) {
        memcpy(out, vals, n * sizeof(double));
    } else {
        return ks_json_err(v, errbuf, errsize, "base_score has %zu values, the model has %zu outputs", k, n);
    }
    return KS_OK;
}

typedef enum { MARGIN_IDENTITY, MARGIN_LOGIT, MARGIN_LOG } margin_t;

static int objective_setup(const char *obj, ks_model_t *m, ks_ensemble_t *e, long long num_class,
                           margin_t *margin, char *errbuf, size_t errsize)
{
    *margin = MARGIN_IDENTITY;
    m->task = KS_TASK_REGRESSION;
    e->link = KS_LINK_IDENTITY;
    if (!obj)
        return ks_err(errbuf, errsize, KS_EINVAL, "learner.objective.name is missing");
    if (!strcmp(obj, "binary:logistic")) {
        m->task = KS_TASK_CLASSIFICATION;
        e->link = KS_LINK_SIGMOID_BINARY;
        *margin = MARGIN_LOGIT;
    } else if (!strcmp(obj, "reg:logistic")) {
        e->link = KS_LINK_SIGMOID;
        *margin = MARGIN_LOGIT;
    } else if (!strcmp(obj, "multi:softprob") || !strcmp(obj, "multi:softmax")) {
        m->task = KS_TASK_CLASSIFICATION;
        e->link = KS_LINK_SOFTMAX;
        if (num_class < 2)
            return ks_err(errbuf, errsize, KS_EINVAL, "objective %s needs num_class >= 2", obj);
    } else if (!strcmp(obj, "count:poisson") || !strcmp(obj, "reg:gamma") || !strcmp(obj, "reg:tweedie")) {
        e->link = KS_LINK_EXP;
        *margin = MARGIN_LOG;
    } else if (!strcmp(obj, "reg:squarederror") || !strcmp(obj, "reg:linear") ||
               !strcmp(obj, "reg:absoluteerror") || !strcmp(obj, "reg:pseudohubererror") ||
               !strcmp(obj, "reg:quantileerror") || !strcmp(obj, "reg:squaredlogerror") ||
               !strncmp(obj, "rank:", 5)) {
        /* identity */
    } else {
        return ks_err(errbuf, errsize, KS_EINVAL,
                      "objective '%s' is not supported (binary:logistic, reg:logistic, reg:squarederror, "
                      "multi:softprob, multi:softmax, count:poisson and other identity/log-link regressions)",
                      obj);
    }
    if (m->task == KS_TASK_CLASSIFICATION)
        ks_model_default_class_labels(m, e->link == KS_LINK_SIGMOID_BINARY ? 2 : (size_t)num_class);
    m->objective = ks_xstrdup(obj);
    return KS_OK;
}

static int load_tree(ks_ensemble_t *e, const ks_json_t *tr, size_t t, size_t group, double weight,
                     char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    int64_t *left = NULL, *right = NULL, *feat = NULL, *dleft = NULL, *stype = NULL;
    double *cond = NULL;
    ks_tree_node_spec_t *spec = NULL;
    size_t n, len;
    char sub[300];

    const ks_json_t *tp = ks_json_get(tr, "tree_param");
    double slv = 1;
    if (tp && ks_json_get(tp, "size_leaf_vector") &&
        (ks_mj_number_lenient(ks_json_get(tp, "size_leaf_vector"), &slv) || slv > 1)) {
        rc = ks_err(errbuf, errsize, KS_EINVAL,
                    "tree %zu: vector-leaf trees (multi_strategy=multi_output_tree) are not supported", t);
        goto out;
    }
    if ((rc = ks_mj_i64_array(ks_json_get(tr, "left_children"), "left_children", KS_ANY_LEN, -1, INT32_MAX, &left,
                              &n, sub, sizeof(sub))) ||
        (rc = ks_mj_i64_array(ks_json_get(tr, "right_children"), "right_children", n, -1, INT32_MAX, &right, &len,
                              sub, sizeof(sub))) ||
        (rc = ks_mj_i64_array(ks_json_get(tr, "split_indices"), "split_indices", n, 0, INT32_MAX, &feat, &len, sub,
                              sizeof(sub))) ||
        (rc = ks_mj_f64_array(ks_json_get(tr, "split_conditions"), "split_conditions", n, 0, &cond, &len, sub,
                              sizeof(sub))) ||
        (rc = ks_mj_i64_array(ks_json_get(tr, "default_left"), "default_left", n, 0, 1, &dleft, &len, sub,
                              sizeof(sub))))
        goto fail;
    if (ks_json_get(tr, "split_type") &&
        (rc = ks_mj_i64_array(ks_json_get(tr, "split_type"), "split_type", n, 0, 1, &stype, &len, sub, sizeof(sub))))
        goto fail;
    if (n == 0) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "tree %zu has no nodes", t);
        goto out;
    }
    spec = ks_xcalloc(n, sizeof(*spec));
    for (size_t i = 0; i < n; i++) {
        ks_tree_node_spec_t *s = &spec[i];
        if (left[i] < 0) {
            float leaf = (float)cond[i];
            if (weight != 1.0)
                leaf = (float)(leaf * (float)weight);
            if (!isfinite(leaf)) {
                rc = ks_err(errbuf, errsize, KS_EINVAL, "tree %zu: node %zu: leaf value is not finite", t, i);
                goto out;
            }
            s->kind = KS_SPLIT_LEAF;
            s->leaf = leaf;
            continue;
        }
        if (stype && stype[i] == 1) {
            rc = ks_err(errbuf, errsize, KS_EINVAL,
                        "tree %zu: node %zu: categorical splits (enable_categorical=True) are not supported; "
                        "one-hot or ordinal-encode the feature instead", t, i);
            goto out;
        }
        float c = (float)cond[i];
        if (isnan(c)) {
            rc = ks_err(errbuf, errsize, KS_EINVAL, "tree %zu: node %zu: split condition is NaN", t, i);
            goto out;
        }
        s->kind = KS_SPLIT_NUM;
        s->left = left[i];
        s->right = right[i];
        s->feature = feat[i];
        s->default_left = (int)dleft[i];
        /* float x < c  <=>  x <= the float just below c (for c = -inf, nothing is
         * below: -inf stays, which only differs for an input of -inf). */
        s->threshold = isinf(c) && c < 0 ? -INFINITY : (double)nextafterf(c, -INFINITY);
    }
    rc = ks_ensemble_add_tree(e, spec, n, 0, group, errbuf, errsize);
    goto out;
fail:
    rc = ks_err(errbuf, errsize, rc, "tree %zu: %s", t, sub);
out:
    free(left), free(right), free(feat), free(dleft), free(stype), free(cond), free(spec);
    return rc;
}

static int xgb_load(ks_model_t *m, const char *buf, size_t len, char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    ks_json_t *root = NULL;
    xgb_impl_t *x = ks_xcalloc(1, sizeof(*x));
    int64_t *tree_info = NULL;
    double *weights = NULL, *base = NULL;
    size_t n_info = 0, n_w = 0;
    char sub[400];

    if ((rc = ks_json_parse(buf, len, &root, errbuf, errsize)))
        goto out;
    const ks_json_t *learner = ks_json_need(root, "learner", KS_JSON_OBJECT, errbuf, errsize);
    if (!learner) {
        rc = KS_EINVAL;
        goto out;
    }
    const ks_json_t *mp = ks_json_need(learner, "learner_model_param", KS_JSON_OBJECT, errbuf, errsize);
    if (!mp) {
        rc = KS_EINVAL;
        goto out;
    }
    long long nf, num_class, num_target;
    if ((rc = param_int(mp, "num_feature", 1, XGB_MAX_FEATURES, -1, &nf, errbuf, errsize)) ||
        (rc = param_int(mp, "num_class", 0, XGB_MAX_CLASSES, 0, &num_class, errbuf, errsize)) ||
        (rc = param_int(mp, "num_target", 1, XGB_MAX_CLASSES, 1, &num_target, errbuf, errsize)))
        goto out;
    if (num_target > 1) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "multi-target models (num_target=%lld) are not supported", num_target);
        goto out;
    }
    size_t n_raw = num_class >= 2 ? (size_t)num_class : 1;
    x->ens = ks_ensemble_new(KS_CMP_F32, (size_t)nf, n_raw, 1);
    x->ens->acc_f32 = 1;

    const char *obj = ks_json_str(ks_json_get(ks_json_get(learner, "objective"), "name"));
    margin_t margin;
    if ((rc = objective_setup(obj, m, x->ens, num_class, &margin, errbuf, errsize)))
        goto out;

    base = ks_xmalloc(n_raw * sizeof(double));
    if ((rc = parse_base_score(ks_json_get(mp, "base_score"), base, n_raw, errbuf, errsize)))
        goto out;
    for (size_t g = 0; g < n_raw; g++) {
        /* XGBoost converts in float (ObjFunction::ProbToMargin). */
        float b = (float)base[g], mg = b;
        if (margin == MARGIN_LOGIT) {
            if (!(b > 0.0f && b < 1.0f)) {
                rc = ks_err(errbuf, errsize, KS_EINVAL, "base_score %g must be in (0, 1) for %s", base[g], obj);
                goto out;
            }
            mg = -logf(1.0f / b - 1.0f);
        } else if (margin == MARGIN_LOG) {
            if (!(b > 0.0f)) {
                rc = ks_err(errbuf, errsize, KS_EINVAL, "base_score %g must be positive for %s", base[g], obj);
                goto out;
            }
            mg = logf(b);
        }
        x->ens->base[g] = mg;
    }

    /* Feature names (optional in the file). */
    const ks_json_t *names = ks_json_get(learner, "feature_names");
    if (names && ks_json_len(names) > 0) {
        size_t nn;
        if ((rc = ks_mj_str_array(names, "feature_names", (size_t)nf, &m->feature_names, &nn, errbuf, errsize)))
            goto out;
        m->n_features = nn;
    } else {
        ks_model_default_feature_names(m, (size_t)nf);
    }

    const ks_json_t *gb = ks_json_need(learner, "gradient_booster", KS_JSON_OBJECT, errbuf, errsize);
    if (!gb) {
        rc = KS_EINVAL;
        goto out;
    }
    const char *booster = ks_json_str(ks_json_get(gb, "name"));
    const ks_json_t *model = NULL;
    if (booster && !strcmp(booster, "gbtree")) {
        model = ks_json_get(gb, "model");
    } else if (booster && !strcmp(booster, "dart")) {
        model = ks_json_get(ks_json_get(gb, "gbtree"), "model");
        if ((rc = ks_mj_f64_array(ks_json_get(gb, "weight_drop"), "weight_drop", KS_ANY_LEN, 0, &weights, &n_w,
                                  errbuf, errsize)))
            goto out;
    } else {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "booster '%s' is not supported (gbtree and dart are)",
                    booster ? booster : "(missing)");
        goto out;
    }
    const ks_json_t *trees = ks_json_need(model, "trees", KS_JSON_ARRAY, errbuf, errsize);
    if (!trees) {
        rc = KS_EINVAL;
        goto out;
    }
    size_t nt = ks_json_len(trees);
    if ((rc = ks_mj_i64_array(ks_json_get(model, "tree_info"), "tree_info", nt, 0, (int64_t)n_raw - 1, &tree_info,
                              &n_info, errbuf, errsize)))
        goto out;
    if (weights && n_w != nt) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "weight_drop has %zu values for %zu trees", n_w, nt);
        goto out;
    }
    for (size_t t = 0; t < nt; t++) {
        rc = load_tree(x->ens, ks_json_at(trees, t), t, (size_t)tree_info[t], weights ? weights[t] : 1.0, sub,
                       sizeof(sub));
        if (rc) {
            rc = ks_err(errbuf, errsize, rc, "%s", sub);
            goto out;
        }
    }
    m->n_outputs = ks_link_n_outputs(x->ens->link, n_raw);

    const ks_json_t *ver = ks_json_get(root, "version");
    if (ks_json_len(ver) == 3) {
        char src[64];
        snprintf(src, sizeof(src), "xgboost %d.%d.%d", (int)ks_json_num(ks_json_at(ver, 0), 0),
                 (int)ks_json_num(ks_json_at(ver, 1), 0), (int)ks_json_num(ks_json_at(ver, 2), 0));
        m->source = ks_xstrdup(src);
    } else {
        m->source = ks_xstrdup("xgboost");
    }
out:
    ks_json_free(root);
    free(tree_info);
    free(weights);
    free(base);
    if (rc) {
        xgb_free(x);
        x = NULL;
    }
    m->impl = x;
    return rc;
}

static int xgb_predict(const ks_model_t *m, const double *X, size_t n_rows, double *out)
{
    const xgb_impl_t *x = m->impl;
    ks_ensemble_predict(x->ens, X, n_rows, out);
    return KS_OK;
}

const ks_model_backend_t ks_model_backend_xgboost = {
    .name = "XGBoost JSON",
    .probe = xgb_probe,
    .load = xgb_load,
    .predict = xgb_predict,
    .free_impl = xgb_free,
};
