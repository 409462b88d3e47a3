/*
 * config.c - loads pipeline.yaml into struct ks_config.
 *
 * The table below is the single source of truth for scalar keys: parsing,
 * defaults, range checks and `kscore config-reference` all come from it (the
 * shape of librdkafka's rd_kafka_properties[] and Redis' config.c). Errors
 * always name file, line and key; unknown keys are errors.
 */
#include "engine/config.h"
#include "engine/sink.h"
#include "engine/stage.h"
#include "base/common.h"
#include "base/log.h"

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const ks_config_key_t config_keys[] = {
    {"workers", KS_CONF_INT, KS_CONF_OFF(workers), KS_CONF_NOHAS, 0, "1", 1, 64, NULL,
     "Worker threads; each is one consumer group member with its own producer."},
    {"mode", KS_CONF_ENUM, KS_CONF_OFF(mode), KS_CONF_NOHAS, 0, "score", 0, 0, "score|passthrough",
     "score: the pipeline. passthrough: copy each input record to output.topic, same "
     "partition, nothing else (measures the Kafka limit for the benchmark)."},
    {"log.level", KS_CONF_ENUM, KS_CONF_OFF(log_level), KS_CONF_NOHAS, 0, "info", 0, 0, "debug|info|warn|error",
     "Minimum level of log lines written to stderr."},
    {"input.topics", KS_CONF_STRLIST, KS_CONF_OFF(input_topics), KS_CONF_NOHAS, 1, NULL, 0, 0, NULL,
     "Topics to consume events from (a list, or comma-separated with --set)."},
    {"input.group_id", KS_CONF_STRING, KS_CONF_OFF(input_group_id), KS_CONF_NOHAS, 0, "kscore", 0, 0, NULL,
     "Consumer group id; instances with the same id share the partitions."},
    {"input.format", KS_CONF_ENUM, KS_CONF_OFF(input_format), KS_CONF_NOHAS, 0, "json", 0, 0, "json",
     "Encoding of event values."},
    {"output.topic", KS_CONF_STRING, KS_CONF_OFF(output_topic), KS_CONF_NOHAS, 1, NULL, 0, 0, NULL,
     "Topic that receives one prediction record per input event."},
    {"output.id_field", KS_CONF_STRING, KS_CONF_OFF(output_id_field), KS_CONF_NOHAS, 0, NULL, 0, 0, NULL,
     "Input field copied to the record as \"id\" and used as its Kafka key "
     "(default: the input record's key is reused)."},
    {"output.carry_fields", KS_CONF_STRLIST, KS_CONF_OFF(output_carry_fields), KS_CONF_NOHAS, 0, NULL, 0, 0, NULL,
     "Input fields copied into each prediction record."},
    {"output.format", KS_CONF_ENUM, KS_CONF_OFF(output_format), KS_CONF_NOHAS, 0, "full", 0, 0, "full|compact",
     "full: the whole prediction record (README, \"Output records\"). compact: only \"id\", "
     "\"score\" (binary classifiers) or \"prediction\" (others), and \"model_version\": "
     "for throughput-bound consumers; output.carry_fields and output.threshold are then not "
     "written."},
    {"output.threshold", KS_CONF_DOUBLE, KS_CONF_OFF(output_threshold), KS_CONF_OFF(output_has_threshold), 0, NULL, 0,
     0, NULL, "Binary classifiers: adds \"label\": score >= threshold to each record."},
    {"dead_letter.topic", KS_CONF_STRING, KS_CONF_OFF(dlq_topic), KS_CONF_NOHAS, 1, NULL, 0, 0, NULL,
     "Topic that receives events that could not be scored, with error headers."},
    {"delivery", KS_CONF_ENUM, KS_CONF_OFF(delivery), KS_CONF_NOHAS, 0, "at_least_once", 0, 0,
     "at_least_once|exactly_once",
     "at_least_once: an input offset is committed once its output is acknowledged (a crash "
     "may repeat outputs). exactly_once: each worker writes outputs, dead letters and the "
     "input offsets in one Kafka transaction per commit.interval_ms; readers of the output "
     "must use isolation.level=read_committed."},
    {"transaction.instance_id", KS_CONF_STRING, KS_CONF_OFF(txn_instance_id), KS_CONF_NOHAS, 0,
     NULL, 0, 0, NULL,
     "exactly_once: this instance's name in the transactional.id "
     "kscore-<group_id>-<instance_id>-<worker> (default: the host name). Unique per running "
     "instance and the same after a restart, so a restarted instance fences its predecessor."},
    {"transaction.timeout_ms", KS_CONF_INT, KS_CONF_OFF(txn_timeout_ms), KS_CONF_NOHAS, 0,
     "60000", 1000, 900000, NULL,
     "exactly_once: how long the broker lets a transaction stay open before aborting it "
     "(librdkafka transaction.timeout.ms); a crashed instance's open transaction blocks "
     "read_committed readers at most this long if it does not restart."},
    {"batch.max_size", KS_CONF_INT, KS_CONF_OFF(batch_max_size), KS_CONF_NOHAS, 0, "500", 1, 100000, NULL,
     "Events per micro-batch at most."},
    {"batch.max_wait_ms", KS_CONF_INT, KS_CONF_OFF(batch_max_wait_ms), KS_CONF_NOHAS, 0, "5", 0, 60000, NULL,
     "Longest time the first event of a batch waits for more events when the consumer has "
     "none buffered (buffered events are always taken at once); 0 = never wait."},
    {"commit.interval_ms", KS_CONF_INT, KS_CONF_OFF(commit_interval_ms), KS_CONF_NOHAS, 0, "1000", 10, 3600000, NULL,
     "How often acknowledged offsets are committed (also on rebalance and shutdown); with "
     "delivery: exactly_once, how long a transaction collects outputs before it commits."},
    {"shutdown.timeout_ms", KS_CONF_INT, KS_CONF_OFF(shutdown_timeout_ms), KS_CONF_NOHAS, 0, "10000", 0, 600000, NULL,
     "On SIGTERM, how long to wait for in-flight outputs to be acknowledged."},
    {"model.path", KS_CONF_STRING, KS_CONF_OFF(model_path), KS_CONF_NOHAS, 0, NULL, 0, 0, NULL,
     "Model file (kscore JSON, XGBoost JSON or LightGBM text), relative to the config file. "
     "Required by every command but `kscore features`, which computes features only."},
    {"model.watch_interval_ms", KS_CONF_INT, KS_CONF_OFF(model_watch_interval_ms), KS_CONF_NOHAS, 0, "1000", 0,
     3600000, NULL,
     "How often to check model.path for a new file to hot-swap in (0 = only on SIGHUP). "
     "Replace the file atomically (write, then rename); a file that fails to load, fit "
     "the features or predict is refused and the model in service stays."},
    {"log.format", KS_CONF_ENUM, KS_CONF_OFF(log_format), KS_CONF_NOHAS, 0, "logfmt", 0, 0, "logfmt|json",
     "Log lines as logfmt (ts=... level=... msg=\"...\") or JSON lines."},
    {"metrics.enabled", KS_CONF_ENUM, KS_CONF_OFF(metrics_enabled), KS_CONF_NOHAS, 0, "true", 0, 0, "true|false",
     "Serve /metrics, /healthz, /readyz and the status page, and collect librdkafka "
     "statistics (lag, broker RTT)."},
    {"metrics.listen", KS_CONF_STRING, KS_CONF_OFF(metrics_listen), KS_CONF_NOHAS, 0, "127.0.0.1:9464", 0, 0, NULL,
     "HOST:PORT of the HTTP endpoint ([::1]:PORT for IPv6, port 0 = any free port)."},
};

