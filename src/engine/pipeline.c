/*
 * pipeline.c - builds a pipeline from a config (model, stages, output
 * mapping), runs it on Kafka with N workers, or offline over JSON lines
 * through the same stages.
 */
#include "engine/pipeline.h"
#include "engine/deployments.h"
#include "base/common.h"
#include "base/log.h"
#include "features/features.h"
#include "kafka/topics.h"
#include "kafka/txn.h"
#include "kscore/kscore.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef KSCORE_VERSION
#define KSCORE_VERSION "0.0.0"
#endif

const char *ks_version(void)
{
    return KSCORE_VERSION;
}

/* ---- the model in service ------------------------------------------------
 *
 * p->serving is swapped under serving_lock; a batch takes a reference when it
 * starts scoring and drops it when its records are produced. A reload loads
 * and checks the new file completely (features fit, a warm-up batch predicts
 * finite outputs) before the swap, so a bad file never replaces a good model;
 * the old one is freed by whichever batch releases it last.
 */

static void serving_free(ks_serving_t *sv)
{
    if (!sv)
        return;
    if (sv->model)
        ks_model_unref(sv->model);
    free(sv->model_col);
    free(sv);
}

void ks_serving_release(ks_serving_t *sv)
{
    if (sv && atomic_fetch_sub(&sv->refs, 1) == 1)
        serving_free(sv);
}

ks_serving_t *ks_pipeline_acquire(ks_pipeline_t *p)
{
    pthread_mutex_lock(&p->serving_lock);
    ks_serving_t *sv = p->serving;
    atomic_fetch_add(&sv->refs, 1);
    pthread_mutex_unlock(&p->serving_lock);
    return sv;
}

/* Maps the model's feature names onto the configured feature columns (the
 * model's order wins, every model feature must be configured), checks the
 * output settings, and warms the model up: fixed rows, then the recent
 * events' feature rows (ks_pipeline_keep_recent); every output must be
 * finite. */
int ks_serving_new(ks_pipeline_t *p, ks_model_t *m, ks_serving_t **out, const char **why,
                   char *errbuf, size_t errsize)
{
    const ks_features_t *f = p->cfg->features;
    ks_serving_t *sv = ks_xcalloc(1, sizeof(*sv));
    double *x = NULL, *o = NULL;
    const char *reason = NULL;
    int rc = KS_OK;

    sv->model = m;
    atomic_init(&sv->refs, 1);
    sv->model_col = ks_xcalloc(m->n_features ? m->n_features : 1, sizeof(size_t));
    sv->identity_cols = m->n_features == p->n_cols;
    sv->binary = m->task == KS_TASK_CLASSIFICATION && m->n_classes == 2;
    for (size_t j = 0; j < m->n_features; j++) {
        size_t c;
        for (c = 0; c < p->n_cols; c++)
            if (strcmp(ks_features_name(f, c), m->feature_names[j]) == 0)
                break;
        if (c == p->n_cols) {
            reason = "feature_mismatch";
            rc = ks_err(errbuf, errsize, KS_EINVAL,
                        "%s: the model %s expects feature '%s' (#%zu of %zu), which the "
                        "features section does not define",
                        p->cfg->path, m->path ? m->path : "", m->feature_names[j], j + 1,
                        m->n_features);
            goto out;
        }
        sv->model_col[j] = c;
        if (c != j)
            sv->identity_cols = 0;
    }
    for (size_t c = 0; c < p->n_cols; c++) {
        size_t j;
        for (j = 0; j < m->n_features && sv->model_col[j] != c; j++)
            ;
        if (j == m->n_features)
            ks_warn("feature '%s' is computed but the model does not use it",
                    ks_features_name(f, c));
    }
    if (p->cfg->output_has_threshold && !sv->binary) {
        reason = "output_mismatch";
        rc = ks_err(errbuf, errsize, KS_EINVAL,
                    "%s: output.threshold applies to binary classifiers only, and the model %s "
                    "is not one", p->cfg->path, m->path ? m->path : "");
        goto out;
    }
    /* warm-up: caches, lazily built tables, and a check that it predicts */
    enum { WARM_ROWS = 64 };
    size_t nf = m->n_features ? m->n_features : 1, rows = WARM_ROWS;
    x = ks_xcalloc((WARM_ROWS + KS_RECENT_ROWS) * nf, sizeof(double));
    for (size_t k = 0; k < WARM_ROWS * m->n_features; k++)
        x[k] = (double)(k % 7) - 3;
    pthread_mutex_lock(&p->recent_lock);
    for (size_t r = 0; r < p->n_recent; r++, rows++)
        for (size_t j = 0; j < m->n_features; j++)
            x[rows * nf + j] = p->recent[r * p->n_cols + sv->model_col[j]];
    pthread_mutex_unlock(&p->recent_lock);
    o = ks_xcalloc(rows * m->n_outputs, sizeof(double));
    if (ks_model_predict(m, x, rows, o)) {
        reason = "warmup_failed";
        rc = ks_err(errbuf, errsize, KS_EINVAL, "the model %s failed its warm-up prediction",
                    m->path ? m->path : "");
        goto out;
    }
    for (size_t k = 0; k < rows * m->n_outputs; k++)
        if (!isfinite(o[k])) {
            reason = "warmup_nan";
            rc = ks_err(errbuf, errsize, KS_EINVAL,
                        "the model %s returned a non-finite output on warm-up row %zu of %zu "
                        "(%zu of them recent events)", m->path ? m->path : "",
                        k / m->n_outputs + 1, rows, rows - WARM_ROWS);
            goto out;
        }
    ks_engine_metrics_model_histograms(m, &sv->score, &sv->confidence);
out:
    free(x);
    free(o);
    if (rc) {
        sv->model = NULL; /* the caller still owns m */
        serving_free(sv);
        sv = NULL;
    }
    if (why)
        *why = reason;
    *out = sv;
    return rc;
}

