/*
 * windows.c - stage "windows": per-key window features (docs/windows.md)
 * with state that survives crashes and rebalances. The aggregation and the
 * state are state/window.h; this file is their place in the pipeline:
 *
 *   configure    parses `windows:` and the features' `window:` specs and adds
 *                one virtual field per window feature (named like it), which
 *                the features stage reads (kind `window`) and expressions use
 *   (registry)   after lookups: a batch a lookup holds is run again from the
 *                first stage, and this stage's run is not repeatable (it
 *                stops the pipeline if it sees an event twice)
 *   thread_init  online: makes sure the changelog topic exists with the
 *                right settings (once per process), and learns the input
 *                topics' partition counts for the keying check
 *   run          per good row: the event time, then the row's partition
 *                store computes its features and adds it
 *   flush        before the worker commits: the changelog records of the
 *                events applied since the last flush are produced
 *   on_assign    a store per partition, restored from the changelog
 *   on_revoke    drops the partitions' stores (the worker has committed)
 *
 * Durability. At each flush, each key touched since the last one yields one
 * record (its state before the first of those events and the events,
 * state/window.h) to the changelog topic, partition = the input partition,
 * key = input topic + NUL + key. Flushing at the worker's commits rather than
 * after every batch writes a key touched by several batches of a commit
 * interval once (a 10,000-user stream at 500 events per batch touches ~500
 * keys per batch, so per-batch records were one per event). Between flushes
 * a hold (kafka/offsets.h) at the first applied event keeps the worker from
 * committing past it; at the flush every record takes a hold at its key's
 * first event, released when the broker acknowledges it, and the first hold
 * goes: a committed offset C is always covered by durable records. A
 * partition flushes early past MAX_DEFERRED events (memory), and before a
 * periodic snapshot. On assignment, the store is rebuilt from
 * the changelog partition's records, each applied up to C (ks_wstore_restore):
 * the state is exactly that of the events before C, which the consumer then
 * resumes after. A record that cannot be produced or acknowledged stops the
 * pipeline without committing, like an output.
 *
 * The changelog topic (state.changelog_topic, default
 * <input.group_id>-kscore-windows-changelog) is created at start-up with
 * cleanup.policy=compact, as many partitions as the largest input topic, and
 * min.compaction.lag.ms = 15 min (so the record before an uncommitted one is
 * still there when a restore needs it); an existing topic that is not
 * compacted or has too few partitions is refused with a message.
 *
 * Keying. State is partition-local: a key's events must all be in one
 * partition, as the default partitioner does when the input is keyed by the
 * window key. Events whose key (the first window key, when a string) would
 * hash to another partition are counted and warned about (once a minute).
 */
#include "base/common.h"
#include "base/log.h"
#include "base/metrics.h"
#include "engine/pipeline.h"
#include "engine/stage.h"
#include "kafka/client.h"
#include "kafka/offsets.h"
#include "state/snapshot.h"
#include "state/window.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STAGE "windows"
#define COMPACTION_LAG_MS "900000"
#define KAFKA_TIMEOUT_MS 15000
/* deferred events of one partition that make the stage flush before the
 * worker's next commit (bounds the memory of the deferred records) */
#define MAX_DEFERRED 200000

/* ---------------------------------------------------------------- shared */

typedef struct windows_metrics {
    ks_counter_t *late, *sketches, *evicted_idle, *evicted_budget, *wrong_partition;
    ks_counter_t *changelog_records, *restored_records;
    ks_gauge_t *keys, *bytes, *restoring;
    ks_counter_t *restores_snapshot, *restores_changelog;
    ks_histogram_t *restore_seconds_snapshot, *restore_seconds_changelog;
    ks_counter_t *snapshots_written, *snapshot_errors;
    ks_histogram_t *snapshot_write_seconds;
    ks_metric_family_t *refused;     /* by reason */
} windows_metrics_t;

typedef struct windows_ctx {
    const ks_windows_t *w;
    struct ks_pipeline *p;
    windows_metrics_t m;
    char *changelog;             /* topic; NULL when state.changelog is false */
    pthread_mutex_t lock;        /* guards the fields below (first thread_init) */
    int checked;                 /* the changelog topic is there, with the right settings */
    int32_t *n_parts;            /* per input topic, for the keying check (0 = unknown) */
    uint64_t fingerprint;        /* of the window config, for snapshots */
} windows_ctx_t;

static int configure(struct ks_config *cfg, ks_node_t *root, void **conf, char *errbuf,
                     size_t errsize)
{
    ks_windows_t *w = NULL;
    int rc = ks_windows_parse(root, cfg->schema, &w, errbuf, errsize);
    *conf = w;
    return rc;
}

static void conf_free(void *conf)
{
    ks_windows_free(conf);
}