/* The table's rows: the core ones above, then each stage's and sink's. */
typedef struct key_group {
    const ks_config_key_t *k;
    size_t n;
} key_group_t;

#define MAX_GROUPS (1 + KS_STAGES_MAX + 8)

static size_t key_groups(key_group_t *g)
{
    size_t n = 0;
    g[n++] = (key_group_t){config_keys, KS_ARRAY_LEN(config_keys)};
    for (size_t i = 0; i < ks_stage_types_n; i++)
        if (ks_stage_types[i]->n_keys)
            g[n++] = (key_group_t){ks_stage_types[i]->keys, ks_stage_types[i]->n_keys};
    for (size_t i = 0; i < ks_sink_types_n && n < MAX_GROUPS; i++)
        if (ks_sink_types[i]->n_keys)
            g[n++] = (key_group_t){ks_sink_types[i]->keys, ks_sink_types[i]->n_keys};
    return n;
}

#define FOR_EACH_KEY(k)                                                                        \
    key_group_t groups_[MAX_GROUPS];                                                           \
    size_t n_groups_ = key_groups(groups_);                                                    \
    for (size_t g_ = 0; g_ < n_groups_; g_++)                                                  \
        for (const ks_config_key_t *k = groups_[g_].k; k < groups_[g_].k + groups_[g_].n; k++)

