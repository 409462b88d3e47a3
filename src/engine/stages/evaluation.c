/*
 * evaluation.c - stage "evaluation": online evaluation with delayed labels
 * (docs/quality.md).
 *
 *   run          each scored row's prediction (the output.id_field value,
 *                P(class 1), model version, variant, now) goes into the
 *                store (engine/evalstore.h): one mutex per row, a line of
 *                buffered log
 *   labels       one thread per pipeline (started with the first Kafka
 *                worker, never offline) reads EVERY partition of
 *                evaluation.labels_topic (rd_kafka_assign, no group
 *                membership, no commits; the partitions are looked up again
 *                every LABELS_RECHECK_MS for new ones), joins each label
 *                whose id its store holds, and once a second: expires
 *                predictions past max_wait, recomputes and publishes the
 *                window's metrics (engine/evaluation.h), notes each
 *                partition's position in the store and syncs it (the store
 *                writes the positions after the joins are on disk)
 *   evaluation.topic  optional: one JSON record per joined pair
 *                {"id","label","score","model_version","variant",
 *                 "predicted_at","labelled_at"}, keyed by id
 *
 * Several instances: the predictions stay with the instance that made them
 * (its store), and every instance reads every label, so each label is
 * joined by the instance holding its prediction, whichever input partitions
 * move between instances; the others count it `unknown`. Where a partition
 * starts: the store's position (a restart resumes where its last sync left
 * off; labels read again after a crash are ids the store remembers as
 * joined: duplicates, never joined twice), else - a fresh store, a new
 * partition - the first label of the last max_wait
 * (rd_kafka_offsets_for_times): older labels cannot match a waiting
 * prediction. The consumer still carries group.id "<input.group_id>.labels"
 * (librdkafka's assign needs one) but never joins it nor commits to it.
 *
 * Durability and its limits: the predictions' log lines are synced once a
 * second by the labels thread, not before the worker commits the input
 * offsets, so a crash (not a clean stop, which syncs) can lose up to a second
 * of predictions to evaluation (never to the output topic). After a crash,
 * evaluation.topic may miss or repeat the joined records of the last second
 * (they are produced as labels are joined, the store is synced once a
 * second); a clean stop loses and repeats none.
 *
 * Binary classifiers only (the score is P(class 1)): a config whose model
 * is not one is refused at start-up (a later hot swap to another kind of
 * model stores nothing). The store file is opened only by the Kafka run (the
 * first worker's thread_init, with the labels thread), under an exclusive
 * lock: offline commands (`kscore predict`, `validate`, `backtest`,
 * `features`) against a production config only check that it could be
 * opened (ks_evalstore_check) and never rewrite it under a running
 * instance; a second `kscore run` on the same store is refused (exit 2).
 */
#include "base/common.h"
#include "base/json.h"
#include "base/log.h"
#include "engine/drift.h"
#include "engine/evalstore.h"
#include "engine/evaluation.h"
#include "engine/pipeline.h"
#include "engine/stage.h"
#include "kafka/client.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct eval_conf {
    int64_t max_wait_ms, window_ms;
    char store[4096];
} eval_conf_t;

#define LABELS_RECHECK_MS 30000  /* how often the labels topic's partitions are listed */
#define LABELS_RETRY_MS 2000     /* ... after a failed look-up */
#define LABELS_TIMEOUT_MS 5000   /* each metadata or offset request */

typedef struct eval_ctx {
    struct ks_pipeline *p;
    const eval_conf_t *conf;
    ks_evalstore_t *store;
    ks_evaluator_t *ev;
    atomic_int started, stop;
    pthread_t thread;
    rd_kafka_t *consumer, *producer;
    rd_kafka_topic_t *labels_rkt;  /* for metadata requests */
    int64_t *next;     /* labels thread: per partition, the offset of the next label */
    int n_parts;       /* labels partitions assigned (0..n_parts-1) */
    ks_kafka_ctx_t kctx;
    ks_counter_t *store_full;
    ks_gauge_t *waiting;
} eval_ctx_t;

