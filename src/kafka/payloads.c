/*
 * payloads.c - blocks of record memory held until the delivery reports of
 * the records produced from them (see payloads.h).
 */
#include "kafka/payloads.h"
#include "base/common.h"

#include <stdlib.h>

struct ks_payload_block {
    char *data;
    size_t len, cap;
    size_t refs;          /* records in flight + 1 until ks_payloads_end */
    int64_t produce_ns;
    int ended;            /* the memory is the block's, no longer the batch's */
    ks_payload_block_t *prev, *next;
};

struct ks_payloads {
    ks_payload_block_t *head, *tail; /* held, oldest first */
    ks_payload_block_t *free_blocks; /* linked by next */
    size_t n_held;
    /* memory of finished blocks, for the next batch's records: all of it is
     * kept (at most as many buffers as were ever in flight at once), since a
     * batch's records (100+ kB) exceed malloc's mmap threshold, and a fresh
     * buffer per batch would cost an mmap and a page fault per 4 kB */
    ks_buf_t *spare;
    size_t n_spare, spare_cap;
};

ks_payloads_t *ks_payloads_new(void)
{
    return ks_xcalloc(1, sizeof(ks_payloads_t));
}

static void unlink_block(ks_payloads_t *pl, ks_payload_block_t *blk)
{
    if (blk->prev)
        blk->prev->next = blk->next;
    else
        pl->head = blk->next;
    if (blk->next)
        blk->next->prev = blk->prev;
    else
        pl->tail = blk->prev;
    pl->n_held--;
    blk->next = pl->free_blocks;
    pl->free_blocks = blk;
}

ks_payload_block_t *ks_payloads_begin(ks_payloads_t *pl, ks_buf_t *buf, int64_t produce_ns)
{
    ks_payload_block_t *blk = pl->free_blocks;
    if (blk)
        pl->free_blocks = blk->next;
    else
        blk = ks_xmalloc(sizeof(*blk));
    *blk = (ks_payload_block_t){buf->data, buf->len, buf->cap, 1, produce_ns, 0, pl->tail, NULL};
    if (pl->tail)
        pl->tail->next = blk;
    else
        pl->head = blk;
    pl->tail = blk;
    pl->n_held++;
    return blk;
}

void ks_payloads_ref(ks_payload_block_t *blk)
{
    blk->refs++;
}

void ks_payloads_end(ks_payloads_t *pl, ks_payload_block_t *blk, ks_buf_t *buf)
{
    if (--blk->refs == 0) { /* nothing in flight: buf keeps its memory */
        unlink_block(pl, blk);
        return;
    }
    /* the block keeps the memory until its last report; buf gets other */
    blk->ended = 1;
    *buf = pl->n_spare ? pl->spare[--pl->n_spare] : (ks_buf_t){NULL, 0, 0};
    buf->len = 0;
}

int ks_payloads_release(ks_payloads_t *pl, const rd_kafka_message_t *m, int64_t *produce_ns)
{
    uintptr_t p = (uintptr_t)m->payload;
    for (ks_payload_block_t *blk = pl->head; blk; blk = blk->next) {
        uintptr_t start = (uintptr_t)blk->data;
        if (!blk->data || p < start || p >= start + blk->len)
            continue;
        *produce_ns = blk->produce_ns;
        if (--blk->refs == 0) { /* ended, and this was its last record */
            if (pl->n_spare == pl->spare_cap) {
                pl->spare_cap = pl->spare_cap ? 2 * pl->spare_cap : 16;
                pl->spare = ks_xrealloc(pl->spare, pl->spare_cap * sizeof(*pl->spare));
            }
            pl->spare[pl->n_spare++] = (ks_buf_t){blk->data, 0, blk->cap};
            unlink_block(pl, blk);
        }
        return 1;
    }
    return 0;
}

size_t ks_payloads_held(const ks_payloads_t *pl)
{
    return pl->n_held;
}

void ks_payloads_free(ks_payloads_t *pl)
{
    if (!pl)
        return;
    while (pl->head) {
        ks_payload_block_t *blk = pl->head;
        /* a block not ended shares its memory with the batch's buffer,
         * which the batch frees */
        if (blk->ended)
            free(blk->data);
        blk->refs = 0;
        unlink_block(pl, blk);
    }
    for (ks_payload_block_t *b = pl->free_blocks, *n; b; b = n) {
        n = b->next;
        free(b);
    }
    for (size_t i = 0; i < pl->n_spare; i++)
        free(pl->spare[i].data);
    free(pl->spare);
    free(pl);
}