/* Sections parsed by code rather than the table, for the reference. */
static const ks_config_section_t config_sections[] = {
    {"kafka", "librdkafka properties for both clients (e.g. bootstrap.servers); "
              "kafka.consumer / kafka.producer maps hold client-specific ones."},
    {"input.fields", "Declared event fields: name -> {type, required, default}."},
    {"features", "Ordered list of features (see docs/features.md)."},
};

static const char *type_name(const ks_config_key_t *k)
{
    return k->type == KS_CONF_INT ? "int" : k->type == KS_CONF_DOUBLE ? "number"
         : k->type == KS_CONF_STRLIST ? "list" : k->type == KS_CONF_ENUM ? k->choices : "string";
}

/* A table cell: '|' would end it. */
static void put_cell(FILE *out, const char *s)
{
    for (; *s; s++)
        fputs(*s == '|' ? "\\|" : (char[]){*s, 0}, out);
}

/* The sections: the core ones, then each stage's. */
static void print_sections(FILE *out, int markdown)
{
    const ks_config_section_t *sec[1 + KS_STAGES_MAX];
    size_t n_sec[1 + KS_STAGES_MAX], groups = 0;
    sec[groups] = config_sections;
    n_sec[groups++] = KS_ARRAY_LEN(config_sections);
    for (size_t i = 0; i < ks_stage_types_n; i++)
        if (ks_stage_types[i]->n_sections) {
            sec[groups] = ks_stage_types[i]->sections;
            n_sec[groups++] = ks_stage_types[i]->n_sections;
        }
    for (size_t g = 0; g < groups; g++)
        for (size_t i = 0; i < n_sec[g]; i++)
            fprintf(out, markdown ? "| `%s` | section | | %s |\n" : "  %-22s %s\n",
                    sec[g][i].key, sec[g][i].desc);
}

void ks_config_print_reference(FILE *out, int markdown)
{
    if (markdown) {
        fprintf(out, "# Configuration reference\n\n"
                     "Generated from the config table in `src/engine/config.c` by "
                     "`kscore config-reference --markdown`; a test keeps it in sync.\n"
                     "Any key can be overridden with `--set key=value`.\n\n"
                     "| key | type | default | meaning |\n| --- | --- | --- | --- |\n");
        print_sections(out, 1);
        FOR_EACH_KEY(k) {
            fprintf(out, "| `%s` | ", k->key);
            put_cell(out, type_name(k));
            fprintf(out, " | %s | ", k->required ? "**required**" : k->dflt ? k->dflt : "");
            put_cell(out, k->desc);
            fputs(" |\n", out);
        }
        return;
    }
    fprintf(out, "Config keys (YAML; any key can be overridden with --set key=value):\n\n");
    print_sections(out, 0);
    FOR_EACH_KEY(k) {
        fprintf(out, "  %-22s %s [%s%s%s%s]\n", k->key, k->desc, type_name(k),
                k->required ? ", required" : "", k->dflt ? ", default " : "",
                k->dflt ? k->dflt : "");
    }
}

