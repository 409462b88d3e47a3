/*
 * value.c - names of the event error classes (DLQ headers, metric labels).
 */
#include "decode/value.h"

const char *ks_errclass_name(ks_errclass_t c)
{
    switch (c) {
    case KS_ERRCLASS_NONE: return "none";
    case KS_ERRCLASS_DESERIALIZATION: return "deserialization";
    case KS_ERRCLASS_MISSING_FIELD: return "missing_field";
    case KS_ERRCLASS_TYPE: return "type_mismatch";
    case KS_ERRCLASS_FEATURE: return "feature";
    case KS_ERRCLASS_INFERENCE: return "inference";
    case KS_ERRCLASS_DELIVERY: return "delivery";
    case KS_ERRCLASS__COUNT: break;
    }
    return "unknown";
}
