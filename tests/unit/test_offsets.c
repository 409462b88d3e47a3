/*
 * test_offsets.c - commit watermarks: out-of-order acks, gaps in offsets,
 * revocation, stale tokens, and a randomized check against a naive model.
 */
#include "kafka/offsets.h"
#include "test.h"

#include <stdlib.h>

static int64_t committable_of(ks_offsets_t *o, const char *topic, int32_t p, int all)
{
    rd_kafka_topic_partition_list_t *l = ks_offsets_committable(o, all);
    int64_t w = -2;
    for (int i = 0; l && i < l->cnt; i++)
        if (l->elems[i].partition == p && strcmp(l->elems[i].topic, topic) == 0)
            w = l->elems[i].offset;
    if (l)
        rd_kafka_topic_partition_list_destroy(l);
    return w;
}

static void test_out_of_order(void)
{
    ks_offsets_t *o = ks_offsets_new();
    uint64_t t[5];
    for (int i = 0; i < 5; i++)
        t[i] = ks_offsets_track(o, "a", 0, 10 + i * 2, 0); /* gaps: 10,12,14,16,18 */
    CHECK_EQ_INT(committable_of(o, "a", 0, 1), 10);
    ks_offsets_ack(o, t[1], NULL);
    ks_offsets_ack(o, t[2], NULL);
    CHECK_EQ_INT(committable_of(o, "a", 0, 1), 10); /* 10 still in flight */
    ks_offsets_ack(o, t[0], NULL);
    CHECK_EQ_INT(committable_of(o, "a", 0, 1), 16);
    int64_t stamp = 0;
    CHECK_EQ_INT(ks_offsets_ack(o, t[4], &stamp), 1);
    CHECK_EQ_INT(ks_offsets_ack(o, t[4], &stamp), 0); /* duplicate ack is harmless */
    CHECK_EQ_INT(ks_offsets_in_flight(o), 1);
    ks_offsets_ack(o, t[3], NULL);
    CHECK_EQ_INT(committable_of(o, "a", 0, 1), 19);
    CHECK_EQ_INT(ks_offsets_in_flight(o), 0);
    ks_offsets_free(o);
}

/* A hold (a window state's changelog record) keeps the watermark at its
 * offset until it is acknowledged, although it is tracked after the events. */
static void test_hold(void)
{
    ks_offsets_t *o = ks_offsets_new();
    uint64_t t[4];
    for (int i = 0; i < 4; i++)
        t[i] = ks_offsets_track(o, "a", 0, 100 + i, 0);
    uint64_t h1 = ks_offsets_hold(o, "a", 0, 101); /* a key's first event: 101 */
    uint64_t h2 = ks_offsets_hold(o, "a", 0, 100);
    CHECK_EQ_INT(ks_offsets_in_flight(o), 6);
    for (int i = 0; i < 4; i++)
        ks_offsets_ack(o, t[i], NULL);
    CHECK_EQ_INT(committable_of(o, "a", 0, 1), 100); /* outputs done, records not */
    ks_offsets_ack(o, h2, NULL);
    CHECK_EQ_INT(committable_of(o, "a", 0, 1), 101);
    uint64_t t4 = ks_offsets_track(o, "a", 0, 104, 0); /* the next batch */
    CHECK_EQ_INT(committable_of(o, "a", 0, 1), 101);
    ks_offsets_ack(o, h1, NULL);
    CHECK_EQ_INT(committable_of(o, "a", 0, 1), 104);
    ks_offsets_ack(o, t4, NULL);
    CHECK_EQ_INT(committable_of(o, "a", 0, 1), 105); /* a hold never moves next_offset */
    CHECK_EQ_INT(ks_offsets_in_flight(o), 0);
    uint64_t h3 = ks_offsets_hold(o, "a", 0, 105);
    ks_offsets_revoke(o, "a", 0); /* a revoked partition's holds are gone */
    CHECK_EQ_INT(ks_offsets_in_flight(o), 0);
    CHECK_EQ_INT(ks_offsets_ack(o, h3, NULL), 0);
    ks_offsets_free(o);
}

static void test_changed_only_and_revoke(void)
{
    ks_offsets_t *o = ks_offsets_new();
    uint64_t a = ks_offsets_track(o, "a", 0, 0, 0);
    uint64_t b = ks_offsets_track(o, "a", 1, 0, 0);
    ks_offsets_ack(o, a, NULL);
    rd_kafka_topic_partition_list_t *l = ks_offsets_committable(o, 0);
    CHECK(l && l->cnt == 2);
    ks_offsets_committed(o, l);
    rd_kafka_topic_partition_list_destroy(l);
    CHECK(ks_offsets_committable(o, 0) == NULL); /* nothing moved */
    ks_offsets_revoke(o, "a", 1);
    CHECK_EQ_INT(ks_offsets_in_flight(o), 0);
    ks_offsets_ack(o, b, NULL);                       /* stale: ignored */
    uint64_t c = ks_offsets_track(o, "a", 1, 5, 0); /* reassigned, slot reused */
    ks_offsets_ack(o, b, NULL);                       /* stale generation still ignored */
    CHECK_EQ_INT(committable_of(o, "a", 1, 1), 5);
    ks_offsets_ack(o, c, NULL);
    CHECK_EQ_INT(committable_of(o, "a", 1, 1), 6);
    ks_offsets_free(o);
}

/* Random interleavings against the definition: the watermark is the smallest
 * unacknowledged offset, or last+1. */
static void test_random(void)
{
    srand(42);
    for (int round = 0; round < 200; round++) {
        ks_offsets_t *o = ks_offsets_new();
        int n = 1 + rand() % 3000;
        uint64_t *tok = malloc(n * sizeof(*tok));
        int64_t *off = malloc(n * sizeof(*off));
        char *acked = calloc(n, 1);
        int64_t cur = rand() % 100;
        for (int i = 0; i < n; i++) {
            off[i] = cur;
            cur += 1 + (rand() % 4 == 0);
            tok[i] = ks_offsets_track(o, "t", 3, off[i], 0);
        }
        for (int step = 0; step < n; step++) {
            int i = rand() % n;
            ks_offsets_ack(o, tok[i], NULL);
            acked[i] = 1;
            if (step % 97 == 0 || step == n - 1) {
                int64_t expect = off[n - 1] + 1;
                for (int k = 0; k < n; k++)
                    if (!acked[k]) {
                        expect = off[k];
                        break;
                    }
                CHECK_EQ_INT(committable_of(o, "t", 3, 1), expect);
            }
        }
        free(tok);
        free(off);
        free(acked);
        ks_offsets_free(o);
    }
}

int main(void)
{
    RUN(test_out_of_order);
    RUN(test_hold);
    RUN(test_changed_only_and_revoke);
    RUN(test_random);
    return test_summary();
}
