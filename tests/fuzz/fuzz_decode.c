/*
 * fuzz_decode.c - libFuzzer target for the two JSON readers of outside input:
 * the schema-directed event decoder (decode/json_decoder.c) and the DOM parser
 * (base/json.c), run over the same bytes and checked against each other.
 *
 * Besides "no crash, no sanitizer report", it traps when the two disagree:
 *  - the DOM accepts an object but the decoder calls it malformed (or the
 *    reverse, except for numbers overflowing a double, which only the DOM
 *    refuses everywhere);
 *  - both accept, and a declared field decodes to something other than what
 *    the DOM holds at that path (same type, same bytes, same number bits),
 *    or the decoder's type verdict differs from the DOM's.
 * A second schema with defaults and required fields is run for coverage.
 *
 * Build: CC=clang cmake -S . -B build-fuzz -DKSCORE_FUZZ=ON && cmake --build
 * build-fuzz --target fuzz_decode && build-fuzz/tests/fuzz_decode corpus/
 * (normal builds replay tests/fuzz/corpus/fuzz_decode/ under ctest).
 */
#include "base/common.h"
#include "base/conftree.h"
#include "decode/decoder.h"
#include "decode/schema.h"
#include "base/json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char plain_yaml[] =
    "fields:\n"
    "  id: any\n"
    "  amount: number\n"
    "  s: string\n"
    "  b: bool\n"
    "  ts: timestamp\n"
    "  payment.amount: number\n"
    "  payment.card.bin: string\n"
    "  a.b.c.d: any\n";

static const char rich_yaml[] =
    "fields:\n"
    "  id: {type: string, required: true}\n"
    "  amount: {type: number, default: 0}\n"
    "  payment.amount: {type: number, required: true}\n"
    "  payment.method: {type: string, default: card}\n"
    "  flag: {type: bool, default: false}\n"
    "  x.y: {type: any, default: 1}\n";

typedef struct setup {
    ks_schema_t *schema;
    ks_decoder_t *dec;
} setup_t;

static setup_t plain, rich;
static ks_arena_t arena;

static void make(setup_t *st, const char *yaml)
{
    char eb[256];
    ks_node_t *root = NULL;
    if (ks_node_parse_string("fuzz.yaml", yaml, strlen(yaml), &root, eb, sizeof(eb)) ||
        ks_schema_parse(ks_node_get(root, "fields"), &st->schema, eb, sizeof(eb)) ||
        ks_decoder_new(st->schema, &st->dec, eb, sizeof(eb))) {
        fprintf(stderr, "fuzz_decode setup: %s\n", eb);
        abort();
    }
    ks_node_free(root);
}

static void init_once(void)
{
    static int done = 0;
    if (done)
        return;
    done = 1;
    make(&plain, plain_yaml);
    make(&rich, rich_yaml);
    ks_arena_init(&arena, 65536);
}

#define EXPECT(c) do { if (!(c)) { fprintf(stderr, "fuzz_decode: %s (line %d)\n", #c, __LINE__); \
    __builtin_trap(); } } while (0)

/* What the DOM says field f should decode to: 0 = ok (value in *node or
 * absent), 1 = type error. */
static int dom_expect(const ks_json_t *root, const ks_field_t *f, const ks_json_t **node)
{
    const ks_json_t *cur = root;
    *node = NULL;
    for (int k = 0; k < f->n_path; k++) {
        const ks_json_t *next = ks_json_get(cur, f->path[k]);
        if (!next)
            return 0; /* absent */
        if (k < f->n_path - 1) {
            if (next->type == KS_JSON_NULL)
                return 0; /* null parent = absent */
            if (next->type != KS_JSON_OBJECT)
                return 1;
        }
        cur = next;
    }
    *node = cur;
    switch (cur->type) {
    case KS_JSON_NULL: return 0;
    case KS_JSON_OBJECT:
    case KS_JSON_ARRAY: return 1;
    case KS_JSON_NUMBER:
        return !(f->type == KS_FIELD_NUMBER || f->type == KS_FIELD_TIMESTAMP ||
                 f->type == KS_FIELD_ANY);
    case KS_JSON_STRING:
        return !(f->type == KS_FIELD_STRING || f->type == KS_FIELD_TIMESTAMP ||
                 f->type == KS_FIELD_ANY);
    case KS_JSON_BOOL:
        return !(f->type == KS_FIELD_BOOL || f->type == KS_FIELD_ANY);
    }
    return 1;
}

static void differential(const ks_json_t *root, int rc, const ks_value_t *out,
                         const ks_decode_error_t *err)
{
    const ks_schema_t *sc = plain.schema;
    int want_type_error = 0;
    for (size_t i = 0; i < sc->n_fields; i++) {
        const ks_json_t *n;
        want_type_error |= dom_expect(root, &sc->fields[i], &n);
    }
    if (want_type_error) {
        EXPECT(rc == KS_EINVAL && err->cls == KS_ERRCLASS_TYPE);
        return;
    }
    EXPECT(rc == KS_OK);
    for (size_t i = 0; i < sc->n_fields; i++) {
        const ks_json_t *n;
        dom_expect(root, &sc->fields[i], &n);
        const ks_value_t *v = &out[i];
        if (!n) {
            EXPECT(v->type == KS_VAL_MISSING);
            continue;
        }
        switch (n->type) {
        case KS_JSON_NULL:
            EXPECT(v->type == KS_VAL_NULL);
            break;
        case KS_JSON_NUMBER:
            EXPECT(v->type == KS_VAL_NUM && memcmp(&v->num, &n->u.num, sizeof(double)) == 0);
            break;
        case KS_JSON_STRING:
            EXPECT(v->type == KS_VAL_STR && v->len == n->len &&
                   memcmp(v->str, n->u.str, n->len) == 0);
            break;
        case KS_JSON_BOOL:
            EXPECT(v->type == KS_VAL_BOOL && v->b == n->boolean);
            break;
        default:
            EXPECT(0);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ks_value_t out[16];
    ks_decode_error_t err;
    char eb[256];
    ks_json_t *root = NULL;

    init_once();
    ks_arena_reset(&arena);
    const char *buf = (const char *)data;

    int rc = ks_decoder_decode(plain.dec, buf, size, out, &arena, &err);
    EXPECT(rc == KS_OK || rc == KS_EINVAL);
    EXPECT((rc == KS_OK) == (err.cls == KS_ERRCLASS_NONE));
    EXPECT(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);

    int jrc = ks_json_parse(buf, size, &root, eb, sizeof(eb));
    EXPECT(jrc == KS_OK || jrc == KS_EINVAL);
    int dom_object = (jrc == KS_OK && root->type == KS_JSON_OBJECT);
    if (dom_object) {
        EXPECT(rc == KS_OK || err.cls != KS_ERRCLASS_DESERIALIZATION);
        differential(root, rc, out, &err);
    } else if (rc == KS_OK || err.cls != KS_ERRCLASS_DESERIALIZATION) {
        /* the decoder accepted JSON the DOM refused: only overflowing numbers */
        EXPECT(jrc == KS_EINVAL && strstr(eb, "out of the range of a double"));
    }
    ks_json_free(root);

    ks_value_t out2[16];
    rc = ks_decoder_decode(rich.dec, buf, size, out2, &arena, &err);
    EXPECT(rc == KS_OK || rc == KS_EINVAL);
    if (rc == KS_OK) {
        EXPECT(out2[0].type == KS_VAL_STR); /* required */
        EXPECT(out2[2].type == KS_VAL_NUM); /* required */
        EXPECT(out2[3].type == KS_VAL_STR); /* defaulted */
    }
    return 0;
}
