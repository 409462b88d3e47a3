/*
 * worker.c - one Kafka worker thread: its own consumer (a group member) and
 * idempotent producer, the micro-batch loop, at-least-once offset commits,
 * backpressure, rebalances and graceful shutdown.
 *
 * The loop, per batch:
 *   1. gather up to batch.max_size records: all the consumer has buffered,
 *      waiting for more only while none are buffered and at most
 *      batch.max_wait_ms after the first one;
 *   2. score them (engine/scorer.c: no I/O);
 *   3. produce one record per event: the prediction to output.topic, or the
 *      original record with error headers to dead_letter.topic; each carries
 *      an offsets token as its opaque;
 *   4. delivery reports (served by rd_kafka_poll on this thread) acknowledge
 *      tokens; every commit.interval_ms the per-partition watermarks of
 *      acknowledged offsets are committed (kafka/offsets.c).
 * Exactly-once will replace steps 3-4 with one transaction per batch.
 *
 * Backpressure: when the producer queue is full (slow or unreachable broker)
 * all assigned partitions are paused and the worker keeps polling the consumer
 * (so the group does not evict it) until the queue drains below half, then
 * resumes. Pausing discards prefetched records, and fetching resumes after the
 * last record handed to us, so nothing is skipped.
 *
 * Rebalance: on revocation the batch in progress is finished, outputs are
 * flushed and the revoked partitions' watermarks committed synchronously
 * before they are released. On shutdown the same happens for everything, then
 * the consumer leaves the group.
 */
#include "base/common.h"
#include "base/log.h"
#include "kafka/offsets.h"
#include "engine/pipeline.h"
#include "engine/sinks/feature_log.h"
#include "obs/kafka_stats.h"
#include "kscore/kscore.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HDR_PREFIX "__kscore.errors."

typedef struct ks_worker {
    struct ks_pipeline *p;
    int id;
    pthread_t thread;
    int started;
    rd_kafka_t *consumer, *producer;
    rd_kafka_topic_t *out_rkt, *dlq_rkt;
    ks_offsets_t *offsets;
    ks_scorer_t scorer;
    ks_feature_log_t flog;      /* sampled feature records (feature_log.topic) */

    rd_kafka_message_t **msgs; /* the batch being gathered */
    ks_event_t *events;
    uint64_t *tokens;
    size_t n_msgs, cap;
    int scored;                 /* the batch is scored and partly produced */
    int passthrough;            /* mode: passthrough */
    int close_abandoned;        /* leaving the group timed out: destroy without closing */
    int64_t serve_now_ms;       /* wall clock when delivery reports are being served */
    ks_gauge_t *queue_depth;
    size_t produce_pos;         /* next event of the batch to produce */
    rd_kafka_message_t **stash; /* records polled while paused, go first next batch */
    size_t n_stash, stash_cap;

    rd_kafka_topic_partition_list_t *assignment;
    int paused;
    long queue_max;             /* producer queue.buffering.max.messages */
    int64_t last_commit_ns;
    int rc;                     /* exit status */
    char name[32];
} ks_worker_t;

/* ---- delivery reports ------------------------------------------------- */

/* Serves delivery reports; they read the wall clock from serve_now_ms (one
 * clock read per call, not one per acknowledged record). */