/* Finds the node for a dotted key, marking the section maps on the way used.
 * Returns KS_OK with *out = NULL when absent. */
static int lookup(ks_node_t *root, const char *key, ks_node_t **out, char *errbuf, size_t errsize)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", key);
    ks_node_t *cur = root;
    char *save = NULL;
    *out = NULL;
    for (char *part = strtok_r(buf, ".", &save); part; part = strtok_r(NULL, ".", &save)) {
        if (cur != root) {
            int rc = ks_node_expect(cur, KS_NODE_MAP, errbuf, errsize);
            if (rc)
                return rc;
        }
        cur = ks_node_get(cur, part);
        if (!cur)
            return KS_OK;
    }
    *out = cur;
    return KS_OK;
}

static int set_strlist(ks_strlist_t *l, ks_node_t *n, char *errbuf, size_t errsize)
{
    const char *s;
    if (n->kind == KS_NODE_SCALAR) { /* a single item */
        int rc = ks_node_string(n, &s, errbuf, errsize);
        if (rc)
            return rc;
        l->items = ks_xcalloc(1, sizeof(char *));
        l->items[l->n++] = ks_xstrdup(s);
        return KS_OK;
    }
    int rc = ks_node_expect(n, KS_NODE_SEQ, errbuf, errsize);
    if (rc)
        return rc;
    l->items = ks_xcalloc(n->n_items, sizeof(char *));
    for (size_t i = 0; i < n->n_items; i++) {
        if ((rc = ks_node_string(n->items[i], &s, errbuf, errsize)))
            return rc;
        l->items[l->n++] = ks_xstrdup(s);
    }
    return KS_OK;
}

static int apply_key(struct ks_config *cfg, const ks_config_key_t *k, ks_node_t *n, char *errbuf,
                     size_t errsize)
{
    char *base = (char *)cfg;
    int rc = KS_OK;
    const char *s;
    switch (k->type) {
    case KS_CONF_STRING:
        if ((rc = ks_node_string(n, &s, errbuf, errsize)))
            return rc;
        if (!*s)
            return ks_node_err(n, errbuf, errsize, "must not be empty");
        *(char **)(base + k->offset) = ks_xstrdup(s);
        break;
    case KS_CONF_ENUM: {
        if ((rc = ks_node_string(n, &s, errbuf, errsize)))
            return rc;
        size_t sl = strlen(s);
        const char *c = k->choices;
        int found = 0;
        while (*c && !found) {
            const char *bar = strchr(c, '|');
            size_t cl = bar ? (size_t)(bar - c) : strlen(c);
            found = cl == sl && strncmp(c, s, cl) == 0;
            c += cl + (bar ? 1 : 0);
        }
        if (!found)
            return ks_node_err(n, errbuf, errsize, "expected one of %s, got \"%s\"", k->choices, s);
        *(char **)(base + k->offset) = ks_xstrdup(s);
        break;
    }
    case KS_CONF_INT:
        rc = ks_node_int(n, k->min, k->max, (long long *)(base + k->offset), errbuf, errsize);
        break;
    case KS_CONF_DOUBLE:
        rc = ks_node_double(n, (double *)(base + k->offset), errbuf, errsize);
        break;
    case KS_CONF_STRLIST:
        rc = set_strlist((ks_strlist_t *)(base + k->offset), n, errbuf, errsize);
        break;
    }
    if (rc == KS_OK && k->has_offset != KS_CONF_NOHAS)
        *(int *)(base + k->has_offset) = 1;
    return rc;
}

static int apply_default(struct ks_config *cfg, const ks_config_key_t *k, const char *file,
                         char *errbuf, size_t errsize)
{
    /* Defaults go through the same parser as user values. */
    ks_node_t n = {.kind = KS_NODE_SCALAR, .file = file, .line = 0, .scalar = (char *)k->dflt};
    return apply_key(cfg, k, &n, errbuf, errsize);
}

