/*
 * group.h - the consumer's side of the group protocol: applying a rebalance
 * (eager or cooperative), committing the acknowledged watermarks
 * (kafka/offsets.h), and leaving the group within a deadline.
 *
 * All on the consumer's owner thread.
 */
#ifndef KS_KAFKA_GROUP_H
#define KS_KAFKA_GROUP_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>

#include "base/metrics.h"
#include "kafka/offsets.h"

typedef struct ks_commit_stats {
    ks_counter_t *commits, *failures;
} ks_commit_stats_t;

/* Commits the watermarks that moved (all: every tracked partition) and
 * returns the librdkafka result. A synchronous commit records its result in
 * the tracker at once; an asynchronous one only when its result arrives
 * (ks_kafka_commit_result from the offset_commit_cb), so a commit counts as
 * done only when the broker said so. */
rd_kafka_resp_err_t ks_kafka_commit(rd_kafka_t *consumer, ks_offsets_t *o, int sync, int all,
                                    const ks_commit_stats_t *st, const char *who);

/* The offset_commit_cb's body: records the partitions committed. */
void ks_kafka_commit_result(ks_offsets_t *o, rd_kafka_resp_err_t err,
                            const rd_kafka_topic_partition_list_t *offsets,
                            const ks_commit_stats_t *st, const char *who);

/* Applies an assignment or revocation from the rebalance callback with the
 * group's protocol (incremental for cooperative). Returns 0 or -1 (logged). */
int ks_kafka_rebalance_apply(rd_kafka_t *consumer, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *parts, const char *who);

/* Leaves the group, serving the final revocation through `on_rebalance`,
 * until deadline_ns (monotonic). Returns 0, or 1 when the group did not
 * confirm in time (the consumer must then be destroyed with
 * RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE). */
int ks_kafka_consumer_close(rd_kafka_t *consumer,
                            void (*on_rebalance)(rd_kafka_t *, rd_kafka_resp_err_t,
                                                 rd_kafka_topic_partition_list_t *, void *),
                            void *opaque, int64_t deadline_ns, const char *who);

#endif
