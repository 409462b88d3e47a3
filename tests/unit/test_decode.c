/*
 * test_decode.c - input schema parsing (decode/schema.c) and the schema-directed
 * JSON event decoder (decode/json_decoder.c): every error class, defaults,
 * nesting, duplicates, escapes and unicode, invalid UTF-8, depth, the
 * strtod-equivalence corpus (over a million seeded random numbers in many
 * shapes, each checked bit-for-bit against strtod), and a speed printout.
 */
#include "base/common.h"
#include "base/conftree.h"
#include "decode/decoder.h"
#include "decode/schema.h"
#include "base/json.h"
#include "test.h"

#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char eb[512];

/* Parses `yaml` (a document with a top-level `fields:` map) into a schema. */
static ks_schema_t *schema_from(const char *yaml)
{
    ks_node_t *root = NULL;
    ks_schema_t *s = NULL;
    eb[0] = '\0';
    if (ks_node_parse_string("test.yaml", yaml, strlen(yaml), &root, eb, sizeof(eb)) != KS_OK)
        return NULL;
    ks_node_t *f = ks_node_get(root, "fields");
    if (f && ks_schema_parse(f, &s, eb, sizeof(eb)) != KS_OK)
        s = NULL;
    ks_node_free(root);
    return s;
}

/* A decoder + arena + output slots for one schema. */
typedef struct fixture {
    ks_schema_t *schema;
    ks_decoder_t *dec;
    ks_arena_t arena;
    ks_value_t out[32];
    ks_decode_error_t err;
} fixture_t;

static int fx_open(fixture_t *fx, const char *yaml)
{
    memset(fx, 0, sizeof(*fx));
    fx->schema = schema_from(yaml);
    if (!fx->schema) {
        fprintf(stderr, "schema: %s\n", eb);
        return 0;
    }
    if (ks_decoder_new(fx->schema, &fx->dec, eb, sizeof(eb)) != KS_OK) {
        fprintf(stderr, "decoder: %s\n", eb);
        return 0;
    }
    ks_arena_init(&fx->arena, 4096);
    return 1;
}

static void fx_close(fixture_t *fx)
{
    ks_decoder_free(fx->dec);
    ks_schema_free(fx->schema);
    ks_arena_free(&fx->arena);
}

static int fx_decode_n(fixture_t *fx, const char *json, size_t n)
{
    return ks_decoder_decode(fx->dec, json, n, fx->out, &fx->arena, &fx->err);
}

static int fx_decode(fixture_t *fx, const char *json)
{
    return fx_decode_n(fx, json, strlen(json));
}

static int str_eq(const ks_value_t *v, const char *s)
{
    return v->type == KS_VAL_STR && v->len == strlen(s) && memcmp(v->str, s, v->len) == 0;
}

static uint64_t bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

/* ------------------------------------------------------------------ schema */

static void test_schema_forms(void)
{
    ks_schema_t *s = schema_from("fields:\n"
                                 "  id: {type: string, required: true}\n"
                                 "  amount: number\n"
                                 "  payment.amount: {type: number, default: 0.5}\n"
                                 "  ok: {type: bool, default: true}\n"
                                 "  ts: {type: timestamp, default: 1700000000}\n"
                                 "  cat: {type: string, default: none}\n"
                                 "  a1: {type: any, default: \"12\"}\n"
                                 "  a2: {type: any, default: 12}\n"
                                 "  a3: {type: any, default: false}\n"
                                 "  t2: {type: timestamp, default: '2024-01-01T00:00:00Z'}\n");
    CHECK_MSG(s != NULL, "%s", eb);
    if (!s)
        return;
    CHECK_EQ_INT(s->n_fields, 10);
    CHECK_EQ_STR(s->fields[0].name, "id");
    CHECK(s->fields[0].required && !s->fields[0].has_default);
    CHECK_EQ_INT(s->fields[0].type, KS_FIELD_STRING);
    CHECK_EQ_INT(s->fields[1].type, KS_FIELD_NUMBER);
    CHECK(!s->fields[1].required);
    CHECK_EQ_INT(s->fields[2].n_path, 2);
    CHECK_EQ_STR(s->fields[2].path[0], "payment");
    CHECK_EQ_STR(s->fields[2].path[1], "amount");
    CHECK(s->fields[2].has_default && s->fields[2].dflt.type == KS_VAL_NUM &&
          s->fields[2].dflt.num == 0.5);
    CHECK(s->fields[3].dflt.type == KS_VAL_BOOL && s->fields[3].dflt.b == 1);
    CHECK(s->fields[4].dflt.type == KS_VAL_NUM && s->fields[4].dflt.num == 1700000000);
    CHECK(str_eq(&s->fields[5].dflt, "none"));
    CHECK(str_eq(&s->fields[6].dflt, "12"));
    CHECK(s->fields[7].dflt.type == KS_VAL_NUM && s->fields[7].dflt.num == 12);
    CHECK(s->fields[8].dflt.type == KS_VAL_BOOL && s->fields[8].dflt.b == 0);
    CHECK(str_eq(&s->fields[9].dflt, "2024-01-01T00:00:00Z"));
    CHECK_EQ_INT(ks_schema_find(s, "payment.amount"), 2);
    CHECK_EQ_INT(ks_schema_find(s, "payment"), -1);
    CHECK_EQ_STR(ks_field_type_name(KS_FIELD_TIMESTAMP), "timestamp");
    ks_schema_free(s);
}

