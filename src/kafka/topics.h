/*
 * topics.h - asking the cluster whether topics exist, at start-up, so a
 * missing topic is a clear error naming it instead of a pipeline that
 * pauses and fails 30 s later with "Unknown topic or partition".
 */
#ifndef KS_KAFKA_TOPICS_H
#define KS_KAFKA_TOPICS_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

/* One topic to check and what it is for ("input.topics", "output.topic"). */
typedef struct ks_topic_use {
    const char *topic, *role;
} ks_topic_use_t;

/* Asks the cluster (a short-lived producer from `conf`, consumed) for the
 * metadata of every topic, within timeout_ms. Returns KS_OK; KS_EINVAL when
 * a topic does not exist (errbuf names it, its role, and how to create it);
 * KS_EKAFKA when the cluster did not answer. Never creates a topic. */
int ks_kafka_check_topics(rd_kafka_conf_t *conf, const ks_topic_use_t *uses, size_t n,
                          int timeout_ms, char *errbuf, size_t errsize);

#endif
