/*
 * distinct.h - count_distinct state: a bucket's set of 64-bit value hashes,
 * exact while small, a HyperLogLog sketch once it holds more than
 * `max_exact` values; and the union of a window's buckets.
 *
 * Exact: a sorted array of hashes (a window's union is a merge). Values are
 * hashed to 64 bits, so two different values collide with probability about
 * n^2 / 2^65 (1e-11 for 10,000 values): exact for every practical purpose.
 * Sketch: HyperLogLog with 2^14 one-byte registers (16 KiB), standard error
 * 1.04 / 128 = 0.8%, linear counting below 2.5 m.
 *
 * One set or union belongs to one thread.
 */
#ifndef KS_DISTINCT_H
#define KS_DISTINCT_H

#include <stddef.h>
#include <stdint.h>

#define KS_HLL_P 14
#define KS_HLL_M (1u << KS_HLL_P)

typedef struct ks_distinct {
    union {
        uint64_t *heap; /* cap > 0: sorted, unique hashes */
        uint64_t one;   /* cap == 0: room for one hash, no allocation */
    } u;
    uint32_t n, cap;    /* n = 0 once switched to the sketch */
    uint8_t *hll;       /* KS_HLL_M registers, or NULL while exact */
} ks_distinct_t;

/* The exact set's hashes, n of them. */
static inline const uint64_t *ks_distinct_hashes(const ks_distinct_t *d)
{
    return d->cap ? d->u.heap : &d->u.one;
}

/* Adds a hash. Returns 1 when this add switched the set to the sketch. */
int ks_distinct_add(ks_distinct_t *d, uint64_t h, uint32_t max_exact);
size_t ks_distinct_bytes(const ks_distinct_t *d);
void ks_distinct_free(ks_distinct_t *d);

/* The union of several sets (a window's buckets); scratch reused per query. */
typedef struct ks_distinct_union {
    uint64_t *tmp;
    size_t n, cap;
    uint64_t *set;      /* open addressing, for counting tmp's distinct hashes */
    size_t set_cap;
    uint8_t *regs;      /* KS_HLL_M, allocated on first need */
    int sketch;         /* a set in the union is a sketch */
} ks_distinct_union_t;

void ks_distinct_union_reset(ks_distinct_union_t *u);
void ks_distinct_union_add(ks_distinct_union_t *u, const ks_distinct_t *d);
/* Exact count when no set is a sketch and the union holds at most
 * max_exact values; otherwise the HyperLogLog estimate of the union. */
double ks_distinct_union_count(ks_distinct_union_t *u, uint32_t max_exact);
void ks_distinct_union_free(ks_distinct_union_t *u);

/* The 64-bit hash of a string value and of a number value (distinct seeds,
 * so "1" and 1 are different values). Two MurmurHash3 x86_32 runs. */
uint64_t ks_distinct_hash_bytes(const void *p, size_t len);
uint64_t ks_distinct_hash_number(double v);

#endif
