/*
 * backends.h - the model backends (one per file format) and the JSON reading
 * helpers the JSON-based ones share (model_json.c).
 */
#ifndef KS_MODEL_BACKENDS_H
#define KS_MODEL_BACKENDS_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"
#include "base/json.h"

extern const ks_model_backend_t ks_model_backend_kscore;   /* kscore.c: docs/model-format.md */
extern const ks_model_backend_t ks_model_backend_xgboost;  /* xgboost.c */
extern const ks_model_backend_t ks_model_backend_lightgbm; /* lightgbm.c */

/* Reads a JSON array of numbers into a new malloc'd array (*out, *n).
 * `what` names the array in messages. If expect != (size_t)-1 the length must
 * equal it. allow_special: the strings "inf", "-inf", "nan" are accepted too
 * (JSON has no spelling for them). Returns 0 or KS_EINVAL with a message. */
#define KS_ANY_LEN ((size_t)-1)
int ks_mj_f64_array(const ks_json_t *arr, const char *what, size_t expect, int allow_special,
                    double **out, size_t *n, char *errbuf, size_t errsize);
/* Same for integers in [lo, hi]. */
int ks_mj_i64_array(const ks_json_t *arr, const char *what, size_t expect, int64_t lo, int64_t hi,
                    int64_t **out, size_t *n, char *errbuf, size_t errsize);
/* Reads an array of strings (or numbers, formatted as %.17g / integers) into
 * a new array of new strings. */
int ks_mj_str_array(const ks_json_t *arr, const char *what, size_t expect, char ***out, size_t *n,
                    char *errbuf, size_t errsize);
/* A number that may also be written as a JSON string ("20", "5E-1",
 * "[5E-1]" - XGBoost writes its parameters as strings). */
int ks_mj_number_lenient(const ks_json_t *v, double *out);
/* Frees an array of n strings. */
void ks_mj_free_strv(char **v, size_t n);

#endif
