/*
 * produce.c - records, dead letters and their truncation (see produce.h).
 */
#include "kafka/produce.h"
#include "base/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ks_kafka_err_is_record_level(rd_kafka_resp_err_t err)
{
    /* INVALID_MSG is CORRUPT_MESSAGE: what brokers before 2.4 answer for a
     * keyless record on a compacted topic */
    return err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
           err == RD_KAFKA_RESP_ERR_INVALID_RECORD ||
           err == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE ||
           err == RD_KAFKA_RESP_ERR_INVALID_MSG;
}

int ks_kafka_err_is_topic_level(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
           err == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED ||
           err == RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED ||
           err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
           err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC || err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
           err == RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION;
}

int ks_kafka_dead_letter_is_truncated(const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t vl;
    return rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR && h &&
           rd_kafka_header_get_last(h, KS_DEAD_LETTER_HDR "truncated", &v, &vl) ==
               RD_KAFKA_RESP_ERR_NO_ERROR;
}

static rd_kafka_resp_err_t produce(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int msgflags,
                                   int32_t partition, const void *key, size_t key_len,
                                   const void *val, size_t val_len, rd_kafka_headers_t *hdrs,
                                   uint64_t token)
{
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_MSGFLAGS(msgflags), RD_KAFKA_V_KEY(key, key_len),
        RD_KAFKA_V_VALUE((void *)val, val_len), RD_KAFKA_V_HEADERS(hdrs),
        RD_KAFKA_V_OPAQUE((void *)(uintptr_t)token), RD_KAFKA_V_END);
    if (err && hdrs)
        rd_kafka_headers_destroy(hdrs); /* not taken over on failure */
    return err;
}

rd_kafka_resp_err_t ks_kafka_produce(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int32_t partition,
                                     const void *key, size_t key_len, const void *val,
                                     size_t val_len, rd_kafka_headers_t *hdrs, uint64_t token)
{
    return produce(rk, rkt, RD_KAFKA_MSG_F_COPY, partition, key, key_len, val, val_len, hdrs,
                   token);
}

rd_kafka_resp_err_t ks_kafka_produce_held(rd_kafka_t *rk, rd_kafka_topic_t *rkt,
                                          int32_t partition, const void *key, size_t key_len,
                                          const void *val, size_t val_len,
                                          rd_kafka_headers_t *hdrs, uint64_t token)
{
    return produce(rk, rkt, 0, partition, key, key_len, val, val_len, hdrs, token);
}

rd_kafka_headers_t *ks_kafka_headers_copy(const rd_kafka_message_t *m, size_t extra)
{
    rd_kafka_headers_t *in = NULL;
    if (m && rd_kafka_message_headers(m, &in) == RD_KAFKA_RESP_ERR_NO_ERROR && in)
        return rd_kafka_headers_copy(in);
    return extra ? rd_kafka_headers_new(extra) : NULL;
}

static void add_header(rd_kafka_headers_t *h, const char *name, const char *value)
{
    rd_kafka_header_add(h, name, -1, value, -1);
}

/* Marks `h` truncated (once) with the original size. */
static void mark_truncated(rd_kafka_headers_t *h, size_t original)
{
    const void *v;
    size_t vl;
    char num[32];
    if (rd_kafka_header_get_last(h, KS_DEAD_LETTER_HDR "truncated", &v, &vl) ==
        RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    add_header(h, KS_DEAD_LETTER_HDR "truncated", "true");
    snprintf(num, sizeof(num), "%zu", original);
    add_header(h, KS_DEAD_LETTER_HDR "original_size", num);
}

rd_kafka_resp_err_t ks_kafka_produce_dead_letter(rd_kafka_t *rk, rd_kafka_topic_t *dlq,
                                                 const void *key, size_t key_len,
                                                 const void *val, size_t val_len,
                                                 const rd_kafka_headers_t *orig,
                                                 const ks_dead_letter_t *why, uint64_t token)
{
    char num[32];
    rd_kafka_headers_t *h = orig ? rd_kafka_headers_copy(orig) : rd_kafka_headers_new(10);
    add_header(h, KS_DEAD_LETTER_HDR "class", why->cls);
    add_header(h, KS_DEAD_LETTER_HDR "message", why->message);
    add_header(h, KS_DEAD_LETTER_HDR "stage", why->stage);
    add_header(h, KS_DEAD_LETTER_HDR "topic", why->topic ? why->topic : "");
    snprintf(num, sizeof(num), "%d", (int)why->partition);
    add_header(h, KS_DEAD_LETTER_HDR "partition", num);
    snprintf(num, sizeof(num), "%lld", (long long)why->offset);
    add_header(h, KS_DEAD_LETTER_HDR "offset", num);
    rd_kafka_headers_t *spare = rd_kafka_headers_copy(h); /* for a truncated retry */
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE;
    if (why->truncate)
        rd_kafka_headers_destroy(h);
    else
        err = ks_kafka_produce(rk, dlq, RD_KAFKA_PARTITION_UA, key, key_len, val, val_len, h,
                               token);
    /* too large for the producer (message.max.bytes): keep what fits */
    for (size_t cut = why->truncate >= 2 ? 0 : KS_DEAD_LETTER_TRUNCATED;
         err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE; cut = 0) {
        h = rd_kafka_headers_copy(spare);
        mark_truncated(h, val_len);
        err = ks_kafka_produce(rk, dlq, RD_KAFKA_PARTITION_UA, key, key_len, val,
                               val_len < cut ? val_len : cut, h, token);
        if (cut == 0)
            break;
    }
    rd_kafka_headers_destroy(spare);
    return err;
}

rd_kafka_resp_err_t ks_kafka_dead_letter_truncate(rd_kafka_t *rk, rd_kafka_topic_t *dlq,
                                                  const void *key, size_t key_len,
                                                  const void *val, size_t val_len,
                                                  rd_kafka_headers_t *h, uint64_t token)
{
    const void *v;
    size_t vl, original = val_len;
    if (val_len == 0) {
        rd_kafka_headers_destroy(h);
        return RD_KAFKA_RESP_ERR__FAIL;
    }
    /* the size before the first cut, when this is a second one */
    if (rd_kafka_header_get_last(h, KS_DEAD_LETTER_HDR "original_size", &v, &vl) ==
        RD_KAFKA_RESP_ERR_NO_ERROR) {
        char num[32];
        snprintf(num, sizeof(num), "%.*s", (int)vl, (const char *)v);
        original = (size_t)strtoull(num, NULL, 10);
    }
    mark_truncated(h, original);
    size_t keep = val_len > KS_DEAD_LETTER_TRUNCATED ? KS_DEAD_LETTER_TRUNCATED : 0;
    return ks_kafka_produce(rk, dlq, RD_KAFKA_PARTITION_UA, key, key_len, val, keep, h, token);
}
