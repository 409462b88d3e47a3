/*
 * log.h - the process logger: leveled, one line per message on stderr, as
 * logfmt (`ts=... level=info msg="..."`) or JSON lines
 * (`{"ts":"...","level":"info","msg":"..."}`), chosen by log.format.
 * Thread-safe (one write(2) per line, under a mutex).
 *
 * Repeated messages are rate-limited: the same text (digits ignored, so
 * "12 identical errors" and "13 identical errors" are the same message) at
 * the same level prints at most KS_LOG_BURST times per KS_LOG_WINDOW_S
 * seconds; the rest are counted and, once the window ends, summarised in one
 * line: `<the last one> (repeated 57 times)`. librdkafka's logs come through
 * ks_log too (engine/worker.c), so they obey the level and the rate limit.
 *
 * The last KS_LOG_RECENT warn/error lines are kept in memory for the status
 * page (ks_log_recent_json).
 */
#ifndef KS_LOG_H
#define KS_LOG_H

#include "base/common.h"
#include "base/buf.h"

typedef enum { KS_LOG_DEBUG, KS_LOG_INFO, KS_LOG_WARN, KS_LOG_ERROR } ks_log_level_t;
typedef enum { KS_LOG_LOGFMT, KS_LOG_JSON } ks_log_format_t;

#define KS_LOG_BURST    5   /* lines of one message per window */
#define KS_LOG_WINDOW_S 10
#define KS_LOG_RECENT   64  /* warn/error lines kept for the status page */

void ks_log_set_level(ks_log_level_t level);
/* Parses "debug|info|warn|error"; returns -1 if unknown. */
int ks_log_level_parse(const char *s);
void ks_log_set_format(ks_log_format_t format);
/* Parses "logfmt|json"; returns -1 if unknown. */
int ks_log_format_parse(const char *s);
void ks_log(ks_log_level_t level, const char *fmt, ...) KS_PRINTF(2, 3);

/* Writes the "(repeated N times)" summaries of windows that have ended (all
 * of them when `all`). ks_log does this lazily; the engine also calls it
 * about once a second and at shutdown so a burst that stops is still
 * reported. Any thread. */
void ks_log_flush_repeats(int all);

/* Appends the most recent warn/error lines, oldest first, as a JSON array of
 * {"ts":"<ISO-8601>","level":"warn","msg":"..."}; at most `max`. Any thread. */
void ks_log_recent_json(ks_buf_t *out, size_t max);

#define ks_debug(...) ks_log(KS_LOG_DEBUG, __VA_ARGS__)
#define ks_info(...)  ks_log(KS_LOG_INFO, __VA_ARGS__)
#define ks_warn(...)  ks_log(KS_LOG_WARN, __VA_ARGS__)
#define ks_error(...) ks_log(KS_LOG_ERROR, __VA_ARGS__)

#endif
