/*
 * test_lookup.c - lookup/: the cache (TTL, LRU eviction, bound), the circuit
 * breaker's transitions, key templates, typed extraction of Redis values
 * (good, malformed, wrong type, too large, absent), JSONL snapshots and the
 * lookup config section. No network here: test_lookup_redis.c runs the
 * resolver against a real redis-server.
 */
#include "test.h"

#include "base/buf.h"
#include "base/common.h"
#include "base/conftree.h"
#include "base/json.h"
#include "decode/schema.h"
#include "lookup/breaker.h"
#include "lookup/lcache.h"
#include "lookup/lookup.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static ks_value_t num(double x) { ks_value_t v = {.type = KS_VAL_NUM, .num = x}; return v; }

static void test_cache_ttl_and_lru(void)
{
    ks_lcache_t *c = ks_lcache_new(1, 3, 100);
    ks_value_t v;
    for (int i = 0; i < 3; i++) {
        char k[8];
        snprintf(k, sizeof(k), "k%d", i);
        v = num(i);
        ks_lcache_put(c, k, 2, &v, 1, 1000);
    }
    CHECK_EQ_INT(ks_lcache_size(c), 3);
    /* k0 used: k1 becomes the least recently used and is evicted by k3 */
    CHECK(ks_lcache_get(c, "k0", 2, 1010) != NULL);
    v = num(3);
    ks_lcache_put(c, "k3", 2, &v, 1, 1020);
    CHECK_EQ_INT(ks_lcache_size(c), 3);
    CHECK_EQ_INT(ks_lcache_evictions(c), 1);
    CHECK(ks_lcache_get(c, "k1", 2, 1030) == NULL);
    const ks_lcache_entry_t *e = ks_lcache_get(c, "k3", 2, 1030);
    CHECK(e && e->vals[0].num == 3 && e->status == 1);
    /* TTL: k0 was put at 1000 with ttl 100 */
    CHECK(ks_lcache_get(c, "k0", 2, 1099) != NULL);
    CHECK(ks_lcache_get(c, "k0", 2, 1100) == NULL);
    CHECK_EQ_INT(ks_lcache_size(c), 2);
    /* replacing a key keeps one entry; strings are copied */
    char s[] = "gold";
    ks_value_t sv = {.type = KS_VAL_STR, .str = s, .len = 4};
    ks_lcache_put(c, "k3", 2, &sv, 2, 1100);
    s[0] = 'X';
    e = ks_lcache_get(c, "k3", 2, 1101);
    CHECK(e && e->vals[0].type == KS_VAL_STR && e->vals[0].len == 4 && !memcmp(e->vals[0].str, "gold", 4));
    CHECK_EQ_INT(ks_lcache_size(c), 2);
    ks_lcache_free(c);

    /* bounded: 100,000 puts into a 1,000-entry cache */
    c = ks_lcache_new(1, 1000, 1000000);
    for (int i = 0; i < 100000; i++) {
        char k[16];
        int n = snprintf(k, sizeof(k), "user%d", i);
        v = num(i);
        ks_lcache_put(c, k, (size_t)n, &v, 1, 0);
    }
    CHECK_EQ_INT(ks_lcache_size(c), 1000);
    CHECK_EQ_INT(ks_lcache_evictions(c), 99000);
    CHECK(ks_lcache_get(c, "user99999", 9, 1) != NULL);
    CHECK(ks_lcache_get(c, "user98999", 9, 1) == NULL);
    ks_lcache_free(c);

    /* max_entries 0: a cache that stores nothing */
    c = ks_lcache_new(1, 0, 1000);
    ks_lcache_put(c, "a", 1, &v, 1, 0);
    CHECK(ks_lcache_get(c, "a", 1, 0) == NULL);
    ks_lcache_free(c);
}

static void test_breaker(void)
{
    ks_breaker_t b;
    ks_breaker_init(&b, 3, 1000);
    CHECK(ks_breaker_allow(&b, 0));
    CHECK(!ks_breaker_failure(&b, 0));
    CHECK(!ks_breaker_failure(&b, 1));
    ks_breaker_success(&b); /* resets the count */
    CHECK(!ks_breaker_failure(&b, 2));
    CHECK(!ks_breaker_failure(&b, 3));
    CHECK(ks_breaker_failure(&b, 4)); /* third in a row opens */
    CHECK_EQ_INT(b.state, KS_BREAKER_OPEN);
    CHECK_EQ_INT(b.opens, 1);
    CHECK(!ks_breaker_allow(&b, 500));
    CHECK(!ks_breaker_allow(&b, 1003));
    CHECK(ks_breaker_allow(&b, 1004)); /* cool-down over: one probe */
    CHECK_EQ_INT(b.state, KS_BREAKER_HALF_OPEN);
    CHECK(!ks_breaker_failure(&b, 1010)); /* failed probe: open again, not a new opening */
    CHECK_EQ_INT(b.state, KS_BREAKER_OPEN);
    CHECK_EQ_INT(b.opens, 1);
    CHECK(!ks_breaker_allow(&b, 2000));
    CHECK(ks_breaker_allow(&b, 2010));
    ks_breaker_success(&b);
    CHECK_EQ_INT(b.state, KS_BREAKER_CLOSED);
    CHECK(ks_breaker_allow(&b, 2011));
}

