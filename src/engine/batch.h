/*
 * batch.h - the micro-batch: what flows through the stages (engine/stage.h)
 * and out through the sinks (engine/sink.h).
 *
 * A batch is columnar. Row i is input event i; each stage fills its part for
 * every row that has not failed yet:
 *
 *   ev[i]          the input: value bytes, key, timestamps, source position
 *   fields[i*nf+k] decoded field k (stage "decode"; virtual fields, which
 *                  stages such as windows and lookups fill, come after the
 *                  decoded ones: decode/schema.h)
 *   F, good_row    the feature matrix, good rows only, one column per
 *                  configured feature (stage "features")
 *   sv, X, out     the model, its input matrix (F itself when the model takes
 *                  the columns in configured order, else F reordered) and
 *                  its outputs per good row (stage "model")
 *   recs           the output record of each good row (stage "encode")
 *   err, errmsg,   per-row failure: the class, a sentence, and the stage that
 *   err_stage      failed it (the dead letter's __kscore.errors.stage header)
 *
 * Memory: every array is sized for the largest batch seen and reused; the
 * arena holds unescaped strings and error messages and is reset per batch.
 * A batch belongs to one worker thread (or to the offline scorer).
 */
#ifndef KS_BATCH_H
#define KS_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/buf.h"
#include "decode/value.h"

struct ks_serving;
struct ks_payload_block;
struct ks_routing;

/* One event entering a batch. `value` and `key` point into the input record
 * (or the offline line), which outlives the batch's use of it. */
typedef struct ks_event {
    const char *value;
    size_t len;
    const char *key;       /* the input record's key, NULL if none */
    size_t key_len;
    int64_t timestamp_ms;  /* the input record's timestamp, -1 if none */
    int64_t recv_ns;       /* monotonic time the event was received */
    const char *topic;     /* source position (offline: NULL, -1, the line number) */
    int32_t partition;
    int64_t offset;
    const void *msg;       /* the rd_kafka_message_t it came in (NULL offline) */
} ks_event_t;

typedef struct ks_batch {
    size_t n;                  /* rows in this batch */
    size_t cap;                /* rows the per-row arrays hold */
    ks_event_t *ev;            /* cap; filled by the worker (or offline reader) */
    size_t n_fields;           /* schema fields per row, virtual ones included */
    ks_value_t *fields;        /* cap x n_fields */

    size_t n_cols;             /* feature columns per row of F */
    double *F;                 /* rows x n_cols */
    size_t f_cap;
    size_t rows;               /* good rows in F */
    size_t *good_row;          /* row -> its row in F/X/out, or SIZE_MAX */

    struct ks_serving *sv;     /* the model this batch is scored with: a reference
                                  held from the model stage until the batch is released */
    const double *X;           /* rows x model n_features: F, or xbuf reordered */
    double *xbuf;
    size_t x_cap;
    double *out;               /* rows x model n_outputs */
    size_t out_cap;

    ks_buf_t recs;             /* output records, back to back */
    struct ks_payload_block *recs_hold; /* set by the worker while the records
                                  are produced without copying: each one
                                  produced takes a reference (kafka/payloads.h) */
    size_t *rec_off, *rec_len; /* per row: its record in recs */
    const char **key_ptr;      /* per row: the record key in the event (string id) */
    size_t *key_off, *key_len; /* ... or in recs (numeric id; SIZE_MAX = none) */

    ks_errclass_t *err;        /* per row; KS_ERRCLASS_NONE = still good */
    const char **errmsg;       /* per row, in the arena */
    const char **err_stage;    /* per row: name of the stage (or sink) that failed it */

    /* Lookups (engine/stages/lookups.c): per row, bit j set = lookup j's
     * values are its defaults because Redis was unavailable; the encoder
     * adds "degraded": [names of the set bits] to the row's record. Both
     * point into the lookups stage's thread state; NULL when no lookup runs. */
    const uint32_t *degraded;
    const char *const *degraded_names;

    /* Hold (engine/stage.h, "Holding a batch"): a stage that cannot serve
     * the batch now sets hold_ms > 0 and hold_reason (a string that lives as
     * long as the pipeline's config); the runner stops there and the worker
     * runs the batch again from the start, reset, after hold_ms. */
    int64_t hold_ms;
    const char *hold_reason;

    /* Deployments (engine/stages/route.c; all NULL when model.deployments_topic
     * is off): the routing held with sv, each row's variant in it, the shadow
     * model's outputs per good row (F order) and whether it scored the row,
     * and each good row's shadow record (encode). Per-row arrays point into
     * the stages' thread state. */
    struct ks_routing *rt;
    const uint8_t *variant;
    const double *shadow_out;
    const uint8_t *shadow_ok;
    const ks_buf_t *shadow_recs;
    const size_t *shadow_off, *shadow_len;

    int64_t now_ms, now_ns;    /* one wall/monotonic clock read per batch (encode) */
    ks_arena_t arena;
} ks_batch_t;

void ks_batch_init(ks_batch_t *b, size_t n_fields, size_t n_cols);
void ks_batch_destroy(ks_batch_t *b);
/* Makes room for n rows and clears the per-row state of rows 0..n (the
 * events are the caller's to fill); F has room for n rows. Resets the
 * arena. The model references (sv, rt) must have been released. */
void ks_batch_reset(ks_batch_t *b, size_t n);
/* Sizes xbuf (when `reorder`) and out for the good rows and a model of these
 * dimensions. */
void ks_batch_size_model(ks_batch_t *b, int reorder, size_t n_features, size_t n_outputs);

/* Fails row i: class, stage name (a static string) and a message (copied). */
void ks_batch_fail(ks_batch_t *b, size_t i, ks_errclass_t cls, const char *stage,
                   const char *msg);

static inline int ks_batch_ok(const ks_batch_t *b, size_t i)
{
    return b->err[i] == KS_ERRCLASS_NONE;
}

static inline const ks_value_t *ks_batch_row(const ks_batch_t *b, size_t i)
{
    return b->fields + i * b->n_fields;
}

/* Appends `,"degraded":["profile",...]` for row i if a lookup served it
 * defaults because Redis was unavailable; nothing otherwise (encode stage). */
static inline void ks_batch_degraded_json(const ks_batch_t *b, size_t i, ks_buf_t *out)
{
    uint32_t m = b->degraded ? b->degraded[i] : 0;
    if (!m)
        return;
    ks_buf_puts(out, ",\"degraded\":[");
    for (int j = 0, first = 1; m; j++, m >>= 1) {
        if (!(m & 1))
            continue;
        if (!first)
            ks_buf_putc(out, ',');
        ks_buf_putc(out, '"');
        ks_buf_puts(out, b->degraded_names[j]); /* letters, digits, '_': no escaping */
        ks_buf_putc(out, '"');
        first = 0;
    }
    ks_buf_putc(out, ']');
}

/* Row i's output record (encode stage). */
static inline const char *ks_batch_record(const ks_batch_t *b, size_t i, size_t *len)
{
    *len = b->rec_len[i];
    return b->recs.data + b->rec_off[i];
}

/* The id field's text as the output record's key, or NULL (no id field, or
 * missing: the input record's key is reused). */
static inline const char *ks_batch_key(const ks_batch_t *b, size_t i, size_t *len)
{
    *len = b->key_len[i];
    if (b->key_ptr[i])
        return b->key_ptr[i];
    return b->key_off[i] != (size_t)-1 ? b->recs.data + b->key_off[i] : NULL;
}

#endif
