/*
 * worker.c - one Kafka worker thread: its own consumer (a group member) and
 * idempotent producer, the micro-batch loop, at-least-once offset commits,
 * backpressure, rebalances and graceful shutdown.
 *
 * The loop, per batch:
 *   1. gather up to batch.max_size records: all the consumer has buffered,
 *      waiting for more only while none are buffered and at most
 *      batch.max_wait_ms after the first one;
 *   2. run the stages over the batch (engine/stage.h: no I/O);
 *   3. write each row to one sink (engine/sink.h): its record to the output
 *      topic, or the input record with error headers to the dead-letter
 *      topic; each carries an offsets token as its opaque. Output records
 *      are produced without copying, from the batch's record buffer, which
 *      is held until their last delivery report (kafka/payloads.h);
 *   4. delivery reports (served by rd_kafka_poll on this thread) acknowledge
 *      tokens; every commit.interval_ms the per-partition watermarks of
 *      acknowledged offsets are committed (kafka/offsets.h, kafka/group.h).
 *
 * With delivery: exactly_once, steps 3-4 become a transaction: it opens
 * before a batch's first row is written and commits every commit.interval_ms
 * (and on revocation and shutdown) between batches, carrying the input
 * offsets of every row written in it (kafka/txn.h). An abortable error
 * aborts it; the worker then drops what it holds, rewinds the consumer to
 * the committed offsets and processes those events again, so nothing of an
 * aborted transaction is ever visible to read_committed readers. A record
 * that fails (in a delivery report) fails the transaction: the worker stops
 * writing into it and aborts it at once. For a record the broker refused,
 * it remembers the event's source position and counts the refusals: the
 * first time the event comes again its records are written as usual, the
 * second time its output goes to the dead letters (and a dead letter refused
 * twice is written truncated).
 *
 * A record the producer or the broker refuses for itself (too large,
 * invalid: kafka/produce.h) fails that event only: an output goes to the
 * dead-letter topic instead, a dead letter is written again truncated. The
 * broker answers a produce request (one partition's batch) with one error
 * for all its records, so a record refused in a delivery report is first
 * written again as it was: the records that were fine go through then (a
 * corrupted transfer, a batch refused for another record's sake), and only
 * a record refused twice is failed. Batches never exceed the smallest
 * max.message.bytes of the topics written (batch.size is capped to it at
 * start-up, engine/pipeline.c), so a batch is not refused as too large for
 * the size of the records around an oversized one.
 * Errors about a whole topic or the cluster stop the pipeline (exit 1)
 * without committing what was not acknowledged.
 *
 * Backpressure: when the producer queue is full (slow or unreachable broker)
 * all assigned partitions are paused and the worker keeps polling the consumer
 * (so the group does not evict it) until the queue drains below half, then
 * resumes. Pausing discards prefetched records, and fetching resumes after the
 * last record handed to us, so nothing is skipped.
 *
 * Held batches: a stage may hold a batch it cannot serve now (a required
 * lookup whose Redis is down: engine/stage.h, "Holding a batch"). Nothing of
 * it is produced; the worker pauses its partitions exactly as for
 * backpressure, keeps serving the consumer and the producer (and commits
 * what earlier batches got acknowledged), and after the stage's hold_ms runs
 * the batch again from the first stage on a reset batch; consumption resumes
 * once it passes. pipeline->holding counts the workers doing so (readiness).
 *
 * Rebalance: on revocation the batch in hand is finished, outputs are flushed
 * and the revoked partitions' watermarks committed synchronously before they
 * are released; if that does not finish in time, only the revoked
 * partitions' events are dropped (their new owner consumes them from the
 * committed offset). On shutdown the same happens for everything, within one
 * absolute deadline (shutdown.timeout_ms), then the consumer leaves the group.
 */
#include "base/common.h"
#include "base/log.h"
#include "engine/pipeline.h"
#include "engine/sink.h"
#include "kafka/group.h"
#include "kafka/offsets.h"
#include "kafka/payloads.h"
#include "kafka/produce.h"
#include "kafka/txn.h"
#include "kscore/kscore.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { SINK_OUTPUT, SINK_DEAD_LETTER, SINK_FEATURE_LOG, SINK_PASSTHROUGH, SINK_SHADOW, N_SINKS };

/* process_batch: a stage held the batch; run it again at hold_until_ns. */
#define BATCH_HELD 3
_Static_assert(BATCH_HELD != KS_SINK_QUEUE_FULL && BATCH_HELD != KS_EKAFKA,
               "process_batch's return codes must differ");

/* A record the broker refused in a delivery report, to write again outside
 * the callback: as it was (the first refusal), or, refused again, an output
 * as a dead letter and a dead letter truncated. */
typedef enum {
    REDO_AGAIN,                /* the same record to the same topic */
    REDO_DEAD_LETTER,          /* an output record to the dead-letter topic */
    REDO_TRUNCATE,             /* a dead letter, cut one step further */
} redo_kind_t;

typedef struct redo {
    redo_kind_t kind;
    int to_dlq;                /* the record was refused by the dead-letter topic */
    char *key, *val;
    size_t key_len, val_len;
    rd_kafka_headers_t *hdrs;
    rd_kafka_resp_err_t err;
    uint64_t token;
} redo_t;

/* Exactly-once: an event whose record the broker refused (the transaction
 * that held it aborted), with the refusals of its output record and of its
 * dead letter: when it comes again, an output refused once is written again,
 * twice it goes to the dead letters; a dead letter refused twice is written
 * truncated (write_row). */
typedef struct poison {
    char *topic;
    int32_t partition;
    int64_t offset;
    int out_refused, dl_refused;
} poison_t;

typedef struct ks_worker {
    struct ks_pipeline *p;
    int id;
    pthread_t thread;
    int started;
    ks_kafka_ctx_t kctx;        /* both clients' opaque (kafka/client.h) */
    rd_kafka_t *consumer, *producer;
    rd_kafka_topic_t *out_rkt, *dlq_rkt; /* to tell delivery reports apart */
    ks_offsets_t *offsets;
    ks_commit_stats_t commit_stats;
    ks_stage_runner_t *runner;
    const ks_sink_type_t *sink[N_SINKS];
    void *sink_ctx[N_SINKS];

    ks_batch_t batch;           /* the batch in hand; its rows are msgs[] */
    ks_payloads_t *payloads;    /* record buffers held for their delivery reports */
    rd_kafka_message_t **msgs;
    uint64_t *tokens;           /* per row; 0 = dropped (partition revoked) */
    size_t n_msgs, cap;
    int scored;                 /* the batch is scored and partly produced */
    int held;                   /* a stage held the (unscored) batch: counted in p->holding */
    int64_t hold_until_ns;      /* ... run it again from then on */
    size_t produce_pos;         /* next row of the batch to write */
    int passthrough;            /* mode: passthrough */
    rd_kafka_message_t **stash; /* records polled while paused, go first next batch */
    size_t n_stash, stash_cap;
    redo_t *redo;               /* refused records to write again */
    size_t n_redo, redo_cap;
    uint64_t *retried;          /* tokens whose record is written again (REDO_AGAIN) */
    size_t n_retried, retried_cap;

    int close_abandoned;        /* leaving the group timed out: destroy without closing */
    int64_t serve_now_ms;       /* wall clock when delivery reports are being served */
    int64_t serve_now_ns;       /* the same, monotonic */
    ks_gauge_t *queue_depth;
    /* gaps between consecutive batches (batch_done): the last gap is
     * recorded one batch later, once it is known whether a swap was in the
     * gap after it */
    int64_t last_done_ns;       /* 0 before the first batch */
    unsigned swaps_seen;        /* p->model_swaps at the last batch's end */
    int swap_in_last_gap;
    int has_pending;
    double pending_gap_s;
    int pending_near;
    double gap_max_s[2];
    ks_gauge_t *gap_max[2];
    double near_gaps_ms[4];     /* the gaps of the swap being logged */
    size_t n_near_gaps;
    rd_kafka_topic_partition_list_t *assignment;
    int paused;
    long queue_max;             /* producer queue.buffering.max.messages */
    int64_t last_commit_ns;
    int64_t deadline_ns;        /* shutdown: the one absolute deadline; 0 before */
    int eos;                    /* delivery: exactly_once */
    int txn_open;
    int txn_failed;             /* a record of the open transaction failed: abort it */
    rd_kafka_resp_err_t commit_err; /* the last synchronous commit's result */
    unsigned assigns;           /* assignments received (rebalances) */
    atomic_int final_commit_done; /* the shutdown commit is done: only leaving the
                                     group is left (ks_worker_join reads it) */
    poison_t *poison;
    size_t n_poison, poison_cap;
    int rc;                     /* exit status */
} ks_worker_t;

