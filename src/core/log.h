/*
 * log.h - the process logger: leveled, one line per message on stderr, logfmt
 * (`ts=... level=info msg="..." worker=1`). Thread-safe (one write(2) per line).
 */
#ifndef KS_LOG_H
#define KS_LOG_H

#include "core/common.h"

typedef enum { KS_LOG_DEBUG, KS_LOG_INFO, KS_LOG_WARN, KS_LOG_ERROR } ks_log_level_t;

void ks_log_set_level(ks_log_level_t level);
/* Parses "debug|info|warn|error"; returns -1 if unknown. */
int ks_log_level_parse(const char *s);
void ks_log(ks_log_level_t level, const char *fmt, ...) KS_PRINTF(2, 3);

#define ks_debug(...) ks_log(KS_LOG_DEBUG, __VA_ARGS__)
#define ks_info(...)  ks_log(KS_LOG_INFO, __VA_ARGS__)
#define ks_warn(...)  ks_log(KS_LOG_WARN, __VA_ARGS__)
#define ks_error(...) ks_log(KS_LOG_ERROR, __VA_ARGS__)

#endif
