/*
 * deploy.h - model deployments as data: the messages of the deployments
 * topic (model.deployments_topic, docs/deployments.md) and the routing state
 * they lead to, as pure functions.
 *
 * Every replica reads the whole topic from the beginning and folds the
 * messages, in offset order, through ks_deploy_plan(); since the fold is a
 * pure function of the messages (and of the model files, which the runtime
 * checks before it accepts a plan: engine/deployments.c), every replica ends
 * in the same state, also after a restart, and `kscore deployments` prints
 * that state by running the same fold.
 *
 * A message (JSON object):
 *   {"action": "shadow" | "canary" | "ab" | "promote" | "rollback" | "retire",
 *    "version": "fraud-v7", "path": "/models/fraud-v7.json", "sha256": "<64 hex>",
 *    "percent": 10,                                   (canary)
 *    "variants": {"fraud-v6": 50, "fraud-v7": 50},    (ab)
 *    "reason": "...", "by": "...", "at": "..."}       (informational)
 * `path` and `sha256` go together; they register (or re-register) the model
 * file of `version`. A version named without a path must have been
 * registered by an earlier message (or be the champion from model.path).
 *
 * Routing: variant i serves the rows whose key hashes (murmur3 of the key
 * bytes with the state's seed, modulo KS_DEPLOY_BUCKETS) below its
 * cumulative share, in the order of `variant[]`. A canary comes first, so
 * raising its percent keeps the keys it already had.
 *
 * The state is a plain value (fixed-size arrays, no pointers): copying it is
 * `next = *cur`. Any thread; no globals.
 */
#ifndef KS_DEPLOY_H
#define KS_DEPLOY_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define KS_DEPLOY_VERSION_MAX 128  /* bytes of a version, NUL included */
#define KS_DEPLOY_PATH_MAX 1024
#define KS_DEPLOY_VARIANTS_MAX 4   /* routed variants, the champion's share included */
#define KS_DEPLOY_MODELS_MAX 64    /* registered versions (oldest forgotten first) */
#define KS_DEPLOY_HISTORY_MAX 16   /* previous champions kept for rollback */
#define KS_DEPLOY_BUCKETS 10000    /* routing resolution: 0.01 % */

typedef enum {
    KS_DEPLOY_SHADOW,
    KS_DEPLOY_CANARY,
    KS_DEPLOY_AB,
    KS_DEPLOY_PROMOTE,
    KS_DEPLOY_ROLLBACK,
    KS_DEPLOY_RETIRE,
} ks_deploy_action_t;

const char *ks_deploy_action_name(ks_deploy_action_t a);

/* Copies src into dst[n], cut to fit (the fixed-size fields below). */
void ks_deploy_copy(char *dst, size_t n, const char *src);

typedef struct ks_deploy_share {
    char version[KS_DEPLOY_VERSION_MAX];
    int buckets;               /* share in KS_DEPLOY_BUCKETS */
} ks_deploy_share_t;

/* One parsed message. Strings are empty when absent. */
typedef struct ks_deploy_msg {
    ks_deploy_action_t action;
    char version[KS_DEPLOY_VERSION_MAX];
    char path[KS_DEPLOY_PATH_MAX];
    char sha256[65];
    int buckets;               /* canary: percent * 100 */
    ks_deploy_share_t variants[KS_DEPLOY_VARIANTS_MAX];
    size_t n_variants;         /* ab */
    char reason[256];
} ks_deploy_msg_t;

/* Parses a message. Returns KS_OK, or KS_EINVAL with a sentence naming what
 * is wrong (the message is then refused by every replica alike). */
int ks_deploy_msg_parse(const char *buf, size_t len, ks_deploy_msg_t *m, char *errbuf,
                        size_t errsize);
/* Appends the message as JSON (what `kscore deploy` writes). */
void ks_deploy_msg_json(const ks_deploy_msg_t *m, ks_buf_t *out);

/* A registered model file. */
typedef struct ks_deploy_model {
    char version[KS_DEPLOY_VERSION_MAX];
    char path[KS_DEPLOY_PATH_MAX];
    char sha256[65];           /* "" for the champion from model.path */
} ks_deploy_model_t;

/* One routed variant: "champion", "canary", or "a".."d" (A/B, in the order
 * of the message's variants). */
typedef struct ks_deploy_variant {
    char name[16];
    char version[KS_DEPLOY_VERSION_MAX];
    int buckets;
} ks_deploy_variant_t;

typedef struct ks_deploy_state {
    char champion[KS_DEPLOY_VERSION_MAX];
    ks_deploy_variant_t variant[KS_DEPLOY_VARIANTS_MAX];
    size_t n_variants;         /* 0: the champion takes every row */
    uint32_t seed;             /* of the routing hash */
    char shadow[KS_DEPLOY_VERSION_MAX]; /* "" = none */
    char history[KS_DEPLOY_HISTORY_MAX][KS_DEPLOY_VERSION_MAX]; /* earlier champions */
    size_t n_history;
    ks_deploy_model_t model[KS_DEPLOY_MODELS_MAX];
    size_t n_models;
    long long applied, refused; /* messages */
    long long last_offset;     /* of the last message folded in, -1 before */
} ks_deploy_state_t;

/* The initial state: `version` (the model of model.path, at `path`) is the
 * champion and takes every row. */
void ks_deploy_state_init(ks_deploy_state_t *s, const char *version, const char *path);

/* Computes the state after message `m` into *next (which may not alias
 * cur). Returns KS_OK, or KS_EINVAL when the message cannot apply to this
 * state (unknown version, retiring the champion, ...), with the reason; a
 * message that changes nothing (rolling back a version no longer routed,
 * e.g. a second replica's guard rollback) returns KS_OK with *next = *cur.
 * The caller still has to check the model files of the versions that
 * ks_deploy_versions() lists before it adopts *next. */
int ks_deploy_plan(const ks_deploy_state_t *cur, const ks_deploy_msg_t *m,
                   ks_deploy_state_t *next, char *errbuf, size_t errsize);

/* The registered model of `version`, or NULL. */
const ks_deploy_model_t *ks_deploy_find(const ks_deploy_state_t *s, const char *version);

/* The versions the state serves or shadows, champion first, each once;
 * returns how many (at most KS_DEPLOY_VARIANTS_MAX + 2). */
size_t ks_deploy_versions(const ks_deploy_state_t *s, const char **out, size_t max);

/* The variant index (into s->variant) that serves a row with this key, for
 * a state with n_variants > 0. Pure: any thread, any replica. */
size_t ks_deploy_route(const ks_deploy_state_t *s, const void *key, size_t len);
/* The same from the parts the hot path keeps: seed and cumulative bounds. */
static inline size_t ks_deploy_pick(uint32_t hash, const uint32_t *upto, size_t n)
{
    uint32_t bucket = hash % KS_DEPLOY_BUCKETS;
    for (size_t i = 0; i + 1 < n; i++)
        if (bucket < upto[i])
            return i;
    return n - 1;
}

/* Appends the state as JSON: {"champion":..., "routing":[{"variant", "model_version",
 * "percent"}...], "shadow":..., "history":[...], "models":[...], "applied":N,
 * "refused":N, "last_offset":N}. */
void ks_deploy_state_json(const ks_deploy_state_t *s, ks_buf_t *out);

#endif