static void metrics_init(windows_metrics_t *m)
{
    ks_metric_family_t *ev = ks_metrics_counter(
        "kscore_window_evictions_total",
        "Window keys dropped: idle longer than windows.key_ttl, or beyond state.max_bytes.",
        "reason");
    m->late = ks_metrics_counter0(ks_metrics_counter(
        "kscore_window_late_events_total",
        "Events older than their key's newest event minus size + grace for at least one "
        "window feature (computed without them, added to no window).", NULL));
    m->sketches = ks_metrics_counter0(ks_metrics_counter(
        "kscore_window_distinct_sketches_total",
        "count_distinct buckets that outgrew max_distinct and switched to HyperLogLog.", NULL));
    m->evicted_idle = ks_metrics_counter_at(ev, (const char *const[]){"idle"});
    m->evicted_budget = ks_metrics_counter_at(ev, (const char *const[]){"budget"});
    m->wrong_partition = ks_metrics_counter0(ks_metrics_counter(
        "kscore_window_wrong_partition_total",
        "Events whose window key hashes to another partition than the one they came from "
        "(the input is not keyed by the window key: window state is per partition).", NULL));
    m->changelog_records = ks_metrics_counter0(ks_metrics_counter(
        "kscore_window_changelog_records_total", "Records produced to the state changelog.",
        NULL));
    m->restored_records = ks_metrics_counter0(ks_metrics_counter(
        "kscore_window_restored_records_total",
        "Changelog records read while restoring window state on assignment.", NULL));
    m->keys = ks_metrics_gauge0(ks_metrics_gauge("kscore_window_keys",
                                                 "Window keys held in memory.", NULL));
    m->bytes = ks_metrics_gauge0(ks_metrics_gauge(
        "kscore_window_state_bytes", "Bytes of window state held in memory.", NULL));
    m->restoring = ks_metrics_gauge0(ks_metrics_gauge(
        "kscore_window_restoring_partitions", "Partitions whose window state is being restored.",
        NULL));
    ks_metric_family_t *rs = ks_metrics_counter(
        "kscore_window_restores_total",
        "Partitions whose window state was restored on assignment, by source: snapshot (a "
        "local snapshot and the changelog after it) or changelog (the changelog alone).",
        "source");
    m->restores_snapshot = ks_metrics_counter_at(rs, (const char *const[]){"snapshot"});
    m->restores_changelog = ks_metrics_counter_at(rs, (const char *const[]){"changelog"});
    static const double secs[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
    ks_metric_family_t *rsec = ks_metrics_histogram(
        "kscore_window_restore_seconds",
        "Time a restore on assignment took (committed offsets, snapshots, changelog), by "
        "source: snapshot when every restored partition had a usable snapshot.",
        "source", secs, KS_ARRAY_LEN(secs));
    m->restore_seconds_snapshot = ks_metrics_histogram_at(rsec, (const char *const[]){"snapshot"});
    m->restore_seconds_changelog =
        ks_metrics_histogram_at(rsec, (const char *const[]){"changelog"});
    m->refused = ks_metrics_counter(
        "kscore_window_snapshots_refused_total",
        "Local snapshots not used on restore, by reason: missing, corrupt (damaged or "
        "truncated), stale (ahead of the committed offset), config (other window features, "
        "topic, group or changelog), changelog (the changelog no longer holds its offset).",
        "reason");
    m->snapshots_written = ks_metrics_counter0(ks_metrics_counter(
        "kscore_window_snapshots_written_total", "Local snapshots of window state written.",
        NULL));
    m->snapshot_errors = ks_metrics_counter0(ks_metrics_counter(
        "kscore_window_snapshot_errors_total",
        "Local snapshots that could not be written (the previous one stays).", NULL));
    m->snapshot_write_seconds = ks_metrics_histogram0(ks_metrics_histogram(
        "kscore_window_snapshot_write_seconds",
        "Time writing one partition's snapshot took (its worker pauses meanwhile).", NULL, secs,
        KS_ARRAY_LEN(secs)));
}

static int init(struct ks_pipeline *p, const void *conf, void **out, char *errbuf,
                size_t errsize)
{
    const struct ks_config *cfg = p->cfg;
    windows_ctx_t *c = ks_xcalloc(1, sizeof(*c));
    c->w = conf;
    c->p = p;
    pthread_mutex_init(&c->lock, NULL);
    metrics_init(&c->m);
    if (strcmp(cfg->state_changelog, "true") == 0) {
        if (cfg->state_changelog_topic) {
            c->changelog = ks_xstrdup(cfg->state_changelog_topic);
        } else {
            size_t len = strlen(cfg->input_group_id) + 40;
            c->changelog = ks_xmalloc(len);
            snprintf(c->changelog, len, "%s-kscore-windows-changelog", cfg->input_group_id);
        }
    }
    c->n_parts = ks_xcalloc(cfg->input_topics.n ? cfg->input_topics.n : 1, sizeof(int32_t));
    c->fingerprint = ks_windows_fingerprint(c->w, cfg->schema);
    *out = c;
    return KS_OK;
}

static void ctx_free(void *ctx)
{
    windows_ctx_t *c = ctx;
    if (!c)
        return;
    pthread_mutex_destroy(&c->lock);
    free(c->changelog);
    free(c->n_parts);
    free(c);
}

/* ---------------------------------------------------------------- the changelog topic */

/* Partition count of a topic, 0 if it does not exist, -1 if unknown. */
static int32_t partition_count(rd_kafka_t *rk, const char *topic)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int32_t n = -1;
    if (rkt && rd_kafka_metadata(rk, 0, rkt, &md, KAFKA_TIMEOUT_MS) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (md->topic_cnt == 1)
            n = md->topics[0].err ? 0 : md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
    }
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    return n;
}

/* Waits for one admin result event on q. */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q)
{
    return rd_kafka_queue_poll(q, KAFKA_TIMEOUT_MS + 5000);
}

static int create_changelog(rd_kafka_t *rk, const char *topic, int32_t parts, char *errbuf,
                            size_t errsize)
{
    char kerr[256];
    int rc = KS_OK;
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, parts, -1, kerr, sizeof(kerr));
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_event_t *ev = NULL;
    if (!nt) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "state changelog topic %s: %s", topic, kerr);
        goto out;
    }
    if (rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact") ||
        rd_kafka_NewTopic_set_config(nt, "min.compaction.lag.ms", COMPACTION_LAG_MS)) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "state changelog topic %s: bad settings", topic);
        goto out;
    }
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    if (!(ev = admin_wait(q))) {
        rc = ks_err(errbuf, errsize, KS_EKAFKA,
                    "creating the state changelog topic %s: no answer from the cluster", topic);
        goto out;
    }
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    size_t n = 0;
    const rd_kafka_topic_result_t **tr = res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
    rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
    if (!err && n == 1)
        err = rd_kafka_topic_result_error(tr[0]);
    if (err && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
        rc = ks_err(errbuf, errsize, KS_EKAFKA,
                    "cannot create the state changelog topic %s: %s (create it with "
                    "cleanup.policy=compact and %d partitions, or set state.changelog_topic)",
                    topic, n == 1 && rd_kafka_topic_result_error_string(tr[0])
                               ? rd_kafka_topic_result_error_string(tr[0])
                               : rd_kafka_err2str(err), (int)parts);
    else
        ks_info("windows: created the state changelog topic %s (%d partitions, compacted)", topic,
                (int)parts);
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    if (nt)
        rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
    return rc;
}

