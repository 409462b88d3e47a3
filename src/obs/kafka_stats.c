/*
 * kafka_stats.c - librdkafka statistics -> gauges, assignment and broker
 * reachability for /readyz (see kafka_stats.h).
 *
 * The worker threads only hand over a copy of each statistics document; all
 * parsing happens on the collector thread, so the hot loop pays a memcpy
 * every statistics.interval.ms and nothing else. State (per worker: the
 * assignment with the last known lag per partition, and per client: broker
 * connection states) lives under one mutex; the gauges are the registry's.
 *
 * Lag per partition is librdkafka's consumer_lag: the log end (high
 * watermark, or last stable offset under read_committed) minus the committed
 * offset. Before the group's first commit it is unknown to librdkafka; then
 * the end minus the consumer's position stands in, which is what a commit
 * would make of it at most one commit interval later.
 */
#include "obs/kafka_stats.h"
#include "base/common.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/json.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_QUEUED 16

typedef struct part {
    char *topic;
    int32_t partition;
    int64_t lag; /* -1 = not known yet */
} part_t;

typedef struct broker {
    char name[128];
    char state[16];
    double rtt_avg_s, rtt_p99_s;
} broker_t;

typedef struct client {
    int up;               /* -1 unknown, 0 no broker reachable, 1 some connection UP */
    int64_t up_since_ms;  /* when `up` last changed */
    broker_t *brokers;    /* from the last statistics */
    size_t n_brokers;
} client_t;

typedef struct wstate {
    part_t *parts;        /* the current assignment */
    size_t n_parts;
    client_t cl[2];       /* KS_KCLIENT_CONSUMER, KS_KCLIENT_PRODUCER */
    ks_gauge_t *queue_bytes, *queue_max;
} wstate_t;

typedef struct item {
    struct item *next;
    int worker;
    ks_kclient_t client;
    size_t len;
    char json[];
} item_t;

struct ks_kstats {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    int thread_started, stopping;
    item_t *head, **tail;
    size_t n_queued;
    int n_workers;
    wstate_t *w;
    ks_metric_family_t *lag, *rtt, *connected;
    ks_gauge_t *assigned;
    ks_counter_t *stats_dropped;
};

static const char *client_name(ks_kclient_t c)
{
    return c == KS_KCLIENT_CONSUMER ? "consumer" : "producer";
}

/* ---- lag gauges (callers hold ks->lock) ------------------------------- */

static void publish_lag_locked(ks_kstats_t *ks)
{
    int total = 0;
    ks_metrics_gauge_reset(ks->lag);
    for (int i = 0; i < ks->n_workers; i++) {
        const wstate_t *w = &ks->w[i];
        total += (int)w->n_parts;
        for (size_t k = 0; k < w->n_parts; k++) {
            const part_t *p = &w->parts[k];
            char num[16];
            snprintf(num, sizeof(num), "%d", (int)p->partition);
            const char *v[] = {p->topic, num};
            /* from the assignment on; NaN until the first statistics say */
            ks_gauge_set(ks_metrics_gauge_at(ks->lag, v), p->lag < 0 ? NAN : (double)p->lag);
        }
    }
    ks_gauge_set(ks->assigned, total);
}

static void set_up_locked(client_t *c, int up)
{
    if (c->up != up)
        c->up_since_ms = ks_now_wall_ms();
    c->up = up;
}

/* ---- parsing ---------------------------------------------------------- */

static int64_t num_i64(const ks_json_t *obj, const char *key, int64_t dflt)
{
    const ks_json_t *v = ks_json_get(obj, key);
    return ks_json_is(v, KS_JSON_NUMBER) ? (int64_t)ks_json_num(v, 0) : dflt;
}