static void test_schema_errors(void)
{
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        {"fields:\n  a: {type: number, max: 3}\n", "test.yaml:2: fields.a.max: unknown key"},
        {"fields:\n  a: numbr\n", "test.yaml:2: fields.a: unknown field type \"numbr\""},
        {"fields:\n  a: {required: true}\n", "missing 'type'"},
        {"fields:\n  a: {type: number, required: true, default: 1}\n",
         "required field cannot have a default"},
        {"fields:\n  a: {type: number, default: abc}\n", "expected a number"},
        {"fields:\n  a: {type: bool, default: 3}\n", "expected true or false"},
        {"fields:\n  a: {type: string, required: maybe}\n", "expected true or false"},
        {"fields:\n  a..b: number\n", "no empty parts"},
        {"fields:\n  .a: number\n", "no empty parts"},
        {"fields:\n  a.: number\n", "no empty parts"},
        {"fields:\n  p: number\n  p.q: number\n", "lies inside field 'p'"},
        {"fields:\n  p.q: number\n  p: string\n", "lies inside field 'p'"},
        {"fields:\n  a: [number]\n", "not a list"},
        {"fields: []\n", "expected a map"},
        {"fields: {}\n", "at least one"},
        {"fields:\n  a: {type: {x: 1}}\n", "expected a scalar"},
    };
    for (size_t i = 0; i < KS_ARRAY_LEN(cases); i++) {
        ks_schema_t *s = schema_from(cases[i].yaml);
        CHECK_MSG(s == NULL, "accepted case %zu", i);
        CHECK_CONTAINS(eb, cases[i].want);
        ks_schema_free(s);
    }
}

static void test_schema_marks_used(void)
{
    const char *yaml = "fields:\n  a: {type: number, default: 1}\n  b: string\nother: 1\n";
    ks_node_t *root = NULL;
    ks_schema_t *s = NULL;
    CHECK(ks_node_parse_string("t.yaml", yaml, strlen(yaml), &root, eb, sizeof(eb)) == KS_OK);
    CHECK(ks_schema_parse(ks_node_get(root, "fields"), &s, eb, sizeof(eb)) == KS_OK);
    ks_node_get(root, "fields")->used = 1;
    CHECK(ks_node_check_unused(root, eb, sizeof(eb)) != KS_OK);
    CHECK_CONTAINS(eb, "unknown key 'other'"); /* everything under fields was used */
    ks_schema_free(s);
    ks_node_free(root);
}

/* ------------------------------------------------------------------ decode */

#define FRAUD_SCHEMA                                                   \
    "fields:\n"                                                        \
    "  id: {type: string, required: true}\n"                           \
    "  user_id: {type: any, required: true}\n"                         \
    "  amount: {type: number, required: true}\n"                       \
    "  merchant_category: {type: string, default: unknown}\n"          \
    "  n_tx_24h: {type: number, default: 0}\n"                         \
    "  account_age_days: number\n"                                     \
    "  ts: timestamp\n"                                                \
    "  payment.method: string\n"                                       \
    "  payment.card.present: {type: bool, default: false}\n"           \
    "  payment.amount_usd: number\n"                                   \
    "  flag: bool\n"

enum { F_ID, F_USER, F_AMOUNT, F_MCC, F_NTX, F_AGE, F_TS, F_PMETHOD, F_PRESENT, F_PUSD, F_FLAG };

static const char fraud_event[] =
    "{\"id\":\"tx-000184467\",\"user_id\":\"u-52731\",\"amount\":129.95,"
    "\"currency\":\"EUR\",\"merchant_category\":\"electronics\",\"n_tx_24h\":7,"
    "\"account_age_days\":412,\"ts\":\"2024-05-17T13:45:12.345Z\","
    "\"payment\":{\"method\":\"card\",\"card\":{\"present\":false,\"bin\":\"411111\"},"
    "\"amount_usd\":141.2,\"3ds\":true},"
    "\"device\":{\"os\":\"android\",\"ip\":\"203.0.113.7\",\"fp\":[1,2,3]},"
    "\"tags\":[\"web\",\"promo\"],\"score_hint\":null,\"flag\":true}";

static void test_decode_basic(void)
{
    fixture_t fx;
    if (!fx_open(&fx, FRAUD_SCHEMA))
        return;
    CHECK_EQ_INT(fx_decode(&fx, fraud_event), KS_OK);
    CHECK_EQ_INT(fx.err.cls, KS_ERRCLASS_NONE);
    CHECK(str_eq(&fx.out[F_ID], "tx-000184467"));
    CHECK(str_eq(&fx.out[F_USER], "u-52731"));
    CHECK(fx.out[F_AMOUNT].type == KS_VAL_NUM && fx.out[F_AMOUNT].num == 129.95);
    CHECK(str_eq(&fx.out[F_MCC], "electronics"));
    CHECK(fx.out[F_NTX].num == 7 && fx.out[F_AGE].num == 412);
    CHECK(str_eq(&fx.out[F_TS], "2024-05-17T13:45:12.345Z"));
    CHECK(str_eq(&fx.out[F_PMETHOD], "card"));
    CHECK(fx.out[F_PRESENT].type == KS_VAL_BOOL && fx.out[F_PRESENT].b == 0);
    CHECK(fx.out[F_PUSD].type == KS_VAL_NUM && fx.out[F_PUSD].num == 141.2);
    CHECK(fx.out[F_FLAG].type == KS_VAL_BOOL && fx.out[F_FLAG].b == 1);
    /* strings without escapes point into the payload */
    CHECK(fx.out[F_ID].str > fraud_event && fx.out[F_ID].str < fraud_event + sizeof(fraud_event));

    /* whitespace everywhere, numbers as user id */
    CHECK_EQ_INT(fx_decode(&fx, " \n\t{ \"id\" : \"a\" ,\r\n \"user_id\" : 42 , \"amount\" : -0 } \n"),
                 KS_OK);
    CHECK(fx.out[F_USER].type == KS_VAL_NUM && fx.out[F_USER].num == 42);
    CHECK(fx.out[F_AMOUNT].num == 0 && signbit(fx.out[F_AMOUNT].num));
    fx_close(&fx);
}

