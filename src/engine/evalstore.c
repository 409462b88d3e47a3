/*
 * evalstore.c - the prediction store of online evaluation (see evalstore.h).
 *
 * In memory: a pool of entries with a free list and a chained hash table
 * (bucket heads and next links are pool indexes, so nothing is allocated
 * per prediction once the pool has grown). Entries are scanned by
 * ks_evalstore_expire, which the caller runs about once a second.
 *
 * Every record goes through append(): to the log and, while a compaction
 * runs (s->next), to the file replacing it; both count their lines.
 *
 * The labels topic's positions are two arrays indexed by partition: the
 * position set (pos) and the one the log says (pos_logged); a sync writes
 * an O line where they differ, after its fdatasync (evalstore.h).
 */
#include "engine/evalstore.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/common.h"
#include "base/log.h"
#include "features/murmur3.h"

#define NIL UINT32_MAX
#define CHUNK 4096      /* entries written per lock hold while compacting */

enum { ST_FREE, ST_WAITING, ST_JOINED, ST_EXPIRED };

typedef struct entry {
    char *id;
    uint32_t id_len, next, hash;
    uint8_t state;
    ks_eval_pred_t p;
} entry_t;

struct ks_evalstore {
    pthread_mutex_t lock;
    char *path;
    FILE *log;          /* NULL until started */
    FILE *next;         /* the compacted log being written, or NULL */
    int lock_fd;        /* PATH.lock, flocked; -1 */
    int compacting;     /* a sync is compacting: others only flush */
    uint64_t next_lines, retry_at; /* lines in next; no compaction below retry_at lines */
    size_t max;
    int64_t max_wait_ms;
    entry_t *e;
    size_t n_alloc;     /* pool slots in use or on the free list */
    uint32_t free_head;
    uint32_t *bucket;
    size_t mask;
    ks_evalstore_stats_t st;
    char *pos_topic;    /* the labels topic the positions are of, or NULL */
    int64_t *pos;       /* per partition: the next label to read, -1 unknown */
    int64_t *pos_logged;/* per partition: the last O line written, -1 none */
    size_t n_pos;       /* slots in pos and pos_logged */
    size_t n_pos_set;   /* positions >= 0 (live lines, for compaction) */
};

static uint32_t hash_id(const char *id, size_t len)
{
    return ks_murmur3_32(id, len, 0x6b73);
}

static uint32_t find(const ks_evalstore_t *s, const char *id, size_t len, uint32_t h)
{
    for (uint32_t i = s->bucket[h & s->mask]; i != NIL; i = s->e[i].next)
        if (s->e[i].hash == h && s->e[i].id_len == len && !memcmp(s->e[i].id, id, len))
            return i;
    return NIL;
}

static void unlink_entry(ks_evalstore_t *s, uint32_t i)
{
    uint32_t *pp = &s->bucket[s->e[i].hash & s->mask];
    while (*pp != i)
        pp = &s->e[*pp].next;
    *pp = s->e[i].next;
    if (s->e[i].state == ST_WAITING)
        s->st.waiting--;
    else
        s->st.remembered--;
    free(s->e[i].id);
    s->e[i].id = NULL;
    s->e[i].state = ST_FREE;
    s->e[i].next = s->free_head;
    s->free_head = i;
}

static uint32_t insert(ks_evalstore_t *s, const char *id, size_t len, uint32_t h)
{
    uint32_t i;
    if (s->free_head != NIL) {
        i = s->free_head;
        s->free_head = s->e[i].next;
    } else {
        i = (uint32_t)s->n_alloc++;
    }
    entry_t *e = &s->e[i];
    e->id = ks_xstrndup(id, len);
    e->id_len = (uint32_t)len;
    e->hash = h;
    e->next = s->bucket[h & s->mask];
    s->bucket[h & s->mask] = i;
    return i;
}