static int add_kafka_props(struct ks_config *cfg, ks_node_t *map, int scope, char *errbuf,
                           size_t errsize)
{
    int rc = ks_node_expect(map, KS_NODE_MAP, errbuf, errsize);
    if (rc)
        return rc;
    for (size_t i = 0; i < map->n_items; i++) {
        ks_node_t *n = map->items[i];
        if (scope == KS_KAFKA_BOTH && n->kind == KS_NODE_MAP &&
            (strcmp(n->key, "consumer") == 0 || strcmp(n->key, "producer") == 0)) {
            int sub = n->key[0] == 'c' ? KS_KAFKA_CONSUMER : KS_KAFKA_PRODUCER;
            if ((rc = add_kafka_props(cfg, n, sub, errbuf, errsize)))
                return rc;
            continue;
        }
        const char *v;
        if ((rc = ks_node_string(n, &v, errbuf, errsize)))
            return rc;
        /* Check the property with librdkafka itself so typos fail at start-up;
         * read it back as librdkafka stores it (a boolean as "true"/"false",
         * however it was spelled: true, True, t, 1, ...). */
        rd_kafka_conf_t *probe = rd_kafka_conf_new();
        char kerr[256], as_read[64] = "";
        size_t as_read_len = sizeof(as_read);
        rd_kafka_conf_res_t res = rd_kafka_conf_set(probe, n->key, v, kerr, sizeof(kerr));
        if (res == RD_KAFKA_CONF_OK &&
            rd_kafka_conf_get(probe, n->key, as_read, &as_read_len) != RD_KAFKA_CONF_OK)
            as_read[0] = '\0';
        rd_kafka_conf_destroy(probe);
        if (res != RD_KAFKA_CONF_OK)
            return ks_node_err(n, errbuf, errsize, "invalid librdkafka property: %s", kerr);
        if (strcmp(n->key, "group.id") == 0 || strcmp(n->key, "enable.auto.commit") == 0 ||
            strcmp(n->key, "enable.auto.offset.store") == 0 ||
            strcmp(n->key, "transactional.id") == 0)
            return ks_node_err(n, errbuf, errsize,
                               "is managed by kscore (use input.group_id; offsets are committed "
                               "only once outputs are acknowledged)");
        /* settings that would silently break the delivery guarantee (README
         * "Delivery guarantee"): a delivery report must mean the brokers
         * stored the record, once */
        if (scope != KS_KAFKA_CONSUMER &&
            (strcmp(n->key, "acks") == 0 || strcmp(n->key, "request.required.acks") == 0) &&
            strcmp(v, "all") != 0 && strcmp(v, "-1") != 0)
            return ks_node_err(n, errbuf, errsize,
                               "must be all (or -1): kscore commits an input offset once its "
                               "output is acknowledged, and with acks=%s an acknowledged record "
                               "can still be lost when a broker fails", v);
        if (scope != KS_KAFKA_CONSUMER && strcmp(n->key, "enable.idempotence") == 0 &&
            strcmp(as_read, "false") == 0)
            return ks_node_err(n, errbuf, errsize,
                               "must stay true: without the idempotent producer, retries "
                               "write duplicates and reorder outputs");
        cfg->kafka = ks_xrealloc(cfg->kafka, (cfg->n_kafka + 1) * sizeof(*cfg->kafka));
        cfg->kafka[cfg->n_kafka++] =
            (ks_kafka_prop_t){ks_xstrdup(n->key), ks_xstrdup(v), scope};
    }
    return KS_OK;
}

