/*
 * reference.c - a model's training reference (see reference.h): building it
 * from a sample, the JSON form, and PSI.
 *
 * Quantiles are computed the way numpy.quantile(method="linear") computes
 * them, step for step (virtual index (n-1)q, the lerp that switches ends at
 * gamma 0.5), so the edges the C builder and the Python exporter write are
 * the same doubles and the PSI oracle in the tests can be numpy itself.
 */
#include "model/reference.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* numpy's _lerp(a, b, t). */
static double lerp(double a, double b, double t)
{
    double d = b - a;
    return t >= 0.5 ? b - d * (1 - t) : a + d * t;
}

void ks_ref_hist_build(const double *vals, size_t n, size_t stride, size_t bins,
                       ks_ref_hist_t *h, double *missing)
{
    double *v = ks_xmalloc((n ? n : 1) * sizeof(double));
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(vals[i * stride]))
            v[m++] = vals[i * stride];
    *missing = n ? (double)(n - m) / (double)n : 0.0;
    if (bins < 1)
        bins = 1;
    h->edges = ks_xmalloc(bins * sizeof(double));
    h->n_edges = 0;
    if (m > 0) {
        qsort(v, m, sizeof(double), cmp_double);
        for (size_t k = 1; k < bins; k++) {
            double q = (double)k / (double)bins;
            double vi = (double)(m - 1) * q;
            double e;
            if (vi >= (double)(m - 1)) {
                e = v[m - 1];
            } else {
                double fl = floor(vi);
                size_t lo = (size_t)fl;
                e = lerp(v[lo], v[lo + 1], vi - fl);
            }
            if (h->n_edges == 0 || e > h->edges[h->n_edges - 1])
                h->edges[h->n_edges++] = e;
        }
    }
    h->frac = ks_xcalloc(h->n_edges + 1, sizeof(double));
    if (m > 0) {
        uint64_t *c = ks_xcalloc(h->n_edges + 1, sizeof(uint64_t));
        for (size_t i = 0; i < m; i++)
            c[ks_ref_bin(h, v[i])]++;
        for (size_t b = 0; b <= h->n_edges; b++)
            h->frac[b] = (double)c[b] / (double)m;
        free(c);
    }
    free(v);
}

void ks_ref_hist_free(ks_ref_hist_t *h)
{
    free(h->edges);
    free(h->frac);
    h->edges = h->frac = NULL;
    h->n_edges = 0;
}

double ks_ref_psi(const ks_ref_hist_t *h, const uint64_t *counts)
{
    uint64_t total = 0;
    for (size_t b = 0; b <= h->n_edges; b++)
        total += counts[b];
    if (!total)
        return NAN;
    double psi = 0;
    for (size_t b = 0; b <= h->n_edges; b++) {
        double a = (double)counts[b] / (double)total, e = h->frac[b];
        if (a < KS_PSI_EPS)
            a = KS_PSI_EPS;
        if (e < KS_PSI_EPS)
            e = KS_PSI_EPS;
        psi += (a - e) * log(a / e);
    }
    return psi;
}

ks_reference_t *ks_reference_build(const double *X, size_t rows, size_t n_features,
                                   char *const *names, const double *scores, int score_output,
                                   size_t bins)
{
    ks_reference_t *r = ks_xcalloc(1, sizeof(*r));
    r->rows = rows;
    r->bins = bins;
    r->n_features = n_features;
    r->features = ks_xcalloc(n_features ? n_features : 1, sizeof(*r->features));
    for (size_t j = 0; j < n_features; j++) {
        r->features[j].name = ks_xstrdup(names[j]);
        ks_ref_hist_build(X + j, rows, n_features, bins, &r->features[j].hist,
                          &r->features[j].missing_rate);
    }
    if (scores) {
        double unused;
        r->has_score = 1;
        r->score_output = score_output;
        ks_ref_hist_build(scores, rows, 1, bins, &r->score, &unused);
    }
    return r;
}

void ks_reference_free(ks_reference_t *r)
{
    if (!r)
        return;
    for (size_t j = 0; j < r->n_features; j++) {
        free(r->features[j].name);
        ks_ref_hist_free(&r->features[j].hist);
    }
    free(r->features);
    ks_ref_hist_free(&r->score);
    free(r);
}

long ks_reference_feature(const ks_reference_t *r, const char *name)
{
    for (size_t j = 0; j < r->n_features; j++)
        if (!strcmp(r->features[j].name, name))
            return (long)j;
    return -1;
}

