/*
 * evaluation.c - stage "evaluation": online evaluation with delayed labels
 * (docs/quality.md).
 *
 *   run          each scored row's prediction (the output.id_field value,
 *                P(class 1), model version, variant, now) goes into the
 *                store (engine/evalstore.h): one mutex per row, a line of
 *                buffered log
 *   labels       one thread per pipeline (started with the first Kafka
 *                worker, never offline) consumes evaluation.labels_topic in
 *                the consumer group "<input.group_id>.labels", joins each
 *                label in the store, and once a second: expires predictions
 *                past max_wait, recomputes and publishes the window's metrics
 *                (engine/evaluation.h), fdatasyncs the store, then commits
 *                the labels' offsets - so a label is never committed before
 *                its join is on disk
 *   evaluation.topic  optional: one JSON record per joined pair
 *                {"id","label","score","model_version","variant",
 *                 "predicted_at","labelled_at"}, keyed by id
 *
 * Durability and its limits: the predictions' log lines are synced once a
 * second by the labels thread, not before the worker commits the input
 * offsets, so a crash (not a clean stop, which syncs) can lose up to a second
 * of predictions to evaluation (never to the output topic). Each instance
 * joins only the labels its labels-group member is given with the
 * predictions it made itself; the labels topic is not co-partitioned with
 * the input, so with several instances run evaluation in one of them (a
 * sample) or line the assignments up (docs/quality.md, "Several
 * instances").
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

typedef struct eval_ctx {
    struct ks_pipeline *p;
    const eval_conf_t *conf;
    ks_evalstore_t *store;
    ks_evaluator_t *ev;
    atomic_int started, stop;
    pthread_t thread;
    rd_kafka_t *consumer, *producer;
    ks_kafka_ctx_t kctx;
    ks_counter_t *store_full;
    ks_gauge_t *waiting;
} eval_ctx_t;

static const ks_config_key_t eval_keys[] = {
    {"evaluation.labels_topic", KS_CONF_STRING, KS_CONF_OFF(eval_labels_topic), KS_CONF_NOHAS, 0,
     NULL, 0, 0, NULL,
     "Topic of delayed labels, JSON records {id, label: 0/1}; set to evaluate the model "
     "online (AUC, log loss, Brier, calibration, precision/recall per model version; "
     "docs/quality.md). Needs output.id_field and a binary classifier."},
    {"evaluation.id_field", KS_CONF_STRING, KS_CONF_OFF(eval_id_field), KS_CONF_NOHAS, 0, "id",
     0, 0, NULL, "Field of a label record holding the prediction's id (output.id_field's value)."},
    {"evaluation.label_field", KS_CONF_STRING, KS_CONF_OFF(eval_label_field), KS_CONF_NOHAS, 0,
     "label", 0, 0, NULL, "Field of a label record holding the label: 0/1, true/false, \"0\"/\"1\"."},
    {"evaluation.max_wait", KS_CONF_STRING, KS_CONF_OFF(eval_max_wait), KS_CONF_NOHAS, 0, "7d",
     0, 0, NULL,
     "How long a prediction waits for its label; a label after that is counted late."},
    {"evaluation.window", KS_CONF_STRING, KS_CONF_OFF(eval_window), KS_CONF_NOHAS, 0, "1h", 0, 0,
     NULL, "Sliding window (by label arrival) the evaluation metrics cover."},
    {"evaluation.store", KS_CONF_STRING, KS_CONF_OFF(eval_store), KS_CONF_NOHAS, 0,
     "kscore-evaluation.log", 0, 0, NULL,
     "File of the durable store of waiting predictions (relative to the config file); "
     "it survives restarts."},
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
    if (ks_parse_duration_ms(cfg->eval_max_wait, &c->max_wait_ms) ||
        ks_parse_duration_ms(cfg->eval_window, &c->window_ms) || c->window_ms < 15) {
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

static void *labels_thread(void *arg)
{
    eval_ctx_t *x = arg;
    int64_t last = 0;
    while (!atomic_load(&x->stop)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(x->consumer, 100);
        int64_t now = ks_now_wall_ms();
        if (m) {
            if (!m->err)
                on_label(x, m, now);
            else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                ks_log(KS_LOG_WARN, "evaluation: labels topic: %s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
        }
        if (now - last >= 1000) {
            ks_evalstore_expire(x->store, now, expired_cb, x);
            ks_evaluator_compute(x->ev, now, NULL, 0);
            ks_evalstore_stats_t st;
            ks_evalstore_stats(x->store, &st);
            ks_gauge_set(x->waiting, (double)st.waiting);
            if (ks_evalstore_sync(x->store) == KS_OK)
                rd_kafka_commit(x->consumer, NULL, 1); /* the joins are on disk */
            if (x->producer)
                rd_kafka_poll(x->producer, 0);
            last = now;
        }
    }
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
    rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(t, cfg->eval_labels_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(x->consumer, t);
    rd_kafka_topic_partition_list_destroy(t);
    if (err)
        return ks_err(errbuf, errsize, KS_EKAFKA, "evaluation: cannot subscribe to %s: %s",
                      cfg->eval_labels_topic, rd_kafka_err2str(err));
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
