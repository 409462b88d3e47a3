/*
 * lightgbm.c - LightGBM text model files (Booster.save_model("m.txt")).
 *
 * The file is a header of key=value lines, then one block per tree
 * ("Tree=N" followed by key=value lines of space-separated arrays), then
 * "end of trees" and parameters we do not need. Internal nodes are numbered
 * 0..num_leaves-2 with the root at 0; a child c < 0 is the leaf ~c.
 *
 * LightGBM's decision rule (include/LightGBM/tree.h, NumericalDecision and
 * CategoricalDecision), mapped onto the shared engine (model_internal.h):
 *   missing type NaN  (decision_type bits 2-3 = 2): NaN -> default_left bit;
 *   missing type Zero (1): NaN is read as 0, and |x| <= 1e-35f goes the
 *                     default way -> KS_SPLIT_NUM_ZERO with the default_left bit;
 *   missing type None (0): NaN is read as 0.0 and compared -> a NaN goes where
 *                     0.0 goes: default_left = (0.0 <= threshold);
 *   otherwise left iff x <= threshold, both doubles.
 *   Categorical (bit 0): NaN and negative values go right; (int)x goes left
 *   iff its bit is set in cat_threshold[cat_boundaries[t] .. cat_boundaries[t+1]).
 * Before any of this, LightGBM's predict turns each dense row into (index,
 * value) pairs keeping only |x| > 1e-35f or NaN (c_api.cpp), so a tiny value
 * reads as 0.0: the ensemble's zero_band flag does the same.
 * Raw scores are summed in double in tree order (leaf values already carry the
 * shrinkage); the objective line picks the link.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "model/backends.h"
#include "model/model_internal.h"

#define LGB_MAX_LEAVES   (1 << 20)
#define LGB_MAX_FEATURES 1000000
#define LGB_MAX_CLASSES  4096

typedef struct lgb_impl {
    ks_ensemble_t *ens;
} lgb_impl_t;

static void lgb_free(void *p)
{
    lgb_impl_t *l = p;
    if (!l)
        return;
    ks_ensemble_free(l->ens);
    free(l);
}

static int lgb_probe(const char *buf, size_t len)
{
    if (!buf || len < 5 || memcmp(buf, "tree", 4) != 0 || (buf[4] != '\n' && buf[4] != '\r'))
        return 0;
    size_t scan = len < 4096 ? len : 4096;
    return memmem(buf, scan, "\nversion=", 9) != NULL || memmem(buf, scan, "\nnum_class=", 11) != NULL;
}

/* The text split into lines: NUL-terminated copies, '\r' stripped. */
typedef struct lines {
    char *text;
    char **line;
    size_t n;
} lines_t;

static void lines_split(lines_t *L, const char *buf, size_t len)
{
    L->text = ks_xstrndup(buf, len);
    size_t cap = 1;
    for (size_t i = 0; i < len; i++)
        cap += buf[i] == '\n';
    L->line = ks_xmalloc(cap * sizeof(char *));
    L->n = 0;
    char *p = L->text, *end = L->text + len;
    while (p <= end && L->n < cap) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        *e = '\0';
        if (e > p && e[-1] == '\r')
            e[-1] = '\0';
        L->line[L->n++] = p;
        if (!nl)
            break;
        p = nl + 1;
    }
}

static void lines_free(lines_t *L)
{
    free(L->text);
    free(L->line);
}

/* Value of "key=..." in lines [from, to) (stops at the first match), or NULL. */
static const char *find_kv(const lines_t *L, size_t from, size_t to, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = from; i < to; i++)
        if (!strncmp(L->line[i], key, kl) && L->line[i][kl] == '=')
            return L->line[i] + kl + 1;
    return NULL;
}

static int has_line(const lines_t *L, size_t from, size_t to, const char *text)
{
    for (size_t i = from; i < to; i++)
        if (!strcmp(L->line[i], text))
            return 1;
    return 0;
}

static size_t count_tokens(const char *s)
{
    size_t n = 0;
    while (*s) {
        while (*s == ' ')
            s++;
        if (!*s)
            break;
        n++;
        while (*s && *s != ' ')
            s++;
    }
    return n;
}

/* The next space-separated token of *s: returns its start, sets *end and
 * moves *s past it; NULL when only spaces are left. */
