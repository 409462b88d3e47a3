/*
 * redis.c - a pipelined Redis exchange with a hard deadline (see redis.h).
 */
#include "lookup/redis.h"
#include "base/common.h"

#include <hiredis/hiredis.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct ks_redis {
    ks_redis_addr_t addr;
    redisContext *c;
    int connected;       /* the TCP connect has completed */
    size_t n_hidden;     /* AUTH/SELECT replies to skip at the start of the exchange */
    size_t n_queued;     /* the caller's commands queued */
    char conn_err[256];  /* why the connection could not even be started */
};

int ks_redis_url_parse(const char *url, ks_redis_addr_t *out, char *errbuf, size_t errsize)
{
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    const char *p = url;
    if (strncmp(p, "redis://", 8) != 0)
        return ks_err(errbuf, errsize, KS_EINVAL,
                      "'%s' is not a Redis URL (expected redis://host:port/db)", url);
    p += 8;
    const char *at = strchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        if ((size_t)(at - pw) >= sizeof(out->password))
            return ks_err(errbuf, errsize, KS_EINVAL, "'%s': password too long", url);
        memcpy(out->password, pw, (size_t)(at - pw));
        p = at + 1;
    }
    size_t hl = strcspn(p, ":/");
    if (hl == 0 || hl >= sizeof(out->host))
        return ks_err(errbuf, errsize, KS_EINVAL, "'%s': missing or too long host", url);
    memcpy(out->host, p, hl);
    p += hl;
    char *end;
    if (*p == ':') {
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port < 1 || port > 65535 || (*end && *end != '/'))
            return ks_err(errbuf, errsize, KS_EINVAL, "'%s': bad port", url);
        out->port = (int)port;
        p = end;
    }
    if (*p == '/' && p[1]) {
        long db = strtol(p + 1, &end, 10);
        if (end == p + 1 || *end || db < 0 || db > 65535)
            return ks_err(errbuf, errsize, KS_EINVAL, "'%s': bad database number", url);
        out->db = (int)db;
    } else if (*p && strcmp(p, "/") != 0) {
        return ks_err(errbuf, errsize, KS_EINVAL, "'%s': unexpected '%s'", url, p);
    }
    return KS_OK;
}

void ks_redis_addr_str(const ks_redis_addr_t *a, char *buf, size_t size)
{
    snprintf(buf, size, "%s:%d/%d", a->host, a->port, a->db);
}

ks_redis_t *ks_redis_new(const ks_redis_addr_t *addr)
{
    ks_redis_t *r = ks_xcalloc(1, sizeof(*r));
    r->addr = *addr;
    return r;
}

static void disconnect(ks_redis_t *r)
{
    if (r->c)
        redisFree(r->c);
    r->c = NULL;
    r->connected = 0;
    r->n_hidden = 0;
}

void ks_redis_free(ks_redis_t *r)
{
    if (!r)
        return;
    disconnect(r);
    free(r);
}

void ks_redis_reply_free(struct redisReply *reply)
{
    if (reply)
        freeReplyObject(reply);
}

size_t ks_redis_queued(const ks_redis_t *r) { return r->n_queued; }

/* Starts a non-blocking connect and queues AUTH / SELECT. */
static int start_connect(ks_redis_t *r)
{
    r->c = redisConnectNonBlock(r->addr.host, r->addr.port);
    if (!r->c || r->c->err) {
        snprintf(r->conn_err, sizeof(r->conn_err), "cannot connect: %s",
                 r->c ? r->c->errstr : "out of memory");
        disconnect(r);
        return KS_EIO;
    }
    if (r->addr.password[0]) {
        const char *argv[] = {"AUTH", r->addr.password};
        size_t len[] = {4, strlen(r->addr.password)};
        redisAppendCommandArgv(r->c, 2, argv, len);
        r->n_hidden++;
    }
    if (r->addr.db) {
        char db[16];
        int n = snprintf(db, sizeof(db), "%d", r->addr.db);
        const char *argv[] = {"SELECT", db};
        size_t len[] = {6, (size_t)n};
        redisAppendCommandArgv(r->c, 2, argv, len);
        r->n_hidden++;
    }
    return KS_OK;
}

int ks_redis_append(ks_redis_t *r, int argc, const char **argv, const size_t *argvlen)
{
    if (!r->c && r->n_queued == 0) {
        r->conn_err[0] = 0;
        start_connect(r); /* on failure conn_err says why; the exchange reports it */
    }
    r->n_queued++;
    if (!r->c)
        return KS_EIO;
    if (redisAppendCommandArgv(r->c, argc, argv, argvlen) != REDIS_OK) {
        snprintf(r->conn_err, sizeof(r->conn_err), "cannot queue a command: %s", r->c->errstr);
        disconnect(r);
        return KS_EIO;
    }
    return KS_OK;
}