static void serve_producer(ks_worker_t *w, int timeout_ms)
{
    int waited = 0;
    do { /* waits in 1 ms slices so the stamp is never older than that */
        w->serve_now_ms = ks_now_wall_ms();
        if (rd_kafka_poll(w->producer, timeout_ms ? 1 : 0) > 0)
            break;
    } while (++waited < timeout_ms);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    ks_worker_t *w = opaque;
    const ks_engine_metrics_t *em = &w->p->metrics;
    if (ks_feature_log_delivery(&w->flog, m))
        return; /* a sample: no offset rides on it */
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        int64_t input_ts;
        if (ks_offsets_ack(w->offsets, (uint64_t)(uintptr_t)m->_private, &input_ts)) {
            if (m->rkt == w->out_rkt)
                ks_counter_add(em->predicted, 1);
            if (input_ts > 0)
                ks_histogram_observe(em->end_to_end,
                                     (double)(w->serve_now_ms - input_ts) / 1e3);
            ks_histogram_observe(em->stage[KS_STAGE_PRODUCE_ACK],
                                 (double)rd_kafka_message_latency(m) / 1e6);
        }
        return;
    }
    /* The idempotent producer retries transient errors itself until
     * message.timeout.ms; what reaches us is permanent for this record. Its
     * offset stays unacknowledged, so it is never committed: stop the worker
     * and let a restart re-process it rather than lose it. */
    ks_error("%s: output to %s could not be delivered: %s; stopping without committing it",
             w->name, rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
    atomic_store(&w->p->fatal, 1);
    w->p->stop = 1;
}

/* ---- commits ---------------------------------------------------------- */

static void commit(ks_worker_t *w, int sync, int all)
{
    rd_kafka_topic_partition_list_t *list = ks_offsets_committable(w->offsets, all);
    if (!list)
        return;
    rd_kafka_resp_err_t err = rd_kafka_commit(w->consumer, list, sync ? 0 : 1);
    ks_counter_add(w->p->metrics.commits, 1);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        ks_counter_add(w->p->metrics.commit_failures, 1);
        ks_warn("%s: commit failed: %s", w->name, rd_kafka_err2str(err));
    } else
        ks_offsets_committed(w->offsets, list);
    rd_kafka_topic_partition_list_destroy(list);
    w->last_commit_ns = ks_now_mono_ns();
}

static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    ks_worker_t *w = opaque;
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        ks_counter_add(w->p->metrics.commit_failures, 1);
        ks_warn("%s: offset commit failed: %s (the next commit retries)", w->name,
                rd_kafka_err2str(err));
    }
}

/* ---- producing -------------------------------------------------------- */

static void set_paused(ks_worker_t *w, int pause)
{
    if (w->paused == pause || !w->assignment)
        return;
    rd_kafka_resp_err_t err = pause ? rd_kafka_pause_partitions(w->consumer, w->assignment)
                                    : rd_kafka_resume_partitions(w->consumer, w->assignment);
    if (err)
        ks_warn("%s: %s partitions: %s", w->name, pause ? "pausing" : "resuming",
                rd_kafka_err2str(err));
    w->paused = pause;
    if (pause)
        ks_counter_add(w->p->metrics.backpressure_pauses, 1);
    ks_info("%s: %s consumption (producer queue %d messages)", w->name,
            pause ? "backpressure: paused" : "resumed", rd_kafka_outq_len(w->producer));
}

static void stash_message(ks_worker_t *w, rd_kafka_message_t *m)
{
    if (w->n_stash == w->stash_cap) {
        w->stash_cap = w->stash_cap ? w->stash_cap * 2 : 64;
        w->stash = ks_xrealloc(w->stash, w->stash_cap * sizeof(*w->stash));
    }
    w->stash[w->n_stash++] = m;
}

/* Serves the consumer while a batch waits on the producer: rebalances,
 * heartbeats and max.poll.interval.ms. Records that still arrive are kept for
 * later. Called only between produce attempts, never inside one. */
static void serve_consumer(ks_worker_t *w)
{
    rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, 0);
    if (!m)
        return;
    if (m->err) {
        rd_kafka_message_destroy(m);
        return;
    }
    stash_message(w, m);
}

#define QUEUE_FULL 1 /* produce(): try again once the queue drains */

/* Produces one record; `hdrs` is always consumed (callers build them per
 * attempt: retries happen only on the slow path). */
