/*
 * payloads.h - producing records without copying them. librdkafka, given
 * neither RD_KAFKA_MSG_F_COPY nor RD_KAFKA_MSG_F_FREE, keeps the payload
 * pointer it is given and reads it until the message's delivery report
 * (rdkafka.h, rd_kafka_produce); only the key is copied. So the output
 * records of one batch, encoded back to back in one buffer, can be produced
 * from that buffer as long as it lives until the batch's last delivery
 * report. A block is that buffer's memory held for the batch:
 *
 *   blk = ks_payloads_begin(pl, &recs, now)  after encoding, before producing
 *   ks_payloads_ref(blk)                     per record produced from recs
 *   ks_payloads_end(pl, blk, &recs)          the batch is fully produced
 *   ks_payloads_release(pl, m)               in each record's delivery report
 *
 * The block's memory is reused (for a later batch's records) when the batch
 * has ended and every record's report has arrived; until then `recs` gets
 * memory of its own, recycled from earlier blocks, so the steady state
 * allocates nothing (the pool keeps as many buffers as were ever in flight
 * at once: queue.buffering.max.messages / batch size at most). The offsets token stays the message's opaque: the block
 * is found from the payload address (reports arrive about in produce order,
 * and the oldest block is looked at first).
 *
 * Threads: a pool belongs to one producer's poll thread (the worker); it
 * must be freed only after that producer is destroyed (librdkafka may read
 * payloads until then).
 */
#ifndef KS_KAFKA_PAYLOADS_H
#define KS_KAFKA_PAYLOADS_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

typedef struct ks_payloads ks_payloads_t;
typedef struct ks_payload_block ks_payload_block_t;

ks_payloads_t *ks_payloads_new(void);
/* Frees every block, held or not: only once the producer is destroyed. */
void ks_payloads_free(ks_payloads_t *pl);

/* Starts holding buf's memory for records about to be produced from it;
 * `produce_ns` (a monotonic stamp) is returned by ks_payloads_release, for
 * the produce-to-acknowledgement latency. buf must not grow or be reset
 * until ks_payloads_end. */
ks_payload_block_t *ks_payloads_begin(ks_payloads_t *pl, ks_buf_t *buf, int64_t produce_ns);
/* One more record produced (accepted by librdkafka) from the block. */
void ks_payloads_ref(ks_payload_block_t *blk);
/* The batch is done producing from buf: if records are still in flight,
 * buf gets other memory (empty, recycled) and the block keeps the old one;
 * otherwise buf keeps its memory and the block is reused. */
void ks_payloads_end(ks_payloads_t *pl, ks_payload_block_t *blk, ks_buf_t *buf);
/* For a delivery report (any outcome: librdkafka is done with the payload
 * once it is reported): drops the reference of the block m's payload is in.
 * Returns 1 and sets *produce_ns if it was in a block, 0 if not (a record
 * produced another way). Call it after anything that reads m->payload. */
int ks_payloads_release(ks_payloads_t *pl, const rd_kafka_message_t *m, int64_t *produce_ns);
/* Blocks holding records in flight (tests, metrics). */
size_t ks_payloads_held(const ks_payloads_t *pl);

#endif
