/*
 * test_json.c - the JSON DOM (base/json.h): grammar strictness, strings and
 * UTF-8, numbers bit-identical to strtod, error positions, limits, accessors,
 * and a timing printout for a large model-like document.
 */
#include "base/json.h"
#include "base/common.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char eb[256];

static ks_json_t *parse(const char *s)
{
    ks_json_t *r = NULL;
    eb[0] = '\0';
    int rc = ks_json_parse(s, strlen(s), &r, eb, sizeof(eb));
    if (rc != KS_OK)
        return NULL;
    return r;
}

static int parses(const char *s)
{
    ks_json_t *r = parse(s);
    ks_json_free(r);
    return r != NULL;
}

static int parsesn(const char *s, size_t n)
{
    ks_json_t *r = NULL;
    int rc = ks_json_parse(s, n, &r, eb, sizeof(eb));
    ks_json_free(r);
    return rc == KS_OK;
}

static uint64_t bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static void test_basic_tree(void)
{
    ks_json_t *r = parse(" {\"a\": 1, \"b\": [true, false, null, \"x\", -2.5e3, {}], \"c\": {\"d\": \"e\"}}\n");
    CHECK(r != NULL);
    CHECK_EQ_INT(ks_json_type(r), KS_JSON_OBJECT);
    CHECK_EQ_INT(ks_json_len(r), 3);
    CHECK(ks_json_num(ks_json_get(r, "a"), 0) == 1.0);
    const ks_json_t *b = ks_json_get(r, "b");
    CHECK(ks_json_is(b, KS_JSON_ARRAY));
    CHECK_EQ_INT(ks_json_len(b), 6);
    CHECK_EQ_INT(ks_json_bool(ks_json_at(b, 0), -1), 1);
    CHECK_EQ_INT(ks_json_bool(ks_json_at(b, 1), -1), 0);
    CHECK(ks_json_is(ks_json_at(b, 2), KS_JSON_NULL));
    CHECK_EQ_STR(ks_json_str(ks_json_at(b, 3)), "x");
    CHECK(ks_json_num(ks_json_at(b, 4), 0) == -2500.0);
    CHECK(ks_json_is(ks_json_at(b, 5), KS_JSON_OBJECT));
    CHECK_EQ_INT(ks_json_len(ks_json_at(b, 5)), 0);
    CHECK(ks_json_at(b, 6) == NULL);
    CHECK_EQ_STR(ks_json_str(ks_json_get(ks_json_get(r, "c"), "d")), "e");
    CHECK_EQ_STR(ks_json_key(ks_json_at(r, 2)), "c");
    CHECK(ks_json_get(r, "zz") == NULL);
    CHECK(ks_json_get(b, "a") == NULL);           /* not an object */
    CHECK(ks_json_get(NULL, "a") == NULL);
    CHECK(ks_json_str(ks_json_get(r, "a")) == NULL);
    CHECK(isnan(ks_json_num(ks_json_get(r, "c"), NAN)));
    CHECK_EQ_INT(ks_json_type(NULL), KS_JSON_NULL);
    CHECK_EQ_INT(ks_json_len(NULL), 0);
    /* line/column of nodes */
    CHECK_EQ_INT(ks_json_get(r, "a")->line, 1);
    CHECK_EQ_INT(ks_json_get(r, "a")->col, 8);
    ks_json_free(r);
    ks_json_free(NULL);
}

static void test_scalars_at_top(void)
{
    ks_json_t *r = parse("42");
    CHECK(r && ks_json_num(r, 0) == 42);
    ks_json_free(r);
    r = parse("\"hi\"");
    CHECK_EQ_STR(ks_json_str(r), "hi");
    ks_json_free(r);
    CHECK(parses("null"));
    CHECK(parses(" true "));
    CHECK(parses("[]"));
    CHECK(parses("{}"));
    CHECK(parses("[[[]]]"));
}

static void test_duplicate_keys_last_wins(void)
{
    ks_json_t *r = parse("{\"k\": 1, \"k\": 2}");
    CHECK(r);
    CHECK_EQ_INT(ks_json_len(r), 2);
    CHECK(ks_json_num(ks_json_get(r, "k"), 0) == 2.0);
    ks_json_free(r);
}

