/*
 * distinct.c - count_distinct sets and their unions (see distinct.h).
 */
#include "state/distinct.h"
#include "base/common.h"
#include "features/murmur3.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

uint64_t ks_distinct_hash_bytes(const void *p, size_t len)
{
    return ((uint64_t)ks_murmur3_32(p, len, 0x9747b28cu) << 32) | ks_murmur3_32(p, len, 0x5bd1e995u);
}

uint64_t ks_distinct_hash_number(double v)
{
    unsigned char b[8];
    if (v == 0)
        v = 0.0; /* -0 and 0 are one value */
    memcpy(b, &v, 8);
    return ((uint64_t)ks_murmur3_32(b, 8, 0x1b873593u) << 32) | ks_murmur3_32(b, 8, 0xcc9e2d51u);
}

static void hll_add(uint8_t *regs, uint64_t h)
{
    uint32_t idx = (uint32_t)(h >> (64 - KS_HLL_P));
    uint64_t w = (h << KS_HLL_P) | (UINT64_C(1) << (KS_HLL_P - 1)); /* guard bit */
    uint8_t rank = (uint8_t)(__builtin_clzll(w) + 1);
    if (rank > regs[idx])
        regs[idx] = rank;
}

static double hll_estimate(const uint8_t *regs)
{
    double m = KS_HLL_M, sum = 0;
    uint32_t zeros = 0;
    for (uint32_t i = 0; i < KS_HLL_M; i++) {
        sum += ldexp(1.0, -regs[i]);
        zeros += regs[i] == 0;
    }
    double alpha = 0.7213 / (1.0 + 1.079 / m);
    double e = alpha * m * m / sum;
    if (e <= 2.5 * m && zeros)
        e = m * log(m / zeros);
    return nearbyint(e);
}

int ks_distinct_add(ks_distinct_t *d, uint64_t h, uint32_t max_exact)
{
    if (d->hll) {
        hll_add(d->hll, h);
        return 0;
    }
    const uint64_t *hs = ks_distinct_hashes(d);
    uint32_t lo = 0, hi = d->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (hs[mid] < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < d->n && hs[lo] == h)
        return 0;
    if (d->n + 1 > max_exact) { /* switch: the sketch takes every value so far */
        d->hll = ks_xcalloc(KS_HLL_M, 1);
        for (uint32_t i = 0; i < d->n; i++)
            hll_add(d->hll, hs[i]);
        hll_add(d->hll, h);
        if (d->cap)
            free(d->u.heap);
        d->u.heap = NULL;
        d->n = d->cap = 0;
        return 1;
    }
    if (d->cap == 0 && d->n == 0) {
        d->u.one = h;
        d->n = 1;
        return 0;
    }
    if (d->cap == 0) { /* the inline hash moves to the heap */
        uint64_t one = d->u.one;
        d->u.heap = ks_xmalloc(4 * sizeof(uint64_t));
        d->u.heap[0] = one;
        d->cap = 4;
    } else if (d->n == d->cap) {
        d->cap *= 2;
        d->u.heap = ks_xrealloc(d->u.heap, d->cap * sizeof(uint64_t));
    }
    memmove(d->u.heap + lo + 1, d->u.heap + lo, (d->n - lo) * sizeof(uint64_t));
    d->u.heap[lo] = h;
    d->n++;
    return 0;
}

size_t ks_distinct_bytes(const ks_distinct_t *d)
{
    return d->cap * sizeof(uint64_t) + (d->hll ? KS_HLL_M : 0);
}

void ks_distinct_free(ks_distinct_t *d)
{
    if (d->cap)
        free(d->u.heap);
    free(d->hll);
    memset(d, 0, sizeof(*d));
}

void ks_distinct_union_reset(ks_distinct_union_t *u)
{
    u->n = 0;
    u->sketch = 0;
    if (u->regs)
        memset(u->regs, 0, KS_HLL_M);
}

void ks_distinct_union_add(ks_distinct_union_t *u, const ks_distinct_t *d)
{
    if (d->hll) {
        if (!u->regs)
            u->regs = ks_xcalloc(KS_HLL_M, 1);
        for (uint32_t i = 0; i < KS_HLL_M; i++)
            if (d->hll[i] > u->regs[i])
                u->regs[i] = d->hll[i];
        u->sketch = 1;
        return;
    }
    if (u->n + d->n > u->cap) {
        u->cap = (u->n + d->n) * 2;
        u->tmp = ks_xrealloc(u->tmp, u->cap * sizeof(uint64_t));
    }
    memcpy(u->tmp + u->n, ks_distinct_hashes(d), d->n * sizeof(uint64_t));
    u->n += d->n;
}

double ks_distinct_union_count(ks_distinct_union_t *u, uint32_t max_exact)
{
    /* distinct hashes by open addressing (they are uniform already): O(n),
     * no sort; tmp keeps the distinct ones at its front */
    size_t cap = 16, uniq = 0;
    int zero = 0;
    while (cap < 2 * u->n)
        cap <<= 1;
    if (cap > u->set_cap) {
        free(u->set);
        u->set = ks_xmalloc(cap * sizeof(uint64_t));
        u->set_cap = cap;
    }
    memset(u->set, 0, cap * sizeof(uint64_t));
    for (size_t i = 0; i < u->n; i++) {
        uint64_t h = u->tmp[i];
        if (h == 0) { /* 0 marks an empty slot: counted apart */
            if (!zero)
                u->tmp[uniq++] = h;
            zero = 1;
            continue;
        }
        size_t j = (size_t)(h >> 17) & (cap - 1);
        while (u->set[j] && u->set[j] != h)
            j = (j + 1) & (cap - 1);
        if (!u->set[j]) {
            u->set[j] = h;
            u->tmp[uniq++] = h;
        }
    }
    if (!u->sketch && uniq <= max_exact)
        return (double)uniq;
    if (!u->regs)
        u->regs = ks_xcalloc(KS_HLL_M, 1);
    for (size_t i = 0; i < uniq; i++)
        hll_add(u->regs, u->tmp[i]);
    return hll_estimate(u->regs);
}

void ks_distinct_union_free(ks_distinct_union_t *u)
{
    free(u->tmp);
    free(u->set);
    free(u->regs);
    memset(u, 0, sizeof(*u));
}
