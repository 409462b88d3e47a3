/*
 * fuzz_config.c - libFuzzer target for the config loader: arbitrary bytes as
 * pipeline YAML through the whole validation (YAML tree, table keys, kafka
 * properties, input.fields, features). It must never crash, leak or hang,
 * whatever it is given; errors are expected.
 */
#include "engine/config.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024];
    ks_config_t *cfg = NULL;
    if (size > 1 << 20)
        return 0;
    if (ks_config_load_text("fuzz.yaml", (const char *)data, size, &cfg, err, sizeof(err)) == 0)
        ks_config_free(cfg);
    return 0;
}