/* Percent-escapes a field: no space, newline, CR or '%' in the log. */
static void put_field(FILE *f, const char *v, size_t len)
{
    if (len == 0)
        fputs("%-", f); /* the empty string */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '%' || c == 0)
            fprintf(f, "%%%02X", c);
        else
            fputc(c, f);
    }
}

static size_t get_field(char *s)
{
    if (!strcmp(s, "%-")) {
        s[0] = 0;
        return 0;
    }
    size_t o = 0;
    for (size_t i = 0; s[i]; i++) {
        unsigned v;
        if (s[i] == '%' && sscanf(s + i + 1, "%2x", &v) == 1) {
            s[o++] = (char)v;
            i += 2;
        } else {
            s[o++] = s[i];
        }
    }
    s[o] = 0;
    return o;
}

static void log_pred(FILE *f, const entry_t *e)
{
    fprintf(f, "P %lld %.17g ", (long long)e->p.time_ms, e->p.score);
    put_field(f, e->p.version, strlen(e->p.version));
    fputc(' ', f);
    put_field(f, e->p.variant, strlen(e->p.variant));
    fputc(' ', f);
    put_field(f, e->id, e->id_len);
    fputc('\n', f);
}

static void log_state(FILE *f, char what, const entry_t *e)
{
    fputc(what, f);
    fputc(' ', f);
    put_field(f, e->id, e->id_len);
    fputc('\n', f);
}

static void log_pos(FILE *f, const ks_evalstore_t *s, size_t part)
{
    fputs("O ", f);
    put_field(f, s->pos_topic, strlen(s->pos_topic));
    fprintf(f, " %zu %lld\n", part, (long long)s->pos[part]);
}

/* One record to the log and, while compacting, to the next log: entry e's
 * ('P', 'J' or 'X'), or partition part's position ('O', e NULL). Under the
 * lock. */
static void append(ks_evalstore_t *s, char what, const entry_t *e, size_t part)
{
    FILE *f[2] = {s->log, s->next};
    for (int k = 0; k < 2; k++) {
        if (!f[k])
            continue;
        if (what == 'P')
            log_pred(f[k], e);
        else if (what == 'O')
            log_pos(f[k], s, part);
        else
            log_state(f[k], what, e);
    }
    s->st.log_lines += s->log != NULL;
    s->next_lines += s->next != NULL;
}

/* Entry e's whole state: its prediction, and its fate once settled. */
static size_t write_entry(FILE *f, const entry_t *e)
{
    log_pred(f, e);
    if (e->state == ST_WAITING)
        return 1;
    log_state(f, e->state == ST_JOINED ? 'J' : 'X', e);
    return 2;
}

/* Makes `topic` the positions' topic (forgetting another topic's) with a
 * slot for partition. Under the lock (or before start). */
static void pos_slot(ks_evalstore_t *s, const char *topic, size_t part)
{
    if (!s->pos_topic || strcmp(s->pos_topic, topic)) {
        free(s->pos_topic);
        s->pos_topic = ks_xstrdup(topic);
        for (size_t i = 0; i < s->n_pos; i++)
            s->pos[i] = s->pos_logged[i] = -1;
        s->n_pos_set = 0;
    }
    if (part < s->n_pos)
        return;
    size_t n = s->n_pos ? s->n_pos : 8;
    while (n <= part)
        n *= 2;
    s->pos = ks_xrealloc(s->pos, n * sizeof(int64_t));
    s->pos_logged = ks_xrealloc(s->pos_logged, n * sizeof(int64_t));
    for (size_t i = s->n_pos; i < n; i++)
        s->pos[i] = s->pos_logged[i] = -1;
    s->n_pos = n;
}

static void set_pos(ks_evalstore_t *s, const char *topic, size_t part, int64_t offset)
{
    pos_slot(s, topic, part);
    s->n_pos_set += s->pos[part] < 0;
    s->pos[part] = offset;
}

/* A decimal in [0, max], else -1. */
static long long parse_count(const char *t, long long max)
{
    char *end;
    errno = 0;
    long long v = strtoll(t, &end, 10);
    return *t >= '0' && *t <= '9' && !*end && !errno && v <= max ? v : -1;
}

