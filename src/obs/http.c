/*
 * http.c - the metrics, health and status endpoint (see http.h).
 *
 * libmicrohttpd runs one internal polling thread on a socket we bind
 * ourselves, so a bad or busy address is reported with the reason before
 * anything else starts (the caller turns it into exit code 2). Responses are
 * built into a ks_buf_t whose memory libmicrohttpd frees after sending.
 *
 * The sampler thread keeps a ring of 1 Hz snapshots of the engine's totals
 * and histograms. Rates are differences between neighbouring snapshots;
 * percentiles are taken from the difference of bucket counts over a window
 * (5 s per chart point, 10 s for the headline numbers), the same estimate
 * Prometheus' histogram_quantile(q, rate(..._bucket[w])) makes.
 */
#include "obs/http.h"
#include "base/common.h"
#include "base/log.h"
#include "base/metrics.h"
#include "engine/status.h"
#include "obs/kafka_stats.h"
#include "kscore/kscore.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXB 40          /* histogram buckets per snapshot, +Inf included */
#define SERIES_POINTS 120
#define POINT_WINDOW 5   /* seconds behind each chart point's percentiles */
#define HEADLINE_WINDOW 10

typedef struct snap {
    int64_t t_ms;
    uint64_t consumed, predicted, dead_lettered, batches;
    uint64_t dlq_by_class[KS_ERRCLASS__COUNT];
    uint64_t e2e[MAXB];
    uint64_t stage[KS_TIMED_MAX][MAXB];
    uint64_t score[MAXB];
    double score_sum;
    uint64_t score_count;
    const ks_histogram_t *score_hist; /* the model version's histogram the counts came from */
} snap_t;

struct ks_http {
    struct ks_pipeline *p;
    ks_kstats_t *kstats;       /* NULL: statistics are off */
    struct MHD_Daemon *daemon;
    int fd;
    char url[96];
    int64_t started_ms;

    pthread_t sampler;
    int sampler_started, stopping;
    pthread_mutex_t lock; /* the ring and `stopping` */
    pthread_cond_t wake;
    snap_t *ring;         /* KS_HTTP_HISTORY entries */
    size_t ring_next, ring_count;
};

/* ---- percentiles ------------------------------------------------------ */

double ks_http_quantile(const double *bounds, size_t n_bounds, const uint64_t *counts, double q)
{
    uint64_t total = 0;
    for (size_t i = 0; i <= n_bounds; i++)
        total += counts[i];
    if (total == 0 || n_bounds == 0)
        return NAN;
    double rank = q * (double)total, cum = 0;
    for (size_t i = 0; i <= n_bounds; i++) {
        double c = (double)counts[i];
        if (cum + c >= rank && c > 0) {
            if (i == n_bounds) /* +Inf bucket: the highest finite bound */
                return bounds[n_bounds - 1];
            double lo = i == 0 ? (bounds[0] > 0 ? 0 : bounds[0]) : bounds[i - 1];
            return lo + (bounds[i] - lo) * ((rank - cum) / c);
        }
        cum += c;
    }
    return bounds[n_bounds - 1];
}

/* ---- snapshots -------------------------------------------------------- */

static size_t hist_copy(const ks_histogram_t *h, uint64_t *out)
{
    size_t n = h->n_bounds + 1 < MAXB ? h->n_bounds + 1 : MAXB;
    for (size_t i = 0; i < n; i++)
        out[i] = atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
    return n;
}

