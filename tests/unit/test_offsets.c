/*
 * test_offsets.c - commit watermarks: out-of-order acks, gaps in offsets,
 * revocation, stale tokens, randomized checks against a naive model (acks of
 * a fixed set, and tracking interleaved with acks across ring wrap-around);
 * the slot index limit; the slot generation
 * wraps after 4,096 reassignments (issue 8).
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


/* Tracking and acknowledging interleaved, over three partitions, against a
 * reference model: the in-flight count swings between a few and a few
 * thousand, so each ring's head goes round its end many times and the ring
 * grows while wrapped (the 1,024-entry start). Acks come in random order,
 * some repeated; the watermark and in-flight count are checked often. */
typedef struct ref_ev {
    uint64_t tok;
    int64_t off;
    int part;
    int acked;
} ref_ev_t;

static void test_random_interleaved_wraparound(void)
{
    srand(7);
    enum { N = 60000, PARTS = 3 };
    ref_ev_t *ev = calloc(N, sizeof(*ev));
    int *open = malloc(N * sizeof(*open)); /* indexes of unacked events */
    int n_open = 0, n = 0, checks = 0;
    int64_t next_off[PARTS] = {0, 1000, 5};
    ks_offsets_t *o = ks_offsets_new();
    uint64_t in_flight = 0;
    int target = 10;
    for (int step = 0; step < 4 * N && (n < N || n_open); step++) {
        if (step % 5000 == 0) /* swing between near-empty and deep queues */
            target = (target < 100) ? 500 + rand() % 2500 : 1 + rand() % 20;
        int do_track = n < N && (n_open < target ? rand() % 4 != 0 : rand() % 4 == 0);
        if (do_track) {
            int p = rand() % PARTS;
            ev[n] = (ref_ev_t){0, next_off[p], p, 0};
            next_off[p] += 1 + (rand() % 8 == 0);
            ev[n].tok = ks_offsets_track(o, "t", p, ev[n].off, n);
            open[n_open++] = n;
            n++;
            in_flight++;
        } else if (n_open) {
            int k = rand() % n_open;
            int i = open[k];
            int64_t stamp = -1;
            CHECK_EQ_INT(ks_offsets_ack(o, ev[i].tok, &stamp), 1);
            CHECK_EQ_INT(stamp, i);
            ev[i].acked = 1;
            open[k] = open[--n_open];
            in_flight--;
            if (rand() % 10 == 0) /* a repeated report changes nothing */
                CHECK_EQ_INT(ks_offsets_ack(o, ev[i].tok, NULL), 0);
        }
        if (step % 211 == 0 || (n == N && n_open == 0)) {
            checks++;
            CHECK_EQ_INT(ks_offsets_in_flight(o), in_flight);
            for (int p = 0; p < PARTS; p++) {
                int64_t expect = -2; /* no event yet: not listed */
                for (int i = 0; i < n; i++)
                    if (ev[i].part == p) {
                        if (!ev[i].acked) {
                            expect = ev[i].off;
                            break;
                        }
                        expect = ev[i].off + 1;
                    }
                int64_t got = committable_of(o, "t", p, 1);
                if (got != expect) {
                    CHECK_EQ_INT(got, expect);
                    fprintf(stderr, "  partition %d at step %d (%d tracked, %d open)\n", p, step,
                            n, n_open);
                    step = 4 * N; /* one report is enough */
                    break;
                }
            }
        }
    }
    CHECK_EQ_INT(n, N);
    CHECK_EQ_INT(n_open, 0);
    CHECK(checks > 100);
    ks_offsets_free(o);
    free(ev);
    free(open);
}

/* Issue 8 section 4, "the offset tracker's slot index cannot wrap": tokens
 * carry the tracker slot + 1 in 12 bits. The tracker takes at most 4,095
 * partitions (it aborts on the 4,096th, whose slot field would be 0 and whose
 * acknowledgements would be ignored, freezing its watermark); the last one
 * it takes is acknowledged like any other. */
static void test_slot_index_does_not_wrap(void)
{
    ks_offsets_t *o = ks_offsets_new();
    char topic[32];
    for (int i = 0; i < 4095; i++) {
        snprintf(topic, sizeof(topic), "t%d", i);
        ks_offsets_assign(o, topic, 0);
    }
    uint64_t tok = ks_offsets_track(o, "t4094", 0, 7, 0);
    CHECK_MSG(ks_offsets_ack(o, tok, NULL) == 1,
              "the acknowledgement of the 4,095th partition's event was ignored");
    CHECK_EQ_INT(committable_of(o, "t4094", 0, 1), 8);
    ks_offsets_free(o);
}

/* A report from an assignment long gone never acknowledges a current event,
 * however many reassignments lie between (a stale acknowledgement would let
 * a current event's offset be committed before its output exists): the
 * slot generation has 20 bits, and past that range the slot is retired,
 * not reused with a wrapped generation. Also checked where a 12-bit
 * generation would have wrapped. */
static void test_stale_token_after_generation_wrap(void)
{
    ks_offsets_t *o = ks_offsets_new();
    uint64_t stale = ks_offsets_track(o, "a", 0, 100, 0);
    for (int i = 0; i < (1 << 20) + 5; i++) {
        ks_offsets_revoke(o, "a", 0);
        ks_offsets_assign(o, "a", 0);
        if (i == 4095 || i == (1 << 20) - 1) { /* where 12 / 20 generation bits wrap */
            uint64_t probe = ks_offsets_track(o, "a", 0, 100, 0);
            CHECK_MSG(ks_offsets_ack(o, stale, NULL) == 0,
                      "a token from %d assignments ago acknowledged the current event", i + 1);
            CHECK_EQ_INT(ks_offsets_ack(o, probe, NULL), 1);
        }
    }
    uint64_t cur = ks_offsets_track(o, "a", 0, 500, 0);
    CHECK_MSG(ks_offsets_ack(o, stale, NULL) == 0,
              "a token from 2^20 assignments ago acknowledged the current event");
    CHECK_EQ_INT(committable_of(o, "a", 0, 1), 500); /* 500 still in flight */
    CHECK_EQ_INT(ks_offsets_ack(o, cur, NULL), 1);
    ks_offsets_free(o);
}

int main(void)
{
    RUN(test_out_of_order);
    RUN(test_hold);
    RUN(test_changed_only_and_revoke);
    RUN(test_random);
    RUN(test_random_interleaved_wraparound);
    RUN(test_slot_index_does_not_wrap);
    RUN(test_stale_token_after_generation_wrap);
    return test_summary();
}