int ks_config_apply_kafka(const struct ks_config *cfg, int scope, struct rd_kafka_conf_s *conf,
                          char *errbuf, size_t errsize)
{
    for (size_t i = 0; i < cfg->n_kafka; i++) {
        const ks_kafka_prop_t *p = &cfg->kafka[i];
        if (p->scope != KS_KAFKA_BOTH && p->scope != scope)
            continue;
        char kerr[256];
        if (rd_kafka_conf_set(conf, p->name, p->value, kerr, sizeof(kerr)) != RD_KAFKA_CONF_OK)
            return ks_err(errbuf, errsize, KS_EINVAL, "%s: kafka.%s: %s", cfg->path, p->name, kerr);
    }
    return KS_OK;
}

static char *resolve_relative(const char *config_path, const char *p)
{
    if (p[0] == '/')
        return ks_xstrdup(p);
    const char *slash = strrchr(config_path, '/');
    if (!slash)
        return ks_xstrdup(p);
    size_t dl = (size_t)(slash - config_path);
    char *out = ks_xmalloc(dl + 1 + strlen(p) + 1);
    memcpy(out, config_path, dl);
    out[dl] = '/';
    strcpy(out + dl + 1, p);
    return out;
}

static int check_declared(const struct ks_config *cfg, ks_node_t *root, const char *key,
                          const char *field, char *errbuf, size_t errsize)
{
    if (ks_schema_find(cfg->schema, field) >= 0)
        return KS_OK;
    ks_node_t *n = NULL;
    lookup(root, key, &n, NULL, 0);
    if (n)
        return ks_node_err(n, errbuf, errsize, "field '%s' is not declared under input.fields",
                           field);
    return ks_err(errbuf, errsize, KS_EINVAL, "%s: %s: field '%s' is not declared under input.fields",
                  cfg->path, key, field);
}

static int config_load(const char *path, const char *text, size_t len, const char *const *sets,
                       size_t n_sets, ks_config_t **out, char *errbuf, size_t errsize)
{
    int rc;
    struct ks_config *cfg = ks_xcalloc(1, sizeof(*cfg));
    cfg->path = ks_xstrdup(path);
    ks_node_t *n;

    if (text)
        rc = ks_node_parse_string(cfg->path, text, len, &cfg->root, errbuf, errsize);
    else
        rc = ks_node_parse_file(cfg->path, &cfg->root, errbuf, errsize);
    if (rc)
        goto out;
    static const char *const flat[] = {"kafka", "kafka.consumer", "kafka.producer", NULL};
    for (size_t i = 0; i < n_sets; i++)
        if ((rc = ks_node_set(cfg->root, sets[i], flat, errbuf, errsize)))
            goto out;

    FOR_EACH_KEY(k) {
        if ((rc = lookup(cfg->root, k->key, &n, errbuf, errsize)))
            goto out;
        if (n)
            rc = apply_key(cfg, k, n, errbuf, errsize);
        else if (k->required)
            rc = ks_err(errbuf, errsize, KS_EINVAL, "%s: missing required key '%s' (%s)",
                        cfg->path, k->key, k->desc);
        else if (k->dflt)
            rc = apply_default(cfg, k, cfg->path, errbuf, errsize);
        if (rc)
            goto out;
    }

    if ((n = ks_node_get(cfg->root, "kafka")) &&
        (rc = add_kafka_props(cfg, n, KS_KAFKA_BOTH, errbuf, errsize)))
        goto out;

    if ((rc = lookup(cfg->root, "input.fields", &n, errbuf, errsize)))
        goto out;
    if (!n) {
        rc = ks_err(errbuf, errsize, KS_EINVAL,
                    "%s: missing required key 'input.fields' (the event fields to read)", cfg->path);
        goto out;
    }
    if ((rc = ks_schema_parse(n, &cfg->schema, errbuf, errsize)))
        goto out;

    /* stages with sections of their own; they may add virtual fields that
     * the features below use by name */
    for (size_t i = 0; i < ks_stage_types_n; i++)
        if (ks_stage_types[i]->configure &&
            (rc = ks_stage_types[i]->configure(cfg, cfg->root, &cfg->stage_conf[i], errbuf,
                                               errsize)))
            goto out;

    if (!(n = ks_node_get(cfg->root, "features"))) {
        rc = ks_err(errbuf, errsize, KS_EINVAL,
                    "%s: missing required key 'features' (the model's inputs)", cfg->path);
        goto out;
    }
    if ((rc = ks_features_parse(n, cfg->schema, &cfg->features, errbuf, errsize)))
        goto out;

    if (cfg->output_id_field &&
        (rc = check_declared(cfg, cfg->root, "output.id_field", cfg->output_id_field, errbuf,
                             errsize)))
        goto out;
    for (size_t i = 0; i < cfg->output_carry_fields.n; i++)
        if ((rc = check_declared(cfg, cfg->root, "output.carry_fields",
                                 cfg->output_carry_fields.items[i], errbuf, errsize)))
            goto out;
    if (cfg->input_topics.n == 0) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "%s: input.topics: at least one topic is needed",
                    cfg->path);
        goto out;
    }

    if (strcmp(cfg->mode, "passthrough") == 0 && strcmp(cfg->delivery, "exactly_once") == 0) {
        lookup(cfg->root, "delivery", &n, NULL, 0);
        rc = n ? ks_node_err(n, errbuf, errsize, "exactly_once is not available with mode: "
                             "passthrough (a baseline that copies records with at-least-once)")
               : ks_err(errbuf, errsize, KS_EINVAL, "%s: delivery: exactly_once is not "
                        "available with mode: passthrough", cfg->path);
        goto out;
    }
    if (!(cfg->feature_log_sample_rate >= 0 && cfg->feature_log_sample_rate <= 1)) {
        lookup(cfg->root, "feature_log.sample_rate", &n, NULL, 0);
        rc = n ? ks_node_err(n, errbuf, errsize, "must be between 0 and 1")
               : ks_err(errbuf, errsize, KS_EINVAL, "%s: feature_log.sample_rate must be "
                        "between 0 and 1", cfg->path);
        goto out;
    }

    if ((rc = ks_node_check_unused(cfg->root, errbuf, errsize)))
        goto out;

    if (cfg->model_path) {
        char *mp = resolve_relative(cfg->path, cfg->model_path);
        free(cfg->model_path);
        cfg->model_path = mp;
    }
    ks_log_set_level((ks_log_level_t)ks_log_level_parse(cfg->log_level));
    ks_log_set_format((ks_log_format_t)ks_log_format_parse(cfg->log_format));
