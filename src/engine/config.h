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

#include <stddef.h>

/* One row of the config table: a scalar key, its type, default, range and
 * description, and where its value goes in struct ks_config. The core rows
 * are in config.c; each stage and sink adds its own (engine/stage.h,
 * engine/sink.h). Parsing, defaults, validation, `kscore config-reference`
 * and docs/config.md all come from these rows. */
typedef enum { KS_CONF_STRING, KS_CONF_INT, KS_CONF_DOUBLE, KS_CONF_STRLIST, KS_CONF_ENUM } ks_conf_type_t;

typedef struct ks_config_key {
    const char *key;       /* dotted path */
    ks_conf_type_t type;
    size_t offset;         /* into struct ks_config */
    ptrdiff_t has_offset;  /* int flag set when present (optional doubles), or -1 */
    int required;
    const char *dflt;      /* default as text, NULL = none */
    long long min, max;    /* KS_CONF_INT range */
    const char *choices;   /* KS_CONF_ENUM: "a|b|c" */
    const char *desc;
} ks_config_key_t;

#define KS_CONF_OFF(f) offsetof(struct ks_config, f)
#define KS_CONF_NOHAS  (-1)

/* A section with structure of its own, parsed by its module; for the docs. */
typedef struct ks_config_section {
    const char *key, *desc;
} ks_config_section_t;

#define KS_STAGES_MAX 16 /* stage types in the registry (engine/stage.c) */

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
    char *output_format;       /* "full" | "compact" */
    double output_threshold;
    int output_has_threshold;

    char *dlq_topic;
    char *mode;             /* "score" or "passthrough" (the benchmark's Kafka limit) */

    char *delivery;          /* "at_least_once" or "exactly_once" */
    char *txn_instance_id;   /* exactly_once: this instance's part of the transactional.id;
                                NULL = the host name */
    long long txn_timeout_ms;

    long long batch_max_size;
    long long batch_max_wait_ms;
    long long commit_interval_ms;
    long long shutdown_timeout_ms;

    ks_features_t *features;

    char *model_path;       /* resolved against the config file's folder */
    long long model_watch_interval_ms; /* 0 = reload on SIGHUP only */

    /* drift (engine/stages/drift.c) */
    char *drift_enabled;    /* "auto", "true" or "false" */
    char *drift_window;     /* a duration: "15m" */
    long long drift_min_rows;

    /* online evaluation (engine/stages/evaluation.c) */
    char *eval_labels_topic;   /* NULL = off */
    char *eval_id_field, *eval_label_field;
    char *eval_max_wait, *eval_window; /* durations */
    char *eval_store;          /* the store's log file, relative to the config file */
    long long eval_max_pending;
    char *eval_topic;          /* joined records, NULL = none */

    void *stage_conf[KS_STAGES_MAX]; /* per registry index: what the stage's configure
                                        parsed (NULL: not configured) */

    /* observability (obs/http.c, obs/kafka_stats.c, engine/sinks/feature_log.c) */
    char *log_format;       /* "logfmt" or "json" */
    char *metrics_enabled;  /* "true" or "false" */
    char *metrics_listen;   /* HOST:PORT */
    char *feature_log_topic;        /* NULL = no feature log */
    double feature_log_sample_rate; /* 0..1 */

    /* window features (engine/stages/windows.c) and the encoder's "features" */
    char *output_include_features;  /* "true" or "false" */
    char *state_changelog;          /* "true" or "false" */
    char *state_changelog_topic;    /* NULL = <input.group_id>-kscore-windows-changelog */
    long long state_max_bytes;      /* per worker */
    long long state_restore_timeout_ms;
    char *state_dir;                /* NULL = no local snapshots */
    long long state_snapshot_interval_ms; /* 0 = on revoke and shutdown only */

    /* model deployments (engine/stages/route.c, engine/deployments.c) */
    char *deployments_topic;        /* NULL = off: model.path serves every row */
    char *deployments_status_topic; /* NULL = no status records */
    char *routing_key;              /* default output.id_field */
    char *shadow_topic;             /* NULL = shadow results go to metrics only */
    double guard_max_error_rate, guard_max_p99_ms, guard_max_score_psi;
    int guard_has_error_rate, guard_has_p99, guard_has_psi;
    char *guard_window;             /* "5m" as written */
    long long guard_window_ms;      /* parsed by the route stage */
    long long guard_min_events;
    long long guard_interval_ms;
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
