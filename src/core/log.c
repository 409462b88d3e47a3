/*
 * log.c - logfmt lines on stderr (see log.h).
 */
#include "core/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static atomic_int min_level = KS_LOG_INFO;
static const char *level_names[] = {"debug", "info", "warn", "error"};

void ks_log_set_level(ks_log_level_t level)
{
    atomic_store(&min_level, (int)level);
}

int ks_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    if (strcasecmp(s, "warning") == 0)
        return KS_LOG_WARN;
    return -1;
}

void ks_log(ks_log_level_t level, const char *fmt, ...)
{
    if ((int)level < atomic_load(&min_level))
        return;
    char line[2048], msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* escape quotes and newlines so one message stays one logfmt line */
    char esc[1600];
    size_t j = 0;
    for (size_t i = 0; msg[i] && j < sizeof(esc) - 3; i++) {
        char c = msg[i];
        if (c == '"' || c == '\\') {
            esc[j++] = '\\';
            esc[j++] = c;
        } else if (c == '\n') {
            esc[j++] = '\\';
            esc[j++] = 'n';
        } else {
            esc[j++] = c;
        }
    }
    esc[j] = '\0';
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=\"%s\"\n",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], esc);
    if (n > (int)sizeof(line))
        n = sizeof(line);
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