static const char *next_token(const char **s, const char **end)
{
    const char *p = *s;
    while (*p == ' ')
        p++;
    if (!*p)
        return NULL;
    const char *e = p;
    while (*e && *e != ' ')
        e++;
    *end = *s = e;
    return p;
}

/* Parse exactly `n` space-separated doubles / integers, nothing after. */
static int parse_doubles(const char *s, size_t n, double *out)
{
    const char *t, *e;
    for (size_t i = 0; i < n; i++)
        if (!(t = next_token(&s, &e)) || ks_parse_double(t, e, &out[i]))
            return KS_EINVAL;
    return next_token(&s, &e) ? KS_EINVAL : KS_OK;
}

static int parse_ints(const char *s, size_t n, int64_t *out)
{
    const char *t, *e;
    for (size_t i = 0; i < n; i++)
        if (!(t = next_token(&s, &e)) || ks_parse_i64(t, e, &out[i]))
            return KS_EINVAL;
    return next_token(&s, &e) ? KS_EINVAL : KS_OK;
}

static int header_int(const lines_t *L, size_t to, const char *key, int64_t lo, int64_t hi, int64_t dflt,
                      int64_t *out, char *errbuf, size_t errsize)
{
    const char *v = find_kv(L, 0, to, key);
    if (!v) {
        if (dflt < lo)
            return ks_err(errbuf, errsize, KS_EINVAL, "the header has no '%s' line", key);
        *out = dflt;
        return KS_OK;
    }
    if (ks_parse_i64(v, v + strlen(v), out) || *out < lo || *out > hi)
        return ks_err(errbuf, errsize, KS_EINVAL, "'%s=%s' must be an integer in [%lld, %lld]", key, v,
                      (long long)lo, (long long)hi);
    return KS_OK;
}

/* Objective line ("binary sigmoid:1", "multiclass num_class:3", ...) -> task and link. */
static int objective_link(const char *obj, ks_model_t *m, ks_ensemble_t *e, size_t n_class, char *errbuf,
                          size_t errsize)
{
    char name[64] = "";
    const char *sp = obj ? strchr(obj, ' ') : NULL;
    size_t nl = obj ? (sp ? (size_t)(sp - obj) : strlen(obj)) : 0;
    if (nl >= sizeof(name))
        nl = sizeof(name) - 1;
    if (obj)
        memcpy(name, obj, nl);
    name[nl] = '\0';
    const char *sig = obj ? strstr(obj, "sigmoid:") : NULL;
    double sigmoid = 1.0;
    if (sig && (ks_parse_double(sig + 8, sig + 8 + strcspn(sig + 8, " "), &sigmoid) || !(sigmoid > 0)))
        return ks_err(errbuf, errsize, KS_EINVAL, "bad sigmoid parameter in objective '%s'", obj);

    m->task = KS_TASK_REGRESSION;
    e->link = KS_LINK_IDENTITY;
    if (!strcmp(name, "binary")) {
        m->task = KS_TASK_CLASSIFICATION;
        e->link = KS_LINK_SIGMOID_BINARY;
        e->link_scale = sigmoid;
    } else if (!strcmp(name, "multiclass") || !strcmp(name, "softmax")) {
        m->task = KS_TASK_CLASSIFICATION;
        e->link = KS_LINK_SOFTMAX;
    } else if (!strcmp(name, "multiclassova") || !strcmp(name, "multiclass_ova") || !strcmp(name, "ova") ||
               !strcmp(name, "ovr")) {
        m->task = KS_TASK_CLASSIFICATION;
        e->link = KS_LINK_SIGMOID;
        e->link_scale = sigmoid;
    } else if (!strcmp(name, "poisson") || !strcmp(name, "gamma") || !strcmp(name, "tweedie")) {
        e->link = KS_LINK_EXP;
    } else if (!strcmp(name, "cross_entropy") || !strcmp(name, "xentropy")) {
        e->link = KS_LINK_SIGMOID;
    } else if (!strcmp(name, "cross_entropy_lambda") || !strcmp(name, "xentlambda")) {
        return ks_err(errbuf, errsize, KS_EINVAL, "objective '%s' is not supported", name);
    } else if (name[0] && strcmp(name, "regression") && strcmp(name, "regression_l2") &&
               strcmp(name, "regression_l1") && strcmp(name, "l1") && strcmp(name, "l2") &&
               strcmp(name, "mse") && strcmp(name, "mae") && strcmp(name, "rmse") &&
               strcmp(name, "huber") && strcmp(name, "fair") && strcmp(name, "quantile") &&
               strcmp(name, "mape") && strcmp(name, "lambdarank") && strcmp(name, "rank_xendcg") &&
               strcmp(name, "custom")) {
        return ks_err(errbuf, errsize, KS_EINVAL, "objective '%s' is not supported", name);
    }
    if (m->task == KS_TASK_CLASSIFICATION) {
        size_t k = e->link == KS_LINK_SIGMOID_BINARY ? 2 : n_class;
        if (k < 2 || (e->link != KS_LINK_SIGMOID_BINARY && e->n_raw != n_class))
            return ks_err(errbuf, errsize, KS_EINVAL, "objective '%s' does not match num_class=%zu", name,
                          n_class);
        ks_model_default_class_labels(m, k);
    } else if (e->n_raw != 1) {
        return ks_err(errbuf, errsize, KS_EINVAL, "objective '%s' with %zu outputs per row is not supported",
                      name[0] ? name : "(none)", e->n_raw);
    }
    m->objective = ks_xstrdup(obj && obj[0] ? obj : "custom");
    return KS_OK;
}

