/*
 * txn.h - Kafka transactions for delivery: exactly_once: one transaction
 * holds a worker's outputs, dead letters and the input offsets they cover
 * (sent with the consumer's group metadata, so a zombie whose group
 * generation is stale cannot commit: KIP-447).
 *
 * Every call classifies librdkafka's error the way the transactional API
 * asks: retriable errors are retried until the deadline, abortable ones
 * abort the transaction (the caller rewinds the consumer to the committed
 * offsets and processes the events again), fatal ones (fenced by a newer
 * instance with the same transactional.id, fatal idempotence errors) stop.
 * On the worker's thread.
 */
#ifndef KS_KAFKA_TXN_H
#define KS_KAFKA_TXN_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>

#define KS_TXN_ABORT_BUDGET_MS 30000 /* an abort may take this long at least */

typedef enum {
    KS_TXN_OK,
    KS_TXN_ABORTED, /* the transaction was aborted: rewind and process again */
    KS_TXN_FATAL,   /* the producer cannot go on (logged): stop */
} ks_txn_result_t;

/* rd_kafka_init_transactions: fences older producers with the same
 * transactional.id and aborts their open transaction. */
int ks_kafka_txn_init(rd_kafka_t *producer, int timeout_ms, char *errbuf, size_t errsize);
/* Checks that the cluster supports transactions: a short-lived producer
 * from `conf` (consumed) with a throwaway transactional.id initializes them
 * within timeout_ms. KS_OK or KS_EKAFKA with a sentence. */
int ks_kafka_txn_probe(rd_kafka_conf_t *conf, const char *txn_id, int timeout_ms, char *errbuf,
                       size_t errsize);

ks_txn_result_t ks_kafka_txn_begin(rd_kafka_t *producer, const char *who);
/* Sends `offsets` (may be NULL) with the consumer's group metadata, then
 * commits; on an abortable error aborts and returns KS_TXN_ABORTED.
 * Retriable errors are retried until deadline_ns (then KS_TXN_FATAL). */
ks_txn_result_t ks_kafka_txn_commit(rd_kafka_t *producer, rd_kafka_t *consumer,
                                    const rd_kafka_topic_partition_list_t *offsets,
                                    int64_t deadline_ns, const char *who);
ks_txn_result_t ks_kafka_txn_abort(rd_kafka_t *producer, int64_t deadline_ns, const char *who);

#endif