static int produce(ks_worker_t *w, rd_kafka_topic_t *rkt, const void *key, size_t key_len,
                   const void *val, size_t val_len, rd_kafka_headers_t *hdrs, uint64_t token)
{
    rd_kafka_resp_err_t err = rd_kafka_producev(
        w->producer, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE((void *)val, val_len),
        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)token), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        return KS_OK;
    if (hdrs)
        rd_kafka_headers_destroy(hdrs);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        return QUEUE_FULL;
    ks_error("%s: cannot produce to %s: %s", w->name, rd_kafka_topic_name(rkt),
             rd_kafka_err2str(err));
    atomic_store(&w->p->fatal, 1);
    w->p->stop = 1;
    return KS_EKAFKA;
}

static rd_kafka_headers_t *copy_headers(const rd_kafka_message_t *m, size_t extra)
{
    rd_kafka_headers_t *in = NULL;
    if (rd_kafka_message_headers(m, &in) == RD_KAFKA_RESP_ERR_NO_ERROR && in)
        return rd_kafka_headers_copy(in);
    return extra ? rd_kafka_headers_new(extra) : NULL;
}

static void add_header(rd_kafka_headers_t *h, const char *name, const char *value)
{
    rd_kafka_header_add(h, name, -1, value, -1);
}

static int produce_dead_letter(ks_worker_t *w, const rd_kafka_message_t *m, ks_errclass_t cls,
                               const char *msg, uint64_t token)
{
    char num[32];
    rd_kafka_headers_t *h = copy_headers(m, 8);
    if (!h)
        h = rd_kafka_headers_new(8);
    ks_counter_add(w->p->metrics.dead_lettered[cls], 1);
    add_header(h, HDR_PREFIX "class", ks_errclass_name(cls));
    add_header(h, HDR_PREFIX "message", msg);
    add_header(h, HDR_PREFIX "stage", cls == KS_ERRCLASS_FEATURE     ? "features"
                                      : cls == KS_ERRCLASS_INFERENCE ? "model"
                                                                     : "decode");
    add_header(h, HDR_PREFIX "topic", rd_kafka_topic_name(m->rkt));
    snprintf(num, sizeof(num), "%d", (int)m->partition);
    add_header(h, HDR_PREFIX "partition", num);
    snprintf(num, sizeof(num), "%lld", (long long)m->offset);
    add_header(h, HDR_PREFIX "offset", num);
    return produce(w, w->dlq_rkt, m->key, m->key_len, m->payload, m->len, h, token);
}

/* ---- the batch -------------------------------------------------------- */

static void batch_release(ks_worker_t *w)
{
    for (size_t i = 0; i < w->n_msgs; i++)
        rd_kafka_message_destroy(w->msgs[i]);
    w->n_msgs = 0;
    w->scored = 0;
    w->produce_pos = 0;
    ks_serving_release(w->scorer.sv); /* the batch's hold on its model */
    w->scorer.sv = NULL;
}

/* mode: passthrough - the same loop, consumer and producer, minus scoring:
 * each record is copied to output.topic in the same partition. */
