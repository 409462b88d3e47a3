/*
 * test_conftree.c - YAML node tree: lines, typed reads, --set, unknown keys.
 */
#include "base/common.h"
#include "base/conftree.h"
#include "test.h"

#include <stdlib.h>

static ks_node_t *parse(const char *text)
{
    ks_node_t *root = NULL;
    char err[512];
    int rc = ks_node_parse_string("t.yaml", text, strlen(text), &root, err, sizeof(err));
    CHECK_MSG(rc == 0, "%s", err);
    return root;
}

static void test_lines_and_types(void)
{
    ks_node_t *r = parse("batch:\n  max_size: 500\n  max_wait_ms: abc\nname: 'yes'\n");
    char err[512];
    long long v = 0;
    ks_node_t *b = ks_node_get(r, "batch");
    CHECK(b && b->kind == KS_NODE_MAP);
    CHECK_EQ_INT(ks_node_int(ks_node_get(b, "max_size"), 1, 1000, &v, err, sizeof(err)), 0);
    CHECK_EQ_INT(v, 500);
    CHECK(ks_node_int(ks_node_get(b, "max_wait_ms"), 0, 1000, &v, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, "t.yaml:3: batch.max_wait_ms: expected an integer");
    CHECK(ks_node_int(ks_node_get(b, "max_size"), 1, 100, &v, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, "out of range");
    int bv;
    CHECK(ks_node_bool(ks_node_get(r, "name"), &bv, err, sizeof(err)) != 0); /* quoted */
    ks_node_free(r);
}

static void test_unknown_keys(void)
{
    ks_node_t *r = parse("a: 1\nb:\n  c: 2\n  d: 3\n");
    char err[512];
    long long v;
    ks_node_int(ks_node_get(r, "a"), 0, 9, &v, err, sizeof(err));
    ks_node_t *b = ks_node_get(r, "b");
    ks_node_expect(b, KS_NODE_MAP, err, sizeof(err));
    ks_node_int(ks_node_get(b, "c"), 0, 9, &v, err, sizeof(err));
    CHECK(ks_node_check_unused(r, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, "t.yaml:4: unknown key 'b.d'");
    ks_node_mark_used(b);
    CHECK_EQ_INT(ks_node_check_unused(r, err, sizeof(err)), 0);
    ks_node_free(r);
}

static void test_set(void)
{
    ks_node_t *r = parse("input:\n  fields:\n    payment.amount: {type: number}\n");
    char err[512];
    CHECK_EQ_INT(ks_node_set(r, "batch.max_size=7", NULL, err, sizeof(err)), 0);
    CHECK_EQ_STR(ks_node_get(ks_node_get(r, "batch"), "max_size")->scalar, "7");
    CHECK_EQ_INT(ks_node_set(r, "input.topics=a,b, c", NULL, err, sizeof(err)), 0);
    ks_node_t *t = ks_node_get(ks_node_get(r, "input"), "topics");
    CHECK(t && t->kind == KS_NODE_SEQ && t->n_items == 3);
    CHECK_EQ_STR(t->items[2]->scalar, "c");
    CHECK_EQ_INT(ks_node_set(r, "input.fields.payment.amount.default=0", NULL, err, sizeof(err)), 0);
    ks_node_t *f = ks_node_get(ks_node_get(ks_node_get(r, "input"), "fields"), "payment.amount");
    CHECK(f && ks_node_get(f, "default") && ks_node_get(f, "type"));
    CHECK(ks_node_set(r, "novalue", NULL, err, sizeof(err)) != 0);
    CHECK(ks_node_set(r, "batch.max_size.x=1", NULL, err, sizeof(err)) != 0);
    static const char *const flat[] = {"kafka", "kafka.consumer", NULL};
    CHECK_EQ_INT(ks_node_set(r, "kafka.consumer.session.timeout.ms=6000", flat, err, sizeof(err)), 0);
    CHECK_EQ_INT(ks_node_set(r, "kafka.bootstrap.servers=h:1,h:2", flat, err, sizeof(err)), 0);
    ks_node_t *k = ks_node_get(r, "kafka");
    CHECK(ks_node_get(ks_node_get(k, "consumer"), "session.timeout.ms") != NULL);
    CHECK_EQ_STR(ks_node_get(k, "bootstrap.servers")->scalar, "h:1,h:2");
    ks_node_free(r);
}

static void test_syntax_errors(void)
{
    ks_node_t *r = NULL;
    char err[512];
    const char *bad = "a: 1\nb: [1, 2\n";
    CHECK(ks_node_parse_string("t.yaml", bad, strlen(bad), &r, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, "t.yaml:");
    const char *dup = "a: 1\na: 2\n";
    CHECK(ks_node_parse_string("t.yaml", dup, strlen(dup), &r, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, "t.yaml:2: duplicate key 'a'");
    const char *list = "- 1\n- 2\n";
    CHECK(ks_node_parse_string("t.yaml", list, strlen(list), &r, err, sizeof(err)) != 0);
    const char *alias = "a: &x 1\nb: *x\n";
    CHECK(ks_node_parse_string("t.yaml", alias, strlen(alias), &r, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, "aliases");
}

static void test_set_named_item(void)
{
    const char *y = "lookups:\n  - name: profile\n    key: a\n  - name: merchant\n    key: b\n";
    ks_node_t *r = NULL;
    char err[256];
    CHECK_EQ_INT(ks_node_parse_string("t.yaml", y, strlen(y), &r, err, sizeof(err)), 0);
    CHECK_EQ_INT(ks_node_set(r, "lookups.merchant.snapshot=m.jsonl", NULL, err, sizeof(err)), 0);
    ks_node_t *item = ks_node_get(r, "lookups")->items[1];
    CHECK_EQ_STR(ks_node_get(item, "snapshot")->scalar, "m.jsonl");
    CHECK(ks_node_get(ks_node_get(r, "lookups")->items[0], "snapshot") == NULL);
    CHECK(ks_node_set(r, "lookups.nobody.snapshot=x", NULL, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, "no item named 'nobody'");
    ks_node_free(r);
}

int main(void)
{
    RUN(test_lines_and_types);
    RUN(test_set_named_item);
    RUN(test_unknown_keys);
    RUN(test_set);
    RUN(test_syntax_errors);
    return test_summary();
}
