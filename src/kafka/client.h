/*
 * client.h - creating librdkafka clients with the callbacks every kscore
 * client shares: logs into ks_log, errors counted and classified (a fatal
 * error stops the pipeline), statistics and broker events handed to an
 * observer (obs/kafka_stats.c subscribes; the engine does not know it).
 *
 * A client's opaque is its owner's ks_kafka_ctx_t: the worker embeds one
 * and reaches itself through `owner` in its own callbacks (delivery reports,
 * rebalances, commit results), which run on the worker's thread.
 */
#ifndef KS_KAFKA_CLIENT_H
#define KS_KAFKA_CLIENT_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "base/metrics.h"

typedef enum { KS_KCLIENT_CONSUMER, KS_KCLIENT_PRODUCER } ks_kclient_t;

/* Who watches the clients (obs/kafka_stats.c). Callbacks run on worker
 * threads and must only queue or copy. All optional. */
typedef struct ks_kafka_observer {
    void *opaque;
    int stats_interval_ms;   /* 0: no statistics */
    void (*stats)(void *opaque, int worker, ks_kclient_t client, const char *json, size_t len);
    void (*assignment)(void *opaque, int worker, const rd_kafka_topic_partition_list_t *parts);
    void (*broker)(void *opaque, int worker, ks_kclient_t client, int up);
} ks_kafka_observer_t;

typedef struct ks_kafka_ctx {
    char name[32];                   /* "worker-3", for log lines */
    int worker;
    const ks_kafka_observer_t *obs;  /* may be NULL */
    ks_counter_t *errors;            /* transient errors reported by librdkafka */
    rd_kafka_t *producer;            /* tells the two clients apart */
    void (*on_fatal)(void *owner, const char *why); /* a fatal client error */
    void *owner;
} ks_kafka_ctx_t;

/* Creates a client of `type` with the shared callbacks and `ctx` as its
 * opaque (`conf` is consumed, also on failure). Returns KS_OK or KS_EKAFKA
 * with a sentence. */
int ks_kafka_client_new(ks_kafka_ctx_t *ctx, rd_kafka_type_t type, rd_kafka_conf_t *conf,
                        rd_kafka_t **out, char *errbuf, size_t errsize);

/* rd_kafka_conf_set with a kscore error sentence. */
int ks_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *errbuf,
                      size_t errsize);

#endif
