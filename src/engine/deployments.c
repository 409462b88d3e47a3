/*
 * deployments.c - model lifecycle on the stream (see deployments.h and
 * docs/deployments.md).
 *
 * Every instance reads model.deployments_topic from the beginning with a
 * consumer of its own (partitions assigned by hand, no group membership, no
 * commits) and folds the messages in offset order through ks_deploy_plan
 * (deploy.h). A plan goes into service only after every model it names
 * that is not in service yet has been checked: the file is readable, its
 * bytes match the message's sha256, it loads, it fits the configured
 * features, it has the champion's outputs (task and classes), and a warm-up
 * prediction on fixed rows and recent events is finite (ks_serving_new).
 * Otherwise the message is refused: the routing stays as it was, and a log
 * line, kscore_deployments_refused_total{reason} and a status record
 * (model.deployments_status_topic) say why. The same fold, without swaps,
 * is `kscore deployments` and the dry run of `kscore deploy`.
 *
 * The routing (engine/pipeline.h ks_routing_t) is built from the state and
 * the checked models and swapped in whole between batches; the batches in
 * flight keep the old one until they are released.
 *
 * The guard compares each candidate (canary, A/B variant that is not the
 * champion, shadow) with the champion over guard.window, from snapshots of
 * their per-version counters and histograms (engine/guard.h). A breach
 * rolls the candidate back at once on this instance and writes the same
 * rollback message to the deployments topic, so every replica (and every
 * restart) applies it too; a second replica's identical rollback changes
 * nothing (deploy.h).
 *
 * Threads: the fold runs on the main thread while starting (and in the
 * CLI), then on the deployments thread; `state_lock` guards what the status
 * page reads.
 */
#include "engine/deployments.h"
#include "base/common.h"
#include "base/log.h"
#include "base/sha256.h"
#include "engine/guard.h"
#include "engine/pipeline.h"
#include "kafka/client.h"
#include "kscore/kscore.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_LOADED (KS_DEPLOY_VARIANTS_MAX + 2)
#define GUARD_RING 1024

/* A checked model of a version in service. */
typedef struct loaded {
    char version[KS_DEPLOY_VERSION_MAX];
    char path[KS_DEPLOY_PATH_MAX];
    char sha256[65];
    ks_serving_t *sv;          /* a reference */
} loaded_t;

/* The guard's ring of snapshots of one routing. */
typedef struct guard_slot {
    const ks_route_variant_t *var;
    ks_guard_snap_t *ring;     /* GUARD_RING */
} guard_slot_t;

typedef struct ks_deployments {
    struct ks_pipeline *p;
    const struct ks_config *cfg;
    char instance[128];
    pthread_mutex_t state_lock;
    ks_deploy_state_t state;   /* in service */
    ks_deploy_state_t next;    /* scratch for a plan */
    loaded_t loaded[MAX_LOADED];
    size_t n_loaded;

    rd_kafka_t *consumer, *producer;
    rd_kafka_topic_t *status_rkt, *deploy_rkt;
    ks_kafka_ctx_t kctx;
    pthread_t thread;
    int started;
    atomic_int stop;
    rd_kafka_resp_err_t delivery_err; /* kscore deploy: the message's delivery report */

    ks_counter_t *applied, *unchanged;
    ks_metric_family_t *refused, *rollbacks, *share;
    ks_gauge_t *last_offset;

    /* guard */
    ks_guard_limits_t limits;
    int guard_on;
    guard_slot_t slot[MAX_LOADED];
    size_t n_slots;
    const ks_routing_t *guarded;   /* the routing the ring is about */
    size_t ring_len, ring_head, ring_n;
    int64_t guard_step_ns, guard_next_ns;
} ks_deployments_t;

/* ---- checking models ---------------------------------------------------- */

static const loaded_t *find_loaded(const loaded_t *l, size_t n, const ks_deploy_model_t *md)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(l[i].version, md->version) == 0 && strcmp(l[i].path, md->path) == 0 &&
            strcmp(l[i].sha256, md->sha256) == 0)
            return &l[i];
    return NULL;
}

/* Reads, checks and warms up the model of `md`; *why names a refusal. */
static int check_model(ks_deployments_t *d, const ks_deploy_model_t *md,
                       const ks_serving_t *champion, ks_serving_t **out, const char **why,
                       char *errbuf, size_t errsize)
{
    char *buf = NULL, err[512];
    size_t len = 0;
    ks_model_t *m = NULL;
    int rc;
    *out = NULL;
    if ((rc = ks_read_file(md->path, &buf, &len, err, sizeof(err)))) {
        *why = "unreadable";
        rc = ks_err(errbuf, errsize, KS_EIO, "%s: cannot read %s: %s", md->version, md->path, err);
        goto out;
    }
    if (md->sha256[0]) {
        uint8_t dig[32];
        char hex[65];
        ks_sha256(buf, len, dig);
        ks_sha256_hex(dig, 32, hex);
        if (strcmp(hex, md->sha256) != 0) {
            *why = "sha256_mismatch";
            rc = ks_err(errbuf, errsize, KS_EINVAL,
                        "%s: %s has sha256 %s, the deployment says %s (a different or partly "
                        "copied file)", md->version, md->path, hex, md->sha256);
            goto out;
        }
    }
    if ((rc = ks_model_load_buffer(md->path, buf, len, &m, err, sizeof(err)))) {
        *why = "load_failed";
        rc = ks_err(errbuf, errsize, KS_EINVAL, "%s: %s", md->version, err);
        goto out;
    }
    /* the deployment's version names the model in records and metrics */
    free(m->version);
    m->version = ks_xstrdup(md->version);
    if (champion) {
        const ks_model_t *c = champion->model;
        int same = c->task == m->task && c->n_outputs == m->n_outputs &&
                   c->n_classes == m->n_classes;
        for (size_t k = 0; same && k < m->n_classes; k++)
            same = strcmp(c->class_labels[k], m->class_labels[k]) == 0;
        if (!same) {
            *why = "incompatible_outputs";
            rc = ks_err(errbuf, errsize, KS_EINVAL,
                        "%s: its outputs (task, classes) differ from the champion %s's; routed "
                        "and shadow models must predict the same outputs", md->version,
                        c->version);
            goto out;
        }
    }
    if ((rc = ks_serving_new(d->p, m, out, why, err, sizeof(err)))) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "%s: %s", md->version, err);
        goto out;
    }
    m = NULL; /* the serving has it */
