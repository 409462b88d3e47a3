/*
 * arena.c - chunked bump allocator (see arena.h).
 */
#include "base/arena.h"
#include "base/common.h"

#include <stdlib.h>

struct ks_arena_chunk {
    ks_arena_chunk_t *next;
    size_t size, used;
    char data[];
};

void ks_arena_init(ks_arena_t *a, size_t chunk_size)
{
    a->head = NULL;
    a->chunks = NULL;
    a->chunk_size = chunk_size ? chunk_size : 65536;
}

void *ks_arena_alloc(ks_arena_t *a, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    ks_arena_chunk_t *c = a->head;
    while (c && c->size - c->used < n)
        c = c->next; /* reuse later chunks kept from before a reset */
    if (!c) {
        size_t size = n > a->chunk_size ? n : a->chunk_size;
        c = ks_xmalloc(sizeof(*c) + size);
        c->size = size;
        c->used = 0;
        c->next = NULL;
        if (a->head) { /* append after head so the walk above finds it */
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->chunks;
            a->chunks = c;
        }
    }
    a->head = c;
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

void ks_arena_reset(ks_arena_t *a)
{
    for (ks_arena_chunk_t *c = a->chunks; c; c = c->next)
        c->used = 0;
    a->head = a->chunks;
}

void ks_arena_free(ks_arena_t *a)
{
    ks_arena_chunk_t *c = a->chunks;
    while (c) {
        ks_arena_chunk_t *next = c->next;
        free(c);
        c = next;
    }
    a->head = a->chunks = NULL;
}