static void take_snapshot(struct ks_pipeline *p, snap_t *s)
{
    const ks_engine_metrics_t *em = ks_status_metrics(p);
    memset(s, 0, sizeof(*s));
    s->t_ms = ks_now_wall_ms();
    s->consumed = atomic_load(&em->consumed->v);
    s->predicted = atomic_load(&em->predicted->v);
    s->batches = atomic_load(&em->batches->v);
    for (int c = 1; c < KS_ERRCLASS__COUNT; c++) {
        s->dlq_by_class[c] = em->dead_lettered[c] ? atomic_load(&em->dead_lettered[c]->v) : 0;
        s->dead_lettered += s->dlq_by_class[c];
    }
    hist_copy(em->end_to_end, s->e2e);
    for (size_t st = 0; st < em->n_timed; st++)
        hist_copy(em->timed[st], s->stage[st]);
    /* the prediction distribution of the model in service (a hot swap starts
     * a new histogram: deltas across a swap are not taken, see same_model) */
    ks_status_model_t m;
    ks_status_model_get(p, &m);
    s->score_hist = m.score;
    hist_copy(m.score, s->score);
    s->score_count = atomic_load(&m.score->count);
    uint64_t bits = atomic_load(&m.score->sum_bits);
    memcpy(&s->score_sum, &bits, sizeof(bits));
    ks_status_model_put(&m);
}

/* The older snapshot, if its prediction counts are from the same model. */
static const snap_t *same_model(const snap_t *now, const snap_t *old)
{
    return old && old->score_hist == now->score_hist ? old : NULL;
}

static void *sampler_main(void *arg)
{
    ks_http_t *h = arg;
    pthread_mutex_lock(&h->lock);
    while (!h->stopping) {
        snap_t s;
        pthread_mutex_unlock(&h->lock);
        take_snapshot(h->p, &s);
        pthread_mutex_lock(&h->lock);
        h->ring[h->ring_next] = s;
        h->ring_next = (h->ring_next + 1) % KS_HTTP_HISTORY;
        if (h->ring_count < KS_HTTP_HISTORY)
            h->ring_count++;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        while (!h->stopping &&
               pthread_cond_timedwait(&h->wake, &h->lock, &ts) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

/* The k-th snapshot counting back from the newest (0 = newest); lock held. */
static const snap_t *back(const ks_http_t *h, size_t k)
{
    return &h->ring[(h->ring_next + KS_HTTP_HISTORY - 1 - k) % KS_HTTP_HISTORY];
}

static double delta_quantile(const double *bounds, size_t n_bounds, const uint64_t *newer,
                             const uint64_t *older, double q)
{
    uint64_t d[MAXB];
    size_t n = n_bounds + 1 < MAXB ? n_bounds + 1 : MAXB;
    for (size_t i = 0; i < n; i++)
        d[i] = newer[i] - (older ? older[i] : 0);
    return ks_http_quantile(bounds, n - 1, d, q);
}

static void put_num(ks_buf_t *b, double v)
{
    if (isfinite(v))
        ks_buf_printf(b, "%.6g", v);
    else
        ks_buf_puts(b, "null");
}

/* ---- process metrics -------------------------------------------------- */

void ks_http_render_process_metrics(ks_buf_t *out)
{
    long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    unsigned long long utime = 0, stime = 0, start = 0, vsize = 0;
    long long rss = 0;
    char *rp = strrchr(buf, ')');
    if (rp && ticks > 0) {
        /* fields 3.. after the command name: 14 utime, 15 stime, 22 starttime,
         * 23 vsize, 24 rss (pages) */
        char *save = NULL, *tok = strtok_r(rp + 1, " ", &save);
        for (int field = 3; tok && field <= 24; field++, tok = strtok_r(NULL, " ", &save)) {
            if (field == 14)
                utime = strtoull(tok, NULL, 10);
            else if (field == 15)
                stime = strtoull(tok, NULL, 10);
            else if (field == 22)
                start = strtoull(tok, NULL, 10);
            else if (field == 23)
                vsize = strtoull(tok, NULL, 10);
            else if (field == 24)
                rss = strtoll(tok, NULL, 10);
        }
    }
    unsigned long long btime = 0;
    if ((f = fopen("/proc/stat", "r"))) {
        char line[256];
        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "btime %llu", &btime) == 1)
                break;
        fclose(f);
    }
    long fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.')
                fds++;
        closedir(d);
        fds--; /* the directory's own descriptor */
    }
    struct rlimit rl;
    double max_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                         ? (double)rl.rlim_cur
                         : -1;
    double tk = ticks > 0 ? (double)ticks : 100;
    ks_buf_printf(out,
                  "# HELP process_cpu_seconds_total Total user and system CPU time spent in "
                  "seconds.\n# TYPE process_cpu_seconds_total counter\n"
                  "process_cpu_seconds_total %.2f\n",
                  (double)(utime + stime) / tk);
    ks_buf_printf(out,
                  "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                  "# TYPE process_resident_memory_bytes gauge\n"
                  "process_resident_memory_bytes %lld\n",
                  rss * (long long)page);
    ks_buf_printf(out,
                  "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
                  "# TYPE process_virtual_memory_bytes gauge\n"
                  "process_virtual_memory_bytes %llu\n",
                  vsize);
    ks_buf_printf(out,
                  "# HELP process_start_time_seconds Start time of the process since unix "
                  "epoch in seconds.\n# TYPE process_start_time_seconds gauge\n"
                  "process_start_time_seconds %.2f\n",
                  (double)btime + (double)start / tk);
    ks_buf_printf(out,
                  "# HELP process_open_fds Number of open file descriptors.\n"
                  "# TYPE process_open_fds gauge\nprocess_open_fds %ld\n",
                  fds);
    if (max_fds >= 0)
        ks_buf_printf(out,
                      "# HELP process_max_fds Maximum number of open file descriptors.\n"
                      "# TYPE process_max_fds gauge\nprocess_max_fds %.0f\n",
                      max_fds);
}

