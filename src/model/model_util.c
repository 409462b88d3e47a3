/*
 * model_util.c - small pieces every backend uses: output links (sigmoid,
 * softmax, exp), the scaler pre-processing step, metadata helpers and strict
 * number parsing for the text formats.
 *
 * The links compute what the training libraries compute, in double:
 * sigmoid is 1 / (1 + exp(-x)) (scipy's expit), softmax subtracts the row
 * maximum before exponentiating (as scikit-learn, LightGBM and XGBoost do).
 */
#include "model/model_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "model/reference.h"

static double sigmoid(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

size_t ks_link_n_outputs(ks_link_t link, size_t n_raw)
{
    if (link == KS_LINK_SIGMOID_BINARY || link == KS_LINK_BINARY_PROBA)
        return 2;
    return n_raw;
}

const char *ks_link_name(ks_link_t link)
{
    switch (link) {
    case KS_LINK_IDENTITY: return "identity";
    case KS_LINK_SIGMOID: return "sigmoid";
    case KS_LINK_SIGMOID_BINARY: return "sigmoid (binary)";
    case KS_LINK_SOFTMAX: return "softmax";
    case KS_LINK_EXP: return "exp";
    case KS_LINK_BINARY_PROBA: return "probability (binary)";
    }
    return "?";
}

void ks_link_apply(ks_link_t link, double scale, const double *raw, size_t n_raw, double *out)
{
    switch (link) {
    case KS_LINK_IDENTITY:
        memcpy(out, raw, n_raw * sizeof(double));
        break;
    case KS_LINK_SIGMOID:
        for (size_t k = 0; k < n_raw; k++)
            out[k] = sigmoid(scale * raw[k]);
        break;
    case KS_LINK_SIGMOID_BINARY: {
        double p = sigmoid(scale * raw[0]);
        out[0] = 1.0 - p;
        out[1] = p;
        break;
    }
    case KS_LINK_BINARY_PROBA:
        out[1] = raw[0];
        out[0] = 1.0 - raw[0];
        break;
    case KS_LINK_SOFTMAX: {
        double mx = raw[0], sum = 0;
        for (size_t k = 1; k < n_raw; k++)
            if (raw[k] > mx)
                mx = raw[k];
        for (size_t k = 0; k < n_raw; k++) {
            out[k] = exp(raw[k] - mx);
            sum += out[k];
        }
        for (size_t k = 0; k < n_raw; k++)
            out[k] /= sum;
        break;
    }
    case KS_LINK_EXP:
        for (size_t k = 0; k < n_raw; k++)
            out[k] = exp(raw[k]);
        break;
    }
}

void ks_scaler_apply(const ks_scaler_t *s, size_t n_features, const double *in, double *out)
{
    switch (s->kind) {
    case KS_SCALE_NONE:
        if (out != in)
            memcpy(out, in, n_features * sizeof(double));
        break;
    case KS_SCALE_STANDARD:
        for (size_t j = 0; j < n_features; j++)
            out[j] = (in[j] - s->offset[j]) / s->scale[j];
        break;
    case KS_SCALE_MINMAX:
        for (size_t j = 0; j < n_features; j++)
            out[j] = in[j] * s->scale[j] + s->offset[j];
        break;
    }
}

static void free_strv(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void ks_model_meta_free(ks_model_t *m)
{
    free_strv(m->feature_names, m->n_features);
    free_strv(m->class_labels, m->n_classes);
    free(m->objective);
    free(m->version);
    free(m->source);
    free(m->path);
    ks_reference_free(m->reference);
    m->reference = NULL;
    m->feature_names = NULL;
    m->class_labels = NULL;
    m->objective = m->version = m->source = m->path = NULL;
}

static char **numbered(const char *prefix, size_t n)
{
    char **v = ks_xcalloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%s%zu", prefix, i);
        v[i] = ks_xstrdup(buf);
    }
    return v;
}

void ks_model_default_feature_names(ks_model_t *m, size_t n)
{
    free_strv(m->feature_names, m->n_features);
    m->n_features = n;
    m->feature_names = numbered("f", n);
}

void ks_model_default_class_labels(ks_model_t *m, size_t n)
{
    free_strv(m->class_labels, m->n_classes);
    m->n_classes = n;
    m->class_labels = numbered("", n);
}

int ks_probe_json_marker(const char *buf, size_t len, const char *marker)
{
    size_t i = 0;
    if (!buf)
        return 0;
    while (i < len && (buf[i] == ' ' || buf[i] == '\n' || buf[i] == '\r' || buf[i] == '\t'))
        i++;
    if (i >= len || buf[i] != '{')
        return 0;
    size_t scan = len < 4096 ? len : 4096;
    return memmem(buf, scan, marker, strlen(marker)) != NULL;
}

int ks_parse_double(const char *s, const char *end, double *out)
{
    char buf[128];
    size_t n = (size_t)(end - s);
    if (n == 0 || n >= sizeof(buf))
        return KS_EINVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *stop;
    errno = 0;
    double v = strtod(buf, &stop);
    if (stop != buf + n)
        return KS_EINVAL;
    /* ERANGE on underflow still gives the correctly rounded value; on
     * overflow +-HUGE_VAL, which the caller may refuse as infinite. */
    *out = v;
    return KS_OK;
}

int ks_parse_i64(const char *s, const char *end, int64_t *out)
{
    char buf[32];
    size_t n = (size_t)(end - s);
    if (n == 0 || n >= sizeof(buf))
        return KS_EINVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *stop;
    errno = 0;
    long long v = strtoll(buf, &stop, 10);
    if (stop != buf + n || errno == ERANGE)
        return KS_EINVAL;
    *out = v;
    return KS_OK;
}
