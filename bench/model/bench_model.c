/*
 * bench_model.c - nanoseconds per row of model inference at batch sizes 1,
 * 16, 256 and 4096, for kscore's runtime and, side by side in the same
 * process on the same rows, for the libraries' own C APIs (loaded with
 * dlopen from the pip wheels, so nothing extra is built or linked):
 *
 *   bench_model kscore   MODEL XFILE NF
 *   bench_model xgboost  LIBXGBOOST.so MODEL.json XFILE NF [NTHREAD]
 *       XGBoosterPredictFromDense (what inplace_predict calls)
 *   bench_model lightgbm LIB_LIGHTGBM.so MODEL.txt XFILE NF [NTHREAD]
 *       LGBM_BoosterPredictForMat; batch 1 via LGBM_BoosterPredictForMatSingleRowFast
 *   bench_model tl2cgen  LIBMODEL.so XFILE NF
 *       a TL2cgen-compiled model: its predict(union Entry *row, int, double *)
 *
 * XFILE holds float64 rows (row-major, NF columns, >= 4096 rows). Each batch
 * size runs for at least BENCH_MIN_NS after a warm-up, cycling through the
 * rows so caches see realistic data; the fastest of 9 repetitions is reported
 * (other processes on a shared machine only ever add time).
 * Output, one line per batch size:  runtime batch ns_per_row
 * Used by bench/model/run.py, which writes BENCHMARKS.md.
 */
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/common.h"
#include "model/model.h"

#define BENCH_MIN_NS 200000000LL /* 0.2 s per measurement */
#define BENCH_REPS   9

static const size_t batches[] = {1, 16, 256, 4096};

typedef int (*predict_fn)(void *ctx, const double *X, size_t n, size_t nf, double *out);

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* CPU time of this thread: time the scheduler gave to other processes on a
 * shared machine is not counted (everything measured here is single-threaded
 * and runs on the calling thread). */
static int64_t thread_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double measure(predict_fn fn, void *ctx, const double *X, size_t rows, size_t nf, size_t batch, double *out)
{
    double reps[BENCH_REPS];
    /* warm-up */
    for (size_t r = 0; r + batch <= rows && r < 4 * batch + 64; r += batch)
        fn(ctx, X + r * nf, batch, nf, out);
    for (int k = 0; k < BENCH_REPS; k++) {
        long long n_rows = 0;
        int64_t t0 = thread_ns(), t1;
        size_t r = 0;
        do {
            for (int i = 0; i < 16; i++) {
                if (r + batch > rows)
                    r = 0;
                if (fn(ctx, X + r * nf, batch, nf, out) != 0) {
                    fprintf(stderr, "predict failed\n");
                    exit(1);
                }
                r += batch;
                n_rows += (long long)batch;
            }
            t1 = thread_ns();
        } while (t1 - t0 < BENCH_MIN_NS / BENCH_REPS);
        reps[k] = (double)(t1 - t0) / (double)n_rows;
    }
    /* The minimum: on a shared machine, the other processes only ever add
     * time, so the fastest repetition is the best estimate of the code's cost. */
    qsort(reps, BENCH_REPS, sizeof(double), cmp_double);
    return reps[0];
}

/* ------------------------------------------------------------- kscore */

static int kscore_predict(void *ctx, const double *X, size_t n, size_t nf, double *out)
{
    return ks_model_predict(ctx, X, n, out);
}

/* ------------------------------------------------------------ xgboost */

typedef struct {
    void *handle;
    int (*predict)(void *, const char *, const char *, void *, const uint64_t **, uint64_t *, const float **);
    const char *config;
} xgb_ctx_t;

