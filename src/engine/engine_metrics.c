/*
 * engine_metrics.c - registers kscore's engine metrics (see engine_metrics.h).
 */
#include "engine/engine_metrics.h"
#include "base/common.h"

#include <stdio.h>
#include <string.h>

static const double regression_bounds[] = {-1e6, -1e4, -1e3, -100, -10, -1, -0.1, 0,
                                           0.1,  1,    10,   100,  1e3, 1e4, 1e6};

void ks_engine_metrics_init(ks_engine_metrics_t *em)
{
    ks_metric_family_t *f;
    em->consumed = ks_metrics_counter0(
        ks_metrics_counter("kscore_events_consumed_total", "Events consumed from input topics.", NULL));
    em->predicted = ks_metrics_counter0(ks_metrics_counter(
        "kscore_events_predicted_total", "Events scored and produced to the output topic.", NULL));
    f = ks_metrics_counter("kscore_events_dead_lettered_total",
                           "Events sent to the dead-letter topic, by error class.", "class");
    for (int c = 1; c < KS_ERRCLASS__COUNT; c++) {
        const char *v[] = {ks_errclass_name((ks_errclass_t)c)};
        em->dead_lettered[c] = ks_metrics_counter_at(f, v);
    }
    em->batches = ks_metrics_counter0(
        ks_metrics_counter("kscore_batches_total", "Micro-batches processed.", NULL));
    em->rebalances = ks_metrics_counter0(ks_metrics_counter(
        "kscore_rebalances_total", "Consumer group rebalances (assignments and revocations).", NULL));
    em->commits = ks_metrics_counter0(
        ks_metrics_counter("kscore_offset_commits_total", "Offset commits sent.", NULL));
    em->commit_failures = ks_metrics_counter0(
        ks_metrics_counter("kscore_offset_commit_failures_total", "Offset commits that failed.", NULL));
    em->txn_commits = ks_metrics_counter0(ks_metrics_counter(
        "kscore_transactions_committed_total",
        "Kafka transactions committed (delivery: exactly_once).", NULL));
    em->txn_aborts = ks_metrics_counter0(ks_metrics_counter(
        "kscore_transactions_aborted_total",
        "Kafka transactions aborted; their events were processed again (delivery: "
        "exactly_once).", NULL));
    em->kafka_errors = ks_metrics_counter0(ks_metrics_counter(
        "kscore_kafka_errors_total", "Errors reported by librdkafka (transient included).", NULL));
    em->backpressure_pauses = ks_metrics_counter0(ks_metrics_counter(
        "kscore_backpressure_pauses_total",
        "Times consumption was paused because the producer queue was full.", NULL));
    em->batches_held = ks_metrics_counter0(ks_metrics_counter(
        "kscore_batches_held_total",
        "Times a stage held a batch back (a required lookup could not be served): consumption "
        "paused and the batch ran again later.", NULL));
    em->workers_holding = ks_metrics_gauge0(ks_metrics_gauge(
        "kscore_workers_holding", "Workers paused on a held batch right now.", NULL));
    em->batch_size = ks_metrics_histogram0(
        ks_metrics_histogram("kscore_batch_size", "Events per micro-batch.", NULL,
                             ks_buckets_batch_size, ks_buckets_batch_size_n));
    f = ks_metrics_histogram(
        "kscore_batch_gap_seconds",
        "Time between consecutive batches of a worker (one finished writing to the next), "
        "model_swap=\"near\" when a model or routing swap fell in the gap or a neighbouring "
        "one.",
        "model_swap", ks_buckets_latency_seconds, ks_buckets_latency_seconds_n);
    for (int near = 0; near < 2; near++) {
        const char *v[] = {near ? "near" : "none"};
        em->batch_gap[near] = ks_metrics_histogram_at(f, v);
    }
    em->stage_family = ks_metrics_histogram(
        "kscore_stage_duration_seconds",
        "Time per micro-batch in each stage (produce_ack: per record, from produce to broker "
        "acknowledgement).",
        "stage", ks_buckets_latency_seconds, ks_buckets_latency_seconds_n);
    em->n_timed = 0;
    em->produce_ack = ks_engine_metrics_stage(em, "produce_ack");
    em->end_to_end = ks_metrics_histogram0(ks_metrics_histogram(
        "kscore_end_to_end_latency_seconds",
        "From the input record's timestamp to the broker acknowledging its output.", NULL,
        ks_buckets_latency_seconds, ks_buckets_latency_seconds_n));
    em->model_info = ks_metrics_gauge("kscore_model_info", "The model in service (value 1).",
                                      "model_version,backend,objective");
    em->model_reloads = ks_metrics_counter0(
        ks_metrics_counter("kscore_model_reloads_total", "Models swapped in after start-up.", NULL));
    em->model_reload_unchanged = ks_metrics_counter0(ks_metrics_counter(
        "kscore_model_reload_unchanged_total",
        "Reloads that found the version in service (nothing swapped).", NULL));
    em->model_reload_failures = ks_metrics_counter0(ks_metrics_counter(
        "kscore_model_reload_failures_total",
        "Model files refused on reload (the model in service stayed).", NULL));
}