static void test_defaults_and_missing(void)
{
    fixture_t fx;
    if (!fx_open(&fx, FRAUD_SCHEMA))
        return;
    CHECK_EQ_INT(fx_decode(&fx, "{\"id\":\"a\",\"user_id\":1,\"amount\":2,\"n_tx_24h\":null,"
                                "\"account_age_days\":null}"), KS_OK);
    CHECK(str_eq(&fx.out[F_MCC], "unknown"));                         /* missing -> default */
    CHECK(fx.out[F_NTX].type == KS_VAL_NUM && fx.out[F_NTX].num == 0); /* null -> default */
    CHECK_EQ_INT(fx.out[F_AGE].type, KS_VAL_NULL);                     /* null, no default */
    CHECK_EQ_INT(fx.out[F_TS].type, KS_VAL_MISSING);                   /* missing, no default */
    CHECK_EQ_INT(fx.out[F_PMETHOD].type, KS_VAL_MISSING);
    CHECK(fx.out[F_PRESENT].type == KS_VAL_BOOL && fx.out[F_PRESENT].b == 0); /* nested default */
    /* a null parent is an absent parent */
    CHECK_EQ_INT(fx_decode(&fx, "{\"id\":\"a\",\"user_id\":1,\"amount\":2,\"payment\":null}"), KS_OK);
    CHECK_EQ_INT(fx.out[F_PMETHOD].type, KS_VAL_MISSING);
    CHECK_EQ_INT(fx.out[F_PRESENT].type, KS_VAL_BOOL);
    /* empty parent object */
    CHECK_EQ_INT(fx_decode(&fx, "{\"id\":\"a\",\"user_id\":1,\"amount\":2,\"payment\":{}}"), KS_OK);
    CHECK_EQ_INT(fx.out[F_PUSD].type, KS_VAL_MISSING);
    fx_close(&fx);
}

static void test_error_classes(void)
{
    fixture_t fx;
    if (!fx_open(&fx, FRAUD_SCHEMA))
        return;
    static const struct {
        const char *json;
        ks_errclass_t cls;
        const char *msg;
    } cases[] = {
        /* missing / null required */
        {"{\"user_id\":1,\"amount\":2}", KS_ERRCLASS_MISSING_FIELD, "required field 'id' is missing"},
        {"{\"id\":null,\"user_id\":1,\"amount\":2}", KS_ERRCLASS_MISSING_FIELD,
         "required field 'id' is null"},
        {"{\"id\":\"a\",\"user_id\":1}", KS_ERRCLASS_MISSING_FIELD, "'amount' is missing"},
        /* wrong types */
        {"{\"id\":\"a\",\"user_id\":1,\"amount\":\"12.5\"}", KS_ERRCLASS_TYPE,
         "field 'amount': expected a number, got a string"},
        {"{\"id\":\"a\",\"user_id\":1,\"amount\":true}", KS_ERRCLASS_TYPE,
         "field 'amount': expected a number, got a boolean"},
        {"{\"id\":\"a\",\"user_id\":1,\"amount\":{\"v\":1}}", KS_ERRCLASS_TYPE,
         "field 'amount': expected a number, got an object"},
        {"{\"id\":\"a\",\"user_id\":1,\"amount\":[1]}", KS_ERRCLASS_TYPE, "got an array"},
        {"{\"id\":7,\"user_id\":1,\"amount\":1}", KS_ERRCLASS_TYPE,
         "field 'id': expected a string, got a number"},
        {"{\"id\":\"a\",\"user_id\":{},\"amount\":1}", KS_ERRCLASS_TYPE,
         "field 'user_id': expected a scalar"},
        {"{\"id\":\"a\",\"user_id\":1,\"amount\":1,\"ts\":true}", KS_ERRCLASS_TYPE,
         "field 'ts': expected a number or a string, got a boolean"},
        {"{\"id\":\"a\",\"user_id\":1,\"amount\":1,\"flag\":1}", KS_ERRCLASS_TYPE,
         "field 'flag': expected true or false, got a number"},
        {"{\"id\":\"a\",\"user_id\":1,\"amount\":1,\"flag\":\"true\"}", KS_ERRCLASS_TYPE,
         "field 'flag'"},
        {"{\"id\":\"a\",\"user_id\":1,\"amount\":1e400}", KS_ERRCLASS_TYPE,
         "field 'amount': number out of the range of a double"},
        {"{\"id\":\"a\",\"user_id\":1,\"amount\":1,\"payment\":\"card\"}", KS_ERRCLASS_TYPE,
         "field 'payment.method': expected 'payment' to be an object, got a string"},
        {"{\"id\":\"a\",\"user_id\":1,\"amount\":1,\"payment\":{\"card\":[1]}}", KS_ERRCLASS_TYPE,
         "expected 'payment.card' to be an object, got an array"},
        {"{\"id\":\"a\",\"user_id\":1,\"amount\":1,\"payment\":{\"method\":3}}", KS_ERRCLASS_TYPE,
         "field 'payment.method': expected a string, got a number"},
        /* malformed */
        {"", KS_ERRCLASS_DESERIALIZATION, "empty event"},
        {"   ", KS_ERRCLASS_DESERIALIZATION, "empty event"},
        {"[1,2]", KS_ERRCLASS_DESERIALIZATION, "not a JSON object"},
        {"\"str\"", KS_ERRCLASS_DESERIALIZATION, "not a JSON object"},
        {"{\"id\":\"a\"", KS_ERRCLASS_DESERIALIZATION, "byte 9: unterminated object"},
        {"{\"id\":\"a\"}}", KS_ERRCLASS_DESERIALIZATION, "byte 10: unexpected data after"},
        {"{\"id\":\"a\"} {}", KS_ERRCLASS_DESERIALIZATION, "unexpected data after"},
        {"{\"id\":\"a\",}", KS_ERRCLASS_DESERIALIZATION, "expected a string key"},
        {"{\"id\" \"a\"}", KS_ERRCLASS_DESERIALIZATION, "expected ':'"},
        {"{id:\"a\"}", KS_ERRCLASS_DESERIALIZATION, "byte 1"},
        {"{\"id\":'a'}", KS_ERRCLASS_DESERIALIZATION, "invalid JSON"},
        {"{\"x\":01}", KS_ERRCLASS_DESERIALIZATION, "leading zeros"},
        {"{\"amount\":1.}", KS_ERRCLASS_DESERIALIZATION, "decimal point"},
        {"{\"amount\":-}", KS_ERRCLASS_DESERIALIZATION, "expected a digit"},
        {"{\"amount\":NaN}", KS_ERRCLASS_DESERIALIZATION, "invalid JSON"},
        {"{\"amount\":Infinity}", KS_ERRCLASS_DESERIALIZATION, "invalid JSON"},
        {"{\"x\":[1,2,]}", KS_ERRCLASS_DESERIALIZATION, "invalid JSON"},
        {"{\"x\":[1 2]}", KS_ERRCLASS_DESERIALIZATION, "expected ',' or ']'"},
        {"{\"x\":{\"a\":1 \"b\":2}}", KS_ERRCLASS_DESERIALIZATION, "expected ',' or '}'"},
        {"{\"x\":tru}", KS_ERRCLASS_DESERIALIZATION, "invalid literal"},
        {"{\"flag\":nul}", KS_ERRCLASS_DESERIALIZATION, "invalid literal"},
        {"{\"x\":\"a\\qb\"}", KS_ERRCLASS_DESERIALIZATION, "invalid escape"},
        {"{\"x\":\"a\nb\"}", KS_ERRCLASS_DESERIALIZATION, "control character"},
        {"{\"x\":\"abc}", KS_ERRCLASS_DESERIALIZATION, "unterminated string"},
        {"{\"id\":\"\\ud800\"}", KS_ERRCLASS_DESERIALIZATION, "surrogate"},
        {"{\"x\":\"\\udc00\"}", KS_ERRCLASS_DESERIALIZATION, "lone low surrogate"},
        {"{\"x\":\"\\ud83d\\u0041\"}", KS_ERRCLASS_DESERIALIZATION, "surrogate"},
        {"{\"x\":\"\\u12x4\"}", KS_ERRCLASS_DESERIALIZATION, "hex digits"},
        {"\xef\xbb\xbf{}", KS_ERRCLASS_DESERIALIZATION, "not a JSON object"},
        {"{\"x\":1}\x00", KS_ERRCLASS_DESERIALIZATION, "unexpected data"},
    };
    for (size_t i = 0; i < KS_ARRAY_LEN(cases); i++) {
        size_t n = strlen(cases[i].json);
        if (i == KS_ARRAY_LEN(cases) - 1)
            n++; /* include the NUL byte */
        int rc = fx_decode_n(&fx, cases[i].json, n);
        CHECK_MSG(rc == KS_EINVAL, "case %zu accepted: %s", i, cases[i].json);
        CHECK_MSG(fx.err.cls == cases[i].cls, "case %zu: class %s, msg %s", i,
                  ks_errclass_name(fx.err.cls), fx.err.msg);
        CHECK_CONTAINS(fx.err.msg, cases[i].msg);
    }
    fx_close(&fx);
}