/* ---- readiness -------------------------------------------------------- */

int ks_http_readiness(struct ks_pipeline *p, ks_kstats_t *kstats, ks_buf_t *out)
{
    ks_buf_t why = {0}, reasons = {0};
    int n_reasons = 0;
#define REASON(...)                                                                            \
    do {                                                                                       \
        ks_buf_puts(&reasons, n_reasons++ ? "," : "");                                         \
        ks_buf_reset(&why);                                                                    \
        ks_buf_printf(&why, __VA_ARGS__);                                                      \
        ks_buf_json_string(&reasons, why.data, why.len);                                       \
    } while (0)

    ks_status_model_t m;
    ks_status_model_get(p, &m);
    int model_ok = m.version != NULL;
    if (!model_ok)
        REASON("no model is loaded");
    int assigned = kstats ? ks_kstats_assigned(kstats) : -1;
    int parts_ok = assigned > 0;
    if (assigned < 0)
        REASON("partition assignment unknown (Kafka statistics are off)");
    else if (assigned == 0)
        REASON("no input partitions assigned yet (joining the consumer group, or the group "
               "has more members than the topics have partitions)");
    ks_buf_t bwhy = {0};
    int brokers_ok = kstats ? ks_kstats_reachable(kstats, &bwhy) : 0;
    if (!kstats)
        REASON("broker reachability unknown (Kafka statistics are off)");
    else if (!brokers_ok)
        REASON("brokers unreachable: %.*s", (int)bwhy.len, bwhy.data);
    int stopping, fatal;
    ks_status_state(p, &stopping, &fatal);
    if (stopping)
        REASON("shutting down");
    if (fatal)
        REASON("a worker hit an unrecoverable Kafka error");
    const char *hold_why = NULL;
    int holding = ks_status_holding(p, &hold_why);
    if (holding)
        REASON("%s: consumption paused on %d worker(s)", hold_why, holding);
    int restoring = ks_status_restoring(p);
    if (restoring)
        REASON("restoring the window state of %d partition(s)", restoring);
    int ready =
        model_ok && parts_ok && brokers_ok && !stopping && !fatal && !holding && !restoring;

    ks_buf_printf(out, "{\"ready\":%s,\"checks\":{\"model_loaded\":{\"ok\":%s",
                  ready ? "true" : "false", model_ok ? "true" : "false");
    if (model_ok) {
        ks_buf_puts(out, ",\"version\":");
        ks_buf_json_string(out, m.version, strlen(m.version));
    }
    ks_buf_printf(out, "},\"partitions_assigned\":{\"ok\":%s,\"assigned\":%d}",
                  parts_ok ? "true" : "false", assigned);
    ks_buf_printf(out, ",\"broker_reachable\":{\"ok\":%s", brokers_ok ? "true" : "false");
    if (bwhy.len) {
        ks_buf_puts(out, ",\"detail\":");
        ks_buf_json_string(out, bwhy.data, bwhy.len);
    }
    ks_buf_printf(out, "},\"running\":{\"ok\":%s},\"not_held\":{\"ok\":%s,"
                       "\"workers_holding\":%d},\"state_restored\":{\"ok\":%s,"
                       "\"restoring\":%d}},\"reasons\":[",
                  !stopping && !fatal ? "true" : "false", holding ? "false" : "true", holding,
                  restoring ? "false" : "true", restoring);
    if (reasons.len)
        ks_buf_append(out, reasons.data, reasons.len);
    ks_buf_puts(out, "]}");
    ks_buf_free(&why);
    ks_buf_free(&bwhy);
    ks_buf_free(&reasons);
    ks_status_model_put(&m);
    return ready;
#undef REASON
}

