/*
 * redis.h - one connection to one Redis server, used a batch at a time:
 * append the batch's commands, then one exchange writes them all (a
 * pipeline) and reads every reply, the whole of it - connect included -
 * within a hard deadline.
 *
 * hiredis (Debian's libhiredis) does the protocol: commands are formatted
 * into its output buffer and replies parsed by its reader. The socket work is
 * ours: a non-blocking connect and poll() against the deadline, so a Redis
 * that is down, slow or paused costs the batch at most its timeout. After
 * any failure (refused, timed out, protocol error) the connection is closed:
 * replies still in flight must never be matched to the next batch's keys.
 * The next exchange connects again.
 *
 * URLs: redis://[[user]:password@]host[:port][/db]. A password sends AUTH and
 * a db other than 0 sends SELECT, once per connection, inside the first
 * exchange's pipeline. The host is resolved by hiredis (getaddrinfo, which
 * blocks): use an address or a name the resolver answers at once.
 *
 * Threads: a connection belongs to one thread.
 */
#ifndef KS_REDIS_H
#define KS_REDIS_H

#include <stddef.h>
#include <stdint.h>

struct redisReply;

typedef struct ks_redis_addr {
    char host[256];
    int port;
    int db;
    char password[256];    /* "" = no AUTH */
} ks_redis_addr_t;

/* Parses a redis:// URL; KS_EINVAL with a sentence otherwise. */
int ks_redis_url_parse(const char *url, ks_redis_addr_t *out, char *errbuf, size_t errsize);
/* "host:port/db", for messages and labels. */
void ks_redis_addr_str(const ks_redis_addr_t *a, char *buf, size_t size);

typedef struct ks_redis ks_redis_t;

/* Creates an unconnected connection object (connects on first exchange). */
ks_redis_t *ks_redis_new(const ks_redis_addr_t *addr);
void ks_redis_free(ks_redis_t *r);

/* Queues one command for the next exchange (argv strings need not be
 * NUL-terminated). Returns 0, or KS_EIO if no connection could be started
 * (the exchange then fails at once with the reason). */
int ks_redis_append(ks_redis_t *r, int argc, const char **argv, const size_t *argvlen);
/* Sends every queued command and reads as many replies into replies[0..n)
 * (the caller frees each with ks_redis_reply_free), by deadline_ns
 * (monotonic, ks_now_mono_ns). On failure returns KS_EIO with a sentence
 * ("timed out after 20 ms", "connection refused"), frees whatever it read,
 * and closes the connection; replies[] are then all NULL. */
int ks_redis_exchange(ks_redis_t *r, struct redisReply **replies, size_t n, int64_t deadline_ns,
                      char *errbuf, size_t errsize);
/* Number of commands queued since the last exchange. */
size_t ks_redis_queued(const ks_redis_t *r);
void ks_redis_reply_free(struct redisReply *reply);

#endif
