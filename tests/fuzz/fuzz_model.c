/*
 * fuzz_model.c - libFuzzer target: arbitrary bytes through the model loader,
 * which picks the backend by content; the seed corpus holds kscore JSON,
 * XGBoost JSON and LightGBM text files (hostile ones included), so mutations
 * reach every backend. A file that loads is then asked to predict a few rows of
 * ordinary, missing and extreme values: no input may crash, hang, leak or
 * read out of bounds; refusals must come with a message.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const double values[] = {0.0, NAN, 1.0, -1.0, 0.5, 1e-36, -3.5, 1e30, 7.0, -0.0};
    char err[512] = "";
    ks_model_t *m = NULL;
    if (ks_model_load_buffer("fuzz", (const char *)data, size, &m, err, sizeof(err)) != 0) {
        if (!err[0])
            abort(); /* every refusal says why */
        return 0;
    }
    if (m->n_features <= 100000 && m->n_outputs <= 100000) {
        size_t rows = 4;
        double *X = malloc(rows * m->n_features * sizeof(double));
        double *Y = malloc(rows * m->n_outputs * sizeof(double));
        for (size_t i = 0; i < rows * m->n_features; i++)
            X[i] = values[(i * 7 + i / 3) % (sizeof(values) / sizeof(values[0]))];
        if (ks_model_predict(m, X, rows, Y) != 0)
            abort();
        free(X);
        free(Y);
    }
    ks_model_unref(m);
    return 0;
}
