/*
 * sha256.h - SHA-256 (FIPS 180-4), one-shot and incremental.
 *
 * Used to name things by their content, e.g. a model file without a version
 * in its metadata gets the version "sha256:<first 12 hex digits>". Not
 * constant-time; not for secrets. Pure functions, any thread.
 */
#ifndef KS_SHA256_H
#define KS_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct ks_sha256 {
    uint32_t state[8];
    uint64_t total_len;   /* bytes hashed so far */
    uint8_t block[64];
    size_t block_len;
} ks_sha256_t;

void ks_sha256_init(ks_sha256_t *h);
void ks_sha256_update(ks_sha256_t *h, const void *data, size_t len);
void ks_sha256_final(ks_sha256_t *h, uint8_t digest[32]);

/* One-shot digest of buf[0..len). */
void ks_sha256(const void *buf, size_t len, uint8_t digest[32]);

/* Writes the lowercase hex of digest[0..n_bytes) plus a NUL into out
 * (which must hold 2 * n_bytes + 1 chars). */
void ks_sha256_hex(const uint8_t *digest, size_t n_bytes, char *out);

#endif
