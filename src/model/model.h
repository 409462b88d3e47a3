/*
 * model.h - the model runtime interface: load a model file, ask its metadata,
 * predict a batch.
 *
 * A model file is recognised by content (each backend's probe()):
 *   - kscore JSON model format (docs/model-format.md): linear/logistic models,
 *     trees and MLPs exported from scikit-learn by python/ (kscore-export);
 *   - XGBoost JSON (Booster.save_model("m.json"));
 *   - LightGBM text (Booster.save_model("m.txt")).
 *
 * Outputs per row (n_outputs doubles): regression -> 1 value; classification ->
 * one probability per class in `class_labels` order (binary: 2 columns,
 * P(class 0), P(class 1)), exactly like the training library's predict_proba.
 *
 * Ownership and threads: a loaded ks_model_t is immutable and refcounted;
 * predict() may be called from any number of threads at once. ks_model_unref()
 * frees it when the last reference goes.
 */
#ifndef KS_MODEL_H
#define KS_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    KS_TASK_REGRESSION,
    KS_TASK_CLASSIFICATION,
} ks_task_t;

typedef struct ks_model ks_model_t;

/* One model backend (a file format / model family). Adding a backend = one new
 * file in src/model/ plus one line in the table in model.c. */
typedef struct ks_model_backend {
    const char *name;
    /* Returns 1 if the bytes look like this backend's format. */
    int (*probe)(const char *buf, size_t len);
    /* Parses the file, sets m->impl and all metadata fields of m. */
    int (*load)(ks_model_t *m, const char *buf, size_t len, char *errbuf, size_t errsize);
    /* X: n_rows x n_features, row-major, NaN = missing. out: n_rows x n_outputs. */
    int (*predict)(const ks_model_t *m, const double *X, size_t n_rows, double *out);
    void (*free_impl)(void *impl);
} ks_model_backend_t;

struct ks_model {
    const ks_model_backend_t *backend;
    void *impl;

    ks_task_t task;
    size_t n_features;
    char **feature_names;   /* n_features names, in the order predict() expects */
    size_t n_outputs;
    size_t n_classes;       /* 0 for regression */
    char **class_labels;    /* n_classes labels as strings ("0", "1", "fraud") */
    char *objective;        /* "binary:logistic", "multiclass", "logistic_regression", ... */
    char *version;          /* from the file's metadata, else "sha256:<12 hex>" of content */
    char *source;           /* training library and version if known ("xgboost 2.1.1") */
    char *path;             /* file it was loaded from */
    struct ks_reference *reference; /* training reference (model/reference.h), NULL if none */

    int refcount;           /* atomic; see ks_model_ref/unref */
};

/* Loads a model file. On success *out has refcount 1. On failure writes a
 * message naming the file and what is wrong; nothing is leaked. */
int ks_model_load_file(const char *path, ks_model_t **out, char *errbuf, size_t errsize);
/* ks_model_load_file also reads the sidecar PATH.reference.json when it
 * exists (it replaces a reference embedded in the file); a reference naming a
 * feature the model does not have is a load error. */
int ks_model_load_buffer(const char *name, const char *buf, size_t len, ks_model_t **out,
                         char *errbuf, size_t errsize);

/* Batch prediction. Returns 0, or an error code (outputs undefined). */
int ks_model_predict(const ks_model_t *m, const double *X, size_t n_rows, double *out);

ks_model_t *ks_model_ref(ks_model_t *m);
void ks_model_unref(ks_model_t *m);

#endif
