/*
 * model_json.c - typed reads of JSON arrays for the JSON model loaders
 * (kscore.c, xgboost.c): every element checked, every failure a sentence
 * that says which array and which element, so a broken file is easy to fix.
 */
#include "model/backends.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "model/model_internal.h"

static int special_number(const char *s, double *out)
{
    if (!s)
        return 0;
    if (!strcmp(s, "inf") || !strcmp(s, "Infinity") || !strcmp(s, "+inf")) {
        *out = INFINITY;
        return 1;
    }
    if (!strcmp(s, "-inf") || !strcmp(s, "-Infinity")) {
        *out = -INFINITY;
        return 1;
    }
    if (!strcmp(s, "nan") || !strcmp(s, "NaN")) {
        *out = NAN;
        return 1;
    }
    return 0;
}

int ks_mj_f64_array(const ks_json_t *arr, const char *what, size_t expect, int allow_special,
                    double **out, size_t *n, char *errbuf, size_t errsize)
{
    *out = NULL;
    *n = 0;
    if (!ks_json_is(arr, KS_JSON_ARRAY))
        return ks_err(errbuf, errsize, KS_EINVAL, "'%s' must be an array of numbers", what);
    size_t len = ks_json_len(arr);
    if (expect != KS_ANY_LEN && len != expect)
        return ks_json_err(arr, errbuf, errsize, "'%s' has %zu values, expected %zu", what, len, expect);
    double *v = ks_xmalloc((len ? len : 1) * sizeof(double));
    for (size_t i = 0; i < len; i++) {
        const ks_json_t *x = ks_json_at(arr, i);
        if (ks_json_is(x, KS_JSON_NUMBER)) {
            v[i] = x->u.num;
        } else if (!(allow_special && special_number(ks_json_str(x), &v[i]))) {
            free(v);
            return ks_json_err(x, errbuf, errsize, "'%s'[%zu] is a %s, not a number", what, i,
                               ks_json_type_name(ks_json_type(x)));
        }
    }
    *out = v;
    *n = len;
    return KS_OK;
}

int ks_mj_i64_array(const ks_json_t *arr, const char *what, size_t expect, int64_t lo, int64_t hi,
                    int64_t **out, size_t *n, char *errbuf, size_t errsize)
{
    *out = NULL;
    *n = 0;
    if (!ks_json_is(arr, KS_JSON_ARRAY))
        return ks_err(errbuf, errsize, KS_EINVAL, "'%s' must be an array of integers", what);
    size_t len = ks_json_len(arr);
    if (expect != KS_ANY_LEN && len != expect)
        return ks_json_err(arr, errbuf, errsize, "'%s' has %zu values, expected %zu", what, len, expect);
    int64_t *v = ks_xmalloc((len ? len : 1) * sizeof(int64_t));
    for (size_t i = 0; i < len; i++) {
        const ks_json_t *x = ks_json_at(arr, i);
        double d;
        if (ks_json_is(x, KS_JSON_BOOL))
            d = x->boolean;
        else if (ks_json_is(x, KS_JSON_NUMBER))
            d = x->u.num;
        else
            d = NAN;
        if (!(d >= (double)lo && d <= (double)hi) || d != floor(d)) {
            free(v);
            return ks_json_err(x, errbuf, errsize, "'%s'[%zu] must be an integer in [%lld, %lld]", what,
                               i, (long long)lo, (long long)hi);
        }
        v[i] = (int64_t)d;
    }
    *out = v;
    *n = len;
    return KS_OK;
}

void ks_mj_free_strv(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int ks_mj_str_array(const ks_json_t *arr, const char *what, size_t expect, char ***out, size_t *n,
                    char *errbuf, size_t errsize)
{
    *out = NULL;
    *n = 0;
    if (!ks_json_is(arr, KS_JSON_ARRAY))
        return ks_err(errbuf, errsize, KS_EINVAL, "'%s' must be an array of strings", what);
    size_t len = ks_json_len(arr);
    if (expect != KS_ANY_LEN && len != expect)
        return ks_json_err(arr, errbuf, errsize, "'%s' has %zu values, expected %zu", what, len, expect);
    char **v = ks_xcalloc(len ? len : 1, sizeof(char *));
    for (size_t i = 0; i < len; i++) {
        const ks_json_t *x = ks_json_at(arr, i);
        if (ks_json_is(x, KS_JSON_STRING)) {
            v[i] = ks_xstrndup(x->u.str, x->len);
            if (strlen(v[i]) != x->len) {
                ks_mj_free_strv(v, len);
                return ks_json_err(x, errbuf, errsize, "'%s'[%zu] contains a NUL character", what, i);
            }
        } else if (ks_json_is(x, KS_JSON_NUMBER)) {
            char buf[40];
            double d = x->u.num;
            if (d == floor(d) && fabs(d) < 1e15)
                snprintf(buf, sizeof(buf), "%lld", (long long)d);
            else
                snprintf(buf, sizeof(buf), "%.17g", d);
            v[i] = ks_xstrdup(buf);
        } else if (ks_json_is(x, KS_JSON_BOOL)) {
            v[i] = ks_xstrdup(x->boolean ? "True" : "False");
        } else {
            ks_mj_free_strv(v, len);
            return ks_json_err(x, errbuf, errsize, "'%s'[%zu] is a %s, not a string", what, i,
                               ks_json_type_name(ks_json_type(x)));
        }
    }
    *out = v;
    *n = len;
    return KS_OK;
}

int ks_mj_number_lenient(const ks_json_t *v, double *out)
{
    if (ks_json_is(v, KS_JSON_NUMBER)) {
        *out = v->u.num;
        return KS_OK;
    }
    const char *s = ks_json_str(v);
    if (!s)
        return KS_EINVAL;
    size_t n = strlen(s);
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        s++;
        n -= 2;
    }
    return ks_parse_double(s, s + n, out);
}
