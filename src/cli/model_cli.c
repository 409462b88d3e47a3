/*
 * model_cli.c - `kscore model info` and `kscore model predict`: a
 * metadata dump, and a CSV scorer for debugging and parity checks by users
 * (kscore's outputs for raw feature rows, to compare with predict_proba).
 *
 * The scorer reads rows in chunks of CSV_BATCH and predicts each chunk with
 * one ks_model_predict call, so it measures the same code the pipeline runs.
 */
#include "cli/model_cli.h"
#include "cli/cli.h"
#include "kscore/kscore.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/common.h"

#define CSV_BATCH 1024

int ks_model_describe(const ks_model_t *m, FILE *out)
{
    fprintf(out, "format: %s\n", m->backend->name);
    fprintf(out, "file: %s\n", m->path ? m->path : "-");
    fprintf(out, "version: %s\n", m->version ? m->version : "-");
    fprintf(out, "source: %s\n", m->source ? m->source : "unknown");
    fprintf(out, "task: %s\n", m->task == KS_TASK_CLASSIFICATION ? "classification" : "regression");
    fprintf(out, "objective: %s\n", m->objective ? m->objective : "-");
    fprintf(out, "features: %zu\n", m->n_features);
    for (size_t i = 0; i < m->n_features; i++)
        fprintf(out, "  %zu: %s\n", i, m->feature_names[i]);
    if (m->task == KS_TASK_CLASSIFICATION) {
        fprintf(out, "classes: %zu\n", m->n_classes);
        for (size_t i = 0; i < m->n_classes; i++)
            fprintf(out, "  %zu: %s\n", i, m->class_labels[i]);
    }
    fprintf(out, "outputs: %zu (%s)\n", m->n_outputs,
            m->task == KS_TASK_CLASSIFICATION ? "one probability per class" : "predicted value");
    return ferror(out) ? KS_EIO : KS_OK;
}

/* Splits line (modified in place) into fields; returns the count (<= max). */
static size_t split_fields(char *line, char **fields, size_t max)
{
    size_t n = 0;
    char *p = line;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        /* trim spaces and one pair of double quotes */
        while (isspace((unsigned char)*p))
            p++;
        char *e = p + strlen(p);
        while (e > p && isspace((unsigned char)e[-1]))
            *--e = '\0';
        if (e - p >= 2 && *p == '"' && e[-1] == '"') {
            e[-1] = '\0';
            p++;
        }
        if (n < max)
            fields[n] = p;
        n++;
        if (!comma)
            break;
        p = comma + 1;
    }
    return n;
}

static int is_missing(const char *s)
{
    return !*s || !strcasecmp(s, "na") || !strcasecmp(s, "nan") || !strcasecmp(s, "null");
}

static int flush_rows(const ks_model_t *m, const double *X, size_t n, double *Y, FILE *out)
{
    int rc = ks_model_predict(m, X, n, Y);
    if (rc)
        return rc;
    for (size_t r = 0; r < n; r++) {
        for (size_t k = 0; k < m->n_outputs; k++) {
            double v = Y[r * m->n_outputs + k];
            if (k)
                fputc(',', out);
            if (isnan(v))
                fputs("nan", out); /* not "-nan": the sign of a NaN means nothing */
            else
                fprintf(out, "%.17g", v);
        }
        fputc('\n', out);
    }
    return ferror(out) ? KS_EIO : KS_OK;
}

