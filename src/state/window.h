/*
 * window.h - windowed features: their configuration, and the state of one
 * input partition that computes them event by event (docs/windows.md).
 *
 *   windows:
 *     time: ts            # event-time field, or `processing`
 *     grace: 5m
 *   features:
 *     - {name: tx_count_1h, window: {key: user_id, agg: count, size: 1h}}
 *     - {name: secs_since_last, window: {key: user_id, agg: time_since_last}}
 *
 * Each window feature becomes a virtual field of the schema (decode/schema.h)
 * named like the feature; the store fills it per event, and the features
 * section reads it (kind `window`) or uses it in expressions by name.
 *
 * Semantics, in short (docs/windows.md has them in full): time is cut into
 * buckets of `resolution` aligned to the epoch; the window of an event at t
 * holds the key's earlier events (in partition order, this one included)
 * whose bucket is among the size/resolution buckets ending with t's bucket.
 * An event older than the key's newest time minus size + grace is late for
 * that feature: it gets the feature without itself and changes nothing.
 *
 * State is per input partition (ks_wstore_t): per key, per feature, the
 * non-empty buckets in order (sparse), each with an exact aggregate (counts
 * as integers, sums as exact partials: state/xsum.h, distinct values as hash
 * sets or sketches: state/distinct.h). Windows are merged from buckets at
 * query time, so expiring buckets never needs an inverse and min/max stay
 * exact. A key whose newest event time is more than `key_ttl` behind the
 * partition's newest event time is dropped (on access, and by an incremental
 * sweep); beyond `max_bytes` the least recently used keys are evicted.
 *
 * Durability (the stage writes it to the changelog topic): at a flush
 * each key touched since the last one yields one record holding its state
 * *before* the first of those events and the events (offset, time, values). Restoring a record up to a
 * committed offset C applies the pre-state and the events before C, so the
 * restored state is exactly that of the committed prefix wherever C falls.
 * Evicted keys yield a small stamped deletion record.
 *
 * Threads: a parsed ks_windows_t is immutable and shared; a ks_wstore_t
 * belongs to one worker thread.
 */
#ifndef KS_WINDOW_H
#define KS_WINDOW_H

#include <stddef.h>
#include <stdint.h>

#include "base/conftree.h"
#include "decode/schema.h"
#include "decode/value.h"

typedef enum {
    KS_WAGG_COUNT,
    KS_WAGG_SUM,
    KS_WAGG_AVG,
    KS_WAGG_MIN,
    KS_WAGG_MAX,
    KS_WAGG_STDDEV,
    KS_WAGG_COUNT_DISTINCT,
    KS_WAGG_LAST,
    KS_WAGG_TIME_SINCE_LAST,
    KS_WAGG_EWMA,
    KS_WAGG__COUNT
} ks_wagg_t;

const char *ks_wagg_name(ks_wagg_t a);

typedef struct ks_wfeature {
    char *name;
    ks_wagg_t agg;
    int group;            /* its key's group */
    int of_field;         /* schema index of `of`, -1 if none */
    int of_slot;          /* index of `of` among its group's of_fields, -1 */
    int out_field;        /* the virtual field it fills */
    int64_t size_ms;      /* 0: no size (last, time_since_last, ewma) */
    int64_t res_ms;       /* bucket width */
    int64_t n_buckets;    /* size / resolution */
    double half_life_ms;  /* ewma */
    uint32_t max_distinct;/* count_distinct */
} ks_wfeature_t;

/* The features that share a key field. */
typedef struct ks_wgroup {
    int key_field;
    int *feats;           /* indexes into ks_windows_t.feats */
    size_t n_feats;
    int *of_fields;       /* the distinct `of` fields of these features */
    size_t n_of;
} ks_wgroup_t;

typedef struct ks_windows {
    int time_field;       /* schema index; -1 = processing time */
    int64_t time_per_second; /* numeric time field: units per second (1, 1000, ...) */
    int64_t grace_ms;
    int64_t key_ttl_ms;
    ks_wfeature_t *feats;
    size_t n_feats;
    ks_wgroup_t *groups;
    size_t n_groups;
} ks_windows_t;

