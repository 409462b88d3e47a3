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
#include "model/reference.h"

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

/* Called with each chunk of up to CSV_BATCH rows (n x m->n_features). */
typedef int (*chunk_fn)(void *ctx, const double *X, size_t n);

/* Reads the CSV (see ks_model_predict_csv) and hands its rows to `chunk`;
 * a failing chunk stops the read with that code ("writing ... failed"). */
static int read_csv(const ks_model_t *m, FILE *in, chunk_fn chunk, void *ctx, char *errbuf,
                    size_t errsize)
{
    int rc = KS_OK;
    char *line = NULL;
    size_t cap = 0, lineno = 0, n_cols = 0, n_rows = 0;
    ssize_t got;
    char **fields = NULL;
    long *col_of = NULL;   /* feature -> column */
    double *X = ks_xmalloc(CSV_BATCH * m->n_features * sizeof(double));

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
            if ((rc = chunk(ctx, X, n_rows))) {
                ks_err(errbuf, errsize, rc, "writing the output failed");
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
        int frc = chunk(ctx, X, n_rows);
        if (frc && rc == KS_OK)
            rc = ks_err(errbuf, errsize, frc, "writing the output failed");
    }
    free(line);
    free(fields);
    free(col_of);
    free(X);
    return rc;
}

typedef struct predict_ctx {
    const ks_model_t *m;
    double *Y;
    FILE *out;
} predict_ctx_t;

static int predict_chunk(void *ctx, const double *X, size_t n)
{
    predict_ctx_t *c = ctx;
    return flush_rows(c->m, X, n, c->Y, c->out);
}

int ks_model_predict_csv(const ks_model_t *m, FILE *in, FILE *out, char *errbuf, size_t errsize)
{
    predict_ctx_t c = {m, ks_xmalloc(CSV_BATCH * m->n_outputs * sizeof(double)), out};
    int rc = read_csv(m, in, predict_chunk, &c, errbuf, errsize);
    free(c.Y);
    return rc;
}

/* ---- `kscore model reference` ------------------------------------------- */

typedef struct sample_ctx {
    const ks_model_t *m;
    double *X, *scores, *Y;
    size_t n, cap;
    int score_output;
} sample_ctx_t;

static int sample_chunk(void *ctx, const double *X, size_t n)
{
    sample_ctx_t *c = ctx;
    const ks_model_t *m = c->m;
    if (c->n + n > c->cap) {
        c->cap = (c->n + n) * 2;
        c->X = ks_xrealloc(c->X, c->cap * m->n_features * sizeof(double));
        c->scores = ks_xrealloc(c->scores, c->cap * sizeof(double));
    }
    memcpy(c->X + c->n * m->n_features, X, n * m->n_features * sizeof(double));
    int rc = ks_model_predict(m, X, n, c->Y);
    if (rc)
        return rc;
    for (size_t r = 0; r < n; r++) {
        const double *o = c->Y + r * m->n_outputs;
        double s = o[0];
        if (c->score_output == KS_REF_SCORE_TOP) {
            for (size_t k = 1; k < m->n_outputs; k++)
                s = o[k] > s ? o[k] : s;
        } else {
            s = o[c->score_output];
        }
        c->scores[c->n + r] = s;
    }
    c->n += n;
    return KS_OK;
}

int ks_model_reference_csv(const ks_model_t *m, FILE *in, size_t bins, ks_reference_t **out,
                           char *errbuf, size_t errsize)
{
    sample_ctx_t c = {.m = m, .Y = ks_xmalloc(CSV_BATCH * m->n_outputs * sizeof(double))};
    c.score_output = m->task == KS_TASK_REGRESSION ? 0 : m->n_classes == 2 ? 1
                   : KS_REF_SCORE_TOP;
    *out = NULL;
    int rc = read_csv(m, in, sample_chunk, &c, errbuf, errsize);
    if (rc == KS_OK && c.n == 0)
        rc = ks_err(errbuf, errsize, KS_EINVAL, "the training sample has no rows");
    if (rc == KS_OK)
        *out = ks_reference_build(c.X, c.n, m->n_features, m->feature_names, c.scores,
                                  c.score_output, bins);
    free(c.X);
    free(c.scores);
    free(c.Y);
    return rc;
}

/* ---- `kscore model info|predict|reference` ------------------------------ */

int ks_model_cli_reference(const char *path, const char *sample, const char *out_path,
                           size_t bins)
{
    char err[1024], side[4096];
    ks_model_t *m = NULL;
    ks_reference_t *r = NULL;
    ks_buf_t buf = {0};
    FILE *in = NULL, *out = NULL;
    int rc = KS_EXIT_USAGE;
    if (bins < 2 || bins > KS_REF_MAX_BINS) {
        fprintf(stderr, "kscore: --bins must be 2 to %d\n", KS_REF_MAX_BINS);
        goto out;
    }
    if (!out_path) {
        snprintf(side, sizeof(side), "%s.reference.json", path);
        out_path = side;
    }
    /* the model alone: an existing (maybe stale) sidecar is what we replace */
    char *mbuf = NULL;
    size_t mlen = 0;
    if (ks_read_file(path, &mbuf, &mlen, err, sizeof(err)) ||
        ks_model_load_buffer(path, mbuf, mlen, &m, err, sizeof(err))) {
        free(mbuf);
        fprintf(stderr, "kscore: %s\n", err);
        goto out;
    }
    free(mbuf);
    if (!(in = fopen(sample, "r"))) {
        fprintf(stderr, "kscore: cannot open %s: %s\n", sample, strerror(errno));
        goto out;
    }
    if (ks_model_reference_csv(m, in, bins, &r, err, sizeof(err))) {
        fprintf(stderr, "kscore: %s: %s\n", sample, err);
        goto out;
    }
    ks_reference_write(r, &buf);
    if (!(out = fopen(out_path, "w")) || fwrite(buf.data, 1, buf.len, out) != buf.len ||
        fclose(out)) {
        out = NULL;
        fprintf(stderr, "kscore: cannot write %s: %s\n", out_path, strerror(errno));
        rc = KS_EXIT_RUNTIME;
        goto out;
    }
    out = NULL;
    fprintf(stderr, "kscore: wrote %s (%zu rows, %zu features%s)\n", out_path, r->rows,
            r->n_features, r->has_score ? ", score" : "");
    rc = KS_EXIT_OK;
out:
    if (in)
        fclose(in);
    ks_buf_free(&buf);
    ks_reference_free(r);
    ks_model_unref(m);
    return rc;
}

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
