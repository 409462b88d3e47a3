/*
 * common.c - error buffer helper, aborting allocators, whole-file reads, clocks.
 */
#include "base/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int ks_err(char *errbuf, size_t errsize, int code, const char *fmt, ...)
{
    if (errbuf && errsize > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errsize, fmt, ap);
        va_end(ap);
    }
    return code;
}

static void oom(size_t n)
{
    fprintf(stderr, "kscore: out of memory allocating %zu bytes\n", n);
    abort();
}

void *ks_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *ks_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *ks_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *ks_xstrdup(const char *s)
{
    return ks_xstrndup(s, strlen(s));
}

char *ks_xstrndup(const char *s, size_t n)
{
    char *p = ks_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

int ks_read_file(const char *path, char **out, size_t *out_len, char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ks_err(errbuf, errsize, KS_EIO, "cannot open %s: %s", path, strerror(errno));
    for (;;) {
        if (cap - len < 65536) {
            cap = cap ? cap * 2 : 65536;
            buf = ks_xrealloc(buf, cap + 1);
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) {
                rc = ks_err(errbuf, errsize, KS_EIO, "cannot read %s: %s", path, strerror(errno));
                free(buf);
                buf = NULL;
                goto out;
            }
            break;
        }
    }
    buf[len] = '\0';
    *out = buf;
    if (out_len)
        *out_len = len;
out:
    fclose(f);
    return rc;
}

int64_t ks_now_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t ks_now_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ks_duration_parse(const char *s, int64_t *ms)
{
    static const struct { const char *unit; int64_t ms; } units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
    };
    int64_t v = 0;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return KS_EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (INT64_MAX / 10 - 9))
            return KS_EINVAL;
        v = v * 10 + (*p - '0');
    }
    for (size_t i = 0; i < KS_ARRAY_LEN(units); i++) {
        if (strcmp(p, units[i].unit) != 0)
            continue;
        if (v <= 0 || v > (INT64_C(1) << 50) / units[i].ms) /* ~35,000 years */
            return KS_EINVAL;
        *ms = v * units[i].ms;
        return KS_OK;
    }
    return KS_EINVAL;
}