static void test_invalid_utf8(void)
{
    fixture_t fx;
    if (!fx_open(&fx, "fields:\n  s: string\n"))
        return;
    static const char *bad[] = {
        "\x80", "\xbf", "\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xe0\x9f\xbf", "\xf0\x80\x80\xaf",
        "\xf0\x8f\xbf\xbf", "\xed\xa0\x80", "\xed\xbf\xbf", "\xed\xa0\xbd\xed\xb8\x80",
        "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xf8\x88\x80\x80\x80", "\xfe", "\xff",
        "\xc3", "\xe2\x82", "\xf0\x9f\x98", "\xc3\x28", "\xe2\x28\xa1", "\xe2\x82\x28",
        "\xf0\x28\x8c\xbc", "\xf0\x90\x28\xbc", "\xf0\x9f\x98\x28",
    };
    char json[64];
    for (size_t i = 0; i < KS_ARRAY_LEN(bad); i++) {
        /* in the declared field, in a skipped value, in a skipped key, in a nested skip */
        const char *fmts[] = {"{\"s\":\"a%sb\"}", "{\"x\":\"a%sb\",\"s\":\"ok\"}",
                              "{\"k%s\":1,\"s\":\"ok\"}", "{\"o\":[{\"z\":\"%s\"}],\"s\":\"ok\"}",
                              "{\"s\":\"ok\",\"x\":\"%s\"}"};
        for (size_t k = 0; k < KS_ARRAY_LEN(fmts); k++) {
            snprintf(json, sizeof(json), fmts[k], bad[i]);
            int rc = fx_decode(&fx, json);
            CHECK_MSG(rc == KS_EINVAL && fx.err.cls == KS_ERRCLASS_DESERIALIZATION,
                      "invalid UTF-8 #%zu accepted in form %zu", i, k);
        }
    }
    CHECK_CONTAINS(fx.err.msg, "UTF-8");
    /* boundaries that are valid */
    static const char *good[] = {"\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xed\x9f\xbf",
                                 "\xee\x80\x80", "\xef\xbf\xbf", "\xf0\x90\x80\x80",
                                 "\xf4\x8f\xbf\xbf", "\x7f"};
    for (size_t i = 0; i < KS_ARRAY_LEN(good); i++) {
        snprintf(json, sizeof(json), "{\"s\":\"%s\"}", good[i]);
        CHECK_MSG(fx_decode(&fx, json) == KS_OK, "valid UTF-8 #%zu rejected: %s", i, fx.err.msg);
        CHECK(str_eq(&fx.out[0], good[i]));
    }
    /* bytes >= 0x80 outside strings */
    CHECK(fx_decode(&fx, "{\"s\":\"a\",\xc3\xa9:1}") == KS_EINVAL);
    fx_close(&fx);
}