static const char *SCHEMA =
    "user_id: {type: string}\nn: {type: number}\nflag: {type: bool}\n";

static ks_schema_t *schema(void)
{
    ks_node_t *root = NULL;
    ks_schema_t *s = NULL;
    char err[256];
    CHECK(ks_node_parse_string("schema", SCHEMA, strlen(SCHEMA), &root, err, sizeof(err)) == 0);
    CHECK_MSG(ks_schema_parse(root, &s, err, sizeof(err)) == 0, "%s", err);
    ks_node_free(root);
    return s;
}

/* Parses one lookup from YAML (a map); returns the rc, *err the message. */
static int parse(const char *yaml, ks_lookup_def_t *d, char *err, size_t errsize)
{
    ks_node_t *root = NULL;
    ks_schema_t *s = schema();
    int rc = ks_node_parse_string("pipeline.yaml", yaml, strlen(yaml), &root, err, errsize);
    if (!rc)
        rc = ks_lookup_parse(root, s, NULL, d, err, errsize);
    ks_node_free(root);
    ks_schema_free(s);
    return rc;
}

static const char *PROFILE =
    "name: profile\n"
    "redis: {url: redis://127.0.0.1:6390/2, timeout_ms: 15}\n"
    "key: \"features:{user_id}:{n}\"\n"
    "type: json\n"
    "fields:\n"
    "  tx_count_1h: {type: number, default: 0}\n"
    "  segment: {type: string, default: unknown}\n"
    "  vip: {type: bool, default: false}\n"
    "  geo.country: {type: string}\n"
    "cache: {ttl_ms: 100, max_entries: 10}\n"
    "breaker: {failures: 2, cooldown_ms: 50}\n";

