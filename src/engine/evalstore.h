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
 *   O <topic> <partition> <offset>                the labels topic's position
 * (strings percent-escaped: no space, newline or '%' inside a field).
 * ks_evalstore_sync flushes and fdatasyncs it. A last line without its
 * newline (a crash mid-write) is skipped.
 *
 * Positions: the labels thread reads every partition of the labels topic
 * itself (no consumer group) and keeps where it is in the store, so that a
 * restart resumes where the last sync left off. ks_evalstore_set_position
 * only notes the position in memory; ks_evalstore_sync writes an O line for
 * each position that moved, after the fdatasync that put the joins before
 * it on disk. So a position on disk never runs ahead of its joins: a crash
 * can only make a restart read a few labels again, whose ids the store
 * remembers as joined (counted duplicate, never joined twice). Compaction
 * keeps the last position of each partition. One labels topic at a time:
 * setting a position on another topic forgets the old topic's positions.
 *
 * Size: starting replays the log, drops what is past its deadline and
 * rewrites it compacted (write, fsync, rename). While running,
 * ks_evalstore_sync compacts again whenever the log holds more than twice
 * the lines of the live entries (and at least KS_EVALSTORE_COMPACT_MIN):
 * the live entries are written to PATH.tmp in chunks of a few thousand, the
 * lock released between chunks so that scoring threads are never held for
 * the whole table; records appended meanwhile go to both files (each
 * record sets an id's state, so replaying the chunks and these records in
 * file order gives the table as it is); then PATH.tmp is fsynced, renamed
 * over PATH and the directory fsynced, before the sync returns. So the file
 * stays between one and two times the size of the live entries.
 *
 * One process: starting takes an exclusive flock on PATH.lock (a file of
 * its own, since compaction renames PATH) and keeps it until close; a
 * second opener is refused with KS_EINVAL and a sentence naming the file
 * and the holder's pid (written into the lock file). Tools that only read
 * a config (`kscore validate`, `predict`, `backtest`) use ks_evalstore_check,
 * which touches nothing.
 *
 * Bound: at most max_entries ids (waiting and remembered); a prediction
 * arriving when the store is full is not tracked and counted (`full`), never
 * blocking scoring.
 *
 * Threads: one mutex inside; any thread. ks_evalstore_sync from one thread
 * at a time (the labels thread): a second caller meanwhile only flushes.
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
    uint64_t log_lines;     /* lines in the log file now */
    uint64_t compactions;   /* rewrites while running (not the one at start) */
} ks_evalstore_stats_t;

#define KS_EVALSTORE_COMPACT_MIN 1024  /* log lines below which no compaction runs */
#define KS_EVALSTORE_MAX_PARTITIONS 100000  /* labels topic partitions a store tracks */

/* A store of at most max_entries ids for the log at `path`; touches no file
 * (ks_evalstore_start does). Never fails. */
ks_evalstore_t *ks_evalstore_new(const char *path, size_t max_entries, int64_t max_wait_ms);
/* Locks PATH.lock, replays the log as of now_ms and compacts it, then
 * appends to it. KS_EINVAL when another process holds the lock (errbuf
 * names the file and the holder), KS_EIO when a file cannot be read or
 * written. Main thread, once, before any other call but stats. */
int ks_evalstore_start(ks_evalstore_t *s, int64_t now_ms, char *errbuf, size_t errsize);
/* ks_evalstore_new + ks_evalstore_start (tests, tools); NULL on failure. */
int ks_evalstore_open(const char *path, size_t max_entries, int64_t max_wait_ms, int64_t now_ms,
                      ks_evalstore_t **out, char *errbuf, size_t errsize);
/* Whether a store at `path` could be started: an existing file must be a
 * readable and writable regular file, else its directory must be writable.
 * Reads nothing, creates nothing, takes no lock. */
int ks_evalstore_check(const char *path, char *errbuf, size_t errsize);
/* Syncs (positions included, to disk) and closes (releasing the lock).
 * NULL is fine. */
void ks_evalstore_close(ks_evalstore_t *s);

/* Records a prediction. A second prediction for a waiting id replaces it.
 * Returns 0, or KS_ESTATE when the store is full (counted) or not started,
 * KS_EIO when the log cannot be written. */
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
/* Compacts the log if it has grown past twice the live entries (see
 * above), then flushes it to disk (fdatasync), then appends (and flushes,
 * without waiting for the disk) the positions set since the last sync.
 * KS_EIO when the log cannot be synced (a failed compaction only leaves the
 * old log in place: logged, retried once the log has grown by half
 * again). */
int ks_evalstore_sync(ks_evalstore_t *s);
/* The position of the labels topic `topic` in `partition`: the offset of
 * the next label to read, as last set (or as the log held it at start);
 * -1 when the store has none (a fresh store, another topic, a partition not
 * read yet). Any thread. */
int64_t ks_evalstore_position(ks_evalstore_t *s, const char *topic, int32_t partition);
/* Notes that every label of topic/partition before `offset` has been
 * applied (ks_evalstore_label, or found unreadable); the next
 * ks_evalstore_sync writes it. A partition outside [0,
 * KS_EVALSTORE_MAX_PARTITIONS) or a negative offset is ignored. Labels
 * thread. */
void ks_evalstore_set_position(ks_evalstore_t *s, const char *topic, int32_t partition,
                               int64_t offset);
/* The counters; all zero for NULL or a store not started. */
void ks_evalstore_stats(ks_evalstore_t *s, ks_evalstore_stats_t *st);

#endif