/* Replays the log into the table (last record of an id wins). */
static void replay(ks_evalstore_t *s, FILE *f)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, f)) > 0) {
        if (line[got - 1] != '\n')
            break; /* a torn last line: a crash mid-write */
        line[got - 1] = 0;
        char *tok[6];
        size_t n = 0;
        for (char *save, *t = strtok_r(line, " ", &save); t && n < 6;
             t = strtok_r(NULL, " ", &save))
            tok[n++] = t;
        if (n == 6 && !strcmp(tok[0], "P")) {
            size_t len = get_field(tok[5]);
            uint32_t h = hash_id(tok[5], len), i = find(s, tok[5], len, h);
            if (i == NIL) {
                if (s->st.waiting + s->st.remembered >= s->max)
                    continue;
                i = insert(s, tok[5], len, h);
            } else if (s->e[i].state != ST_WAITING) {
                s->st.remembered--;
            } else {
                s->st.waiting--;
            }
            entry_t *e = &s->e[i];
            e->state = ST_WAITING;
            s->st.waiting++;
            e->p.time_ms = strtoll(tok[1], NULL, 10);
            e->p.score = strtod(tok[2], NULL);
            get_field(tok[3]);
            get_field(tok[4]);
            snprintf(e->p.version, sizeof(e->p.version), "%s", tok[3]);
            snprintf(e->p.variant, sizeof(e->p.variant), "%s", tok[4]);
        } else if (n == 2 && (!strcmp(tok[0], "J") || !strcmp(tok[0], "X"))) {
            size_t len = get_field(tok[1]);
            uint32_t i = find(s, tok[1], len, hash_id(tok[1], len));
            if (i != NIL && s->e[i].state == ST_WAITING) {
                s->e[i].state = tok[0][0] == 'J' ? ST_JOINED : ST_EXPIRED;
                s->st.waiting--;
                s->st.remembered++;
            }
        } else if (n == 4 && !strcmp(tok[0], "O")) {
            long long part = parse_count(tok[2], KS_EVALSTORE_MAX_PARTITIONS - 1);
            long long off = parse_count(tok[3], INT64_MAX);
            get_field(tok[1]);
            if (part >= 0 && off >= 0)
                set_pos(s, tok[1], (size_t)part, off);
        } /* anything else: a torn last line after a crash; skipped */
    }
    free(line);
}

/* fsyncs the directory holding path, so that a rename in it is durable. */
static int sync_dir(const char *path)
{
    char *copy = ks_xstrdup(path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY), rc = -1;
    if (fd >= 0) {
        rc = fsync(fd);
        close(fd);
    }
    free(copy);
    return rc;
}

/* Writes the live entries to PATH.tmp, fsyncs it and renames it over PATH,
 * which it then appends to. At start (running = 0) in one go; while running
 * in chunks, the lock released between them (evalstore.h, "Size"). */
