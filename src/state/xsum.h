/*
 * xsum.h - exact summation of doubles: Shewchuk's non-overlapping partials
 * with the correctly rounded result of CPython's math.fsum.
 *
 * Window sums are merged from per-bucket partial sums in an order that
 * depends on when buckets were created and expired; plain addition would make
 * the online value depend on that order and differ from the offline path in
 * the last bits. With partials each bucket holds its sum exactly, merging
 * buckets is exact, and the one final rounding gives the double nearest to
 * the true sum: bit-for-bit what `math.fsum(values)` returns offline for the
 * same events, in any order.
 *
 * Non-finite inputs (inf, NaN) are summed separately, like fsum, into
 * `special`; a finite sum that overflows in between is not an issue for event
 * values (|x| < 1e300).
 *
 * A ks_xsum_t owns its partials array; one belongs to one thread.
 */
#ifndef KS_XSUM_H
#define KS_XSUM_H

#include <stddef.h>
#include <stdint.h>

typedef struct ks_xsum {
    union {
        double *heap;   /* cap > 0: the partials */
        double one;     /* cap == 0: room for one partial, no allocation */
    } u;
    uint32_t n, cap;    /* partials, increasing magnitude, non-overlapping */
    double special;     /* sum of the non-finite inputs (0 if none) */
} ks_xsum_t;

/* The partials, n of them. */
static inline const double *ks_xsum_parts(const ks_xsum_t *s)
{
    return s->cap ? s->u.heap : &s->u.one;
}

/* Adds x exactly. Allocates only when the partials outgrow their array. */
void ks_xsum_add(ks_xsum_t *s, double x);
/* Adds every partial of `src` into `dst` (exact). */
void ks_xsum_merge(ks_xsum_t *dst, const ks_xsum_t *src);
/* The correctly rounded sum (0.0 when empty). */
double ks_xsum_round(const ks_xsum_t *s);
/* Sets s to zero, keeping its memory. */
void ks_xsum_clear(ks_xsum_t *s);
void ks_xsum_free(ks_xsum_t *s);
/* Heap bytes held (for the state budget). */
static inline size_t ks_xsum_bytes(const ks_xsum_t *s) { return (size_t)s->cap * sizeof(double); }

/* Exact product a*b as hi + lo (fma). */
void ks_two_prod(double a, double b, double *hi, double *lo);

#endif