void ks_pipeline_keep_recent(ks_pipeline_t *p, const ks_batch_t *b)
{
    if (b->rows == 0 || pthread_mutex_trylock(&p->recent_lock) != 0)
        return;
    size_t take = b->rows < KS_RECENT_ROWS ? b->rows : KS_RECENT_ROWS;
    for (size_t r = b->rows - take; r < b->rows; r++) {
        memcpy(p->recent + p->recent_pos * p->n_cols, b->F + r * b->n_cols,
               p->n_cols * sizeof(double));
        p->recent_pos = (p->recent_pos + 1) % KS_RECENT_ROWS;
        if (p->n_recent < KS_RECENT_ROWS)
            p->n_recent++;
    }
    pthread_mutex_unlock(&p->recent_lock);
}

/* ---- routing (model.deployments_topic) ---------------------------------- */

void ks_routing_release(ks_routing_t *rt)
{
    if (!rt || atomic_fetch_sub(&rt->refs, 1) != 1)
        return;
    for (size_t i = 0; i < rt->n; i++)
        ks_serving_release(rt->v[i].sv);
    ks_serving_release(rt->shadow.sv);
    ks_serving_release(rt->champion_sv);
    free(rt);
}

void ks_pipeline_acquire_routing(ks_pipeline_t *p, ks_routing_t **rt, ks_serving_t **sv)
{
    pthread_mutex_lock(&p->serving_lock);
    *rt = p->routing;
    if (*rt)
        atomic_fetch_add(&(*rt)->refs, 1);
    *sv = p->serving;
    atomic_fetch_add(&(*sv)->refs, 1);
    pthread_mutex_unlock(&p->serving_lock);
}

void ks_pipeline_set_routing(ks_pipeline_t *p, ks_routing_t *rt)
{
    ks_serving_t *champion = rt->champion_sv;
    atomic_fetch_add(&champion->refs, 1);
    pthread_mutex_lock(&p->serving_lock);
    ks_routing_t *old = p->routing;
    ks_serving_t *old_sv = p->serving;
    p->routing = rt;
    p->serving = champion;
    atomic_fetch_add_explicit(&p->model_swaps, 1, memory_order_relaxed);
    pthread_mutex_unlock(&p->serving_lock);
    if (old_sv != champion) {
        ks_engine_metrics_model_info(&p->metrics, champion->model);
        ks_counter_add(p->metrics.model_reloads, 1);
    }
    ks_routing_release(old);
    ks_serving_release(old_sv);
}

void ks_batch_release_models(ks_batch_t *b)
{
    ks_serving_release(b->sv);
    b->sv = NULL;
    ks_routing_release(b->rt);
    b->rt = NULL;
}