static int compact(ks_evalstore_t *s, int running, char *errbuf, size_t errsize)
{
    char tmp[4096];
    int rc = KS_OK, bad;
    snprintf(tmp, sizeof(tmp), "%s.tmp", s->path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return ks_err(errbuf, errsize, KS_EIO, "cannot write %s: %s", tmp, strerror(errno));
    pthread_mutex_lock(&s->lock);
    s->next = f;
    s->next_lines = 0;
    for (size_t i = 0; i < s->n_alloc; i++) {
        if (running && i % CHUNK == 0 && i) {
            pthread_mutex_unlock(&s->lock); /* puts go on meanwhile, into both files */
            pthread_mutex_lock(&s->lock);
        }
        if (s->e[i].state != ST_FREE)
            s->next_lines += write_entry(f, &s->e[i]);
    }
    /* the positions last: every join before them is in the table, so in
     * this file, and the fsync below covers both */
    for (size_t p = 0; p < s->n_pos; p++)
        if (s->pos[p] >= 0) {
            log_pos(f, s, p);
            s->pos_logged[p] = s->pos[p];
            s->next_lines++;
        }
    bad = fflush(f) != 0;
    pthread_mutex_unlock(&s->lock);
    bad = bad || fsync(fileno(f)) != 0;
    pthread_mutex_lock(&s->lock);
    bad = bad || fflush(f) != 0 || ferror(f) || rename(tmp, s->path) != 0;
    if (bad) {
        rc = ks_err(errbuf, errsize, KS_EIO, "cannot write %s: %s", tmp, strerror(errno));
        fclose(f);
        unlink(tmp);
        for (size_t p = 0; p < s->n_pos; p++)
            s->pos_logged[p] = -1; /* the old log's may be older: the next sync rewrites */
    } else {
        if (s->log)
            fclose(s->log);
        s->log = f;
        s->st.log_lines = s->next_lines;
    }
    s->next = NULL;
    pthread_mutex_unlock(&s->lock);
    if (!rc && sync_dir(s->path))
        rc = ks_err(errbuf, errsize, KS_EIO, "cannot sync the directory of %s: %s", s->path,
                    strerror(errno));
    return rc;
}

/* Takes PATH.lock (flock, exclusive, not waiting) and writes our pid in it. */
static int take_lock(ks_evalstore_t *s, char *errbuf, size_t errsize)
{
    char lock[4096], pid[32] = "";
    snprintf(lock, sizeof(lock), "%s.lock", s->path);
    s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lock_fd < 0)
        return ks_err(errbuf, errsize, KS_EIO, "evaluation.store: cannot open %s: %s", lock,
                      strerror(errno));
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        ssize_t n = pread(s->lock_fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        close(s->lock_fd);
        s->lock_fd = -1;
        if (err != EWOULDBLOCK)
            return ks_err(errbuf, errsize, KS_EIO, "evaluation.store: cannot lock %s: %s", lock,
                          strerror(err));
        return ks_err(errbuf, errsize, KS_EINVAL,
                      "evaluation.store %s is in use by another process (%s%s holds %s): "
                      "each running instance needs a store of its own", s->path,
                      pid[0] ? "pid " : "an unknown pid", pid, lock);
    }
    int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(s->lock_fd, 0) != 0 || pwrite(s->lock_fd, pid, (size_t)n, 0) != n)
        ks_warn("evaluation.store: cannot write the pid into %s: %s", lock, strerror(errno));
    return KS_OK;
}

ks_evalstore_t *ks_evalstore_new(const char *path, size_t max_entries, int64_t max_wait_ms)
{
    ks_evalstore_t *s = ks_xcalloc(1, sizeof(*s));
    size_t nb = 16;
    while (nb < max_entries)
        nb <<= 1;
    pthread_mutex_init(&s->lock, NULL);
    s->path = ks_xstrdup(path);
    s->lock_fd = -1;
    s->max = max_entries;
    s->max_wait_ms = max_wait_ms;
    s->e = ks_xcalloc(max_entries + 1, sizeof(entry_t));
    s->bucket = ks_xmalloc(nb * sizeof(uint32_t));
    memset(s->bucket, 0xff, nb * sizeof(uint32_t));
    s->mask = nb - 1;
    s->free_head = NIL;
    return s;
}

int ks_evalstore_start(ks_evalstore_t *s, int64_t now_ms, char *errbuf, size_t errsize)
{
    int rc;
    if (s->log || s->lock_fd >= 0)
        return ks_err(errbuf, errsize, KS_ESTATE, "evaluation.store %s: started twice", s->path);
    if ((rc = take_lock(s, errbuf, errsize)))
        return rc;
    FILE *f = fopen(s->path, "r");
    if (f) {
        replay(s, f);
        fclose(f);
    } else if (errno != ENOENT) {
        return ks_err(errbuf, errsize, KS_EIO, "cannot read %s: %s", s->path, strerror(errno));
    }
    ks_evalstore_expire(s, now_ms, NULL, NULL);
    s->st.expired = 0; /* expiries while down are not this run's */
    return compact(s, 0, errbuf, errsize);
}

