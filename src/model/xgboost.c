/*
 * xgboost.c - placeholder (being written).
 */
#include "model/backends.h"
#include "model/model_internal.h"
#include "core/common.h"

static int probe(const char *buf, size_t len) { return 0; }
static int load(ks_model_t *m, const char *buf, size_t len, char *errbuf, size_t errsize)
{
    return ks_err(errbuf, errsize, KS_EINVAL, "not implemented");
}
static int predict(const ks_model_t *m, const double *X, size_t n, double *out) { return KS_EINVAL; }
static void free_impl(void *p) {}
const ks_model_backend_t ks_model_backend_xgboost = {"xgboost", probe, load, predict, free_impl};