/* ---- /status.json ----------------------------------------------------- */

static void put_quantiles(ks_buf_t *b, const double *bounds, size_t nb, const uint64_t *newer,
                          const uint64_t *older)
{
    ks_buf_puts(b, "{\"p50\":");
    put_num(b, delta_quantile(bounds, nb, newer, older, 0.50) * 1e3);
    ks_buf_puts(b, ",\"p95\":");
    put_num(b, delta_quantile(bounds, nb, newer, older, 0.95) * 1e3);
    ks_buf_puts(b, ",\"p99\":");
    put_num(b, delta_quantile(bounds, nb, newer, older, 0.99) * 1e3);
    ks_buf_putc(b, '}');
}

/* ,"drift":{"active":..,"window_s":..,"rows":..,"min_rows":..,"score_psi":..,
 *  "worst":[{"feature":..,"psi":..,"missing_change":..}]} */
static void put_drift(struct ks_pipeline *p, ks_buf_t *b)
{
    ks_drift_status_t d;
    ks_status_drift(p, &d);
    ks_buf_printf(b, ",\"drift\":{\"active\":%s,\"window_s\":%.3f,\"rows\":%llu,"
                     "\"min_rows\":%llu,\"model_version\":",
                  d.active ? "true" : "false", (double)d.window_ms / 1e3,
                  (unsigned long long)d.rows, (unsigned long long)d.min_rows);
    ks_buf_json_string(b, d.version, strlen(d.version));
    ks_buf_puts(b, ",\"score_psi\":");
    put_num(b, d.score_psi);
    ks_buf_puts(b, ",\"worst\":[");
    for (size_t i = 0; i < d.n_worst; i++) {
        ks_buf_puts(b, i ? ",{\"feature\":" : "{\"feature\":");
        ks_buf_json_string(b, d.worst[i].feature, strlen(d.worst[i].feature));
        ks_buf_puts(b, ",\"psi\":");
        put_num(b, d.worst[i].psi);
        ks_buf_puts(b, ",\"missing_change\":");
        put_num(b, d.worst[i].missing_change);
        ks_buf_putc(b, '}');
    }
    ks_buf_puts(b, "]}");
}

/* ,"evaluation":{"active":..,"waiting":..,"labels":{"joined":..,...},
 *  "groups":[{"model_version","variant","pairs","auc","log_loss","brier",
 *  "precision","recall","labelled_ratio","calibration":[rate per decile]}]} */
