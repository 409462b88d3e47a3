/*
 * murmur3.h - MurmurHash3 x86_32 (Austin Appleby, public domain), the hash of
 * `hash:` features.
 *
 * It is the function scikit-learn exposes as sklearn.utils.murmurhash3_32, so
 * a data scientist reproduces a bucket offline with
 *
 *   murmurhash3_32(s, seed=0, positive=True) % buckets
 *
 * (for a Python str, sklearn hashes its UTF-8 bytes, which is what events
 * carry). The result here is the unsigned (positive=True) value.
 */
#ifndef KS_MURMUR3_H
#define KS_MURMUR3_H

#include <stddef.h>
#include <stdint.h>

/* Hash of `len` bytes at `data`. Pure function; any thread. */
uint32_t ks_murmur3_32(const void *data, size_t len, uint32_t seed);

#endif