int ks_pipeline_reload(ks_pipeline_t *p, char *errbuf, size_t errsize)
{
    ks_model_t *m = NULL;
    ks_serving_t *sv = NULL;
    int rc;
    if (p->deploy) {
        /* one source of truth, or replicas would drift apart */
        ks_warn("model reload ignored: model.deployments_topic is set, so models are deployed "
                "with `kscore deploy` (docs/deployments.md)");
        return ks_err(errbuf, errsize, KS_ESTATE, "models are deployed through %s",
                      p->cfg->deployments_topic);
    }
    if ((rc = ks_model_load_file(p->cfg->model_path, &m, errbuf, errsize)))
        goto out;
    if (strcmp(m->version, p->serving->model->version) == 0) {
        /* same version: nothing to swap; a file rewritten without a new
         * version is worth a line, since it may not be what was meant */
        ks_info("model reload: %s has the version in service (%s); nothing to swap",
                p->cfg->model_path, m->version);
        ks_counter_add(p->metrics.model_reload_unchanged, 1);
        ks_model_unref(m);
        return KS_OK;
    }
    if ((rc = ks_serving_new(p, m, &sv, NULL, errbuf, errsize))) {
        ks_model_unref(m);
        goto out;
    }
    ks_engine_metrics_model_info(&p->metrics, m);
    pthread_mutex_lock(&p->serving_lock);
    ks_serving_t *old = p->serving;
    p->serving = sv;
    atomic_fetch_add_explicit(&p->model_swaps, 1, memory_order_relaxed);
    pthread_mutex_unlock(&p->serving_lock);
    ks_info("model %s is in service (was %s)", sv->model->version, old->model->version);
    ks_serving_release(old);
    ks_counter_add(p->metrics.model_reloads, 1);
out:
    if (rc) {
        ks_counter_add(p->metrics.model_reload_failures, 1);
        ks_error("model reload refused, %s stays in service: %s", p->serving->model->version,
                 errbuf);
    }
    return rc;
}

/* Builds the pipeline; features_only: the stages up to features, no model
 * (model.path may then be absent, and is not read when present). */
static int pipeline_new(const ks_config_t *cfg, int features_only, ks_pipeline_t **out,
                        char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    ks_model_t *m = NULL;
    ks_pipeline_t *p = ks_xcalloc(1, sizeof(*p));
    p->cfg = cfg;
    p->features_only = features_only;
    p->id_field = -1;
    atomic_init(&p->fatal, 0);
    pthread_mutex_init(&p->serving_lock, NULL);
    pthread_mutex_init(&p->recent_lock, NULL);
    p->n_cols = ks_features_count(cfg->features);
    p->recent = ks_xcalloc(KS_RECENT_ROWS * (p->n_cols ? p->n_cols : 1), sizeof(double));
    ks_engine_metrics_init(&p->metrics);

    if (features_only)
        goto stages;
    if (!cfg->model_path) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "%s: missing required key 'model.path' (the "
                    "model file; only `kscore features` runs without one)", cfg->path);
        goto out;
    }
    if ((rc = ks_model_load_file(cfg->model_path, &m, errbuf, errsize)))
        goto out;
    if ((rc = ks_serving_new(p, m, &p->serving, NULL, errbuf, errsize))) {
        ks_model_unref(m);
        goto out;
    }
    ks_engine_metrics_model_info(&p->metrics, m);
    if (cfg->deployments_topic && (rc = ks_deployments_new(p, errbuf, errsize)))
        goto out;
stages:
    if ((rc = ks_stages_new(p, &p->stages, errbuf, errsize)))
        goto out;
    p->metrics.produce_ack = ks_engine_metrics_stage(&p->metrics, "produce_ack");
    if (cfg->output_id_field)
        p->id_field = ks_schema_find(cfg->schema, cfg->output_id_field);
    p->n_carry = cfg->output_carry_fields.n;
    p->carry = ks_xcalloc(p->n_carry ? p->n_carry : 1, sizeof(int));
    for (size_t i = 0; i < p->n_carry; i++)
        p->carry[i] = ks_schema_find(cfg->schema, cfg->output_carry_fields.items[i]);
out:
    if (rc) {
        ks_pipeline_free(p);
        p = NULL;
    }
    *out = p;
    return rc;
}

