/*
 * lookup.h - feature-store lookups: per-event values read from Redis (or a
 * JSONL snapshot) by a key built from the event's fields, one pipelined
 * round trip per batch and server, cached, and degrading to defaults when
 * Redis is slow or down. The engine's `lookups` stage
 * (engine/stages/lookups.c) drives it; the offline scorer and the benchmark
 * use the same code.
 *
 *   lookups:
 *     - name: profile
 *       redis: {url: redis://127.0.0.1:6379/0, timeout_ms: 20}
 *       key: "features:{user_id}"        # template over input fields
 *       type: json                       # json (GET) | hash (HMGET) | string (GET)
 *       fields:
 *         tx_count_1h: {type: number, default: 0}
 *         segment:     {type: string, default: unknown}
 *       cache: {ttl_ms: 5000, max_entries: 100000}
 *       breaker: {failures: 3, cooldown_ms: 1000}
 *       required: false
 *
 * What a key resolves to, for each of the lookup's fields:
 *   found, well-typed       the value
 *   found, field absent/null, or key absent      the field's default (not degraded)
 *   found, malformed value (bad JSON, wrong type, over max_value_bytes)
 *                           the default; counted (kscore_lookup_malformed_total)
 *   Redis failed / timed out / breaker open / an error reply about the server
 *   (-LOADING, -BUSY...)    the default, and the key is *degraded*: the rows
 *                           using it say so in their output ("degraded")
 *
 * Life cycle: ks_lookup_parse at config load (main thread), a read-only
 * ks_lookup_def_t shared by all threads; ks_lookups_new per thread (its own
 * connections, cache and breaker, so no locks); per batch begin -> add keys
 * -> fetch -> read values.
 */
#ifndef KS_LOOKUP_H
#define KS_LOOKUP_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/conftree.h"
#include "base/metrics.h"
#include "decode/schema.h"
#include "decode/value.h"
#include "lookup/lcache.h"
#include "lookup/redis.h"

#define KS_LOOKUPS_MAX 32 /* lookups per pipeline (a row's degraded mask is 32 bits) */

typedef enum { KS_LOOKUP_JSON, KS_LOOKUP_HASH, KS_LOOKUP_STRING } ks_lookup_kind_t;

typedef struct ks_lookup_field {
    char *name;             /* in the value: a JSON member (dotted path) or hash field */
    char **path;            /* name split on '.' (json) */
    int n_path;
    ks_field_type_t type;   /* number, string or bool */
    ks_value_t dflt;        /* KS_VAL_MISSING when no default; strings in dflt_str */
    char *dflt_str;
    int vfield;             /* schema index of the virtual field "<lookup>.<name>", or -1 */
} ks_lookup_field_t;

/* One piece of a key template: literal text, or an input field's value. */
typedef struct ks_key_part {
    char *text;             /* literal (field < 0) */
    size_t len;
    int field;              /* schema index */
} ks_key_part_t;

typedef struct ks_lookup_def {
    char *name;
    char *url;              /* NULL with a snapshot */
    ks_redis_addr_t addr;
    long long timeout_ms;
    char *snapshot;         /* JSONL file read instead of Redis (offline runs), or NULL */
    ks_lcache_t *snap;      /* its contents, loaded at parse; read-only */
    char *key_template;
    ks_key_part_t *parts;
    size_t n_parts;
    ks_lookup_kind_t kind;
    ks_lookup_field_t *fields;
    size_t n_fields;
    long long ttl_ms, max_entries;
    long long breaker_failures, breaker_cooldown_ms;
    long long max_value_bytes;
    int required;
} ks_lookup_def_t;

/* Parses one item of the `lookups` list (marks its nodes used). Template
 * fields must be in `schema`. `base_dir` resolves a relative snapshot path
 * written in the config file (NULL: the current directory); the snapshot is
 * loaded here. Does not add the virtual fields (the caller does, and sets
 * fields[k].vfield). */
int ks_lookup_parse(ks_node_t *item, const ks_schema_t *schema, const char *base_dir,
                    ks_lookup_def_t *out, char *errbuf, size_t errsize);
void ks_lookup_def_free(ks_lookup_def_t *d);
const char *ks_lookup_kind_name(ks_lookup_kind_t k);

/* Writes row's key for d into out (reset first). Returns 0, or -1 if a
 * template field is missing or null in the row (no key: defaults). */
int ks_lookup_render_key(const ks_lookup_def_t *d, const ks_value_t *row, ks_buf_t *out);

/* Loads a JSONL snapshot: one {"key": "...", "value": V} per line, V being
 * what Redis would hold (json: an object; hash: an object of the hash's
 * fields; string: a scalar). Blank lines are skipped; anything else is an
 * error naming the line. */
int ks_lookup_snapshot_load(ks_lookup_def_t *d, const char *path, char *errbuf, size_t errsize);

/* Turns one value, as Redis returned it, into the lookup's field values
 * (defaults applied). `bytes`/`len`: the GET result (json, string), or for
 * hash the HMGET results one per field (NULL = absent). Strings in vals
 * point into `bytes` or into *doc, which the caller frees with ks_json_free
 * after copying. Returns the number of malformed fields. */
struct ks_json;
size_t ks_lookup_extract(const ks_lookup_def_t *d, const char *bytes, size_t len,
                         const char *const *hvals, const size_t *hlens, ks_value_t *vals,
                         struct ks_json **doc);

/* ---- Per-thread resolution ---- */

/* Metrics of one lookup (process-wide; every thread adds to them). */
typedef struct ks_lookup_metrics {
    ks_counter_t *hits, *misses, *errors, *malformed, *degraded_rows, *commands, *no_key;
    ks_histogram_t *round_trip;   /* per server */
    ks_gauge_t *breaker_open;     /* threads whose breaker for the server is open */
    ks_counter_t *breaker_opens;
} ks_lookup_metrics_t;

/* Registers (or finds) the metrics of lookup d. */
void ks_lookup_metrics_init(const ks_lookup_def_t *d, ks_lookup_metrics_t *m);

typedef struct ks_lookups ks_lookups_t;

/* A thread's resolver for `n` lookups: lookups on the same server share one
 * connection, one pipeline per batch and one breaker. */
ks_lookups_t *ks_lookups_new(const ks_lookup_def_t *const *defs, size_t n);
void ks_lookups_free(ks_lookups_t *t);

/* Starts a batch (forgets the previous one's keys and values). */
void ks_lookups_begin(ks_lookups_t *t);
/* Adds a key for lookup l; returns its slot (the same key twice in a batch
 * gives the same slot). */
uint32_t ks_lookups_add(ks_lookups_t *t, size_t l, const char *key, size_t len);
/* Resolves every added key: cache, then one pipelined exchange per server
 * for the misses, bounded by the lookups' timeout_ms. */
void ks_lookups_fetch(ks_lookups_t *t);
/* The values of slot s of lookup l (n_fields of them; valid until the next
 * begin); *degraded = 1 if they are defaults because Redis was unavailable. */
const ks_value_t *ks_lookups_values(const ks_lookups_t *t, size_t l, uint32_t s, int *degraded);
/* Redis commands sent and exchanges made since the resolver was created. */
void ks_lookups_counts(const ks_lookups_t *t, uint64_t *commands, uint64_t *exchanges);
/* Metrics of lookup l (for the stage's row counters). */
const ks_lookup_metrics_t *ks_lookups_metrics(const ks_lookups_t *t, size_t l);
/* 1 if the last fetch degraded any key of lookup l. */
int ks_lookups_failed(const ks_lookups_t *t, size_t l);

#endif