static const ks_config_key_t eval_keys[] = {
    {"evaluation.labels_topic", KS_CONF_STRING, KS_CONF_OFF(eval_labels_topic), KS_CONF_NOHAS, 0,
     NULL, 0, 0, NULL,
     "Topic of delayed labels, JSON records {id, label: 0/1}; set to evaluate the model "
     "online (AUC, log loss, Brier, calibration, precision/recall per model version; "
     "docs/quality.md). Needs output.id_field and a binary classifier. Every instance reads "
     "all its partitions (no consumer group) and joins the labels of its own predictions."},
    {"evaluation.id_field", KS_CONF_STRING, KS_CONF_OFF(eval_id_field), KS_CONF_NOHAS, 0, "id",
     0, 0, NULL, "Field of a label record holding the prediction's id (output.id_field's value)."},
    {"evaluation.label_field", KS_CONF_STRING, KS_CONF_OFF(eval_label_field), KS_CONF_NOHAS, 0,
     "label", 0, 0, NULL, "Field of a label record holding the label: 0/1, true/false, \"0\"/\"1\"."},
    {"evaluation.max_wait", KS_CONF_STRING, KS_CONF_OFF(eval_max_wait), KS_CONF_NOHAS, 0, "7d",
     0, 0, NULL,
     "How long a prediction waits for its label; a label after that is counted late. A "
     "store with no position for a labels partition starts reading it this far back."},
    {"evaluation.window", KS_CONF_STRING, KS_CONF_OFF(eval_window), KS_CONF_NOHAS, 0, "1h", 0, 0,
     NULL, "Sliding window (by label arrival) the evaluation metrics cover."},
    {"evaluation.store", KS_CONF_STRING, KS_CONF_OFF(eval_store), KS_CONF_NOHAS, 0,
     "kscore-evaluation.log", 0, 0, NULL,
     "File of the durable store of waiting predictions and of the labels topic's read "
     "positions (relative to the config file); it survives restarts. One per instance."},
    {"evaluation.max_pending", KS_CONF_INT, KS_CONF_OFF(eval_max_pending), KS_CONF_NOHAS, 0,
     "1000000", 1, 100000000, NULL,
     "Predictions the store keeps at most (waiting, or settled and remembered for "
     "max_wait to tell duplicates and late labels); beyond it new ones are not evaluated "
     "(kscore_eval_store_full_total)."},
    {"evaluation.topic", KS_CONF_STRING, KS_CONF_OFF(eval_topic), KS_CONF_NOHAS, 0, NULL, 0, 0,
     NULL, "Topic that receives one record per joined prediction and label (optional)."},
};

static int configure(struct ks_config *cfg, ks_node_t *root, void **out, char *errbuf,
                     size_t errsize)
{
    (void)root;
    *out = NULL;
    if (!cfg->eval_labels_topic)
        return KS_OK;
    if (!cfg->output_id_field)
        return ks_err(errbuf, errsize, KS_EINVAL,
                      "%s: evaluation joins labels by id: set output.id_field", cfg->path);
    eval_conf_t *c = ks_xcalloc(1, sizeof(*c));
    if (ks_duration_parse(cfg->eval_max_wait, &c->max_wait_ms) ||
        ks_duration_parse(cfg->eval_window, &c->window_ms) || c->window_ms < 15) {
        free(c);
        return ks_err(errbuf, errsize, KS_EINVAL,
                      "%s: evaluation.max_wait '%s' / evaluation.window '%s': expected durations "
                      "such as 7d, 1h", cfg->path, cfg->eval_max_wait, cfg->eval_window);
    }
    const char *slash = cfg->path ? strrchr(cfg->path, '/') : NULL;
    if (cfg->eval_store[0] == '/' || !slash)
        snprintf(c->store, sizeof(c->store), "%s", cfg->eval_store);
    else
        snprintf(c->store, sizeof(c->store), "%.*s/%s", (int)(slash - cfg->path), cfg->path,
                 cfg->eval_store);
    *out = c;
    return KS_OK;
}