/* ---- JSON ---------------------------------------------------------------- */

static void write_doubles(ks_buf_t *out, const double *v, size_t n)
{
    ks_buf_putc(out, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            ks_buf_putc(out, ',');
        ks_buf_json_double(out, v[i]);
    }
    ks_buf_putc(out, ']');
}

static void write_hist(ks_buf_t *out, const ks_ref_hist_t *h)
{
    ks_buf_puts(out, "\"edges\":");
    write_doubles(out, h->edges, h->n_edges);
    ks_buf_puts(out, ",\"fractions\":");
    write_doubles(out, h->frac, h->n_edges + 1);
}

void ks_reference_write(const ks_reference_t *r, ks_buf_t *out)
{
    ks_buf_printf(out, "{\"format\":\"kscore-reference\",\"format_version\":1,\"rows\":%zu,"
                       "\"bins\":%zu,\"features\":[", r->rows, r->bins);
    for (size_t j = 0; j < r->n_features; j++) {
        const ks_ref_feature_t *f = &r->features[j];
        ks_buf_puts(out, j ? ",\n{\"name\":" : "\n{\"name\":");
        ks_buf_json_string(out, f->name, strlen(f->name));
        ks_buf_puts(out, ",\"missing_rate\":");
        ks_buf_json_double(out, f->missing_rate);
        ks_buf_putc(out, ',');
        write_hist(out, &f->hist);
        ks_buf_putc(out, '}');
    }
    ks_buf_putc(out, ']');
    if (r->has_score) {
        ks_buf_puts(out, ",\n\"score\":{\"output\":");
        if (r->score_output == KS_REF_SCORE_TOP)
            ks_buf_puts(out, "\"top\"");
        else
            ks_buf_printf(out, "%d", r->score_output);
        ks_buf_putc(out, ',');
        write_hist(out, &r->score);
        ks_buf_putc(out, '}');
    }
    ks_buf_puts(out, "}\n");
}

static int parse_doubles(const ks_json_t *a, const char *what, double **out, size_t *n,
                         char *errbuf, size_t errsize)
{
    if (!ks_json_is(a, KS_JSON_ARRAY))
        return ks_err(errbuf, errsize, KS_EINVAL, "%s must be an array of numbers", what);
    *n = ks_json_len(a);
    *out = ks_xmalloc((*n ? *n : 1) * sizeof(double));
    for (size_t i = 0; i < *n; i++) {
        const ks_json_t *v = ks_json_at(a, i);
        if (!ks_json_is(v, KS_JSON_NUMBER) || !isfinite(ks_json_num(v, NAN)))
            return ks_err(errbuf, errsize, KS_EINVAL, "%s[%zu] must be a finite number", what, i);
        (*out)[i] = ks_json_num(v, NAN);
    }
    return KS_OK;
}

static int parse_hist(const ks_json_t *o, const char *what, ks_ref_hist_t *h, char *errbuf,
                      size_t errsize)
{
    char w[300];
    size_t nf = 0;
    int rc;
    snprintf(w, sizeof(w), "%s.edges", what);
    if ((rc = parse_doubles(ks_json_get(o, "edges"), w, &h->edges, &h->n_edges, errbuf, errsize)))
        return rc;
    if (h->n_edges + 1 > KS_REF_MAX_BINS)
        return ks_err(errbuf, errsize, KS_EINVAL, "%s has more than %d bins", what,
                      KS_REF_MAX_BINS);
    for (size_t i = 1; i < h->n_edges; i++)
        if (!(h->edges[i] > h->edges[i - 1]))
            return ks_err(errbuf, errsize, KS_EINVAL, "%s must be strictly ascending", w);
    snprintf(w, sizeof(w), "%s.fractions", what);
    if ((rc = parse_doubles(ks_json_get(o, "fractions"), w, &h->frac, &nf, errbuf, errsize)))
        return rc;
    if (nf != h->n_edges + 1)
        return ks_err(errbuf, errsize, KS_EINVAL, "%s has %zu values; %zu edges make %zu bins", w,
                      nf, h->n_edges, h->n_edges + 1);
    double sum = 0;
    for (size_t i = 0; i < nf; i++) {
        if (h->frac[i] < 0 || h->frac[i] > 1)
            return ks_err(errbuf, errsize, KS_EINVAL, "%s[%zu] is not in [0, 1]", w, i);
        sum += h->frac[i];
    }
    if (sum != 0 && fabs(sum - 1) > 1e-6)
        return ks_err(errbuf, errsize, KS_EINVAL, "%s sum to %g, not 1", w, sum);
    return KS_OK;
}