int ks_pipeline_new(const ks_config_t *cfg, ks_pipeline_t **out, char *errbuf, size_t errsize)
{
    return pipeline_new(cfg, 0, out, errbuf, errsize);
}

int ks_pipeline_new_features(const ks_config_t *cfg, ks_pipeline_t **out, char *errbuf,
                             size_t errsize)
{
    return pipeline_new(cfg, 1, out, errbuf, errsize);
}

void ks_pipeline_describe(const ks_pipeline_t *p, FILE *out)
{
    const ks_model_t *m = p->serving->model;
    fprintf(out, "config %s is valid\n", p->cfg->path);
    fprintf(out, "model: %s (%s, %s, version %s, %zu features, %zu outputs)\n", m->path,
            m->backend->name, m->objective ? m->objective : "?", m->version, m->n_features,
            m->n_outputs);
    fprintf(out, "features: %zu columns, %s model order\n", p->n_cols,
            p->serving->identity_cols ? "already in" : "reordered to");
    fprintf(out, "input: %zu topic(s) -> output: %s, dead letters: %s\n",
            p->cfg->input_topics.n, p->cfg->output_topic, p->cfg->dlq_topic);
}

/* One topic for ks_pipeline_check_topics: `written` when the workers'
 * producers write it (its max.message.bytes caps their batches). */
static void use_topic(ks_topic_use_t *uses, size_t *n, const char *topic, const char *role,
                      int written)
{
    uses[(*n)++] = (ks_topic_use_t){.topic = topic, .role = role, .written = written};
}