static void test_escapes_and_unicode(void)
{
    fixture_t fx;
    if (!fx_open(&fx, "fields:\n  s: string\n  t: any\n  p.q: string\n"))
        return;
    const char *ev = "{\"s\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20ac\\ud83d\\ude00\","
                     "\"t\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\",\"p\":{\"q\":\"\\u0000z\"}}";
    CHECK_EQ_INT(fx_decode(&fx, ev), KS_OK);
    CHECK(str_eq(&fx.out[0], "a\"b\\c/d\b\f\n\r\tA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
    /* unescaped copy lives in the arena, not in the payload */
    CHECK(fx.out[0].str < ev || fx.out[0].str >= ev + strlen(ev));
    CHECK(str_eq(&fx.out[1], "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
    CHECK(fx.out[2].type == KS_VAL_STR && fx.out[2].len == 2 &&
          memcmp(fx.out[2].str, "\0z", 2) == 0);
    /* escaped keys match declared names */
    CHECK_EQ_INT(fx_decode(&fx, "{\"\\u0073\":\"x\",\"\\u0070\":{\"\\u0071\":\"y\"}}"), KS_OK);
    CHECK(str_eq(&fx.out[0], "x"));
    CHECK(str_eq(&fx.out[2], "y"));
    /* long escaped keys that cannot match are skipped, not overflowing anything */
    char big[4096];
    size_t n = (size_t)snprintf(big, sizeof(big), "{\"");
    for (int i = 0; i < 500; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n, "\\u0073");
    snprintf(big + n, sizeof(big) - n, "\":1,\"s\":\"ok\"}");
    CHECK_EQ_INT(fx_decode(&fx, big), KS_OK);
    CHECK(str_eq(&fx.out[0], "ok"));
    /* empty strings */
    CHECK_EQ_INT(fx_decode(&fx, "{\"s\":\"\",\"\":1}"), KS_OK);
    CHECK(str_eq(&fx.out[0], ""));
    fx_close(&fx);
}

static void test_duplicates_last_wins(void)
{
    fixture_t fx;
    if (!fx_open(&fx, "fields:\n  a: number\n  p.x: number\n  p.y: number\n  p.q.r: string\n"))
        return;
    CHECK_EQ_INT(fx_decode(&fx, "{\"a\":1,\"a\":2}"), KS_OK);
    CHECK(fx.out[0].num == 2);
    /* an earlier wrong type does not count */
    CHECK_EQ_INT(fx_decode(&fx, "{\"a\":\"x\",\"a\":3}"), KS_OK);
    CHECK(fx.out[0].num == 3);
    /* ...but a later one does */
    CHECK_EQ_INT(fx_decode(&fx, "{\"a\":3,\"a\":\"x\"}"), KS_EINVAL);
    CHECK_EQ_INT(fx.err.cls, KS_ERRCLASS_TYPE);
    /* a later null wins too */
    CHECK_EQ_INT(fx_decode(&fx, "{\"a\":3,\"a\":null}"), KS_OK);
    CHECK_EQ_INT(fx.out[0].type, KS_VAL_NULL);
    /* a repeated parent replaces everything read from the earlier one */
    CHECK_EQ_INT(fx_decode(&fx, "{\"p\":{\"x\":1,\"y\":2,\"q\":{\"r\":\"s\"}},\"p\":{\"x\":5}}"),
                 KS_OK);
    CHECK(fx.out[1].type == KS_VAL_NUM && fx.out[1].num == 5);
    CHECK_EQ_INT(fx.out[2].type, KS_VAL_MISSING);
    CHECK_EQ_INT(fx.out[3].type, KS_VAL_MISSING);
    CHECK_EQ_INT(fx_decode(&fx, "{\"p\":\"bad\",\"p\":{\"x\":5}}"), KS_OK);
    CHECK_EQ_INT(fx_decode(&fx, "{\"p\":{\"x\":5},\"p\":null}"), KS_OK);
    CHECK_EQ_INT(fx.out[1].type, KS_VAL_MISSING);
    CHECK_EQ_INT(fx_decode(&fx, "{\"p\":{\"x\":\"bad\"},\"p\":{\"x\":1}}"), KS_OK);
    CHECK_EQ_INT(fx_decode(&fx, "{\"p\":{\"x\":1},\"p\":7}"), KS_EINVAL);
    CHECK_CONTAINS(fx.err.msg, "expected 'p' to be an object, got a number");
    fx_close(&fx);
}

static void test_depth(void)
{
    fixture_t fx;
    if (!fx_open(&fx, "fields:\n  a: number\n"))
        return;
    size_t cap = 4 * 1000 * 1000;
    char *s = malloc(cap);
    /* 511 nested arrays inside the top-level object: fine */
    size_t n = 0;
    n += (size_t)sprintf(s, "{\"x\":");
    for (int i = 0; i < KS_JSON_MAX_DEPTH - 1; i++)
        s[n++] = '[';
    for (int i = 0; i < KS_JSON_MAX_DEPTH - 1; i++)
        s[n++] = ']';
    n += (size_t)sprintf(s + n, ",\"a\":1}");
    CHECK_MSG(fx_decode_n(&fx, s, n) == KS_OK, "%s", fx.err.msg);
    /* one more level: refused */
    n = (size_t)sprintf(s, "{\"x\":");
    for (int i = 0; i < KS_JSON_MAX_DEPTH; i++)
        s[n++] = '[';
    for (int i = 0; i < KS_JSON_MAX_DEPTH; i++)
        s[n++] = ']';
    n += (size_t)sprintf(s + n, "}");
    CHECK(fx_decode_n(&fx, s, n) == KS_EINVAL);
    CHECK_CONTAINS(fx.err.msg, "nesting too deep");
    /* hostile: a million open brackets / objects, no crash */
    n = (size_t)sprintf(s, "{\"x\":");
    while (n < cap - 8)
        s[n++] = '[';
    CHECK(fx_decode_n(&fx, s, n) == KS_EINVAL);
    n = 0;
    while (n < cap - 8) {
        memcpy(s + n, "{\"a\":", 5);
        n += 5;
    }
    CHECK(fx_decode_n(&fx, s, n) == KS_EINVAL);
    free(s);
    fx_close(&fx);
}

static void test_timestamp_and_any(void)
{
    fixture_t fx;
    if (!fx_open(&fx, "fields:\n  ts: timestamp\n  v: any\n"))
        return;
    CHECK_EQ_INT(fx_decode(&fx, "{\"ts\":1715953512345,\"v\":true}"), KS_OK);
    CHECK(fx.out[0].type == KS_VAL_NUM && fx.out[0].num == 1715953512345.0);
    CHECK(fx.out[1].type == KS_VAL_BOOL && fx.out[1].b == 1);
    CHECK_EQ_INT(fx_decode(&fx, "{\"ts\":\"2024-05-17T13:45:12Z\",\"v\":\"x\"}"), KS_OK);
    CHECK(str_eq(&fx.out[0], "2024-05-17T13:45:12Z") && str_eq(&fx.out[1], "x"));
    CHECK_EQ_INT(fx_decode(&fx, "{\"v\":null}"), KS_OK);
    CHECK_EQ_INT(fx.out[1].type, KS_VAL_NULL);
    CHECK_EQ_INT(fx_decode(&fx, "{\"v\":[]}"), KS_EINVAL);
    CHECK_EQ_INT(fx.err.cls, KS_ERRCLASS_TYPE);
    CHECK_EQ_INT(fx_decode(&fx, "{\"ts\":{}}"), KS_EINVAL);
    CHECK_EQ_INT(fx.err.cls, KS_ERRCLASS_TYPE);
    fx_close(&fx);
}

static void test_reuse_after_error(void)
{
    fixture_t fx;
    if (!fx_open(&fx, FRAUD_SCHEMA))
        return;
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(fx_decode(&fx, "{\"id\":\"a\",\"user_id\":1,\"amount\":\"x\"}"), KS_EINVAL);
        CHECK_EQ_INT(fx_decode(&fx, "{\"id\":\"a\",\"payment\":{\"method\":"), KS_EINVAL);
        CHECK_EQ_INT(fx_decode(&fx, fraud_event), KS_OK);
        CHECK(str_eq(&fx.out[F_PMETHOD], "card"));
        CHECK_EQ_INT(fx.err.cls, KS_ERRCLASS_NONE);
    }
    fx_close(&fx);
}

static void test_many_fields(void)
{
    /* 300 fields at one level and 50 under one parent: the per-level hash
     * tables must find every one and nothing else */
    size_t cap = 64 * 1024, n = 0;
    char *yaml = malloc(cap), *ev = malloc(cap);
    n += (size_t)snprintf(yaml + n, cap - n, "fields:\n");
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(yaml + n, cap - n, "  f%d: number\n", i);
    for (int i = 0; i < 50; i++)
        n += (size_t)snprintf(yaml + n, cap - n, "  p.g%d: {type: string, default: d}\n", i);
    ks_schema_t *s = schema_from(yaml);
    CHECK_MSG(s != NULL, "%s", eb);
    ks_decoder_t *d = NULL;
    CHECK_EQ_INT(ks_decoder_new(s, &d, eb, sizeof(eb)), KS_OK);
    ks_value_t *out = calloc(350, sizeof(*out));
    ks_arena_t arena;
    ks_arena_init(&arena, 0);
    ks_decode_error_t err;
    n = 0;
    n += (size_t)snprintf(ev + n, cap - n, "{\"p\":{");
    for (int i = 49; i >= 0; i -= 2)
        n += (size_t)snprintf(ev + n, cap - n, "\"g%d\":\"v%d\",\"h%d\":1,", i, i, i);
    n--;
    n += (size_t)snprintf(ev + n, cap - n, "}");
    for (int i = 299; i >= 0; i--)
        n += (size_t)snprintf(ev + n, cap - n, ",\"f%d\":%d,\"x%d\":\"f%d\"", i, i, i, i);
    n += (size_t)snprintf(ev + n, cap - n, "}");
    CHECK_EQ_INT(ks_decoder_decode(d, ev, n, out, &arena, &err), KS_OK);
    int good = 0;
    for (int i = 0; i < 300; i++)
        good += out[i].type == KS_VAL_NUM && out[i].num == i;
    CHECK_EQ_INT(good, 300);
    good = 0;
    for (int i = 0; i < 50; i++) {
        char want[16];
        snprintf(want, sizeof(want), (i & 1) ? "v%d" : "d", i);
        good += str_eq(&out[300 + i], want);
    }
    CHECK_EQ_INT(good, 50);
    free(out);
    free(yaml);
    free(ev);
    ks_arena_free(&arena);
    ks_decoder_free(d);
    ks_schema_free(s);
}

static void test_decoder_new_rejects_conflicts(void)
{
    /* a schema built by hand (not through ks_schema_parse) is checked too */
    char *pa[] = {"p"}, *pb[] = {"p", "q"};
    ks_field_t f[2];
    memset(f, 0, sizeof(f));
    f[0].name = "p";
    f[0].path = pa;
    f[0].n_path = 1;
    f[1].name = "p.q";
    f[1].path = pb;
    f[1].n_path = 2;
    ks_schema_t s = {f, 2, 2};
    ks_decoder_t *d = NULL;
    CHECK_EQ_INT(ks_decoder_new(&s, &d, eb, sizeof(eb)), KS_EINVAL);
    CHECK(d == NULL);
    CHECK_CONTAINS(eb, "p.q");
}

/* ------------------------------------------------- strtod-equivalence corpus */

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint64_t rnd(void)
{
    /* splitmix64: seeded, reproducible */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rnd_double_any(void)
{
    double d;
    uint64_t u;
    do {
        u = rnd();
        memcpy(&d, &u, sizeof(d));
    } while (!isfinite(d));
    return d;
}

static int put_digits(char *b, int n, int first_nonzero)
{
    for (int i = 0; i < n; i++)
        b[i] = (char)('0' + (i == 0 && first_nonzero ? 1 + rnd() % 9 : rnd() % 10));
    return n;
}

/* Writes one random JSON number of shape `shape` into b; returns its length. */
static int gen_number(char *b, size_t cap, int shape)
{
    int n = 0;
    int neg = (int)(rnd() & 1);
    if (neg)
        b[n++] = '-';
    switch (shape) {
    case 0: { /* random digits 1..40, decimal point anywhere, exponent -400..400 */
        int nd = 1 + (int)(rnd() % 40);
        int ip = (int)(rnd() % (unsigned)(nd + 1)); /* digits before the point */
        if (ip == 0) {
            b[n++] = '0';
        } else {
            n += put_digits(b + n, ip, 1);
        }
        if (nd - ip > 0) {
            b[n++] = '.';
            n += put_digits(b + n, nd - ip, 0);
        }
        if (rnd() % 4 != 0)
            n += snprintf(b + n, cap - (size_t)n, "%s%d", (rnd() & 1) ? "e" : "E",
                          (int)(rnd() % 801) - 400);
        break;
    }
    case 1: /* integers around and beyond 2^53, up to 2^64 and more */
        n += snprintf(b + n, cap - (size_t)n, "%llu",
                      (unsigned long long)((1ull << 53) + rnd() % (1ull << 12) - (1ull << 11)));
        if (rnd() & 1)
            n += snprintf(b + n, cap - (size_t)n, "%03d", (int)(rnd() % 1000));
        break;
    case 2: /* round-trip forms of random doubles (%.17g / %.16g / %.15g) */
        n += snprintf(b + n, cap - (size_t)n, "%.*g", 15 + (int)(rnd() % 3), fabs(rnd_double_any()));
        break;
    case 3: { /* exact halfway points between adjacent doubles, and truncations of them */
        double x = fabs(rnd_double_any());
        if (x == DBL_MAX)
            x = 1.0;
        double y = nextafter(x, INFINITY);
        long double mid = ((long double)x + (long double)y) / 2; /* exact in x87 format */
        char tmp[1200];
        int tn = snprintf(tmp, sizeof(tmp), "%.800Le", mid); /* glibc prints exactly */
        /* strip trailing zeros of the mantissa */
        char *e = strchr(tmp, 'e');
        char *z = e;
        while (z > tmp && z[-1] == '0')
            z--;
        if (z[-1] == '.')
            z--;
        int keep = (int)(z - tmp);
        int r = (int)(rnd() % 4);
        if (r == 1 && keep > 20) /* truncated: just below halfway */
            keep = 18 + (int)(rnd() % (unsigned)(keep - 18));
        memcpy(b + n, tmp, (size_t)keep);
        n += keep;
        if (r == 2) /* just above halfway */
            n += snprintf(b + n, cap - (size_t)n, "%s1", memchr(tmp, '.', (size_t)keep) ? "0" : ".0");
        n += snprintf(b + n, cap - (size_t)n, "%s", e);
        (void)tn;
        break;
    }
    case 4: { /* subnormals and the normal/subnormal boundary */
        uint64_t u = rnd() & ((1ull << 52) - 1);
        if (rnd() & 1)
            u |= (uint64_t)(rnd() % 3) << 52; /* exponent 0, 1 or 2 */
        double d;
        memcpy(&d, &u, sizeof(d));
        if (rnd() & 1)
            n += snprintf(b + n, cap - (size_t)n, "%.17g", d);
        else
            n += snprintf(b + n, cap - (size_t)n, "%.*e", (int)(rnd() % 25), d);
        break;
    }
    case 5: { /* tiny and huge decimal exponents */
        int nd = 1 + (int)(rnd() % 20);
        n += put_digits(b + n, 1, 1);
        b[n++] = '.';
        n += put_digits(b + n, nd, 0);
        int ex = (rnd() & 1) ? 290 + (int)(rnd() % 30) : -(300 + (int)(rnd() % 40));
        n += snprintf(b + n, cap - (size_t)n, "e%d", ex);
        break;
    }
    case 6: { /* zeros in many spellings, leading fraction zeros */
        int k = (int)(rnd() % 4);
        if (k == 0)
            n += snprintf(b + n, cap - (size_t)n, "0");
        else if (k == 1)
            n += snprintf(b + n, cap - (size_t)n, "0.%0*de%d", 1 + (int)(rnd() % 30), 0,
                          (int)(rnd() % 2001) - 1000);
        else if (k == 2)
            n += snprintf(b + n, cap - (size_t)n, "0.%0*d%llu", (int)(rnd() % 340), 0,
                          (unsigned long long)(rnd() % 100000));
        else
            n += snprintf(b + n, cap - (size_t)n, "0e%d", (int)(rnd() % 999999));
        break;
    }
    case 7: /* near DBL_MAX (some round to infinity) */
        n += snprintf(b + n, cap - (size_t)n, "1.797693134862315%de308", (int)(rnd() % 100));
        break;
    default: { /* short decimals like typical event values (fast path) */
        n += snprintf(b + n, cap - (size_t)n, "%llu.%0*llu",
                      (unsigned long long)(rnd() % 100000), (int)(1 + rnd() % 6),
                      (unsigned long long)(rnd() % 1000000) % 1000000);
        break;
    }
    }
    b[n] = '\0';
    return n;
}

static void test_strtod_equivalence_corpus(void)
{
    fixture_t fx;
    if (!fx_open(&fx, "fields:\n  x: number\n  o.y: any\n"))
        return;
    static const char *fixed[] = {
        "0", "-0", "-0.0", "0e-999", "-0e+999", "1", "-1", "0.1", "1e22", "1e23", "-1e-22",
        "9007199254740993", "9007199254740992", "9007199254740991", "18446744073709551615",
        "18446744073709551616", "4.9406564584124654e-324", "2.4703282292062327e-324",
        "2.4703282292062328e-324", "2.2250738585072011e-308", "2.2250738585072012e-308",
        "2.2250738585072014e-308", "1.7976931348623157e308", "1.7976931348623158e308",
        "1.7976931348623159e308", "1e308", "1e309", "-1e309", "1e-324", "1e-400", "5e-324",
        "123456789012345678901234567890e-50", "0.000001", "1.5e-45", "3.4028235677973366e38",
        "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174543258854941216384e-300",
    };
    char ev[2048], num[1600];
    long checked = 0, inf_cases = 0, mismatches = 0;
    for (size_t i = 0; i < KS_ARRAY_LEN(fixed) + 1100000; i++) {
        int len;
        if (i < KS_ARRAY_LEN(fixed)) {
            len = snprintf(num, sizeof(num), "%s", fixed[i]);
        } else {
            /* the halfway cases are slow to print; keep them a minority */
            int shape = (int)(rnd() % 20);
            if (shape > 8)
                shape = shape % 3 == 0 ? 0 : shape % 3 == 1 ? 2 : 8;
            len = gen_number(num, sizeof(num), shape);
        }
        int evlen = (i & 1) ? snprintf(ev, sizeof(ev), "{\"x\":%s}", num)
                            : snprintf(ev, sizeof(ev), "{\"z\":[1],\"o\":{\"y\":%s},\"x\":0}", num);
        int slot = (i & 1) ? 0 : 1;
        double want = strtod(num, NULL);
        int rc = fx_decode_n(&fx, ev, (size_t)evlen);
        checked++;
        if (isinf(want)) {
            inf_cases++;
            if (rc != KS_EINVAL || fx.err.cls != KS_ERRCLASS_TYPE) {
                if (mismatches++ < 10)
                    fprintf(stderr, "overflow not refused: %s\n", num);
            }
            continue;
        }
        const ks_value_t *v = &fx.out[slot];
        int span_ok = rc != KS_OK ||
                      (len <= KS_NUM_TOKEN_MAX ? v->num_len == len &&
                                                     memcmp(ev + v->num_off, num, (size_t)len) == 0
                                               : v->num_len == 0);
        if (!span_ok && mismatches++ < 10)
            fprintf(stderr, "token span: %s: len %d off %u\n", num, v->num_len, v->num_off);
        if (rc != KS_OK || fx.out[slot].type != KS_VAL_NUM ||
            bits(fx.out[slot].num) != bits(want)) {
            if (mismatches++ < 10)
                fprintf(stderr, "mismatch: %s (len %d): rc %d got %.17g want %.17g (%s)\n", num,
                        len, rc, fx.out[slot].num, want, fx.err.msg);
        }
    }
    fprintf(stderr, "strtod corpus: %ld numbers checked (%ld overflow to inf), %ld mismatches\n",
            checked, inf_cases, mismatches);
    CHECK(checked >= 1000000);
    CHECK_EQ_INT(mismatches, 0);
    fx_close(&fx);
}

/* --------------------------------------------------- learned key order */

/* A decoder remembers each object's key order and tries those names first.
 * Oracle: a fresh decoder (nothing learned) must give the same verdict,
 * message and values as one that has seen thousands of other events, for
 * events that keep, change, shorten, lengthen, escape or cut the keys. */
static void same_result(fixture_t *a, int ra, fixture_t *b, int rb, const char *ev)
{
    int ok = ra == rb && a->err.cls == b->err.cls && strcmp(a->err.msg, b->err.msg) == 0;
    for (size_t i = 0; ok && ra == KS_OK && i < a->schema->n_fields; i++) {
        const ks_value_t *x = &a->out[i], *y = &b->out[i];
        ok = x->type == y->type &&
             (x->type != KS_VAL_NUM || bits(x->num) == bits(y->num)) &&
             (x->type != KS_VAL_STR || (x->len == y->len && memcmp(x->str, y->str, x->len) == 0)) &&
             (x->type != KS_VAL_BOOL || x->b == y->b);
    }
    CHECK_MSG(ok, "learned vs fresh differ on %s: %d '%s' / %d '%s'", ev, ra, a->err.msg, rb,
              b->err.msg);
}

static void test_learned_key_order(void)
{
    static const char *keys[] = {
        "\"id\"", "\"idx\"", "\"i\"", "\"\\u0069d\"", "\"user_id\"", "\"amount\"", "\"amount \"",
        "\"merchant_category\"", "\"merchant_categorY\"", "\"n_tx_24h\"", "\"ts\"", "\"flag\"",
        "\"payment\"", "\"method\"", "\"card\"", "\"present\"", "\"amount_usd\"", "\"x\"",
    };
    static const char *vals[] = {"\"s\"", "1.5", "-0", "true", "null", "{\"method\":\"card\"}",
                                 "{\"card\":{\"present\":true},\"amount_usd\":2}", "[1]", "1e3"};
    fixture_t learned, fresh;
    if (!fx_open(&learned, FRAUD_SCHEMA))
        return;
    char ev[1024];
    for (int i = 0; i < 20000 && test_failures_ < 5; i++) {
        int n = 0;
        if (i % 4 == 0) { /* the usual event, learned */
            n = snprintf(ev, sizeof(ev), "%s", fraud_event);
        } else { /* some keys swapped, renamed or cut */
            n = snprintf(ev, sizeof(ev), "{");
            int m = 1 + (int)(rnd() % 9);
            for (int k = 0; k < m; k++)
                n += snprintf(ev + n, sizeof(ev) - (size_t)n, "%s%s:%s", k ? "," : "",
                              keys[rnd() % KS_ARRAY_LEN(keys)], vals[rnd() % KS_ARRAY_LEN(vals)]);
            n += snprintf(ev + n, sizeof(ev) - (size_t)n, "}");
        }
        if (i % 7 == 0)
            n = (int)(rnd() % (uint64_t)(n + 1)); /* cut anywhere, also inside a key */
        char *heap = malloc((size_t)n + 1); /* exactly n bytes readable (ASan builds) */
        memcpy(heap, ev, (size_t)n);
        heap[n] = '\0';
        int rl = fx_decode_n(&learned, heap, (size_t)n);
        if (!fx_open(&fresh, FRAUD_SCHEMA))
            break;
        int rf = fx_decode_n(&fresh, heap, (size_t)n);
        same_result(&learned, rl, &fresh, rf, heap);
        fx_close(&fresh);
        free(heap);
        if ((i & 255) == 0)
            ks_arena_reset(&learned.arena);
    }
    fx_close(&learned);
}

/* ------------------------------------------------------------------ speed */

/* CPU time of this thread: the printout stays meaningful on a busy machine. */
static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void test_speed_printout(void)
{
    fixture_t fx;
    if (!fx_open(&fx, FRAUD_SCHEMA))
        return;
    size_t len = strlen(fraud_event);
    int n = 2000000;
    int ok = 0;
    int64_t t0 = thread_cpu_ns();
    for (int i = 0; i < n; i++) {
        ok += fx_decode_n(&fx, fraud_event, len) == KS_OK;
        if ((i & 1023) == 0)
            ks_arena_reset(&fx.arena);
    }
    int64_t t1 = thread_cpu_ns();
    CHECK_EQ_INT(ok, n);
    double secs = (double)(t1 - t0) / 1e9;
    fprintf(stderr, "decode: %d-byte fraud event, %d fields: %.2f M events/s, %.0f MB/s, "
            "%.0f ns/event (thread CPU time)\n", (int)len, (int)fx.schema->n_fields, n / secs / 1e6,
            (double)len * n / secs / 1e6, secs * 1e9 / n);
    fx_close(&fx);
}

int main(void)
{
    RUN(test_schema_forms);
    RUN(test_schema_errors);
    RUN(test_schema_marks_used);
    RUN(test_decode_basic);
    RUN(test_defaults_and_missing);
    RUN(test_error_classes);
    RUN(test_invalid_utf8);
    RUN(test_escapes_and_unicode);
    RUN(test_duplicates_last_wins);
    RUN(test_depth);
    RUN(test_timestamp_and_any);
    RUN(test_reuse_after_error);
    RUN(test_many_fields);
    RUN(test_learned_key_order);
    RUN(test_decoder_new_rejects_conflicts);
    RUN(test_strtod_equivalence_corpus);
    RUN(test_speed_printout);
    return test_summary();
}
