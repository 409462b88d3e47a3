/*
 * decoder.h - turns one event payload into the schema's typed slots.
 *
 * The JSON decoder is schema-directed: a single pass over the bytes, no DOM,
 * no per-event malloc; it extracts only the declared fields (nested paths too)
 * and skips everything else while still validating it (the whole payload must
 * be one well-formed JSON object in valid UTF-8). Numbers are converted exactly
 * as strtod would in the C locale (correctly rounded, -0 kept). Strings without
 * escapes point into the payload; unescaped strings are written to `arena`.
 *
 * A decoder is created at start-up per worker thread and used by that thread
 * (it keeps per-call scratch state); the schema must outlive it.
 *
 * Decisions (json_decoder.c has the details, tests/unit/test_decode.c the proof):
 *  - duplicate keys: the last occurrence wins, also for parent objects;
 *  - a number overflowing a double (1e400) in a declared field is
 *    KS_ERRCLASS_TYPE; underflow gives the correctly rounded subnormal or 0;
 *  - a null parent ("payment": null) makes the fields below it absent; a parent
 *    of another type is KS_ERRCLASS_TYPE;
 *  - malformed input is reported first (with its byte offset), then field
 *    problems in declaration order;
 *  - nesting deeper than KS_JSON_MAX_DEPTH (base/json.h) is malformed.
 */
#ifndef KS_DECODER_H
#define KS_DECODER_H

#include <stddef.h>

#include "decode/value.h"
#include "decode/schema.h"
#include "base/arena.h"

typedef struct ks_decode_error {
    ks_errclass_t cls;    /* DESERIALIZATION, MISSING_FIELD or TYPE */
    char msg[200];        /* "field 'amount': expected number, got string" */
} ks_decode_error_t;

typedef struct ks_decoder ks_decoder_t;

int ks_decoder_new(const ks_schema_t *schema, ks_decoder_t **out, char *errbuf, size_t errsize);

/* Decodes `len` bytes into out[0..schema->n_fields). Returns 0, or KS_EINVAL
 * with *err filled (the event goes to the DLQ). Applies defaults and required
 * checks. `buf` and `arena` must outlive the use of `out`; `arena` is
 * required (only strings with escapes are written to it). On error the slots
 * hold nothing useful. */
int ks_decoder_decode(ks_decoder_t *d, const char *buf, size_t len, ks_value_t *out,
                      ks_arena_t *arena, ks_decode_error_t *err);

void ks_decoder_free(ks_decoder_t *d);

#endif