int ks_kstats_apply(ks_kstats_t *ks, int worker, ks_kclient_t client, const char *json,
                    size_t len)
{
    ks_json_t *root = NULL;
    char err[256];
    if (worker < 0 || worker >= ks->n_workers)
        return KS_EINVAL;
    if (ks_json_parse(json, len, &root, err, sizeof(err)))
        return KS_EINVAL;
    if (!ks_json_is(root, KS_JSON_OBJECT)) {
        ks_json_free(root);
        return KS_EINVAL;
    }
    char label[48];
    snprintf(label, sizeof(label), "worker-%d/%s", worker, client_name(client));

    /* brokers: connection state and round-trip time (microseconds) */
    const ks_json_t *brokers = ks_json_get(root, "brokers");
    size_t nb = ks_json_len(brokers);
    broker_t *list = ks_xcalloc(nb ? nb : 1, sizeof(*list));
    size_t n_list = 0;
    int any_up = 0;
    for (size_t i = 0; ks_json_is(brokers, KS_JSON_OBJECT) && i < nb; i++) {
        const ks_json_t *b = ks_json_at(brokers, i);
        const char *state = ks_json_str(ks_json_get(b, "state"));
        const char *source = ks_json_str(ks_json_get(b, "source"));
        int up = state && strcmp(state, "UP") == 0;
        any_up |= up;
        if ((source && strcmp(source, "logical") == 0) || num_i64(b, "nodeid", -1) < 0)
            continue; /* the group coordinator alias, bootstrap placeholders */
        const ks_json_t *rtt = ks_json_get(b, "rtt");
        broker_t *e = &list[n_list++];
        snprintf(e->name, sizeof(e->name), "%s", ks_json_key(b) ? ks_json_key(b) : "?");
        snprintf(e->state, sizeof(e->state), "%s", state ? state : "?");
        e->rtt_avg_s = ks_json_num(ks_json_get(rtt, "avg"), 0) / 1e6;
        e->rtt_p99_s = ks_json_num(ks_json_get(rtt, "p99"), 0) / 1e6;
        const char *v[] = {label, e->name, "avg"};
        ks_gauge_set(ks_metrics_gauge_at(ks->rtt, v), e->rtt_avg_s);
        v[2] = "p99";
        ks_gauge_set(ks_metrics_gauge_at(ks->rtt, v), e->rtt_p99_s);
        const char *cv[] = {label, e->name};
        ks_gauge_set(ks_metrics_gauge_at(ks->connected, cv), up);
    }

    pthread_mutex_lock(&ks->lock);
    wstate_t *w = &ks->w[worker];
    client_t *c = &w->cl[client];
    free(c->brokers);
    c->brokers = list;
    c->n_brokers = n_list;
    if (ks_json_len(brokers))
        set_up_locked(c, any_up);

    if (client == KS_KCLIENT_PRODUCER) {
        ks_gauge_set(w->queue_bytes, (double)num_i64(root, "msg_size", 0));
        ks_gauge_set(w->queue_max, (double)num_i64(root, "msg_max", 0));
    } else {
        /* lag of the partitions this worker holds */
        const ks_json_t *topics = ks_json_get(root, "topics");
        int changed = 0;
        for (size_t k = 0; k < w->n_parts; k++) {
            part_t *p = &w->parts[k];
            const ks_json_t *t = ks_json_get(ks_json_get(topics, p->topic), "partitions");
            char num[16];
            snprintf(num, sizeof(num), "%d", (int)p->partition);
            const ks_json_t *s = ks_json_get(t, num);
            if (!s)
                continue;
            int64_t lag = num_i64(s, "consumer_lag", -1);
            if (lag < 0) {
                int64_t end = num_i64(s, "hi_offset", -1), pos = num_i64(s, "app_offset", -1);
                if (end >= 0 && pos >= 0)
                    lag = end > pos ? end - pos : 0;
            }
            if (lag != p->lag) {
                p->lag = lag;
                changed = 1;
            }
        }
        if (changed)
            publish_lag_locked(ks);
    }
    pthread_mutex_unlock(&ks->lock);
    ks_json_free(root);
    return KS_OK;
}

/* ---- the collector thread --------------------------------------------- */

static void *collector_main(void *arg)
{
    ks_kstats_t *ks = arg;
    pthread_mutex_lock(&ks->lock);
    while (!ks->stopping) {
        if (!ks->head) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&ks->wake, &ks->lock, &ts);
            pthread_mutex_unlock(&ks->lock);
            ks_log_flush_repeats(0);
            pthread_mutex_lock(&ks->lock);
            continue;
        }
        item_t *it = ks->head;
        ks->head = it->next;
        if (!ks->head)
            ks->tail = &ks->head;
        ks->n_queued--;
        pthread_mutex_unlock(&ks->lock);
        if (ks_kstats_apply(ks, it->worker, it->client, it->json, it->len))
            ks_warn("worker-%d: the %s's statistics are not valid JSON; ignored", it->worker,
                    client_name(it->client));
        free(it);
        pthread_mutex_lock(&ks->lock);
    }
    pthread_mutex_unlock(&ks->lock);
    return NULL;
}