/* The topic's cleanup.policy must include compact. */
static int check_compacted(rd_kafka_t *rk, const char *topic, char *errbuf, size_t errsize)
{
    int rc = KS_OK, found = 0;
    rd_kafka_ConfigResource_t *cr = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_event_t *ev;
    rd_kafka_DescribeConfigs(rk, &cr, 1, NULL, q);
    if (!(ev = admin_wait(q))) {
        rc = ks_err(errbuf, errsize, KS_EKAFKA,
                    "reading the settings of the state changelog topic %s: no answer", topic);
        goto out;
    }
    size_t n = 0, nc = 0;
    const rd_kafka_DescribeConfigs_result_t *res = rd_kafka_event_DescribeConfigs_result(ev);
    const rd_kafka_ConfigResource_t **rs = res ? rd_kafka_DescribeConfigs_result_resources(res, &n)
                                               : NULL;
    rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
    if (!err && n == 1)
        err = rd_kafka_ConfigResource_error(rs[0]);
    if (err) {
        rc = ks_err(errbuf, errsize, KS_EKAFKA,
                    "cannot read the settings of the state changelog topic %s: %s", topic,
                    n == 1 && rd_kafka_ConfigResource_error_string(rs[0])
                        ? rd_kafka_ConfigResource_error_string(rs[0]) : rd_kafka_err2str(err));
        rd_kafka_event_destroy(ev);
        goto out;
    }
    const rd_kafka_ConfigEntry_t **ce = n == 1 ? rd_kafka_ConfigResource_configs(rs[0], &nc) : NULL;
    for (size_t i = 0; i < nc; i++) {
        if (strcmp(rd_kafka_ConfigEntry_name(ce[i]), "cleanup.policy") != 0)
            continue;
        const char *v = rd_kafka_ConfigEntry_value(ce[i]);
        found = 1;
        if (!v || !strstr(v, "compact"))
            rc = ks_err(errbuf, errsize, KS_EINVAL,
                        "the state changelog topic %s exists with cleanup.policy=%s; window "
                        "state needs a compacted topic (kafka-configs --alter --entity-type "
                        "topics --entity-name %s --add-config cleanup.policy=compact), or set "
                        "state.changelog_topic to another topic", topic, v ? v : "?", topic);
    }
    if (!found && rc == KS_OK)
        rc = ks_err(errbuf, errsize, KS_EKAFKA,
                    "the cluster did not say the cleanup.policy of the state changelog topic %s",
                    topic);
    rd_kafka_event_destroy(ev);
out:
    rd_kafka_ConfigResource_destroy(cr);
    rd_kafka_queue_destroy(q);
    return rc;
}

/* Once per process: the input partition counts and the changelog topic. */
static int check_changelog(windows_ctx_t *c, rd_kafka_t *rk, char *errbuf, size_t errsize)
{
    const struct ks_config *cfg = c->p->cfg;
    int rc = KS_OK;
    pthread_mutex_lock(&c->lock);
    if (c->checked)
        goto out;
    int32_t most = 1;
    for (size_t i = 0; i < cfg->input_topics.n; i++) {
        int32_t n = partition_count(rk, cfg->input_topics.items[i]);
        c->n_parts[i] = n > 0 ? n : 0;
        if (n > most)
            most = n;
    }
    if (c->changelog) {
        int32_t have = partition_count(rk, c->changelog);
        if (have < 0) {
            rc = ks_err(errbuf, errsize, KS_EKAFKA,
                        "cannot read the metadata of the state changelog topic %s", c->changelog);
            goto out;
        }
        if (have == 0) /* created compacted: nothing to check */
            rc = create_changelog(rk, c->changelog, most, errbuf, errsize);
        else if (have < most)
            rc = ks_err(errbuf, errsize, KS_EINVAL,
                        "the state changelog topic %s has %d partitions; it needs one per input "
                        "partition (%d): add partitions or set state.changelog_topic",
                        c->changelog, (int)have, (int)most);
        else
            rc = check_compacted(rk, c->changelog, errbuf, errsize);
    }
    if (rc == KS_OK)
        c->checked = 1;
out:
    pthread_mutex_unlock(&c->lock);
    return rc;
}

/* ---------------------------------------------------------------- per thread */

typedef struct part {
    char *topic;
    int32_t partition;
    int topic_index;            /* in input.topics, -1 offline */
    ks_wstore_t *s;
    int64_t last_offset;        /* the last event since the last flush, -1 = none */
    uint64_t deferred;          /* events applied since the last flush */
    uint64_t pending;           /* the hold on the first of them (0 = none) */
    int64_t applied;            /* the last offset applied, -1 = none */
    int64_t restored_at;        /* the committed offset restored to, -1 = none */
    int64_t restore_from;       /* restoring: changelog records before it are in the snapshot */
    int64_t snap_pos;           /* position of the .snap file written or loaded, -1 */
    int64_t next_snap_ns;       /* when the next periodic snapshot is due (0 = never) */
    ks_wstore_stats_t shown;    /* stats last added to the metrics */
} part_t;

typedef struct windows_thread {
    windows_ctx_t *c;
    const ks_stage_env_t *envp;
    ks_stage_env_t env;
    part_t *parts;
    size_t n_parts, cap;
    rd_kafka_topic_t *cl_rkt;   /* the changelog, on the worker's producer */
    rd_kafka_t *restorer;       /* a consumer for committed offsets and restores */
    ks_kafka_ctx_t rctx;
    ks_buf_t key;
    part_t *emitting;           /* the store whose records are being produced */
    int64_t next_warn_ns;
    char err[256];
} windows_thread_t;

static int thread_init(void *ctx, const ks_stage_env_t *env, void **out, char *errbuf,
                       size_t errsize)
{
    windows_ctx_t *c = ctx;
    windows_thread_t *t = ks_xcalloc(1, sizeof(*t));
    int rc = KS_OK;
    t->c = c;
    t->env = *env;
    *out = NULL;
    if (env->producer) { /* offline: no changelog, no restore */
        if ((rc = check_changelog(c, env->producer, errbuf, errsize)))
            goto out;
        if (c->changelog &&
            !(t->cl_rkt = rd_kafka_topic_new(env->producer, c->changelog, NULL))) {
            rc = ks_err(errbuf, errsize, KS_EKAFKA, "cannot open the changelog topic %s: %s",
                        c->changelog, rd_kafka_err2str(rd_kafka_last_error()));
            goto out;
        }
    }
    *out = t;
    t = NULL;
out:
    free(t); /* a failed thread_init gets no thread_free */
    return rc;
}

