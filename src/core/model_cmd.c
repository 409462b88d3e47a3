/*
 * model_cmd.c - `kscore model info|predict`: the public entry points behind
 * the CLI, on top of the model runtime's describe / CSV-scoring functions.
 */
#include "kscore/kscore.h"
#include "model/model.h"
#include "model/model_cli.h"

#include <stdio.h>

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
