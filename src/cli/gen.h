/*
 * gen.h - internal helpers of the event generator shared with tests: the
 * deterministic fraud-event builder.
 */
#ifndef KS_GEN_H
#define KS_GEN_H

#include <stdint.h>

#include "base/buf.h"

/* How an event of the fraud scenario (kscore gen --fraud) looks: 0 = the
 * plain events of earlier releases (no merchant_id), 1 = a user's ordinary
 * transaction (at one of the user's usual merchants), 2 = a transaction of a
 * card-testing attack on the user (an unusual merchant and amount). */
enum { KS_GEN_PLAIN = 0, KS_GEN_ORDINARY = 1, KS_GEN_ATTACK = 2 };

/* Appends event number `i` of a stream with `seed` to b (JSON, or a malformed
 * variant when malformed_kind > 0: 1 bad JSON, 2 wrong type, 3 missing
 * required field, 4 invalid UTF-8). `key_index` picks the user; `kind` is
 * one of KS_GEN_* (the fields every kind shares are the same for the same
 * seed and i). */
void ks_gen_event(ks_buf_t *b, uint64_t seed, uint64_t i, uint64_t key_index, int malformed_kind,
                  int kind, int64_t sent_at_us);

/* The profile of user `key_index` that the fraud scenario's feature store
 * holds (the same for every seed): segment ("new", "regular" or "premium"),
 * chargebacks in the last 90 days, and the user's usual amount. */
typedef struct ks_gen_profile {
    const char *segment;
    int chargebacks_90d;
    double avg_amount_90d;
} ks_gen_profile_t;
void ks_gen_profile(uint64_t key_index, ks_gen_profile_t *out);

#endif