static void store_metrics(windows_thread_t *t, part_t *pt, int gone)
{
    const windows_metrics_t *m = &t->c->m;
    ks_wstore_stats_t now = {0};
    if (!gone)
        now = *ks_wstore_stats(pt->s);
    ks_counter_add(m->late, now.late - pt->shown.late);
    ks_counter_add(m->sketches, now.distinct_switches - pt->shown.distinct_switches);
    ks_counter_add(m->evicted_idle, now.evicted_idle - pt->shown.evicted_idle);
    ks_counter_add(m->evicted_budget, now.evicted_budget - pt->shown.evicted_budget);
    ks_gauge_add(m->keys, (double)now.keys - (double)pt->shown.keys);
    ks_gauge_add(m->bytes, (double)now.bytes - (double)pt->shown.bytes);
    if (gone) { /* counters never go back */
        now.late = pt->shown.late;
        now.distinct_switches = pt->shown.distinct_switches;
        now.evicted_idle = pt->shown.evicted_idle;
        now.evicted_budget = pt->shown.evicted_budget;
    }
    pt->shown = now;
}

static part_t *find_part(windows_thread_t *t, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < t->n_parts; i++) {
        part_t *pt = &t->parts[i];
        if (pt->partition == partition &&
            (pt->topic == topic || (pt->topic && topic && strcmp(pt->topic, topic) == 0)))
            return pt;
    }
    return NULL;
}

static part_t *add_part(windows_thread_t *t, const char *topic, int32_t partition)
{
    const struct ks_config *cfg = t->c->p->cfg;
    if (t->n_parts == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 8;
        t->parts = ks_xrealloc(t->parts, t->cap * sizeof(part_t));
    }
    part_t *pt = &t->parts[t->n_parts++];
    memset(pt, 0, sizeof(*pt));
    pt->topic = topic ? ks_xstrdup(topic) : NULL;
    pt->partition = partition;
    pt->topic_index = -1;
    for (size_t i = 0; topic && i < cfg->input_topics.n; i++)
        if (strcmp(cfg->input_topics.items[i], topic) == 0)
            pt->topic_index = (int)i;
    pt->s = ks_wstore_new(t->c->w, (uint64_t)cfg->state_max_bytes, t->cl_rkt != NULL);
    pt->last_offset = -1;
    pt->applied = -1;
    pt->restored_at = -1;
    pt->snap_pos = -1;
    if (cfg->state_dir && cfg->state_snapshot_interval_ms > 0)
        pt->next_snap_ns = ks_now_mono_ns() + cfg->state_snapshot_interval_ms * 1000000;
    return pt;
}

/* ---------------------------------------------------------------- snapshots */

/* P: the store holds the state of the partition's events before it (-1 =
 * not known: nothing restored and nothing applied). */
static int64_t position(const part_t *pt)
{
    return pt->applied >= 0 ? pt->applied + 1 : pt->restored_at;
}

static int snap_path(const windows_thread_t *t, const part_t *pt, int prev, char *out,
                     size_t size)
{
    const struct ks_config *cfg = t->c->p->cfg;
    return ks_wsnap_path(out, size, cfg->state_dir, cfg->input_group_id, pt->topic,
                         pt->partition, prev);
}

/* Writes a snapshot of the partition's state (state/snapshot.c says why it
 * is sound to write one at any batch boundary). Between batches. */
static void snapshot(windows_thread_t *t, part_t *pt, const char *why)
{
    windows_ctx_t *c = t->c;
    const struct ks_config *cfg = c->p->cfg;
    int64_t pos = position(pt), lo, hi;
    ks_wsnap_header_t h = {0};
    char path[1024], err[512];
    uint64_t bytes = 0;
    if (!cfg->state_dir || !t->cl_rkt || !pt->topic || pos < 0 || pos == pt->snap_pos ||
        pt->last_offset >= 0 /* records not yet produced (flush_part first) */ ||
        atomic_load(&c->p->fatal))
        return;
    if (strlen(pt->topic) >= sizeof(h.topic) || strlen(c->changelog) >= sizeof(h.changelog) ||
        strlen(cfg->input_group_id) >= sizeof(h.group) ||
        snap_path(t, pt, 0, path, sizeof(path))) {
        ks_counter_add(c->m.snapshot_errors, 1);
        return;
    }
    int64_t t0 = ks_now_mono_ns();
    /* L after the state is at P: records of events >= P land at or past it */
    rd_kafka_resp_err_t kerr = rd_kafka_query_watermark_offsets(
        t->env.producer, c->changelog, pt->partition, &lo, &hi, KAFKA_TIMEOUT_MS);
    if (kerr) {
        ks_warn("windows: no snapshot of %s [%d]: reading the changelog's end offset: %s",
                pt->topic, (int)pt->partition, rd_kafka_err2str(kerr));
        ks_counter_add(c->m.snapshot_errors, 1);
        return;
    }
    h.fingerprint = c->fingerprint;
    h.position = pos;
    h.changelog_end = hi;
    h.partition = pt->partition;
    h.written_ms = ks_now_wall_ms();
    snprintf(h.topic, sizeof(h.topic), "%s", pt->topic);
    snprintf(h.group, sizeof(h.group), "%s", cfg->input_group_id);
    snprintf(h.changelog, sizeof(h.changelog), "%s", c->changelog);
    if (ks_wsnap_write(pt->s, path, &h, &bytes, err, sizeof(err))) {
        ks_warn("windows: no snapshot of %s [%d] (%s): %s", pt->topic, (int)pt->partition, why,
                err);
        ks_counter_add(c->m.snapshot_errors, 1);
        return;
    }
    double secs = (ks_now_mono_ns() - t0) / 1e9;
    ks_counter_add(c->m.snapshots_written, 1);
    ks_histogram_observe(c->m.snapshot_write_seconds, secs);
    pt->snap_pos = pos;
    ks_log(strcmp(why, "periodic") ? KS_LOG_INFO : KS_LOG_DEBUG,
           "windows: snapshot of %s [%d] at offset %lld (%s): %llu keys, %.1f MB in %.2f s",
           pt->topic, (int)pt->partition, (long long)pos, why,
           (unsigned long long)ks_wstore_stats(pt->s)->keys, bytes / 1e6, secs);
}