int ks_reference_parse(const ks_json_t *obj, ks_reference_t **out, char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    ks_reference_t *r = ks_xcalloc(1, sizeof(*r));
    char what[300];
    *out = NULL;
    if (!ks_json_is(obj, KS_JSON_OBJECT)) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "the reference must be a JSON object");
        goto out;
    }
    const char *fmt = ks_json_str(ks_json_get(obj, "format"));
    if (!fmt || strcmp(fmt, "kscore-reference") ||
        ks_json_num(ks_json_get(obj, "format_version"), -1) != 1) {
        rc = ks_err(errbuf, errsize, KS_EINVAL,
                    "the reference needs \"format\": \"kscore-reference\" and "
                    "\"format_version\": 1");
        goto out;
    }
    r->rows = (size_t)ks_json_num(ks_json_get(obj, "rows"), 0);
    r->bins = (size_t)ks_json_num(ks_json_get(obj, "bins"), 10);
    const ks_json_t *fs = ks_json_get(obj, "features");
    if (!ks_json_is(fs, KS_JSON_ARRAY)) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "reference.features must be an array");
        goto out;
    }
    r->features = ks_xcalloc(ks_json_len(fs) ? ks_json_len(fs) : 1, sizeof(*r->features));
    for (size_t j = 0; j < ks_json_len(fs); j++) {
        const ks_json_t *f = ks_json_at(fs, j);
        ks_ref_feature_t *rf = &r->features[j];
        const char *name = ks_json_str(ks_json_get(f, "name"));
        r->n_features++;
        if (!name || !name[0]) {
            rc = ks_err(errbuf, errsize, KS_EINVAL, "reference.features[%zu] has no name", j);
            goto out;
        }
        rf->name = ks_xstrdup(name);
        if (ks_reference_feature(r, name) != (long)j) {
            rc = ks_err(errbuf, errsize, KS_EINVAL, "reference feature '%s' is listed twice", name);
            goto out;
        }
        rf->missing_rate = ks_json_num(ks_json_get(f, "missing_rate"), NAN);
        if (!(rf->missing_rate >= 0 && rf->missing_rate <= 1)) {
            rc = ks_err(errbuf, errsize, KS_EINVAL,
                        "reference feature '%s': missing_rate must be a number in [0, 1]", name);
            goto out;
        }
        snprintf(what, sizeof(what), "reference feature '%s'", name);
        if ((rc = parse_hist(f, what, &rf->hist, errbuf, errsize)))
            goto out;
    }
    const ks_json_t *s = ks_json_get(obj, "score");
    if (s) {
        const ks_json_t *o = ks_json_get(s, "output");
        r->has_score = 1;
        if (ks_json_str(o) && !strcmp(ks_json_str(o), "top"))
            r->score_output = KS_REF_SCORE_TOP;
        else if (ks_json_is(o, KS_JSON_NUMBER) && ks_json_num(o, -1) >= 0 &&
                 ks_json_num(o, -1) < 4096)
            r->score_output = (int)ks_json_num(o, 0);
        else {
            rc = ks_err(errbuf, errsize, KS_EINVAL,
                        "reference.score.output must be an output index or \"top\"");
            goto out;
        }
        if ((rc = parse_hist(s, "reference.score", &r->score, errbuf, errsize)))
            goto out;
    }
out:
    if (rc) {
        ks_reference_free(r);
        r = NULL;
    }
    *out = r;
    return rc;
}

int ks_reference_load_file(const char *path, ks_reference_t **out, char *errbuf, size_t errsize)
{
    char *buf = NULL, why[512];
    size_t len = 0;
    ks_json_t *root = NULL;
    int rc = ks_read_file(path, &buf, &len, errbuf, errsize);
    *out = NULL;
    if (rc)
        goto out;
    if ((rc = ks_json_parse(buf, len, &root, why, sizeof(why))) ||
        (rc = ks_reference_parse(root, out, why, sizeof(why))))
        ks_err(errbuf, errsize, rc, "%s: %s", path, why);
out:
    ks_json_free(root);
    free(buf);
    return rc;
}
