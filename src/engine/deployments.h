/*
 * deployments.h - the deployments runtime of a pipeline (engine/deployments.c):
 * reads model.deployments_topic from the beginning with an assign-all
 * consumer of its own, folds every message through deploy.h, checks each
 * newly named model file (sha256, load, feature fit, warm-up) before its
 * routing goes into service, writes status records, and runs the guard.
 *
 * Threads: new/free on the main thread (ks_pipeline_new/free); start blocks
 * the main thread until the topic is read to its end (so the first batch
 * is already routed like every other replica), then a thread of its own
 * follows the topic and runs the guard until stop.
 */
#ifndef KS_DEPLOYMENTS_H
#define KS_DEPLOYMENTS_H

#include <stddef.h>

#include "base/buf.h"

struct ks_pipeline;

/* Sets up p->deploy and p->routing: model.path's model is the champion.
 * No Kafka yet. */
int ks_deployments_new(struct ks_pipeline *p, char *errbuf, size_t errsize);
/* Reads the topic to its end, puts the resulting routing in service and
 * starts following it. KS_EKAFKA when the topic cannot be read in time. */
int ks_deployments_start(struct ks_pipeline *p, char *errbuf, size_t errsize);
void ks_deployments_stop(struct ks_pipeline *p);
void ks_deployments_free(struct ks_pipeline *p);

/* Folds one deployment message (JSON) as if read at `offset`, putting the
 * resulting routing in service: what the deployments thread does with each
 * record (without the log line and status record). KS_OK when applied or
 * unchanged; KS_EINVAL when refused, with the reason in *why
 * ("invalid_message", "not_applicable", "unreadable", "sha256_mismatch",
 * "load_failed", "incompatible_outputs", "feature_mismatch",
 * "output_mismatch", "warmup_failed", "warmup_nan") and a sentence in
 * errbuf. Tests; the caller must not race the deployments thread. */
int ks_deployments_apply(struct ks_pipeline *p, const char *json, size_t len, long long offset,
                         const char **why, char *errbuf, size_t errsize);

/* One step of the guard (what the deployments thread does every
 * guard.interval_ms): snapshot, judge, roll back. Tests; without Kafka
 * clients the rollback is applied here only. */
void ks_deployments_guard_tick(struct ks_pipeline *p);

/* Appends the deployment state in service as JSON (deploy.h's shape plus
 * "instance"), or "null" when deployments are off. Any thread. */
void ks_deployments_status_json(struct ks_pipeline *p, ks_buf_t *out);

#endif