static void put_evaluation(struct ks_pipeline *p, ks_buf_t *b)
{
    ks_status_eval_t e;
    ks_status_evaluation(p, &e);
    ks_buf_printf(b, ",\"evaluation\":{\"active\":%s,\"waiting\":%llu,\"store_full\":%llu,"
                     "\"labels\":{\"joined\":%llu,\"unknown\":%llu,\"duplicate\":%llu,"
                     "\"late\":%llu},\"groups\":[",
                  e.active ? "true" : "false", (unsigned long long)e.store.waiting,
                  (unsigned long long)e.store.full,
                  (unsigned long long)e.outcomes[KS_EVAL_JOINED],
                  (unsigned long long)e.outcomes[KS_EVAL_UNKNOWN],
                  (unsigned long long)e.outcomes[KS_EVAL_DUPLICATE],
                  (unsigned long long)e.outcomes[KS_EVAL_LATE]);
    for (size_t g = 0; g < e.n_groups; g++) {
        const ks_eval_group_status_t *s = &e.group[g];
        ks_buf_puts(b, g ? ",{\"model_version\":" : "{\"model_version\":");
        ks_buf_json_string(b, s->version, strlen(s->version));
        ks_buf_puts(b, ",\"variant\":");
        ks_buf_json_string(b, s->variant, strlen(s->variant));
        ks_buf_printf(b, ",\"pairs\":%zu", s->m.n);
        const char *names[] = {"auc", "log_loss", "brier", "precision", "recall",
                               "labelled_ratio"};
        double v[] = {s->m.auc, s->m.log_loss, s->m.brier, s->m.precision, s->m.recall,
                      s->labelled_ratio};
        for (size_t k = 0; k < KS_ARRAY_LEN(v); k++) {
            ks_buf_printf(b, ",\"%s\":", names[k]);
            put_num(b, v[k]);
        }
        ks_buf_puts(b, ",\"calibration\":[");
        for (int d = 0; d < KS_EVAL_DECILES; d++) {
            if (d)
                ks_buf_putc(b, ',');
            put_num(b, s->cal_rate[d]);
        }
        ks_buf_puts(b, "]}");
    }
    ks_buf_puts(b, "]}");
}

