/*
 * snapshot.c - local snapshot files of window state (see snapshot.h), and
 * why a snapshot plus the changelog's tail restores exactly the committed
 * prefix.
 *
 * File layout (little-endian, like the changelog records):
 *
 *   "KSWSNAP\n"  u32 version  u32 header length
 *   header: u64 fingerprint, i64 P, i64 L, i32 partition, i64 written_ms,
 *           then topic, group, changelog (u16 length + bytes each)
 *   u32 header checksum
 *   per key: u32 key length (> 0), u32 value length, key, value
 *            (key = [group byte][key bytes], value = a changelog record
 *            holding the key's full state and no events)
 *   u32 0, u64 key count, u32 checksum of the keys' bytes
 *
 * Checksums are MurmurHash3 chained record by record (each record's hash
 * seeds the next): a torn, truncated or bit-flipped file is refused, never
 * half-used (the stage then discards what it read and uses the changelog).
 *
 * Why snapshot + tail = the committed prefix. The stage writes a snapshot
 * of a partition between batches, when its state S is that of the events
 * before P (P = the last applied offset + 1, or the offset the state was
 * restored at), and then reads L, the changelog partition's high watermark.
 * On assignment with committed offset C it uses the snapshot only if P <= C
 * (and the fingerprint, topic, group, changelog topic match, and the
 * changelog partition still holds L: log start <= L <= end); it loads S and
 * applies the changelog records at offsets >= L, with the usual rule
 * (records stamped at or past C skipped, events at or past C cut off).
 *
 *   1. Every record a restore needs is at an offset >= L. When the snapshot
 *      was written, the owner's state was at P, so the committed offset was
 *      <= P (offsets are committed only for processed events, and a group
 *      has one owner per partition: a deposed owner's commits are fenced by
 *      the group generation). So the events in [P, C) were processed after
 *      the snapshot, by this owner or by a later one that restored from a
 *      committed offset <= P and replayed them; their records were produced
 *      after L was read, and a record produced later lands at or past the
 *      log end offset, which is >= the high watermark L.
 *   2. Records at offsets >= L that cover events before P are harmless.
 *      Records of the last batches before P may still have been in flight
 *      when L was read and land after it: each holds its key's full state
 *      before its batch plus that batch's events, all before P <= C, so
 *      applying it rebuilds the same state the snapshot holds for that key
 *      (and a later record of the key, later in the log, overrides it).
 *   3. A key with no record stamped < C at or past L had no event in
 *      [P, C) and was not evicted then (evictions are stamped records too):
 *      its committed state is S's. A key with one has, by log order, the
 *      state of its last such record - what a restore from the whole
 *      changelog gives it too, since that record is the key's last one
 *      stamped < C in the whole log.
 *   4. The partition's newest event time (which idle keys are judged by) is
 *      S's, raised by every applied record's stamp time and events: the max
 *      over the events before C, as from the changelog alone.
 *
 * At-least-once lag: a snapshot written while the committed offset C' < P
 * (the periodic ones, usually) is refused after a crash that leaves C < P
 * (the events in [C, P) are replayed, and S already counts them); it becomes
 * usable once the worker commits past P. The previous snapshot stays as
 * .prev, so a refused newest one falls back to the older one before the
 * changelog alone. Compaction: the tail is read from L, so the records
 * before L may be compacted freely; in the tail, compaction keeps each key's
 * last record, which is the one that counts unless it is stamped >= C - the
 * same window min.compaction.lag.ms covers for restores from the changelog
 * alone (engine/stages/windows.c). A changelog that was deleted, truncated
 * or recreated shows as L outside [log start, end] and the snapshot is
 * refused.
 */
#include "state/snapshot.h"
#include "base/buf.h"
#include "base/common.h"
#include "features/murmur3.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "KSWSNAP\n"
#define VERSION 1
#define SEED 0x736e6170u
#define MAX_KEY (1u << 20)
#define MAX_VALUE (1u << 30)
#define IO_CHUNK (1u << 20)

