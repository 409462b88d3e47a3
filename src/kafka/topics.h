/*
 * topics.h - asking the cluster whether topics exist, at start-up, so a
 * missing topic is a clear error naming it instead of a pipeline that
 * pauses and fails 30 s later with "Unknown topic or partition"; and how
 * large a batch the topics kscore writes accept (max.message.bytes), so
 * that the producer never sends a batch of records that are each fine but
 * together too large: the broker would refuse every record in it.
 */
#ifndef KS_KAFKA_TOPICS_H
#define KS_KAFKA_TOPICS_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

/* One topic to check and what it is for ("input.topics", "output.topic"). */
typedef struct ks_topic_use {
    const char *topic, *role;
    int written;          /* kscore produces to it: read its max.message.bytes */
    int64_t max_bytes;    /* set by the check: that limit (the topic's setting or
                             the broker's default); 0 = not written or unknown */
} ks_topic_use_t;

/* Asks the cluster (a short-lived producer from `conf`, consumed) for the
 * metadata of every topic, within timeout_ms, then (DescribeConfigs) the
 * max.message.bytes of the written ones. Returns KS_OK; KS_EINVAL when a
 * topic does not exist (errbuf names it, its role, and how to create it);
 * KS_EKAFKA when the cluster did not answer. A limit that cannot be read
 * (no DescribeConfigs permission, an old broker) is logged and left 0: not
 * an error. Never creates a topic. */
int ks_kafka_check_topics(rd_kafka_conf_t *conf, ks_topic_use_t *uses, size_t n, int timeout_ms,
                          char *errbuf, size_t errsize);

#endif
