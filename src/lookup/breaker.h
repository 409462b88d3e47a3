/*
 * breaker.h - a circuit breaker for one Redis server on one thread.
 *
 *   closed     calls go through; `threshold` consecutive failed round trips
 *              open it
 *   open       no calls (the batch uses cache and defaults at once) until
 *              `cooldown_ms` have passed; then
 *   half-open  one batch goes through as the probe: success closes the
 *              breaker, failure opens it for another cool-down
 *
 * Plain functions over a small struct, driven by the caller's clock, so the
 * unit test walks every transition without sleeping. One thread.
 */
#ifndef KS_BREAKER_H
#define KS_BREAKER_H

#include <stdint.h>

typedef enum { KS_BREAKER_CLOSED = 0, KS_BREAKER_OPEN, KS_BREAKER_HALF_OPEN } ks_breaker_state_t;

typedef struct ks_breaker {
    ks_breaker_state_t state;
    int failures;          /* consecutive failed round trips */
    int threshold;         /* failures that open it (>= 1) */
    int64_t cooldown_ms;
    int64_t open_until_ms;
    uint64_t opens;        /* times it opened */
} ks_breaker_t;

static inline void ks_breaker_init(ks_breaker_t *b, int threshold, int64_t cooldown_ms)
{
    b->state = KS_BREAKER_CLOSED;
    b->failures = 0;
    b->threshold = threshold < 1 ? 1 : threshold;
    b->cooldown_ms = cooldown_ms;
    b->open_until_ms = 0;
    b->opens = 0;
}

/* 1 if a round trip may be made now (an open breaker past its cool-down
 * turns half-open and lets this one through as the probe), else 0. */
static inline int ks_breaker_allow(ks_breaker_t *b, int64_t now_ms)
{
    if (b->state == KS_BREAKER_OPEN) {
        if (now_ms < b->open_until_ms)
            return 0;
        b->state = KS_BREAKER_HALF_OPEN;
    }
    return 1;
}

static inline void ks_breaker_success(ks_breaker_t *b)
{
    b->failures = 0;
    b->state = KS_BREAKER_CLOSED;
}

/* Returns 1 if this failure opened the breaker (it was not open before). */
static inline int ks_breaker_failure(ks_breaker_t *b, int64_t now_ms)
{
    b->failures++;
    if (b->state == KS_BREAKER_HALF_OPEN || b->failures >= b->threshold) {
        int was_half = b->state == KS_BREAKER_HALF_OPEN;
        b->state = KS_BREAKER_OPEN;
        b->open_until_ms = now_ms + b->cooldown_ms;
        if (!was_half) {
            b->opens++;
            return 1;
        }
    }
    return 0;
}

#endif