int ks_wsnap_path(char *out, size_t size, const char *dir, const char *group, const char *topic,
                  int32_t partition, int prev)
{
    char g[KS_WSNAP_NAME_MAX];
    size_t n = strlen(group);
    if (n >= sizeof(g))
        return KS_EINVAL;
    for (size_t i = 0; i <= n; i++) {
        char c = group[i];
        int ok = c == 0 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        g[i] = ok ? c : '_';
    }
    if (g[0] == '.') /* never "." or ".." */
        g[0] = '_';
    int len = snprintf(out, size, "%s/%s/%s-%d.snap%s", dir, g, topic, (int)partition,
                       prev ? ".prev" : "");
    return len < 0 || (size_t)len >= size ? KS_EINVAL : KS_OK;
}

/* ---------------------------------------------------------------- writing */

typedef struct writer {
    int fd;
    ks_buf_t buf;
    uint32_t sum;
    uint64_t keys, bytes;
    int err;         /* errno of the first failure */
} writer_t;

static void w_flush(writer_t *w)
{
    size_t off = 0;
    while (off < w->buf.len && !w->err) {
        ssize_t n = write(w->fd, w->buf.data + off, w->buf.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            w->err = n < 0 ? errno : EIO;
        else
            off += (size_t)n;
    }
    w->bytes += w->buf.len;
    ks_buf_reset(&w->buf);
}

static void w_u16(ks_buf_t *b, uint16_t v) { ks_buf_append(b, &v, 2); }
static void w_u32(ks_buf_t *b, uint32_t v) { ks_buf_append(b, &v, 4); }
static void w_i64(ks_buf_t *b, int64_t v) { ks_buf_append(b, &v, 8); }
static void w_str(ks_buf_t *b, const char *s)
{
    size_t n = strlen(s);
    w_u16(b, (uint16_t)n);
    ks_buf_append(b, s, n);
}

static void w_record(void *opaque, const void *key, size_t klen, const void *val, size_t vlen)
{
    writer_t *w = opaque;
    uint32_t kl = (uint32_t)klen, vl = (uint32_t)vlen;
    size_t at = w->buf.len;
    w_u32(&w->buf, kl);
    w_u32(&w->buf, vl);
    ks_buf_append(&w->buf, key, klen);
    ks_buf_append(&w->buf, val, vlen);
    w->sum = ks_murmur3_32(w->buf.data + at, w->buf.len - at, w->sum);
    w->keys++;
    if (w->buf.len >= IO_CHUNK)
        w_flush(w);
}

/* Creates dir and its parents. */
static int mkdirs(char *dir)
{
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        int rc = mkdir(dir, 0777);
        *p = '/';
        if (rc && errno != EEXIST)
            return -1;
    }
    return mkdir(dir, 0777) && errno != EEXIST ? -1 : 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int ks_wsnap_write(ks_wstore_t *s, const char *path, const ks_wsnap_header_t *h, uint64_t *bytes,
                   char *errbuf, size_t errsize)
{
    writer_t w = {.fd = -1, .sum = SEED};
    size_t plen = strlen(path);
    char *dir = ks_xmalloc(plen + 1), *tmp = ks_xmalloc(plen + 64), *prev = ks_xmalloc(plen + 8);
    int rc = KS_OK;
    memcpy(dir, path, plen + 1);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir)
        *slash = 0;
    else
        snprintf(dir, plen + 1, "%s", slash ? "/" : ".");
    snprintf(tmp, plen + 64, "%s.tmp.%ld", path, (long)getpid());
    snprintf(prev, plen + 8, "%s.prev", path);
    if (mkdirs(dir)) {
        rc = ks_err(errbuf, errsize, KS_EIO, "cannot create %s: %s", dir, strerror(errno));
        goto out;
    }
    if ((w.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
        rc = ks_err(errbuf, errsize, KS_EIO, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    /* the header */
    ks_buf_t hb = {0};
    w_i64(&hb, (int64_t)h->fingerprint);
    w_i64(&hb, h->position);
    w_i64(&hb, h->changelog_end);
    w_u32(&hb, (uint32_t)h->partition);
    w_i64(&hb, h->written_ms);
    w_str(&hb, h->topic);
    w_str(&hb, h->group);
    w_str(&hb, h->changelog);
    ks_buf_append(&w.buf, MAGIC, 8);
    w_u32(&w.buf, VERSION);
    w_u32(&w.buf, (uint32_t)hb.len);
    ks_buf_append(&w.buf, hb.data, hb.len);
    w_u32(&w.buf, ks_murmur3_32(hb.data, hb.len, SEED));
    ks_buf_free(&hb);
    /* the keys, then the trailer */
    ks_wstore_each(s, h->position - 1, w_record, &w);
    w_u32(&w.buf, 0);
    w_i64(&w.buf, (int64_t)w.keys);
    w_u32(&w.buf, w.sum);
    w_flush(&w);
    if (!w.err && fsync(w.fd))
        w.err = errno;
    if (close(w.fd) && !w.err)
        w.err = errno;
    w.fd = -1;
    if (w.err) {
        rc = ks_err(errbuf, errsize, KS_EIO, "cannot write %s: %s", tmp, strerror(w.err));
        unlink(tmp);
        goto out;
    }
    if ((rename(path, prev) && errno != ENOENT) || rename(tmp, path)) {
        rc = ks_err(errbuf, errsize, KS_EIO, "cannot rename %s to %s: %s", tmp, path,
                    strerror(errno));
        unlink(tmp);
        goto out;
    }
    if (fsync_dir(dir))
        rc = ks_err(errbuf, errsize, KS_EIO, "cannot fsync %s: %s", dir, strerror(errno));
    *bytes = w.bytes;
out:
    if (w.fd >= 0)
        close(w.fd);
    ks_buf_free(&w.buf);
    free(dir);
    free(tmp);
    free(prev);
    return rc;
}

/* ---------------------------------------------------------------- reading */

struct ks_wsnap_reader {
    int fd;
    char *buf;
    size_t pos, len, cap;
    int eof;
    char path[1024];
};

/* Makes n bytes available at r->buf + r->pos; 0, or -1 at end of file. */
static int r_need(ks_wsnap_reader_t *r, size_t n)
{
    if (r->len - r->pos >= n)
        return 0;
    if (r->pos) {
        memmove(r->buf, r->buf + r->pos, r->len - r->pos);
        r->len -= r->pos;
        r->pos = 0;
    }
    if (n > r->cap) {
        r->cap = n + IO_CHUNK;
        r->buf = ks_xrealloc(r->buf, r->cap);
    }
    while (r->len < n && !r->eof) {
        ssize_t got = read(r->fd, r->buf + r->len, r->cap - r->len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            r->eof = 1;
        else
            r->len += (size_t)got;
    }
    return r->len >= n ? 0 : -1;
}

static int r_get(ks_wsnap_reader_t *r, void *out, size_t n)
{
    if (r_need(r, n))
        return -1;
    memcpy(out, r->buf + r->pos, n);
    r->pos += n;
    return 0;
}

/* A length-prefixed name out of a header buffer. */
static int h_str(const char **p, const char *end, char *out)
{
    uint16_t n;
    if (end - *p < 2)
        return -1;
    memcpy(&n, *p, 2);
    *p += 2;
    if (n >= KS_WSNAP_NAME_MAX || end - *p < n)
        return -1;
    memcpy(out, *p, n);
    out[n] = 0;
    *p += n;
    return 0;
}

int ks_wsnap_open(const char *path, ks_wsnap_reader_t **out, ks_wsnap_header_t *h, char *errbuf,
                  size_t errsize)
{
    ks_wsnap_reader_t *r = ks_xcalloc(1, sizeof(*r));
    char magic[8];
    uint32_t version = 0, hlen = 0, hsum = 0;
    int rc = KS_OK;
    *out = NULL;
    memset(h, 0, sizeof(*h));
    snprintf(r->path, sizeof(r->path), "%s", path);
    if ((r->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        int e = errno;
        rc = ks_err(errbuf, errsize, KS_EIO, "cannot open %s: %s", path, strerror(e));
        free(r);
        errno = e;
        return rc;
    }
    if (r_get(r, magic, 8) || memcmp(magic, MAGIC, 8) || r_get(r, &version, 4) ||
        r_get(r, &hlen, 4)) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "%s is not a kscore window snapshot", path);
        goto out;
    }
    if (version != VERSION) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "%s has snapshot format %u, this kscore reads %d",
                    path, version, VERSION);
        goto out;
    }
    if (hlen > 4096 || r_need(r, (size_t)hlen + 4)) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "%s: truncated header", path);
        goto out;
    }
    const char *p = r->buf + r->pos, *end = p + hlen;
    memcpy(&hsum, end, 4);
    if (hsum != ks_murmur3_32(p, hlen, SEED) || hlen < 36) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "%s: header checksum mismatch", path);
        goto out;
    }
    uint32_t part;
    memcpy(&h->fingerprint, p, 8);
    memcpy(&h->position, p + 8, 8);
    memcpy(&h->changelog_end, p + 16, 8);
    memcpy(&part, p + 24, 4);
    memcpy(&h->written_ms, p + 28, 8);
    h->partition = (int32_t)part;
    p += 36;
    if (h_str(&p, end, h->topic) || h_str(&p, end, h->group) || h_str(&p, end, h->changelog) ||
        p != end) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "%s: malformed header", path);
        goto out;
    }
    r->pos += (size_t)hlen + 4;
    *out = r;
    r = NULL;