static void fail(ks_worker_t *w)
{
    ks_pipeline_fail(w->p);
}

static void on_fatal(void *owner, const char *why)
{
    fail(owner);
}

/* ---- delivery reports ------------------------------------------------- */

/* Serves delivery reports; they read the clocks from serve_now_ms/_ns (one
 * read per call, not one per acknowledged record). */
static void serve_producer(ks_worker_t *w, int timeout_ms)
{
    int waited = 0;
    do { /* waits in 1 ms slices so the stamp is never older than that */
        w->serve_now_ms = ks_now_wall_ms();
        w->serve_now_ns = ks_now_mono_ns();
        if (rd_kafka_poll(w->producer, timeout_ms ? 1 : 0) > 0)
            break;
    } while (++waited < timeout_ms);
}

static char *copy_bytes(const void *p, size_t len)
{
    char *c = ks_xmalloc(len ? len : 1);
    if (len)
        memcpy(c, p, len);
    return c;
}

static void queue_redo(ks_worker_t *w, const rd_kafka_message_t *m, redo_kind_t kind)
{
    if (w->n_redo == w->redo_cap) {
        w->redo_cap = w->redo_cap ? w->redo_cap * 2 : 8;
        w->redo = ks_xrealloc(w->redo, w->redo_cap * sizeof(*w->redo));
    }
    redo_t *r = &w->redo[w->n_redo++];
    r->kind = kind;
    r->to_dlq = m->rkt == w->dlq_rkt;
    r->key = copy_bytes(m->key, m->key_len);
    r->key_len = m->key_len;
    r->val = copy_bytes(m->payload, m->len);
    r->val_len = m->len;
    r->hdrs = ks_kafka_headers_copy(m, 8);
    r->err = m->err;
    r->token = (uint64_t)(uintptr_t)m->_private;
}

static void redo_free(redo_t *r)
{
    free(r->key);
    free(r->val);
    if (r->hdrs)
        rd_kafka_headers_destroy(r->hdrs);
}

static void drop_redo(ks_worker_t *w)
{
    for (size_t i = 0; i < w->n_redo; i++)
        redo_free(&w->redo[i]);
    w->n_redo = 0;
}

/* Takes `token` out of the tokens written again; 1 if it was there. */
static int retried_take(ks_worker_t *w, uint64_t token)
{
    for (size_t i = 0; i < w->n_retried; i++)
        if (w->retried[i] == token) {
            w->retried[i] = w->retried[--w->n_retried];
            return 1;
        }
    return 0;
}

static void retried_add(ks_worker_t *w, uint64_t token)
{
    if (w->n_retried == w->retried_cap) {
        w->retried_cap = w->retried_cap ? w->retried_cap * 2 : 8;
        w->retried = ks_xrealloc(w->retried, w->retried_cap * sizeof(*w->retried));
    }
    w->retried[w->n_retried++] = token;
}

static poison_t *find_poison(ks_worker_t *w, const char *topic, int32_t partition,
                             int64_t offset)
{
    for (size_t i = 0; i < w->n_poison; i++)
        if (w->poison[i].offset == offset && w->poison[i].partition == partition &&
            strcmp(w->poison[i].topic, topic) == 0)
            return &w->poison[i];
    return NULL;
}

/* Exactly-once: counts a refusal of the event's output (or dead letter). */
static void remember_poison(ks_worker_t *w, uint64_t token, int dead_letter)
{
    const char *topic;
    int32_t partition;
    int64_t offset;
    if (!ks_offsets_source(w->offsets, token, &topic, &partition, &offset))
        return;
    poison_t *p = find_poison(w, topic, partition, offset);
    if (!p) {
        if (w->n_poison == w->poison_cap) {
            w->poison_cap = w->poison_cap ? w->poison_cap * 2 : 8;
            w->poison = ks_xrealloc(w->poison, w->poison_cap * sizeof(*w->poison));
        }
        p = &w->poison[w->n_poison++];
        *p = (poison_t){ks_xstrdup(topic), partition, offset, 0, 0};
    }
    if (dead_letter)
        p->dl_refused++;
    else
        p->out_refused++;
}

static void deliver_failed(ks_worker_t *w, const rd_kafka_message_t *m);

/* A delivery report. An output record produced without a copy holds its
 * batch's record buffer until here: released once nothing reads m->payload
 * any more (after queue_redo copied it), whatever the outcome. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    ks_worker_t *w = ((ks_kafka_ctx_t *)opaque)->owner;
    const ks_engine_metrics_t *em = &w->p->metrics;
    int64_t produce_ns;
    for (int s = 0; s < N_SINKS; s++)
        if (w->sink_ctx[s] && w->sink[s]->delivered && w->sink[s]->delivered(w->sink_ctx[s], m))
            return; /* e.g. a feature-log sample: no offset rides on it */
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        int64_t input_ts;
        int held = ks_payloads_release(w->payloads, m, &produce_ns);
        if (w->n_retried)
            retried_take(w, (uint64_t)(uintptr_t)m->_private);
        if (ks_offsets_ack(w->offsets, (uint64_t)(uintptr_t)m->_private, &input_ts)) {
            if (m->rkt == w->out_rkt)
                ks_counter_add(em->predicted, 1);
            if (input_ts > 0)
                ks_histogram_observe(em->end_to_end,
                                     (double)(w->serve_now_ms - input_ts) / 1e3);
            /* a held record's produce time is its batch's: no clock read
             * per record (rd_kafka_message_latency reads one) */
            ks_histogram_observe(em->produce_ack,
                                 held ? (double)(w->serve_now_ns - produce_ns) / 1e9
                                      : (double)rd_kafka_message_latency(m) / 1e6);
        }
        return;
    }
    deliver_failed(w, m);
    ks_payloads_release(w->payloads, m, &produce_ns);
}