int ks_pipeline_check_topics(ks_pipeline_t *p, int timeout_ms, char *errbuf, size_t errsize)
{
    const struct ks_config *cfg = p->cfg;
    ks_topic_use_t uses[64];
    size_t n = 0;
    for (size_t i = 0; i < cfg->input_topics.n && n < KS_ARRAY_LEN(uses) - 8; i++)
        use_topic(uses, &n, cfg->input_topics.items[i], "input.topics", 0);
    /* written by the workers' producers: their batches must fit each */
    use_topic(uses, &n, cfg->output_topic, "output.topic", 1);
    if (strcmp(cfg->mode, "passthrough") != 0) {
        use_topic(uses, &n, cfg->dlq_topic, "dead_letter.topic", 1);
        if (cfg->feature_log_topic && cfg->feature_log_sample_rate > 0)
            use_topic(uses, &n, cfg->feature_log_topic, "feature_log.topic", 1);
        if (cfg->deployments_topic) {
            use_topic(uses, &n, cfg->deployments_topic, "model.deployments_topic", 0);
            if (cfg->deployments_status_topic)
                use_topic(uses, &n, cfg->deployments_status_topic,
                          "model.deployments_status_topic", 0);
            if (cfg->shadow_topic)
                use_topic(uses, &n, cfg->shadow_topic, "shadow.topic", 1);
        }
        if (cfg->eval_labels_topic) {
            use_topic(uses, &n, cfg->eval_labels_topic, "evaluation.labels_topic", 0);
            if (cfg->eval_topic)
                use_topic(uses, &n, cfg->eval_topic, "evaluation.topic", 0);
        }
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int rc = ks_config_apply_kafka(cfg, KS_KAFKA_PRODUCER, conf, errbuf, errsize);
    if (rc) {
        rd_kafka_conf_destroy(conf);
        return KS_EXIT_USAGE;
    }
    rd_kafka_conf_t *probe = rd_kafka_conf_dup(conf);
    rc = ks_kafka_check_topics(conf, uses, n, timeout_ms, errbuf, errsize);
    int eos = strcmp(cfg->delivery, "exactly_once") == 0;
    if (rc == KS_OK && eos) {
        char txn_id[256];
        snprintf(txn_id, sizeof(txn_id), "kscore-check-%s-%d", cfg->input_group_id,
                 (int)getpid());
        rc = ks_kafka_txn_probe(probe, txn_id, timeout_ms, errbuf, errsize);
        probe = NULL;
    }
    p->produce_max_bytes = 0;
    for (size_t i = 0; rc == KS_OK && i < n; i++)
        if (uses[i].max_bytes > 0 &&
            (!p->produce_max_bytes || uses[i].max_bytes < p->produce_max_bytes)) {
            p->produce_max_bytes = uses[i].max_bytes;
            p->produce_max_topic = uses[i].topic;
        }
    if (rc == KS_OK) { /* on success errbuf says what was checked */
        char limit[256] = "";
        if (p->produce_max_bytes)
            snprintf(limit, sizeof(limit),
                     "\nmax.message.bytes: %lld at most (%s); producer batches fit it",
                     (long long)p->produce_max_bytes, p->produce_max_topic);
        snprintf(errbuf, errsize, "topics: all %zu exist on the cluster%s%s", n, limit,
                 eos ? "\ntransactions: supported (a transactional producer initialised)" : "");
    }
    if (probe)
        rd_kafka_conf_destroy(probe);
    if (rc == KS_EKAFKA)
        ks_warn("%s", errbuf);
    return rc == KS_OK ? KS_EXIT_OK : rc == KS_EINVAL ? KS_EXIT_USAGE : KS_EXIT_RUNTIME;
}

void ks_pipeline_stop(ks_pipeline_t *p)
{
    atomic_store(&p->stop, 1);
}

void ks_pipeline_fail(ks_pipeline_t *p)
{
    atomic_store(&p->fatal, 1);
    atomic_store(&p->stop, 1);
}

void ks_pipeline_request_reload(ks_pipeline_t *p)
{
    atomic_store(&p->reload_requested, 1);
}

/* The model file's identity for the watch: a change of mtime or size
 * triggers a reload attempt (which is skipped if the version is the same). */
static int model_stamp(const char *path, struct stat *st)
{
    return stat(path, st);
}

/* Runs on the main thread while the workers work: reloads the model on
 * SIGHUP and, with model.watch_interval_ms, when its file changes. */
static void supervise(ks_pipeline_t *p)
{
    char err[1024];
    struct stat seen, now;
    int have_seen = model_stamp(p->cfg->model_path, &seen) == 0;
    int64_t watch_ns = p->cfg->model_watch_interval_ms * 1000000, last = ks_now_mono_ns();
    while (!atomic_load(&p->stop)) {
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);
        int reload = 0;
        if (atomic_exchange(&p->reload_requested, 0)) {
            ks_info("SIGHUP: reloading the model from %s", p->cfg->model_path);
            reload = 1;
        } else if (watch_ns > 0 && !p->deploy && ks_now_mono_ns() - last >= watch_ns) {
            last = ks_now_mono_ns();
            if (model_stamp(p->cfg->model_path, &now) == 0 &&
                (!have_seen || now.st_mtim.tv_sec != seen.st_mtim.tv_sec ||
                 now.st_mtim.tv_nsec != seen.st_mtim.tv_nsec || now.st_size != seen.st_size)) {
                seen = now;
                have_seen = 1;
                ks_info("model file %s changed: reloading", p->cfg->model_path);
                reload = 1;
            }
        }
        if (reload)
            ks_pipeline_reload(p, err, sizeof(err));
    }
}

int ks_pipeline_run(ks_pipeline_t *p)
{
    char err[512];
    int rc = KS_EXIT_OK;
    size_t n = (size_t)p->cfg->workers;
    p->workers = ks_xcalloc(n, sizeof(*p->workers));
    /* the routing every replica agrees on, before the first event */
    if (p->deploy && ks_deployments_start(p, err, sizeof(err))) {
        ks_error("%s", err);
        ks_log_flush_repeats(1);
        return KS_EXIT_RUNTIME;
    }
    for (size_t i = 0; i < n; i++) {
        int wrc = ks_worker_new(p, (int)i, &p->workers[i], err, sizeof(err));
        if (wrc) {
            ks_error("cannot start worker %zu: %s", i, err);
            ks_worker_join(p->workers[i], INT64_MAX); /* frees what was set up */
            atomic_store(&p->stop, 1);
            /* KS_EINVAL: a usage error only a run can see (the evaluation
             * store held by another process) */
            rc = wrc == KS_EINVAL ? KS_EXIT_USAGE : KS_EXIT_RUNTIME;
            break;
        }
        p->n_workers++;
    }
    /* all set up: they join the group together */
    for (size_t i = 0; i < p->n_workers && rc == KS_EXIT_OK; i++)
        if (ks_worker_start(p->workers[i], err, sizeof(err))) {
            ks_error("cannot start worker %zu: %s", i, err);
            atomic_store(&p->stop, 1);
            rc = KS_EXIT_RUNTIME;
        }
    ks_info("pipeline running: %zu worker(s), model %s, topics %s... -> %s", p->n_workers,
            p->serving->model->version, p->cfg->input_topics.items[0], p->cfg->output_topic);
    supervise(p);
    int64_t stop_ms = ks_now_wall_ms();
    for (size_t i = 0; i < p->n_workers; i++) {
        /* the workers' own shutdown is bounded by shutdown.timeout_ms; this
         * is the backstop if one is stuck anyway */
        int wrc = ks_worker_join(p->workers[i], stop_ms + p->cfg->shutdown_timeout_ms + 5000);
        if (wrc != KS_EXIT_OK)
            rc = wrc;
    }
    ks_deployments_stop(p);
    /* a worker abandoned at shutdown returns 0 from its join: the outputs it
     * left unacknowledged still make the run a failure */
    if (atomic_load(&p->fatal) || atomic_load(&p->unacknowledged))
        rc = KS_EXIT_RUNTIME;
    ks_log_flush_repeats(1);
    ks_info("pipeline stopped (exit %d)", rc);
    return rc;
}

