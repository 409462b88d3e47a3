/*
 * gen.h - internal helpers of the event generator shared with tests: the
 * deterministic fraud-event builder.
 */
#ifndef KS_GEN_H
#define KS_GEN_H

#include <stdint.h>

#include "base/buf.h"

/* Appends event number `i` of a stream with `seed` to b (JSON, or a malformed
 * variant when malformed_kind > 0: 1 bad JSON, 2 wrong type, 3 missing
 * required field, 4 invalid UTF-8). `key_index` picks the user. */
void ks_gen_event(ks_buf_t *b, uint64_t seed, uint64_t i, uint64_t key_index, int malformed_kind,
                  int64_t sent_at_us);

#endif