static int xgb_predict(void *p, const double *X, size_t n, size_t nf, double *out)
{
    xgb_ctx_t *c = p;
    char iface[256];
    snprintf(iface, sizeof(iface),
             "{\"data\": [%llu, true], \"shape\": [%zu, %zu], \"typestr\": \"<f8\", \"version\": 3, \"strides\": null}",
             (unsigned long long)(uintptr_t)X, n, nf);
    const uint64_t *shape;
    uint64_t dim;
    const float *res;
    if (c->predict(c->handle, iface, c->config, NULL, &shape, &dim, &res) != 0)
        return -1;
    out[0] = res[0]; /* touch the result like a caller would */
    return 0;
}

static int setup_xgboost(const char *lib, const char *model, const char *nthread, xgb_ctx_t *c)
{
    void *so = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!so) {
        fprintf(stderr, "dlopen %s: %s\n", lib, dlerror());
        return -1;
    }
    int (*create)(void *, uint64_t, void **) = (int (*)(void *, uint64_t, void **))dlsym(so, "XGBoosterCreate");
    int (*load)(void *, const char *) = (int (*)(void *, const char *))dlsym(so, "XGBoosterLoadModel");
    int (*setp)(void *, const char *, const char *) =
        (int (*)(void *, const char *, const char *))dlsym(so, "XGBoosterSetParam");
    c->predict = (int (*)(void *, const char *, const char *, void *, const uint64_t **, uint64_t *,
                          const float **))dlsym(so, "XGBoosterPredictFromDense");
    if (!create || !load || !setp || !c->predict || create(NULL, 0, &c->handle) || load(c->handle, model) ||
        setp(c->handle, "nthread", nthread)) {
        fprintf(stderr, "xgboost setup failed\n");
        return -1;
    }
    c->config = "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0, "
                "\"missing\": NaN, \"strict_shape\": false, \"cache_id\": 0}";
    return 0;
}

/* ----------------------------------------------------------- lightgbm */

typedef struct {
    void *handle, *fast;
    int (*predict_mat)(void *, const void *, int, int32_t, int32_t, int, int, int, int, const char *, int64_t *,
                       double *);
    int (*predict_fast)(void *, const void *, int64_t *, double *);
    char params[64];
    double *buf;
} lgb_ctx_t;

static int lgb_predict(void *p, const double *X, size_t n, size_t nf, double *out)
{
    lgb_ctx_t *c = p;
    int64_t len;
    if (n == 1)
        return c->predict_fast(c->fast, X, &len, c->buf);
    return c->predict_mat(c->handle, X, 1, (int32_t)n, (int32_t)nf, 1, 0, 0, -1, c->params, &len, c->buf);
}

static int setup_lightgbm(const char *lib, const char *model, size_t nf, const char *nthread, lgb_ctx_t *c)
{
    void *so = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!so) {
        fprintf(stderr, "dlopen %s: %s\n", lib, dlerror());
        return -1;
    }
    int (*create)(const char *, int *, void **) =
        (int (*)(const char *, int *, void **))dlsym(so, "LGBM_BoosterCreateFromModelfile");
    int (*fast_init)(void *, int, int, int, int, int32_t, const char *, void **) =
        (int (*)(void *, int, int, int, int, int32_t, const char *, void **))dlsym(
            so, "LGBM_BoosterPredictForMatSingleRowFastInit");
    c->predict_mat = (int (*)(void *, const void *, int, int32_t, int32_t, int, int, int, int, const char *,
                              int64_t *, double *))dlsym(so, "LGBM_BoosterPredictForMat");
    c->predict_fast = (int (*)(void *, const void *, int64_t *, double *))dlsym(
        so, "LGBM_BoosterPredictForMatSingleRowFast");
    int iters;
    snprintf(c->params, sizeof(c->params), "num_threads=%s", nthread);
    if (!create || !fast_init || !c->predict_mat || !c->predict_fast || create(model, &iters, &c->handle) ||
        fast_init(c->handle, 0, 0, -1, 1, (int32_t)nf, c->params, &c->fast)) {
        fprintf(stderr, "lightgbm setup failed\n");
        return -1;
    }
    c->buf = ks_xmalloc(4096 * 64 * sizeof(double));
    return 0;
}