out:
    if (m)
        ks_model_unref(m);
    free(buf);
    return rc;
}

/* Checks the models of state `s` that `d->loaded` does not hold; fills
 * `l` with the models of s (references). */
static int check_state(ks_deployments_t *d, const ks_deploy_state_t *s, loaded_t *l,
                       size_t *n_out, const char **why, char *errbuf, size_t errsize)
{
    const char *ver[MAX_LOADED];
    size_t nv = ks_deploy_versions(s, ver, MAX_LOADED), n = 0;
    int rc = KS_OK;
    for (size_t i = 0; i < nv; i++) {
        const ks_deploy_model_t *md = ks_deploy_find(s, ver[i]);
        const loaded_t *have = md ? find_loaded(d->loaded, d->n_loaded, md) : NULL;
        ks_serving_t *sv = NULL;
        if (!md) { /* plan() only names registered versions */
            *why = "not_applicable";
            rc = ks_err(errbuf, errsize, KS_EINVAL, "version %s is not registered", ver[i]);
            break;
        }
        if (have) {
            sv = have->sv;
            atomic_fetch_add(&sv->refs, 1);
        } else if ((rc = check_model(d, md, n ? l[0].sv : NULL, &sv, why, errbuf, errsize))) {
            break;
        }
        if (have && n) { /* a model in service, under a new champion: same outputs? */
            const ks_model_t *c = l[0].sv->model, *m = sv->model;
            if (c->n_outputs != m->n_outputs || c->task != m->task) {
                ks_serving_release(sv);
                *why = "incompatible_outputs";
                rc = ks_err(errbuf, errsize, KS_EINVAL,
                            "%s: its outputs differ from the new champion %s's", md->version,
                            c->version);
                break;
            }
        }
        ks_deploy_copy(l[n].version, sizeof(l[n].version), md->version);
        ks_deploy_copy(l[n].path, sizeof(l[n].path), md->path);
        ks_deploy_copy(l[n].sha256, sizeof(l[n].sha256), md->sha256);
        l[n++].sv = sv;
    }
    if (rc) {
        for (size_t i = 0; i < n; i++)
            ks_serving_release(l[i].sv);
        n = 0;
    }
    *n_out = n;
    return rc;
}

/* ---- the routing -------------------------------------------------------- */

static const char *const variant_names[] = {"champion", "canary", "a", "b", "c", "d", "shadow"};

static const char *static_name(const char *name)
{
    for (size_t i = 0; i < KS_ARRAY_LEN(variant_names); i++)
        if (strcmp(variant_names[i], name) == 0)
            return variant_names[i];
    return "champion";
}

static ks_serving_t *serving_of(const loaded_t *l, size_t n, const char *version)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(l[i].version, version) == 0) {
            atomic_fetch_add(&l[i].sv->refs, 1);
            return l[i].sv;
        }
    return NULL;
}

static void variant_metrics(ks_route_variant_t *v)
{
    const char *lv[] = {v->sv->model->version, v->name};
    v->predictions = ks_metrics_counter_at(
        ks_metrics_counter("kscore_model_predictions_total",
                           "Rows scored, per model version and routing variant.",
                           "model_version,variant"), lv);
    v->errors = ks_metrics_counter_at(
        ks_metrics_counter("kscore_model_errors_total",
                           "Rows a model failed to score (failed call or non-finite output), per "
                           "model version and routing variant.", "model_version,variant"), lv);
    v->latency = ks_metrics_histogram_at(
        ks_metrics_histogram("kscore_model_latency_seconds",
                             "Model compute time (thread CPU) per scored row: the time of the "
                             "call that scored it, per model version and routing variant.",
                             "model_version,variant",
                             ks_buckets_latency_seconds, ks_buckets_latency_seconds_n), lv);
}