int ks_evalstore_open(const char *path, size_t max_entries, int64_t max_wait_ms, int64_t now_ms,
                      ks_evalstore_t **out, char *errbuf, size_t errsize)
{
    ks_evalstore_t *s = ks_evalstore_new(path, max_entries, max_wait_ms);
    int rc = ks_evalstore_start(s, now_ms, errbuf, errsize);
    if (rc) {
        ks_evalstore_close(s);
        s = NULL;
    }
    *out = s;
    return rc;
}

int ks_evalstore_check(const char *path, char *errbuf, size_t errsize)
{
    struct stat sb;
    if (stat(path, &sb) == 0) {
        if (!S_ISREG(sb.st_mode))
            return ks_err(errbuf, errsize, KS_EINVAL, "evaluation.store %s is not a regular file",
                          path);
        if (access(path, R_OK | W_OK) != 0)
            return ks_err(errbuf, errsize, KS_EINVAL, "evaluation.store %s: %s", path,
                          strerror(errno));
        return KS_OK;
    }
    if (errno != ENOENT)
        return ks_err(errbuf, errsize, KS_EINVAL, "evaluation.store %s: %s", path,
                      strerror(errno));
    char *copy = ks_xstrdup(path);
    const char *dir = dirname(copy);
    int rc = access(dir, W_OK | X_OK) == 0
                 ? KS_OK
                 : ks_err(errbuf, errsize, KS_EINVAL,
                          "evaluation.store %s cannot be created in %s: %s", path, dir,
                          strerror(errno));
    free(copy);
    return rc;
}