static int passthrough_batch(ks_worker_t *w)
{
    w->scored = 1;
    for (; w->produce_pos < w->n_msgs; w->produce_pos++) {
        rd_kafka_message_t *m = w->msgs[w->produce_pos];
        rd_kafka_resp_err_t err = rd_kafka_producev(
            w->producer, RD_KAFKA_V_RKT(w->out_rkt), RD_KAFKA_V_PARTITION(m->partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(m->key, m->key_len),
            RD_KAFKA_V_VALUE(m->payload, m->len),
            RD_KAFKA_V_OPAQUE((void *)(uintptr_t)w->tokens[w->produce_pos]), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return QUEUE_FULL;
        if (err) {
            ks_error("%s: cannot produce: %s", w->name, rd_kafka_err2str(err));
            atomic_store(&w->p->fatal, 1);
            w->p->stop = 1;
            return KS_EKAFKA;
        }
    }
    batch_release(w);
    serve_producer(w, 0);
    return KS_OK;
}

/* Scores the gathered batch (once) and produces its records from where the
 * last call stopped. Returns KS_OK when the batch is done, QUEUE_FULL when the
 * producer queue is full (call again later: nothing is lost or repeated), or
 * an error after a fatal producer failure. Never polls the consumer, so no
 * rebalance callback can run in the middle of a batch. */
static int process_batch(ks_worker_t *w)
{
    size_t n = w->n_msgs;
    ks_scorer_t *s = &w->scorer;
    int rc = KS_OK;
    if (n == 0)
        return KS_OK;
    if (w->passthrough)
        return passthrough_batch(w);
    if (!w->scored) {
        ks_scorer_run(s, ks_pipeline_acquire(w->p), w->events, n);
        ks_scorer_encode_batch(s, w->events, n);
        w->scored = 1;
        w->produce_pos = 0;
    }
    for (; w->produce_pos < n; w->produce_pos++) {
        size_t i = w->produce_pos;
        rd_kafka_message_t *m = w->msgs[i];
        if (atomic_load(&w->p->fatal))
            return KS_EKAFKA; /* not produced, never acknowledged, never committed */
        if (s->err[i] != KS_ERRCLASS_NONE) {
            rc = produce_dead_letter(w, m, s->err[i], s->errmsg[i], w->tokens[i]);
        } else {
            size_t key_len, rec_len;
            const char *key = ks_scorer_key(s, i, &key_len);
            const char *rec = ks_scorer_record(s, i, &rec_len);
            if (!key) {
                key = m->key;
                key_len = m->key_len;
            }
            rc = produce(w, w->out_rkt, key, key_len, rec, rec_len, copy_headers(m, 0),
                         w->tokens[i]);
            if (rc == KS_OK && ks_feature_log_want(&w->flog))
                ks_feature_log_emit(&w->flog, w->producer, s, w->events, i, m, key, key_len,
                                    ks_now_wall_ms());
        }
        if (rc)
            return rc;
    }
    batch_release(w);
    serve_producer(w, 0);
    return KS_OK;
}

static void add_to_batch(ks_worker_t *w, rd_kafka_message_t *m)
{
    size_t i = w->n_msgs++;
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    w->msgs[i] = m;
    w->events[i] = (ks_event_t){m->payload ? m->payload : "", m->len, ts, ks_now_mono_ns()};
    w->tokens[i] = ks_offsets_track(w->offsets, rd_kafka_topic_name(m->rkt), m->partition,
                                    m->offset, ts);
    ks_counter_add(w->p->metrics.consumed, 1);
}

/* Moves stashed records into the batch being gathered. */
static void take_stash(ks_worker_t *w)
{
    size_t k = 0;
    while (k < w->n_stash && w->n_msgs < w->cap && !w->scored)
        add_to_batch(w, w->stash[k++]);
    memmove(w->stash, w->stash + k, (w->n_stash - k) * sizeof(*w->stash));
    w->n_stash -= k;
}

/* Finishes everything in hand, waits (bounded) for acknowledgements and
 * commits synchronously. Used on revocation and shutdown. */
static void drain_and_commit(ks_worker_t *w, int timeout_ms)
{
    int64_t deadline = ks_now_mono_ns() + (int64_t)timeout_ms * 1000000;
    while (w->n_stash || w->n_msgs) {
        take_stash(w);
        int rc = process_batch(w);
        if (rc == QUEUE_FULL && ks_now_mono_ns() < deadline) {
            serve_producer(w, 50);
            continue;
        }
        if (rc) { /* out of time or fatal: these events stay uncommitted */
            ks_warn("%s: %zu event(s) not processed before the deadline; they will be "
                    "re-processed after restart", w->name, w->n_msgs - w->produce_pos + w->n_stash);
            batch_release(w);
            for (size_t i = 0; i < w->n_stash; i++)
                rd_kafka_message_destroy(w->stash[i]);
            w->n_stash = 0;
            break;
        }
    }
    int64_t left_ms = (deadline - ks_now_mono_ns()) / 1000000;
    w->serve_now_ms = ks_now_wall_ms();
    rd_kafka_resp_err_t err = rd_kafka_flush(w->producer, left_ms > 0 ? (int)left_ms : 0);
    if (err)
        ks_warn("%s: %d outputs still unacknowledged after %d ms; their events will be "
                "re-processed after restart", w->name, rd_kafka_outq_len(w->producer), timeout_ms);
    commit(w, 1, 1);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    ks_worker_t *w = opaque;
    int cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t ret = 0;

    ks_counter_add(w->p->metrics.rebalances, 1);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        ks_info("%s: assigned %d partition(s)", w->name, parts->cnt);
        for (int i = 0; i < parts->cnt; i++)
            ks_offsets_assign(w->offsets, parts->elems[i].topic, parts->elems[i].partition);
        if (cooperative)
            error = rd_kafka_incremental_assign(rk, parts);
        else
            ret = rd_kafka_assign(rk, parts);
    } else {
        ks_info("%s: revoking %d partition(s)", w->name, parts->cnt);
        drain_and_commit(w, (int)w->p->cfg->shutdown_timeout_ms);
        for (int i = 0; i < parts->cnt; i++)
            ks_offsets_revoke(w->offsets, parts->elems[i].topic, parts->elems[i].partition);
        if (cooperative)
            error = rd_kafka_incremental_unassign(rk, parts);
        else
            ret = rd_kafka_assign(rk, NULL);
    }
    if (error) {
        ks_error("%s: rebalance: %s", w->name, rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    } else if (ret) {
        ks_error("%s: rebalance: %s", w->name, rd_kafka_err2str(ret));
    }
    /* Track the current assignment for pause/resume. */
    if (w->paused && w->assignment) {
        rd_kafka_resume_partitions(rk, w->assignment);
        w->paused = 0;
    }
    if (w->assignment)
        rd_kafka_topic_partition_list_destroy(w->assignment);
    w->assignment = NULL;
    rd_kafka_assignment(rk, &w->assignment);
    if (w->p->kstats)
        ks_kstats_assignment(w->p->kstats, w->id, w->assignment);
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    ks_log(level <= 3 ? KS_LOG_ERROR : level <= 4 ? KS_LOG_WARN : level <= 6 ? KS_LOG_INFO
                                                                            : KS_LOG_DEBUG,
           "librdkafka %s: %s: %s", rk ? rd_kafka_name(rk) : "", fac, buf);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    ks_worker_t *w = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char fatal[256];
        rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
        ks_error("%s: fatal Kafka error: %s", w->name, fatal);
        atomic_store(&w->p->fatal, 1);
        w->p->stop = 1;
        return;
    }
    /* Transient (broker down, transport): librdkafka reconnects by itself. */
    ks_counter_add(w->p->metrics.kafka_errors, 1);
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN && w->p->kstats)
        ks_kstats_broker_event(w->p->kstats, w->id,
                               rk == w->producer ? KS_KCLIENT_PRODUCER : KS_KCLIENT_CONSUMER, 0);
    ks_warn("%s: %s: %s", w->name, rd_kafka_err2name(err), reason);
}