static void status_json(ks_http_t *h, ks_buf_t *b)
{
    struct ks_pipeline *p = h->p;
    const struct ks_config *cfg = ks_status_config(p);
    const ks_engine_metrics_t *em = ks_status_metrics(p);
    ks_status_model_t m;
    ks_status_model_get(p, &m);
    const double *lb = ks_buckets_latency_seconds;
    size_t nlb = ks_buckets_latency_seconds_n;
    snap_t now;
    take_snapshot(p, &now);

    ks_buf_printf(b, "{\"version\":\"%s\",\"now_ms\":%lld,\"uptime_s\":%.1f,\"workers\":%d,",
                  ks_version(), (long long)now.t_ms, (double)(now.t_ms - h->started_ms) / 1e3,
                  (int)cfg->workers);
    ks_buf_puts(b, "\"model\":{\"version\":");
    ks_buf_json_string(b, m.version, strlen(m.version));
    ks_buf_puts(b, ",\"backend\":");
    ks_buf_json_string(b, m.backend, strlen(m.backend));
    ks_buf_puts(b, ",\"objective\":");
    ks_buf_json_string(b, m.objective, strlen(m.objective));
    ks_buf_printf(b, ",\"task\":\"%s\",\"n_features\":%zu},",
                  m.classification ? "classification" : "regression", m.n_features);
    ks_buf_puts(b, "\"topics\":{\"input\":[");
    for (size_t i = 0; i < cfg->input_topics.n; i++) {
        if (i)
            ks_buf_putc(b, ',');
        ks_buf_json_string(b, cfg->input_topics.items[i], strlen(cfg->input_topics.items[i]));
    }
    ks_buf_puts(b, "],\"output\":");
    ks_buf_json_string(b, cfg->output_topic, strlen(cfg->output_topic));
    ks_buf_puts(b, ",\"dead_letter\":");
    ks_buf_json_string(b, cfg->dlq_topic, strlen(cfg->dlq_topic));
    ks_buf_puts(b, "},\"deployments\":");
    ks_status_deployments_json(p, b);
    ks_buf_puts(b, ",\"readiness\":");
    ks_http_readiness(p, h->kstats, b);
    put_drift(p, b);
    put_evaluation(p, b);

    ks_buf_printf(b, ",\"totals\":{\"consumed\":%llu,\"predicted\":%llu,\"dead_lettered\":%llu,"
                     "\"batches\":%llu,\"dead_lettered_by_class\":{",
                  (unsigned long long)now.consumed, (unsigned long long)now.predicted,
                  (unsigned long long)now.dead_lettered, (unsigned long long)now.batches);
    for (int c = 1; c < KS_ERRCLASS__COUNT; c++)
        ks_buf_printf(b, "%s\"%s\":%llu", c > 1 ? "," : "", ks_errclass_name((ks_errclass_t)c),
                      (unsigned long long)now.dlq_by_class[c]);
    ks_buf_puts(b, "}},");

    pthread_mutex_lock(&h->lock);
    size_t n = h->ring_count;
    size_t first = n > SERIES_POINTS + 1 ? SERIES_POINTS : (n ? n - 1 : 0); /* points shown */
    /* series: point k uses snapshots back(k) and back(k + 1), oldest first */
    static const char *names[] = {"t", "consumed_per_s", "predicted_per_s", "dead_lettered_per_s",
                                  "e2e_p50_ms", "e2e_p95_ms", "e2e_p99_ms", "score_mean"};
    ks_buf_puts(b, "\"series\":{");
    for (size_t s = 0; s < KS_ARRAY_LEN(names); s++) {
        ks_buf_printf(b, "%s\"%s\":[", s ? "," : "", names[s]);
        for (size_t j = 0; j < first; j++) {
            size_t k = first - 1 - j;
            const snap_t *a = back(h, k), *prev = back(h, k + 1);
            size_t wk = k + POINT_WINDOW < n - 1 ? k + POINT_WINDOW : n - 1;
            const snap_t *w = back(h, wk);
            double dt = (double)(a->t_ms - prev->t_ms) / 1e3;
            if (dt <= 0)
                dt = 1;
            if (j)
                ks_buf_putc(b, ',');
            switch (s) {
            case 0: ks_buf_printf(b, "%lld", (long long)a->t_ms); break;
            case 1: put_num(b, (double)(a->consumed - prev->consumed) / dt); break;
            case 2: put_num(b, (double)(a->predicted - prev->predicted) / dt); break;
            case 3: put_num(b, (double)(a->dead_lettered - prev->dead_lettered) / dt); break;
            case 4: put_num(b, delta_quantile(lb, nlb, a->e2e, w->e2e, 0.50) * 1e3); break;
            case 5: put_num(b, delta_quantile(lb, nlb, a->e2e, w->e2e, 0.95) * 1e3); break;
            case 6: put_num(b, delta_quantile(lb, nlb, a->e2e, w->e2e, 0.99) * 1e3); break;
            default: {
                const snap_t *ws = same_model(a, w); /* NULL across a model swap */
                uint64_t dc = a->score_count - (ws ? ws->score_count : 0);
                double ds = a->score_sum - (ws ? ws->score_sum : 0);
                put_num(b, dc ? ds / (double)dc : NAN);
            }
            }
        }
        ks_buf_putc(b, ']');
    }
    ks_buf_puts(b, "},");

    /* headline latency: the last HEADLINE_WINDOW seconds (everything since
     * start while the ring is younger) */
    const snap_t *old = n > HEADLINE_WINDOW ? back(h, HEADLINE_WINDOW) : NULL;
    ks_buf_printf(b, "\"latency_ms\":{\"window_s\":%d,\"end_to_end\":", HEADLINE_WINDOW);
    put_quantiles(b, lb, nlb, now.e2e, old ? old->e2e : NULL);
    ks_buf_puts(b, ",\"stages\":{");
    for (size_t st = 0; st < em->n_timed; st++) {
        ks_buf_printf(b, "%s\"%s\":", st ? "," : "", em->timed_name[st]);
        put_quantiles(b, lb, nlb, now.stage[st], old ? old->stage[st] : NULL);
    }
    ks_buf_puts(b, "}},");

    /* prediction distribution over the last minute */
    const snap_t *minute = same_model(&now, n > 60 ? back(h, 60) : NULL);
    const ks_histogram_t *sh = now.score_hist;
    ks_buf_puts(b, "\"score_distribution\":{\"window_s\":60,\"bounds\":[");
    for (size_t i = 0; i < sh->n_bounds; i++) {
        if (i)
            ks_buf_putc(b, ',');
        put_num(b, sh->bounds[i]);
    }
    ks_buf_puts(b, "],\"counts\":[");
    for (size_t i = 0; i <= sh->n_bounds && i < MAXB; i++)
        ks_buf_printf(b, "%s%llu", i ? "," : "",
                      (unsigned long long)(now.score[i] - (minute ? minute->score[i] : 0)));
    ks_buf_puts(b, "]},");
    pthread_mutex_unlock(&h->lock);

    ks_buf_puts(b, "\"kafka\":");
    if (h->kstats)
        ks_kstats_json(h->kstats, b);
    else
        ks_buf_puts(b, "null");
    ks_buf_puts(b, ",\"errors\":");
    ks_log_recent_json(b, 20);
    ks_buf_puts(b, "}");
    ks_status_model_put(&m);
}

