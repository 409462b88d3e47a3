/*
 * log.c - logfmt or JSON lines on stderr, rate-limited repeats, and a ring of
 * recent warnings and errors (see log.h).
 *
 * Rate limiting keeps a small table of message keys (a hash of level + text
 * with digit runs folded, so counters and offsets inside a message do not
 * make it new). A key prints KS_LOG_BURST lines per window; after that its
 * occurrences are counted, and when the window ends one summary line carries
 * the last text and the count. A message that keeps repeating stays
 * suppressed (one summary per window); one that went quiet for a whole window
 * starts afresh. A table collision simply flushes the older key's summary.
 */
#include "base/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static atomic_int min_level = KS_LOG_INFO;
static atomic_int line_format = KS_LOG_LOGFMT;
static const char *level_names[] = {"debug", "info", "warn", "error"};
static const char *format_names[] = {"logfmt", "json"};

#define SLOTS     128
#define MSG_MAX   1536
#define WINDOW_NS ((int64_t)KS_LOG_WINDOW_S * 1000000000)

typedef struct slot {
    uint64_t key;              /* 0 = free */
    int64_t window_start_ns;
    unsigned printed;          /* lines printed in this window */
    unsigned long suppressed;  /* occurrences not printed in this window */
    ks_log_level_t level;
    char last[MSG_MAX];        /* the last suppressed text */
} slot_t;

typedef struct recent {
    int64_t ts_ms;
    ks_log_level_t level;
    char msg[512];
} recent_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static slot_t slots[SLOTS];
static recent_t recent[KS_LOG_RECENT];
static size_t recent_next, recent_count;

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

void ks_log_set_format(ks_log_format_t format)
{
    atomic_store(&line_format, (int)format);
}

int ks_log_format_parse(const char *s)
{
    for (int i = 0; i < 2; i++)
        if (strcasecmp(s, format_names[i]) == 0)
            return i;
    return -1;
}

/* FNV-1a over the level and the text, digit runs folded to one '#'. */
static uint64_t message_key(ks_log_level_t level, const char *msg)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)level;
    int in_digits = 0;
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        unsigned char c = *p;
        if (c >= '0' && c <= '9') {
            if (in_digits)
                continue;
            in_digits = 1;
            c = '#';
        } else {
            in_digits = 0;
        }
        h = (h ^ c) * 1099511628211ULL;
    }
    return h ? h : 1;
}

/* Escapes for a quoted logfmt value or a JSON string (the same rules suffice
 * for both: backslash, quote, control characters). Always NUL-terminates. */
static size_t escape(char *out, size_t size, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t j = 0;
    for (; *s && j + 7 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[j++] = '\\';
            out[j++] = (char)c;
        } else if (c == '\n') {
            out[j++] = '\\';
            out[j++] = 'n';
        } else if (c == '\t') {
            out[j++] = '\\';
            out[j++] = 't';
        } else if (c < 0x20) {
            memcpy(out + j, "\\u00", 4);
            out[j + 4] = hex[c >> 4];
            out[j + 5] = hex[c & 15];
            j += 6;
        } else {
            out[j++] = (char)c;
        }
    }
    out[j] = '\0';
    return j;
}

static void format_ts(char *out, size_t size, int64_t ms)
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* Writes one line; caller holds the lock. */
static void emit(ks_log_level_t level, const char *msg, unsigned long repeated)
{
    char text[MSG_MAX + 48], esc[2 * MSG_MAX + 128], ts[64], line[2 * MSG_MAX + 256];
    if (repeated)
        snprintf(text, sizeof(text), "%s (repeated %lu times)", msg, repeated);
    else
        snprintf(text, sizeof(text), "%s", msg);
    int64_t now_ms = ks_now_wall_ms();
    format_ts(ts, sizeof(ts), now_ms);
    escape(esc, sizeof(esc), text);
    int n;
    if (atomic_load(&line_format) == KS_LOG_JSON)
        n = snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}\n", ts,
                     level_names[level], esc);
    else
        n = snprintf(line, sizeof(line), "ts=%s level=%s msg=\"%s\"\n", ts, level_names[level],
                     esc);
    if (n >= (int)sizeof(line)) {
        n = (int)sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
    if (level >= KS_LOG_WARN) {
        recent_t *r = &recent[recent_next];
        r->ts_ms = now_ms;
        r->level = level;
        size_t len = strlen(text);
        if (len >= sizeof(r->msg))
            len = sizeof(r->msg) - 1;
        memcpy(r->msg, text, len);
        r->msg[len] = '\0';
        recent_next = (recent_next + 1) % KS_LOG_RECENT;
        if (recent_count < KS_LOG_RECENT)
            recent_count++;
    }
}

/* Summaries of windows that ended (or all); caller holds the lock. */
static void flush_locked(int64_t now, int all)
{
    for (size_t i = 0; i < SLOTS; i++) {
        slot_t *s = &slots[i];
        if (!s->suppressed || (!all && now - s->window_start_ns < WINDOW_NS))
            continue;
        emit(s->level, s->last, s->suppressed);
        s->suppressed = 0;
        s->window_start_ns = now; /* still hot: the next window starts suppressed */
    }
}

void ks_log_flush_repeats(int all)
{
    pthread_mutex_lock(&lock);
    flush_locked(ks_now_mono_ns(), all);
    pthread_mutex_unlock(&lock);
}

void ks_log(ks_log_level_t level, const char *fmt, ...)
{
    if ((int)level < atomic_load(&min_level))
        return;
    char msg[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    uint64_t key = message_key(level, msg);
    int64_t now = ks_now_mono_ns();

    pthread_mutex_lock(&lock);
    flush_locked(now, 0);
    slot_t *s = &slots[key % SLOTS];
    if (s->key != key) {
        if (s->suppressed)
            emit(s->level, s->last, s->suppressed);
        s->key = key;
        s->level = level;
        s->window_start_ns = now;
        s->printed = 0;
        s->suppressed = 0;
    } else if (now - s->window_start_ns >= WINDOW_NS) {
        /* quiet for a whole window (a busy one was flushed above and restarted) */
        s->window_start_ns = now;
        s->printed = 0;
    }
    if (s->printed < KS_LOG_BURST) {
        s->printed++;
        emit(level, msg, 0);
    } else {
        s->suppressed++;
        memcpy(s->last, msg, sizeof(msg));
    }
    pthread_mutex_unlock(&lock);
}

void ks_log_recent_json(ks_buf_t *out, size_t max)
{
    pthread_mutex_lock(&lock);
    size_t n = recent_count < max ? recent_count : max;
    size_t first = (recent_next + KS_LOG_RECENT - n) % KS_LOG_RECENT;
    ks_buf_putc(out, '[');
    for (size_t k = 0; k < n; k++) {
        const recent_t *r = &recent[(first + k) % KS_LOG_RECENT];
        char ts[64];
        format_ts(ts, sizeof(ts), r->ts_ms);
        ks_buf_printf(out, "%s{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", k ? "," : "", ts,
                      level_names[r->level]);
        ks_buf_json_string(out, r->msg, strlen(r->msg));
        ks_buf_putc(out, '}');
    }
    ks_buf_putc(out, ']');
    pthread_mutex_unlock(&lock);
}
