/*
 * schema.h - the input fields a pipeline reads from each event, declared under
 * `input.fields` in the config:
 *
 *   input:
 *     fields:
 *       id:             {type: string, required: true}
 *       payment.amount: {type: number, default: 0}
 *       ts:             {type: timestamp}
 *
 * A field name is a dotted path into the JSON object. Types: number, string,
 * bool, timestamp (an epoch number or an ISO-8601 string, kept as decoded) and
 * any (whatever JSON scalar is there). A field absent or null takes its
 * `default` when one is set; otherwise it is an error (event to DLQ) when
 * `required: true`, else it stays KS_VAL_MISSING / KS_VAL_NULL and the
 * features decide (numbers become NaN, which models treat as missing).
 *
 * Decoded events are arrays of ks_value_t indexed like schema->fields.
 *
 * Virtual fields: stages that compute per-event values before the features
 * (window aggregates, feature-store lookups) add fields after the declared
 * ones. The decoder leaves them alone; their stage fills them; feature
 * expressions use them by name like any field.
 */
#ifndef KS_SCHEMA_H
#define KS_SCHEMA_H

#include "base/conftree.h"
#include "decode/value.h"

typedef enum {
    KS_FIELD_NUMBER,
    KS_FIELD_STRING,
    KS_FIELD_BOOL,
    KS_FIELD_TIMESTAMP,
    KS_FIELD_ANY,
} ks_field_type_t;

typedef struct ks_field {
    char *name;         /* as declared: "payment.amount" */
    char **path;        /* split on '.': {"payment", "amount"} */
    int n_path;
    ks_field_type_t type;
    int required;
    int has_default;
    ks_value_t dflt;    /* strings point into dflt_str */
    char *dflt_str;
} ks_field_t;

typedef struct ks_schema {
    ks_field_t *fields;
    size_t n_fields;    /* all fields: the declared ones, then the virtual ones */
    size_t n_decoded;   /* fields[0..n_decoded) are read from the event */
} ks_schema_t;

/* Parses the `input.fields` map (marks its nodes used). */
int ks_schema_parse(ks_node_t *fields_map, ks_schema_t **out, char *errbuf, size_t errsize);
/* Appends a virtual field (config time, before the features are parsed);
 * returns its index, or -1 if a field of that name exists. */
int ks_schema_add_virtual(ks_schema_t *s, const char *name, ks_field_type_t type);
/* Index of a field by declared name, or -1. */
int ks_schema_find(const ks_schema_t *s, const char *name);
const char *ks_field_type_name(ks_field_type_t t);
void ks_schema_free(ks_schema_t *s);

#endif