/* The routing of state s, from its checked models l (l[0] is the champion). */
static ks_routing_t *routing_build(ks_deployments_t *d, const ks_deploy_state_t *s,
                                   const loaded_t *l, size_t n_l)
{
    ks_routing_t *rt = ks_xcalloc(1, sizeof(*rt));
    atomic_init(&rt->refs, 1);
    rt->champion_sv = serving_of(l, n_l, s->champion);
    rt->seed = s->seed;
    if (s->n_variants == 0) {
        rt->n = 1;
        rt->v[0].sv = serving_of(l, n_l, s->champion);
        rt->v[0].name = variant_names[0];
    }
    uint32_t acc = 0;
    for (size_t i = 0; i < s->n_variants; i++) {
        rt->v[i].sv = serving_of(l, n_l, s->variant[i].version);
        rt->v[i].name = static_name(s->variant[i].name);
        rt->upto[i] = acc += (uint32_t)s->variant[i].buckets;
        if (strcmp(s->variant[i].version, s->champion) == 0)
            rt->champion = i;
        rt->n++;
    }
    ks_metrics_gauge_reset(d->share);
    for (size_t i = 0; i < rt->n; i++) {
        variant_metrics(&rt->v[i]);
        const char *lv[] = {rt->v[i].sv->model->version, rt->v[i].name};
        ks_gauge_add(ks_metrics_gauge_at(d->share, lv),
                     s->n_variants ? s->variant[i].buckets / (double)KS_DEPLOY_BUCKETS : 1.0);
    }
    if (s->shadow[0]) {
        rt->shadow.sv = serving_of(l, n_l, s->shadow);
        rt->shadow.name = variant_names[6];
        variant_metrics(&rt->shadow);
        const char *lv[] = {s->shadow};
        rt->shadow_compared = ks_metrics_counter_at(
            ks_metrics_counter("kscore_shadow_compared_total",
                               "Rows scored by both the shadow model and the one serving them.",
                               "model_version"), lv);
        rt->shadow_agreed = ks_metrics_counter_at(
            ks_metrics_counter("kscore_shadow_agreed_total",
                               "Compared rows where the shadow predicts the served label "
                               "(classifiers).", "model_version"), lv);
        static const double delta_bounds[] = {1e-9, 1e-6, 1e-4, 1e-3, 0.005, 0.01, 0.02, 0.05,
                                              0.1,  0.2,  0.3,  0.5,  0.75,  1,    10,   100};
        rt->shadow_delta = ks_metrics_histogram_at(
            ks_metrics_histogram("kscore_shadow_abs_delta_score",
                                 "|shadow score - served score| per compared row.",
                                 "model_version", delta_bounds, KS_ARRAY_LEN(delta_bounds)), lv);
        const char *sv[] = {s->shadow, "shadow"};
        ks_gauge_set(ks_metrics_gauge_at(d->share, sv), 0);
    }
    return rt;
}

/* ---- folding messages --------------------------------------------------- */

static void guard_follow(ks_deployments_t *d, const ks_routing_t *rt);

enum { FOLD_APPLIED, FOLD_UNCHANGED, FOLD_REFUSED };

static int same_routing(const ks_deploy_state_t *a, const ks_deploy_state_t *b)
{
    if (strcmp(a->champion, b->champion) != 0 || strcmp(a->shadow, b->shadow) != 0 ||
        a->n_variants != b->n_variants || a->seed != b->seed)
        return 0;
    for (size_t i = 0; i < a->n_variants; i++)
        if (strcmp(a->variant[i].version, b->variant[i].version) != 0 ||
            a->variant[i].buckets != b->variant[i].buckets)
            return 0;
    return 1;
}

/* Adopts d->next with its checked models l: into service when `swap`. */
static void adopt(ks_deployments_t *d, loaded_t *l, size_t n_l, int swap)
{
    if (swap) {
        ks_routing_t *rt = routing_build(d, &d->next, l, n_l);
        /* the guard's window starts now, before any batch uses the routing:
         * a burst scored before its next tick still counts */
        guard_follow(d, rt);
        ks_pipeline_set_routing(d->p, rt);
    }
    for (size_t i = 0; i < d->n_loaded; i++)
        ks_serving_release(d->loaded[i].sv);
    memcpy(d->loaded, l, n_l * sizeof(*l));
    d->n_loaded = n_l;
    pthread_mutex_lock(&d->state_lock);
    d->state = d->next;
    pthread_mutex_unlock(&d->state_lock);
}

/* Folds one message (offset `offset`); returns FOLD_*, with the reason of a
 * refusal in *why and a sentence in errbuf. */
static int fold(ks_deployments_t *d, const ks_deploy_msg_t *m, long long offset, int swap,
                const char **why, char *errbuf, size_t errsize)
{
    loaded_t l[MAX_LOADED];
    size_t n_l = 0;
    *why = NULL;
    errbuf[0] = '\0';
    if (ks_deploy_plan(&d->state, m, &d->next, errbuf, errsize)) {
        *why = "not_applicable";
        goto refused;
    }
    d->next.last_offset = offset;
    if (same_routing(&d->state, &d->next)) {
        d->next.applied++;
        pthread_mutex_lock(&d->state_lock);
        d->state = d->next; /* registrations and counters */
        pthread_mutex_unlock(&d->state_lock);
        return FOLD_UNCHANGED;
    }
    if (check_state(d, &d->next, l, &n_l, why, errbuf, errsize))
        goto refused;
    d->next.applied++;
    adopt(d, l, n_l, swap);
    return FOLD_APPLIED;
refused:
    pthread_mutex_lock(&d->state_lock);
    d->state.refused++;
    d->state.last_offset = offset;
    pthread_mutex_unlock(&d->state_lock);
    return FOLD_REFUSED;
}

