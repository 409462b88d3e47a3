/*
 * value.h - one decoded input field of one event.
 *
 * The decoder fills an array of ks_value per event, one slot per field declared
 * in `input.fields` (see decode/schema.h), in declaration order. Strings point
 * either into the Kafka message payload (no escapes) or into the batch arena
 * (unescaped copy); both live until the batch is finished, so nothing here is
 * owned by the value itself.
 */
#ifndef KS_VALUE_H
#define KS_VALUE_H

#include <stdint.h>

typedef enum {
    KS_VAL_MISSING = 0, /* field absent from the event (and no default) */
    KS_VAL_NULL,        /* JSON null (and no default) */
    KS_VAL_NUM,
    KS_VAL_STR,
    KS_VAL_BOOL,
} ks_val_type_t;

#define KS_NUM_TOKEN_MAX 32

typedef struct ks_value {
    uint8_t type;       /* ks_val_type_t */
    uint8_t b;          /* KS_VAL_BOOL */
    uint16_t num_len;   /* KS_VAL_NUM read from an event by the decoder: its JSON
                           token's length (0: not from one, or longer than
                           KS_NUM_TOKEN_MAX); the encoder copies the token
                           instead of formatting num */
    union {
        uint32_t len;     /* KS_VAL_STR: byte length (not NUL-terminated) */
        uint32_t num_off; /* KS_VAL_NUM with num_len: the token's offset in the event */
    };
    union {
        double num;      /* KS_VAL_NUM */
        const char *str; /* KS_VAL_STR */
    };
} ks_value_t;

#ifndef KS_ERRCLASS_DEFINED
#define KS_ERRCLASS_DEFINED
/* Why an event went to the dead-letter topic. The string form (ks_errclass_name)
 * is what the `kscore.error.class` DLQ header carries and what the metrics label. */
typedef enum {
    KS_ERRCLASS_NONE = 0,
    KS_ERRCLASS_DESERIALIZATION, /* not valid JSON / not UTF-8 / not an object */
    KS_ERRCLASS_MISSING_FIELD,   /* a required field is absent or null */
    KS_ERRCLASS_TYPE,            /* a field has the wrong JSON type */
    KS_ERRCLASS_FEATURE,         /* a feature could not be computed */
    KS_ERRCLASS_INFERENCE,       /* the model failed or returned non-finite output */
    KS_ERRCLASS_DELIVERY,        /* the output record cannot be written (too large, invalid) */
    KS_ERRCLASS__COUNT
} ks_errclass_t;

const char *ks_errclass_name(ks_errclass_t c);
#endif

#endif
