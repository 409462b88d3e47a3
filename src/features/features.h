/*
 * features.h - the `features:` section: an ordered list of named features,
 * each computed from the decoded input fields of one event.
 *
 *   features:
 *     - {name: amount, expr: amount}                      # a field as-is
 *     - {name: log_amount, expr: "log1p(amount)"}         # arithmetic expression
 *     - {name: high, expr: "amount > 1000"}               # comparisons give 1/0
 *     - {name: mcc_idx, map: {field: mcc, values: {grocery: 0, travel: 1}, default: -1}}
 *     - {name: mcc, onehot: {field: mcc, values: [grocery, travel]}}  # -> mcc=grocery, mcc=travel
 *     - {name: user_bucket, hash: {field: user_id, buckets: 1024}}
 *     - {name: hour, hour_of_day: ts}
 *     - {name: dow, day_of_week: ts}
 *     - {name: n, expr: count, default: 0}                # default when the result is missing
 *
 * The reference for users is docs/features.md; the expression grammar and its
 * numpy semantics are in expr.h, the kinds in features.c. Every feature column
 * is a double; NaN means missing.
 *
 * Thread-safety: a compiled ks_features_t is immutable after parse and may be
 * shared by all workers; compute() uses only the caller's memory.
 */
#ifndef KS_FEATURES_H
#define KS_FEATURES_H

#include <stddef.h>

#include "base/conftree.h"
#include "decode/value.h"
#include "decode/schema.h"

typedef struct ks_features ks_features_t;

/* Compiles the `features` sequence against the schema (fields referenced by
 * name must be declared under input.fields). Marks nodes used. */
int ks_features_parse(ks_node_t *features_seq, const ks_schema_t *schema, ks_features_t **out,
                      char *errbuf, size_t errsize);

/* Number of feature columns (one-hot features count one per category). */
size_t ks_features_count(const ks_features_t *f);
/* Name of column i ("amount", "mcc=grocery"). Owned by f. */
const char *ks_features_name(const ks_features_t *f, size_t i);

/* Computes the columns for one event into out[0..count). Returns 0, or
 * KS_EINVAL with a message in errbuf (the event goes to the DLQ with class
 * "feature"), e.g. for a timestamp string that is not ISO-8601. */
int ks_features_compute(const ks_features_t *f, const ks_value_t *fields, double *out,
                        char *errbuf, size_t errsize);

void ks_features_free(ks_features_t *f);

#endif