static void refuse(windows_thread_t *t, const part_t *pt, const char *reason, const char *path,
                   const char *why)
{
    ks_counter_add(ks_metrics_counter_at(t->c->m.refused, (const char *const[]){reason}), 1);
    ks_info("windows: %s [%d]: snapshot %s not used (%s): %s", pt->topic, (int)pt->partition,
            path, reason, why);
}

/* On assignment, before the changelog is read: loads the newest usable
 * snapshot of the partition (its .snap, else its .snap.prev) into its empty
 * store and sets restore_from to its L. Returns 1 if one was loaded. */
static int snapshot_load(windows_thread_t *t, part_t *pt, int64_t committed, int64_t lo,
                         int64_t hi)
{
    windows_ctx_t *c = t->c;
    const struct ks_config *cfg = c->p->cfg;
    char path[1024], err[512], why[1200];
    for (int prev = 0; prev <= 1; prev++) {
        ks_wsnap_reader_t *r = NULL;
        ks_wsnap_header_t h;
        const char *reason = NULL;
        uint64_t keys = 0;
        if (snap_path(t, pt, prev, path, sizeof(path)))
            return 0;
        int rc = ks_wsnap_open(path, &r, &h, err, sizeof(err));
        if (rc == KS_EIO && errno == ENOENT) {
            if (!prev)
                refuse(t, pt, "missing", path, "no such file");
            continue;
        }
        if (rc) {
            refuse(t, pt, "corrupt", path, err);
            continue;
        }
        if (h.fingerprint != c->fingerprint) {
            reason = "config";
            snprintf(why, sizeof(why), "it was written with other window features");
        } else if (strcmp(h.topic, pt->topic) || h.partition != pt->partition ||
                   strcmp(h.group, cfg->input_group_id) || strcmp(h.changelog, c->changelog)) {
            reason = "config";
            snprintf(why, sizeof(why), "it is of %s [%d], group %s, changelog %s", h.topic,
                     (int)h.partition, h.group, h.changelog);
        } else if (h.position > committed) {
            reason = "stale";
            snprintf(why, sizeof(why), "it holds the events before offset %lld, past the "
                     "committed offset %lld (the events between are processed again)",
                     (long long)h.position, (long long)committed);
        } else if (h.changelog_end < lo || h.changelog_end > hi) {
            reason = "changelog";
            snprintf(why, sizeof(why), "it continues at changelog offset %lld, but the changelog "
                     "partition holds %lld..%lld (truncated or recreated)",
                     (long long)h.changelog_end, (long long)lo, (long long)hi);
        }
        if (reason) {
            refuse(t, pt, reason, path, why);
            ks_wsnap_close(r);
            continue;
        }
        int64_t t0 = ks_now_mono_ns();
        rc = ks_wsnap_load(r, pt->s, &keys, err, sizeof(err));
        ks_wsnap_close(r);
        if (rc) {
            refuse(t, pt, "corrupt", path, err);
            ks_wstore_free(pt->s); /* what was read of it is discarded */
            pt->s = ks_wstore_new(c->w, (uint64_t)cfg->state_max_bytes, 1);
            continue;
        }
        pt->restore_from = h.changelog_end;
        pt->snap_pos = prev ? -1 : h.position;
        ks_info("windows: %s [%d]: loaded %llu keys from the snapshot at offset %lld in %.2f s; "
                "the changelog from offset %lld follows", pt->topic, (int)pt->partition,
                (unsigned long long)keys, (long long)h.position, (ks_now_mono_ns() - t0) / 1e9,
                (long long)h.changelog_end);
        return 1;
    }
    return 0;
}

static void drop_part(windows_thread_t *t, part_t *pt)
{
    /* a pending hold goes with its partition: the worker has committed (or
     * rewound) it, and forgets its tokens */
    store_metrics(t, pt, 1);
    ks_wstore_free(pt->s);
    free(pt->topic);
    *pt = t->parts[--t->n_parts];
}

/* One changelog record of the store being flushed: key = topic NUL key. */
static void emit(void *opaque, const void *key, size_t klen, const void *val, size_t vlen)
{
    windows_thread_t *t = opaque;
    part_t *pt = t->emitting;
    int64_t first = 0;
    ks_buf_reset(&t->key);
    ks_buf_append(&t->key, pt->topic, strlen(pt->topic) + 1);
    ks_buf_append(&t->key, key, klen);
    /* the record's first event (the value's stamp, state/window.c) */
    memcpy(&first, (const char *)val + 2, sizeof(first));
    uint64_t token = ks_offsets_hold(t->env.offsets, pt->topic, pt->partition, first);
    int64_t deadline = ks_now_mono_ns() + (int64_t)KAFKA_TIMEOUT_MS * 1000000;
    for (;;) {
        rd_kafka_resp_err_t err =
            rd_kafka_produce(t->cl_rkt, pt->partition, RD_KAFKA_MSG_F_COPY, (void *)val, vlen,
                             t->key.data, t->key.len, (void *)(uintptr_t)token)
                ? rd_kafka_last_error()
                : RD_KAFKA_RESP_ERR_NO_ERROR;
        if (!err) {
            ks_counter_add(t->c->m.changelog_records, 1);
            return;
        }
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || ks_now_mono_ns() > deadline ||
            atomic_load(&t->c->p->fatal)) {
            /* the hold stays: nothing past `first` is committed */
            ks_error("windows: cannot write to the state changelog %s: %s; stopping without "
                     "committing", t->c->changelog, rd_kafka_err2str(err));
            ks_pipeline_fail(t->c->p);
            return;
        }
        rd_kafka_poll(t->env.producer, 10); /* delivery reports make room */
    }
}

