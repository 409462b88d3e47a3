/*
 * arena.h - a bump allocator for per-batch scratch memory (unescaped strings,
 * encode buffers). ks_arena_reset() makes all of it reusable at once, keeping
 * the chunks, so a steady-state batch does no malloc at all.
 * One arena belongs to one thread.
 */
#ifndef KS_ARENA_H
#define KS_ARENA_H

#include <stddef.h>

typedef struct ks_arena_chunk ks_arena_chunk_t;

typedef struct ks_arena {
    ks_arena_chunk_t *head;   /* chunk being filled */
    ks_arena_chunk_t *chunks; /* all chunks, for reset/free */
    size_t chunk_size;
} ks_arena_t;

void ks_arena_init(ks_arena_t *a, size_t chunk_size);
/* Returns `n` bytes aligned to 8; never NULL (aborts on OOM). */
void *ks_arena_alloc(ks_arena_t *a, size_t n);
void ks_arena_reset(ks_arena_t *a);
void ks_arena_free(ks_arena_t *a);

#endif
