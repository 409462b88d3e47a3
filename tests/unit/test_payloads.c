/*
 * test_payloads.c - record buffers held for delivery reports (kafka/payloads.h):
 * a batch's records stay readable and unchanged until their last report, in
 * whatever order reports and batch ends come; memory is recycled, not
 * reallocated, in the steady state; foreign payloads are not counted. Under
 * the sanitizer build a use after free or a leak fails it too.
 */
#include "base/buf.h"
#include "kafka/payloads.h"
#include "test.h"

#include <stdlib.h>

/* A batch of n records "r<batch>.<i>;" back to back in buf; off[i] where each is. */
static void encode(ks_buf_t *buf, int batch, size_t n, size_t *off, size_t *len)
{
    ks_buf_reset(buf);
    for (size_t i = 0; i < n; i++) {
        off[i] = buf->len;
        ks_buf_printf(buf, "r%d.%zu;", batch, i);
        len[i] = buf->len - off[i];
    }
}

static rd_kafka_message_t report(const char *payload, size_t len)
{
    rd_kafka_message_t m;
    memset(&m, 0, sizeof(m));
    m.payload = (void *)payload;
    m.len = len;
    return m;
}

static void test_reports_before_and_after_end(void)
{
    ks_payloads_t *pl = ks_payloads_new();
    ks_buf_t buf = {0};
    size_t off[4], len[4];
    int64_t ns = 0;
    encode(&buf, 1, 4, off, len);
    char *mem = buf.data;
    ks_payload_block_t *blk = ks_payloads_begin(pl, &buf, 42);
    for (int i = 0; i < 4; i++)
        ks_payloads_ref(blk);
    /* a report while the batch still produces (a full queue) */
    rd_kafka_message_t m = report(mem + off[0], len[0]);
    CHECK_EQ_INT(ks_payloads_release(pl, &m, &ns), 1);
    CHECK_EQ_INT(ns, 42);
    ks_payloads_end(pl, blk, &buf);
    CHECK(buf.data != mem); /* the block keeps the memory: 3 records in flight */
    CHECK_EQ_INT(buf.len, 0);
    CHECK_EQ_INT(ks_payloads_held(pl), 1);
    for (int i = 1; i < 4; i++) {
        CHECK(memcmp(mem + off[i], i == 1 ? "r1.1;" : i == 2 ? "r1.2;" : "r1.3;", 5) == 0);
        m = report(mem + off[i], len[i]);
        CHECK_EQ_INT(ks_payloads_release(pl, &m, &ns), 1);
    }
    CHECK_EQ_INT(ks_payloads_held(pl), 0);
    /* the next batch with records in flight gets that memory back */
    encode(&buf, 2, 2, off, len);
    char *mem2 = buf.data;
    blk = ks_payloads_begin(pl, &buf, 43);
    ks_payloads_ref(blk);
    ks_payloads_end(pl, blk, &buf);
    CHECK(buf.data == mem);
    m = report(mem2 + off[0], len[0]);
    CHECK_EQ_INT(ks_payloads_release(pl, &m, &ns), 1);
    CHECK_EQ_INT(ns, 43);
    ks_buf_free(&buf);
    ks_payloads_free(pl);
}

static void test_nothing_in_flight_keeps_memory(void)
{
    ks_payloads_t *pl = ks_payloads_new();
    ks_buf_t buf = {0};
    size_t off[2], len[2];
    encode(&buf, 1, 2, off, len);
    char *mem = buf.data;
    ks_payload_block_t *blk = ks_payloads_begin(pl, &buf, 1);
    ks_payloads_ref(blk);
    rd_kafka_message_t m = report(mem + off[0], len[0]);
    int64_t ns;
    CHECK_EQ_INT(ks_payloads_release(pl, &m, &ns), 1); /* acknowledged before the end */
    ks_payloads_end(pl, blk, &buf);
    CHECK(buf.data == mem);
    CHECK_EQ_INT(ks_payloads_held(pl), 0);
    /* a payload that is in no block: not counted */
    char other[8] = "x";
    m = report(other, 1);
    CHECK_EQ_INT(ks_payloads_release(pl, &m, &ns), 0);
    ks_buf_free(&buf);
    ks_payloads_free(pl);
}

