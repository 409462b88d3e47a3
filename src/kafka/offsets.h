/*
 * offsets.h - per-partition tracking of which consumed events have had their
 * output (prediction or dead-letter record) acknowledged by the broker, and
 * so which offset may safely be committed.
 *
 * For each assigned partition the tracker keeps, in consumption order, the
 * offsets still in flight. The commit watermark is the offset of the oldest
 * event not yet acknowledged (everything before it is done), or last consumed
 * offset + 1 when nothing is in flight. A commit therefore never covers an
 * event whose output the broker has not acknowledged, whatever order the
 * acknowledgements arrive in.
 *
 * ks_offsets_track() returns a token that goes into the produced message's
 * opaque; ks_offsets_ack(token) marks it done. Tokens of revoked partitions
 * are recognised (generation) and ignored.
 *
 * One tracker set per worker thread; not thread-safe (delivery reports are
 * served by the worker's own rd_kafka_poll()).
 */
#ifndef KS_OFFSETS_H
#define KS_OFFSETS_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>

typedef struct ks_offsets ks_offsets_t;

ks_offsets_t *ks_offsets_new(void);
void ks_offsets_free(ks_offsets_t *o);

/* Starts tracking a partition (on assignment). Idempotent. */
void ks_offsets_assign(ks_offsets_t *o, const char *topic, int32_t partition);
/* Stops tracking a partition (after its final commit on revocation). */
void ks_offsets_revoke(ks_offsets_t *o, const char *topic, int32_t partition);
/* Stops tracking all partitions. */
void ks_offsets_revoke_all(ks_offsets_t *o);

/* Records a consumed event; returns its token (never 0). A partition that is
 * not assigned is assigned implicitly. `stamp` is kept with the event and
 * handed back by ks_offsets_ack (the engine keeps the input timestamp there
 * for the end-to-end latency metric). */
uint64_t ks_offsets_track(ks_offsets_t *o, const char *topic, int32_t partition, int64_t offset,
                          int64_t stamp);
/* A hold: keeps the partition's watermark at or below `offset` until its
 * token is acknowledged, whatever the events' acknowledgements say. It rides
 * as the opaque of a record that must be durable before the events from
 * `offset` on may be committed (a window state's changelog record). It
 * counts as in flight. */
uint64_t ks_offsets_hold(ks_offsets_t *o, const char *topic, int32_t partition, int64_t offset);
/* Marks an event's output (or a hold's record) acknowledged. Returns 1 and sets *stamp when the
 * token was in flight; 0 for unknown, stale or repeated tokens. */
int ks_offsets_ack(ks_offsets_t *o, uint64_t token, int64_t *stamp);

/* Returns a list of (topic, partition, watermark) for partitions whose
 * watermark moved since the last ks_offsets_committed() (all of them when
 * `all` is set), or NULL if there is nothing to commit. Caller destroys it. */
/* Exactly-once, after an aborted transaction: where each partition must be
 * consumed again from (the last committed offset, or the first offset
 * tracked since assignment). NULL when none; the caller destroys it. */
rd_kafka_topic_partition_list_t *ks_offsets_rewind_points(ks_offsets_t *o);

/* The source position of an in-flight token (for dead letters written from a
 * delivery report); 0 if the token is not in flight. `topic` is owned by the
 * tracker and valid until the partition is revoked. */
int ks_offsets_source(ks_offsets_t *o, uint64_t token, const char **topic, int32_t *partition,
                      int64_t *offset);

rd_kafka_topic_partition_list_t *ks_offsets_committable(ks_offsets_t *o, int all);
/* Records that the offsets in `list` were committed. */
void ks_offsets_committed(ks_offsets_t *o, const rd_kafka_topic_partition_list_t *list);

/* Events tracked but not yet acknowledged, over all partitions. */
uint64_t ks_offsets_in_flight(const ks_offsets_t *o);

#endif
