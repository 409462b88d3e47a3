/*
 * xsum.c - exact summation (see xsum.h). The add loop is Shewchuk's
 * grow-expansion as CPython's math_fsum writes it; the rounding is CPython's,
 * including its half-way correction, so results equal math.fsum bit for bit.
 */
#include "state/xsum.h"
#include "base/common.h"

#include <math.h>
#include <stdlib.h>

static inline double *parts(ks_xsum_t *s)
{
    return s->cap ? s->u.heap : &s->u.one;
}

static void push(ks_xsum_t *s, double x)
{
    if (s->cap == 0 && s->n == 0) {
        s->u.one = x;
        s->n = 1;
        return;
    }
    if (s->cap == 0) { /* the inline partial moves to the heap */
        double one = s->u.one;
        s->u.heap = ks_xmalloc(4 * sizeof(double));
        s->u.heap[0] = one;
        s->cap = 4;
    } else if (s->n == s->cap) {
        s->cap *= 2;
        s->u.heap = ks_xrealloc(s->u.heap, s->cap * sizeof(double));
    }
    s->u.heap[s->n++] = x;
}

void ks_xsum_add(ks_xsum_t *s, double x)
{
    if (!isfinite(x)) {
        s->special += x;
        return;
    }
    uint32_t i = 0;
    double *p = parts(s);
    for (uint32_t j = 0; j < s->n; j++) {
        double y = p[j];
        if (fabs(x) < fabs(y)) {
            double t = x;
            x = y;
            y = t;
        }
        double hi = x + y;
        double lo = y - (hi - x);
        if (lo != 0.0)
            p[i++] = lo;
        x = hi;
    }
    s->n = i;
    push(s, x);
}

void ks_xsum_merge(ks_xsum_t *dst, const ks_xsum_t *src)
{
    const double *p = ks_xsum_parts(src);
    for (uint32_t j = 0; j < src->n; j++)
        ks_xsum_add(dst, p[j]);
    if (src->special != 0.0 || isnan(src->special))
        dst->special += src->special;
}

double ks_xsum_round(const ks_xsum_t *s)
{
    if (s->special != 0.0 || isnan(s->special))
        return s->special; /* inf, -inf or NaN, like fsum */
    uint32_t n = s->n;
    const double *p = ks_xsum_parts(s);
    double hi = 0.0, lo = 0.0;
    if (n > 0) {
        hi = p[--n];
        /* sum from the top, stopping at the first inexact step */
        while (n > 0) {
            double x = hi, y = p[--n];
            hi = x + y;
            double yr = hi - x;
            lo = y - yr;
            if (lo != 0.0)
                break;
        }
        /* half-way case: round towards the sign of the rest */
        if (n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0))) {
            double y = lo * 2.0;
            double x = hi + y;
            double yr = x - hi;
            if (y == yr)
                hi = x;
        }
    }
    return hi;
}

void ks_xsum_clear(ks_xsum_t *s)
{
    s->n = 0;
    s->special = 0.0;
}

void ks_xsum_free(ks_xsum_t *s)
{
    if (s->cap)
        free(s->u.heap);
    s->u.heap = NULL;
    s->n = s->cap = 0;
    s->special = 0.0;
}

void ks_two_prod(double a, double b, double *hi, double *lo)
{
    *hi = a * b;
    *lo = fma(a, b, -*hi);
}
