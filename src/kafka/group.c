/*
 * group.c - rebalances, commits and leaving the group (see group.h).
 */
#include "kafka/group.h"
#include "base/common.h"
#include "base/log.h"

#include <string.h>

rd_kafka_resp_err_t ks_kafka_commit(rd_kafka_t *consumer, ks_offsets_t *o, int sync, int all,
                                    const ks_commit_stats_t *st, const char *who)
{
    rd_kafka_topic_partition_list_t *list = ks_offsets_committable(o, all);
    if (!list)
        return RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_resp_err_t err = rd_kafka_commit(consumer, list, sync ? 0 : 1);
    ks_counter_add(st->commits, 1);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        ks_counter_add(st->failures, 1);
        ks_warn("%s: commit failed: %s", who, rd_kafka_err2str(err));
    } else if (sync) {
        ks_offsets_committed(o, list); /* per-partition errors are skipped there */
    }
    rd_kafka_topic_partition_list_destroy(list);
    return err == RD_KAFKA_RESP_ERR__NO_OFFSET ? RD_KAFKA_RESP_ERR_NO_ERROR : err;
}

void ks_kafka_commit_result(ks_offsets_t *o, rd_kafka_resp_err_t err,
                            const rd_kafka_topic_partition_list_t *offsets,
                            const ks_commit_stats_t *st, const char *who)
{
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        ks_counter_add(st->failures, 1);
        ks_warn("%s: offset commit failed: %s (the next commit retries)", who,
                rd_kafka_err2str(err));
        return;
    }
    if (offsets)
        ks_offsets_committed(o, offsets);
}

int ks_kafka_rebalance_apply(rd_kafka_t *consumer, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *parts, const char *who)
{
    const char *protocol = rd_kafka_rebalance_protocol(consumer);
    int cooperative = protocol && strcmp(protocol, "COOPERATIVE") == 0;
    int assign = err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t ret = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (cooperative)
        error = assign ? rd_kafka_incremental_assign(consumer, parts)
                       : rd_kafka_incremental_unassign(consumer, parts);
    else
        ret = rd_kafka_assign(consumer, assign ? parts : NULL);
    if (error) {
        ks_error("%s: rebalance: %s", who, rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
        return -1;
    }
    if (ret) {
        ks_error("%s: rebalance: %s", who, rd_kafka_err2str(ret));
        return -1;
    }
    return 0;
}

int ks_kafka_consumer_close(rd_kafka_t *consumer,
                            void (*on_rebalance)(rd_kafka_t *, rd_kafka_resp_err_t,
                                                 rd_kafka_topic_partition_list_t *, void *),
                            void *opaque, int64_t deadline_ns, const char *who)
{
    /* rd_kafka_consumer_close() alone may block for up to session.timeout.ms
     * when the group is rebalancing; close through a queue instead and stop
     * waiting at the deadline. Everything acknowledged is committed by then;
     * an abandoned close only means the broker evicts the member when its
     * session times out. */
    int abandoned = 0;
    rd_kafka_queue_t *q = rd_kafka_queue_new(consumer);
    rd_kafka_error_t *error = rd_kafka_consumer_close_queue(consumer, q);
    if (error) {
        ks_warn("%s: leaving the group: %s", who, rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
        abandoned = 1;
        goto out;
    }
    while (!rd_kafka_consumer_closed(consumer)) {
        if (ks_now_mono_ns() > deadline_ns) {
            ks_warn("%s: the group did not confirm our leaving in time; the broker will drop "
                    "this member when its session times out", who);
            abandoned = 1;
            break;
        }
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 100);
        if (!ev)
            continue;
        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE)
            on_rebalance(consumer, rd_kafka_event_error(ev),
                         rd_kafka_event_topic_partition_list(ev), opaque);
        rd_kafka_event_destroy(ev);
    }
out:
    rd_kafka_queue_destroy(q);
    return abandoned;
}
