/*
 * sink.c - the sink registry (see sink.h): every sink type, so that their
 * config keys join the one config table.
 */
#include "engine/sink.h"
#include "base/common.h"

const ks_sink_type_t *const ks_sink_types[] = {
    &ks_sink_output,
    &ks_sink_dead_letter,
    &ks_sink_feature_log,
    &ks_sink_passthrough,
    &ks_sink_shadow,
};
const size_t ks_sink_types_n = KS_ARRAY_LEN(ks_sink_types);