/* Offline: batches of JSON lines through the same stages. Each good row
 * goes to emit(ctx, batch, row, out, buf); each failed one to `dlq` as a
 * JSON line with its error. */
typedef void (*emit_fn)(ks_pipeline_t *p, ks_batch_t *b, size_t i, ks_buf_t *buf);

static int offline_run(ks_pipeline_t *p, FILE *in, FILE *out, FILE *dlq, emit_fn emit,
                       const char *what)
{
    char err[512];
    ks_batch_t b;
    ks_stage_runner_t *runner = NULL;
    ks_stage_env_t env = {p, -1, NULL, NULL};
    int rc = KS_EXIT_OK;
    size_t batch = (size_t)p->cfg->batch_max_size;
    char **lines = ks_xcalloc(batch, sizeof(char *));
    size_t *caps = ks_xcalloc(batch, sizeof(size_t));
    ks_buf_t dl = {0}, rec = {0};

    ks_batch_init(&b, p->cfg->schema->n_fields, p->n_cols);
    ks_batch_reset(&b, batch);
    if (ks_stage_runner_new(p->stages, &env, &runner, err, sizeof(err))) {
        fprintf(stderr, "kscore: %s\n", err);
        rc = KS_EXIT_USAGE;
        goto out;
    }
    long long lineno = 0;
    for (int eof = 0; !eof;) {
        size_t n = 0;
        while (n < batch) {
            ssize_t len = getline(&lines[n], &caps[n], in);
            if (len < 0) {
                eof = 1;
                break;
            }
            lineno++;
            while (len > 0 && (lines[n][len - 1] == '\n' || lines[n][len - 1] == '\r'))
                len--;
            if (len == 0)
                continue; /* blank lines are not events */
            b.ev[n] = (ks_event_t){lines[n], (size_t)len, NULL, 0, -1, ks_now_mono_ns(), NULL, -1,
                                   lineno, NULL};
            n++;
        }
        if (n == 0)
            break;
        ks_batch_reset(&b, n);
        ks_stage_runner_run(runner, &b);
        /* a stage held the batch (a required lookup without Redis): wait and
         * run it again from the start, as the workers do (engine/stage.h) */
        for (int told = 0; b.hold_ms > 0;) {
            if (!told++)
                ks_warn("%s; waiting (trying again every %lld ms)", b.hold_reason,
                        (long long)b.hold_ms);
            struct timespec ts = {(time_t)(b.hold_ms / 1000), (long)(b.hold_ms % 1000) * 1000000};
            nanosleep(&ts, NULL);
            ks_batch_release_models(&b);
            ks_batch_reset(&b, n);
            ks_stage_runner_run(runner, &b);
        }
        ks_buf_reset(&rec);
        for (size_t i = 0; i < n; i++) {
            if (!ks_batch_ok(&b, i)) {
                ks_buf_reset(&dl);
                ks_buf_puts(&dl, "{\"error_class\":");
                const char *cls = ks_errclass_name(b.err[i]);
                ks_buf_json_string(&dl, cls, strlen(cls));
                ks_buf_puts(&dl, ",\"error_message\":");
                ks_buf_json_string(&dl, b.errmsg[i], strlen(b.errmsg[i]));
                ks_buf_printf(&dl, ",\"line\":%lld,\"value\":", (long long)b.ev[i].offset);
                ks_buf_json_string(&dl, b.ev[i].value, b.ev[i].len);
                ks_buf_puts(&dl, "}\n");
                fwrite(dl.data, 1, dl.len, dlq);
                continue;
            }
            emit(p, &b, i, &rec);
        }
        fwrite(rec.data, 1, rec.len, out);
        ks_batch_release_models(&b);
    }
    if (fflush(out) != 0 || ferror(out)) {
        fprintf(stderr, "kscore: error writing %s\n", what);
        rc = KS_EXIT_RUNTIME;
    }
out:
    ks_stage_runner_free(runner);
    ks_batch_destroy(&b);
    for (size_t i = 0; i < batch; i++)
        free(lines[i]);
    free(lines);
    free(caps);
    ks_buf_free(&dl);
    ks_buf_free(&rec);
    return rc;
}

