/*
 * kafka_stats.h - librdkafka's statistics JSON turned into gauges, and the
 * Kafka half of readiness.
 *
 * Every worker's consumer and producer emit statistics every
 * statistics.interval.ms (kafka/client.c sets 5000 unless the kafka: section
 * says otherwise). The stats callback runs on the worker thread, so it only
 * copies the JSON and queues it (ks_kstats_submit); a collector thread of
 * this module parses it with the project's JSON DOM and sets:
 *
 *   kscore_consumer_lag{topic,partition}       messages behind the log end,
 *                                              assigned partitions only
 *   kscore_assigned_partitions                 partitions held by all workers
 *   kscore_broker_rtt_seconds{client,broker,stat}   stat = avg | p99
 *   kscore_broker_connected{client,broker}     1 while the connection is UP
 *   kscore_producer_queue_bytes{worker}        bytes waiting in the producer
 *   kscore_producer_queue_max_messages{worker} the queue's capacity
 *
 * The assignment comes from the rebalance callback (ks_kstats_assignment)
 * rather than the statistics, so it is exact at once and revoked partitions'
 * lag disappears immediately (ks_metrics_gauge_reset). Broker reachability
 * comes from the statistics (any connection UP) and from the error callback
 * (all brokers down), see ks_kstats_reachable.
 *
 * The collector thread also flushes the logger's "(repeated N times)"
 * summaries once a second (ks_log_flush_repeats).
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef KS_KAFKA_STATS_H
#define KS_KAFKA_STATS_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "base/buf.h"
#include "kafka/client.h"

typedef struct ks_kstats ks_kstats_t;


/* Creates the collector for n_workers workers and starts its thread.
 * Returns KS_OK or KS_EIO with a sentence in errbuf. Free with ks_kstats_free. */
int ks_kstats_new(int n_workers, ks_kstats_t **out, char *errbuf, size_t errsize);
/* Stops the thread, drops queued statistics. NULL is fine. */
void ks_kstats_free(ks_kstats_t *ks);

/* Queues a copy of one statistics JSON document (the stats_cb body: a malloc
 * and a memcpy; when the collector is 16 documents behind, the document is
 * dropped). */
void ks_kstats_submit(ks_kstats_t *ks, int worker, ks_kclient_t client, const char *json,
                      size_t len);
/* Parses and applies one document now, on the calling thread (the collector
 * uses it; tests too). Returns KS_OK or KS_EINVAL if it is not the JSON
 * librdkafka writes. */
int ks_kstats_apply(ks_kstats_t *ks, int worker, ks_kclient_t client, const char *json,
                    size_t len);

/* The worker's assignment after a rebalance (NULL or empty: none). */
void ks_kstats_assignment(ks_kstats_t *ks, int worker,
                          const rd_kafka_topic_partition_list_t *assignment);
/* The client saw all brokers go down (up = 0), or reached one (up = 1). */
void ks_kstats_broker_event(ks_kstats_t *ks, int worker, ks_kclient_t client, int up);

/* Partitions currently assigned to all workers together. */
int ks_kstats_assigned(ks_kstats_t *ks);
/* 1 if no client reports that it cannot reach any broker, else 0 with a
 * sentence saying which client and since when appended to `why` (may be NULL). */
int ks_kstats_reachable(ks_kstats_t *ks, ks_buf_t *why);
/* Appends {"assigned":N,"partitions":[{worker,topic,partition,lag}],
 * "brokers":[{client,broker,state,rtt_avg_ms,rtt_p99_ms}]} (lag -1 = not
 * known yet). */
void ks_kstats_json(ks_kstats_t *ks, ks_buf_t *out);

/* The observer that feeds this collector from the workers' clients
 * (statistics every 5 s unless the kafka: section sets
 * statistics.interval.ms). */
ks_kafka_observer_t ks_kstats_observer(ks_kstats_t *ks);

#endif
