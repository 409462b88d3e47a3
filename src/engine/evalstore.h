/*
 * evalstore.h - the durable, bounded store of predictions waiting for their
 * labels (online evaluation, docs/quality.md).
 *
 * Each prediction (id, score, model version, variant, time) waits until its
 * label arrives or max_wait passes. The store then remembers the id's fate
 * (joined or expired) for another max_wait, so that a second label is
 * counted as a duplicate and a label after the deadline as late, not as an
 * unknown id.
 *
 * Durability: an append-only log file, one line per change:
 *   P <time_ms> <score> <version> <variant> <id>   a prediction
 *   J <id>                                        its label arrived
 *   X <id>                                        it expired
 * (strings percent-escaped: no space, newline or '%' inside a field).
 * ks_evalstore_sync flushes and fdatasyncs it; the caller syncs before it
 * commits whatever the store's contents stand for (the input offsets of the
 * predictions, the labels topic's offsets). Opening replays the log, drops
 * what is past its deadline, and rewrites it compacted (write, fsync,
 * rename), so the file stays about the size of the live entries.
 *
 * Bound: at most max_entries ids (waiting and remembered); a prediction
 * arriving when the store is full is not tracked and counted (`full`), never
 * blocking scoring.
 *
 * Threads: one mutex inside; any thread.
 */
#ifndef KS_EVALSTORE_H
#define KS_EVALSTORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct ks_evalstore ks_evalstore_t;

typedef enum {
    KS_EVAL_UNKNOWN = 0,  /* never seen (or forgotten) */
    KS_EVAL_JOINED,       /* the label is joined: *pred is the prediction */
    KS_EVAL_DUPLICATE,    /* a label for an id already joined */
    KS_EVAL_LATE,         /* a label for an id whose max_wait had passed */
} ks_eval_outcome_t;

typedef struct ks_eval_pred {
    double score;
    int64_t time_ms;
    char version[128], variant[64];
} ks_eval_pred_t;

typedef struct ks_evalstore_stats {
    uint64_t waiting, remembered, full, expired;
} ks_evalstore_stats_t;

/* Opens (creating) the log at `path` and replays it as of now_ms. */
int ks_evalstore_open(const char *path, size_t max_entries, int64_t max_wait_ms, int64_t now_ms,
                      ks_evalstore_t **out, char *errbuf, size_t errsize);
/* Syncs and closes. */
void ks_evalstore_close(ks_evalstore_t *s);

/* Records a prediction. A second prediction for a waiting id replaces it.
 * Returns 0, or KS_ESTATE when the store is full (counted), KS_EIO when the
 * log cannot be written. */
int ks_evalstore_put(ks_evalstore_t *s, const char *id, size_t id_len, const ks_eval_pred_t *p);
/* A label for id arriving at now_ms: joins it (*pred filled) or says why
 * not. A waiting prediction older than max_wait is late even if
 * ks_evalstore_expire has not run yet (it expires here; *pred is filled
 * so the caller can count it unlabelled). */
ks_eval_outcome_t ks_evalstore_label(ks_evalstore_t *s, const char *id, size_t id_len,
                                     int64_t now_ms, ks_eval_pred_t *pred);
/* Expires waiting predictions older than max_wait, forgets remembered ids
 * older than 2 x max_wait; calls on_expire(ctx, pred) for each expiry (to
 * count the unlabelled share). Returns the number expired. */
size_t ks_evalstore_expire(ks_evalstore_t *s, int64_t now_ms,
                           void (*on_expire)(void *ctx, const ks_eval_pred_t *p), void *ctx);
/* Flushes the log to disk (fdatasync). */
int ks_evalstore_sync(ks_evalstore_t *s);
void ks_evalstore_stats(ks_evalstore_t *s, ks_evalstore_stats_t *st);

#endif