out:
    if (rc) {
        ks_config_free(cfg);
        cfg = NULL;
    }
    *out = cfg;
    return rc;
}

int ks_config_load(const char *path, const char *const *sets, size_t n_sets, ks_config_t **out,
                   char *errbuf, size_t errsize)
{
    return config_load(path, NULL, 0, sets, n_sets, out, errbuf, errsize);
}

int ks_config_load_text(const char *name, const char *text, size_t len, ks_config_t **out,
                        char *errbuf, size_t errsize)
{
    return config_load(name, text, len, NULL, 0, out, errbuf, errsize);
}

static void strlist_free(ks_strlist_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
}

void ks_config_free(ks_config_t *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_kafka; i++) {
        free(cfg->kafka[i].name);
        free(cfg->kafka[i].value);
    }
    free(cfg->kafka);
    FOR_EACH_KEY(k) {
        char *base = (char *)cfg;
        if (k->type == KS_CONF_STRLIST)
            strlist_free((ks_strlist_t *)(base + k->offset));
        else if (k->type == KS_CONF_STRING || k->type == KS_CONF_ENUM)
            free(*(char **)(base + k->offset));
    }
    for (size_t i = 0; i < ks_stage_types_n; i++)
        if (cfg->stage_conf[i] && ks_stage_types[i]->conf_free)
            ks_stage_types[i]->conf_free(cfg->stage_conf[i]);
    if (cfg->schema)
        ks_schema_free(cfg->schema);
    if (cfg->features)
        ks_features_free(cfg->features);
    ks_node_free(cfg->root);
    free(cfg->path);
    free(cfg);
}
