/*
 * sink.h - where a batch's rows go once the stages are done. A sink is a
 * `const ks_sink_type_t` in a file of its own under engine/sinks/:
 *
 *   output       a good row's record to output.topic
 *   dead_letter  a failed row's input record, with __kscore.errors.* headers,
 *                to dead_letter.topic
 *   feature_log  a sample of good rows' model inputs to feature_log.topic
 *   passthrough  mode passthrough: the input record to output.topic as is
 *   shadow       the shadow model's record of a good row to shadow.topic
 *
 * The worker (engine/worker.c) writes every row to exactly one of output,
 * dead_letter or passthrough, with the row's offsets token as the message
 * opaque, so the offset is committed only once that record is acknowledged;
 * feature_log samples and shadow records carry no token. Like stages, a sink's config keys are
 * rows of the config table.
 *
 * Threads: init, write and free run on the worker's thread; a sink instance
 * belongs to one worker.
 */
#ifndef KS_SINK_H
#define KS_SINK_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>

#include "engine/batch.h"
#include "engine/config.h"

struct ks_pipeline;

typedef struct ks_sink_env {
    struct ks_pipeline *p;
    int worker;
    rd_kafka_t *producer;
    long queue_max;          /* the producer's queue.buffering.max.messages */
} ks_sink_env_t;

/* write() results besides KS_OK and KS_EKAFKA (fatal: logged, the pipeline
 * stops without committing the row). A record-level refusal is not an error
 * here: the sink dead-letters what it could not write (kafka/produce.h). */
#define KS_SINK_QUEUE_FULL 1 /* the producer queue is full: write the row again later */

typedef struct ks_sink_type {
    const char *name;
    const ks_config_key_t *keys;  /* its rows of the config table */
    size_t n_keys;
    /* Sets the sink up for one worker; *ctx = NULL when it is off. */
    int (*init)(const ks_sink_env_t *env, void **ctx, char *errbuf, size_t errsize);
    /* Writes row i of the batch; `token` rides as the message opaque. */
    int (*write)(void *ctx, ks_batch_t *b, size_t i, uint64_t token);
    /* For delivery reports: 1 if the message is one of this sink's that
     * carries no token (it was accounted for here), else 0. Optional. */
    int (*delivered)(void *ctx, const rd_kafka_message_t *m);
    void (*free)(void *ctx);
} ks_sink_type_t;

extern const ks_sink_type_t ks_sink_output, ks_sink_dead_letter, ks_sink_feature_log,
    ks_sink_passthrough, ks_sink_shadow;

/* Every sink type, for the config table (engine/sink.c). */
extern const ks_sink_type_t *const ks_sink_types[];
extern const size_t ks_sink_types_n;

#endif
