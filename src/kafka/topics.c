/*
 * topics.c - start-up check that topics exist, and the size limits of the
 * topics kscore writes (see topics.h).
 */
#include "kafka/topics.h"
#include "base/common.h"
#include "base/log.h"

#include <stdlib.h>
#include <string.h>

#define MISSING_FOR_MS 3000
#define DESCRIBE_MS    5000
#define NOT_CAPPED                                                                            \
    "producer batches are not capped to it (a batch the broker refuses as too large has "     \
    "its records written again, and dead-lettered if they are refused twice)"

static int unknown(const struct rd_kafka_metadata *md)
{
    return md->topic_cnt < 1 || md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
           (md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topics[0].partition_cnt == 0);
}

/* The check's own client: its connection errors surface as the metadata
 * call's result, not as log lines. */
static void quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
}

/* The limit of `topic` in a DescribeConfigs result, 0 when absent. */
static int64_t max_bytes_of(const rd_kafka_ConfigResource_t **res, size_t n, const char *topic)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rd_kafka_ConfigResource_name(res[i]), topic) != 0 ||
            rd_kafka_ConfigResource_error(res[i]))
            continue;
        size_t n_cfg;
        const rd_kafka_ConfigEntry_t **cfg = rd_kafka_ConfigResource_configs(res[i], &n_cfg);
        for (size_t k = 0; k < n_cfg; k++) {
            const char *v = rd_kafka_ConfigEntry_value(cfg[k]);
            if (v && strcmp(rd_kafka_ConfigEntry_name(cfg[k]), "max.message.bytes") == 0)
                return strtoll(v, NULL, 10) > 0 ? strtoll(v, NULL, 10) : 0;
        }
    }
    return 0;
}

/* Reads max.message.bytes of the written topics into uses[].max_bytes, by
 * deadline (monotonic ns). Failing leaves them 0 and says why. */
static void read_limits(rd_kafka_t *rk, ks_topic_use_t *uses, size_t n, int64_t deadline)
{
    rd_kafka_ConfigResource_t *res[64];
    size_t n_res = 0;
    char kerr[256] = "";
    for (size_t i = 0; i < n && n_res < KS_ARRAY_LEN(res); i++)
        if (uses[i].written)
            res[n_res++] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, uses[i].topic);
    if (!n_res)
        return;
    /* at most DESCRIBE_MS: a cluster that answers metadata answers this at
     * once, unless it cannot (librdkafka's mock cluster waits for a
     * controller that never comes) */
    int left = (int)((deadline - ks_now_mono_ns()) / 1000000);
    left = left > DESCRIBE_MS ? DESCRIBE_MS : left > 1000 ? left : 1000;
    if (rd_kafka_controllerid(rk, 1000) < 0) {
        ks_warn("cannot read max.message.bytes of the topics kscore writes (the cluster names "
                "no controller): %s", NOT_CAPPED);
        rd_kafka_ConfigResource_destroy_array(res, n_res);
        return;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opt = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
    rd_kafka_AdminOptions_set_request_timeout(opt, left, kerr, sizeof(kerr));
    rd_kafka_DescribeConfigs(rk, res, n_res, opt, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, left + 1000);
    const rd_kafka_DescribeConfigs_result_t *result =
        ev ? rd_kafka_event_DescribeConfigs_result(ev) : NULL;
    if (!result || rd_kafka_event_error(ev)) {
        ks_warn("cannot read max.message.bytes of the topics kscore writes (%s): %s",
                ev ? rd_kafka_event_error_string(ev) : "no answer in time", NOT_CAPPED);
    } else {
        size_t n_got;
        const rd_kafka_ConfigResource_t **got =
            rd_kafka_DescribeConfigs_result_resources(result, &n_got);
        for (size_t i = 0; i < n; i++)
            if (uses[i].written)
                uses[i].max_bytes = max_bytes_of(got, n_got, uses[i].topic);
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_queue_destroy(q);
    rd_kafka_ConfigResource_destroy_array(res, n_res);
}

int ks_kafka_check_topics(rd_kafka_conf_t *conf, ks_topic_use_t *uses, size_t n, int timeout_ms,
                          char *errbuf, size_t errsize)
{
    char kerr[256];
    int rc = KS_OK;
    /* metadata requests for named topics must not create them */
    rd_kafka_conf_set(conf, "allow.auto.create.topics", "false", kerr, sizeof(kerr));
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, kerr, sizeof(kerr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return ks_err(errbuf, errsize, KS_EKAFKA, "cannot create a Kafka client: %s", kerr);
    }
    int64_t deadline = ks_now_mono_ns() + (int64_t)timeout_ms * 1000000;
    for (size_t i = 0; i < n && rc == KS_OK; i++) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, uses[i].topic, NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err;
        /* a topic created a moment ago may not have reached every broker's
         * metadata yet: "unknown" must last MISSING_FOR_MS to count */
        int64_t missing_since = 0;
        for (;;) {
            int left = (int)((deadline - ks_now_mono_ns()) / 1000000);
            err = rd_kafka_metadata(rk, 0, rkt, &md, left > 100 ? left : 100);
            if (err || !unknown(md))
                break;
            int64_t now = ks_now_mono_ns();
            if (!missing_since)
                missing_since = now;
            if (now - missing_since >= (int64_t)MISSING_FOR_MS * 1000000 || now >= deadline)
                break;
            rd_kafka_metadata_destroy(md);
            md = NULL;
            rd_kafka_poll(rk, 250);
        }
        if (err) {
            rc = ks_err(errbuf, errsize, KS_EKAFKA,
                        "cannot check that topic %s (%s) exists: %s", uses[i].topic,
                        uses[i].role, rd_kafka_err2str(err));
        } else if (unknown(md)) {
            rc = ks_err(errbuf, errsize, KS_EINVAL,
                        "topic %s (%s) does not exist; create it first, e.g. "
                        "kafka-topics.sh --bootstrap-server <brokers> --create --topic %s "
                        "--partitions <n> (kscore never creates topics)",
                        uses[i].topic, uses[i].role, uses[i].topic);
        } else if (md->topics[0].err) {
            rc = ks_err(errbuf, errsize, md->topics[0].err ==
                                             RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED
                                         ? KS_EINVAL
                                         : KS_EKAFKA,
                        "topic %s (%s): %s", uses[i].topic, uses[i].role,
                        rd_kafka_err2str(md->topics[0].err));
        }
        if (md)
            rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
    }
    for (size_t i = 0; i < n; i++)
        uses[i].max_bytes = 0;
    if (rc == KS_OK)
        read_limits(rk, uses, n, deadline);
    rd_kafka_destroy(rk);
    return rc;
}
