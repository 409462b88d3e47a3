/*
 * e2e_admin.c - the small Kafka chores of the end-to-end benchmark, done with
 * librdkafka in one short process each instead of a JVM tool start (seconds
 * of CPU on a 2-core machine that is also running the broker):
 *
 *   e2e-admin [--brokers B] create NAME:PARTITIONS ...   create (replication 1),
 *                                                        wait until every partition has a leader
 *   e2e-admin [--brokers B] delete NAME ...              delete (missing ones are fine)
 *   e2e-admin [--brokers B] count TOPIC ...              sum of end offsets, printed
 *   e2e-admin [--brokers B] wait-count N TIMEOUT_S TOPIC ...
 *                                                        until the topics' end offsets add
 *                                                        up to >= N; prints seconds waited
 *
 * Every wait is bounded. Exit: 0 ok, 1 Kafka error or timeout, 2 bad usage.
 * End offsets equal record counts here: benchmark topics are fresh and never
 * transactional.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static rd_kafka_t *client(const char *brokers)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "client.id", "e2e-admin", err, sizeof(err))) {
        fprintf(stderr, "e2e-admin: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "e2e-admin: %s\n", err);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

/* Partition count of a topic with a leader for every partition, 0 if the
 * topic is missing or some partition has no leader yet, -1 on error. */
static int led_partitions(rd_kafka_t *rk, const char *topic)
{
    const struct rd_kafka_metadata *md;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
    rd_kafka_topic_destroy(rkt);
    if (err)
        return -1;
    int n = 0;
    if (md->topic_cnt == 1 && !md->topics[0].err) {
        n = md->topics[0].partition_cnt;
        for (int p = 0; p < md->topics[0].partition_cnt; p++)
            if (md->topics[0].partitions[p].leader < 0)
                n = 0;
    }
    rd_kafka_metadata_destroy(md);
    return n;
}

/* Runs an admin request and waits (bounded) for its result event. */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q, rd_kafka_event_type_t type)
{
    double deadline = now_s() + 60;
    while (now_s() < deadline) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 1000);
        if (!ev)
            continue;
        if (rd_kafka_event_type(ev) == type)
            return ev;
        rd_kafka_event_destroy(ev);
    }
    return NULL;
}

static int cmd_create(rd_kafka_t *rk, int n, char **names)
{
    char err[512];
    int rc = 1;
    rd_kafka_NewTopic_t **nt = calloc((size_t)n, sizeof(*nt));
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_event_t *ev = NULL;
    int made = 0;
    for (int i = 0; i < n; i++) {
        char *colon = strrchr(names[i], ':');
        int parts = colon ? atoi(colon + 1) : 0;
        if (!colon || parts <= 0) {
            fprintf(stderr, "e2e-admin: create wants NAME:PARTITIONS, got '%s'\n", names[i]);
            rc = 2;
            goto out;
        }
        *colon = '\0';
        nt[i] = rd_kafka_NewTopic_new(names[i], parts, 1, err, sizeof(err));
        if (!nt[i]) {
            fprintf(stderr, "e2e-admin: %s: %s\n", names[i], err);
            rc = 2;
            goto out;
        }
        made++;
    }
    rd_kafka_CreateTopics(rk, nt, (size_t)n, NULL, q);
    if (!(ev = admin_wait(q, RD_KAFKA_EVENT_CREATETOPICS_RESULT))) {
        fprintf(stderr, "e2e-admin: no answer to CreateTopics within 60 s\n");
        goto out;
    }
    size_t cnt;
    const rd_kafka_topic_result_t **res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
    for (size_t i = 0; i < cnt; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
        if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            fprintf(stderr, "e2e-admin: create %s: %s\n", rd_kafka_topic_result_name(res[i]),
                    rd_kafka_topic_result_error_string(res[i]));
            goto out;
        }
    }
    /* wait until every partition has a leader */
    double deadline = now_s() + 30;
    for (int i = 0; i < n; i++)
        while (led_partitions(rk, names[i]) <= 0) {
            if (now_s() > deadline) {
                fprintf(stderr, "e2e-admin: %s has partitions without a leader after 30 s\n",
                        names[i]);
                goto out;
            }
            nap_ms(100);
        }
    rc = 0;
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    for (int i = 0; i < made; i++)
        rd_kafka_NewTopic_destroy(nt[i]);
    free(nt);
    rd_kafka_queue_destroy(q);
    return rc;
}

