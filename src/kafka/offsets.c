/*
 * offsets.c - commit watermarks from out-of-order acknowledgements (see
 * offsets.h).
 *
 * Each partition has a ring of in-flight entries {offset, done} in consumption
 * order; entry k has sequence number head_seq + k. A token packs
 * {tracker slot (12 bits), slot generation (20 bits), sequence (32 bits)}, so
 * an acknowledgement finds its entry in O(1) without any pointer into memory
 * that may have moved or been freed. A slot whose generation would wrap is
 * retired instead of reused, so a report from a long-gone assignment can
 * never acknowledge a current event; the sequence may wrap (it is compared
 * modulo 2^32 within the at most 2^32 - 1 events in flight).
 */
#include "kafka/offsets.h"
#include "base/common.h"

#include <stdlib.h>
#include <string.h>

#define SLOT_BITS 12
#define GEN_BITS  20
#define SEQ_BITS  32
/* a token stores slot + 1 (0 is never a token) in SLOT_BITS bits: the last
 * index must still fit, or the token would wrap into the generation bits */
#define MAX_SLOTS ((1u << SLOT_BITS) - 1)
#define SEQ_MASK  ((UINT64_C(1) << SEQ_BITS) - 1)

typedef struct entry {
    int64_t offset;
    int64_t stamp;
    int done;
    int hold;      /* a hold (ks_offsets_hold), not a consumed event */
} entry_t;

typedef struct track {
    int active;
    int retired;          /* its generations are used up: never assigned again */
    char *topic;
    int32_t partition;
    uint32_t gen;
    entry_t *ring;
    size_t cap, head, count;
    uint64_t head_seq;    /* sequence number of ring[head] */
    int64_t next_offset;  /* last consumed + 1, or -1 before the first event */
    int64_t committed;    /* last committed watermark, -1 = none */
    int64_t first_offset; /* the first offset tracked since assignment, -1 = none */
    size_t open_holds;    /* holds in the ring not yet acknowledged */
} track_t;

struct ks_offsets {
    track_t *slots;
    size_t n_slots;
    size_t last_hit;
    uint64_t in_flight;
};

ks_offsets_t *ks_offsets_new(void)
{
    return ks_xcalloc(1, sizeof(ks_offsets_t));
}

static void track_clear(track_t *t)
{
    free(t->topic);
    free(t->ring);
    t->topic = NULL;
    t->ring = NULL;
    t->cap = t->head = t->count = 0;
    t->open_holds = 0;
    t->active = 0;
    if (++t->gen == (1u << GEN_BITS))
        t->retired = 1;
}

void ks_offsets_free(ks_offsets_t *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->n_slots; i++)
        track_clear(&o->slots[i]);
    free(o->slots);
    free(o);
}

static track_t *find(ks_offsets_t *o, const char *topic, int32_t partition)
{
    if (o->last_hit < o->n_slots) {
        track_t *t = &o->slots[o->last_hit];
        if (t->active && t->partition == partition && strcmp(t->topic, topic) == 0)
            return t;
    }
    for (size_t i = 0; i < o->n_slots; i++) {
        track_t *t = &o->slots[i];
        if (t->active && t->partition == partition && strcmp(t->topic, topic) == 0) {
            o->last_hit = i;
            return t;
        }
    }
    return NULL;
}

static track_t *assign(ks_offsets_t *o, const char *topic, int32_t partition)
{
    track_t *t = find(o, topic, partition);
    if (t)
        return t;
    size_t i;
    for (i = 0; i < o->n_slots && (o->slots[i].active || o->slots[i].retired); i++)
        ;
    if (i == o->n_slots) {
        if (o->n_slots == MAX_SLOTS)
            abort(); /* 4095 partitions per worker: far beyond any sane assignment */
        o->slots = ks_xrealloc(o->slots, (o->n_slots + 1) * sizeof(*o->slots));
        memset(&o->slots[o->n_slots], 0, sizeof(track_t));
        o->n_slots++;
    }
    t = &o->slots[i];
    t->active = 1;
    t->topic = ks_xstrdup(topic);
    t->partition = partition;
    t->next_offset = -1;
    t->committed = -1;
    t->first_offset = -1;
    t->head_seq = 0;
    o->last_hit = i;
    return t;
}

void ks_offsets_assign(ks_offsets_t *o, const char *topic, int32_t partition)
{
    assign(o, topic, partition);
}

void ks_offsets_revoke(ks_offsets_t *o, const char *topic, int32_t partition)
{
    track_t *t = find(o, topic, partition);
    if (!t)
        return;
    for (size_t k = 0; k < t->count; k++)
        if (!t->ring[(t->head + k) % t->cap].done)
            o->in_flight--;
    track_clear(t);
}

void ks_offsets_revoke_all(ks_offsets_t *o)
{
    for (size_t i = 0; i < o->n_slots; i++)
        if (o->slots[i].active)
            ks_offsets_revoke(o, o->slots[i].topic, o->slots[i].partition);
}