int ks_model_predict_csv(const ks_model_t *m, FILE *in, FILE *out, char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    char *line = NULL;
    size_t cap = 0, lineno = 0, n_cols = 0, n_rows = 0;
    ssize_t got;
    char **fields = NULL;
    long *col_of = NULL;   /* feature -> column */
    double *X = ks_xmalloc(CSV_BATCH * m->n_features * sizeof(double));
    double *Y = ks_xmalloc(CSV_BATCH * m->n_outputs * sizeof(double));

    /* Header. */
    while ((got = getline(&line, &cap, in)) > 0) {
        lineno++;
        if (strspn(line, " \t\r\n") != (size_t)got)
            break;
    }
    if (got <= 0) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "the CSV input is empty (expected a header of feature names)");
        goto out;
    }
    line[strcspn(line, "\r\n")] = '\0';
    n_cols = 1;
    for (char *p = line; *p; p++)
        n_cols += *p == ',';
    fields = ks_xmalloc(n_cols * sizeof(char *));
    split_fields(line, fields, n_cols);
    col_of = ks_xmalloc(m->n_features * sizeof(long));
    for (size_t f = 0; f < m->n_features; f++) {
        col_of[f] = -1;
        for (size_t c = 0; c < n_cols; c++)
            if (!strcmp(fields[c], m->feature_names[f])) {
                if (col_of[f] >= 0) {
                    rc = ks_err(errbuf, errsize, KS_EINVAL, "line %zu: column '%s' appears twice", lineno,
                                fields[c]);
                    goto out;
                }
                col_of[f] = (long)c;
            }
        if (col_of[f] < 0) {
            rc = ks_err(errbuf, errsize, KS_EINVAL, "line %zu: the header has no column '%s' (the model's feature %zu)",
                        lineno, m->feature_names[f], f);
            goto out;
        }
    }

    while ((got = getline(&line, &cap, in)) > 0) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (strspn(line, " \t") == strlen(line))
            continue;
        size_t n = split_fields(line, fields, n_cols);
        if (n != n_cols) {
            rc = ks_err(errbuf, errsize, KS_EINVAL, "line %zu: %zu fields, the header has %zu", lineno, n, n_cols);
            goto out;
        }
        double *row = X + n_rows * m->n_features;
        for (size_t f = 0; f < m->n_features; f++) {
            const char *s = fields[col_of[f]];
            if (is_missing(s)) {
                row[f] = NAN;
                continue;
            }
            char *end;
            errno = 0;
            row[f] = strtod(s, &end);
            if (*end) {
                rc = ks_err(errbuf, errsize, KS_EINVAL, "line %zu: column '%s': '%s' is not a number", lineno,
                            m->feature_names[f], s);
                goto out;
            }
        }
        if (++n_rows == CSV_BATCH) {
            if ((rc = flush_rows(m, X, n_rows, Y, out))) {
                ks_err(errbuf, errsize, rc, "writing predictions failed");
                goto out;
            }
            n_rows = 0;
        }
    }
    if (ferror(in)) {
        rc = ks_err(errbuf, errsize, KS_EIO, "reading the CSV input failed: %s", strerror(errno));
        goto out;
    }
out:
    if (n_rows > 0) {
        int frc = flush_rows(m, X, n_rows, Y, out);
        if (frc && rc == KS_OK)
            rc = ks_err(errbuf, errsize, frc, "writing predictions failed");
    }
    free(line);
    free(fields);
    free(col_of);
    free(X);
    free(Y);
    return rc;
}

/* ---- `kscore model info|predict` --------------------------------------- */

int ks_model_cli_info(const char *path, FILE *out)
{
    char err[1024];
    ks_model_t *m = NULL;
    if (ks_model_load_file(path, &m, err, sizeof(err))) {
        fprintf(stderr, "kscore: %s\n", err);
        return KS_EXIT_USAGE;
    }
    int rc = ks_model_describe(m, out) ? KS_EXIT_RUNTIME : KS_EXIT_OK;
    ks_model_unref(m);
    return rc;
}

int ks_model_cli_predict(const char *path, FILE *in, FILE *out)
{
    char err[1024];
    ks_model_t *m = NULL;
    if (ks_model_load_file(path, &m, err, sizeof(err))) {
        fprintf(stderr, "kscore: %s\n", err);
        return KS_EXIT_USAGE;
    }
    int rc = KS_EXIT_OK;
    if (ks_model_predict_csv(m, in, out, err, sizeof(err))) {
        fprintf(stderr, "kscore: %s\n", err);
        rc = KS_EXIT_USAGE;
    }
    ks_model_unref(m);
    return rc;
}