static int cmd_delete(rd_kafka_t *rk, int n, char **names)
{
    int rc = 1;
    rd_kafka_DeleteTopic_t **dt = calloc((size_t)n, sizeof(*dt));
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_event_t *ev = NULL;
    for (int i = 0; i < n; i++)
        dt[i] = rd_kafka_DeleteTopic_new(names[i]);
    rd_kafka_DeleteTopics(rk, dt, (size_t)n, NULL, q);
    if (!(ev = admin_wait(q, RD_KAFKA_EVENT_DELETETOPICS_RESULT))) {
        fprintf(stderr, "e2e-admin: no answer to DeleteTopics within 60 s\n");
        goto out;
    }
    size_t cnt;
    const rd_kafka_topic_result_t **res =
        rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &cnt);
    rc = 0;
    for (size_t i = 0; i < cnt; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
        if (e && e != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
            fprintf(stderr, "e2e-admin: delete %s: %s\n", rd_kafka_topic_result_name(res[i]),
                    rd_kafka_topic_result_error_string(res[i]));
            rc = 1;
        }
    }
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    for (int i = 0; i < n; i++)
        rd_kafka_DeleteTopic_destroy(dt[i]);
    free(dt);
    rd_kafka_queue_destroy(q);
    return rc;
}

/* Sum of the topics' end offsets; -1 on error (a missing topic counts 0). */
static long long end_offsets(rd_kafka_t *rk, int n, char **topics)
{
    long long sum = 0;
    for (int i = 0; i < n; i++) {
        int parts = led_partitions(rk, topics[i]);
        if (parts < 0)
            return -1;
        for (int p = 0; p < parts; p++) {
            int64_t lo, hi;
            if (rd_kafka_query_watermark_offsets(rk, topics[i], p, &lo, &hi, 5000))
                return -1;
            sum += hi;
        }
    }
    return sum;
}

int main(int argc, char **argv)
{
    const char *brokers = "127.0.0.1:9092";
    int i = 1, rc = 2;
    if (i + 1 < argc && !strcmp(argv[i], "--brokers")) {
        brokers = argv[i + 1];
        i += 2;
    }
    if (i >= argc)
        goto usage;
    const char *cmd = argv[i++];
    rd_kafka_t *rk = client(brokers);
    if (!rk)
        return 1;
    if (!strcmp(cmd, "create") && i < argc) {
        rc = cmd_create(rk, argc - i, argv + i);
    } else if (!strcmp(cmd, "delete") && i < argc) {
        rc = cmd_delete(rk, argc - i, argv + i);
    } else if (!strcmp(cmd, "count") && i < argc) {
        long long c = end_offsets(rk, argc - i, argv + i);
        rc = c < 0;
        if (c >= 0)
            printf("%lld\n", c);
    } else if (!strcmp(cmd, "wait-count") && i + 2 < argc) {
        long long want = atoll(argv[i]), have = 0;
        double timeout = atof(argv[i + 1]), t0 = now_s();
        rc = 1;
        while (now_s() - t0 < timeout) {
            have = end_offsets(rk, argc - i - 2, argv + i + 2);
            if (have >= want) {
                rc = 0;
                break;
            }
            nap_ms(50);
        }
        printf("%.3f\n", now_s() - t0);
        if (rc)
            fprintf(stderr, "e2e-admin: %lld of %lld records after %.0f s\n", have, want,
                    timeout);
    } else {
        rd_kafka_destroy(rk);
        goto usage;
    }
    rd_kafka_destroy(rk);
    return rc;
usage:
    fprintf(stderr, "usage: e2e-admin [--brokers B] create NAME:PARTS ... | delete NAME ... |\n"
                    "       count TOPIC ... | wait-count N TIMEOUT_S TOPIC ...\n");
    return 2;
}