out:
    ks_wsnap_close(r);
    return rc;
}

int ks_wsnap_load(ks_wsnap_reader_t *r, ks_wstore_t *s, uint64_t *keys, char *errbuf,
                  size_t errsize)
{
    uint32_t sum = SEED, kl, vl, want_sum;
    uint64_t n = 0, want_n;
    *keys = 0;
    for (;;) {
        if (r_need(r, 8))
            return ks_err(errbuf, errsize, KS_EINVAL, "%s: truncated after %llu keys", r->path,
                          (unsigned long long)n);
        memcpy(&kl, r->buf + r->pos, 4);
        memcpy(&vl, r->buf + r->pos + 4, 4);
        if (kl == 0)
            break;
        if (kl > MAX_KEY || vl > MAX_VALUE || r_need(r, 8 + (size_t)kl + vl))
            return ks_err(errbuf, errsize, KS_EINVAL, "%s: truncated or damaged after %llu keys",
                          r->path, (unsigned long long)n);
        const char *rec = r->buf + r->pos;
        sum = ks_murmur3_32(rec, 8 + (size_t)kl + vl, sum);
        if (ks_wstore_restore(s, rec + 8, kl, rec + 8 + kl, vl, INT64_MAX) != KS_OK)
            return ks_err(errbuf, errsize, KS_EINVAL, "%s: key %llu cannot be read", r->path,
                          (unsigned long long)n);
        r->pos += 8 + (size_t)kl + vl;
        *keys = ++n;
    }
    r->pos += 4;
    if (r_get(r, &want_n, 8) || r_get(r, &want_sum, 4) || !r_need(r, 1))
        return ks_err(errbuf, errsize, KS_EINVAL, "%s: damaged trailer", r->path);
    if (want_n != n || want_sum != sum)
        return ks_err(errbuf, errsize, KS_EINVAL,
                      "%s: checksum mismatch (%llu keys read, %llu written)", r->path,
                      (unsigned long long)n, (unsigned long long)want_n);
    return KS_OK;
}

void ks_wsnap_close(ks_wsnap_reader_t *r)
{
    if (!r)
        return;
    if (r->fd >= 0)
        close(r->fd);
    free(r->buf);
    free(r);
}