/* Statistics (every statistics.interval.ms, on this worker's thread): only
 * a copy is queued; obs/kafka_stats.c parses it on its own thread. */
static int on_stats(rd_kafka_t *rk, char *json, size_t json_len, void *opaque)
{
    ks_worker_t *w = opaque;
    if (w->p->kstats)
        ks_kstats_submit(w->p->kstats, w->id,
                         rk == w->producer ? KS_KCLIENT_PRODUCER : KS_KCLIENT_CONSUMER, json,
                         json_len);
    return 0;
}

/* ---- the thread -------------------------------------------------------- */

/* Leaves the group, serving the final revocation (which commits), but gives
 * up after timeout_ms: rd_kafka_consumer_close() alone may block for up to
 * session.timeout.ms when the group is rebalancing, and shutdown must be quick.
 * Everything acknowledged is committed by then; an abandoned close only means
 * the broker evicts the member when its session times out. */
static void close_consumer(ks_worker_t *w, int timeout_ms)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(w->consumer);
    rd_kafka_error_t *error = rd_kafka_consumer_close_queue(w->consumer, q);
    int64_t deadline = ks_now_mono_ns() + (int64_t)timeout_ms * 1000000;
    if (error) {
        ks_warn("%s: leaving the group: %s", w->name, rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
        w->close_abandoned = 1;
        goto out;
    }
    while (!rd_kafka_consumer_closed(w->consumer)) {
        if (ks_now_mono_ns() > deadline) {
            ks_warn("%s: the group did not confirm our leaving within %d ms; the broker will "
                    "drop this member when its session times out",
                    w->name, timeout_ms);
            w->close_abandoned = 1;
            break;
        }
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 100);
        if (!ev)
            continue;
        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE)
            on_rebalance(w->consumer, rd_kafka_event_error(ev),
                         rd_kafka_event_topic_partition_list(ev), w);
        rd_kafka_event_destroy(ev);
    }
