/*
 * lcache.h - the lookup cache: looked-up values by key, with a TTL and a
 * bound on the number of entries, evicting the least recently used.
 *
 * An entry is what one key resolved to: n_fields typed values (the lookup's
 * fields, defaults already applied) and a status byte the caller defines
 * (found / key absent). Entries hold their own copy of the key and of every
 * string, in one allocation, so memory is bounded by max_entries times the
 * largest entry (the lookup caps a value's size: lookup.h, max_value_bytes).
 *
 * The table is open hashing with chains of entry indices into a fixed slot
 * array sized at creation (2 x max_entries buckets, a power of two): a hit is
 * one hash, a short chain walk and an LRU relink, no allocation. A put
 * allocates the entry (the miss path, which paid a network round trip).
 *
 * The same structure, filled once and never evicted, holds a JSONL snapshot
 * (lookup.h); ks_lcache_peek() does not touch the LRU order, so a filled
 * cache may be read by any number of threads at once. Everything else:
 * one cache belongs to one thread.
 */
#ifndef KS_LCACHE_H
#define KS_LCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "decode/value.h"

typedef struct ks_lcache ks_lcache_t;

typedef struct ks_lcache_entry {
    const char *key;
    uint32_t key_len;
    uint32_t hash;
    uint8_t status;           /* the caller's */
    int64_t expires_ms;       /* INT64_MAX: never */
    uint32_t lru_prev, lru_next, chain_next;
    const ks_value_t *vals;   /* n_fields; strings point into the entry */
} ks_lcache_entry_t;

/* max_entries 0 makes a cache that stores nothing (every get misses). */
ks_lcache_t *ks_lcache_new(size_t n_fields, size_t max_entries, int64_t ttl_ms);
void ks_lcache_free(ks_lcache_t *c);

/* The live entry for key, made most recently used; NULL if absent or expired
 * (an expired entry is dropped). The entry stays valid until the next put. */
const ks_lcache_entry_t *ks_lcache_get(ks_lcache_t *c, const char *key, size_t len,
                                       int64_t now_ms);
/* Like get, but read-only: no LRU update, no expiry drop (snapshots). */
const ks_lcache_entry_t *ks_lcache_peek(const ks_lcache_t *c, const char *key, size_t len);
/* Stores (or replaces) key's values, copied; expires at now_ms + ttl_ms
 * (never if ttl_ms < 0). Evicts the least recently used entry when full. */
void ks_lcache_put(ks_lcache_t *c, const char *key, size_t len, const ks_value_t *vals,
                   uint8_t status, int64_t now_ms);

size_t ks_lcache_size(const ks_lcache_t *c);
uint64_t ks_lcache_evictions(const ks_lcache_t *c);

#endif
