/*
 * slices.h - the clock of a sliding time window kept as a ring of slices.
 *
 * A window of window_ms is cut into KS_SLICES slices of window_ms / KS_SLICES
 * (at least 1 ms); slice k covers [k * slice_ms, (k + 1) * slice_ms) and lives
 * in slot k % KS_SLICES of the ring. The caller keeps its aggregates (counts,
 * arrays of scores) per slot; ks_slices_t keeps which slice each slot holds,
 * says when a slot must be cleared before it is reused for a newer slice, and
 * which slots lie in the window ending at a given time. The window therefore
 * slides in steps of one slice. Drift (engine/drift.c) and online evaluation
 * (engine/evaluation.c) both use it.
 *
 * Not thread-safe: callers hold their own lock.
 */
#ifndef KS_SLICES_H
#define KS_SLICES_H

#include <stdint.h>

#define KS_SLICES 15

typedef struct ks_slices {
    int64_t slice_ms;
    int64_t id[KS_SLICES]; /* the slice each slot holds, -1 for none */
} ks_slices_t;

/* Every slot empty, slices of window_ms / KS_SLICES. */
void ks_slices_init(ks_slices_t *w, int64_t window_ms);

/* Forgets what every slot holds (the caller clears its aggregates). */
void ks_slices_clear(ks_slices_t *w);

/* The slot of the slice containing now_ms. *stale is set to 1 when that slot
 * held another slice, whose aggregates the caller must clear before adding
 * to it; 0 otherwise. */
int ks_slices_slot(ks_slices_t *w, int64_t now_ms, int *stale);

/* 1 when slot s holds a slice of the window that ends with now_ms's slice. */
int ks_slices_live(const ks_slices_t *w, int s, int64_t now_ms);

#endif