/* Log line, metric and status record of one folded message. */
static void report(ks_deployments_t *d, long long offset, const ks_deploy_msg_t *m, int result,
                   const char *why, const char *err, const char *guard)
{
    const char *res = guard ? "rolled_back" : result == FOLD_APPLIED ? "applied"
                    : result == FOLD_UNCHANGED ? "unchanged" : "refused";
    const char *action = m ? ks_deploy_action_name(m->action) : "?";
    const char *version = m && m->version[0] ? m->version : "-";
    if (result == FOLD_REFUSED) {
        const char *lv[] = {why ? why : "invalid_message"};
        ks_counter_add(ks_metrics_counter_at(d->refused, lv), 1);
        ks_error("deployment at offset %lld (%s %s) refused, routing unchanged: %s", offset,
                 action, version, err);
    } else if (guard) {
        const char *lv[] = {guard};
        ks_counter_add(ks_metrics_counter_at(d->rollbacks, lv), 1);
        ks_error("guard: %s rolled back: %s", version, err);
    } else {
        ks_counter_add(result == FOLD_APPLIED ? d->applied : d->unchanged, 1);
        ks_info("deployment at offset %lld (%s %s) %s: champion %s%s%s", offset, action, version,
                res, d->state.champion, d->state.n_variants ? ", split routing" : "",
                d->state.shadow[0] ? ", with a shadow" : "");
    }
    ks_gauge_set(d->last_offset, (double)offset);
    if (!d->status_rkt)
        return;
    ks_buf_t b = {0};
    ks_buf_puts(&b, "{\"instance\":");
    ks_buf_json_string(&b, d->instance, strlen(d->instance));
    ks_buf_printf(&b, ",\"offset\":%lld,\"action\":\"%s\",\"version\":", offset, action);
    ks_buf_json_string(&b, version, strlen(version));
    ks_buf_printf(&b, ",\"result\":\"%s\"", res);
    if (why || guard) {
        ks_buf_printf(&b, ",\"reason\":\"%s\",\"message\":", guard ? guard : why);
        ks_buf_json_string(&b, err, strlen(err));
    }
    ks_buf_puts(&b, ",\"state\":");
    pthread_mutex_lock(&d->state_lock);
    ks_deploy_state_json(&d->state, &b);
    pthread_mutex_unlock(&d->state_lock);
    ks_buf_puts(&b, ",\"at\":\"");
    ks_buf_iso8601_ms(&b, ks_now_wall_ms());
    ks_buf_puts(&b, "\"}");
    rd_kafka_resp_err_t e = rd_kafka_producev(
        d->producer, RD_KAFKA_V_RKT(d->status_rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(d->instance, strlen(d->instance)), RD_KAFKA_V_VALUE(b.data, b.len),
        RD_KAFKA_V_END);
    if (e)
        ks_warn("deployments: cannot write a status record to %s: %s",
                rd_kafka_topic_name(d->status_rkt), rd_kafka_err2str(e));
    ks_buf_free(&b);
}

/* Parses and folds one message; returns FOLD_* (a message that does not
 * parse is refused with why "invalid_message"). */
static int fold_json(ks_deployments_t *d, const char *buf, size_t len, long long offset,
                     int swap, ks_deploy_msg_t *m, const char **why, char *err, size_t errsize)
{
    if (ks_deploy_msg_parse(buf, len, m, err, errsize)) {
        *why = "invalid_message";
        pthread_mutex_lock(&d->state_lock);
        d->state.refused++;
        d->state.last_offset = offset;
        pthread_mutex_unlock(&d->state_lock);
        return FOLD_REFUSED;
    }
    return fold(d, m, offset, swap, why, err, errsize);
}

/* Folds one record of the topic: log line, metric, status record (unless
 * quiet), a trace line per message (kscore deployments). */
static int fold_record(ks_deployments_t *d, const rd_kafka_message_t *rm, int swap, int quiet,
                       FILE *trace)
{
    ks_deploy_msg_t m;
    char err[1024];
    const char *why = NULL;
    int result = fold_json(d, rm->payload ? rm->payload : "", rm->len, rm->offset, swap, &m,
                           &why, err, sizeof(err));
    int parsed = !(result == FOLD_REFUSED && !strcmp(why, "invalid_message"));
    if (trace)
        fprintf(trace, "offset %lld: %s %s: %s%s%s\n", (long long)rm->offset,
                parsed ? ks_deploy_action_name(m.action) : "?", parsed && m.version[0] ? m.version : "-",
                result == FOLD_APPLIED ? "applied" : result == FOLD_UNCHANGED ? "unchanged"
                                                                              : "refused (",
                result == FOLD_REFUSED ? why : "", result == FOLD_REFUSED ? ")" : "");
    if (!quiet)
        report(d, rm->offset, parsed ? &m : NULL, result, why, err, NULL);
    return result;
}

int ks_deployments_apply(struct ks_pipeline *p, const char *json, size_t len, long long offset,
                         const char **why, char *errbuf, size_t errsize)
{
    ks_deploy_msg_t m;
    *why = NULL;
    int result = fold_json(p->deploy, json, len, offset, 1, &m, why, errbuf, errsize);
    return result == FOLD_REFUSED ? KS_EINVAL : KS_OK;
}

/* ---- Kafka -------------------------------------------------------------- */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    ks_deployments_t *d = ((ks_kafka_ctx_t *)opaque)->owner;
    if (m->err) {
        d->delivery_err = m->err;
        ks_error("deployments: a record to %s was not delivered: %s", rd_kafka_topic_name(m->rkt),
                 rd_kafka_err2str(m->err));
    }
}

static int make_clients(ks_deployments_t *d, int producer, char *errbuf, size_t errsize)
{
    const struct ks_config *cfg = d->cfg;
    char gid[200];
    int rc;
    snprintf(d->kctx.name, sizeof(d->kctx.name), "deployments");
    d->kctx.worker = -1;
    d->kctx.owner = d;
    d->kctx.errors = d->p->metrics.kafka_errors;
    rd_kafka_conf_t *cc = rd_kafka_conf_new();
    /* a group id only because librdkafka's assign() wants one: this
     * consumer never joins the group and never commits */
    snprintf(gid, sizeof(gid), "kscore-deployments-%s", d->instance);
    if ((rc = ks_config_apply_kafka(cfg, KS_KAFKA_CONSUMER, cc, errbuf, errsize)) ||
        (rc = ks_kafka_conf_set(cc, "group.id", gid, errbuf, errsize)) ||
        (rc = ks_kafka_conf_set(cc, "enable.auto.commit", "false", errbuf, errsize)) ||
        (rc = ks_kafka_conf_set(cc, "enable.auto.offset.store", "false", errbuf, errsize)) ||
        (rc = ks_kafka_conf_set(cc, "enable.partition.eof", "true", errbuf, errsize))) {
        rd_kafka_conf_destroy(cc);
        return rc;
    }
    if ((rc = ks_kafka_client_new(&d->kctx, RD_KAFKA_CONSUMER, cc, &d->consumer, errbuf, errsize)))
        return rc;
    if (!producer)
        return KS_OK;
    rd_kafka_conf_t *pc = rd_kafka_conf_new();
    rd_kafka_conf_set_dr_msg_cb(pc, on_delivery);
    if ((rc = ks_kafka_conf_set(pc, "enable.idempotence", "true", errbuf, errsize)) ||
        (rc = ks_config_apply_kafka(cfg, KS_KAFKA_PRODUCER, pc, errbuf, errsize))) {
        rd_kafka_conf_destroy(pc);
        return rc;
    }
    if ((rc = ks_kafka_client_new(&d->kctx, RD_KAFKA_PRODUCER, pc, &d->producer, errbuf, errsize)))
        return rc;
    d->kctx.producer = d->producer;
    d->deploy_rkt = rd_kafka_topic_new(d->producer, cfg->deployments_topic, NULL);
    if (cfg->deployments_status_topic)
        d->status_rkt = rd_kafka_topic_new(d->producer, cfg->deployments_status_topic, NULL);
    return KS_OK;
}