/* The keying check: would the default partitioner put this key here? */
static void check_keying(windows_thread_t *t, const part_t *pt, const ks_value_t *row)
{
    if (pt->topic_index < 0 || !t->c->n_parts[pt->topic_index])
        return;
    const ks_value_t *k = &row[t->c->w->groups[0].key_field];
    if (k->type != KS_VAL_STR)
        return;
    int32_t want = rd_kafka_msg_partitioner_murmur2(NULL, k->str, k->len,
                                                    t->c->n_parts[pt->topic_index], NULL, NULL);
    if (want == pt->partition)
        return;
    ks_counter_add(t->c->m.wrong_partition, 1);
    int64_t now = ks_now_mono_ns();
    if (now >= t->next_warn_ns) {
        t->next_warn_ns = now + INT64_C(60000000000);
        ks_warn("windows: an event of key '%.*s' came from %s [%d], but the key hashes to "
                "partition %d: window state is per partition, so the input topic must be keyed "
                "by the window key (kscore_window_wrong_partition_total counts these)",
                (int)(k->len > 64 ? 64 : k->len), k->str, pt->topic, (int)pt->partition,
                (int)want);
    }
}

/* Produces the partition's deferred changelog records (each under a hold at
 * its first event), then lets go of the hold that covered them meanwhile. */
static void flush_part(windows_thread_t *t, part_t *p)
{
    if (p->last_offset >= 0) {
        t->emitting = p;
        ks_wstore_flush(p->s, p->last_offset, t->cl_rkt ? emit : NULL, t);
        p->last_offset = -1;
        p->deferred = 0;
        store_metrics(t, p, 0);
    }
    if (p->pending) {
        int64_t stamp;
        ks_offsets_ack(t->env.offsets, p->pending, &stamp);
        p->pending = 0;
    }
}

static void run(void *tctx, ks_batch_t *b)
{
    windows_thread_t *t = tctx;
    const ks_windows_t *w = t->c->w;
    int64_t wall_ms = ks_now_wall_ms(), mono_ns = ks_now_mono_ns();
    part_t *pt = NULL;

    for (size_t i = 0; i < b->n; i++) {
        if (!ks_batch_ok(b, i))
            continue;
        const ks_event_t *ev = &b->ev[i];
        ks_value_t *row = b->fields + i * b->n_fields;
        int64_t tms;
        if (ks_windows_event_time(w, row, wall_ms - (mono_ns - ev->recv_ns) / 1000000, &tms,
                                  t->err, sizeof(t->err))) {
            const ks_value_t *v = &row[w->time_field];
            ks_batch_fail(b, i,
                          v->type == KS_VAL_MISSING || v->type == KS_VAL_NULL
                              ? KS_ERRCLASS_MISSING_FIELD : KS_ERRCLASS_TYPE,
                          STAGE, t->err);
            continue;
        }
        if (!pt || pt->partition != ev->partition ||
            (pt->topic != ev->topic && (!pt->topic || !ev->topic || strcmp(pt->topic, ev->topic))))
            if (!(pt = find_part(t, ev->topic, ev->partition)))
                pt = add_part(t, ev->topic, ev->partition); /* offline, or not yet assigned */
        if (ev->offset <= pt->applied && !atomic_load(&t->c->p->fatal)) {
            /* the same events again without a rewind (a stage after this
             * one held the batch): counting them twice would corrupt the
             * state, so stop; a restart restores the committed prefix */
            ks_error("windows: %s [%d] offset %lld was already counted (a batch was run "
                     "again after the windows stage); stopping without committing it",
                     pt->topic ? pt->topic : "input", (int)pt->partition,
                     (long long)ev->offset);
            ks_pipeline_fail(t->c->p);
        }
        if (atomic_load(&t->c->p->fatal)) {
            ks_batch_fail(b, i, KS_ERRCLASS_FEATURE, STAGE, "the pipeline is stopping");
            continue;
        }
        if (t->cl_rkt && !pt->pending && pt->topic) /* nothing from here on is committed */
            pt->pending = ks_offsets_hold(t->env.offsets, pt->topic, pt->partition, ev->offset);
        if (ks_wstore_apply(pt->s, row, tms, ev->offset, t->err, sizeof(t->err))) {
            ks_batch_fail(b, i, KS_ERRCLASS_MISSING_FIELD, STAGE, t->err);
            continue;
        }
        pt->last_offset = pt->applied = ev->offset;
        pt->deferred++;
        check_keying(t, pt, row);
    }
    /* offline (no changelog) after every batch; online the records wait for
     * the worker's next commit (flush below), unless too many are waiting */
    for (size_t k = 0; k < t->n_parts; k++)
        if (!t->cl_rkt || t->parts[k].deferred >= MAX_DEFERRED)
            flush_part(t, &t->parts[k]);
    /* periodic snapshots (of a flushed store): at most one partition per
     * batch, so that the pauses spread out */
    for (size_t k = 0; k < t->n_parts; k++) {
        part_t *p = &t->parts[k];
        if (!p->next_snap_ns || mono_ns < p->next_snap_ns)
            continue;
        flush_part(t, p);
        snapshot(t, p, "periodic");
        p->next_snap_ns = ks_now_mono_ns() + t->c->p->cfg->state_snapshot_interval_ms * 1000000;
        break;
    }
}

/* Before the worker commits (stage.h): every partition's deferred changelog
 * records are produced. */
static void flush(void *tctx)
{
    windows_thread_t *t = tctx;
    for (size_t k = 0; k < t->n_parts; k++)
        flush_part(t, &t->parts[k]);
}

/* ---------------------------------------------------------------- restore */

static int restorer_open(windows_thread_t *t, char *errbuf, size_t errsize)
{
    const struct ks_config *cfg = t->c->p->cfg;
    char client_id[64];
    int rc;
    if (t->restorer)
        return KS_OK;
    snprintf(t->rctx.name, sizeof(t->rctx.name), "worker-%d-restore", t->env.worker);
    snprintf(client_id, sizeof(client_id), "kscore-%d-restore", t->env.worker);
    t->rctx.worker = t->env.worker;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if ((rc = ks_config_apply_kafka(cfg, KS_KAFKA_CONSUMER, conf, errbuf, errsize)) ||
        (rc = ks_kafka_conf_set(conf, "client.id", client_id, errbuf, errsize)) ||
        (rc = ks_kafka_conf_set(conf, "group.id", cfg->input_group_id, errbuf, errsize)) ||
        (rc = ks_kafka_conf_set(conf, "enable.auto.commit", "false", errbuf, errsize)) ||
        (rc = ks_kafka_conf_set(conf, "enable.partition.eof", "true", errbuf, errsize))) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    return ks_kafka_client_new(&t->rctx, RD_KAFKA_CONSUMER, conf, &t->restorer, errbuf, errsize);
}

