/*
 * strtab.c - see strtab.h. Linear probing over a power-of-two array at most
 * half full, hashed with MurmurHash3 (already here for `hash:` features).
 */
#include "features/strtab.h"
#include "base/common.h"
#include "features/murmur3.h"

#include <stdlib.h>
#include <string.h>

#define STRTAB_SEED 0x9747b28cu

void ks_strtab_init(ks_strtab_t *t, size_t max_entries)
{
    size_t cap = 8;
    while (cap < max_entries * 2)
        cap *= 2;
    t->slots = ks_xcalloc(cap, sizeof(*t->slots));
    t->mask = cap - 1;
    t->n = 0;
}

int ks_strtab_add(ks_strtab_t *t, const char *key, size_t len, uint32_t value)
{
    if (len > UINT32_MAX)
        return KS_EINVAL;
    if ((t->n + 1) * 2 > t->mask + 1)
        return KS_ESTATE;
    uint32_t h = ks_murmur3_32(key, len, STRTAB_SEED);
    size_t i = h & t->mask;
    for (;; i = (i + 1) & t->mask) {
        ks_strtab_slot_t *s = &t->slots[i];
        if (!s->key)
            break;
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0)
            return KS_EINVAL;
    }
    ks_strtab_slot_t *s = &t->slots[i];
    s->key = ks_xstrndup(key, len);
    s->len = (uint32_t)len;
    s->hash = h;
    s->value = value;
    t->n++;
    return KS_OK;
}

int ks_strtab_find(const ks_strtab_t *t, const char *key, size_t len, uint32_t *value)
{
    uint32_t h = ks_murmur3_32(key, len, STRTAB_SEED);
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        const ks_strtab_slot_t *s = &t->slots[i];
        if (!s->key)
            return 0;
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) {
            *value = s->value;
            return 1;
        }
    }
}

void ks_strtab_free(ks_strtab_t *t)
{
    if (!t->slots)
        return;
    for (size_t i = 0; i <= t->mask; i++)
        free(t->slots[i].key);
    free(t->slots);
    t->slots = NULL;
    t->n = 0;
}
