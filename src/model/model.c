/*
 * model.c - loading a model file: pick the backend by content, let it parse,
 * check what it set, name the version; then predict and refcounting.
 *
 * Backends are tried in table order with their probe(); the first that
 * recognises the bytes loads them. Adding a format = one file in src/model/
 * and one line in `backends` below.
 *
 * Version: the file's own version if it has one (kscore JSON "version"),
 * else "sha256:" and the first 12 hex digits of the file's SHA-256, so two
 * different files never share a version string by accident and the same file
 * always gets the same one.
 *
 * Reference: the training reference (model/reference.h) comes from the file
 * (kscore JSON "reference") or, in ks_model_load_file, from the sidecar
 * PATH.reference.json, which wins. Every feature it describes must be one of
 * the model's, so a stale sidecar is caught at load, not as silent drift.
 *
 * Refcount: updated with atomic read-modify-write (the GCC/Clang __atomic
 * builtins, which are what C11 <stdatomic.h> compiles to; model.h keeps a
 * plain int so that the header stays includable from C++). ref is relaxed;
 * unref is acq_rel so the thread that frees sees every other thread's reads
 * finished.
 */
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "model/model_internal.h"
#include "model/backends.h"
#include "base/sha256.h"
#include "model/reference.h"

#include <unistd.h>

static const ks_model_backend_t *const backends[] = {
    &ks_model_backend_kscore,
    &ks_model_backend_xgboost,
    &ks_model_backend_lightgbm,
};

/* Sanity checks on what a backend's load() set, so that the rest of kscore
 * can trust the metadata. */
static int check_meta(const ks_model_t *m, char *errbuf, size_t errsize)
{
    if (m->n_features == 0 || !m->feature_names)
        return ks_err(errbuf, errsize, KS_EINVAL, "the model has no features");
    for (size_t i = 0; i < m->n_features; i++)
        if (!m->feature_names[i] || !m->feature_names[i][0])
            return ks_err(errbuf, errsize, KS_EINVAL, "feature %zu has no name", i);
    if (m->n_outputs == 0)
        return ks_err(errbuf, errsize, KS_EINVAL, "the model has no outputs");
    if (m->task == KS_TASK_CLASSIFICATION) {
        if (m->n_classes < 2 || !m->class_labels || m->n_outputs != m->n_classes)
            return ks_err(errbuf, errsize, KS_EINVAL,
                          "a classifier needs at least 2 classes and one output per class "
                          "(has %zu classes, %zu outputs)", m->n_classes, m->n_outputs);
    } else if (m->n_classes != 0) {
        return ks_err(errbuf, errsize, KS_EINVAL, "a regression model cannot have classes");
    }
    return KS_OK;
}

/* Every reference feature must be a model feature; the score output must exist. */
static int check_reference(const ks_model_t *m, const ks_reference_t *r, char *errbuf,
                           size_t errsize)
{
    if (!r)
        return KS_OK;
    for (size_t j = 0; j < r->n_features; j++) {
        size_t f = 0;
        while (f < m->n_features && strcmp(m->feature_names[f], r->features[j].name))
            f++;
        if (f == m->n_features)
            return ks_err(errbuf, errsize, KS_EINVAL,
                          "the training reference describes feature '%s', which the model "
                          "does not have (a reference made for another model?)",
                          r->features[j].name);
    }
    if (r->has_score && r->score_output != KS_REF_SCORE_TOP &&
        (size_t)r->score_output >= m->n_outputs)
        return ks_err(errbuf, errsize, KS_EINVAL,
                      "the training reference's score is output %d; the model has %zu outputs",
                      r->score_output, m->n_outputs);
    return KS_OK;
}

int ks_model_load_buffer(const char *name, const char *buf, size_t len, ks_model_t **out,
                         char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    ks_model_t *m = NULL;
    const ks_model_backend_t *b = NULL;
    char why[512] = "";

    *out = NULL;
    if (!name)
        name = "(buffer)";
    for (size_t i = 0; i < KS_ARRAY_LEN(backends); i++) {
        if (backends[i]->probe(buf, len)) {
            b = backends[i];
            break;
        }
    }
    if (!b) {
        rc = ks_err(errbuf, errsize, KS_EINVAL,
                    "%s: not a model file kscore knows (expected kscore JSON from kscore-export, "
                    "XGBoost JSON from save_model(\"m.json\") or LightGBM text from save_model(\"m.txt\"))",
                    name);
        goto out;
    }
    m = ks_xcalloc(1, sizeof(*m));
    m->backend = b;
    m->refcount = 1;
    rc = b->load(m, buf, len, why, sizeof(why));
    if (rc == KS_OK)
        rc = check_meta(m, why, sizeof(why));
    if (rc == KS_OK)
        rc = check_reference(m, m->reference, why, sizeof(why));
    if (rc != KS_OK) {
        ks_err(errbuf, errsize, rc, "%s: cannot load %s model: %s", name, b->name, why);
        goto out;
    }
    if (!m->version) {
        uint8_t digest[32];
        char hex[13];
        ks_sha256(buf, len, digest);
        ks_sha256_hex(digest, 6, hex);
        m->version = ks_xmalloc(7 + 12 + 1);
        snprintf(m->version, 7 + 12 + 1, "sha256:%s", hex);
    }
    if (!m->objective)
        m->objective = ks_xstrdup(m->task == KS_TASK_CLASSIFICATION ? "classification" : "regression");
    free(m->path);
    m->path = ks_xstrdup(name);
out:
    if (rc != KS_OK && m) {
        if (m->impl)
            b->free_impl(m->impl);
        ks_model_meta_free(m);
        free(m);
        m = NULL;
    }
    *out = m;
    return rc;
}

int ks_model_load_file(const char *path, ks_model_t **out, char *errbuf, size_t errsize)
{
    char *buf = NULL;
    size_t len = 0;
    *out = NULL;
    int rc = ks_read_file(path, &buf, &len, errbuf, errsize);
    if (rc == KS_OK)
        rc = ks_model_load_buffer(path, buf, len, out, errbuf, errsize);
    free(buf);
    if (rc == KS_OK) {
        char side[4096];
        ks_reference_t *r = NULL;
        snprintf(side, sizeof(side), "%s.reference.json", path);
        if (access(side, F_OK) == 0) {
            char why[512];
            if ((rc = ks_reference_load_file(side, &r, why, sizeof(why))) ||
                (rc = check_reference(*out, r, why, sizeof(why)))) {
                ks_err(errbuf, errsize, rc, "%s: %s", side, why);
                ks_reference_free(r);
                ks_model_unref(*out);
                *out = NULL;
            } else {
                ks_reference_free((*out)->reference);
                (*out)->reference = r;
            }
        }
    }
    return rc;
}

int ks_model_predict(const ks_model_t *m, const double *X, size_t n_rows, double *out)
{
    if (!m || (!X && n_rows) || (!out && n_rows))
        return KS_EINVAL;
    if (n_rows == 0)
        return KS_OK;
    return m->backend->predict(m, X, n_rows, out);
}

ks_model_t *ks_model_ref(ks_model_t *m)
{
    if (m)
        __atomic_fetch_add(&m->refcount, 1, __ATOMIC_RELAXED);
    return m;
}

void ks_model_unref(ks_model_t *m)
{
    if (!m)
        return;
    if (__atomic_sub_fetch(&m->refcount, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    if (m->impl)
        m->backend->free_impl(m->impl);
    ks_model_meta_free(m);
    free(m);
}