/* ------------------------------------------------------------ tl2cgen */

union tl_entry {
    int missing;
    double fvalue;
    int qvalue;
};

typedef struct {
    void (*predict)(union tl_entry *, int, double *);
    union tl_entry *row;
} tl_ctx_t;

static int tl_predict(void *p, const double *X, size_t n, size_t nf, double *out)
{
    tl_ctx_t *c = p;
    for (size_t r = 0; r < n; r++) {
        const double *x = X + r * nf;
        for (size_t j = 0; j < nf; j++) {
            if (isnan(x[j]))
                c->row[j].missing = -1;
            else
                c->row[j].fvalue = x[j];
        }
        c->predict(c->row, 0, out + r * 2);
    }
    return 0;
}

static int setup_tl2cgen(const char *lib, size_t nf, tl_ctx_t *c)
{
    void *so = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!so) {
        fprintf(stderr, "dlopen %s: %s\n", lib, dlerror());
        return -1;
    }
    c->predict = (void (*)(union tl_entry *, int, double *))dlsym(so, "predict");
    if (!c->predict) {
        fprintf(stderr, "%s has no predict()\n", lib);
        return -1;
    }
    c->row = ks_xcalloc(nf, sizeof(union tl_entry));
    return 0;
}

/* --------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: bench_model kscore MODEL XFILE NF | xgboost LIB MODEL XFILE NF [NTHREAD] | "
                        "lightgbm LIB MODEL XFILE NF [NTHREAD] | tl2cgen LIB XFILE NF\n");
        return 2;
    }
    const char *kind = argv[1];
    int is_tl = !strcmp(kind, "tl2cgen");
    const char *xfile = argv[is_tl ? 3 : (!strcmp(kind, "kscore") ? 3 : 4)];
    size_t nf = (size_t)atol(argv[is_tl ? 4 : (!strcmp(kind, "kscore") ? 4 : 5)]);
    const char *nthread = argc > 6 ? argv[6] : "1";
    char err[512];
    char *buf;
    size_t len;
    if (ks_read_file(xfile, &buf, &len, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    size_t rows = len / (nf * sizeof(double));
    double *X = ks_xmalloc(len);
    memcpy(X, buf, len);
    free(buf);
    double *out = ks_xmalloc(4096 * 64 * sizeof(double));
    predict_fn fn;
    void *ctx;
    static xgb_ctx_t xc;
    static lgb_ctx_t lc;
    static tl_ctx_t tc;
    ks_model_t *m = NULL;

    if (!strcmp(kind, "kscore")) {
        if (ks_model_load_file(argv[2], &m, err, sizeof(err))) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        if (m->n_features != nf) {
            fprintf(stderr, "model has %zu features, not %zu\n", m->n_features, nf);
            return 1;
        }
        fn = kscore_predict;
        ctx = m;
    } else if (!strcmp(kind, "xgboost")) {
        if (setup_xgboost(argv[2], argv[3], nthread, &xc))
            return 1;
        fn = xgb_predict;
        ctx = &xc;
    } else if (!strcmp(kind, "lightgbm")) {
        if (setup_lightgbm(argv[2], argv[3], nf, nthread, &lc))
            return 1;
        fn = lgb_predict;
        ctx = &lc;
    } else if (is_tl) {
        if (setup_tl2cgen(argv[2], nf, &tc))
            return 1;
        fn = tl_predict;
        ctx = &tc;
    } else {
        fprintf(stderr, "unknown runtime %s\n", kind);
        return 2;
    }
    for (size_t i = 0; i < KS_ARRAY_LEN(batches); i++) {
        if (batches[i] > rows)
            break;
        printf("%s %zu %.1f\n", kind, batches[i], measure(fn, ctx, X, rows, nf, batches[i], out));
        fflush(stdout);
    }
    ks_model_unref(m);
    free(X);
    free(out);
    return 0;
}
