/*
 * stage.h - the stage interface and the runner that takes a batch through the
 * pipeline's stages in order:
 *
 *   decode -> [lookups] -> [windows] -> features -> [route] -> model -> [drift]
 *   -> [evaluation] -> encode
 *
 * A stage is a `const ks_stage_type_t` in a file of its own under
 * engine/stages/, listed once in the registry (engine/stage.c), in the order
 * it runs. Its scalar config keys are rows of the one config table (they
 * appear in `kscore config-reference` and docs/config.md like every key); a
 * section with structure of its own (a list of windows, of lookups) is parsed
 * by its `configure` callback from the config tree and documented as a
 * section row.
 *
 * Life cycle and threads:
 *   configure    config load (main thread), once, in registry order; may add
 *                virtual fields to the schema (decode/schema.h) that feature
 *                expressions then use by name; *conf is stored in the config
 *   init         ks_pipeline_new (main thread): the shared, read-only part
 *   thread_init  per worker (and for the offline scorer): per-thread state
 *   run          the batch, on that thread; fail rows with ks_batch_fail();
 *                rows already failed must be skipped
 *   on_assign    partitions gained / about to be given up, on the worker's
 *   on_revoke    thread, between batches (on_revoke after the batch in hand
 *                is produced and committed): for partition-local state
 *   flush        between batches, before the worker commits (or sends its
 *                offsets to a transaction) and before a revocation or
 *                shutdown waits for acknowledgements: a stage that writes
 *                records for many batches at once (the windows stage's
 *                changelog) produces what it has deferred, under
 *                ks_offsets_hold so nothing it covers is committed first
 *   thread_free, free   the reverse
 * Every callback but `name` and `run` is optional (NULL). The runner times
 * each stage (kscore_stage_duration_seconds{stage="<name>"}).
 *
 * Holding a batch (backpressure from a stage). A stage that cannot serve the
 * batch now, and must not serve it degraded (a lookup with `required: true`
 * whose Redis is down), sets b->hold_ms > 0 and b->hold_reason (a sentence
 * that lives as long as the pipeline, e.g. in the stage's conf) and returns
 * without failing rows. The runner runs no further stage. The worker then:
 *   - produces and commits nothing of that batch (acknowledged offsets of
 *     earlier batches are still committed);
 *   - pauses its assigned partitions and keeps serving the consumer (the
 *     group does not evict it; records still arriving are stashed) and the
 *     producer (earlier outputs are acknowledged);
 *   - after hold_ms, resets the batch (ks_batch_reset: rows, arena, hold;
 *     any model reference released) and runs every stage again from the
 *     first: a batch is never half re-run, so a stage's `run` must be
 *     repeatable on the same events (the lookups stage's cache only saves
 *     round trips);
 *   - resumes consumption once the batch passes.
 * While a worker holds a batch, engine/status.h reports it and /readyz is
 * not ready. The offline scorer (`kscore predict`) waits the same way. A
 * revocation or shutdown drain keeps retrying until its deadline, then the
 * events stay uncommitted (their new owner, or the next run, gets them).
 */
#ifndef KS_STAGE_H
#define KS_STAGE_H

#include <librdkafka/rdkafka.h>

#include "base/conftree.h"
#include "engine/batch.h"
#include "engine/config.h"
#include "kafka/offsets.h"

struct ks_pipeline;

/* What a stage's thread sees of its worker. */
typedef struct ks_stage_env {
    struct ks_pipeline *p;
    int worker;               /* worker id; -1 for the offline scorer */
    rd_kafka_t *producer;     /* the worker's producer; NULL offline */
    ks_offsets_t *offsets;    /* the worker's offset tracker, for records that must be
                                 acknowledged before the events they cover are
                                 committed (ks_offsets_hold); NULL offline */
} ks_stage_env_t;

typedef struct ks_stage_type {
    const char *name;                       /* the `stage` label and DLQ header */
    const ks_config_key_t *keys;            /* its rows of the config table */
    size_t n_keys;
    const ks_config_section_t *sections;    /* its structured sections, for the docs */
    size_t n_sections;
    /* Parses its sections from `root` (marking nodes used); *conf = NULL
     * when the stage is not configured (then it is not run). Without a
     * configure callback the stage always runs. */
    int (*configure)(struct ks_config *cfg, ks_node_t *root, void **conf, char *errbuf,
                     size_t errsize);
    void (*conf_free)(void *conf);
    int (*init)(struct ks_pipeline *p, const void *conf, void **ctx, char *errbuf,
                size_t errsize);
    int (*thread_init)(void *ctx, const ks_stage_env_t *env, void **tctx, char *errbuf,
                       size_t errsize);
    void (*run)(void *tctx, ks_batch_t *b);
    void (*on_assign)(void *tctx, const rd_kafka_topic_partition_list_t *parts);
    void (*on_revoke)(void *tctx, const rd_kafka_topic_partition_list_t *parts);
    void (*flush)(void *tctx);
    void (*thread_free)(void *tctx);
    void (*free)(void *ctx);
} ks_stage_type_t;

/* The registry, in run order (engine/stage.c). */
extern const ks_stage_type_t *const ks_stage_types[];
extern const size_t ks_stage_types_n;

/* The pipeline's enabled stages with their shared contexts and timers. */
typedef struct ks_stages ks_stages_t;
int ks_stages_new(struct ks_pipeline *p, ks_stages_t **out, char *errbuf, size_t errsize);
void ks_stages_free(ks_stages_t *s);
size_t ks_stages_count(const ks_stages_t *s);
const char *ks_stages_name(const ks_stages_t *s, size_t i);

/* One thread's instance of every stage. */
typedef struct ks_stage_runner ks_stage_runner_t;
int ks_stage_runner_new(ks_stages_t *s, const ks_stage_env_t *env, ks_stage_runner_t **out,
                        char *errbuf, size_t errsize);
/* Runs the stages over the batch in order, timing each, until one holds it
 * (b->hold_ms > 0: see "Holding a batch" above). */
void ks_stage_runner_run(ks_stage_runner_t *r, ks_batch_t *b);
void ks_stage_runner_assign(ks_stage_runner_t *r, const rd_kafka_topic_partition_list_t *parts);
void ks_stage_runner_revoke(ks_stage_runner_t *r, const rd_kafka_topic_partition_list_t *parts);
void ks_stage_runner_flush(ks_stage_runner_t *r);
void ks_stage_runner_free(ks_stage_runner_t *r);

/* The four stages every scoring pipeline has (engine/stages/). */
extern const ks_stage_type_t ks_stage_decode, ks_stage_features, ks_stage_model,
    ks_stage_encode;
/* Feature-store lookups (engine/stages/lookups.c): between decode and
 * windows in the registry. */
extern const ks_stage_type_t ks_stage_lookups;
/* Window features with durable per-partition state (engine/stages/windows.c):
 * after lookups, so that a batch a lookup holds has not been counted yet (a
 * window's run is not repeatable: no stage after it may hold a batch). */
extern const ks_stage_type_t ks_stage_windows;

/* Model deployments (engine/stages/route.c): each row's variant (champion,
 * canary, A/B) and the shadow; between features and model in the registry. */
extern const ks_stage_type_t ks_stage_route;

/* Drift against the model's training reference (engine/stages/drift.c):
 * after model, before encode. */
extern const ks_stage_type_t ks_stage_drift;
/* Online evaluation with delayed labels (engine/stages/evaluation.c): after
 * drift. */
extern const ks_stage_type_t ks_stage_evaluation;

#endif
