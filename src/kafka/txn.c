/*
 * txn.c - transactions for exactly-once delivery (see txn.h).
 */
#include "kafka/txn.h"
#include "base/common.h"
#include "base/log.h"

static int left_ms(int64_t deadline_ns)
{
    int64_t ms = (deadline_ns - ks_now_mono_ns()) / 1000000;
    return ms < 100 ? 100 : ms > 600000 ? 600000 : (int)ms;
}

int ks_kafka_txn_init(rd_kafka_t *producer, int timeout_ms, char *errbuf, size_t errsize)
{
    rd_kafka_error_t *error = rd_kafka_init_transactions(producer, timeout_ms);
    if (!error)
        return KS_OK;
    int rc = ks_err(errbuf, errsize, KS_EKAFKA,
                    "cannot start transactions (delivery: exactly_once needs brokers that "
                    "support them and a transaction state log): %s",
                    rd_kafka_error_string(error));
    rd_kafka_error_destroy(error);
    return rc;
}

static void quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
}

int ks_kafka_txn_probe(rd_kafka_conf_t *conf, const char *txn_id, int timeout_ms, char *errbuf,
                       size_t errsize)
{
    char kerr[256];
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    if (rd_kafka_conf_set(conf, "transactional.id", txn_id, kerr, sizeof(kerr)) !=
        RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return ks_err(errbuf, errsize, KS_EKAFKA, "transactional.id %s: %s", txn_id, kerr);
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, kerr, sizeof(kerr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return ks_err(errbuf, errsize, KS_EKAFKA, "cannot create a Kafka client: %s", kerr);
    }
    int rc = ks_kafka_txn_init(rk, timeout_ms, errbuf, errsize);
    rd_kafka_destroy(rk);
    return rc;
}

ks_txn_result_t ks_kafka_txn_begin(rd_kafka_t *producer, const char *who)
{
    rd_kafka_error_t *error = rd_kafka_begin_transaction(producer);
    if (!error)
        return KS_TXN_OK;
    ks_error("%s: cannot begin a transaction: %s", who, rd_kafka_error_string(error));
    rd_kafka_error_destroy(error);
    return KS_TXN_FATAL;
}

ks_txn_result_t ks_kafka_txn_abort(rd_kafka_t *producer, int64_t deadline_ns, const char *who)
{
    /* Abort purges the queued records and waits for their delivery reports,
     * which this thread serves: purge first and serve them here, then abort
     * (a timed-out abort is retried after serving more). */
    rd_kafka_purge(producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT |
                                 RD_KAFKA_PURGE_F_NON_BLOCKING);
    for (int i = 0; i < 100 && rd_kafka_outq_len(producer) > 0; i++)
        rd_kafka_poll(producer, 10);
    for (;;) {
        /* short slices: the delivery reports it waits for are served between */
        int slice = left_ms(deadline_ns) < 1000 ? left_ms(deadline_ns) : 1000;
        rd_kafka_error_t *error = rd_kafka_abort_transaction(producer, slice);
        if (!error)
            return KS_TXN_ABORTED;
        int retry = rd_kafka_error_is_retriable(error) && ks_now_mono_ns() < deadline_ns;
        ks_log(retry ? KS_LOG_WARN : KS_LOG_ERROR, "%s: aborting the transaction: %s%s", who,
               rd_kafka_error_string(error), retry ? " (retrying)" : "");
        rd_kafka_error_destroy(error);
        if (!retry)
            return KS_TXN_FATAL;
        rd_kafka_poll(producer, 100);
    }
}

/* Classifies an error of send_offsets / commit: retry, abort or stop.
 * Retriable errors (a timed-out call, the coordinator moving) must be
 * retried with the same call ("retry call to resume"): an abort is not
 * allowed while a commit is in progress. */
static int handle(rd_kafka_t *producer, rd_kafka_error_t *error, const char *what,
                  int64_t deadline_ns, const char *who, ks_txn_result_t *out)
{
    if (rd_kafka_error_txn_requires_abort(error)) {
        ks_warn("%s: %s: %s; aborting the transaction, its events are processed again", who,
                what, rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
        /* the abort gets time of its own, at least KS_TXN_ABORT_BUDGET_MS */
        int64_t abort_deadline = ks_now_mono_ns() + (int64_t)KS_TXN_ABORT_BUDGET_MS * 1000000;
        *out = ks_kafka_txn_abort(producer, abort_deadline > deadline_ns ? abort_deadline
                                                                         : deadline_ns,
                                  who);
        return 0;
    }
    if (rd_kafka_error_is_retriable(error) && !rd_kafka_error_is_fatal(error) &&
        ks_now_mono_ns() < deadline_ns) {
        ks_warn("%s: %s: %s (retrying)", who, what, rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
        rd_kafka_poll(producer, 100);
        return 1;
    }
    ks_error("%s: %s: %s%s", who, what, rd_kafka_error_string(error),
             rd_kafka_error_is_retriable(error) ? " (out of time: stopping; a restart fences "
                                                  "this producer and aborts the transaction)"
                                                : "");
    rd_kafka_error_destroy(error);
    *out = KS_TXN_FATAL;
    return 0;
}

ks_txn_result_t ks_kafka_txn_commit(rd_kafka_t *producer, rd_kafka_t *consumer,
                                    const rd_kafka_topic_partition_list_t *offsets,
                                    int64_t deadline_ns, const char *who)
{
    ks_txn_result_t res = KS_TXN_OK;
    rd_kafka_error_t *error;
    if (offsets && offsets->cnt) {
        rd_kafka_consumer_group_metadata_t *md = rd_kafka_consumer_group_metadata(consumer);
        do {
            error = rd_kafka_send_offsets_to_transaction(producer, offsets, md,
                                                         left_ms(deadline_ns));
        } while (error && handle(producer, error, "sending offsets to the transaction",
                                 deadline_ns, who, &res));
        rd_kafka_consumer_group_metadata_destroy(md);
        if (error)
            return res;
    }
    do {
        error = rd_kafka_commit_transaction(producer, left_ms(deadline_ns));
    } while (error &&
             handle(producer, error, "committing the transaction", deadline_ns, who, &res));
    return error ? res : KS_TXN_OK;
}
