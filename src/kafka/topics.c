/*
 * topics.c - start-up check that topics exist (see topics.h).
 */
#include "kafka/topics.h"
#include "base/common.h"

#include <string.h>

#define MISSING_FOR_MS 3000

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

int ks_kafka_check_topics(rd_kafka_conf_t *conf, const ks_topic_use_t *uses, size_t n,
                          int timeout_ms, char *errbuf, size_t errsize)
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
    rd_kafka_destroy(rk);
    return rc;
}
