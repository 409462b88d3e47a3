/*
 * guard.c - window arithmetic of the deployment guard (see guard.h).
 */
#include "engine/guard.h"

#include <math.h>
#include <stdio.h>

double ks_guard_quantile(const double *bounds, size_t n_bounds, const uint64_t *counts, double q)
{
    uint64_t total = 0;
    for (size_t i = 0; i <= n_bounds; i++)
        total += counts[i];
    if (total == 0)
        return NAN;
    double rank = q * (double)total, seen = 0;
    for (size_t i = 0; i <= n_bounds; i++) {
        if (counts[i] == 0 || seen + (double)counts[i] < rank) {
            seen += (double)counts[i];
            continue;
        }
        if (i == n_bounds) /* +Inf: the highest finite bound, as Prometheus */
            return bounds[n_bounds - 1];
        double lo = i ? bounds[i - 1] : 0, hi = bounds[i];
        return lo + (hi - lo) * (rank - seen) / (double)counts[i];
    }
    return bounds[n_bounds - 1];
}

double ks_guard_psi(const uint64_t *a, const uint64_t *b, size_t n)
{
    double ta = 0, tb = 0, psi = 0;
    for (size_t i = 0; i < n; i++) {
        ta += (double)a[i] + 0.5;
        tb += (double)b[i] + 0.5;
    }
    if (ta <= 0.5 * (double)n || tb <= 0.5 * (double)n)
        return NAN;
    for (size_t i = 0; i < n; i++) {
        double pa = ((double)a[i] + 0.5) / ta, pb = ((double)b[i] + 0.5) / tb;
        psi += (pb - pa) * log(pb / pa);
    }
    return psi;
}

/* d = now - then, per bucket */
static void diff(const uint64_t *now, const uint64_t *then, uint64_t *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        d[i] = now[i] - then[i];
}

const char *ks_guard_judge(const ks_guard_limits_t *l, const ks_guard_snap_t *ct,
                           const ks_guard_snap_t *cn, const ks_guard_snap_t *ht,
                           const ks_guard_snap_t *hn, char *why, size_t whysize)
{
    uint64_t cp = cn->predictions - ct->predictions, ce = cn->errors - ct->errors;
    uint64_t hp = hn->predictions - ht->predictions, he = hn->errors - ht->errors;
    uint64_t cd[KS_GUARD_MAXB], hd[KS_GUARD_MAXB];
    if (cp + ce < l->min_events)
        return NULL;
    int champ_seen = hp + he >= l->min_events;
    double c_rate = (double)ce / (double)(cp + ce);
    double h_rate = champ_seen ? (double)he / (double)(hp + he) : 0;
    if (!isnan(l->max_error_rate) && c_rate > l->max_error_rate && c_rate > h_rate) {
        snprintf(why, whysize, "error rate %.4g > guard.max_error_rate %g (champion %.4g)",
                 c_rate, l->max_error_rate, h_rate);
        return "error_rate";
    }
    if (!isnan(l->max_p99_ms)) {
        diff(cn->latency, ct->latency, cd, l->n_lat + 1);
        diff(hn->latency, ht->latency, hd, l->n_lat + 1);
        double c99 = 1e3 * ks_guard_quantile(l->lat_bounds, l->n_lat, cd, 0.99);
        double h99 = champ_seen ? 1e3 * ks_guard_quantile(l->lat_bounds, l->n_lat, hd, 0.99) : 0;
        if (c99 > l->max_p99_ms && !(c99 <= h99)) {
            snprintf(why, whysize, "p99 model compute time %.4g ms > guard.max_p99_ms %g (champion %.4g ms)",
                     c99, l->max_p99_ms, h99);
            return "p99";
        }
    }
    if (!isnan(l->max_psi) && champ_seen) {
        diff(cn->score, ct->score, cd, l->n_score + 1);
        diff(hn->score, ht->score, hd, l->n_score + 1);
        double psi = ks_guard_psi(hd, cd, l->n_score + 1);
        if (psi > l->max_psi) {
            snprintf(why, whysize, "score PSI %.4g against the champion > guard.max_score_psi %g",
                     psi, l->max_psi);
            return "psi";
        }
    }
    return NULL;
}