static void test_config_and_template(void)
{
    ks_lookup_def_t d;
    char err[512];
    CHECK_MSG(parse(PROFILE, &d, err, sizeof(err)) == 0, "%s", err);
    CHECK_EQ_STR(d.name, "profile");
    CHECK_EQ_INT(d.addr.port, 6390);
    CHECK_EQ_INT(d.addr.db, 2);
    CHECK_EQ_INT(d.timeout_ms, 15);
    CHECK_EQ_INT(d.n_fields, 4);
    CHECK_EQ_INT(d.ttl_ms, 100);
    CHECK_EQ_INT(d.breaker_failures, 2);
    CHECK_EQ_INT(d.fields[3].n_path, 2);

    ks_value_t row[3] = {{.type = KS_VAL_STR, .str = "u42", .len = 3}, num(7), {0}};
    ks_buf_t key = {0};
    CHECK(ks_lookup_render_key(&d, row, &key) == 0);
    CHECK(key.len == strlen("features:u42:7") && !memcmp(key.data, "features:u42:7", key.len));
    row[1] = num(0.5);
    CHECK(ks_lookup_render_key(&d, row, &key) == 0);
    CHECK(key.len == strlen("features:u42:0.5") && !memcmp(key.data, "features:u42:0.5", key.len));
    row[0].type = KS_VAL_MISSING; /* no key: defaults */
    CHECK(ks_lookup_render_key(&d, row, &key) == -1);
    ks_buf_free(&key);
    ks_lookup_def_free(&d);

    /* errors name file, line and key */
    CHECK(parse("name: p\nredis: {url: redis://h}\nkey: \"f:{nope}\"\nfields: {a: number}\n", &d, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, "pipeline.yaml:3");
    CHECK_CONTAINS(err, "'nope' is not an input field");
    ks_lookup_def_free(&d);
    CHECK(parse("name: p\nredis: {url: http://h}\nkey: \"f:{n}\"\nfields: {a: number}\n", &d, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, "not a Redis URL");
    ks_lookup_def_free(&d);
    CHECK(parse("name: p\nredis: {url: redis://h}\nkey: \"constant\"\nfields: {a: number}\n", &d, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, "names no input field");
    ks_lookup_def_free(&d);
    CHECK(parse("name: p\nredis: {url: redis://h}\nkey: \"f:{n}\"\nfields: {a: {type: date}}\n", &d, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, "unknown lookup field type");
    ks_lookup_def_free(&d);
    CHECK(parse("name: p\nredis: {url: redis://h, timeout: 5}\nkey: \"f:{n}\"\nfields: {a: number}\n", &d, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, "unknown key");
    ks_lookup_def_free(&d);
    CHECK(parse("name: p.q\nredis: {url: redis://h}\nkey: \"f:{n}\"\nfields: {a: number}\n", &d, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, "letters, digits");
    ks_lookup_def_free(&d);
    CHECK(parse("name: p\nkey: \"f:{n}\"\nfields: {a: number}\n", &d, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, "needs 'redis");
    ks_lookup_def_free(&d);
    CHECK(parse("name: p\nredis: {url: redis://h}\ntype: string\nkey: \"f:{n}\"\nfields: {a: number, b: number}\n", &d, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, "exactly one field");
    ks_lookup_def_free(&d);
}

static void test_url(void)
{
    ks_redis_addr_t a;
    char err[256];
    CHECK(ks_redis_url_parse("redis://127.0.0.1:6379/0", &a, err, sizeof(err)) == 0);
    CHECK_EQ_STR(a.host, "127.0.0.1");
    CHECK_EQ_INT(a.port, 6379);
    CHECK(ks_redis_url_parse("redis://:s3cret@redis.local", &a, err, sizeof(err)) == 0);
    CHECK_EQ_STR(a.password, "s3cret");
    CHECK_EQ_STR(a.host, "redis.local");
    CHECK_EQ_INT(a.port, 6379);
    CHECK_EQ_INT(a.db, 0);
    CHECK(ks_redis_url_parse("redis://h:0", &a, err, sizeof(err)) != 0);
    CHECK(ks_redis_url_parse("redis://h/x", &a, err, sizeof(err)) != 0);
    CHECK(ks_redis_url_parse("redis://", &a, err, sizeof(err)) != 0);
}

static void test_extract(void)
{
    ks_lookup_def_t d;
    char err[512];
    ks_value_t v[4];
    ks_json_t *doc = NULL;
    CHECK_MSG(parse(PROFILE, &d, err, sizeof(err)) == 0, "%s", err);

    const char *good = "{\"tx_count_1h\": 12, \"segment\": \"gold\", \"vip\": true, \"geo\": {\"country\": \"FR\"}}";
    CHECK_EQ_INT(ks_lookup_extract(&d, good, strlen(good), NULL, NULL, v, &doc), 0);
    CHECK(v[0].type == KS_VAL_NUM && v[0].num == 12);
    CHECK(v[1].type == KS_VAL_STR && v[1].len == 4 && !memcmp(v[1].str, "gold", 4));
    CHECK(v[2].type == KS_VAL_BOOL && v[2].b == 1);
    CHECK(v[3].type == KS_VAL_STR && v[3].len == 2 && !memcmp(v[3].str, "FR", 2));
    ks_json_free(doc);

    /* absent and null fields: defaults, not malformed */
    const char *partial = "{\"segment\": null}";
    CHECK_EQ_INT(ks_lookup_extract(&d, partial, strlen(partial), NULL, NULL, v, &doc), 0);
    CHECK(v[0].type == KS_VAL_NUM && v[0].num == 0);
    CHECK(v[1].type == KS_VAL_STR && !memcmp(v[1].str, "unknown", 7));
    CHECK(v[3].type == KS_VAL_MISSING);
    ks_json_free(doc);

    /* wrong types: that field's default, counted */
    const char *wrong = "{\"tx_count_1h\": \"12\", \"segment\": 5, \"vip\": true}";
    CHECK_EQ_INT(ks_lookup_extract(&d, wrong, strlen(wrong), NULL, NULL, v, &doc), 2);
    CHECK(v[0].num == 0 && v[2].b == 1);
    ks_json_free(doc);

    /* bad JSON, not an object, too large: every field defaults */
    CHECK_EQ_INT(ks_lookup_extract(&d, "{\"tx_count_1h\": 1", 17, NULL, NULL, v, &doc), 4);
    CHECK(doc == NULL && v[0].num == 0);
    CHECK_EQ_INT(ks_lookup_extract(&d, "[1]", 3, NULL, NULL, v, &doc), 4);
    ks_json_free(doc);
    d.max_value_bytes = 16;
    CHECK_EQ_INT(ks_lookup_extract(&d, good, strlen(good), NULL, NULL, v, &doc), 4);
    ks_lookup_def_free(&d);

    /* hash: HMGET values are text, parsed by field type */
    CHECK_MSG(parse("name: h\nredis: {url: redis://h}\ntype: hash\nkey: \"m:{n}\"\n"
                    "fields: {risk: {type: number, default: -1}, tier: string, ok: bool}\n",
                    &d, err, sizeof(err)) == 0, "%s", err);
    const char *hv[] = {"0.25", "b", "1"};
    size_t hl[] = {4, 1, 1};
    CHECK_EQ_INT(ks_lookup_extract(&d, NULL, 0, hv, hl, v, &doc), 0);
    CHECK(v[0].num == 0.25 && v[1].len == 1 && v[2].b == 1);
    const char *hv2[] = {"lots", NULL, "maybe"};
    size_t hl2[] = {4, 0, 5};
    CHECK_EQ_INT(ks_lookup_extract(&d, NULL, 0, hv2, hl2, v, &doc), 2);
    CHECK(v[0].num == -1 && v[1].type == KS_VAL_MISSING && v[2].type == KS_VAL_MISSING);
    ks_lookup_def_free(&d);

    /* string: the whole value is the one field */
    CHECK_MSG(parse("name: s\nredis: {url: redis://h}\ntype: string\nkey: \"r:{n}\"\n"
                    "fields: {score: {type: number, default: 0}}\n", &d, err, sizeof(err)) == 0, "%s", err);
    CHECK_EQ_INT(ks_lookup_extract(&d, "0.75", 4, NULL, NULL, v, &doc), 0);
    CHECK(v[0].num == 0.75);
    CHECK_EQ_INT(ks_lookup_extract(&d, "0.75x", 5, NULL, NULL, v, &doc), 1);
    CHECK(v[0].num == 0);
    ks_lookup_def_free(&d);
}

static void test_snapshot(void)
{
    char path[] = "/tmp/kscore-test-snapshot-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "{\"key\": \"features:u1:1\", \"value\": {\"tx_count_1h\": 3, \"segment\": \"gold\"}}\n\n"
               "{\"key\": \"features:u2:1\", \"value\": {\"tx_count_1h\": \"x\"}}\n");
    fclose(f);
    ks_lookup_def_t d;
    char err[512], yaml[1024];
    snprintf(yaml, sizeof(yaml), "name: profile\nsnapshot: %s\nkey: \"features:{user_id}:{n}\"\n"
             "fields: {tx_count_1h: {type: number, default: 0}, segment: {type: string, default: unknown}}\n", path);
    CHECK_MSG(parse(yaml, &d, err, sizeof(err)) == 0, "%s", err);
    const ks_lcache_entry_t *e = ks_lcache_peek(d.snap, "features:u1:1", 13);
    CHECK(e && e->vals[0].num == 3 && e->vals[1].len == 4);
    e = ks_lcache_peek(d.snap, "features:u2:1", 13);
    CHECK(e && e->vals[0].num == 0 && e->vals[1].len == 7);
    CHECK(ks_lcache_peek(d.snap, "features:u3:1", 13) == NULL);

    /* the resolver serves it with no Redis at all */
    const ks_lookup_def_t *defs[] = {&d};
    ks_lookups_t *t = ks_lookups_new(defs, 1);
    ks_lookups_begin(t);
    uint32_t s1 = ks_lookups_add(t, 0, "features:u1:1", 13);
    uint32_t s3 = ks_lookups_add(t, 0, "features:u3:1", 13);
    CHECK_EQ_INT(ks_lookups_add(t, 0, "features:u1:1", 13), s1);
    ks_lookups_fetch(t);
    int deg = 1;
    const ks_value_t *v = ks_lookups_values(t, 0, s1, &deg);
    CHECK(v[0].num == 3 && deg == 0);
    v = ks_lookups_values(t, 0, s3, &deg);
    CHECK(v[0].num == 0 && deg == 0);
    uint64_t cmds, ex;
    ks_lookups_counts(t, &cmds, &ex);
    CHECK_EQ_INT(cmds, 0);
    ks_lookups_free(t);
    ks_lookup_def_free(&d);

    f = fopen(path, "w");
    fprintf(f, "{\"key\": \"a\", \"value\": {}}\n{\"k\": 1}\n");
    fclose(f);
    CHECK(parse(yaml, &d, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, ":2: expected {\"key\"");
    ks_lookup_def_free(&d);
    unlink(path);
}

int main(void)
{
    RUN(test_cache_ttl_and_lru);
    RUN(test_breaker);
    RUN(test_config_and_template);
    RUN(test_url);
    RUN(test_extract);
    RUN(test_snapshot);
    return test_summary();
}