int ks_kstats_new(int n_workers, ks_kstats_t **out, char *errbuf, size_t errsize)
{
    ks_kstats_t *ks = ks_xcalloc(1, sizeof(*ks));
    pthread_mutex_init(&ks->lock, NULL);
    pthread_cond_init(&ks->wake, NULL);
    ks->tail = &ks->head;
    ks->n_workers = n_workers;
    ks->w = ks_xcalloc(n_workers > 0 ? (size_t)n_workers : 1, sizeof(*ks->w));
    ks->lag = ks_metrics_gauge("kscore_consumer_lag",
                               "Records behind the partition's end (committed offset to high "
                               "watermark), for the partitions this process holds.",
                               "topic,partition");
    ks->assigned = ks_metrics_gauge0(ks_metrics_gauge(
        "kscore_assigned_partitions", "Input partitions assigned to this process's workers.", NULL));
    ks->rtt = ks_metrics_gauge("kscore_broker_rtt_seconds",
                               "Broker round-trip time over the last statistics window, by "
                               "client (consumer RTT includes fetch long-polls) and stat "
                               "(avg, p99).",
                               "client,broker,stat");
    ks->connected = ks_metrics_gauge("kscore_broker_connected",
                                     "1 while the client's connection to the broker is up.",
                                     "client,broker");
    ks_metric_family_t *qb = ks_metrics_gauge(
        "kscore_producer_queue_bytes", "Bytes of records waiting in the producer queue.", "worker");
    ks_metric_family_t *qm = ks_metrics_gauge(
        "kscore_producer_queue_max_messages",
        "Capacity of the producer queue (queue.buffering.max.messages).", "worker");
    ks->stats_dropped = ks_metrics_counter0(ks_metrics_counter(
        "kscore_kafka_stats_dropped_total",
        "librdkafka statistics documents dropped because the collector was behind.", NULL));
    ks_metrics_gauge_reset(ks->lag);
    ks_gauge_set(ks->assigned, 0);
    for (int i = 0; i < n_workers; i++) {
        char num[16];
        snprintf(num, sizeof(num), "%d", i);
        const char *v[] = {num};
        ks->w[i].queue_bytes = ks_metrics_gauge_at(qb, v);
        ks->w[i].queue_max = ks_metrics_gauge_at(qm, v);
        ks->w[i].cl[0].up = ks->w[i].cl[1].up = -1;
    }
    if (pthread_create(&ks->thread, NULL, collector_main, ks) != 0) {
        ks_kstats_free(ks);
        *out = NULL;
        return ks_err(errbuf, errsize, KS_EIO, "cannot start the Kafka statistics thread");
    }
    ks->thread_started = 1;
    *out = ks;
    return KS_OK;
}

void ks_kstats_free(ks_kstats_t *ks)
{
    if (!ks)
        return;
    if (ks->thread_started) {
        pthread_mutex_lock(&ks->lock);
        ks->stopping = 1;
        pthread_cond_signal(&ks->wake);
        pthread_mutex_unlock(&ks->lock);
        pthread_join(ks->thread, NULL);
    }
    while (ks->head) {
        item_t *it = ks->head;
        ks->head = it->next;
        free(it);
    }
    for (int i = 0; i < ks->n_workers; i++) {
        for (size_t k = 0; k < ks->w[i].n_parts; k++)
            free(ks->w[i].parts[k].topic);
        free(ks->w[i].parts);
        free(ks->w[i].cl[0].brokers);
        free(ks->w[i].cl[1].brokers);
    }
    free(ks->w);
    pthread_cond_destroy(&ks->wake);
    pthread_mutex_destroy(&ks->lock);
    free(ks);
}

void ks_kstats_submit(ks_kstats_t *ks, int worker, ks_kclient_t client, const char *json,
                      size_t len)
{
    item_t *it = malloc(sizeof(*it) + len + 1);
    if (!it)
        return;
    it->next = NULL;
    it->worker = worker;
    it->client = client;
    it->len = len;
    memcpy(it->json, json, len);
    it->json[len] = '\0';
    pthread_mutex_lock(&ks->lock);
    if (ks->n_queued >= MAX_QUEUED || ks->stopping) {
        pthread_mutex_unlock(&ks->lock);
        ks_counter_add(ks->stats_dropped, 1);
        free(it);
        return;
    }
    *ks->tail = it;
    ks->tail = &it->next;
    ks->n_queued++;
    pthread_cond_signal(&ks->wake);
    pthread_mutex_unlock(&ks->lock);
}

void ks_kstats_assignment(ks_kstats_t *ks, int worker,
                          const rd_kafka_topic_partition_list_t *assignment)
{
    if (worker < 0 || worker >= ks->n_workers)
        return;
    size_t n = assignment ? (size_t)assignment->cnt : 0;
    part_t *parts = ks_xcalloc(n ? n : 1, sizeof(*parts));
    pthread_mutex_lock(&ks->lock);
    wstate_t *w = &ks->w[worker];
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_topic_partition_t *tp = &assignment->elems[i];
        parts[i] = (part_t){ks_xstrdup(tp->topic), tp->partition, -1};
        for (size_t k = 0; k < w->n_parts; k++) /* keep what we knew */
            if (w->parts[k].partition == tp->partition && !strcmp(w->parts[k].topic, tp->topic))
                parts[i].lag = w->parts[k].lag;
    }
    for (size_t k = 0; k < w->n_parts; k++)
        free(w->parts[k].topic);
    free(w->parts);
    w->parts = parts;
    w->n_parts = n;
    if (n)
        set_up_locked(&w->cl[KS_KCLIENT_CONSUMER], 1); /* the group coordinator answered */
    publish_lag_locked(ks);
    pthread_mutex_unlock(&ks->lock);
}

