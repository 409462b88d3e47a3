/*
 * config.h - the parsed pipeline configuration (struct ks_config) and the
 * config table that drives parsing, validation and the reference docs.
 *
 * Scalar keys are declared once in config.c's table (key, type, default, range,
 * description). Sections with structure of their own are parsed by their
 * module from the node tree: `input.fields` by decode/schema.c, `features` by
 * features/features.c, `kafka` here (every property is checked with
 * librdkafka itself).
 */
#ifndef KS_CONFIG_H
#define KS_CONFIG_H

#include "base/conftree.h"
#include "decode/schema.h"
#include "features/features.h"
#include "kscore/kscore.h"

/* One librdkafka property from the `kafka:` section. */
typedef struct ks_kafka_prop {
    char *name, *value;
    int scope; /* KS_KAFKA_BOTH, KS_KAFKA_CONSUMER, KS_KAFKA_PRODUCER */
} ks_kafka_prop_t;

enum { KS_KAFKA_BOTH, KS_KAFKA_CONSUMER, KS_KAFKA_PRODUCER };

typedef struct ks_strlist {
    char **items;
    size_t n;
} ks_strlist_t;

struct ks_config {
    char *path;             /* the YAML file */
    ks_node_t *root;

    long long workers;
    char *log_level;

    ks_kafka_prop_t *kafka;
    size_t n_kafka;

    ks_strlist_t input_topics;
    char *input_group_id;
    char *input_format;
    ks_schema_t *schema;

    char *output_topic;
    char *output_id_field;
    ks_strlist_t output_carry_fields;
    double output_threshold;
    int output_has_threshold;

    char *dlq_topic;
    char *mode;             /* "score" or "passthrough" (the benchmark's Kafka limit) */

    long long batch_max_size;
    long long batch_max_wait_ms;
    long long commit_interval_ms;
    long long shutdown_timeout_ms;

    ks_features_t *features;

    char *model_path;       /* resolved against the config file's folder */
    long long model_watch_interval_ms; /* 0 = reload on SIGHUP only */

    /* observability (obs/http.c, obs/kafka_stats.c, engine/sinks/feature_log.c) */
    char *log_format;       /* "logfmt" or "json" */
    char *metrics_enabled;  /* "true" or "false" */
    char *metrics_listen;   /* HOST:PORT */
    char *feature_log_topic;        /* NULL = no feature log */
    double feature_log_sample_rate; /* 0..1 */
};

/* ks_config_load from YAML text in memory (`name` stands for the file in
 * messages); used by tests and the config fuzz target. */
int ks_config_load_text(const char *name, const char *text, size_t len, ks_config_t **out,
                        char *errbuf, size_t errsize);

/* Applies all properties of `scope` (and BOTH) to a librdkafka conf. */
struct rd_kafka_conf_s;
int ks_config_apply_kafka(const struct ks_config *cfg, int scope, struct rd_kafka_conf_s *conf,
                          char *errbuf, size_t errsize);

#endif
