/*
 * kscore.h - the public API of kscore, used by the `kscore` command and by
 * tests. Everything else in src/ is internal.
 *
 * Life cycle:  ks_config_load -> ks_pipeline_new -> [ks_obs_start] ->
 *              ks_pipeline_run (Kafka) or ks_pipeline_predict_stream (offline)
 *              -> [ks_obs_stop] -> ks_pipeline_free -> ks_config_free.
 * Start-up functions take (errbuf, errsize) and write one actionable sentence.
 */
#ifndef KSCORE_H
#define KSCORE_H

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exit codes of the kscore command. */
#define KS_EXIT_OK      0
#define KS_EXIT_RUNTIME 1 /* runtime failure (broker fatal error, I/O) */
#define KS_EXIT_USAGE   2 /* bad usage, config or model */

const char *ks_version(void);

typedef struct ks_config ks_config_t;

/* Loads a YAML config and applies `--set key.path=value` overrides in order.
 * Validates every key (unknown keys, types, ranges, librdkafka properties);
 * errors name file, line and key. Caller frees with ks_config_free. */
int ks_config_load(const char *path, const char *const *sets, size_t n_sets, ks_config_t **out,
                   char *errbuf, size_t errsize);
void ks_config_free(ks_config_t *cfg);
/* Prints the config reference generated from the config table, as text or
 * as the Markdown of docs/config.md. */
void ks_config_print_reference(FILE *out, int markdown);

typedef struct ks_pipeline ks_pipeline_t;

/* Builds a pipeline from a config: loads the model, compiles the features and
 * checks them against the model's feature names. The config must outlive it. */
int ks_pipeline_new(const ks_config_t *cfg, ks_pipeline_t **out, char *errbuf, size_t errsize);
/* Builds a pipeline that only computes features (`kscore features`): the
 * decode, lookups, windows and features stages of ks_pipeline_new, and no
 * model (model.path may be absent; when present it is not read). Use it
 * with ks_pipeline_features_stream only. */
int ks_pipeline_new_features(const ks_config_t *cfg, ks_pipeline_t **out, char *errbuf,
                             size_t errsize);
/* One line describing the pipeline (model, features, topics) for `validate`. */
void ks_pipeline_describe(const ks_pipeline_t *p, FILE *out);
/* Runs against Kafka until ks_pipeline_stop(). Returns KS_EXIT_OK after a clean
 * shutdown or KS_EXIT_RUNTIME. */
int ks_pipeline_run(ks_pipeline_t *p);
/* Asks a running pipeline to stop gracefully. Async-signal-safe. */
void ks_pipeline_stop(ks_pipeline_t *p);
/* Asks a running pipeline to reload model.path and hot-swap it in if it is
 * good (SIGHUP). Async-signal-safe. */
void ks_pipeline_request_reload(ks_pipeline_t *p);
/* Offline: reads JSON events (one per line) from `in`, writes one output record
 * per line to `out`, and dead-letter records (JSON with the error) to `dlq`.
 * The same decode -> features -> model -> encode path as ks_pipeline_run. */
int ks_pipeline_predict_stream(ks_pipeline_t *p, FILE *in, FILE *out, FILE *dlq);
/* Offline, for training sets: reads JSON events (one per line) from `in`
 * through the same stages as ks_pipeline_predict_stream up to the features
 * (window features in file order, lookups from Redis or a snapshot) and
 * writes CSV to `out`: a header, then one row per good event in input order:
 * `id` (the output.id_field value, when one is set), `line` (the event's
 * line in `in`, from 1), then every configured feature column in order,
 * numbers as output.include_features writes them, empty when missing.
 * Dead letters go to `dlq` as for predict. Either pipeline kind works. */
int ks_pipeline_features_stream(ks_pipeline_t *p, FILE *in, FILE *out, FILE *dlq);
/* Checks the cluster (up to timeout_ms): every topic the pipeline reads or
 * writes exists and, with delivery: exactly_once, transactions work.
 * Returns KS_EXIT_OK; KS_EXIT_USAGE when a topic is missing (errbuf names
 * it and how to create it); KS_EXIT_RUNTIME when the cluster did not answer
 * in time or transactions are not available. */
int ks_pipeline_check_topics(ks_pipeline_t *p, int timeout_ms, char *errbuf, size_t errsize);
/* Model deployments (model.deployments_topic, docs/deployments.md). */
/* `kscore deployments`: reads the deployments topic to its end, folding
 * every message exactly as each replica does (model files checked), and
 * prints the state every replica will apply: a summary and one line per
 * message, then the state as one JSON line (only that line with `json`).
 * Returns a KS_EXIT_* code (errbuf says why). */
int ks_pipeline_deployments(ks_pipeline_t *p, FILE *out, int json, char *errbuf,
                            size_t errsize);
/* `kscore deploy`: one deployment message. action: shadow, canary, ab,
 * promote, rollback or retire; model_path (optional) is written as an
 * absolute path with its sha256; percent for canary; variants for ab as
 * "VERSION=PERCENT,...". The message is first tried on the topic's current
 * state as a replica would (model files checked): one every replica would
 * refuse is not written (KS_EXIT_USAGE). Prints the message written. */
typedef struct ks_deploy_request {
    const char *action, *version, *model_path, *variants, *reason;
    double percent;
} ks_deploy_request_t;
int ks_pipeline_deploy(ks_pipeline_t *p, const ks_deploy_request_t *r, FILE *out, char *errbuf,
                       size_t errsize);

/* Frees the pipeline and returns 0; or, when a worker had to be left behind
 * stuck in the Kafka client at shutdown (logged), frees nothing and returns 1:
 * the caller must then keep the config too and just exit. */
int ks_pipeline_free(ks_pipeline_t *p);


/* Observers of a running pipeline (src/obs/): with metrics.enabled, the
 * librdkafka statistics collector and the HTTP endpoint on metrics.listen.
 * Start before ks_pipeline_run (a busy port fails here: exit 2), stop after
 * it returns; the pipeline must outlive them. Main thread. */
typedef struct ks_obs ks_obs_t;
int ks_obs_start(ks_pipeline_t *p, ks_obs_t **out, char *errbuf, size_t errsize);
void ks_obs_stop(ks_obs_t *o);

#ifdef __cplusplus
}
#endif
#endif