/* ---- requests --------------------------------------------------------- */

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, const char *type,
                               ks_buf_t *body, int cache)
{
    if (!body->data)
        ks_buf_reserve(body, 1);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(body->len, body->data, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        ks_buf_free(body);
        return MHD_NO;
    }
    body->data = NULL; /* libmicrohttpd frees it */
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, cache ? "max-age=60" : "no-store");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    ks_http_t *h = cls;
    ks_buf_t b = {0};
    static int marker;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        ks_buf_puts(&b, "{\"error\":\"only GET and HEAD\"}\n");
        return respond(c, MHD_HTTP_METHOD_NOT_ALLOWED, "application/json", &b, 0);
    }
    if (*con_cls == NULL) { /* headers only so far */
        *con_cls = &marker;
        return MHD_YES;
    }
    if (!strcmp(url, "/metrics")) {
        ks_status_refresh(h->p);
        ks_metrics_render(&b);
        ks_http_render_process_metrics(&b);
        return respond(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", &b, 0);
    }
    if (!strcmp(url, "/healthz")) {
        ks_buf_printf(&b, "{\"status\":\"ok\",\"version\":\"%s\",\"uptime_s\":%.1f}\n",
                      ks_version(), (double)(ks_now_wall_ms() - h->started_ms) / 1e3);
        return respond(c, MHD_HTTP_OK, "application/json", &b, 0);
    }
    if (!strcmp(url, "/readyz")) {
        int ready = ks_http_readiness(h->p, h->kstats, &b);
        ks_buf_putc(&b, '\n');
        return respond(c, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, "application/json",
                       &b, 0);
    }
    if (!strcmp(url, "/status.json")) {
        status_json(h, &b);
        return respond(c, MHD_HTTP_OK, "application/json", &b, 0);
    }
    if (!strcmp(url, "/") || !strcmp(url, "/index.html")) {
        ks_buf_puts(&b, ks_status_page_html);
        return respond(c, MHD_HTTP_OK, "text/html; charset=utf-8", &b, 1);
    }
    ks_buf_puts(&b, "{\"error\":\"not found\",\"endpoints\":[\"/\",\"/metrics\",\"/healthz\","
                    "\"/readyz\",\"/status.json\"]}\n");
    return respond(c, MHD_HTTP_NOT_FOUND, "application/json", &b, 0);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    ks_warn("http: %s", msg);
}

/* ---- start / stop ----------------------------------------------------- */

/* Splits "HOST:PORT", "[V6]:PORT" or ":PORT". */
static int split_listen(const char *spec, char *host, size_t hsize, char *port, size_t psize)
{
    const char *colon;
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (!close || close[1] != ':')
            return -1;
        snprintf(host, hsize, "%.*s", (int)(close - spec - 1), spec + 1);
        colon = close + 1;
    } else {
        colon = strrchr(spec, ':');
        if (!colon)
            return -1;
        snprintf(host, hsize, "%.*s", (int)(colon - spec), spec);
    }
    const char *ps = colon + 1;
    if (!*ps || strspn(ps, "0123456789") != strlen(ps) || strlen(ps) > 5 || atoi(ps) > 65535)
        return -1;
    snprintf(port, psize, "%s", ps);
    return 0;
}

