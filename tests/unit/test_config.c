/*
 * test_config.c - the config loader's contract: defaults from the table,
 * --set, and every class of mistake exits with a message naming file, line
 * and key (unknown keys, wrong types, ranges, missing required keys, invalid
 * librdkafka properties, undeclared fields).
 */
#include "engine/config.h"
#include "test.h"

#include <stdlib.h>

static const char *base =
    "kafka:\n"
    "  bootstrap.servers: 127.0.0.1:9092\n"
    "input:\n"
    "  topics: [in]\n"
    "  fields:\n"
    "    id: {type: string, required: true}\n"
    "    amount: number\n"
    "output:\n"
    "  topic: out\n"
    "  id_field: id\n"
    "dead_letter: {topic: dlq}\n"
    "model: {path: m.json}\n"
    "features:\n"
    "  - {name: amount, expr: amount}\n";

static int load(const char *text, ks_config_t **cfg, char *err, size_t n)
{
    return ks_config_load_text("p.yaml", text, strlen(text), cfg, err, n);
}

/* Loads base + extra; expects failure with `want` in the message. */
static void expect_error(const char *extra, const char *want)
{
    char text[4096], err[1024] = "";
    ks_config_t *cfg = NULL;
    snprintf(text, sizeof(text), "%s%s", base, extra);
    int rc = load(text, &cfg, err, sizeof(err));
    CHECK_MSG(rc != 0, "expected an error containing '%s'", want);
    CHECK_CONTAINS(err, want);
    if (cfg)
        ks_config_free(cfg);
}

static void test_defaults(void)
{
    char err[1024];
    ks_config_t *cfg = NULL;
    CHECK_EQ_INT(load(base, &cfg, err, sizeof(err)), 0);
    if (!cfg)
        return;
    CHECK_EQ_INT(cfg->workers, 1);
    CHECK_EQ_INT(cfg->batch_max_size, 500);
    CHECK_EQ_INT(cfg->batch_max_wait_ms, 5);
    CHECK_EQ_STR(cfg->input_group_id, "kscore");
    CHECK_EQ_STR(cfg->mode, "score");
    CHECK(!cfg->output_has_threshold);
    CHECK_EQ_STR(cfg->model_path, "m.json");
    CHECK_EQ_INT(cfg->n_kafka, 1);
    ks_config_free(cfg);
}

static void test_errors(void)
{
    expect_error("batch: {max_size: 0}\n", "p.yaml:15: batch.max_size: 0 is out of range");
    expect_error("batch: {max_size: ten}\n", "p.yaml:15: batch.max_size: expected an integer");
    expect_error("batch: {max_sise: 10}\n", "p.yaml:15: unknown key 'batch.max_sise'");
    expect_error("bogus: 1\n", "p.yaml:15: unknown key 'bogus'");
    expect_error("workers: [1]\n", "p.yaml:15: workers: expected a scalar, got a list");
    expect_error("log: {level: loud}\n", "p.yaml:15: log.level: expected one of debug|info|warn|error");
    expect_error("output:\n  threshold: x\n", "duplicate key 'output'");
    expect_error("commit: {interval_ms: 5}\n", "commit.interval_ms: 5 is out of range");
}

static void test_kafka_properties(void)
{
    char text[4096], err[1024];
    ks_config_t *cfg = NULL;
    snprintf(text, sizeof(text), "%s", base);
    char *p = strstr(text, "bootstrap.servers");
    memcpy(p, "bootstrap.srvers:", 17);
    memmove(p + 17, p + 18, strlen(p + 18) + 1);
    CHECK(load(text, &cfg, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, "p.yaml:2: kafka.bootstrap.srvers: invalid librdkafka property");
    expect_error("kafka.x: 1\n", "unknown key 'kafka.x'");
}

static void test_missing_and_undeclared(void)
{
    char err[1024];
    ks_config_t *cfg = NULL;
    const char *no_output = "input: {topics: [a], fields: {x: number}}\n"
                            "dead_letter: {topic: d}\nmodel: {path: m}\n"
                            "features: [{name: x, expr: x}]\n";
    CHECK(load(no_output, &cfg, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, "p.yaml: missing required key 'output.topic'");
    const char *undeclared = "input: {topics: [a], fields: {x: number}}\n"
                             "output: {topic: o, carry_fields: [y]}\n"
                             "dead_letter: {topic: d}\nmodel: {path: m}\n"
                             "features: [{name: x, expr: x}]\n";
    CHECK(load(undeclared, &cfg, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, "p.yaml:2: output.carry_fields: field 'y' is not declared");
    const char *managed = "kafka: {enable.auto.commit: 'true'}\n"
                          "input: {topics: [a], fields: {x: number}}\n"
                          "output: {topic: o}\ndead_letter: {topic: d}\nmodel: {path: m}\n"
                          "features: [{name: x, expr: x}]\n";
    CHECK(load(managed, &cfg, err, sizeof(err)) != 0);
    CHECK_CONTAINS(err, "p.yaml:1: kafka.enable.auto.commit: is managed by kscore");
}

int main(void)
{
    RUN(test_defaults);
    RUN(test_errors);
    RUN(test_kafka_properties);
    RUN(test_missing_and_undeclared);
    return test_summary();
}
