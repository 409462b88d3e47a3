/*
 * strtab.h - a fixed-size open-addressing hash table from byte strings to
 * small integers, built at start-up and read per event: the category lookup
 * of `map` and `onehot` features. A lookup hashes the key once and compares
 * bytes only against entries with the same 32-bit hash.
 *
 * Built by one thread; after that, ks_strtab_find may be called by any number
 * of threads at once (it only reads).
 */
#ifndef KS_STRTAB_H
#define KS_STRTAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct ks_strtab_slot {
    char *key;          /* owned copy; NULL = empty slot */
    uint32_t len;
    uint32_t hash;
    uint32_t value;
} ks_strtab_slot_t;

typedef struct ks_strtab {
    ks_strtab_slot_t *slots;
    size_t mask;        /* capacity - 1 (capacity is a power of two) */
    size_t n;
} ks_strtab_t;

/* Sizes the table for up to `max_entries` keys (never grows). */
void ks_strtab_init(ks_strtab_t *t, size_t max_entries);
/* Adds a copy of the key. Returns 0, KS_EINVAL if the key is already present,
 * or KS_ESTATE when the table is full (more keys than max_entries). */
int ks_strtab_add(ks_strtab_t *t, const char *key, size_t len, uint32_t value);
/* 1 and *value set if present, else 0. No allocation. */
int ks_strtab_find(const ks_strtab_t *t, const char *key, size_t len, uint32_t *value);
void ks_strtab_free(ks_strtab_t *t);

#endif
