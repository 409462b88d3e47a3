/*
 * common.h - small things every module uses: the error convention, attribute
 * macros, and the error-buffer helper.
 *
 * Error convention (house style): functions return 0 on success and a negative
 * KS_E* code on failure. Anything that can fail at start-up also takes an
 * (errbuf, errsize) pair and writes one sentence a user can act on into it.
 */
#ifndef KS_COMMON_H
#define KS_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

#define KS_OK        0
#define KS_EINVAL   -1   /* bad input: config, model file, event */
#define KS_ENOMEM   -2
#define KS_EIO      -3   /* file or network I/O failed */
#define KS_EKAFKA   -4   /* librdkafka reported an error */
#define KS_ESTATE   -5   /* called in the wrong state */

#define KS_UNUSED       __attribute__((unused))
#define KS_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define KS_LIKELY(x)    __builtin_expect(!!(x), 1)
#define KS_UNLIKELY(x)  __builtin_expect(!!(x), 0)
#define KS_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Writes a formatted message into errbuf (if errbuf != NULL and errsize > 0)
 * and returns `code`, so callers can write `return ks_err(eb, es, KS_EINVAL, ...)`. */
int ks_err(char *errbuf, size_t errsize, int code, const char *fmt, ...) KS_PRINTF(4, 5);

/* Allocation that aborts the process on failure: used only for start-up sized
 * structures, never per event. */
void *ks_xmalloc(size_t n);
void *ks_xcalloc(size_t n, size_t size);
void *ks_xrealloc(void *p, size_t n);
char *ks_xstrdup(const char *s);
char *ks_xstrndup(const char *s, size_t n);

/* Reads a whole file into a NUL-terminated malloc'd buffer (caller frees). */
int ks_read_file(const char *path, char **out, size_t *out_len, char *errbuf, size_t errsize);

/* Parses a duration, a positive whole number and a unit ("250ms", "90s",
 * "5m", "1h", "1d"), into milliseconds: the one form every duration key of
 * the config takes. KS_EINVAL otherwise. */
int ks_duration_parse(const char *s, int64_t *ms);

/* Monotonic and wall clocks. */
int64_t ks_now_mono_ns(void);
int64_t ks_now_wall_ms(void);

#endif