out:
    rd_kafka_queue_destroy(q);
}

static void *worker_main(void *arg)
{
    ks_worker_t *w = arg;
    const struct ks_config *cfg = w->p->cfg;
    int64_t wait_ns = cfg->batch_max_wait_ms * 1000000;
    int64_t commit_ns = cfg->commit_interval_ms * 1000000;
    int64_t first_ns = 0;

    w->last_commit_ns = ks_now_mono_ns();
    while (!w->p->stop) {
        if (w->scored) {
            /* a batch is waiting for room in the producer queue */
            int rc = process_batch(w);
            if (rc == QUEUE_FULL) {
                set_paused(w, 1);
                serve_producer(w, 50);
                serve_consumer(w);
            }
        } else {
            /* gather: take what the consumer has buffered without waiting;
             * wait (until the batch's max_wait) only when nothing is buffered.
             * Busy streams get full batches, quiet ones no added latency
             * beyond max_wait (0 = never wait). */
            size_t before = w->n_msgs;
            take_stash(w);
            if (before == 0 && w->n_msgs)
                first_ns = ks_now_mono_ns();
            for (size_t k = 0; w->n_msgs < w->cap && k < w->cap && !w->p->stop; k++) {
                rd_kafka_message_t *m =
                    rd_kafka_consumer_poll(w->consumer, w->n_msgs ? 0 : 100);
                if (!m && w->n_msgs) {
                    int64_t left = first_ns + wait_ns - ks_now_mono_ns();
                    if (left > 0)
                        m = rd_kafka_consumer_poll(w->consumer, (int)((left + 999999) / 1000000));
                }
                if (!m)
                    break;
                if (m->err) {
                    if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                        ks_warn("%s: consumer: %s", w->name, rd_kafka_message_errstr(m));
                    rd_kafka_message_destroy(m);
                    continue;
                }
                add_to_batch(w, m);
                if (w->n_msgs == 1)
                    first_ns = ks_now_mono_ns();
            }
            if (w->n_msgs && !w->scored)
                process_batch(w);
        }

        /* serve deliveries, resume when the queue has drained */
        serve_producer(w, 0);
        ks_gauge_set(w->queue_depth, (double)rd_kafka_outq_len(w->producer));
        if (w->paused && !w->scored && rd_kafka_outq_len(w->producer) < w->queue_max / 2)
            set_paused(w, 0);
        if (ks_now_mono_ns() - w->last_commit_ns >= commit_ns)
            commit(w, 0, 0);
    }

    int64_t deadline = ks_now_mono_ns() + cfg->shutdown_timeout_ms * 1000000;
    if (!atomic_load(&w->p->fatal)) {
        ks_info("%s: shutting down: finishing the batch in flight", w->name);
        drain_and_commit(w, (int)cfg->shutdown_timeout_ms);
    } else {
        w->rc = KS_EXIT_RUNTIME;
        commit(w, 1, 1); /* acknowledged work is still safe to commit */
    }
    int64_t left_ms = (deadline - ks_now_mono_ns()) / 1000000;
    close_consumer(w, left_ms > 2000 ? (int)left_ms : 2000);
    ks_info("%s: stopped", w->name);
    return NULL;
}