void ks_evalstore_close(ks_evalstore_t *s)
{
    if (!s)
        return;
    if (s->log) {
        if (ks_evalstore_sync(s) == KS_OK && fdatasync(fileno(s->log)) != 0)
            ks_warn("evaluation.store: cannot sync %s: %s", s->path, strerror(errno));
        fclose(s->log);
    }
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the flock; the file stays (no unlink race) */
    for (size_t i = 0; i < s->n_alloc; i++)
        free(s->e[i].id);
    free(s->e);
    free(s->bucket);
    free(s->pos_topic);
    free(s->pos);
    free(s->pos_logged);
    free(s->path);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

int ks_evalstore_put(ks_evalstore_t *s, const char *id, size_t id_len, const ks_eval_pred_t *p)
{
    int rc = KS_OK;
    uint32_t h = hash_id(id, id_len);
    pthread_mutex_lock(&s->lock);
    if (!s->log) {
        rc = KS_ESTATE;
        goto out;
    }
    uint32_t i = find(s, id, id_len, h);
    if (i != NIL && s->e[i].state != ST_WAITING) {
        unlink_entry(s, i); /* a new prediction for a settled id starts over */
        i = NIL;
    }
    if (i == NIL) {
        if (s->st.waiting + s->st.remembered >= s->max) {
            s->st.full++;
            rc = KS_ESTATE;
            goto out;
        }
        i = insert(s, id, id_len, h);
        s->e[i].state = ST_WAITING;
        s->st.waiting++;
    }
    s->e[i].p = *p;
    append(s, 'P', &s->e[i], 0);
    if (ferror(s->log))
        rc = KS_EIO;
out:
    pthread_mutex_unlock(&s->lock);
    return rc;
}

ks_eval_outcome_t ks_evalstore_label(ks_evalstore_t *s, const char *id, size_t id_len,
                                     int64_t now_ms, ks_eval_pred_t *pred)
{
    ks_eval_outcome_t o = KS_EVAL_UNKNOWN;
    pthread_mutex_lock(&s->lock);
    uint32_t i = find(s, id, id_len, hash_id(id, id_len));
    if (i != NIL) {
        entry_t *e = &s->e[i];
        if (e->state == ST_WAITING) {
            int late = now_ms - e->p.time_ms > s->max_wait_ms;
            *pred = e->p;
            e->state = late ? ST_EXPIRED : ST_JOINED;
            s->st.waiting--;
            s->st.remembered++;
            s->st.expired += late;
            append(s, late ? 'X' : 'J', e, 0);
            o = late ? KS_EVAL_LATE : KS_EVAL_JOINED;
        } else {
            o = e->state == ST_JOINED ? KS_EVAL_DUPLICATE : KS_EVAL_LATE;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return o;
}

size_t ks_evalstore_expire(ks_evalstore_t *s, int64_t now_ms,
                           void (*on_expire)(void *ctx, const ks_eval_pred_t *p), void *ctx)
{
    size_t n = 0;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n_alloc; i++) {
        entry_t *e = &s->e[i];
        if (e->state == ST_FREE)
            continue;
        int64_t age = now_ms - e->p.time_ms;
        if (e->state == ST_WAITING && age > s->max_wait_ms) {
            e->state = ST_EXPIRED;
            s->st.waiting--;
            s->st.remembered++;
            s->st.expired++;
            append(s, 'X', e, 0);
            if (on_expire)
                on_expire(ctx, &e->p);
            n++;
        } else if (e->state != ST_WAITING && age > 2 * s->max_wait_ms) {
            unlink_entry(s, (uint32_t)i);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return n;
}

int ks_evalstore_sync(ks_evalstore_t *s)
{
    char err[512];
    pthread_mutex_lock(&s->lock);
    uint64_t live = s->st.waiting + 2 * s->st.remembered + s->n_pos_set;
    uint64_t lines = s->st.log_lines;
    int compact_now = s->log && !s->compacting && lines >= KS_EVALSTORE_COMPACT_MIN &&
                      lines > 2 * live && lines >= s->retry_at;
    s->compacting |= compact_now;
    pthread_mutex_unlock(&s->lock);
    if (compact_now) {
        int rc = compact(s, 1, err, sizeof(err));
        pthread_mutex_lock(&s->lock);
        s->compacting = 0;
        if (rc)
            s->retry_at = lines + lines / 2;
        else
            s->st.compactions++;
        pthread_mutex_unlock(&s->lock);
        if (rc)
            ks_warn("evaluation.store: compaction failed, the log keeps growing: %s", err);
    }
    pthread_mutex_lock(&s->lock);
    int rc = !s->log ? KS_OK : fflush(s->log) || fdatasync(fileno(s->log)) ? KS_EIO : KS_OK;
    if (s->log && rc == KS_OK) {
        /* the joins are on disk: now the positions they stand for */
        for (size_t p = 0; p < s->n_pos; p++)
            if (s->pos[p] >= 0 && s->pos[p] != s->pos_logged[p]) {
                append(s, 'O', NULL, p);
                s->pos_logged[p] = s->pos[p];
            }
        rc = fflush(s->log) ? KS_EIO : KS_OK;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int64_t ks_evalstore_position(ks_evalstore_t *s, const char *topic, int32_t partition)
{
    pthread_mutex_lock(&s->lock);
    int64_t off = s->pos_topic && !strcmp(s->pos_topic, topic) && partition >= 0 &&
                          (size_t)partition < s->n_pos
                      ? s->pos[partition]
                      : -1;
    pthread_mutex_unlock(&s->lock);
    return off;
}

void ks_evalstore_set_position(ks_evalstore_t *s, const char *topic, int32_t partition,
                               int64_t offset)
{
    if (partition < 0 || partition >= KS_EVALSTORE_MAX_PARTITIONS || offset < 0)
        return;
    pthread_mutex_lock(&s->lock);
    set_pos(s, topic, (size_t)partition, offset);
    pthread_mutex_unlock(&s->lock);
}

void ks_evalstore_stats(ks_evalstore_t *s, ks_evalstore_stats_t *st)
{
    if (!s) {
        memset(st, 0, sizeof(*st));
        return;
    }
    pthread_mutex_lock(&s->lock);
    *st = s->st;
    pthread_mutex_unlock(&s->lock);
}
