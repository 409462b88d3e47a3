/*
 * produce.h - producing records and dead letters, and telling apart errors
 * that fail one record from errors that stop the pipeline.
 *
 * Dead letters keep the original key, value and headers and add
 *   __kscore.errors.class      deserialization | missing_field | type_mismatch |
 *                              feature | inference | delivery
 * (class delivery: the value is the output record that could not be
 * written, not the input event)
 *   __kscore.errors.message    a sentence
 *   __kscore.errors.stage      the stage (or sink) that failed the event
 *   __kscore.errors.topic, .partition, .offset   where the event came from
 * A dead letter too large to be written (for the producer's message.max.bytes
 * or the topic's max.message.bytes) is written again with its value cut to
 * its first KS_DEAD_LETTER_TRUNCATED bytes, then with no value, adding
 *   __kscore.errors.truncated      "true"
 *   __kscore.errors.original_size  the value's size in bytes
 * (the whole event is still in the input topic, at the offset the headers
 * name).
 */
#ifndef KS_KAFKA_PRODUCE_H
#define KS_KAFKA_PRODUCE_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>

#define KS_DEAD_LETTER_HDR "__kscore.errors."
#define KS_DEAD_LETTER_TRUNCATED 1024

/* 1 if `err` concerns this record only (too large, invalid): the event fails
 * and the pipeline goes on; 0 if it concerns the topic, the cluster or the
 * client (authorization, unknown topic, fatal idempotence errors): stop.
 * A broker answers a produce request with one error for all its records,
 * so a record refused in a delivery report may be innocent (its batch was
 * too large for the topic, or the transfer was corrupted): the worker
 * writes it again once before it counts as refused (engine/worker.c). */
int ks_kafka_err_is_record_level(rd_kafka_resp_err_t err);

/* 1 if `err` concerns a whole topic or the cluster (authorization, a topic
 * or partition that does not exist): writing the event again cannot help.
 * With delivery: exactly_once such an error stops the pipeline instead of
 * aborting and replaying the transaction forever. */
int ks_kafka_err_is_topic_level(rd_kafka_resp_err_t err);

/* 1 if `m` is a dead letter already written truncated (it carries the
 * __kscore.errors.truncated header). */
int ks_kafka_dead_letter_is_truncated(const rd_kafka_message_t *m);

/* Produces one record (copied) with `token` as its opaque; `hdrs` (may be
 * NULL) is consumed also on failure. partition RD_KAFKA_PARTITION_UA = the
 * partitioner's choice. Returns librdkafka's error: NO_ERROR, _QUEUE_FULL
 * (try again later), or another error (see ks_kafka_err_is_record_level). */
rd_kafka_resp_err_t ks_kafka_produce(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int32_t partition,
                                     const void *key, size_t key_len, const void *val,
                                     size_t val_len, rd_kafka_headers_t *hdrs, uint64_t token);

/* The same without copying the value: librdkafka reads `val` until the
 * message's delivery report, so it must stay valid and unchanged until then
 * (kafka/payloads.h holds it); the key is copied. Used for output records,
 * so that a batch's records are not copied (and malloc'd) one by one. */
rd_kafka_resp_err_t ks_kafka_produce_held(rd_kafka_t *rk, rd_kafka_topic_t *rkt,
                                          int32_t partition, const void *key, size_t key_len,
                                          const void *val, size_t val_len,
                                          rd_kafka_headers_t *hdrs, uint64_t token);

/* A copy of a message's headers (NULL when it has none and extra is 0). */
rd_kafka_headers_t *ks_kafka_headers_copy(const rd_kafka_message_t *m, size_t extra);

/* Why an event is dead-lettered, and where it came from. */
typedef struct ks_dead_letter {
    const char *cls, *message, *stage;
    const char *topic;
    int32_t partition;
    int64_t offset;
    int truncate;      /* the broker refused it before: write it truncated at once,
                          to KS_DEAD_LETTER_TRUNCATED bytes (1) or with no value (2) */
} ks_dead_letter_t;

/* Produces a dead letter: key and value as given, a copy of the headers
 * `orig` (may be NULL) plus the error headers. Too large for the producer:
 * written truncated (see above). Returns like ks_kafka_produce. */
rd_kafka_resp_err_t ks_kafka_produce_dead_letter(rd_kafka_t *rk, rd_kafka_topic_t *dlq,
                                                 const void *key, size_t key_len,
                                                 const void *val, size_t val_len,
                                                 const rd_kafka_headers_t *orig,
                                                 const ks_dead_letter_t *why, uint64_t token);

/* A dead letter whose delivery failed with a record-level error (its key,
 * value and headers, which are consumed): writes it again, truncated one
 * step further (first KS_DEAD_LETTER_TRUNCATED bytes, then no value).
 * Returns RD_KAFKA_RESP_ERR__FAIL when it has no value left to cut (the
 * caller must stop). */
rd_kafka_resp_err_t ks_kafka_dead_letter_truncate(rd_kafka_t *rk, rd_kafka_topic_t *dlq,
                                                  const void *key, size_t key_len,
                                                  const void *val, size_t val_len,
                                                  rd_kafka_headers_t *hdrs, uint64_t token);

#endif
