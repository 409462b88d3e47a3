/*
 * client.c - librdkafka clients with kscore's shared callbacks (client.h).
 */
#include "kafka/client.h"
#include "base/common.h"
#include "base/log.h"

#include <stdio.h>

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    ks_log(level <= 3 ? KS_LOG_ERROR : level <= 4 ? KS_LOG_WARN : level <= 6 ? KS_LOG_INFO
                                                                            : KS_LOG_DEBUG,
           "librdkafka %s: %s: %s", rk ? rd_kafka_name(rk) : "", fac, buf);
}

static ks_kclient_t kind(const ks_kafka_ctx_t *ctx, rd_kafka_t *rk)
{
    return rk == ctx->producer ? KS_KCLIENT_PRODUCER : KS_KCLIENT_CONSUMER;
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    ks_kafka_ctx_t *ctx = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char fatal[256], why[320];
        rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
        snprintf(why, sizeof(why), "fatal Kafka error: %s", fatal);
        ks_error("%s: %s", ctx->name, why);
        if (ctx->on_fatal)
            ctx->on_fatal(ctx->owner, why);
        return;
    }
    /* Transient (broker down, transport): librdkafka reconnects by itself. */
    if (ctx->errors)
        ks_counter_add(ctx->errors, 1);
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN && ctx->obs && ctx->obs->broker)
        ctx->obs->broker(ctx->obs->opaque, ctx->worker, kind(ctx, rk), 0);
    ks_warn("%s: %s: %s", ctx->name, rd_kafka_err2name(err), reason);
}

/* Statistics (every statistics.interval.ms, on the worker's thread): the
 * observer only queues a copy. */
static int on_stats(rd_kafka_t *rk, char *json, size_t json_len, void *opaque)
{
    ks_kafka_ctx_t *ctx = opaque;
    if (ctx->obs && ctx->obs->stats)
        ctx->obs->stats(ctx->obs->opaque, ctx->worker, kind(ctx, rk), json, json_len);
    return 0;
}

int ks_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *errbuf,
                      size_t errsize)
{
    char kerr[256];
    if (rd_kafka_conf_set(conf, key, value, kerr, sizeof(kerr)) != RD_KAFKA_CONF_OK)
        return ks_err(errbuf, errsize, KS_EINVAL, "kafka property %s=%s: %s", key, value, kerr);
    return KS_OK;
}

int ks_kafka_client_new(ks_kafka_ctx_t *ctx, rd_kafka_type_t type, rd_kafka_conf_t *conf,
                        rd_kafka_t **out, char *errbuf, size_t errsize)
{
    char kerr[512];
    if (ctx->obs && ctx->obs->stats && ctx->obs->stats_interval_ms > 0) {
        char ms[16];
        snprintf(ms, sizeof(ms), "%d", ctx->obs->stats_interval_ms);
        /* the user's kafka: section may have set its own interval: keep it */
        char cur[16];
        size_t len = sizeof(cur);
        if (rd_kafka_conf_get(conf, "statistics.interval.ms", cur, &len) == RD_KAFKA_CONF_OK &&
            cur[0] == '0' && cur[1] == '\0' &&
            ks_kafka_conf_set(conf, "statistics.interval.ms", ms, errbuf, errsize)) {
            rd_kafka_conf_destroy(conf);
            return KS_EINVAL;
        }
        rd_kafka_conf_set_stats_cb(conf, on_stats);
    }
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_opaque(conf, ctx);
    *out = rd_kafka_new(type, conf, kerr, sizeof(kerr));
    if (!*out) {
        rd_kafka_conf_destroy(conf);
        return ks_err(errbuf, errsize, KS_EKAFKA, "cannot create the Kafka %s: %s",
                      type == RD_KAFKA_CONSUMER ? "consumer" : "producer", kerr);
    }
    return KS_OK;
}