void ks_kstats_broker_event(ks_kstats_t *ks, int worker, ks_kclient_t client, int up)
{
    if (worker < 0 || worker >= ks->n_workers)
        return;
    pthread_mutex_lock(&ks->lock);
    set_up_locked(&ks->w[worker].cl[client], up);
    pthread_mutex_unlock(&ks->lock);
}

int ks_kstats_assigned(ks_kstats_t *ks)
{
    int total = 0;
    pthread_mutex_lock(&ks->lock);
    for (int i = 0; i < ks->n_workers; i++)
        total += (int)ks->w[i].n_parts;
    pthread_mutex_unlock(&ks->lock);
    return total;
}

int ks_kstats_reachable(ks_kstats_t *ks, ks_buf_t *why)
{
    int ok = 1;
    int64_t now = ks_now_wall_ms();
    pthread_mutex_lock(&ks->lock);
    for (int i = 0; i < ks->n_workers; i++)
        for (int c = 0; c < 2; c++) {
            const client_t *cl = &ks->w[i].cl[c];
            if (cl->up != 0)
                continue;
            if (why)
                ks_buf_printf(why, "%sworker-%d's %s has no connection to any broker (for %.0f s)",
                              ok ? "" : "; ", i, client_name((ks_kclient_t)c),
                              (double)(now - cl->up_since_ms) / 1e3);
            ok = 0;
        }
    pthread_mutex_unlock(&ks->lock);
    return ok;
}

void ks_kstats_json(ks_kstats_t *ks, ks_buf_t *out)
{
    int total = 0, first = 1;
    pthread_mutex_lock(&ks->lock);
    ks_buf_puts(out, "{\"partitions\":[");
    for (int i = 0; i < ks->n_workers; i++) {
        const wstate_t *w = &ks->w[i];
        total += (int)w->n_parts;
        for (size_t k = 0; k < w->n_parts; k++) {
            ks_buf_printf(out, "%s{\"worker\":%d,\"topic\":", first ? "" : ",", i);
            ks_buf_json_string(out, w->parts[k].topic, strlen(w->parts[k].topic));
            ks_buf_printf(out, ",\"partition\":%d,\"lag\":%lld}", (int)w->parts[k].partition,
                          (long long)w->parts[k].lag);
            first = 0;
        }
    }
    ks_buf_printf(out, "],\"assigned\":%d,\"brokers\":[", total);
    first = 1;
    for (int i = 0; i < ks->n_workers; i++)
        for (int c = 0; c < 2; c++) {
            const client_t *cl = &ks->w[i].cl[c];
            for (size_t k = 0; k < cl->n_brokers; k++) {
                const broker_t *b = &cl->brokers[k];
                ks_buf_printf(out, "%s{\"client\":\"worker-%d/%s\",\"broker\":", first ? "" : ",",
                              i, client_name((ks_kclient_t)c));
                ks_buf_json_string(out, b->name, strlen(b->name));
                ks_buf_puts(out, ",\"state\":");
                ks_buf_json_string(out, b->state, strlen(b->state));
                ks_buf_printf(out, ",\"rtt_avg_ms\":%.3f,\"rtt_p99_ms\":%.3f}",
                              b->rtt_avg_s * 1e3, b->rtt_p99_s * 1e3);
                first = 0;
            }
        }
    ks_buf_puts(out, "]}");
    pthread_mutex_unlock(&ks->lock);
}

/* ---- the observer the engine calls (kafka/client.h) --------------------- */

static void obs_stats(void *opaque, int worker, ks_kclient_t client, const char *json, size_t len)
{
    ks_kstats_submit(opaque, worker, client, json, len);
}

static void obs_assignment(void *opaque, int worker, const rd_kafka_topic_partition_list_t *parts)
{
    ks_kstats_assignment(opaque, worker, parts);
}

static void obs_broker(void *opaque, int worker, ks_kclient_t client, int up)
{
    ks_kstats_broker_event(opaque, worker, client, up);
}

ks_kafka_observer_t ks_kstats_observer(ks_kstats_t *ks)
{
    return (ks_kafka_observer_t){ks, 5000, obs_stats, obs_assignment, obs_broker};
}
