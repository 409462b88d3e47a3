/*
 * model_cli.h - the library side of `kscore model info FILE` and
 * `kscore model predict FILE < rows.csv` (the CLI in src/cli/ wires these).
 *
 * Both only read the model (any thread, model stays owned by the caller).
 */
#ifndef KS_MODEL_CLI_H
#define KS_MODEL_CLI_H

#include <stdio.h>

#include "model/model.h"

/* Prints the model's metadata as "key: value" lines (format, file, version,
 * source, task, objective, features with their index, classes, outputs).
 * Returns 0 or KS_EIO if writing failed. */
int ks_model_describe(const ks_model_t *m, FILE *out);

/* Scores a CSV: the first line is a header of column names, which must
 * include every feature name of the model (any order; other columns are
 * ignored); each following line is a row: numbers as strtod reads them, an
 * empty cell (or NA, NaN, nan, null) = missing. Writes one line per row to
 * `out`: the outputs separated by commas, each "%.17g" (every class
 * probability for classifiers in class order, the value for regressors).
 * Blank lines are skipped. Fields are separated by ','; surrounding spaces
 * and double quotes are stripped (quoted commas are not supported).
 * Returns 0, or KS_EINVAL with "line N: ..." in errbuf for bad input, or
 * KS_EIO for a read/write failure. Rows before a bad line have been written. */
int ks_model_predict_csv(const ks_model_t *m, FILE *in, FILE *out, char *errbuf, size_t errsize);

/* Builds the training reference (model/reference.h) of a CSV training
 * sample read like ks_model_predict_csv's input: quantile bins of every model
 * feature and of the model's score on each row (binary: P(class 1);
 * multiclass: the top probability; regression: the value). *out is the
 * caller's (ks_reference_free). */
struct ks_reference;
int ks_model_reference_csv(const ks_model_t *m, FILE *in, size_t bins,
                           struct ks_reference **out, char *errbuf, size_t errsize);

#endif