/* Creates a client with the callbacks both clients share (errors, logs,
 * statistics); `conf` is consumed. */
static int new_client(ks_worker_t *w, rd_kafka_type_t type, rd_kafka_conf_t *conf,
                      rd_kafka_t **out, char *errbuf, size_t errsize)
{
    char kerr[512];
    if (w->p->kstats)
        rd_kafka_conf_set_stats_cb(conf, on_stats);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_opaque(conf, w);
    *out = rd_kafka_new(type, conf, kerr, sizeof(kerr));
    if (!*out) {
        rd_kafka_conf_destroy(conf);
        return ks_err(errbuf, errsize, KS_EKAFKA, "cannot create the Kafka %s: %s",
                      type == RD_KAFKA_CONSUMER ? "consumer" : "producer", kerr);
    }
    return KS_OK;
}

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v, char *errbuf,
                    size_t errsize)
{
    char kerr[256];
    if (rd_kafka_conf_set(conf, k, v, kerr, sizeof(kerr)) != RD_KAFKA_CONF_OK)
        return ks_err(errbuf, errsize, KS_EINVAL, "kafka property %s=%s: %s", k, v, kerr);
    return KS_OK;
}

int ks_worker_start(struct ks_pipeline *p, int id, struct ks_worker **out, char *errbuf,
                    size_t errsize)
{
    const struct ks_config *cfg = p->cfg;
    ks_worker_t *w = ks_xcalloc(1, sizeof(*w));
    rd_kafka_conf_t *cc = NULL, *pc = NULL;
    rd_kafka_topic_partition_list_t *topics = NULL;
    char client_id[64];
    int rc;

    w->p = p;
    w->id = id;
    snprintf(w->name, sizeof(w->name), "worker-%d", id);
    snprintf(client_id, sizeof(client_id), "kscore-%d", id);
    w->cap = (size_t)cfg->batch_max_size;
    w->passthrough = strcmp(cfg->mode, "passthrough") == 0;
    w->queue_depth = ks_engine_metrics_queue_gauge(id);
    w->msgs = ks_xcalloc(w->cap, sizeof(*w->msgs));
    w->events = ks_xcalloc(w->cap, sizeof(*w->events));
    w->tokens = ks_xcalloc(w->cap, sizeof(*w->tokens));
    w->offsets = ks_offsets_new();
    if ((rc = ks_scorer_init(&w->scorer, p, errbuf, errsize)))
        goto out;

    /* Producer: our defaults first, then the user's kafka: properties. */
    pc = rd_kafka_conf_new();
    if ((rc = conf_set(pc, "client.id", client_id, errbuf, errsize)) ||
        (rc = conf_set(pc, "enable.idempotence", "true", errbuf, errsize)) ||
        (rc = conf_set(pc, "linger.ms", "5", errbuf, errsize)) ||
        (rc = conf_set(pc, "partitioner", "murmur2_random", errbuf, errsize)) ||
        (p->kstats && (rc = conf_set(pc, "statistics.interval.ms", "5000", errbuf, errsize))) ||
        (rc = ks_config_apply_kafka(cfg, KS_KAFKA_PRODUCER, pc, errbuf, errsize)))
        goto out;
    char qmax[32];
    size_t qlen = sizeof(qmax);
    w->queue_max = 100000;
    if (rd_kafka_conf_get(pc, "queue.buffering.max.messages", qmax, &qlen) == RD_KAFKA_CONF_OK)
        w->queue_max = atol(qmax);
    rd_kafka_conf_set_dr_msg_cb(pc, on_delivery);
    rc = new_client(w, RD_KAFKA_PRODUCER, pc, &w->producer, errbuf, errsize);
    pc = NULL;
    if (rc)
        goto out;
    w->out_rkt = rd_kafka_topic_new(w->producer, cfg->output_topic, NULL);
    w->dlq_rkt = rd_kafka_topic_new(w->producer, cfg->dlq_topic, NULL);
    if (!w->passthrough &&
        (rc = ks_feature_log_init(&w->flog, cfg, w->producer, id, w->queue_max, errbuf, errsize)))
        goto out;

    /* Consumer */
    cc = rd_kafka_conf_new();
    if ((rc = conf_set(cc, "client.id", client_id, errbuf, errsize)) ||
        (rc = conf_set(cc, "auto.offset.reset", "earliest", errbuf, errsize)) ||
        (p->kstats && (rc = conf_set(cc, "statistics.interval.ms", "5000", errbuf, errsize))) ||
        (rc = ks_config_apply_kafka(cfg, KS_KAFKA_CONSUMER, cc, errbuf, errsize)) ||
        (rc = conf_set(cc, "group.id", cfg->input_group_id, errbuf, errsize)) ||
        (rc = conf_set(cc, "enable.auto.commit", "false", errbuf, errsize)) ||
        (rc = conf_set(cc, "enable.auto.offset.store", "false", errbuf, errsize)))
        goto out;
    rd_kafka_conf_set_rebalance_cb(cc, on_rebalance);
    rd_kafka_conf_set_offset_commit_cb(cc, on_commit);
    rc = new_client(w, RD_KAFKA_CONSUMER, cc, &w->consumer, errbuf, errsize);
    cc = NULL;
    if (rc)
        goto out;
    rd_kafka_poll_set_consumer(w->consumer);
    topics = rd_kafka_topic_partition_list_new((int)cfg->input_topics.n);
    for (size_t i = 0; i < cfg->input_topics.n; i++)
        rd_kafka_topic_partition_list_add(topics, cfg->input_topics.items[i],
                                          RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(w->consumer, topics);
    if (err) {
        rc = ks_err(errbuf, errsize, KS_EKAFKA, "cannot subscribe: %s", rd_kafka_err2str(err));
        goto out;
    }
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        rc = ks_err(errbuf, errsize, KS_EIO, "cannot start the worker thread");
        goto out;
    }
    w->started = 1;
out:
    if (topics)
        rd_kafka_topic_partition_list_destroy(topics);
    if (cc)
        rd_kafka_conf_destroy(cc);
    if (pc)
        rd_kafka_conf_destroy(pc);
    *out = w;
    return rc;
}