void ks_engine_metrics_model_histograms(const ks_model_t *model, ks_histogram_t **score,
                                        ks_histogram_t **confidence)
{
    const char *ver[] = {model->version};
    int cls = model->task == KS_TASK_CLASSIFICATION;
    /* one family for every version, each version's buckets fitting its task
     * (a reload may switch a classifier for a regressor) */
    *score = ks_metrics_histogram_at_bounds(
        ks_metrics_histogram("kscore_prediction_score",
                             "Predictions: P(positive class) for binary classifiers, the top "
                             "probability for multiclass, the value for regression (buckets by "
                             "the version's task).",
                             "model_version", ks_buckets_unit_interval,
                             ks_buckets_unit_interval_n),
        ver, cls ? ks_buckets_unit_interval : regression_bounds,
        cls ? ks_buckets_unit_interval_n : KS_ARRAY_LEN(regression_bounds));
    *confidence = ks_metrics_histogram_at(
        ks_metrics_histogram("kscore_prediction_confidence",
                             "Top class probability of each prediction (classifiers).",
                             "model_version", ks_buckets_unit_interval, ks_buckets_unit_interval_n),
        ver);
}

void ks_engine_metrics_model_info(ks_engine_metrics_t *em, const ks_model_t *model)
{
    const char *info[] = {model->version, model->backend->name,
                          model->objective ? model->objective : ""};
    ks_metrics_gauge_reset(em->model_info);
    ks_gauge_set(ks_metrics_gauge_at(em->model_info, info), 1);
}

ks_histogram_t *ks_engine_metrics_stage(ks_engine_metrics_t *em, const char *name)
{
    const char *v[] = {name};
    ks_histogram_t *h = ks_metrics_histogram_at(em->stage_family, v);
    size_t i;
    for (i = 0; i < em->n_timed && strcmp(em->timed_name[i], name) != 0; i++)
        ;
    if (i == em->n_timed && i < KS_TIMED_MAX) {
        em->timed_name[i] = name;
        em->timed[i] = h;
        em->n_timed++;
    }
    return h;
}

void ks_engine_metrics_gap_gauges(int worker, ks_gauge_t *max[2])
{
    char w[16];
    snprintf(w, sizeof(w), "%d", worker);
    ks_metric_family_t *f = ks_metrics_gauge(
        "kscore_batch_gap_max_seconds",
        "A worker's largest time between consecutive batches since start, by whether a model "
        "swap was near (see kscore_batch_gap_seconds).",
        "worker,model_swap");
    for (int near = 0; near < 2; near++) {
        const char *v[] = {w, near ? "near" : "none"};
        max[near] = ks_metrics_gauge_at(f, v);
    }
}

ks_gauge_t *ks_engine_metrics_queue_gauge(int worker)
{
    char w[16];
    snprintf(w, sizeof(w), "%d", worker);
    const char *v[] = {w};
    return ks_metrics_gauge_at(ks_metrics_gauge("kscore_producer_queue_messages",
                                                "Records waiting in the producer queue.", "worker"),
                               v);
}