/* Waits for `events` on the socket until the deadline: 1 ready, 0 timed out,
 * -1 error. */
static int wait_fd(int fd, short events, int64_t deadline_ns)
{
    for (;;) {
        int64_t left_ns = deadline_ns - ks_now_mono_ns();
        if (left_ns <= 0)
            return 0;
        struct pollfd pfd = {.fd = fd, .events = events};
        int ms = (int)((left_ns + 999999) / 1000000);
        int rc = poll(&pfd, 1, ms);
        if (rc > 0)
            return (pfd.revents & (events | POLLHUP | POLLERR)) ? 1 : -1;
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

int ks_redis_exchange(ks_redis_t *r, struct redisReply **replies, size_t n, int64_t deadline_ns,
                      char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    int64_t start_ns = ks_now_mono_ns();
    size_t got = 0, total = 0;
    for (size_t i = 0; i < n; i++)
        replies[i] = NULL;
    if (r->n_queued != n) {
        rc = ks_err(errbuf, errsize, KS_ESTATE, "%zu commands queued, %zu replies asked for",
                    r->n_queued, n);
        goto fail;
    }
    if (!r->c) {
        rc = ks_err(errbuf, errsize, KS_EIO, "%s",
                    r->conn_err[0] ? r->conn_err : "not connected");
        goto fail;
    }
    total = r->n_hidden + n;
    if (!r->connected) {
        int w = wait_fd(r->c->fd, POLLOUT, deadline_ns);
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (w == 0) {
            rc = ks_err(errbuf, errsize, KS_EIO, "connect timed out after %.0f ms",
                        (double)(ks_now_mono_ns() - start_ns) / 1e6);
            goto fail;
        }
        if (w < 0 || getsockopt(r->c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr) {
            rc = ks_err(errbuf, errsize, KS_EIO, "cannot connect: %s",
                        strerror(soerr ? soerr : errno));
            goto fail;
        }
        r->connected = 1;
    }
    /* write the whole pipeline */
    for (int done = 0; !done;) {
        if (redisBufferWrite(r->c, &done) != REDIS_OK) {
            rc = ks_err(errbuf, errsize, KS_EIO, "write failed: %s", r->c->errstr);
            goto fail;
        }
        if (!done && wait_fd(r->c->fd, POLLOUT, deadline_ns) != 1) {
            rc = ks_err(errbuf, errsize, KS_EIO, "write timed out after %.0f ms",
                        (double)(ks_now_mono_ns() - start_ns) / 1e6);
            goto fail;
        }
    }
    /* read every reply */
    size_t seen = 0;
    while (seen < total) {
        void *reply = NULL;
        if (redisGetReplyFromReader(r->c, &reply) != REDIS_OK) {
            rc = ks_err(errbuf, errsize, KS_EIO, "protocol error: %s", r->c->errstr);
            goto fail;
        }
        if (reply) {
            redisReply *rep = reply;
            if (seen < r->n_hidden) {
                int bad = rep->type == REDIS_REPLY_ERROR;
                if (bad)
                    rc = ks_err(errbuf, errsize, KS_EIO, "%s refused: %.*s",
                                r->addr.password[0] && seen == 0 ? "AUTH" : "SELECT",
                                (int)rep->len, rep->str);
                freeReplyObject(rep);
                if (bad)
                    goto fail;
            } else {
                replies[got++] = rep;
            }
            seen++;
            continue;
        }
        int w = wait_fd(r->c->fd, POLLIN, deadline_ns);
        if (w != 1) {
            rc = ks_err(errbuf, errsize, KS_EIO, "%s after %.0f ms (%zu of %zu replies)",
                        w == 0 ? "timed out" : "connection failed",
                        (double)(ks_now_mono_ns() - start_ns) / 1e6, got, n);
            goto fail;
        }
        if (redisBufferRead(r->c) != REDIS_OK) {
            rc = ks_err(errbuf, errsize, KS_EIO, "read failed: %s",
                        r->c->errstr[0] ? r->c->errstr : "connection closed");
            goto fail;
        }
    }
    r->n_hidden = 0;
    r->n_queued = 0;
    return KS_OK;
fail:
    for (size_t i = 0; i < got; i++) {
        freeReplyObject(replies[i]);
        replies[i] = NULL;
    }
    disconnect(r);
    r->n_queued = 0;
    return rc;
}