int ks_worker_join(struct ks_worker *w, int64_t deadline_ms)
{
    int rc = KS_EXIT_OK;
    if (w->started) {
        struct timespec ts = {(time_t)(deadline_ms / 1000), (long)(deadline_ms % 1000) * 1000000};
        if (pthread_timedjoin_np(w->thread, NULL, &ts) != 0) {
            /* Everything acknowledged is committed before a worker leaves its
             * group; a worker stuck past that (seen inside librdkafka while
             * leaving a group mid-rebalance) must not keep the process alive.
             * Its memory is left to the exit. */
            ks_error("%s did not stop within shutdown.timeout_ms; exiting without it "
                     "(its acknowledged offsets were committed)", w->name);
            atomic_store(&w->p->abandoned, 1);
            return KS_EXIT_OK;
        }
        rc = w->rc;
    }
    if (w->consumer)
        rd_kafka_destroy_flags(w->consumer,
                               w->close_abandoned ? RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE : 0);
    if (w->out_rkt)
        rd_kafka_topic_destroy(w->out_rkt);
    if (w->dlq_rkt)
        rd_kafka_topic_destroy(w->dlq_rkt);
    ks_feature_log_destroy(&w->flog);
    if (w->producer)
        rd_kafka_destroy(w->producer);
    if (w->assignment)
        rd_kafka_topic_partition_list_destroy(w->assignment);
    for (size_t i = 0; i < w->n_stash; i++)
        rd_kafka_message_destroy(w->stash[i]);
    free(w->stash);
    ks_scorer_destroy(&w->scorer);
    ks_offsets_free(w->offsets);
    free(w->msgs);
    free(w->events);
    free(w->tokens);
    free(w);
    return rc;
}