static int init(struct ks_pipeline *p, const void *conf, void **out, char *errbuf,
                size_t errsize)
{
    const eval_conf_t *c = conf;
    const struct ks_config *cfg = p->cfg;
    int rc = KS_OK;
    if (p->serving && !p->serving->binary) {
        const ks_model_t *m = p->serving->model;
        return ks_err(errbuf, errsize, KS_EINVAL,
                      "%s: evaluation: the model %s (version %s) is a %s, not a binary "
                      "classifier: online evaluation joins labels 0/1 with P(class 1); remove "
                      "the evaluation: section or serve a binary classifier", cfg->path, m->path,
                      m->version, m->task != KS_TASK_CLASSIFICATION ? "regressor"
                                                                    : "multiclass classifier");
    }
    if ((rc = ks_evalstore_check(c->store, errbuf, errsize)))
        return rc;
    eval_ctx_t *x = ks_xcalloc(1, sizeof(*x));
    x->store = ks_evalstore_new(c->store, (size_t)cfg->eval_max_pending, c->max_wait_ms);
    x->p = p;
    x->conf = c;
    x->ev = ks_evaluator_new(c->window_ms, cfg->output_has_threshold ? cfg->output_threshold
                                                                     : 0.5, 1);
    p->evaluator = x->ev;
    p->evalstore = x->store;
    x->store_full = ks_metrics_counter0(ks_metrics_counter(
        "kscore_eval_store_full_total",
        "Predictions not evaluated because the store held evaluation.max_pending", NULL));
    x->waiting = ks_metrics_gauge0(ks_metrics_gauge(
        "kscore_eval_waiting", "Predictions waiting for their label", NULL));
    *out = x;
    return KS_OK;
}

