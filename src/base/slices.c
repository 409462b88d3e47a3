/*
 * slices.c - the ring of time slices behind a sliding window (slices.h).
 */
#include "base/slices.h"

void ks_slices_init(ks_slices_t *w, int64_t window_ms)
{
    w->slice_ms = window_ms / KS_SLICES > 0 ? window_ms / KS_SLICES : 1;
    ks_slices_clear(w);
}

void ks_slices_clear(ks_slices_t *w)
{
    for (int s = 0; s < KS_SLICES; s++)
        w->id[s] = -1;
}

int ks_slices_slot(ks_slices_t *w, int64_t now_ms, int *stale)
{
    int64_t id = now_ms / w->slice_ms;
    int s = (int)(id % KS_SLICES);
    *stale = w->id[s] != id;
    w->id[s] = id;
    return s;
}

int ks_slices_live(const ks_slices_t *w, int s, int64_t now_ms)
{
    int64_t now_id = now_ms / w->slice_ms;
    return w->id[s] >= 0 && w->id[s] > now_id - KS_SLICES && w->id[s] <= now_id;
}