static void emit_record(ks_pipeline_t *p, ks_batch_t *b, size_t i, ks_buf_t *buf)
{
    (void)p;
    size_t len;
    const char *rec = ks_batch_record(b, i, &len);
    ks_buf_append(buf, rec, len);
    ks_buf_putc(buf, '\n');
}

int ks_pipeline_predict_stream(ks_pipeline_t *p, FILE *in, FILE *out, FILE *dlq)
{
    return offline_run(p, in, out, dlq, emit_record, "predictions");
}

/* A feature value as a CSV cell: empty when missing (NaN), otherwise the
 * number exactly as output.include_features writes it. */
static void put_csv_number(ks_buf_t *buf, double v)
{
    if (isnan(v))
        return;
    if (isinf(v))
        ks_buf_puts(buf, v > 0 ? "inf" : "-inf");
    else
        ks_buf_json_double(buf, v);
}

static void emit_feature_row(ks_pipeline_t *p, ks_batch_t *b, size_t i, ks_buf_t *buf)
{
    if (p->id_field >= 0) {
        const ks_value_t *id = &ks_batch_row(b, i)[p->id_field];
        if (id->type == KS_VAL_STR)
            ks_buf_csv_field(buf, id->str, id->len);
        else if (id->type == KS_VAL_NUM)
            put_csv_number(buf, id->num);
        else if (id->type == KS_VAL_BOOL)
            ks_buf_puts(buf, id->b ? "true" : "false");
        ks_buf_putc(buf, ',');
    }
    ks_buf_printf(buf, "%lld", (long long)b->ev[i].offset);
    const double *row = b->F + b->good_row[i] * b->n_cols;
    for (size_t c = 0; c < b->n_cols; c++) {
        ks_buf_putc(buf, ',');
        put_csv_number(buf, row[c]);
    }
    ks_buf_putc(buf, '\n');
}

int ks_pipeline_features_stream(ks_pipeline_t *p, FILE *in, FILE *out, FILE *dlq)
{
    ks_buf_t head = {0};
    if (p->id_field >= 0)
        ks_buf_puts(&head, "id,");
    ks_buf_puts(&head, "line");
    for (size_t c = 0; c < p->n_cols; c++) {
        const char *name = ks_features_name(p->cfg->features, c);
        ks_buf_putc(&head, ',');
        ks_buf_csv_field(&head, name, strlen(name));
    }
    ks_buf_putc(&head, '\n');
    fwrite(head.data, 1, head.len, out);
    ks_buf_free(&head);
    return offline_run(p, in, out, dlq, emit_feature_row, "feature rows");
}

int ks_pipeline_free(ks_pipeline_t *p)
{
    if (!p)
        return 0;
    if (atomic_load(&p->abandoned))
        return 1; /* a stuck worker may still touch it; the process is exiting */
    ks_stages_free(p->stages);
    ks_deployments_free(p);
    ks_routing_release(p->routing);
    ks_serving_release(p->serving);
    pthread_mutex_destroy(&p->serving_lock);
    pthread_mutex_destroy(&p->recent_lock);
    free(p->recent);
    free(p->workers);
    free(p->carry);
    free(p);
    return 0;
}