static int bind_listen(const char *spec, int *fd_out, int *family, char *url, size_t usize,
                       char *errbuf, size_t errsize)
{
    char host[256], port[8];
    if (split_listen(spec, host, sizeof(host), port, sizeof(port)))
        return ks_err(errbuf, errsize, KS_EINVAL,
                      "metrics.listen \"%s\" is not HOST:PORT (e.g. 127.0.0.1:9464, [::1]:9464, "
                      ":9464)", spec);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (gai)
        return ks_err(errbuf, errsize, KS_EINVAL, "metrics.listen %s: cannot resolve \"%s\": %s",
                      spec, host, gai_strerror(gai));
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 64) == 0) {
            *family = ai->ai_family;
            break;
        }
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return ks_err(errbuf, errsize, KS_EIO,
                      "metrics.listen %s: cannot listen: %s (is another kscore or exporter "
                      "using it? pick another port, or set metrics.enabled: false)",
                      spec, strerror(err));
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char addr[INET6_ADDRSTRLEN] = "?";
    int bound_port = 0;
    memset(&ss, 0, sizeof(ss));
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof(addr));
            bound_port = ntohs(s6->sin6_port);
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof(addr));
            bound_port = ntohs(s4->sin_port);
        }
    }
    if (ss.ss_family == AF_INET6)
        snprintf(url, usize, "http://[%s]:%d", addr, bound_port);
    else
        snprintf(url, usize, "http://%s:%d", addr, bound_port);
    *fd_out = fd;
    return KS_OK;
}

int ks_http_start(struct ks_pipeline *p, ks_kstats_t *kstats, const char *spec, ks_http_t **out, char *errbuf,
                  size_t errsize)
{
    int rc, family = AF_INET;
    ks_http_t *h = ks_xcalloc(1, sizeof(*h));
    h->p = p;
    h->kstats = kstats;
    h->fd = -1;
    h->started_ms = ks_now_wall_ms();
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->wake, NULL);
    h->ring = ks_xcalloc(KS_HTTP_HISTORY, sizeof(*h->ring));
    *out = NULL;

    if ((rc = bind_listen(spec, &h->fd, &family, h->url, sizeof(h->url), errbuf, errsize)))
        goto out;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
                                 MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, (void *)NULL,
                                 MHD_OPTION_LISTEN_SOCKET, (MHD_socket)h->fd,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                                 MHD_OPTION_END);
    if (!h->daemon) {
        rc = ks_err(errbuf, errsize, KS_EIO, "metrics.listen %s: cannot start the HTTP server",
                    spec);
        goto out;
    }
    h->fd = -1; /* the daemon owns it now */
    if (pthread_create(&h->sampler, NULL, sampler_main, h) != 0) {
        rc = ks_err(errbuf, errsize, KS_EIO, "cannot start the status sampler thread");
        goto out;
    }
    h->sampler_started = 1;
    ks_gauge_set(ks_metrics_gauge_at(ks_metrics_gauge("kscore_build_info",
                                                      "kscore's version (value 1).", "version"),
                                     (const char *const[]){ks_version()}),
                 1);
    *out = h;
out:
    if (rc)
        ks_http_stop(h);
    return rc;
}

const char *ks_http_url(const ks_http_t *h)
{
    return h->url;
}

void ks_http_stop(ks_http_t *h)
{
    if (!h)
        return;
    if (h->sampler_started) {
        pthread_mutex_lock(&h->lock);
        h->stopping = 1;
        pthread_cond_signal(&h->wake);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->sampler, NULL);
    }
    if (h->daemon)
        MHD_stop_daemon(h->daemon);
    if (h->fd >= 0)
        close(h->fd);
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->lock);
    free(h->ring);
    free(h);
}