static void put_label_record(eval_ctx_t *x, const char *id, size_t id_len,
                             const ks_eval_pred_t *pr, int y, int64_t now)
{
    ks_buf_t b = {0};
    ks_buf_puts(&b, "{\"id\":");
    ks_buf_json_string(&b, id, id_len);
    ks_buf_printf(&b, ",\"label\":%d,\"score\":", y);
    ks_buf_json_double17(&b, pr->score);
    ks_buf_puts(&b, ",\"model_version\":");
    ks_buf_json_string(&b, pr->version, strlen(pr->version));
    ks_buf_puts(&b, ",\"variant\":");
    ks_buf_json_string(&b, pr->variant, strlen(pr->variant));
    ks_buf_puts(&b, ",\"predicted_at\":\"");
    ks_buf_iso8601_ms(&b, pr->time_ms);
    ks_buf_puts(&b, "\",\"labelled_at\":\"");
    ks_buf_iso8601_ms(&b, now);
    ks_buf_puts(&b, "\"}");
    rd_kafka_resp_err_t err = rd_kafka_producev(
        x->producer, RD_KAFKA_V_TOPIC(x->p->cfg->eval_topic),
        RD_KAFKA_V_KEY(id, id_len), RD_KAFKA_V_VALUE(b.data, b.len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (err)
        ks_log(KS_LOG_WARN, "evaluation.topic: cannot produce a joined record: %s",
               rd_kafka_err2str(err));
    ks_buf_free(&b);
}

/* One label record. */
static void on_label(eval_ctx_t *x, const rd_kafka_message_t *m, int64_t now)
{
    const struct ks_config *cfg = x->p->cfg;
    ks_json_t *root = NULL;
    char why[256], num[64];
    if (ks_json_parse(m->payload, m->len, &root, why, sizeof(why))) {
        ks_evaluator_outcome(x->ev, KS_EVAL_UNKNOWN);
        return;
    }
    const ks_json_t *iv = ks_json_get(root, cfg->eval_id_field);
    const ks_json_t *lv = ks_json_get(root, cfg->eval_label_field);
    const char *id = ks_json_str(iv);
    if (!id && ks_json_is(iv, KS_JSON_NUMBER)) {
        ks_fmt_double(num, ks_json_num(iv, 0), 17);
        id = num;
    }
    int y = ks_json_is(lv, KS_JSON_BOOL) ? ks_json_bool(lv, 0)
          : ks_json_is(lv, KS_JSON_NUMBER) && (ks_json_num(lv, -1) == 0 || ks_json_num(lv, -1) == 1)
              ? (int)ks_json_num(lv, 0)
          : ks_json_str(lv) && (!strcmp(ks_json_str(lv), "0") || !strcmp(ks_json_str(lv), "1"))
              ? ks_json_str(lv)[0] - '0'
              : -1;
    if (!id || y < 0) {
        ks_evaluator_outcome(x->ev, KS_EVAL_UNKNOWN);
        ks_json_free(root);
        return;
    }
    ks_eval_pred_t pr;
    ks_eval_outcome_t o = ks_evalstore_label(x->store, id, strlen(id), now, &pr);
    ks_evaluator_outcome(x->ev, o);
    if (o == KS_EVAL_JOINED) {
        ks_evaluator_add(x->ev, &pr, y, now);
        if (x->producer)
            put_label_record(x, id, strlen(id), &pr, y, now);
    } else if (o == KS_EVAL_LATE) {
        ks_evaluator_expired(x->ev, &pr, now);
    }
    ks_json_free(root);
}

static void expired_cb(void *ctx, const ks_eval_pred_t *p)
{
    eval_ctx_t *x = ctx;
    ks_evaluator_expired(x->ev, p, ks_now_wall_ms());
}

/* Where a labels partition not read yet starts: the store's position, else
 * the first label at or after `since` (the partition's end when none is).
 * Fills next[from..n-1]; KS_EKAFKA with a sentence when the cluster did not
 * answer. */
static int start_offsets(eval_ctx_t *x, int from, int n, int64_t *next, int64_t since,
                         char *why, size_t whysize)
{
    const char *topic = x->p->cfg->eval_labels_topic;
    rd_kafka_topic_partition_list_t *times = rd_kafka_topic_partition_list_new(n - from);
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    int rc = KS_OK;
    for (int p = from; p < n; p++) {
        next[p] = ks_evalstore_position(x->store, topic, p);
        if (next[p] < 0)
            rd_kafka_topic_partition_list_add(times, topic, p)->offset = since;
    }
    for (int i = 0; i < times->cnt && !err; i++) {
        int64_t lo, hi; /* the end before the look-up: a label appended meanwhile is read */
        rd_kafka_topic_partition_t *tp = &times->elems[i];
        err = rd_kafka_query_watermark_offsets(x->consumer, topic, tp->partition, &lo, &hi,
                                               LABELS_TIMEOUT_MS);
        next[tp->partition] = hi;
    }
    if (!err && times->cnt)
        err = rd_kafka_offsets_for_times(x->consumer, times, LABELS_TIMEOUT_MS);
    for (int i = 0; i < times->cnt && !err; i++) {
        rd_kafka_topic_partition_t *tp = &times->elems[i];
        if (tp->err)
            err = tp->err;
        else if (tp->offset >= 0)
            next[tp->partition] = tp->offset;
    }
    if (err)
        rc = ks_err(why, whysize, KS_EKAFKA, "cannot look up where to read %s from: %s", topic,
                    rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(times);
    return rc;
}

/* Assigns every partition of the labels topic to the labels consumer when
 * there are more than are assigned now (partitions are never removed): the
 * ones being read at their next offset, the new ones where start_offsets
 * says. KS_OK when the assignment is current; else KS_EKAFKA and a sentence
 * (the caller retries). Labels thread. */
static int assign_labels(eval_ctx_t *x, int64_t now, char *why, size_t whysize)
{
    const char *topic = x->p->cfg->eval_labels_topic;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL;
    int64_t *next = NULL;
    ks_buf_t said = {0};
    int rc = KS_OK, n;
    rd_kafka_resp_err_t err = rd_kafka_metadata(x->consumer, 0, x->labels_rkt, &md,
                                                LABELS_TIMEOUT_MS);
    if (err || md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt == 0) {
        rc = ks_err(why, whysize, KS_EKAFKA, "cannot list the partitions of %s: %s", topic,
                    rd_kafka_err2str(err ? err : md->topic_cnt != 1 ? RD_KAFKA_RESP_ERR__FAIL
                                           : md->topics[0].err ? md->topics[0].err
                                                               : RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION));
        goto out;
    }
    if ((n = md->topics[0].partition_cnt) <= x->n_parts)
        goto out;
    next = ks_xmalloc((size_t)n * sizeof(*next));
    if (x->n_parts)
        memcpy(next, x->next, (size_t)x->n_parts * sizeof(*next));
    int64_t since = now > x->conf->max_wait_ms ? now - x->conf->max_wait_ms : 0;
    if ((rc = start_offsets(x, x->n_parts, n, next, since, why, whysize)))
        goto out;
    parts = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++)
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = next[p];
    if ((err = rd_kafka_assign(x->consumer, parts))) {
        rc = ks_err(why, whysize, KS_EKAFKA, "cannot assign the partitions of %s: %s", topic,
                    rd_kafka_err2str(err));
        goto out;
    }
    for (int p = x->n_parts; p < n; p++) {
        ks_evalstore_set_position(x->store, topic, p, next[p]); /* a restart starts there too */
        ks_buf_printf(&said, "%s[%d] at %lld", p > x->n_parts ? ", " : "", p,
                      (long long)next[p]);
    }
    ks_info("evaluation: reading %d partition(s) of %s (every instance reads all of them): %.*s",
            n - x->n_parts, topic, (int)said.len, said.data ? said.data : "");
    free(x->next);
    x->next = next;
    x->n_parts = n;
    next = NULL;
out:
    ks_buf_free(&said);
    free(next);
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    if (md)
        rd_kafka_metadata_destroy(md);
    return rc;
}

/* Notes where each partition is in the store and syncs it: joins, then
 * positions, on disk (evalstore.h, "Positions"). */
static void save_positions(eval_ctx_t *x)
{
    for (int p = 0; p < x->n_parts; p++)
        ks_evalstore_set_position(x->store, x->p->cfg->eval_labels_topic, p, x->next[p]);
    if (ks_evalstore_sync(x->store) != KS_OK)
        ks_warn("evaluation.store: cannot sync %s (retried in a second)", x->conf->store);
}

static void *labels_thread(void *arg)
{
    eval_ctx_t *x = arg;
    int64_t last = 0, check_at = 0;
    char why[512], told[512] = "";
    while (!atomic_load(&x->stop)) {
        int64_t now = ks_now_wall_ms();
        if (now >= check_at) {
            int rc = assign_labels(x, now, why, sizeof(why));
            if (rc && strcmp(why, told))
                ks_warn("evaluation: %s (retrying every %d s)", why, LABELS_RETRY_MS / 1000);
            snprintf(told, sizeof(told), "%s", rc ? why : "");
            check_at = now + (rc ? LABELS_RETRY_MS : LABELS_RECHECK_MS);
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(x->consumer, 100);
        now = ks_now_wall_ms();
        if (m) {
            if (!m->err) {
                on_label(x, m, now);
                if (m->partition >= 0 && m->partition < x->n_parts)
                    x->next[m->partition] = m->offset + 1;
            } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                ks_log(KS_LOG_WARN, "evaluation: labels topic: %s", rd_kafka_message_errstr(m));
            }
            rd_kafka_message_destroy(m);
        }
        if (now - last >= 1000) {
            ks_evalstore_expire(x->store, now, expired_cb, x);
            ks_evaluator_compute(x->ev, now, NULL, 0);
            ks_evalstore_stats_t st;
            ks_evalstore_stats(x->store, &st);
            ks_gauge_set(x->waiting, (double)st.waiting);
            save_positions(x);
            if (x->producer)
                rd_kafka_poll(x->producer, 0);
            last = now;
        }
    }
    save_positions(x); /* a clean stop: a restart reads no label twice */
    return NULL;
}

static int start_labels(eval_ctx_t *x, char *errbuf, size_t errsize)
{
    const struct ks_config *cfg = x->p->cfg;
    char group[600];
    int rc;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    snprintf(group, sizeof(group), "%s.labels", cfg->input_group_id);
    snprintf(x->kctx.name, sizeof(x->kctx.name), "evaluation");
    x->kctx.worker = -1;
    if ((rc = ks_config_apply_kafka(cfg, KS_KAFKA_CONSUMER, conf, errbuf, errsize)) ||
        (rc = ks_kafka_conf_set(conf, "group.id", group, errbuf, errsize)) ||
        (rc = ks_kafka_conf_set(conf, "enable.auto.commit", "false", errbuf, errsize)) ||
        (rc = ks_kafka_conf_set(conf, "auto.offset.reset", "earliest", errbuf, errsize))) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    if ((rc = ks_kafka_client_new(&x->kctx, RD_KAFKA_CONSUMER, conf, &x->consumer, errbuf,
                                  errsize)))
        return rc;
    rd_kafka_poll_set_consumer(x->consumer);
    /* the partitions are assigned by the labels thread (assign_labels) */
    x->labels_rkt = rd_kafka_topic_new(x->consumer, cfg->eval_labels_topic, NULL);
    if (cfg->eval_topic) {
        rd_kafka_conf_t *pc = rd_kafka_conf_new();
        if ((rc = ks_config_apply_kafka(cfg, KS_KAFKA_PRODUCER, pc, errbuf, errsize))) {
            rd_kafka_conf_destroy(pc);
            return rc;
        }
        ks_kafka_ctx_t *pk = &x->kctx; /* same names in log lines */
        if ((rc = ks_kafka_client_new(pk, RD_KAFKA_PRODUCER, pc, &x->producer, errbuf, errsize)))
            return rc;
    }
    if (pthread_create(&x->thread, NULL, labels_thread, x))
        return ks_err(errbuf, errsize, KS_EINVAL, "evaluation: cannot start the labels thread");
    atomic_store(&x->started, 2);
    return KS_OK;
}

static int thread_init(void *ctx, const ks_stage_env_t *env, void **tctx, char *errbuf,
                       size_t errsize)
{
    eval_ctx_t *x = ctx;
    int zero = 0, rc;
    *tctx = env->producer ? x : NULL; /* offline (kscore predict): nothing is stored */
    if (env->producer && atomic_compare_exchange_strong(&x->started, &zero, 1)) {
        /* the Kafka run: the store is opened (locked) here, before any batch */
        if ((rc = ks_evalstore_start(x->store, ks_now_wall_ms(), errbuf, errsize)))
            return rc;
        return start_labels(x, errbuf, errsize);
    }
    return KS_OK;
}

static void run(void *tctx, ks_batch_t *b)
{
    eval_ctx_t *x = tctx;
    if (!x || !b->sv || !b->sv->binary || b->rows == 0 || x->p->id_field < 0)
        return;
    ks_eval_pred_t pr = {.time_ms = ks_now_wall_ms()};
    snprintf(pr.version, sizeof(pr.version), "%s", b->sv->model->version);
    snprintf(pr.variant, sizeof(pr.variant), "primary");
    size_t n_out = b->sv->model->n_outputs;
    for (size_t i = 0; i < b->n; i++) {
        if (!ks_batch_ok(b, i))
            continue;
        if (b->rt && b->variant) {
            /* under a routing: the version and variant that scored this row */
            const ks_route_variant_t *v = &b->rt->v[b->variant[i]];
            snprintf(pr.version, sizeof(pr.version), "%s", v->sv->model->version);
            snprintf(pr.variant, sizeof(pr.variant), "%s", v->name);
        }
        const ks_value_t *id = &ks_batch_row(b, i)[x->p->id_field];
        char num[64];
        const char *s = NULL;
        size_t len = 0;
        if (id->type == KS_VAL_STR) {
            s = id->str;
            len = id->len;
        } else if (id->type == KS_VAL_NUM) {
            len = (size_t)ks_fmt_double(num, id->num, 17);
            s = num;
        }
        if (!s)
            continue;
        pr.score = b->out[b->good_row[i] * n_out + 1];
        if (ks_evalstore_put(x->store, s, len, &pr) == KS_ESTATE)
            ks_counter_add(x->store_full, 1);
    }
}

static void eval_free(void *ctx)
{
    eval_ctx_t *x = ctx;
    if (!x)
        return;
    if (atomic_load(&x->started) == 2) {
        atomic_store(&x->stop, 1);
        pthread_join(x->thread, NULL);
    }
    if (x->labels_rkt)
        rd_kafka_topic_destroy(x->labels_rkt);
    if (x->consumer) {
        rd_kafka_consumer_close(x->consumer);
        rd_kafka_destroy(x->consumer);
    }
    if (x->producer) {
        rd_kafka_flush(x->producer, 5000);
        rd_kafka_destroy(x->producer);
    }
    x->p->evaluator = NULL;
    x->p->evalstore = NULL;
    ks_evalstore_close(x->store);
    ks_evaluator_free(x->ev);
    free(x->next);
    free(x);
}

const ks_stage_type_t ks_stage_evaluation = {
    .name = "evaluation",
    .keys = eval_keys,
    .n_keys = KS_ARRAY_LEN(eval_keys),
    .configure = configure,
    .conf_free = free,
    .init = init,
    .thread_init = thread_init,
    .run = run,
    .free = eval_free,
};