/* One "Tree=" block, lines [from, to). */
static int load_tree(ks_ensemble_t *e, const lines_t *L, size_t from, size_t to, size_t t, size_t group,
                     char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    int64_t num_leaves = 0, num_cat = 0, *feat = NULL, *dtype = NULL, *lc = NULL, *rc_ = NULL, *cat_b = NULL;
    int64_t *cat_t64 = NULL;
    double *thr = NULL, *leaf = NULL;
    uint32_t *cat_words = NULL;
    ks_tree_node_spec_t *spec = NULL;
    const char *v;

    v = find_kv(L, from, to, "num_leaves");
    if (!v || ks_parse_i64(v, v + strlen(v), &num_leaves) || num_leaves < 1 || num_leaves > LGB_MAX_LEAVES) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "Tree=%zu: missing or bad num_leaves", t);
        goto out;
    }
    v = find_kv(L, from, to, "num_cat");
    if (v && (ks_parse_i64(v, v + strlen(v), &num_cat) || num_cat < 0 || num_cat > num_leaves)) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "Tree=%zu: bad num_cat", t);
        goto out;
    }
    v = find_kv(L, from, to, "is_linear");
    if (v && strcmp(v, "0")) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "Tree=%zu: linear trees (linear_tree=true) are not supported", t);
        goto out;
    }
    size_t ni = (size_t)num_leaves - 1, nl = (size_t)num_leaves;
    leaf = ks_xmalloc(nl * sizeof(double));
    v = find_kv(L, from, to, "leaf_value");
    if (!v || count_tokens(v) != nl || parse_doubles(v, nl, leaf)) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "Tree=%zu: leaf_value must hold %zu numbers", t, nl);
        goto out;
    }
    for (size_t i = 0; i < nl; i++)
        if (!isfinite(leaf[i])) {
            rc = ks_err(errbuf, errsize, KS_EINVAL, "Tree=%zu: leaf %zu has a non-finite value", t, i);
            goto out;
        }
    spec = ks_xcalloc(ni + nl, sizeof(*spec));
    if (ni > 0) {
        static const char *const int_keys[] = {"split_feature", "decision_type", "left_child", "right_child"};
        int64_t **int_out[] = {&feat, &dtype, &lc, &rc_};
        for (size_t k = 0; k < 4; k++) {
            *int_out[k] = ks_xmalloc(ni * sizeof(int64_t));
            v = find_kv(L, from, to, int_keys[k]);
            if (!v || count_tokens(v) != ni || parse_ints(v, ni, *int_out[k])) {
                rc = ks_err(errbuf, errsize, KS_EINVAL, "Tree=%zu: %s must hold %zu integers", t, int_keys[k], ni);
                goto out;
            }
        }
        thr = ks_xmalloc(ni * sizeof(double));
        v = find_kv(L, from, to, "threshold");
        if (!v || count_tokens(v) != ni || parse_doubles(v, ni, thr)) {
            rc = ks_err(errbuf, errsize, KS_EINVAL, "Tree=%zu: threshold must hold %zu numbers", t, ni);
            goto out;
        }
    }
    size_t n_cat_words = 0;
    if (num_cat > 0) {
        cat_b = ks_xmalloc(((size_t)num_cat + 1) * sizeof(int64_t));
        v = find_kv(L, from, to, "cat_boundaries");
        if (!v || count_tokens(v) != (size_t)num_cat + 1 || parse_ints(v, (size_t)num_cat + 1, cat_b)) {
            rc = ks_err(errbuf, errsize, KS_EINVAL, "Tree=%zu: cat_boundaries must hold %lld integers", t,
                        (long long)num_cat + 1);
            goto out;
        }
        v = find_kv(L, from, to, "cat_threshold");
        n_cat_words = v ? count_tokens(v) : 0;
        if (!v || n_cat_words > 64u * 1024 * 1024) {
            rc = ks_err(errbuf, errsize, KS_EINVAL, "Tree=%zu: missing or oversized cat_threshold", t);
            goto out;
        }
        cat_t64 = ks_xmalloc((n_cat_words ? n_cat_words : 1) * sizeof(int64_t));
        cat_words = ks_xmalloc((n_cat_words ? n_cat_words : 1) * sizeof(uint32_t));
        if (parse_ints(v, n_cat_words, cat_t64)) {
            rc = ks_err(errbuf, errsize, KS_EINVAL, "Tree=%zu: cat_threshold must hold integers", t);
            goto out;
        }
        for (size_t i = 0; i < n_cat_words; i++) {
            if (cat_t64[i] < 0 || cat_t64[i] > UINT32_MAX) {
                rc = ks_err(errbuf, errsize, KS_EINVAL, "Tree=%zu: cat_threshold word out of range", t);
                goto out;
            }
            cat_words[i] = (uint32_t)cat_t64[i];
        }
        for (int64_t i = 0; i <= num_cat; i++)
            if (cat_b[i] < 0 || (size_t)cat_b[i] > n_cat_words || (i > 0 && cat_b[i] < cat_b[i - 1])) {
                rc = ks_err(errbuf, errsize, KS_EINVAL, "Tree=%zu: cat_boundaries out of range", t);
                goto out;
            }
    }
    for (size_t i = 0; i < nl; i++) {
        spec[ni + i].kind = KS_SPLIT_LEAF;
        spec[ni + i].leaf = leaf[i];
    }
    for (size_t i = 0; i < ni; i++) {
        ks_tree_node_spec_t *s = &spec[i];
        int64_t kids[2] = {lc[i], rc_[i]};
        for (int k = 0; k < 2; k++) {
            int64_t c = kids[k];
            /* internal c >= 0 -> c; leaf ~c -> ni + ~c; out of range -> caught by the engine */
            int64_t idx = c >= 0 ? c : (int64_t)ni + (-c - 1);
            if (c >= (int64_t)ni || (c < 0 && -c - 1 >= (int64_t)nl))
                idx = -1;
            if (k == 0)
                s->left = idx;
            else
                s->right = idx;
        }
        s->feature = feat[i];
        int dt = (int)dtype[i];
        int missing = (dt >> 2) & 3;
        if (dt & 1) {
            double ci = thr[i];
            if (num_cat <= 0 || !(ci >= 0 && ci < (double)num_cat) || ci != floor(ci)) {
                rc = ks_err(errbuf, errsize, KS_EINVAL, "Tree=%zu: node %zu: categorical split index out of range",
                            t, i);
                goto out;
            }
            size_t c = (size_t)ci;
            s->kind = KS_SPLIT_CAT;
            s->default_left = 0; /* NaN and negatives go right */
            s->cat_left = cat_words + cat_b[c];
            s->cat_words = (size_t)(cat_b[c + 1] - cat_b[c]);
        } else {
            s->threshold = thr[i];
            if (missing == 2) {
                s->kind = KS_SPLIT_NUM;
                s->default_left = (dt >> 1) & 1;
            } else if (missing == 1) {
                s->kind = KS_SPLIT_NUM_ZERO;
                s->default_left = (dt >> 1) & 1;
            } else if (missing == 0) {
                s->kind = KS_SPLIT_NUM;
                s->default_left = 0.0 <= thr[i];
            } else {
                rc = ks_err(errbuf, errsize, KS_EINVAL, "Tree=%zu: node %zu: unknown missing type in decision_type %d",
                            t, i, dt);
                goto out;
            }
        }
    }
    rc = ks_ensemble_add_tree(e, spec, ni + nl, 0, group, errbuf, errsize);