/* Random batches, produce counts and report orders against a model of who is
 * in flight: every report finds its bytes intact and its block's stamp. */
static void test_random_interleaving(void)
{
    enum { BATCHES = 400, MAXN = 40 };
    typedef struct { const char *p; size_t len; int batch; char text[48]; } flight_t;
    flight_t *fl = calloc(BATCHES * MAXN, sizeof(*fl));
    size_t n_fl = 0;
    ks_payloads_t *pl = ks_payloads_new();
    ks_buf_t buf = {0};
    size_t off[MAXN], len[MAXN];
    srand(7);
    for (int b = 0; b < BATCHES; b++) {
        size_t n = 1 + (size_t)rand() % MAXN, produced = (size_t)rand() % (n + 1);
        encode(&buf, b, n, off, len);
        ks_payload_block_t *blk = ks_payloads_begin(pl, &buf, b);
        for (size_t i = 0; i < produced; i++) {
            ks_payloads_ref(blk);
            flight_t *f = &fl[n_fl++];
            f->p = buf.data + off[i];
            f->len = len[i];
            f->batch = b;
            snprintf(f->text, sizeof(f->text), "r%d.%zu;", b, i);
            /* some reports arrive while the batch is still producing */
            if (rand() % 4 == 0) {
                size_t k = (size_t)rand() % n_fl;
                rd_kafka_message_t m = report(fl[k].p, fl[k].len);
                int64_t ns = -1;
                CHECK(memcmp(fl[k].p, fl[k].text, fl[k].len) == 0);
                CHECK_EQ_INT(ks_payloads_release(pl, &m, &ns), 1);
                CHECK_EQ_INT(ns, fl[k].batch);
                fl[k] = fl[--n_fl];
            }
        }
        ks_payloads_end(pl, blk, &buf);
        /* and some after it ended, in any order */
        for (int r = rand() % 30; r > 0 && n_fl; r--) {
            size_t k = (size_t)rand() % n_fl;
            rd_kafka_message_t m = report(fl[k].p, fl[k].len);
            int64_t ns = -1;
            CHECK(memcmp(fl[k].p, fl[k].text, fl[k].len) == 0);
            CHECK_EQ_INT(ks_payloads_release(pl, &m, &ns), 1);
            CHECK_EQ_INT(ns, fl[k].batch);
            fl[k] = fl[--n_fl];
        }
    }
    CHECK(ks_payloads_held(pl) > 0);
    while (n_fl) {
        rd_kafka_message_t m = report(fl[n_fl - 1].p, fl[n_fl - 1].len);
        int64_t ns;
        CHECK(memcmp(fl[n_fl - 1].p, fl[n_fl - 1].text, fl[n_fl - 1].len) == 0);
        CHECK_EQ_INT(ks_payloads_release(pl, &m, &ns), 1);
        n_fl--;
    }
    CHECK_EQ_INT(ks_payloads_held(pl), 0);
    ks_buf_free(&buf);
    ks_payloads_free(pl);
    free(fl);
}

/* Freed with records still in flight (the producer was destroyed first):
 * nothing leaks, nothing is freed twice (the sanitizer build checks). */
static void test_free_while_held(void)
{
    ks_payloads_t *pl = ks_payloads_new();
    ks_buf_t buf = {0};
    size_t off[3], len[3];
    for (int b = 0; b < 3; b++) {
        encode(&buf, b, 3, off, len);
        ks_payload_block_t *blk = ks_payloads_begin(pl, &buf, b);
        ks_payloads_ref(blk);
        ks_payloads_end(pl, blk, &buf);
    }
    encode(&buf, 9, 3, off, len);
    ks_payloads_begin(pl, &buf, 9); /* a batch in hand, not ended */
    CHECK_EQ_INT(ks_payloads_held(pl), 4);
    ks_payloads_free(pl);
    ks_buf_free(&buf);
}

int main(void)
{
    RUN(test_reports_before_and_after_end);
    RUN(test_nothing_in_flight_keeps_memory);
    RUN(test_random_interleaving);
    RUN(test_free_while_held);
    return test_summary();
}