/* A record librdkafka could not deliver. */
static void deliver_failed(ks_worker_t *w, const rd_kafka_message_t *m)
{
    /* The idempotent producer retries transient errors itself until
     * message.timeout.ms; what reaches us is permanent. For this record only
     * (too large, invalid): write it again once (the whole request was
     * refused, maybe for another record's sake), then dead-letter the
     * output, cut the dead letter. */
    uint64_t token = (uint64_t)(uintptr_t)m->_private;
    int ours = m->rkt == w->out_rkt || m->rkt == w->dlq_rkt;
    if (w->eos) {
        /* A failed record fails its transaction, which the worker aborts
         * at once, processing the events again; fatal producer errors
         * arrive through the error callback. Records purged by an abort
         * are expected. */
        if (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
            return;
        int first = !w->txn_failed; /* one warning per transaction */
        w->txn_failed = 1;
        if (ks_kafka_err_is_topic_level(m->err)) {
            ks_error("%s: a record for %s failed: %s; stopping (the open transaction is "
                     "aborted)", w->kctx.name, rd_kafka_topic_name(m->rkt),
                     rd_kafka_err2str(m->err));
            fail(w);
            return;
        }
        int record = ks_kafka_err_is_record_level(m->err) && ours;
        if (record)
            remember_poison(w, token, m->rkt == w->dlq_rkt);
        ks_log(first ? KS_LOG_WARN : KS_LOG_DEBUG,
               "%s: a record for %s failed: %s; the transaction aborts and its events are "
               "processed again%s", w->kctx.name, rd_kafka_topic_name(m->rkt),
               rd_kafka_err2str(m->err),
               record ? " (an event whose record is refused twice goes to the dead-letter "
                        "topic)" : "");
        return;
    }
    if (ks_kafka_err_is_record_level(m->err) && !w->passthrough && ours) {
        int dlq = m->rkt == w->dlq_rkt;
        int again = !retried_take(w, token) && !(dlq && ks_kafka_dead_letter_is_truncated(m));
        ks_warn("%s: the broker refused a record for %s: %s; %s", w->kctx.name,
                rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err),
                again ? "writing it again (the broker refuses a whole batch for one record)"
                : dlq ? "writing the dead letter truncated"
                      : "its event goes to the dead-letter topic");
        queue_redo(w, m, again ? REDO_AGAIN : dlq ? REDO_TRUNCATE : REDO_DEAD_LETTER);
        return;
    }
    /* Otherwise its offset stays unacknowledged, so it is never committed:
     * stop and let a restart re-process it rather than lose it. */
    ks_error("%s: output to %s could not be delivered: %s; stopping without committing it",
             w->kctx.name, rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
    fail(w);
}

/* Writes one refused record again (see redo_kind_t). */
static rd_kafka_resp_err_t write_redo(ks_worker_t *w, const redo_t *r)
{
    if (r->kind == REDO_AGAIN)
        return ks_kafka_produce(w->producer, r->to_dlq ? w->dlq_rkt : w->out_rkt,
                                RD_KAFKA_PARTITION_UA, r->key, r->key_len, r->val, r->val_len,
                                rd_kafka_headers_copy(r->hdrs), r->token);
    if (r->kind == REDO_TRUNCATE)
        return ks_kafka_dead_letter_truncate(w->producer, w->dlq_rkt, r->key, r->key_len,
                                             r->val, r->val_len, rd_kafka_headers_copy(r->hdrs),
                                             r->token);
    ks_dead_letter_t why = {ks_errclass_name(KS_ERRCLASS_DELIVERY), NULL, "output", NULL, -1, -1,
                            0};
    char msg[256];
    snprintf(msg, sizeof(msg), "the broker refused the output record (%zu bytes) twice: %s",
             r->val_len, rd_kafka_err2str(r->err));
    why.message = msg;
    ks_offsets_source(w->offsets, r->token, &why.topic, &why.partition, &why.offset);
    rd_kafka_resp_err_t err = ks_kafka_produce_dead_letter(
        w->producer, w->dlq_rkt, r->key, r->key_len, r->val, r->val_len, r->hdrs, &why, r->token);
    if (!err)
        ks_counter_add(w->p->metrics.dead_lettered[KS_ERRCLASS_DELIVERY], 1);
    return err;
}

/* Writes the refused records again. Returns KS_OK, KS_SINK_QUEUE_FULL (call
 * again later) or KS_EKAFKA. */
static int process_redo(ks_worker_t *w)
{
    while (w->n_redo) {
        redo_t *r = &w->redo[0];
        rd_kafka_resp_err_t err = write_redo(w, r);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return KS_SINK_QUEUE_FULL;
        if (err && r->kind == REDO_AGAIN && ks_kafka_err_is_record_level(err)) {
            r->kind = r->to_dlq ? REDO_TRUNCATE : REDO_DEAD_LETTER; /* refused as it is */
            r->err = err;
            continue;
        }
        if (err) {
            ks_error("%s: cannot write a refused record to %s: %s; stopping without "
                     "committing it", w->kctx.name,
                     rd_kafka_topic_name(r->kind == REDO_AGAIN && !r->to_dlq ? w->out_rkt
                                                                             : w->dlq_rkt),
                     rd_kafka_err2str(err));
            fail(w);
            return KS_EKAFKA;
        }
        if (r->kind == REDO_AGAIN)
            retried_add(w, r->token);
        redo_free(r);
        memmove(w->redo, w->redo + 1, --w->n_redo * sizeof(*w->redo));
    }
    return KS_OK;
}

/* ---- commits ---------------------------------------------------------- */

static int in_list(const rd_kafka_topic_partition_list_t *parts, const char *topic,
                   int32_t partition)
{
    for (int i = 0; parts && i < parts->cnt; i++)
        if (parts->elems[i].partition == partition && strcmp(parts->elems[i].topic, topic) == 0)
            return 1;
    return 0;
}

static void discard_in_hand(ks_worker_t *w);
static void txn_abort(ks_worker_t *w, const rd_kafka_topic_partition_list_t *lost,
                      int64_t deadline_ns);

/* Exactly-once, after an aborted transaction: drops everything in hand,
 * seeks each partition back to its committed offset (or where this worker
 * started it), forgets the tracked events, and lets stateful stages go back
 * to the committed prefix (revoke + assign). */
static void rewind_consumer(ks_worker_t *w, const rd_kafka_topic_partition_list_t *skip)
{
    rd_kafka_topic_partition_list_t *to = ks_offsets_rewind_points(w->offsets);
    if (!to)
        to = rd_kafka_topic_partition_list_new(8);
    /* partitions with only stashed (untracked) records: back to the first */
    for (size_t i = 0; i < w->n_stash; i++) {
        rd_kafka_message_t *m = w->stash[i];
        const char *topic = rd_kafka_topic_name(m->rkt);
        if (!rd_kafka_topic_partition_list_find(to, topic, m->partition))
            rd_kafka_topic_partition_list_add(to, topic, m->partition)->offset = m->offset;
    }
    discard_in_hand(w);
    for (int i = 0; skip && i < skip->cnt; i++)
        rd_kafka_topic_partition_list_del(to, skip->elems[i].topic, skip->elems[i].partition);
    if (to->cnt) {
        rd_kafka_error_t *error = rd_kafka_seek_partitions(w->consumer, to, 10000);
        int bad = error != NULL;
        if (error) {
            ks_error("%s: rewinding after an aborted transaction: %s", w->kctx.name,
                     rd_kafka_error_string(error));
            rd_kafka_error_destroy(error);
        }
        for (int i = 0; i < to->cnt && !bad; i++)
            if (to->elems[i].err) {
                ks_error("%s: rewinding %s [%d] to %lld: %s", w->kctx.name, to->elems[i].topic,
                         (int)to->elems[i].partition, (long long)to->elems[i].offset,
                         rd_kafka_err2str(to->elems[i].err));
                bad = 1;
            }
        if (bad)
            fail(w); /* cannot consume from the committed prefix: stop, restart does */
    }
    rd_kafka_topic_partition_list_destroy(to);
    for (int i = 0; w->assignment && i < w->assignment->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &w->assignment->elems[i];
        ks_offsets_revoke(w->offsets, tp->topic, tp->partition);
        ks_offsets_assign(w->offsets, tp->topic, tp->partition);
    }
    if (w->runner && w->assignment) {
        ks_stage_runner_revoke(w->runner, w->assignment);
        ks_stage_runner_assign(w->runner, w->assignment);
    }
    w->txn_failed = 0;
    ks_counter_add(w->p->metrics.txn_aborts, 1);
}

/* Exactly-once: commits the open transaction with the offsets of the rows
 * written in it (between batches only), or aborts and rewinds. */
static void txn_commit(ks_worker_t *w, int64_t deadline_ns)
{
    w->last_commit_ns = ks_now_mono_ns();
    if (!w->txn_open)
        return;
    /* the offsets to commit are the acknowledged watermarks, as in
     * at-least-once: a row dropped or held (never written) stops its
     * partition's offset there. So deliver everything written first (not
     * once a record failed: the transaction can then only abort, and
     * librdkafka sends none of its queued records). */
    while (rd_kafka_outq_len(w->producer) > 0 && !w->txn_failed &&
           !atomic_load(&w->p->fatal) && ks_now_mono_ns() < deadline_ns) {
        w->serve_now_ms = ks_now_wall_ms(); /* (flush serves the delivery reports) */
        w->serve_now_ns = ks_now_mono_ns();
        rd_kafka_flush(w->producer, 10);    /* sends at once, linger.ms or not */
    }
    /* Commit only when the offsets cover every record written in the
     * transaction: after a fatal error (a record that could not be written
     * holds its partition's offset behind records already written), after a
     * failed record, or with records still unacknowledged, committing would
     * make records visible whose events are processed again after a
     * restart. Abort instead. */
    int fatal = atomic_load(&w->p->fatal);
    uint64_t unacked = ks_offsets_in_flight(w->offsets);
    if (fatal || w->txn_failed || unacked) {
        ks_warn("%s: %s; aborting the transaction instead of committing it", w->kctx.name,
                fatal            ? "stopping on an error"
                : w->txn_failed  ? "a record of it failed"
                                 : "outputs are still unacknowledged");
        if (fatal) {
            w->txn_open = 0;
            if (ks_kafka_txn_abort(w->producer, deadline_ns, w->kctx.name) == KS_TXN_ABORTED)
                ks_counter_add(w->p->metrics.txn_aborts, 1);
            return;
        }
        if (w->deadline_ns && !w->txn_failed) {
            /* shutting down with outputs unacknowledged by the deadline:
             * nothing of them is visible or committed, but the work was not
             * finished (exit 1, as with at-least-once) */
            w->rc = KS_EXIT_RUNTIME;
            atomic_store(&w->p->unacknowledged, 1);
        }
        txn_abort(w, NULL, deadline_ns);
        return;
    }
    rd_kafka_topic_partition_list_t *list = ks_offsets_committable(w->offsets, 0);
    ks_txn_result_t res =
        ks_kafka_txn_commit(w->producer, w->consumer, list, deadline_ns, w->kctx.name);
    w->txn_open = 0;
    if (res == KS_TXN_OK) {
        ks_counter_add(w->p->metrics.txn_commits, 1);
        if (list)
            ks_offsets_committed(w->offsets, list);
    } else if (res == KS_TXN_ABORTED) {
        rewind_consumer(w, NULL);
    } else {
        fail(w);
    }
    if (list)
        rd_kafka_topic_partition_list_destroy(list);
}

/* Exactly-once: a record of the open transaction failed (a delivery report,
 * or a produce refused because the transaction takes no more records):
 * abort it now rather than write more into it, and process its events
 * again. */
static void abort_failed_txn(ks_worker_t *w)
{
    txn_abort(w, NULL, ks_now_mono_ns() + (int64_t)KS_TXN_ABORT_BUDGET_MS * 1000000);
}

/* Exactly-once, partitions lost (the group moved on without us: they may be
 * someone else's already): abort, and rewind the partitions kept. */
static void txn_abort(ks_worker_t *w, const rd_kafka_topic_partition_list_t *lost,
                      int64_t deadline_ns)
{
    if (w->txn_open) {
        int64_t budget = ks_now_mono_ns() + (int64_t)KS_TXN_ABORT_BUDGET_MS * 1000000;
        w->txn_open = 0;
        if (ks_kafka_txn_abort(w->producer, budget > deadline_ns ? budget : deadline_ns,
                               w->kctx.name) != KS_TXN_ABORTED) {
            fail(w);
            return;
        }
    }
    rewind_consumer(w, lost);
}

/* The stages' deferred records (the windows changelog) are produced now:
 * with exactly-once, into the open transaction (there is none when nothing
 * was processed since the last commit, and then nothing is deferred). */
static void flush_stages(ks_worker_t *w)
{
    if (w->runner && (!w->eos || w->txn_open))
        ks_stage_runner_flush(w->runner);
}

static void commit(ks_worker_t *w, int sync, int all)
{
    if (w->eos) {
        if (!w->n_msgs && !w->n_redo) { /* between batches only (none held) */
            flush_stages(w);
            /* retriable errors (a coordinator moving) are retried for as long
             * as the broker keeps the transaction open; at shutdown, until
             * the deadline */
            txn_commit(w, w->deadline_ns ? w->deadline_ns
                                         : ks_now_mono_ns() +
                                               w->p->cfg->txn_timeout_ms * 1000000);
        }
        return;
    }
    flush_stages(w);
    rd_kafka_resp_err_t err =
        ks_kafka_commit(w->consumer, w->offsets, sync, all, &w->commit_stats, w->kctx.name);
    if (sync)
        w->commit_err = err;
    w->last_commit_ns = ks_now_mono_ns();
}

/* The group moved to a new generation under the commit (librdkafka rejoins
 * by itself after these). */
static int generation_error(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
           err == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID ||
           err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS;
}

/* At-least-once shutdown: the final commit was refused with a generation
 * error. The consumer rejoins the group (serving the rebalance, which forgets
 * the partitions' watermarks), then the watermarks taken before are committed
 * again for the partitions it still owns, retried after each assignment (or
 * every second) until deadline_ns. Records fetched meanwhile are dropped:
 * nothing past those watermarks is committed, so whoever owns a partition
 * next consumes them. */
static void commit_after_rejoin(ks_worker_t *w, int64_t deadline_ns)
{
    rd_kafka_topic_partition_list_t *saved = ks_offsets_committable(w->offsets, 1);
    if (!saved)
        return;
    ks_warn("%s: the final commit was refused (%s): committing again once the consumer has "
            "rejoined the group", w->kctx.name, rd_kafka_err2str(w->commit_err));
    rd_kafka_resp_err_t err = w->commit_err;
    unsigned assigns = w->assigns;
    int64_t next_ns = ks_now_mono_ns() + 1000000000LL;
    while (generation_error(err) && ks_now_mono_ns() < deadline_ns) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, 50);
        if (m)
            rd_kafka_message_destroy(m);
        if (w->assigns == assigns && ks_now_mono_ns() < next_ns)
            continue;
        assigns = w->assigns;
        next_ns = ks_now_mono_ns() + 1000000000LL;
        rd_kafka_topic_partition_list_t *mine = rd_kafka_topic_partition_list_new(saved->cnt);
        for (int i = 0; i < saved->cnt; i++)
            if (in_list(w->assignment, saved->elems[i].topic, saved->elems[i].partition))
                rd_kafka_topic_partition_list_add(mine, saved->elems[i].topic,
                                                  saved->elems[i].partition)
                    ->offset = saved->elems[i].offset;
        if (mine->cnt) {
            err = rd_kafka_commit(w->consumer, mine, 0);
            ks_counter_add(w->commit_stats.commits, 1);
            if (err)
                ks_counter_add(w->commit_stats.failures, 1);
        }
        rd_kafka_topic_partition_list_destroy(mine);
    }
    if (err)
        ks_warn("%s: the final commit failed again: %s (those events will be processed again)",
                w->kctx.name, rd_kafka_err2str(err));
    else
        ks_info("%s: the final commit succeeded after rejoining the group", w->kctx.name);
    rd_kafka_topic_partition_list_destroy(saved);
}

