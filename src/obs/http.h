/*
 * http.h - kscore's HTTP endpoint (libmicrohttpd, one internal polling
 * thread) on metrics.listen, default 127.0.0.1:9464:
 *
 *   GET /metrics      Prometheus text format 0.0.4: the metrics registry
 *                     (base/metrics.h) plus the standard process collector
 *                     (process_cpu_seconds_total, process_resident_memory_bytes,
 *                     process_virtual_memory_bytes, process_start_time_seconds,
 *                     process_open_fds, process_max_fds), read from /proc at
 *                     scrape time
 *   GET /healthz      200 {"status":"ok",...} while the process serves
 *   GET /readyz       200 when the model is loaded, partitions are assigned
 *                     and the brokers are reachable, else 503; the JSON body
 *                     lists each check and says why it fails
 *   GET /status.json  what the status page draws: totals, per-second rates and
 *                     latency percentiles over the last minutes, lag per
 *                     partition, brokers, model, recent warnings and errors
 *   GET /             the live status page (obs/status_page.c), self-contained
 *
 * A sampler thread snapshots the engine's counters and histograms once a
 * second into a ring (KS_HTTP_HISTORY seconds); /status.json computes rates
 * and windowed percentiles from it, so a freshly opened page shows history.
 *
 * Only GET and HEAD; anything else is 405. Handlers read lock-free counters
 * and take short mutexes (registry, statistics, logger); none touches the
 * workers' hot path.
 */
#ifndef KS_HTTP_H
#define KS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "obs/kafka_stats.h"

struct ks_pipeline;
typedef struct ks_http ks_http_t;

#define KS_HTTP_HISTORY 300 /* seconds of 1 Hz snapshots kept for the status page */

/* Binds `listen` ("HOST:PORT", "[V6]:PORT", ":PORT" for every address; port 0
 * picks a free one) and starts serving the pipeline's metrics and status.
 * The pipeline must outlive the server; kstats may be NULL (then readiness
 * reports the Kafka checks as unknown). Returns KS_OK, or KS_EINVAL (bad
 * address) / KS_EIO (cannot bind: in use, no permission) with a sentence.
 * Call from the thread that will call ks_http_stop. */
int ks_http_start(struct ks_pipeline *p, ks_kstats_t *kstats, const char *listen,
                  ks_http_t **out, char *errbuf,
                  size_t errsize);
/* The bound address as a URL, e.g. "http://127.0.0.1:9464". */
const char *ks_http_url(const ks_http_t *h);
/* Stops serving and frees. NULL is fine. */
void ks_http_stop(ks_http_t *h);

/* The process collector's metrics in the Prometheus text format (appended). */
void ks_http_render_process_metrics(ks_buf_t *out);

/* Readiness as served on /readyz: returns 1 if ready; appends the JSON body. */
int ks_http_readiness(struct ks_pipeline *p, ks_kstats_t *kstats, ks_buf_t *out);

/* The histogram quantile q (0..1) from per-bucket counts (non-cumulative,
 * n_bounds + 1 with the +Inf bucket last), interpolated linearly inside the
 * bucket as Prometheus' histogram_quantile does; NaN when empty. Exposed for
 * tests. */
double ks_http_quantile(const double *bounds, size_t n_bounds, const uint64_t *counts, double q);

/* The embedded status page (obs/status_page.c). */
extern const char ks_status_page_html[];

#endif