out:
    free(feat), free(dtype), free(lc), free(rc_), free(cat_b), free(cat_t64);
    free(thr), free(leaf), free(cat_words), free(spec);
    return rc;
}

static int lgb_load(ks_model_t *m, const char *buf, size_t len, char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    lines_t L = {0};
    lgb_impl_t *l = ks_xcalloc(1, sizeof(*l));
    char sub[400];

    lines_split(&L, buf, len);
    size_t hdr_end = 0;
    while (hdr_end < L.n && strncmp(L.line[hdr_end], "Tree=", 5))
        hdr_end++;
    if (hdr_end == L.n) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "no 'Tree=' block found (truncated file?)");
        goto out;
    }
    int64_t num_class, per_iter, max_feat;
    if ((rc = header_int(&L, hdr_end, "num_class", 1, LGB_MAX_CLASSES, 1, &num_class, errbuf, errsize)) ||
        (rc = header_int(&L, hdr_end, "num_tree_per_iteration", 1, LGB_MAX_CLASSES, num_class, &per_iter, errbuf,
                         errsize)) ||
        (rc = header_int(&L, hdr_end, "max_feature_idx", 0, LGB_MAX_FEATURES - 1, -1, &max_feat, errbuf, errsize)))
        goto out;
    size_t nf = (size_t)max_feat + 1;
    l->ens = ks_ensemble_new(KS_CMP_F64, nf, (size_t)per_iter, 1);
    l->ens->zero_band = 1;
    rc = objective_link(find_kv(&L, 0, hdr_end, "objective"), m, l->ens, (size_t)num_class, errbuf, errsize);
    if (rc)
        goto out;

    const char *names = find_kv(&L, 0, hdr_end, "feature_names");
    if (names && count_tokens(names) == nf) {
        m->feature_names = ks_xcalloc(nf, sizeof(char *));
        m->n_features = nf;
        const char *s = names;
        for (size_t i = 0; i < nf; i++) {
            while (*s == ' ')
                s++;
            size_t n = strcspn(s, " ");
            m->feature_names[i] = ks_xstrndup(s, n);
            s += n;
        }
    } else if (names) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "feature_names lists %zu names, max_feature_idx says %zu",
                    count_tokens(names), nf);
        goto out;
    } else {
        ks_model_default_feature_names(m, nf);
    }

    /* Trees: each "Tree=" block runs to the next "Tree=" or "end of trees". */
    size_t t = 0, i = hdr_end;
    int ended = 0;
    while (i < L.n) {
        if (!strcmp(L.line[i], "end of trees")) {
            ended = 1;
            break;
        }
        if (strncmp(L.line[i], "Tree=", 5)) {
            i++;
            continue;
        }
        size_t j = i + 1;
        while (j < L.n && strncmp(L.line[j], "Tree=", 5) && strcmp(L.line[j], "end of trees"))
            j++;
        rc = load_tree(l->ens, &L, i + 1, j, t, t % (size_t)per_iter, sub, sizeof(sub));
        if (rc) {
            rc = ks_err(errbuf, errsize, rc, "%s", sub);
            goto out;
        }
        t++;
        i = j;
    }
    if (!ended) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "no 'end of trees' line (truncated file?)");
        goto out;
    }
    if (t == 0 || t % (size_t)per_iter) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "%zu trees is not a multiple of num_tree_per_iteration=%lld", t,
                    (long long)per_iter);
        goto out;
    }
    if (has_line(&L, 0, hdr_end, "average_output"))
        l->ens->tree_div = (double)(t / (size_t)per_iter);
    m->n_outputs = ks_link_n_outputs(l->ens->link, l->ens->n_raw);
    const char *ver = find_kv(&L, 0, hdr_end, "version");
    char src[64];
    snprintf(src, sizeof(src), "lightgbm (model format %.16s)", ver ? ver : "?");
    m->source = ks_xstrdup(src);
out:
    lines_free(&L);
    if (rc) {
        lgb_free(l);
        l = NULL;
    }
    m->impl = l;
    return rc;
}

static int lgb_predict(const ks_model_t *m, const double *X, size_t n_rows, double *out)
{
    const lgb_impl_t *l = m->impl;
    ks_ensemble_predict(l->ens, X, n_rows, out);
    return KS_OK;
}

const ks_model_backend_t ks_model_backend_lightgbm = {
    .name = "LightGBM text",
    .probe = lgb_probe,
    .load = lgb_load,
    .predict = lgb_predict,
    .free_impl = lgb_free,
};