static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    ks_worker_t *w = ((ks_kafka_ctx_t *)opaque)->owner;
    ks_kafka_commit_result(w->offsets, err, offsets, &w->commit_stats, w->kctx.name);
}

/* ---- backpressure ----------------------------------------------------- */

static void set_paused(ks_worker_t *w, int pause)
{
    if (w->paused == pause || !w->assignment)
        return;
    rd_kafka_resp_err_t err = pause ? rd_kafka_pause_partitions(w->consumer, w->assignment)
                                    : rd_kafka_resume_partitions(w->consumer, w->assignment);
    if (err)
        ks_warn("%s: %s partitions: %s", w->kctx.name, pause ? "pausing" : "resuming",
                rd_kafka_err2str(err));
    w->paused = pause;
    if (pause && !w->held) /* a hold is counted in batches_held */
        ks_counter_add(w->p->metrics.backpressure_pauses, 1);
    if (w->held)
        ks_info("%s: %s consumption (%s)", w->kctx.name, pause ? "paused" : "resumed",
                w->batch.hold_reason ? w->batch.hold_reason : "a stage held the batch");
    else
        ks_info("%s: %s consumption (producer queue %d messages)", w->kctx.name,
                pause ? "backpressure: paused" : "resumed", rd_kafka_outq_len(w->producer));
}

/* Enters or leaves the held state (pipeline->holding, the gauge). Leaving
 * is logged by the caller: the batch passed, or was given up (dropped). */
