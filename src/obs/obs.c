/*
 * obs.c - attaches the observers to a pipeline for `kscore run`: the
 * librdkafka statistics collector (hooked into the workers' clients through
 * engine/status.h) and the HTTP endpoint (metrics, health, status page).
 */
#include "base/common.h"
#include "base/log.h"
#include "engine/status.h"
#include "kscore/kscore.h"
#include "obs/http.h"
#include "obs/kafka_stats.h"

#include <stdlib.h>
#include <string.h>

struct ks_obs {
    ks_kstats_t *kstats;
    ks_http_t *http;
    ks_kafka_observer_t observer;
};

int ks_obs_start(ks_pipeline_t *p, ks_obs_t **out, char *errbuf, size_t errsize)
{
    const struct ks_config *cfg = ks_status_config(p);
    ks_obs_t *o = ks_xcalloc(1, sizeof(*o));
    int rc = KS_OK;
    *out = o;
    if (strcmp(cfg->metrics_enabled, "true") != 0)
        return KS_OK;
    /* a busy or bad metrics.listen is a start-up error, like a bad config */
    if ((rc = ks_kstats_new((int)cfg->workers, &o->kstats, errbuf, errsize)) ||
        (rc = ks_http_start(p, o->kstats, cfg->metrics_listen, &o->http, errbuf, errsize))) {
        ks_obs_stop(o);
        *out = NULL;
        return rc;
    }
    o->observer = ks_kstats_observer(o->kstats);
    ks_status_observe_kafka(p, &o->observer);
    ks_info("metrics: %s/metrics, health: %s/healthz %s/readyz, status page: %s/",
            ks_http_url(o->http), ks_http_url(o->http), ks_http_url(o->http),
            ks_http_url(o->http));
    return KS_OK;
}

void ks_obs_stop(ks_obs_t *o)
{
    if (!o)
        return;
    ks_http_stop(o->http);
    ks_kstats_free(o->kstats);
    free(o);
}