/* Parses `windows:` and the window features of `features:` from the config
 * root, adding one virtual number field per window feature to the schema.
 * Marks what it reads used (the features parser then takes each window
 * feature as a reference to its field). *out = NULL when the config has
 * neither. Start-up, main thread. */
int ks_windows_parse(ks_node_t *root, ks_schema_t *schema, ks_windows_t **out, char *errbuf,
                     size_t errsize);
void ks_windows_free(ks_windows_t *w);

/* The event time of a decoded row in epoch milliseconds: the time field
 * (ISO-8601 string or epoch number) or, for processing time, now_ms.
 * KS_EINVAL with a message when the field is missing or malformed. */
int ks_windows_event_time(const ks_windows_t *w, const ks_value_t *row, int64_t now_ms,
                          int64_t *t_ms, char *errbuf, size_t errsize);

/* ---- per-partition state ---- */

typedef struct ks_wstore ks_wstore_t;

typedef struct ks_wstore_stats {
    uint64_t late;              /* events late for at least one feature */
    uint64_t distinct_switches; /* count_distinct buckets switched to a sketch */
    uint64_t evicted_idle, evicted_budget;
    uint64_t keys;              /* keys held now */
    uint64_t bytes;             /* bytes of state held now (approximate heap use) */
} ks_wstore_stats_t;

/* max_bytes: budget for this store (0 = none). log: keep what the
 * changelog needs (ks_wstore_flush). */
ks_wstore_t *ks_wstore_new(const ks_windows_t *w, uint64_t max_bytes, int log);
void ks_wstore_free(ks_wstore_t *s);
const ks_wstore_stats_t *ks_wstore_stats(const ks_wstore_t *s);

/* Computes the window features of one event (row = its decoded fields, the
 * virtual ones are written) at time t_ms and adds it to the state. `offset`
 * is its position in the partition (offsets increase). Returns 0, or
 * KS_EINVAL with a message when a key field is missing or null (the event
 * changes nothing; class missing_field). */
int ks_wstore_apply(ks_wstore_t *s, ks_value_t *row, int64_t t_ms, int64_t offset, char *errbuf,
                    size_t errsize);

/* After a batch: drops idle keys (a bounded sweep) and keys beyond the
 * budget, then hands one changelog record per touched or dropped key to
 * `emit` and forgets them. `last_offset` is the batch's last offset in this
 * partition (deletion records are stamped with it). The key passed is
 * [group byte][key bytes]; both buffers are only valid during the call. */
typedef void (*ks_wstore_emit_fn)(void *opaque, const void *key, size_t klen, const void *val,
                                  size_t vlen);
void ks_wstore_flush(ks_wstore_t *s, int64_t last_offset, ks_wstore_emit_fn emit, void *opaque);

/* Restore: applies one changelog record (in log order) as of the committed
 * offset: records whose first event is at or past `committed` are skipped;
 * a record's events at or past it are not applied. Returns 0, 1 when
 * skipped, KS_EINVAL for a record it cannot read. */
int ks_wstore_restore(ks_wstore_t *s, const void *key, size_t klen, const void *val, size_t vlen,
                      int64_t committed);

/* Snapshots (state/snapshot.h): hands every key's full state to `emit` as a
 * changelog record stamped `stamp` with no events, least recently used
 * first, so that ks_wstore_restore-ing them in that order into an empty
 * store rebuilds the keys, the partition's newest time and the LRU order.
 * Between batches only (after ks_wstore_flush). */
void ks_wstore_each(ks_wstore_t *s, int64_t stamp, ks_wstore_emit_fn emit, void *opaque);

/* A hash of everything the stored state's meaning depends on: the record
 * format, the time field, grace, key_ttl, the key and `of` fields and each
 * window feature's name, aggregation, size, resolution and parameters. A
 * snapshot written under another fingerprint is refused. */
uint64_t ks_windows_fingerprint(const ks_windows_t *w, const ks_schema_t *schema);

#endif
