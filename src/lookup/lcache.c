/*
 * lcache.c - the lookup cache (see lcache.h): chained hash over a fixed slot
 * array, a doubly linked LRU list through entry indices, one malloc per entry.
 */
#include "lookup/lcache.h"
#include "base/common.h"
#include "features/murmur3.h"

#include <stdlib.h>
#include <string.h>

#define NIL UINT32_MAX

struct ks_lcache {
    size_t n_fields, max_entries;
    int64_t ttl_ms;
    uint32_t *buckets;          /* n_buckets chain heads (entry index or NIL) */
    uint32_t n_buckets;         /* power of two */
    ks_lcache_entry_t **entries;/* max_entries slots; NULL = free */
    uint32_t *free_list;        /* free slot indices */
    size_t n_free, n_used;
    uint32_t lru_head, lru_tail;/* most / least recently used */
    uint64_t evictions;
};

ks_lcache_t *ks_lcache_new(size_t n_fields, size_t max_entries, int64_t ttl_ms)
{
    ks_lcache_t *c = ks_xcalloc(1, sizeof(*c));
    c->n_fields = n_fields;
    c->max_entries = max_entries;
    c->ttl_ms = ttl_ms;
    c->n_buckets = 1;
    while (c->n_buckets < 2 * max_entries && c->n_buckets < (1u << 30))
        c->n_buckets <<= 1;
    c->buckets = ks_xmalloc(c->n_buckets * sizeof(uint32_t));
    memset(c->buckets, 0xff, c->n_buckets * sizeof(uint32_t));
    c->entries = ks_xcalloc(max_entries ? max_entries : 1, sizeof(*c->entries));
    c->free_list = ks_xmalloc((max_entries ? max_entries : 1) * sizeof(uint32_t));
    for (size_t i = 0; i < max_entries; i++)
        c->free_list[i] = (uint32_t)(max_entries - 1 - i);
    c->n_free = max_entries;
    c->lru_head = c->lru_tail = NIL;
    return c;
}

void ks_lcache_free(ks_lcache_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->max_entries; i++)
        free(c->entries[i]);
    free(c->entries);
    free(c->free_list);
    free(c->buckets);
    free(c);
}

static uint32_t find(const ks_lcache_t *c, const char *key, size_t len, uint32_t h)
{
    for (uint32_t i = c->buckets[h & (c->n_buckets - 1)]; i != NIL; i = c->entries[i]->chain_next) {
        const ks_lcache_entry_t *e = c->entries[i];
        if (e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0)
            return i;
    }
    return NIL;
}

static void lru_unlink(ks_lcache_t *c, uint32_t i)
{
    ks_lcache_entry_t *e = c->entries[i];
    if (e->lru_prev != NIL)
        c->entries[e->lru_prev]->lru_next = e->lru_next;
    else
        c->lru_head = e->lru_next;
    if (e->lru_next != NIL)
        c->entries[e->lru_next]->lru_prev = e->lru_prev;
    else
        c->lru_tail = e->lru_prev;
}

static void lru_push_front(ks_lcache_t *c, uint32_t i)
{
    ks_lcache_entry_t *e = c->entries[i];
    e->lru_prev = NIL;
    e->lru_next = c->lru_head;
    if (c->lru_head != NIL)
        c->entries[c->lru_head]->lru_prev = i;
    c->lru_head = i;
    if (c->lru_tail == NIL)
        c->lru_tail = i;
}

static void drop(ks_lcache_t *c, uint32_t i)
{
    ks_lcache_entry_t *e = c->entries[i];
    uint32_t *pp = &c->buckets[e->hash & (c->n_buckets - 1)];
    while (*pp != i)
        pp = &c->entries[*pp]->chain_next;
    *pp = e->chain_next;
    lru_unlink(c, i);
    free(e);
    c->entries[i] = NULL;
    c->free_list[c->n_free++] = i;
    c->n_used--;
}

const ks_lcache_entry_t *ks_lcache_peek(const ks_lcache_t *c, const char *key, size_t len)
{
    if (!c->n_used)
        return NULL;
    uint32_t i = find(c, key, len, ks_murmur3_32(key, len, 0));
    return i == NIL ? NULL : c->entries[i];
}

const ks_lcache_entry_t *ks_lcache_get(ks_lcache_t *c, const char *key, size_t len,
                                       int64_t now_ms)
{
    if (!c->n_used)
        return NULL;
    uint32_t i = find(c, key, len, ks_murmur3_32(key, len, 0));
    if (i == NIL)
        return NULL;
    if (c->entries[i]->expires_ms <= now_ms) {
        drop(c, i);
        return NULL;
    }
    if (c->lru_head != i) {
        lru_unlink(c, i);
        lru_push_front(c, i);
    }
    return c->entries[i];
}

void ks_lcache_put(ks_lcache_t *c, const char *key, size_t len, const ks_value_t *vals,
                   uint8_t status, int64_t now_ms)
{
    if (!c->max_entries || len > UINT32_MAX)
        return;
    uint32_t h = ks_murmur3_32(key, len, 0);
    uint32_t i = find(c, key, len, h);
    if (i != NIL)
        drop(c, i);
    if (!c->n_free) {
        drop(c, c->lru_tail);
        c->evictions++;
    }

    /* one block: entry, values, key, strings */
    size_t need = sizeof(ks_lcache_entry_t) + c->n_fields * sizeof(ks_value_t) + len + 1;
    for (size_t k = 0; k < c->n_fields; k++)
        if (vals[k].type == KS_VAL_STR)
            need += vals[k].len;
    ks_lcache_entry_t *e = ks_xmalloc(need);
    ks_value_t *v = (ks_value_t *)(e + 1);
    char *p = (char *)(v + c->n_fields);
    memcpy(p, key, len);
    p[len] = 0;
    e->key = p;
    p += len + 1;
    for (size_t k = 0; k < c->n_fields; k++) {
        v[k] = vals[k];
        if (vals[k].type == KS_VAL_STR) {
            if (vals[k].len)
                memcpy(p, vals[k].str, vals[k].len);
            v[k].str = p;
            p += vals[k].len;
        }
    }
    e->vals = v;
    e->key_len = (uint32_t)len;
    e->hash = h;
    e->status = status;
    e->expires_ms = c->ttl_ms < 0 ? INT64_MAX : now_ms + c->ttl_ms;

    i = c->free_list[--c->n_free];
    c->entries[i] = e;
    c->n_used++;
    uint32_t *head = &c->buckets[h & (c->n_buckets - 1)];
    e->chain_next = *head;
    *head = i;
    lru_push_front(c, i);
}

size_t ks_lcache_size(const ks_lcache_t *c) { return c->n_used; }
uint64_t ks_lcache_evictions(const ks_lcache_t *c) { return c->evictions; }