static void set_held(ks_worker_t *w, int held)
{
    if (w->held == held)
        return;
    w->held = held;
    atomic_fetch_add(&w->p->holding, held ? 1 : -1);
    ks_gauge_add(w->p->metrics.workers_holding, held ? 1 : -1);
    if (held) {
        atomic_store(&w->p->hold_reason, w->batch.hold_reason);
        ks_counter_add(w->p->metrics.batches_held, 1);
        ks_warn("%s: holding a batch of %zu event(s): %s; consumption paused, trying again "
                "every %lld ms", w->kctx.name, w->n_msgs,
                w->batch.hold_reason ? w->batch.hold_reason : "a stage held the batch",
                (long long)w->batch.hold_ms);
    }
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
 * later. Called only between rows, never inside a write. */
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

/* ---- the batch -------------------------------------------------------- */

static void batch_release(ks_worker_t *w)
{
    if (w->batch.recs_hold) { /* records still in flight keep their memory */
        ks_payloads_end(w->payloads, w->batch.recs_hold, &w->batch.recs);
        w->batch.recs_hold = NULL;
    }
    for (size_t i = 0; i < w->n_msgs; i++)
        rd_kafka_message_destroy(w->msgs[i]);
    w->n_msgs = 0;
    w->scored = 0;
    w->produce_pos = 0;
    ks_batch_release_models(&w->batch); /* the batch's hold on its model(s) */
    set_held(w, 0);
}

/* Exactly-once: a row whose record the broker refused twice in earlier,
 * aborted attempts goes to the dead letters at once: a good row's output
 * record (as the output sink and the delivery reports do), a failed row's
 * input event; cut (ks_dead_letter_t.truncate 1: to KS_DEAD_LETTER_TRUNCATED
 * bytes, 2: no value) when its dead letter was refused twice too. */
static int write_poisoned(ks_worker_t *w, ks_batch_t *b, size_t i, uint64_t token, int truncate)
{
    const ks_event_t *ev = &b->ev[i];
    rd_kafka_headers_t *hdrs = NULL;
    if (ev->msg && rd_kafka_message_headers(ev->msg, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        hdrs = NULL;
    const char *key = ev->key, *val = ev->value;
    size_t key_len = ev->key_len, val_len = ev->len;
    ks_dead_letter_t why = {ks_errclass_name(KS_ERRCLASS_DELIVERY),
                            "the broker refused this event's output record twice (earlier "
                            "attempts' transactions aborted)",
                            "output", ev->topic, ev->partition, ev->offset, truncate};
    ks_errclass_t cls = KS_ERRCLASS_DELIVERY;
    if (ks_batch_ok(b, i)) {
        const char *k = ks_batch_key(b, i, &key_len);
        key = k ? k : ev->key;
        key_len = k ? key_len : ev->key_len;
        val = ks_batch_record(b, i, &val_len);
    } else {
        cls = b->err[i];
        why = (ks_dead_letter_t){ks_errclass_name(cls), b->errmsg[i],
                                 b->err_stage[i] ? b->err_stage[i] : "decode", ev->topic,
                                 ev->partition, ev->offset, truncate};
    }
    rd_kafka_resp_err_t err = ks_kafka_produce_dead_letter(w->producer, w->dlq_rkt, key, key_len,
                                                           val, val_len, hdrs, &why, token);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        return KS_SINK_QUEUE_FULL;
    if (err) {
        ks_error("%s: cannot produce a dead letter: %s", w->kctx.name, rd_kafka_err2str(err));
        return KS_EKAFKA;
    }
    ks_counter_add(w->p->metrics.dead_lettered[cls], 1);
    return KS_OK;
}

/* Writes row i to its sink. Returns KS_OK, KS_SINK_QUEUE_FULL or KS_EKAFKA. */
static int write_row(ks_worker_t *w, size_t i)
{
    ks_batch_t *b = &w->batch;
    uint64_t token = w->tokens[i];
    int rc;
    if (token == 0)
        return KS_OK; /* its partition was revoked: the new owner has it */
    if (w->passthrough)
        return w->sink[SINK_PASSTHROUGH]->write(w->sink_ctx[SINK_PASSTHROUGH], b, i, token);
    if (w->n_poison) { /* exactly-once: refused before (see poison_t) */
        const ks_event_t *ev = &b->ev[i];
        poison_t *poison = find_poison(w, ev->topic, ev->partition, ev->offset);
        int truncate = poison && poison->dl_refused >= 2 ? poison->dl_refused - 1 : 0;
        if (truncate > 2) {
            ks_error("%s: the broker refused even the empty dead letter of %s [%d] @%lld; "
                     "stopping", w->kctx.name, ev->topic, (int)ev->partition,
                     (long long)ev->offset);
            fail(w);
            return KS_EKAFKA;
        }
        if (poison && (ks_batch_ok(b, i) ? poison->out_refused >= 2 : truncate > 0))
            return write_poisoned(w, b, i, token, truncate);
    }
    if (!ks_batch_ok(b, i))
        return w->sink[SINK_DEAD_LETTER]->write(w->sink_ctx[SINK_DEAD_LETTER], b, i, token);
    rc = w->sink[SINK_OUTPUT]->write(w->sink_ctx[SINK_OUTPUT], b, i, token);
    if (rc == KS_OK && w->sink_ctx[SINK_FEATURE_LOG])
        w->sink[SINK_FEATURE_LOG]->write(w->sink_ctx[SINK_FEATURE_LOG], b, i, 0);
    if (rc == KS_OK && w->sink_ctx[SINK_SHADOW])
        w->sink[SINK_SHADOW]->write(w->sink_ctx[SINK_SHADOW], b, i, 0);
    return rc;
}

/* Records one gap between consecutive batches: in kscore_batch_gap_seconds
 * and, when it is this worker's largest, kscore_batch_gap_max_seconds. */
static void record_gap(ks_worker_t *w, double gap_s, int near)
{
    ks_histogram_observe(w->p->metrics.batch_gap[near], gap_s);
    if (gap_s > w->gap_max_s[near]) {
        w->gap_max_s[near] = gap_s;
        ks_gauge_set(w->gap_max[near], gap_s);
    }
    if (near && w->n_near_gaps < KS_ARRAY_LEN(w->near_gaps_ms)) {
        w->near_gaps_ms[w->n_near_gaps++] = gap_s * 1e3;
    } else if (!near && w->n_near_gaps) {
        /* one line per swap (rare: a deployment or a reload) with the gaps
         * around it, so a slow one can be told from the machine's noise */
        char list[64];
        size_t len = 0;
        for (size_t i = 0; i < w->n_near_gaps && len < sizeof(list); i++)
            len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%.1f", i ? ", " : "",
                                    w->near_gaps_ms[i]);
        ks_info("%s: batch gaps around a model swap: %s ms (largest without a swap so far: "
                "%.1f ms)", w->kctx.name, list, w->gap_max_s[0] * 1e3);
        w->n_near_gaps = 0;
    }
}

/* A batch is done (every row written): measures the gap since the previous
 * one. A gap is "near" a swap when a model or routing swap (p->model_swaps)
 * happened in it or in the gap before or after it: a swap between two
 * batches shows in the gap it falls in (the old routing freed when its last
 * batch is released, the new model's first, cold batch) and, when it lands
 * while a batch takes its routing, in the next one. So a gap is recorded
 * one batch late, and the last one never (shutdown is not a steady state).
 * The time includes waiting for events: a quiet stream has long gaps, so
 * compare gaps at a steady rate. One clock read per batch. */
static void batch_done(ks_worker_t *w)
{
    int64_t now = ks_now_mono_ns();
    unsigned swaps = atomic_load_explicit(&w->p->model_swaps, memory_order_relaxed);
    int swapped = w->last_done_ns && swaps != w->swaps_seen;
    w->swaps_seen = swaps;
    if (w->has_pending)
        record_gap(w, w->pending_gap_s, w->pending_near || swapped);
    w->has_pending = w->last_done_ns != 0;
    w->pending_gap_s = w->has_pending ? (double)(now - w->last_done_ns) / 1e9 : 0;
    w->pending_near = swapped || w->swap_in_last_gap;
    w->swap_in_last_gap = swapped;
    w->last_done_ns = now;
}

/* Scores the gathered batch (once) and writes its rows from where the last
 * call stopped. Returns KS_OK when the batch is done, KS_SINK_QUEUE_FULL when
 * the producer queue is full (call again later: nothing is lost or
 * repeated), BATCH_HELD when a stage held it (call again: it runs again from
 * the first stage once hold_until_ns has passed), or KS_EKAFKA after a fatal
 * producer failure. Never polls the consumer, so no rebalance callback can
 * run in the middle of a batch. */
static int process_batch(ks_worker_t *w)
{
    int rc = process_redo(w);
    if (rc)
        return rc;
    if (w->n_msgs == 0)
        return KS_OK;
    if (w->eos && w->txn_failed) {
        abort_failed_txn(w);
        return KS_OK;
    }
    if (w->eos && !w->txn_open) {
        /* before the stages: what they write (changelogs) is in it too */
        if (ks_kafka_txn_begin(w->producer, w->kctx.name) != KS_TXN_OK) {
            fail(w);
            return KS_EKAFKA;
        }
        w->txn_open = 1;
    }
    if (!w->scored) {
        if (w->held && ks_now_mono_ns() < w->hold_until_ns)
            return BATCH_HELD;
        /* a held batch runs again from scratch: rows, arena and model references */
        ks_batch_release_models(&w->batch);
        ks_batch_reset(&w->batch, w->n_msgs);
        if (!w->passthrough) {
            ks_stage_runner_run(w->runner, &w->batch);
            if (w->batch.hold_ms > 0) {
                ks_batch_release_models(&w->batch); /* a later stage may have taken none */
                w->hold_until_ns = ks_now_mono_ns() + w->batch.hold_ms * 1000000;
                set_held(w, 1);
                return BATCH_HELD;
            }
            if (w->held)
                ks_info("%s: the held batch passed", w->kctx.name);
            set_held(w, 0);
            ks_counter_add(w->p->metrics.batches, 1);
            ks_histogram_observe(w->p->metrics.batch_size, (double)w->n_msgs);
            /* produce the records from their buffer, without copies; the
             * encode stage's clock read stamps their produce time */
            w->batch.recs_hold = ks_payloads_begin(w->payloads, &w->batch.recs,
                                                   w->batch.now_ns);
        }
        w->scored = 1;
        w->produce_pos = 0;
    }
    for (; w->produce_pos < w->n_msgs; w->produce_pos++) {
        if (atomic_load(&w->p->fatal))
            return KS_EKAFKA; /* not produced, never acknowledged, never committed */
        rc = w->txn_failed ? KS_EKAFKA : write_row(w, w->produce_pos);
        if (rc == KS_EKAFKA && w->eos && !atomic_load(&w->p->fatal) &&
            (w->txn_failed || rd_kafka_last_error() == RD_KAFKA_RESP_ERR__STATE)) {
            /* the transaction failed: it takes no more records */
            abort_failed_txn(w);
            return KS_OK;
        }
        if (rc) {
            if (rc != KS_SINK_QUEUE_FULL)
                fail(w);
            return rc;
        }
    }
    batch_release(w);
    batch_done(w);
    serve_producer(w, 0);
    return KS_OK;
}

static void add_to_batch(ks_worker_t *w, rd_kafka_message_t *m, int64_t now_ns)
{
    size_t i = w->n_msgs++;
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    const char *topic = rd_kafka_topic_name(m->rkt);
    w->msgs[i] = m;
    w->batch.ev[i] = (ks_event_t){m->payload ? m->payload : "", m->len, m->key, m->key_len, ts,
                                  now_ns, topic, m->partition, m->offset, m};
    w->tokens[i] = ks_offsets_track(w->offsets, topic, m->partition, m->offset, ts);
    ks_counter_add(w->p->metrics.consumed, 1);
}

/* Moves stashed records into the batch being gathered, stamped now_ns. */
static void take_stash(ks_worker_t *w, int64_t now_ns)
{
    size_t k = 0;
    while (k < w->n_stash && w->n_msgs < w->cap && !w->scored)
        add_to_batch(w, w->stash[k++], now_ns);
    if (k) /* (never memmove a NULL stash, even for 0 bytes) */
        memmove(w->stash, w->stash + k, (w->n_stash - k) * sizeof(*w->stash));
    w->n_stash -= k;
}

/* Drops every event in hand (batch, stash, refused records). */
static void discard_in_hand(ks_worker_t *w)
{
    for (size_t i = 0; i < w->n_stash; i++)
        rd_kafka_message_destroy(w->stash[i]);
    w->n_stash = 0;
    batch_release(w);
    drop_redo(w);
}

/* A drain ran out of time: drops the events of the revoked partitions (all
 * when `parts` is NULL) that are still in hand, keeping the others. */
static void drop_revoked(ks_worker_t *w, const rd_kafka_topic_partition_list_t *parts)
{
    size_t kept = 0, dropped = 0;
    for (size_t i = 0; i < w->n_stash; i++) {
        rd_kafka_message_t *m = w->stash[i];
        if (!parts || in_list(parts, rd_kafka_topic_name(m->rkt), m->partition)) {
            rd_kafka_message_destroy(m);
            dropped++;
        } else {
            w->stash[kept++] = m;
        }
    }
    w->n_stash = kept;
    /* rows not yet written: a scored batch skips them (token 0); an unscored
     * one loses them */
    kept = w->scored ? w->n_msgs : 0;
    for (size_t i = w->scored ? w->produce_pos : 0; i < w->n_msgs; i++) {
        rd_kafka_message_t *m = w->msgs[i];
        int revoked = !parts || in_list(parts, rd_kafka_topic_name(m->rkt), m->partition);
        if (w->scored) {
            if (revoked && w->tokens[i]) {
                w->tokens[i] = 0;
                dropped++;
            }
        } else if (revoked) {
            rd_kafka_message_destroy(m);
            dropped++;
        } else {
            w->msgs[kept] = m;
            w->batch.ev[kept] = w->batch.ev[i];
            w->tokens[kept++] = w->tokens[i];
        }
    }
    w->n_msgs = kept;
    size_t in_hand = w->n_stash;
    for (size_t i = w->scored ? w->produce_pos : 0; i < w->n_msgs; i++)
        in_hand += w->tokens[i] != 0;
    if (w->n_msgs == 0)
        batch_release(w);
    if (dropped)
        ks_warn("%s: %zu event(s) of revoked partitions were not finished in time (their new "
                "owner consumes them again from the committed offset); %zu of the partitions "
                "kept stay in hand", w->kctx.name, dropped, in_hand);
}

/* Finishes everything in hand (or, with `parts`, at least everything of
 * those partitions), waits until deadline_ns for acknowledgements and
 * commits synchronously. Used on revocation and shutdown. */
static void drain_and_commit(ks_worker_t *w, const rd_kafka_topic_partition_list_t *parts,
                             int64_t deadline_ns)
{
    while (w->n_stash || w->n_msgs || w->n_redo) {
        take_stash(w, ks_now_mono_ns());
        int rc = process_batch(w);
        if ((rc == KS_SINK_QUEUE_FULL || rc == BATCH_HELD) && ks_now_mono_ns() < deadline_ns) {
            serve_producer(w, rc == BATCH_HELD ? 10 : 50);
            continue;
        }
        if (rc) /* out of time or fatal: these events stay uncommitted */
            break;
    }
    if (w->n_stash || w->n_msgs)
        drop_revoked(w, parts);
    if (!w->n_msgs && !w->n_redo)
        flush_stages(w); /* their records are acknowledged in the wait below */
    while (ks_offsets_in_flight(w->offsets) > 0 && ks_now_mono_ns() < deadline_ns &&
           !atomic_load(&w->p->fatal) && !w->txn_failed) {
        serve_producer(w, 50);
        if (w->n_redo && process_redo(w) == KS_EKAFKA)
            break;
    }
    commit(w, 1, 1);
}

static int64_t revocation_deadline(const ks_worker_t *w)
{
    if (w->deadline_ns) /* shutting down: the one deadline */
        return w->deadline_ns;
    return ks_now_mono_ns() + w->p->cfg->shutdown_timeout_ms * 1000000;
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    ks_worker_t *w = ((ks_kafka_ctx_t *)opaque)->owner;
    const ks_kafka_observer_t *obs = &w->p->kafka_obs;

    ks_counter_add(w->p->metrics.rebalances, 1);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        ks_info("%s: assigned %d partition(s)", w->kctx.name, parts->cnt);
        w->assigns++;
        for (int i = 0; i < parts->cnt; i++)
            ks_offsets_assign(w->offsets, parts->elems[i].topic, parts->elems[i].partition);
        if (w->runner)
            ks_stage_runner_assign(w->runner, parts);
    } else if (w->eos && rd_kafka_assignment_lost(rk)) {
        ks_warn("%s: %d partition(s) lost (the group moved on without this member): the open "
                "transaction aborts", w->kctx.name, parts->cnt);
        txn_abort(w, parts, revocation_deadline(w));
        if (w->runner)
            ks_stage_runner_revoke(w->runner, parts);
        for (int i = 0; i < parts->cnt; i++)
            ks_offsets_revoke(w->offsets, parts->elems[i].topic, parts->elems[i].partition);
    } else {
        ks_info("%s: revoking %d partition(s)", w->kctx.name, parts->cnt);
        drain_and_commit(w, parts, revocation_deadline(w));
        if (w->runner)
            ks_stage_runner_revoke(w->runner, parts);
        for (int i = 0; i < parts->cnt; i++)
            ks_offsets_revoke(w->offsets, parts->elems[i].topic, parts->elems[i].partition);
    }
    ks_kafka_rebalance_apply(rk, err, parts, w->kctx.name);
    /* Track the current assignment for pause/resume. */
    if (w->paused && w->assignment) {
        rd_kafka_resume_partitions(rk, w->assignment);
        w->paused = 0;
    }
    if (w->assignment)
        rd_kafka_topic_partition_list_destroy(w->assignment);
    w->assignment = NULL;
    rd_kafka_assignment(rk, &w->assignment);
    if (obs->assignment)
        obs->assignment(obs->opaque, w->id, w->assignment);
}

/* ---- the thread -------------------------------------------------------- */

static void gather(ks_worker_t *w, int64_t wait_ns)
{
    /* take what the consumer has buffered without waiting; wait (until the
     * batch's max_wait) only when nothing is buffered. Busy streams get full
     * batches, quiet ones no added latency beyond max_wait (0 = never).
     * Events are stamped received (recv_ns) with one clock read per poll
     * that may have waited, not one per event: records taken from the
     * consumer's buffer in one go arrived together. */
    int64_t first_ns = 0, now_ns = 0;
    if (w->n_stash) {
        now_ns = ks_now_mono_ns();
        take_stash(w, now_ns);
    }
    if (w->n_msgs)
        first_ns = now_ns;
    for (size_t k = 0; w->n_msgs < w->cap && k < w->cap && !atomic_load(&w->p->stop); k++) {
        int waited = w->n_msgs == 0;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, w->n_msgs ? 0 : 100);
        if (!m && w->n_msgs) {
            int64_t left = first_ns + wait_ns - ks_now_mono_ns();
            if (left > 0) {
                m = rd_kafka_consumer_poll(w->consumer, (int)((left + 999999) / 1000000));
                waited = 1;
            }
        }
        if (!m)
            break;
        if (waited)
            now_ns = ks_now_mono_ns();
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                ks_warn("%s: consumer: %s", w->kctx.name, rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        add_to_batch(w, m, now_ns);
        if (w->n_msgs == 1)
            first_ns = now_ns;
    }
}

static void *worker_main(void *arg)
{
    ks_worker_t *w = arg;
    const struct ks_config *cfg = w->p->cfg;
    int64_t wait_ns = cfg->batch_max_wait_ms * 1000000;
    int64_t commit_ns = cfg->commit_interval_ms * 1000000;

    w->last_commit_ns = ks_now_mono_ns();
    while (!atomic_load(&w->p->stop)) {
        if (w->scored || w->n_redo || w->held) {
            /* a batch (or a refused record) waits for room in the producer
             * queue, or a stage held the batch */
            int rc = process_batch(w);
            if (rc == KS_SINK_QUEUE_FULL || rc == BATCH_HELD) {
                set_paused(w, 1);
                serve_producer(w, rc == BATCH_HELD ? 10 : 50);
                serve_consumer(w);
            }
        } else {
            gather(w, wait_ns);
            if (w->n_msgs)
                process_batch(w);
        }
        /* serve deliveries, resume when the queue has drained */
        serve_producer(w, 0);
        ks_gauge_set(w->queue_depth, (double)rd_kafka_outq_len(w->producer));
        if (w->paused && !w->scored && !w->held &&
            rd_kafka_outq_len(w->producer) < w->queue_max / 2)
            set_paused(w, 0);
        if (ks_now_mono_ns() - w->last_commit_ns >= commit_ns)
            commit(w, 0, 0);
    }

    w->deadline_ns = ks_now_mono_ns() + cfg->shutdown_timeout_ms * 1000000;
    if (!atomic_load(&w->p->fatal)) {
        ks_info("%s: shutting down: finishing the batch in flight", w->kctx.name);
        drain_and_commit(w, NULL, w->deadline_ns);
        if (!w->eos && generation_error(w->commit_err))
            commit_after_rejoin(w, w->deadline_ns);
    } else {
        w->rc = KS_EXIT_RUNTIME;
        if (w->eos)
            txn_commit(w, w->deadline_ns); /* after a fatal error it aborts */
        else
            commit(w, 1, 1); /* acknowledged work is still safe to commit */
    }
    uint64_t left = ks_offsets_in_flight(w->offsets);
    if (left && !atomic_load(&w->p->fatal)) {
        ks_error("%s: %llu output(s) were not acknowledged within shutdown.timeout_ms; their "
                 "offsets are not committed and they will be processed again",
                 w->kctx.name, (unsigned long long)left);
        w->rc = KS_EXIT_RUNTIME;
        atomic_store(&w->p->unacknowledged, 1);
    }
    atomic_store(&w->final_commit_done, 1);
    /* leaving the group: the final revocation finds nothing left to drain */
    w->close_abandoned = ks_kafka_consumer_close(w->consumer, on_rebalance, &w->kctx,
                                                 w->deadline_ns + 2000000000LL, w->kctx.name);
    if (atomic_load(&w->p->abandoned)) /* ks_worker_join gave up on it */
        ks_warn("%s: stopped, after the pipeline stopped waiting for it", w->kctx.name);
    else
        ks_info("%s: stopped", w->kctx.name);
    return NULL;
}

/* Caps the producer's batch.size to the smallest max.message.bytes of the
 * topics it writes (engine/pipeline.c reads them at start-up): the broker
 * refuses a batch larger than that as a whole, every record in it, however
 * small each is. A record larger than the limit still goes alone in its
 * batch (batch.size never refuses the first record), is refused alone and
 * so is the only one to fail. */
static int cap_batch_size(ks_worker_t *w, rd_kafka_conf_t *pc, char *errbuf, size_t errsize)
{
    char cur[32], cap[32];
    size_t len = sizeof(cur);
    if (rd_kafka_conf_get(pc, "batch.size", cur, &len) != RD_KAFKA_CONF_OK ||
        atoll(cur) <= w->p->produce_max_bytes)
        return KS_OK;
    snprintf(cap, sizeof(cap), "%lld", (long long)w->p->produce_max_bytes);
    if (w->id == 0)
        ks_info("producer batch.size %s capped to %s bytes: max.message.bytes of %s", cur, cap,
                w->p->produce_max_topic);
    return ks_kafka_conf_set(pc, "batch.size", cap, errbuf, errsize);
}

int ks_worker_new(struct ks_pipeline *p, int id, struct ks_worker **out, char *errbuf,
                  size_t errsize)
{
    const struct ks_config *cfg = p->cfg;
    ks_worker_t *w = ks_xcalloc(1, sizeof(*w));
    rd_kafka_conf_t *cc = NULL, *pc = NULL;
    char client_id[64];
    int rc;

    w->p = p;
    w->id = id;
    w->kctx = (ks_kafka_ctx_t){.worker = id, .obs = &p->kafka_obs,
                               .errors = p->metrics.kafka_errors, .on_fatal = on_fatal,
                               .owner = w};
    snprintf(w->kctx.name, sizeof(w->kctx.name), "worker-%d", id);
    snprintf(client_id, sizeof(client_id), "kscore-%d", id);
    w->commit_stats = (ks_commit_stats_t){p->metrics.commits, p->metrics.commit_failures};
    w->cap = (size_t)cfg->batch_max_size;
    w->passthrough = strcmp(cfg->mode, "passthrough") == 0;
    w->queue_depth = ks_engine_metrics_queue_gauge(id);
    ks_engine_metrics_gap_gauges(id, w->gap_max);
    w->msgs = ks_xcalloc(w->cap, sizeof(*w->msgs));
    w->tokens = ks_xcalloc(w->cap, sizeof(*w->tokens));
    w->offsets = ks_offsets_new();
    w->payloads = ks_payloads_new();
    ks_batch_init(&w->batch, cfg->schema->n_fields, p->n_cols);
    ks_batch_reset(&w->batch, w->cap); /* room for a full batch */

    /* Producer: our defaults first, then the user's kafka: properties. */
    pc = rd_kafka_conf_new();
    if ((rc = ks_kafka_conf_set(pc, "client.id", client_id, errbuf, errsize)) ||
        (rc = ks_kafka_conf_set(pc, "enable.idempotence", "true", errbuf, errsize)) ||
        (rc = ks_kafka_conf_set(pc, "linger.ms", "5", errbuf, errsize)) ||
        (rc = ks_kafka_conf_set(pc, "partitioner", "murmur2_random", errbuf, errsize)) ||
        (rc = ks_config_apply_kafka(cfg, KS_KAFKA_PRODUCER, pc, errbuf, errsize)))
        goto out;
    if (p->produce_max_bytes > 0 && (rc = cap_batch_size(w, pc, errbuf, errsize)))
        goto out;
    char qmax[32];
    size_t qlen = sizeof(qmax);
    w->queue_max = 100000;
    if (rd_kafka_conf_get(pc, "queue.buffering.max.messages", qmax, &qlen) == RD_KAFKA_CONF_OK)
        w->queue_max = atol(qmax);
    w->eos = strcmp(cfg->delivery, "exactly_once") == 0 && !w->passthrough;
    if (w->eos) {
        char host[128] = "localhost", txn_id[512], tmo[32];
        if (!cfg->txn_instance_id && gethostname(host, sizeof(host)) != 0)
            snprintf(host, sizeof(host), "localhost");
        host[sizeof(host) - 1] = '\0';
        snprintf(txn_id, sizeof(txn_id), "kscore-%s-%s-%d", cfg->input_group_id,
                 cfg->txn_instance_id ? cfg->txn_instance_id : host, id);
        snprintf(tmo, sizeof(tmo), "%lld", cfg->txn_timeout_ms);
        if ((rc = ks_kafka_conf_set(pc, "transactional.id", txn_id, errbuf, errsize)) ||
            (rc = ks_kafka_conf_set(pc, "transaction.timeout.ms", tmo, errbuf, errsize)))
            goto out;
    }
    rd_kafka_conf_set_dr_msg_cb(pc, on_delivery);
    rc = ks_kafka_client_new(&w->kctx, RD_KAFKA_PRODUCER, pc, &w->producer, errbuf, errsize);
    pc = NULL;
    if (rc)
        goto out;
    w->kctx.producer = w->producer;
    if (w->eos && (rc = ks_kafka_txn_init(w->producer, 30000, errbuf, errsize)))
        goto out;
    w->out_rkt = rd_kafka_topic_new(w->producer, cfg->output_topic, NULL);
    w->dlq_rkt = rd_kafka_topic_new(w->producer, cfg->dlq_topic, NULL);

    /* Sinks, and the stages' per-thread state */
    ks_sink_env_t senv = {p, id, w->producer, w->queue_max};
    const ks_sink_type_t *sinks[N_SINKS] = {&ks_sink_output, &ks_sink_dead_letter,
                                            &ks_sink_feature_log, &ks_sink_passthrough,
                                            &ks_sink_shadow};
    for (int s = 0; s < N_SINKS; s++) {
        w->sink[s] = sinks[s];
        if ((s == SINK_PASSTHROUGH) != w->passthrough)
            continue;
        if ((rc = sinks[s]->init(&senv, &w->sink_ctx[s], errbuf, errsize)))
            goto out;
    }
    if (!w->passthrough) {
        ks_stage_env_t env = {p, id, w->producer, w->offsets};
        if ((rc = ks_stage_runner_new(p->stages, &env, &w->runner, errbuf, errsize)))
            goto out;
    }

    /* Consumer */
    cc = rd_kafka_conf_new();
    if ((rc = ks_kafka_conf_set(cc, "client.id", client_id, errbuf, errsize)) ||
        (rc = ks_kafka_conf_set(cc, "auto.offset.reset", "earliest", errbuf, errsize)) ||
        (rc = ks_config_apply_kafka(cfg, KS_KAFKA_CONSUMER, cc, errbuf, errsize)) ||
        (rc = ks_kafka_conf_set(cc, "group.id", cfg->input_group_id, errbuf, errsize)) ||
        (rc = ks_kafka_conf_set(cc, "enable.auto.commit", "false", errbuf, errsize)) ||
        (rc = ks_kafka_conf_set(cc, "enable.auto.offset.store", "false", errbuf, errsize)))
        goto out;
    rd_kafka_conf_set_rebalance_cb(cc, on_rebalance);
    rd_kafka_conf_set_offset_commit_cb(cc, on_commit);
    rc = ks_kafka_client_new(&w->kctx, RD_KAFKA_CONSUMER, cc, &w->consumer, errbuf, errsize);
    cc = NULL;
    if (rc)
        goto out;
    rd_kafka_poll_set_consumer(w->consumer);
out:
    if (cc)
        rd_kafka_conf_destroy(cc);
    if (pc)
        rd_kafka_conf_destroy(pc);
    *out = w;
    return rc;
}

int ks_worker_start(struct ks_worker *w, char *errbuf, size_t errsize)
{
    const struct ks_config *cfg = w->p->cfg;
    int rc = KS_OK;
    rd_kafka_topic_partition_list_t *topics =
        rd_kafka_topic_partition_list_new((int)cfg->input_topics.n);
    for (size_t i = 0; i < cfg->input_topics.n; i++)
        rd_kafka_topic_partition_list_add(topics, cfg->input_topics.items[i],
                                          RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(w->consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err)
        rc = ks_err(errbuf, errsize, KS_EKAFKA, "cannot subscribe: %s", rd_kafka_err2str(err));
    else if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
        rc = ks_err(errbuf, errsize, KS_EIO, "cannot start the worker thread");
    else
        w->started = 1;
    return rc;
}

/* librdkafka 2.0.x can hang for good in rd_kafka_destroy of a group
 * consumer: a partition reference leaked since 2.0.0 keeps a broker thread
 * alive, and destroy joins it (librdkafka issues #4486, #4674; seen here once
 * in a benchmark, after a clean close with everything committed). So the
 * handle is destroyed on a thread of its own, waited for until the deadline;
 * past it the handle, and whatever its threads may still reach, is left to
 * the process exit. Returns 1 when destroyed. */
typedef struct destroy_job {
    rd_kafka_t *rk;
    int flags;
} destroy_job_t;

static void *destroy_main(void *arg)
{
    destroy_job_t *job = arg;
    rd_kafka_destroy_flags(job->rk, job->flags);
    return NULL;
}

static int destroy_bounded(rd_kafka_t *rk, int flags, int64_t deadline_ms, const char *who)
{
    destroy_job_t *job = ks_xcalloc(1, sizeof(*job));
    pthread_t th;
    job->rk = rk;
    job->flags = flags;
    if (pthread_create(&th, NULL, destroy_main, job) != 0) {
        destroy_main(job);
        free(job);
        return 1;
    }
    struct timespec ts = {(time_t)(deadline_ms / 1000), (long)(deadline_ms % 1000) * 1000000};
    if (pthread_timedjoin_np(th, NULL, &ts) == 0) {
        free(job);
        return 1;
    }
    pthread_detach(th); /* job stays allocated: the thread still reads it */
    ks_error("%s: the Kafka client did not close by the shutdown deadline (a known librdkafka "
             "2.0 hang); exiting without it (everything acknowledged was committed)", who);
    return 0;
}

int ks_worker_join(struct ks_worker *w, int64_t deadline_ms)
{
    int rc = KS_EXIT_OK;
    if (w->started) {
        struct timespec ts = {(time_t)(deadline_ms / 1000), (long)(deadline_ms % 1000) * 1000000};
        if (pthread_timedjoin_np(w->thread, NULL, &ts) != 0) {
            /* Everything acknowledged is committed before a worker leaves its
             * group; a worker stuck past that (seen inside librdkafka while
             * leaving a group mid-rebalance), or before it (a synchronous
             * commit the coordinator does not answer), must not keep the
             * process alive. The run fails unless it had committed.
             * It may still run callbacks: nothing it can reach is freed (the
             * pipeline, the observer and this worker are left to the exit). */
            int committed = atomic_load(&w->final_commit_done);
            ks_error("%s did not stop within shutdown.timeout_ms; exiting without it (%s)",
                     w->kctx.name,
                     committed ? "its acknowledged offsets were committed"
                               : "stuck before its final commit: the events since its last "
                                 "commit will be processed again");
            atomic_store(&w->p->abandoned, 1);
            /* left unacknowledged outputs (p->unacknowledged) also fail the run */
            return committed ? KS_EXIT_OK : KS_EXIT_RUNTIME;
        }
        rc = w->rc;
    }
    /* every message before its consumer handle */
    batch_release(w);
    for (size_t i = 0; i < w->n_stash; i++)
        rd_kafka_message_destroy(w->stash[i]);
    w->n_stash = 0;
    if (w->consumer &&
        !destroy_bounded(w->consumer,
                         w->close_abandoned ? RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE : 0,
                         deadline_ms, w->kctx.name)) {
        atomic_store(&w->p->abandoned, 1);
        return rc; /* its threads may still run callbacks: nothing is freed */
    }
    ks_stage_runner_free(w->runner);
    for (int s = 0; s < N_SINKS; s++)
        if (w->sink_ctx[s])
            w->sink[s]->free(w->sink_ctx[s]);
    drop_redo(w);
    free(w->redo);
    free(w->retried);
    for (size_t i = 0; i < w->n_poison; i++)
        free(w->poison[i].topic);
    free(w->poison);
    if (w->out_rkt)
        rd_kafka_topic_destroy(w->out_rkt);
    if (w->dlq_rkt)
        rd_kafka_topic_destroy(w->dlq_rkt);
    if (w->producer && !destroy_bounded(w->producer, 0, deadline_ms, w->kctx.name)) {
        atomic_store(&w->p->abandoned, 1);
        return rc;
    }
    ks_payloads_free(w->payloads); /* librdkafka is done reading payloads */
    if (w->assignment)
        rd_kafka_topic_partition_list_destroy(w->assignment);
    free(w->stash);
    ks_batch_destroy(&w->batch);
    ks_offsets_free(w->offsets);
    free(w->msgs);
    free(w->tokens);
    free(w);
    return rc;
}