static uint64_t push(ks_offsets_t *o, const char *topic, int32_t partition, int64_t offset,
                     int64_t stamp, int hold)
{
    track_t *t = assign(o, topic, partition);
    if (t->count == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 1024;
        entry_t *nr = ks_xmalloc(ncap * sizeof(*nr));
        for (size_t k = 0; k < t->count; k++)
            nr[k] = t->ring[(t->head + k) % t->cap];
        free(t->ring);
        t->ring = nr;
        t->cap = ncap;
        t->head = 0;
    }
    uint64_t seq = (t->head_seq + t->count) & SEQ_MASK;
    t->ring[(t->head + t->count) % t->cap] = (entry_t){offset, stamp, 0, hold};
    t->count++;
    if (hold) {
        t->open_holds++;
    } else {
        t->next_offset = offset + 1;
        if (t->first_offset < 0)
            t->first_offset = offset;
    }
    o->in_flight++;
    uint64_t slot = (uint64_t)(t - o->slots);
    return ((slot + 1) << (GEN_BITS + SEQ_BITS)) | ((uint64_t)t->gen << SEQ_BITS) | seq;
}

uint64_t ks_offsets_track(ks_offsets_t *o, const char *topic, int32_t partition, int64_t offset,
                          int64_t stamp)
{
    return push(o, topic, partition, offset, stamp, 0);
}

uint64_t ks_offsets_hold(ks_offsets_t *o, const char *topic, int32_t partition, int64_t offset)
{
    return push(o, topic, partition, offset, 0, 1);
}

/* The in-flight entry of a token, or NULL (revoked since, or already done). */
static entry_t *lookup(ks_offsets_t *o, uint64_t token, track_t **track)
{
    uint64_t slot = (token >> (GEN_BITS + SEQ_BITS));
    uint32_t gen = (uint32_t)((token >> SEQ_BITS) & ((1u << GEN_BITS) - 1));
    uint64_t seq = token & SEQ_MASK;
    if (slot == 0 || slot > o->n_slots)
        return NULL;
    track_t *t = &o->slots[slot - 1];
    if (!t->active || t->gen != gen)
        return NULL; /* partition revoked since: its final commit already happened */
    uint64_t k = (seq - t->head_seq) & SEQ_MASK;
    if (k >= t->count)
        return NULL;
    entry_t *e = &t->ring[(t->head + k) % t->cap];
    *track = t;
    return e->done ? NULL : e;
}

int ks_offsets_source(ks_offsets_t *o, uint64_t token, const char **topic, int32_t *partition,
                      int64_t *offset)
{
    track_t *t = NULL;
    entry_t *e = lookup(o, token, &t);
    if (!e)
        return 0;
    *topic = t->topic;
    *partition = t->partition;
    *offset = e->offset;
    return 1;
}

int ks_offsets_ack(ks_offsets_t *o, uint64_t token, int64_t *stamp)
{
    track_t *t = NULL;
    entry_t *e = lookup(o, token, &t);
    if (!e)
        return 0;
    e->done = 1;
    if (stamp)
        *stamp = e->stamp;
    if (e->hold)
        t->open_holds--;
    o->in_flight--;
    while (t->count && t->ring[t->head].done) { /* advance past the done prefix */
        t->head = (t->head + 1) % t->cap;
        t->head_seq = (t->head_seq + 1) & SEQ_MASK;
        t->count--;
    }
    return 1;
}

static int64_t watermark(const track_t *t)
{
    int64_t w = t->count ? t->ring[t->head].offset : t->next_offset;
    /* holds sit in the ring after the events they cover: look for them */
    for (size_t k = 0; t->open_holds && k < t->count; k++) {
        const entry_t *e = &t->ring[(t->head + k) % t->cap];
        if (e->hold && !e->done && e->offset < w)
            w = e->offset;
    }
    return w;
}

rd_kafka_topic_partition_list_t *ks_offsets_committable(ks_offsets_t *o, int all)
{
    rd_kafka_topic_partition_list_t *list = NULL;
    for (size_t i = 0; i < o->n_slots; i++) {
        track_t *t = &o->slots[i];
        if (!t->active)
            continue;
        int64_t w = watermark(t);
        if (w < 0 || (!all && w == t->committed))
            continue;
        if (!list)
            list = rd_kafka_topic_partition_list_new(8);
        rd_kafka_topic_partition_list_add(list, t->topic, t->partition)->offset = w;
    }
    return list;
}

rd_kafka_topic_partition_list_t *ks_offsets_rewind_points(ks_offsets_t *o)
{
    rd_kafka_topic_partition_list_t *list = NULL;
    for (size_t i = 0; i < o->n_slots; i++) {
        track_t *t = &o->slots[i];
        int64_t at = t->committed >= 0 ? t->committed : t->first_offset;
        if (!t->active || at < 0)
            continue;
        if (!list)
            list = rd_kafka_topic_partition_list_new(8);
        rd_kafka_topic_partition_list_add(list, t->topic, t->partition)->offset = at;
    }
    return list;
}

void ks_offsets_committed(ks_offsets_t *o, const rd_kafka_topic_partition_list_t *list)
{
    for (int i = 0; list && i < list->cnt; i++) {
        const rd_kafka_topic_partition_t *p = &list->elems[i];
        if (p->err)
            continue;
        track_t *t = find(o, p->topic, p->partition);
        if (t && p->offset > t->committed)
            t->committed = p->offset;
    }
}

uint64_t ks_offsets_in_flight(const ks_offsets_t *o)
{
    return o->in_flight;
}
