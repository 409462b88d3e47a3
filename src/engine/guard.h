/*
 * guard.h - the arithmetic of the deployment guard (guard.max_error_rate,
 * max_p99_ms, max_score_psi over guard.window; engine/deployments.c runs
 * it): a variant's window is the difference of two snapshots of its
 * cumulative counters and histogram buckets, and a candidate breaches when
 * its window is worse than both the limit and the champion's window.
 *
 * Pure functions; any thread.
 */
#ifndef KS_GUARD_H
#define KS_GUARD_H

#include <stddef.h>
#include <stdint.h>

#define KS_GUARD_MAXB 48 /* histogram buckets kept per snapshot, +Inf included */

/* What the guard reads of one variant at one time (cumulative). */
typedef struct ks_guard_snap {
    uint64_t predictions, errors;
    uint64_t latency[KS_GUARD_MAXB]; /* per-row model time, seconds buckets */
    uint64_t score[KS_GUARD_MAXB];   /* score buckets */
} ks_guard_snap_t;

/* The q-quantile (0..1) of a histogram's bucket counts (non-cumulative,
 * n_bounds + 1 with +Inf last), interpolated linearly inside the bucket
 * as Prometheus' histogram_quantile does; NAN when empty. */
double ks_guard_quantile(const double *bounds, size_t n_bounds, const uint64_t *counts, double q);

/* Population stability index of distribution `b` (candidate) against `a`
 * (reference), from bucket counts; empty buckets count as 0.5 so the
 * index stays finite. NAN when either is empty. */
double ks_guard_psi(const uint64_t *a, const uint64_t *b, size_t n);

typedef struct ks_guard_limits {
    double max_error_rate, max_p99_ms, max_psi; /* NAN = no limit */
    uint64_t min_events;
    const double *lat_bounds, *score_bounds;
    size_t n_lat, n_score;
} ks_guard_limits_t;

/* Judges a candidate's window (now - then) against the champion's. Returns
 * NULL, or the breached limit ("error_rate", "p99", "psi") with a sentence
 * in `why`. */
const char *ks_guard_judge(const ks_guard_limits_t *l, const ks_guard_snap_t *cand_then,
                           const ks_guard_snap_t *cand_now, const ks_guard_snap_t *champ_then,
                           const ks_guard_snap_t *champ_now, char *why, size_t whysize);

#endif
