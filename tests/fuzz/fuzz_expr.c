/*
 * fuzz_expr.c - libFuzzer target for the parsers of the features module, run
 * over the same bytes:
 *
 *  1. the expression compiler (features/expr.c): arbitrary text as an `expr:`;
 *     when it compiles, it is evaluated on three fixed events (numbers, all
 *     missing, strings in the `any` and `timestamp` fields: only that one may
 *     fail), and compiling it again must give the same program;
 *  2. the ISO-8601 reader (features/timestamp.c), which reads event data:
 *     when it accepts, the instant must be in range and formatting it back as
 *     UTC and reading that again must give the same second;
 *  3. the whole `features:` section, when the bytes are a YAML config with
 *     one: parse it against the fixed schema and compute it on the events.
 *
 * Besides "no crash, no sanitizer report", a broken invariant calls abort().
 *
 * Build: CC=clang cmake -S . -B build-fuzz -DKSCORE_FUZZ=ON && cmake --build
 * build-fuzz --target fuzz_expr && build-fuzz/tests/fuzz_expr corpus/
 * (normal builds replay tests/fuzz/corpus/fuzz_expr/ under ctest).
 */
#include "base/common.h"
#include "base/conftree.h"
#include "features/expr.h"
#include "features/features.h"
#include "features/timestamp.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TEXT 4096

static ks_field_t fields[] = {
    {.name = "a", .type = KS_FIELD_NUMBER},
    {.name = "b", .type = KS_FIELD_NUMBER},
    {.name = "payment.amount", .type = KS_FIELD_NUMBER},
    {.name = "flag", .type = KS_FIELD_BOOL},
    {.name = "s", .type = KS_FIELD_STRING},
    {.name = "x", .type = KS_FIELD_ANY},
    {.name = "ts", .type = KS_FIELD_TIMESTAMP},
    {.name = "log", .type = KS_FIELD_NUMBER},
};
static const ks_schema_t schema = {fields, sizeof(fields) / sizeof(fields[0]), sizeof(fields) / sizeof(fields[0])};
#define NF (sizeof(fields) / sizeof(fields[0]))

static ks_value_t rows[3][NF];

static void init_rows(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    ks_value_t *r = rows[0];
    r[0] = (ks_value_t){.type = KS_VAL_NUM, .num = 2.5};
    r[1] = (ks_value_t){.type = KS_VAL_NUM, .num = -0.0};
    r[2] = (ks_value_t){.type = KS_VAL_NUM, .num = 1e308};
    r[3] = (ks_value_t){.type = KS_VAL_BOOL, .b = 1};
    r[4] = (ks_value_t){.type = KS_VAL_STR, .str = "grocery", .len = 7};
    r[5] = (ks_value_t){.type = KS_VAL_NUM, .num = 7};
    r[6] = (ks_value_t){.type = KS_VAL_NUM, .num = 1709296496};
    r[7] = (ks_value_t){.type = KS_VAL_NUM, .num = 10};
    /* rows[1]: all missing (zero-initialised) */
    memcpy(rows[2], rows[0], sizeof(rows[0]));
    rows[2][5] = (ks_value_t){.type = KS_VAL_STR, .str = "12", .len = 2};
    rows[2][6] = (ks_value_t){.type = KS_VAL_STR, .str = "2024-03-01T12:34:56Z", .len = 20};
}

static void fuzz_expression(const char *text)
{
    char err[256], d1[2048], d2[2048];
    ks_expr_t *e = NULL, *again = NULL;
    if (ks_expr_compile(text, &schema, &e, err, sizeof(err)) != KS_OK) {
        if (!strstr(err, "column") && !strstr(err, "empty expression") &&
            !strstr(err, "stack slots"))
            abort(); /* every syntax error names a column */
        return;
    }
    for (int i = 0; i < 3; i++) {
        double v = 0;
        int rc = ks_expr_eval(e, rows[i], &v, err, sizeof(err));
        if (rc != KS_OK && (i != 2 || rc != KS_EINVAL)) /* only row 2 holds strings */
            abort();
    }
    double k;
    if (ks_expr_is_constant(e, &k) && ks_expr_single_field(e) >= 0)
        abort();
    ks_expr_disasm(e, d1, sizeof(d1));
    if (ks_expr_compile(text, &schema, &again, err, sizeof(err)) != KS_OK)
        abort();
    ks_expr_disasm(again, d2, sizeof(d2));
    if (strcmp(d1, d2) != 0)
        abort();
    ks_expr_free(again);
    ks_expr_free(e);
}

/* Hinnant's civil_from_days, the inverse of ks_timestamp_days_from_civil. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static void fuzz_timestamp(const uint8_t *data, size_t size)
{
    int64_t secs, again;
    int32_t nanos, n2;
    if (ks_timestamp_parse_iso8601((const char *)data, size, &secs, &nanos) != KS_OK)
        return;
    const int64_t lo = ks_timestamp_days_from_civil(0, 1, 1) * 86400 - 86400;
    const int64_t hi = ks_timestamp_days_from_civil(9999, 12, 31) * 86400 + 2 * 86400;
    if (secs < lo || secs > hi || nanos < 0 || nanos > 999999999)
        abort();
    int64_t days = ks_timestamp_floordiv(secs, 86400), sod = secs - days * 86400;
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999) /* an offset moved it out of the four-digit years */
        return;
    char buf[40];
    int len = snprintf(buf, sizeof(buf), "%04" PRId64 "-%02d-%02dT%02d:%02d:%02dZ", y, m, d,
                       (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60));
    if (ks_timestamp_parse_iso8601(buf, (size_t)len, &again, &n2) != KS_OK || again != secs)
        abort();
}

static void fuzz_features(const char *text, size_t len)
{
    if (!strstr(text, "features"))
        return;
    ks_node_t *root = NULL;
    ks_features_t *f = NULL;
    char err[512];
    if (ks_node_parse_string("fuzz.yaml", text, len, &root, err, sizeof(err)) != KS_OK)
        return;
    if (ks_features_parse(ks_node_get(root, "features"), &schema, &f, err, sizeof(err)) ==
        KS_OK) {
        size_t n = ks_features_count(f);
        double *out = calloc(n, sizeof(double));
        for (size_t i = 0; i < n; i++)
            if (!ks_features_name(f, i))
                abort();
        for (int r = 0; r < 3; r++)
            ks_features_compute(f, rows[r], out, err, sizeof(err));
        free(out);
    } else if (strncmp(err, "fuzz.yaml:", 10) != 0 && !strstr(err, "no features: section")) {
        abort(); /* config errors are located */
    }
    ks_features_free(f);
    ks_node_free(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char text[MAX_TEXT + 1];
    if (size > MAX_TEXT)
        return 0;
    init_rows();
    memcpy(text, data, size);
    text[size] = '\0';
    fuzz_expression(text);
    fuzz_timestamp(data, size);
    fuzz_features(text, strlen(text));
    return 0;
}