static void test_grammar_rejects(void)
{
    static const char *bad[] = {
        "", " ", "{", "}", "[", "]", "[1,]", "{\"a\":1,}", "{,}", "[,1]", "{\"a\" 1}", "{a:1}",
        "{'a':1}", "[1 2]", "01", "-", "-01", "1.", ".5", "+1", "1e", "1e+", "1.e5", "0x10",
        "NaN", "Infinity", "-Infinity", "nul", "tru", "falsey", "[true false]", "\"abc",
        "// c\n1", "/* c */ 1", "1 2", "{} {}", "[1] x", "\"a\" \"b\"", "{\"a\":}", "[\"\\x\"]",
        "\"\\u12\"", "\"\\u12G4\"", "\xef\xbb\xbf{}", /* BOM */ "\v1", "\f1",
    };
    for (size_t i = 0; i < KS_ARRAY_LEN(bad); i++)
        CHECK_MSG(!parses(bad[i]), "accepted '%s'", bad[i]);
    CHECK(!parsesn("1\0", 2));
    CHECK(!parsesn("[\"a\0b\"]", 7)); /* raw NUL in string */
    CHECK(parsesn("[\"a\\u0000b\"]", 12));
}

static void test_strings(void)
{
    ks_json_t *r = parse("[\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\", \"\\u00e9\\u20AC\\ud83d\\ude00\", "
                         "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\", \"\\u0000x\", \"\"]");
    CHECK(r);
    CHECK_EQ_STR(ks_json_str(ks_json_at(r, 0)), "a\"b\\c/d\b\f\n\r\t");
    CHECK_EQ_STR(ks_json_str(ks_json_at(r, 1)), "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    CHECK_EQ_STR(ks_json_str(ks_json_at(r, 2)), "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    CHECK_EQ_INT(ks_json_len(ks_json_at(r, 3)), 2);
    CHECK(memcmp(ks_json_str(ks_json_at(r, 3)), "\0x", 2) == 0);
    CHECK_EQ_STR(ks_json_str(ks_json_at(r, 4)), "");
    ks_json_free(r);

    /* a key holding \u0000 is not the C string before the NUL */
    r = parse("{\"k\": 1, \"k\\u0000x\": 2}");
    CHECK(r && ks_json_num(ks_json_get(r, "k"), 0) == 1);
    ks_json_free(r);
    /* escaped keys */
    r = parse("{\"k\\u0065y\": 5}");
    CHECK(r && ks_json_num(ks_json_get(r, "key"), 0) == 5);
    ks_json_free(r);

    /* lone / broken surrogates */
    CHECK(!parses("\"\\ud800\""));
    CHECK(!parses("\"\\udc00\""));
    CHECK(!parses("\"\\ud800x\""));
    CHECK(!parses("\"\\ud800\\u0041\""));
    CHECK(!parses("\"\\ud800\\ud800\""));
    CHECK(!parses("\"\\ude00\\ud83d\""));
    CHECK(parses("\"\\uDBFF\\uDFFF\""));
    /* control characters must be escaped */
    CHECK(!parses("\"a\nb\""));
    CHECK(!parses("\"a\tb\""));
    CHECK(!parses("\"\x1f\""));
    CHECK(parses("\"\x7f\""));
}

static void test_utf8(void)
{
    static const char *bad[] = {
        "\"\x80\"",                 /* lone continuation */
        "\"\xc0\xaf\"",             /* overlong '/' */
        "\"\xc1\xbf\"",             /* overlong */
        "\"\xe0\x80\xaf\"",         /* overlong 3-byte */
        "\"\xe0\x9f\xbf\"",         /* overlong 3-byte (upper edge) */
        "\"\xf0\x80\x80\xaf\"",     /* overlong 4-byte */
        "\"\xf0\x8f\xbf\xbf\"",     /* overlong 4-byte (upper edge) */
        "\"\xed\xa0\x80\"",         /* U+D800 encoded */
        "\"\xed\xbf\xbf\"",         /* U+DFFF encoded */
        "\"\xf4\x90\x80\x80\"",     /* U+110000 */
        "\"\xf5\x80\x80\x80\"",     /* invalid lead */
        "\"\xff\"",
        "\"\xc3\"",                 /* truncated */
        "\"\xe2\x82\"",             /* truncated */
        "\"\xf0\x9f\x98\"",         /* truncated */
        "\"\xc3\x28\"",             /* bad continuation */
        "\"\xe2\x28\xa1\"",
        "\"\xf0\x9f\x28\x80\"",
    };
    for (size_t i = 0; i < KS_ARRAY_LEN(bad); i++)
        CHECK_MSG(!parses(bad[i]), "accepted invalid UTF-8 #%zu", i);
    static const char *good[] = {
        "\"\xc2\x80\"", "\"\xdf\xbf\"", "\"\xe0\xa0\x80\"", "\"\xed\x9f\xbf\"",
        "\"\xee\x80\x80\"", "\"\xef\xbf\xbf\"", "\"\xf0\x90\x80\x80\"", "\"\xf4\x8f\xbf\xbf\"",
    };
    for (size_t i = 0; i < KS_ARRAY_LEN(good); i++)
        CHECK_MSG(parses(good[i]), "rejected valid UTF-8 #%zu: %s", i, eb);
    /* invalid UTF-8 outside strings is simply an unexpected byte */
    CHECK(!parses("[1,\xc3\xa9]"));
}

static void test_numbers(void)
{
    static const char *nums[] = {
        "0", "-0", "1", "-1", "0.5", "1e10", "1E10", "1e+10", "1e-10", "123456789012345678901234567890",
        "9007199254740993", "9007199254740992", "18446744073709551616", "4.9406564584124654e-324",
        "2.4703282292062327e-324", "2.4703282292062328e-324", "2.2250738585072011e-308",
        "2.2250738585072014e-308", "1.7976931348623157e308", "1.7976931348623158e308",
        "0.1", "0.2", "0.30000000000000004", "1e22", "1e23", "123e20", "9007199254740991e15",
        "1e-400", "-1e-400", "0e999999999999", "0.000000000000000000000000000001",
        "3.14159265358979323846264338327950288", "1.00000000000000011102230246251565404236316680908203125",
        "1.00000000000000011102230246251565404236316680908203124",
        "1.00000000000000011102230246251565404236316680908203126",
        "100000000000000000000000000000000000000000000e-44",
    };
    for (size_t i = 0; i < KS_ARRAY_LEN(nums); i++) {
        ks_json_t *r = parse(nums[i]);
        CHECK_MSG(r != NULL, "%s: %s", nums[i], eb);
        if (r)
            CHECK_MSG(bits(r->u.num) == bits(strtod(nums[i], NULL)), "%s", nums[i]);
        ks_json_free(r);
    }
    ks_json_t *r = parse("-0");
    CHECK(r && signbit(r->u.num) && r->u.num == 0);
    ks_json_free(r);
    /* overflow is an error in the DOM */
    CHECK(!parses("1e400"));
    CHECK_CONTAINS(eb, "out of the range");
    CHECK(!parses("[-1.8e308]"));
    CHECK(parses("[1e-400]"));
    /* a very long number token (slow path through malloc) */
    char *longnum = malloc(5002);
    longnum[0] = '1';
    memset(longnum + 1, '0', 5000);
    longnum[5001] = '\0';
    CHECK(!parses(longnum)); /* 1e5000 overflows */
    longnum[1] = '.';
    r = parse(longnum);
    CHECK_MSG(r && r->u.num == 1.0, "%s", eb);
    ks_json_free(r);
    longnum[1] = '0';
    memcpy(longnum + 4994, "e-4990", 7); /* 1 and 4993 zeros, e-4990 */
    r = parse(longnum);
    CHECK_MSG(r && r->u.num == 1e3, "%s", eb);
    ks_json_free(r);
    free(longnum);
}

/* xorshift64* */
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_rand(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ull;
}

static void test_numbers_random(void)
{
    char buf[128];
    int mismatches = 0;
    for (int i = 0; i < 200000; i++) {
        int n = 0;
        if (next_rand() & 1)
            buf[n++] = '-';
        int nd = 1 + (int)(next_rand() % 25);
        if (i % 4 == 0) { /* 0.000ddd: fraction zeros before the significant digits */
            n += snprintf(buf + n, sizeof(buf) - (size_t)n, "0.%0*d", (int)(next_rand() % 30), 0);
            if (buf[n - 1] == '.')
                buf[n++] = '0';
        }
        buf[n++] = (char)('1' + next_rand() % 9);
        for (int k = 1; k < nd; k++)
            buf[n++] = (char)('0' + next_rand() % 10);
        if (i % 4 != 0 && (next_rand() & 1)) {
            buf[n++] = '.';
            int nf = 1 + (int)(next_rand() % 20);
            for (int k = 0; k < nf; k++)
                buf[n++] = (char)('0' + next_rand() % 10);
        }
        if (next_rand() & 1)
            n += snprintf(buf + n, sizeof(buf) - (size_t)n, "e%d", (int)(next_rand() % 640) - 340);
        buf[n] = '\0';
        double want = strtod(buf, NULL);
        if (isinf(want))
            continue;
        ks_json_t *r = parse(buf);
        if (!r || bits(r->u.num) != bits(want)) {
            if (mismatches++ < 5)
                fprintf(stderr, "mismatch for %s\n", buf);
        }
        ks_json_free(r);
    }
    CHECK_EQ_INT(mismatches, 0);
}

static void test_error_positions(void)
{
    CHECK(!parses("{\n  \"a\": 1,\n  \"b\": tru\n}"));
    CHECK_CONTAINS(eb, "line 3, column 8");
    CHECK(!parses("[1,\n2,\n\"\xc3\x28\"]"));
    CHECK_CONTAINS(eb, "line 3, column 2");
    CHECK_CONTAINS(eb, "UTF-8");
    CHECK(!parses("{\"a\":1} x"));
    CHECK_CONTAINS(eb, "line 1, column 9");
    CHECK_CONTAINS(eb, "after the JSON value");
    CHECK(!parses("[1,2"));
    CHECK_CONTAINS(eb, "end of input");
}

static void test_depth_limit(void)
{
    size_t n = KS_JSON_MAX_DEPTH;
    char *s = malloc(2 * n + 3);
    memset(s, '[', n);
    memset(s + n, ']', n);
    s[2 * n] = '\0';
    CHECK_MSG(parses(s), "%s", eb);
    memset(s, '[', n + 1);
    memset(s + n + 1, ']', n + 1);
    s[2 * n + 2] = '\0';
    CHECK(!parses(s));
    CHECK_CONTAINS(eb, "nesting deeper");
    free(s);
    /* a hostile very deep input must fail cleanly, not overflow the stack */
    size_t big = 1000000;
    s = malloc(big + 1);
    memset(s, '[', big);
    s[big] = '\0';
    CHECK(!parses(s));
    for (size_t i = 0; i < big; i += 2)
        memcpy(s + i, "{\"", 2);
    CHECK(!parses(s));
    free(s);
}

static void test_need_helpers(void)
{
    ks_json_t *r = parse("{\n \"trees\": \"x\",\n \"n\": 3}");
    CHECK(r);
    CHECK(ks_json_need(r, "trees", KS_JSON_ARRAY, eb, sizeof(eb)) == NULL);
    CHECK_CONTAINS(eb, "line 2, column 11: 'trees' must be an array, not a string");
    CHECK(ks_json_need(r, "nope", KS_JSON_ARRAY, eb, sizeof(eb)) == NULL);
    CHECK_CONTAINS(eb, "key 'nope' is missing");
    double d = 0;
    CHECK_EQ_INT(ks_json_need_num(r, "n", &d, eb, sizeof(eb)), KS_OK);
    CHECK(d == 3);
    CHECK_EQ_INT(ks_json_need_num(r, "trees", &d, eb, sizeof(eb)), KS_EINVAL);
    CHECK_EQ_INT(ks_json_err(ks_json_get(r, "n"), eb, sizeof(eb), "bad %d", 7), KS_EINVAL);
    CHECK_EQ_STR(eb, "line 3, column 7: bad 7");
    ks_json_free(r);
}

static void test_lex_helpers(void)
{
    const char *stop;
    double d;
    const char *s = "12.5e1,";
    CHECK(ks_json_lex_number(s, s + strlen(s), &stop, &d) == NULL);
    CHECK(d == 125.0 && stop == s + 6);
    CHECK(ks_json_lex_number(s, s + 3, &stop, &d) != NULL); /* "12." */
    /* checking only (out NULL) stops where converting does, with the same verdict */
    static const char alphabet[] = "0123456789012345678901234567890123456789-.eE+x";
    char tok[48];
    for (int i = 0; i < 300000; i++) {
        size_t n = 1 + next_rand() % 40;
        for (size_t k = 0; k < n; k++)
            tok[k] = alphabet[next_rand() % (sizeof(alphabet) - 1)];
        const char *s1, *s2;
        const char *m1 = ks_json_lex_number(tok, tok + n, &s1, &d);
        const char *m2 = ks_json_lex_number(tok, tok + n, &s2, NULL);
        if ((m1 == NULL) != (m2 == NULL) || s1 != s2 || (m1 && strcmp(m1, m2) != 0)) {
            CHECK_MSG(0, "%.*s: converting and checking disagree", (int)n, tok);
            break;
        }
        if (!m1) { /* and the value is strtod's */
            char z[48];
            memcpy(z, tok, (size_t)(s1 - tok));
            z[s1 - tok] = '\0';
            if (bits(d) != bits(strtod(z, NULL))) {
                CHECK_MSG(0, "%s: %.17g", z, d);
                break;
            }
        }
    }
    int esc = 0;
    const char *t = "ab\\ncd\"rest";
    CHECK(ks_json_lex_string(t, t + strlen(t), &stop, &esc) == NULL);
    CHECK(esc == 1 && *stop == '"' && stop == t + 6);
    char out[16];
    size_t n = ks_json_unescape(t, stop, out);
    CHECK(n == 5 && memcmp(out, "ab\ncd", 5) == 0);
}

/* A model-like document: many trees with arrays of floats, like XGBoost JSON. */
static void test_large_document_speed(void)
{
    size_t cap = 60u << 20, n = 0;
    char *s = malloc(cap);
    n += (size_t)snprintf(s + n, cap - n, "{\"learner\":{\"gradient_booster\":{\"model\":{\"trees\":[");
    size_t n_numbers = 0;
    int t = 0;
    while (n < (size_t)48 << 20) {
        if (t++)
            s[n++] = ',';
        n += (size_t)snprintf(s + n, cap - n, "{\"id\":%d,\"split_conditions\":[", t);
        for (int k = 0; k < 500; k++) {
            double v = (double)(next_rand() % 2000000000) / 1e9 - 1.0;
            n += (size_t)snprintf(s + n, cap - n, "%s%.9g", k ? "," : "", (float)v);
            n_numbers++;
        }
        n += (size_t)snprintf(s + n, cap - n, "],\"split_indices\":[");
        for (int k = 0; k < 500; k++) {
            n += (size_t)snprintf(s + n, cap - n, "%s%d", k ? "," : "", (int)(next_rand() % 300));
            n_numbers++;
        }
        n += (size_t)snprintf(s + n, cap - n, "],\"name\":\"tree\\u0020%d\"}", t);
    }
    n += (size_t)snprintf(s + n, cap - n, "]}}}}");
    ks_json_t *r = NULL;
    int64_t t0 = ks_now_mono_ns();
    int rc = ks_json_parse(s, n, &r, eb, sizeof(eb));
    int64_t t1 = ks_now_mono_ns();
    CHECK_MSG(rc == KS_OK, "%s", eb);
    const ks_json_t *trees = ks_json_get(ks_json_get(ks_json_get(ks_json_get(r, "learner"),
                                          "gradient_booster"), "model"), "trees");
    CHECK_EQ_INT(ks_json_len(trees), t);
    fprintf(stderr, "json: parsed %.1f MB (%zu numbers) in %.3f s = %.0f MB/s\n",
            (double)n / 1e6, n_numbers, (double)(t1 - t0) / 1e9,
            (double)n / 1e6 / ((double)(t1 - t0) / 1e9));
    ks_json_free(r);
    free(s);
}

int main(void)
{
    RUN(test_basic_tree);
    RUN(test_scalars_at_top);
    RUN(test_duplicate_keys_last_wins);
    RUN(test_grammar_rejects);
    RUN(test_strings);
    RUN(test_utf8);
    RUN(test_numbers);
    RUN(test_numbers_random);
    RUN(test_error_positions);
    RUN(test_depth_limit);
    RUN(test_need_helpers);
    RUN(test_lex_helpers);
    RUN(test_large_document_speed);
    return test_summary();
}