/* Rebuilds the stores of `parts` (just created, empty) as of the group's
 * committed offsets: from a usable local snapshot and the changelog after
 * it, or from the changelog alone. */
static int restore(windows_thread_t *t, const rd_kafka_topic_partition_list_t *parts)
{
    windows_ctx_t *c = t->c;
    const struct ks_config *cfg = c->p->cfg;
    char err[512];
    int rc = KS_OK, n_restored = 0, n_snap = 0;
    size_t n_records = 0;
    int64_t start = ks_now_mono_ns();
    rd_kafka_topic_partition_list_t *committed = rd_kafka_topic_partition_list_copy(parts);
    rd_kafka_topic_partition_list_t *cl = rd_kafka_topic_partition_list_new(parts->cnt);
    int64_t *ends = ks_xcalloc((size_t)parts->cnt, sizeof(int64_t));
    int64_t *los = ks_xcalloc((size_t)parts->cnt, sizeof(int64_t));

    ks_gauge_add(c->m.restoring, parts->cnt);
    atomic_fetch_add(&c->p->restoring, parts->cnt); /* /readyz: not ready meanwhile */
    if ((rc = restorer_open(t, err, sizeof(err))))
        goto restored;
    for (int i = 0; i < committed->cnt; i++)
        committed->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
    rd_kafka_resp_err_t kerr = rd_kafka_committed(t->restorer, committed, KAFKA_TIMEOUT_MS);
    if (kerr) {
        snprintf(err, sizeof(err), "reading the committed offsets: %s", rd_kafka_err2str(kerr));
        rc = KS_EKAFKA;
        goto restored;
    }
    /* per partition with a commit: its snapshot, and where its changelog
     * partition must be read from (the lowest start among the input
     * partitions that share it) */
    for (int i = 0; i < committed->cnt; i++) {
        const rd_kafka_topic_partition_t *e = &committed->elems[i];
        part_t *pt = find_part(t, e->topic, e->partition);
        if (e->offset < 0 || !pt)
            continue; /* nothing committed: the state of nothing is empty */
        rd_kafka_topic_partition_t *r = rd_kafka_topic_partition_list_find(cl, c->changelog,
                                                                          e->partition);
        int64_t lo, hi;
        if (r) {
            lo = los[r - cl->elems];
            hi = ends[r - cl->elems];
        } else {
            kerr = rd_kafka_query_watermark_offsets(t->restorer, c->changelog, e->partition, &lo,
                                                    &hi, KAFKA_TIMEOUT_MS);
            if (kerr) {
                snprintf(err, sizeof(err), "reading the changelog's offsets: %s",
                         rd_kafka_err2str(kerr));
                rc = KS_EKAFKA;
                goto restored;
            }
            r = rd_kafka_topic_partition_list_add(cl, c->changelog, e->partition);
            r->offset = hi;
            los[cl->cnt - 1] = lo;
            ends[cl->cnt - 1] = hi;
        }
        pt->restored_at = e->offset;
        pt->restore_from = 0;
        n_restored++;
        int64_t from = lo;
        if (cfg->state_dir && snapshot_load(t, pt, e->offset, lo, hi)) {
            from = pt->restore_from;
            n_snap++;
            ks_counter_add(c->m.restores_snapshot, 1);
        } else {
            ks_counter_add(c->m.restores_changelog, 1);
        }
        if (from < r->offset)
            r->offset = from;
    }
    /* the changelog partitions with something to read */
    for (int i = 0; i < cl->cnt;) {
        if (cl->elems[i].offset < ends[i]) {
            i++;
            continue;
        }
        ends[i] = ends[cl->cnt - 1];
        los[i] = los[cl->cnt - 1];
        rd_kafka_topic_partition_list_del_by_idx(cl, i);
    }
    if (cl->cnt == 0)
        goto restored;
    if ((kerr = rd_kafka_assign(t->restorer, cl))) {
        snprintf(err, sizeof(err), "assigning the changelog: %s", rd_kafka_err2str(kerr));
        rc = KS_EKAFKA;
        goto restored;
    }
    int left = cl->cnt;
    int64_t deadline = start + cfg->state_restore_timeout_ms * 1000000;
    while (left > 0) {
        /* a shutdown waits for it too: a half-restored partition must never
         * score a batch (the worker drains what it holds before leaving) */
        if (ks_now_mono_ns() > deadline) {
            snprintf(err, sizeof(err), "restoring did not finish within state.restore_timeout_ms "
                     "(%lld ms; %zu records read)", (long long)cfg->state_restore_timeout_ms,
                     n_records);
            rc = KS_EKAFKA;
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(t->restorer, 100);
        if (!m)
            continue;
        int idx = -1;
        for (int k = 0; k < cl->cnt; k++)
            if (cl->elems[k].partition == m->partition)
                idx = k;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF || (!m->err && idx >= 0 &&
                                                          m->offset >= ends[idx] - 1)) {
            if (idx >= 0 && ends[idx] >= 0) {
                ends[idx] = -1; /* done */
                left--;
            }
        }
        if (!m->err && m->key && m->payload) {
            /* key: input topic NUL window key */
            const char *key = m->key, *nul = memchr(key, 0, m->key_len);
            if (nul) {
                for (int k = 0; k < committed->cnt; k++) {
                    const rd_kafka_topic_partition_t *e = &committed->elems[k];
                    if (e->partition != m->partition || e->offset < 0 ||
                        strcmp(e->topic, key) != 0)
                        continue;
                    part_t *pt = find_part(t, e->topic, e->partition);
                    size_t rest = m->key_len - (size_t)(nul + 1 - key);
                    if (!pt || m->offset < pt->restore_from)
                        continue; /* in its snapshot already */
                    if (ks_wstore_restore(pt->s, nul + 1, rest, m->payload, m->len,
                                          e->offset) == KS_EINVAL)
                        ks_warn("windows: %s [%d] offset %lld: a changelog record kscore "
                                "cannot read was skipped", c->changelog, (int)m->partition,
                                (long long)m->offset);
                }
                n_records++;
            }
        } else if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            ks_warn("windows: restoring: %s", rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(t->restorer, NULL);
restored:
    ks_gauge_add(c->m.restoring, -parts->cnt);
    atomic_fetch_sub(&c->p->restoring, parts->cnt);
    ks_counter_add(c->m.restored_records, n_records);
    if (rc) {
        ks_error("windows: cannot restore the window state of %d partition(s) from %s: %s; "
                 "stopping", parts->cnt, c->changelog, err);
        ks_pipeline_fail(c->p);
    } else if (n_restored) {
        size_t keys = 0;
        double secs = (ks_now_mono_ns() - start) / 1e9;
        for (int i = 0; i < parts->cnt; i++) {
            part_t *pt = find_part(t, parts->elems[i].topic, parts->elems[i].partition);
            if (pt) {
                keys += ks_wstore_stats(pt->s)->keys;
                store_metrics(t, pt, 0);
            }
        }
        ks_histogram_observe(n_snap == n_restored ? c->m.restore_seconds_snapshot
                                                  : c->m.restore_seconds_changelog, secs);
        ks_info("windows: restored %zu keys of %d partition(s) (%d from a snapshot) with %zu "
                "changelog records in %.2f s", keys, n_restored, n_snap, n_records, secs);
    }
    free(ends);
    free(los);
    rd_kafka_topic_partition_list_destroy(cl);
    rd_kafka_topic_partition_list_destroy(committed);
    return rc;
}

static void on_assign(void *tctx, const rd_kafka_topic_partition_list_t *parts)
{
    windows_thread_t *t = tctx;
    for (int i = 0; i < parts->cnt; i++) {
        part_t *pt = find_part(t, parts->elems[i].topic, parts->elems[i].partition);
        if (pt)
            drop_part(t, pt); /* state from before: the changelog is the truth */
        add_part(t, parts->elems[i].topic, parts->elems[i].partition);
    }
    if (t->cl_rkt && parts->cnt)
        restore(t, parts);
}

static void on_revoke(void *tctx, const rd_kafka_topic_partition_list_t *parts)
{
    windows_thread_t *t = tctx;
    for (int i = 0; i < parts->cnt; i++) {
        part_t *pt = find_part(t, parts->elems[i].topic, parts->elems[i].partition);
        if (pt) {
            snapshot(t, pt, "revoke"); /* the worker has drained and committed: P = C, usually */
            drop_part(t, pt);
        }
    }
}

static void thread_free(void *tctx)
{
    windows_thread_t *t = tctx;
    if (!t)
        return;
    while (t->n_parts)
        drop_part(t, &t->parts[t->n_parts - 1]);
    free(t->parts);
    if (t->cl_rkt)
        rd_kafka_topic_destroy(t->cl_rkt);
    if (t->restorer) {
        rd_kafka_consumer_close(t->restorer);
        rd_kafka_destroy(t->restorer);
    }
    ks_buf_free(&t->key);
    free(t);
}

static const ks_config_key_t windows_keys[] = {
    {"state.changelog", KS_CONF_ENUM, KS_CONF_OFF(state_changelog), KS_CONF_NOHAS, 0, "true", 0, 0,
     "true|false",
     "Keep window state durable in a compacted changelog topic and restore it on assignment "
     "(false: state starts empty after every restart or rebalance)."},
    {"state.changelog_topic", KS_CONF_STRING, KS_CONF_OFF(state_changelog_topic), KS_CONF_NOHAS,
     0, NULL, 0, 0, NULL,
     "The window state's changelog topic (default <input.group_id>-kscore-windows-changelog); "
     "created compacted at start-up if absent."},
    {"state.max_bytes", KS_CONF_INT, KS_CONF_OFF(state_max_bytes), KS_CONF_NOHAS, 0, "1073741824",
     0, 1LL << 50, NULL,
     "Window state budget per worker, in bytes (0 = none); beyond it the least recently used "
     "keys are evicted (kscore_window_evictions_total{reason=\"budget\"})."},
    {"state.restore_timeout_ms", KS_CONF_INT, KS_CONF_OFF(state_restore_timeout_ms),
     KS_CONF_NOHAS, 0, "300000", 1000, 3600000, NULL,
     "Longest time restoring window state on assignment may take before kscore stops."},
    {"state.dir", KS_CONF_STRING, KS_CONF_OFF(state_dir), KS_CONF_NOHAS, 0, NULL, 0, 0, NULL,
     "Folder for local snapshots of window state (<dir>/<group>/<topic>-<partition>.snap), "
     "written on revoke, on shutdown and every state.snapshot_interval_ms; a restore loads a "
     "usable one and reads only the changelog's tail after it (unset: restore from the "
     "changelog alone). Needs state.changelog."},
    {"state.snapshot_interval_ms", KS_CONF_INT, KS_CONF_OFF(state_snapshot_interval_ms),
     KS_CONF_NOHAS, 0, "60000", 0, 86400000, NULL,
     "How often each partition's window state is snapshotted to state.dir while it runs "
     "(0 = only on revoke and shutdown); a snapshot pauses its worker for about 1 s per "
     "million keys."},
};

static const ks_config_section_t windows_sections[] = {
    {"windows", "Window features' time and lateness: time (an event-time field, or "
                "processing), time_unit, grace, key_ttl (see docs/windows.md)."},
};

const ks_stage_type_t ks_stage_windows = {
    .name = STAGE,
    .keys = windows_keys,
    .n_keys = KS_ARRAY_LEN(windows_keys),
    .sections = windows_sections,
    .n_sections = KS_ARRAY_LEN(windows_sections),
    .configure = configure,
    .conf_free = conf_free,
    .init = init,
    .thread_init = thread_init,
    .run = run,
    .on_assign = on_assign,
    .on_revoke = on_revoke,
    .flush = flush,
    .thread_free = thread_free,
    .free = ctx_free,
};