/* Assigns every partition of the topic from its beginning and reads to the
 * end offsets seen now, folding each message. */
static int catch_up(ks_deployments_t *d, int swap, int quiet, FILE *trace, int timeout_ms,
                    char *errbuf, size_t errsize)
{
    const char *topic = d->cfg->deployments_topic;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(d->consumer, topic, NULL);
    rd_kafka_topic_partition_list_t *parts = NULL;
    int64_t deadline = ks_now_mono_ns() + (int64_t)timeout_ms * 1000000;
    int64_t *high = NULL;
    int rc = KS_OK, n = 0;
    rd_kafka_resp_err_t err = rd_kafka_metadata(d->consumer, 0, rkt, &md, timeout_ms);
    if (err || md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt == 0) {
        rc = ks_err(errbuf, errsize, KS_EKAFKA,
                    "model.deployments_topic %s cannot be read: %s (create it compacted: "
                    "kafka-topics.sh --create --topic %s --partitions 1 --config "
                    "cleanup.policy=compact)", topic,
                    rd_kafka_err2str(err ? err : md && md->topic_cnt ? md->topics[0].err
                                                                     : RD_KAFKA_RESP_ERR__FAIL),
                    topic);
        goto out;
    }
    n = md->topics[0].partition_cnt;
    parts = rd_kafka_topic_partition_list_new(n);
    high = ks_xcalloc((size_t)n, sizeof(int64_t));
    for (int i = 0; i < n; i++) {
        int64_t lo;
        int32_t part = md->topics[0].partitions[i].id;
        err = rd_kafka_query_watermark_offsets(d->consumer, topic, part, &lo, &high[i],
                                               timeout_ms);
        if (err) {
            rc = ks_err(errbuf, errsize, KS_EKAFKA, "model.deployments_topic %s [%d]: %s", topic,
                        part, rd_kafka_err2str(err));
            goto out;
        }
        rd_kafka_topic_partition_list_add(parts, topic, part)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    if ((err = rd_kafka_assign(d->consumer, parts))) {
        rc = ks_err(errbuf, errsize, KS_EKAFKA, "cannot read %s: %s", topic, rd_kafka_err2str(err));
        goto out;
    }
    for (;;) {
        int left = 0;
        for (int i = 0; i < n; i++)
            left += high[i] > 0;
        if (!left)
            break;
        if (ks_now_mono_ns() > deadline) {
            rc = ks_err(errbuf, errsize, KS_EKAFKA,
                        "model.deployments_topic %s was not read to its end within %d ms", topic,
                        timeout_ms);
            goto out;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(d->consumer, 100);
        if (!m)
            continue;
        for (int i = 0; i < n; i++)
            if (md->topics[0].partitions[i].id == m->partition &&
                (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF || m->offset + 1 >= high[i]))
                high[i] = 0;
        if (!m->err)
            fold_record(d, m, swap, quiet, trace);
        else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            ks_warn("deployments: %s", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
    }
out:
    free(high);
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return rc;
}

/* ---- the guard ---------------------------------------------------------- */

static void snap_hist(const ks_histogram_t *h, uint64_t *out)
{
    size_t n = h->n_bounds + 1 < KS_GUARD_MAXB ? h->n_bounds + 1 : KS_GUARD_MAXB;
    for (size_t i = 0; i < n; i++)
        out[i] = atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
}

static void snap(const ks_route_variant_t *v, ks_guard_snap_t *s)
{
    s->predictions = atomic_load_explicit(&v->predictions->v, memory_order_relaxed);
    s->errors = atomic_load_explicit(&v->errors->v, memory_order_relaxed);
    snap_hist(v->latency, s->latency);
    snap_hist(v->sv->score, s->score);
}

/* Points the guard at a routing (a new one restarts the window) and takes
 * the window's first snapshot: called with the routing before it goes into
 * service, so every row it scores falls inside the window. */
static void guard_follow(ks_deployments_t *d, const ks_routing_t *rt)
{
    if (rt == d->guarded)
        return;
    d->guarded = rt;
    d->n_slots = 0;
    for (size_t i = 0; i < rt->n; i++)
        d->slot[d->n_slots++].var = &rt->v[i];
    if (rt->shadow.sv)
        d->slot[d->n_slots++].var = &rt->shadow;
    for (size_t i = 0; i < d->n_slots; i++)
        snap(d->slot[i].var, &d->slot[i].ring[0]);
    d->ring_head = 1 % d->ring_len;
    d->ring_n = 1;
}

/* One guard step: snapshot, then judge each candidate over the window. */
static void guard_tick(ks_deployments_t *d)
{
    ks_routing_t *rt;
    ks_serving_t *sv;
    ks_pipeline_acquire_routing(d->p, &rt, &sv);
    guard_follow(d, rt);
    const ks_route_variant_t *champ = NULL;
    for (size_t i = 0; i < d->n_slots; i++)
        if (d->slot[i].var->sv == rt->champion_sv && d->slot[i].var != &rt->shadow)
            champ = d->slot[i].var;
    size_t at = d->ring_head;
    for (size_t i = 0; i < d->n_slots; i++)
        snap(d->slot[i].var, &d->slot[i].ring[at]);
    d->ring_head = (d->ring_head + 1) % d->ring_len;
    if (d->ring_n < d->ring_len)
        d->ring_n++;
    size_t oldest = (at + d->ring_len - (d->ring_n - 1)) % d->ring_len;
    const char *breach = NULL, *version = NULL;
    char why[512];
    for (size_t i = 0; i < d->n_slots && champ && d->ring_n > 1 && !breach; i++) {
        const ks_route_variant_t *v = d->slot[i].var;
        size_t c = 0;
        if (v == champ)
            continue;
        for (c = 0; c < d->n_slots && d->slot[c].var != champ; c++)
            ;
        breach = ks_guard_judge(&d->limits, &d->slot[i].ring[oldest], &d->slot[i].ring[at],
                                &d->slot[c].ring[oldest], &d->slot[c].ring[at], why, sizeof(why));
        version = v->sv->model->version;
    }
    if (breach) {
        ks_deploy_msg_t m;
        char err[1024];
        const char *refusal;
        memset(&m, 0, sizeof(m));
        m.action = KS_DEPLOY_ROLLBACK;
        ks_deploy_copy(m.version, sizeof(m.version), version);
        char reason[sizeof(why) + sizeof(d->instance) + 16];
        snprintf(reason, sizeof(reason), "guard (%s): %s", d->instance, why);
        ks_deploy_copy(m.reason, sizeof(m.reason), reason);
        long long offset = d->state.last_offset;
        int result = fold(d, &m, offset, 1, &refusal, err, sizeof(err));
        report(d, offset, &m, result, refusal, result == FOLD_REFUSED ? err : why,
               result == FOLD_REFUSED ? NULL : breach);
        /* every replica, and every restart, applies it too */
        ks_buf_t b = {0};
        if (!d->producer) /* ks_deployments_guard_tick without Kafka (tests) */
            goto done;
        ks_deploy_msg_json(&m, &b);
        rd_kafka_resp_err_t e = rd_kafka_producev(
            d->producer, RD_KAFKA_V_RKT(d->deploy_rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(m.version, strlen(m.version)), RD_KAFKA_V_VALUE(b.data, b.len),
            RD_KAFKA_V_END);
        if (e)
            ks_error("guard: cannot write the rollback of %s to %s: %s; other replicas keep "
                     "routing it until their own guard breaches", version,
                     d->cfg->deployments_topic, rd_kafka_err2str(e));
    done:
        ks_buf_free(&b);
    }
    ks_routing_release(rt);
    ks_serving_release(sv);
}

void ks_deployments_guard_tick(struct ks_pipeline *p)
{
    if (p->deploy && p->deploy->guard_on)
        guard_tick(p->deploy);
}

/* ---- the thread --------------------------------------------------------- */

static void *deployments_main(void *arg)
{
    ks_deployments_t *d = arg;
    while (!atomic_load(&d->stop)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(d->consumer, 100);
        if (m) {
            if (!m->err)
                fold_record(d, m, 1, 0, NULL);
            else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                ks_warn("deployments: %s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
        }
        rd_kafka_poll(d->producer, 0);
        if (d->guard_on && ks_now_mono_ns() >= d->guard_next_ns) {
            d->guard_next_ns = ks_now_mono_ns() + d->guard_step_ns;
            guard_tick(d);
        }
    }
    rd_kafka_flush(d->producer, 2000);
    return NULL;
}

/* ---- life cycle --------------------------------------------------------- */

static ks_deployments_t *deployments_new(struct ks_pipeline *p)
{
    const struct ks_config *cfg = p->cfg;
    ks_deployments_t *d = ks_xcalloc(1, sizeof(*d));
    char host[64] = "localhost";
    d->p = p;
    d->cfg = cfg;
    gethostname(host, sizeof(host) - 1);
    snprintf(d->instance, sizeof(d->instance), "%s-%d", host, (int)getpid());
    pthread_mutex_init(&d->state_lock, NULL);
    ks_deploy_state_init(&d->state, p->serving->model->version, cfg->model_path);
    ks_deploy_copy(d->loaded[0].version, sizeof(d->loaded[0].version), d->state.champion);
    ks_deploy_copy(d->loaded[0].path, sizeof(d->loaded[0].path), cfg->model_path);
    d->loaded[0].sv = p->serving;
    atomic_fetch_add(&p->serving->refs, 1);
    d->n_loaded = 1;
    d->applied = ks_metrics_counter0(ks_metrics_counter(
        "kscore_deployments_applied_total", "Deployment messages that changed the routing.", NULL));
    d->unchanged = ks_metrics_counter0(ks_metrics_counter(
        "kscore_deployments_unchanged_total",
        "Deployment messages that left the routing as it was (e.g. a repeated rollback).", NULL));
    d->refused = ks_metrics_counter(
        "kscore_deployments_refused_total",
        "Deployment messages refused (routing unchanged), by reason.", "reason");
    d->rollbacks = ks_metrics_counter(
        "kscore_deployment_rollbacks_total",
        "Candidates the guard rolled back, by the limit breached.", "reason");
    d->share = ks_metrics_gauge("kscore_route_share",
                                "Share of rows each model version serves, by routing variant "
                                "(a shadow scores every row and serves none: 0).",
                                "model_version,variant");
    d->last_offset = ks_metrics_gauge0(ks_metrics_gauge(
        "kscore_deployments_offset", "Offset of the last deployment message folded in.", NULL));
    ks_gauge_set(d->last_offset, -1);
    return d;
}

int ks_deployments_new(struct ks_pipeline *p, char *errbuf, size_t errsize)
{
    const struct ks_config *cfg = p->cfg;
    ks_deployments_t *d = deployments_new(p);
    p->deploy = d;
    d->next = d->state;
    p->routing = routing_build(d, &d->state, d->loaded, d->n_loaded);
    d->limits = (ks_guard_limits_t){
        cfg->guard_has_error_rate ? cfg->guard_max_error_rate : NAN,
        cfg->guard_has_p99 ? cfg->guard_max_p99_ms : NAN,
        cfg->guard_has_psi ? cfg->guard_max_score_psi : NAN,
        (uint64_t)cfg->guard_min_events, ks_buckets_latency_seconds, NULL,
        ks_buckets_latency_seconds_n < KS_GUARD_MAXB ? ks_buckets_latency_seconds_n
                                                     : KS_GUARD_MAXB - 1, 0};
    d->guard_on = cfg->guard_has_error_rate || cfg->guard_has_p99 || cfg->guard_has_psi;
    const ks_histogram_t *score = p->serving->score;
    d->limits.score_bounds = score->bounds;
    d->limits.n_score = score->n_bounds + 1 < KS_GUARD_MAXB ? score->n_bounds : KS_GUARD_MAXB - 1;
    int64_t step = cfg->guard_interval_ms;
    if (cfg->guard_window_ms / step > GUARD_RING - 1)
        step = cfg->guard_window_ms / (GUARD_RING - 1);
    d->guard_step_ns = step * 1000000;
    d->ring_len = (size_t)(cfg->guard_window_ms / step) + 1;
    for (size_t i = 0; i < MAX_LOADED; i++)
        d->slot[i].ring = ks_xcalloc(d->ring_len, sizeof(ks_guard_snap_t));
    return KS_OK;
}

int ks_deployments_start(struct ks_pipeline *p, char *errbuf, size_t errsize)
{
    ks_deployments_t *d = p->deploy;
    int rc;
    if ((rc = make_clients(d, 1, errbuf, errsize)) ||
        (rc = catch_up(d, 1, 0, NULL, 30000, errbuf, errsize)))
        return rc;
    ks_info("deployments: %s read to offset %lld (%lld applied, %lld refused): champion %s",
            d->cfg->deployments_topic, d->state.last_offset, d->state.applied, d->state.refused,
            d->state.champion);
    d->guard_next_ns = ks_now_mono_ns() + d->guard_step_ns;
    if (pthread_create(&d->thread, NULL, deployments_main, d) != 0)
        return ks_err(errbuf, errsize, KS_EIO, "cannot start the deployments thread");
    d->started = 1;
    return KS_OK;
}

void ks_deployments_stop(struct ks_pipeline *p)
{
    ks_deployments_t *d = p->deploy;
    if (!d || !d->started)
        return;
    atomic_store(&d->stop, 1);
    pthread_join(d->thread, NULL);
    d->started = 0;
}

static void deployments_close(ks_deployments_t *d)
{
    if (d->consumer) {
        rd_kafka_consumer_close(d->consumer);
        rd_kafka_destroy(d->consumer);
        d->consumer = NULL;
    }
    if (d->status_rkt)
        rd_kafka_topic_destroy(d->status_rkt);
    if (d->deploy_rkt)
        rd_kafka_topic_destroy(d->deploy_rkt);
    d->status_rkt = d->deploy_rkt = NULL;
    if (d->producer) {
        rd_kafka_flush(d->producer, 2000);
        rd_kafka_destroy(d->producer);
        d->producer = NULL;
    }
}

static void deployments_free(ks_deployments_t *d)
{
    deployments_close(d);
    for (size_t i = 0; i < d->n_loaded; i++)
        ks_serving_release(d->loaded[i].sv);
    for (size_t i = 0; i < MAX_LOADED; i++)
        free(d->slot[i].ring);
    pthread_mutex_destroy(&d->state_lock);
    free(d);
}

void ks_deployments_free(struct ks_pipeline *p)
{
    if (!p->deploy)
        return;
    ks_deployments_stop(p);
    deployments_free(p->deploy);
    p->deploy = NULL;
}

void ks_deployments_status_json(struct ks_pipeline *p, ks_buf_t *out)
{
    ks_deployments_t *d = p->deploy;
    if (!d) {
        ks_buf_puts(out, "null");
        return;
    }
    ks_buf_puts(out, "{\"instance\":");
    ks_buf_json_string(out, d->instance, strlen(d->instance));
    ks_buf_puts(out, ",\"state\":");
    pthread_mutex_lock(&d->state_lock);
    ks_deploy_state_json(&d->state, out);
    pthread_mutex_unlock(&d->state_lock);
    ks_buf_putc(out, '}');
}

/* ---- the command line: kscore deployments / kscore deploy --------------- */

int ks_pipeline_deployments(ks_pipeline_t *p, FILE *out, int json, char *errbuf, size_t errsize)
{
    ks_deployments_t *d = p->deploy;
    int rc;
    if (!d)
        return ks_err(errbuf, errsize, KS_EINVAL, "%s: model.deployments_topic is not set",
                      p->cfg->path), KS_EXIT_USAGE;
    if ((rc = make_clients(d, 0, errbuf, errsize)) ||
        (rc = catch_up(d, 0, 1, json ? NULL : out, 30000, errbuf, errsize))) {
        deployments_close(d);
        return KS_EXIT_RUNTIME;
    }
    deployments_close(d);
    ks_buf_t b = {0};
    ks_deploy_state_json(&d->state, &b);
    if (!json) {
        const ks_deploy_state_t *s = &d->state;
        fprintf(out, "champion: %s\n", s->champion);
        if (!s->n_variants)
            fprintf(out, "routing: champion %s 100%%\n", s->champion);
        for (size_t i = 0; i < s->n_variants; i++)
            fprintf(out, "routing: %s %s %g%%\n", s->variant[i].name, s->variant[i].version,
                    s->variant[i].buckets / 100.0);
        fprintf(out, "shadow: %s\n", s->shadow[0] ? s->shadow : "-");
        fprintf(out, "messages: %lld applied, %lld refused, last offset %lld\n", s->applied,
                s->refused, s->last_offset);
    }
    fprintf(out, "%.*s\n", (int)b.len, b.data);
    ks_buf_free(&b);
    return KS_EXIT_OK;
}

static int file_sha256(const char *path, char hex[65], char *errbuf, size_t errsize)
{
    char *buf;
    size_t len;
    uint8_t dig[32];
    int rc = ks_read_file(path, &buf, &len, errbuf, errsize);
    if (rc)
        return rc;
    ks_sha256(buf, len, dig);
    ks_sha256_hex(dig, 32, hex);
    free(buf);
    return KS_OK;
}

int ks_pipeline_deploy(ks_pipeline_t *p, const ks_deploy_request_t *r, FILE *out, char *errbuf,
                       size_t errsize)
{
    ks_deployments_t *d = p->deploy;
    ks_deploy_msg_t m;
    ks_buf_t b = {0};
    char err[1024];
    int rc = KS_EXIT_USAGE;
    memset(&m, 0, sizeof(m));
    if (!d) {
        ks_err(errbuf, errsize, KS_EINVAL, "%s: model.deployments_topic is not set",
               p->cfg->path);
        return KS_EXIT_USAGE;
    }
    /* the message, as every replica will read it */
    ks_buf_puts(&b, "{\"action\":");
    ks_buf_json_string(&b, r->action, strlen(r->action));
    if (r->version) {
        ks_buf_puts(&b, ",\"version\":");
        ks_buf_json_string(&b, r->version, strlen(r->version));
    }
    if (r->model_path) {
        char abs[PATH_MAX], hex[65];
        if (!realpath(r->model_path, abs)) {
            ks_err(errbuf, errsize, KS_EIO, "--model %s: no such file", r->model_path);
            goto out;
        }
        if (file_sha256(abs, hex, errbuf, errsize))
            goto out;
        ks_buf_puts(&b, ",\"path\":");
        ks_buf_json_string(&b, abs, strlen(abs));
        ks_buf_printf(&b, ",\"sha256\":\"%s\"", hex);
    }
    if (!strcmp(r->action, "canary"))
        ks_buf_printf(&b, ",\"percent\":%.17g", r->percent);
    if (r->variants) { /* "v6=50,v7=50" */
        ks_buf_puts(&b, ",\"variants\":{");
        const char *s = r->variants;
        for (int first = 1; *s; first = 0) {
            const char *comma = strchr(s, ','), *eq = strchr(s, '=');
            size_t len = comma ? (size_t)(comma - s) : strlen(s);
            if (!eq || eq >= s + len || eq == s) {
                ks_err(errbuf, errsize, KS_EINVAL, "--ab %s: expected VERSION=PERCENT,...",
                       r->variants);
                goto out;
            }
            char *end;
            double pct = strtod(eq + 1, &end);
            if (end != s + len) {
                ks_err(errbuf, errsize, KS_EINVAL, "--ab %s: bad percent", r->variants);
                goto out;
            }
            if (!first)
                ks_buf_putc(&b, ',');
            ks_buf_json_string(&b, s, (size_t)(eq - s));
            ks_buf_printf(&b, ":%.17g", pct);
            s += len + (comma ? 1 : 0);
        }
        ks_buf_putc(&b, '}');
    }
    if (r->reason) {
        ks_buf_puts(&b, ",\"reason\":");
        ks_buf_json_string(&b, r->reason, strlen(r->reason));
    }
    ks_buf_putc(&b, '}');
    if (ks_deploy_msg_parse(b.data, b.len, &m, errbuf, errsize))
        goto out;
    /* read the topic, then try the message on that state as a replica would */
    if (make_clients(d, 1, errbuf, errsize) ||
        catch_up(d, 0, 1, NULL, 30000, errbuf, errsize)) {
        rc = KS_EXIT_RUNTIME;
        goto out;
    }
    if (!m.path[0] && m.version[0]) { /* self-contained, should compaction keep only it */
        const ks_deploy_model_t *md = ks_deploy_find(&d->state, m.version);
        if (md && md->sha256[0]) {
            ks_deploy_copy(m.path, sizeof(m.path), md->path);
            ks_deploy_copy(m.sha256, sizeof(m.sha256), md->sha256);
        }
    }
    const char *why;
    int result = fold(d, &m, d->state.last_offset + 1, 0, &why, err, sizeof(err));
    if (result == FOLD_REFUSED) {
        ks_err(errbuf, errsize, KS_EINVAL, "every replica would refuse this deployment (%s): %s",
               why, err);
        goto out;
    }
    ks_buf_reset(&b);
    ks_deploy_msg_json(&m, &b);
    const char *key = m.version[0] ? m.version : ks_deploy_action_name(m.action);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        d->producer, RD_KAFKA_V_RKT(d->deploy_rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(b.data, b.len), RD_KAFKA_V_END);
    if (!e)
        e = rd_kafka_flush(d->producer, 30000);
    if (!e)
        e = d->delivery_err;
    if (e) {
        ks_err(errbuf, errsize, KS_EKAFKA, "cannot write to %s: %s", p->cfg->deployments_topic,
               rd_kafka_err2str(e));
        rc = KS_EXIT_RUNTIME;
        goto out;
    }
    fprintf(out, "%.*s\n", (int)b.len, b.data);
    rc = KS_EXIT_OK;
out:
    deployments_close(d);
    ks_buf_free(&b);
    return rc;
}
