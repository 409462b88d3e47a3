/*
 * gen.c - `kscore gen`: an open-loop generator of fraud-example events, a real
 * Kafka producer (or JSON lines on stdout for offline runs).
 *
 * Open loop: event i is due at start + i/rate (constant) or after exponential
 * gaps (Poisson); it is sent when due whether or not the pipeline keeps up,
 * and it is stamped with its due time (`sent_at_us`), so latency measured
 * from the stamp includes any time spent queued behind a slow system (no
 * coordinated omission). The generator never reads the pipeline's output; the
 * only thing that can hold it back is its own producer queue (a broker that
 * does not take the data), which it counts and reports. Between due times it
 * sleeps (absolute-time clock_nanosleep, 1 ns timer slack), waking at most once
 * per --tick-us (default 200 us), and on waking sends everything that has
 * fallen due: at high rates small bursts, instead of burning a core on a spin
 * loop or on a wake-up per event (in this VM, 50,000 events/s with a wake-up
 * each cost 88% of a core, mostly in the kernel) on a machine it shares with
 * the system under test; how late each send was relative to its stamp is measured
 * and reported (late_p99_us), so the generator's own share of a measured
 * latency is known. --rate 0 sends as fast as possible, stamped with the
 * actual send time. Events are deterministic for a given seed: event i
 * has id "<prefix><i>" and the same field values in every run, so a test can
 * compare online outputs with `kscore predict` over `kscore gen --stdout`.
 *
 * The fraud scenario (--fraud F, for examples/fraud/): events gain a
 * merchant_id, ordinary amounts follow each user's usual amount, and
 * card-testing attacks (scenario_next) put bursts of unusual transactions on
 * a user's card, more often on risky users' (new accounts, past
 * chargebacks). --labels FILE writes the label of every well-formed event
 * ({"id", "label"}: 1 for an attack, plus 0.2% noise), --profiles FILE the
 * users' profiles (ks_gen_profile) as a lookup snapshot: so the window
 * features and the profile both carry signal. Without --fraud the events are
 * byte for byte those of earlier releases.
 *
 * Malformed events: with --malformed F, exactly floor(count*F) events are
 * malformed (event i is when floor((i+1)F) > floor(iF)), cycling through bad
 * JSON, a wrong type, a missing required field and invalid UTF-8.
 */
#include "cli/gen.h"
#include "cli/cli.h"
#include "base/common.h"
#include "kscore/kscore.h"

#include <librdkafka/rdkafka.h>
#include <math.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *categories[] = {"grocery", "travel", "online", "restaurant", "fuel",
                                   "electronics", "gambling", "other"};
static const char *methods[] = {"card", "wallet", "bank"};
static const char *countries[] = {"US", "GB", "DE", "FR", "BR", "IN", "NG", "JP"};

/* splitmix64: a tiny, good, seedable PRNG; per-event streams by hashing i. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static double unit(uint64_t *s)
{
    *s = mix(*s);
    return (double)(*s >> 11) / 9007199254740992.0;
}

void ks_gen_profile(uint64_t key_index, ks_gen_profile_t *out)
{
    uint64_t s = mix(0x9f0f11e5ULL ^ mix(key_index));
    double u = unit(&s), c = unit(&s);
    out->segment = u < 0.15 ? "new" : u < 0.85 ? "regular" : "premium";
    out->chargebacks_90d = c < 0.9 ? 0 : c < 0.97 ? 1 : c < 0.99 ? 2 : 3;
    out->avg_amount_90d = round(exp(2.5 + 1.2 * unit(&s) + (u >= 0.85 ? 0.7 : 0)) * 100) / 100;
}

/* The user's usual merchants: 4 per user, out of 20,000. */
#define USUAL_MERCHANTS 4
#define MERCHANTS 20000

void ks_gen_event(ks_buf_t *b, uint64_t seed, uint64_t i, uint64_t key_index, int malformed_kind,
                  int kind, int64_t sent_at_us)
{
    uint64_t s = mix(seed ^ mix(i));
    /* lognormal-ish amounts: most small, a long tail */
    double spread = unit(&s) + unit(&s) + unit(&s) - 1.5;
    double amount = round(exp(3.0 + 1.4 * spread) * 100) / 100;
    int cat = (int)(unit(&s) * KS_ARRAY_LEN(categories));
    int n_tx = (int)(unit(&s) * unit(&s) * 40);
    int age = (int)(unit(&s) * 3650);
    int method = (int)(unit(&s) * KS_ARRAY_LEN(methods));
    int country = (int)(unit(&s) * KS_ARRAY_LEN(countries));
    int64_t ts = 1767225600 + (int64_t)(i % 31536000); /* 2026 */
    time_t tt = (time_t)ts;
    struct tm tm;
    gmtime_r(&tt, &tm);
    unsigned long long merchant = 0;
    if (kind != KS_GEN_PLAIN) {
        /* the scenario's draws come after the plain ones, so the fields the
         * kinds share keep their values */
        ks_gen_profile_t pr;
        ks_gen_profile(key_index, &pr);
        double m = unit(&s), c = unit(&s);
        if (kind == KS_GEN_ORDINARY) {
            amount = round(pr.avg_amount_90d * exp(0.5 * spread) * 100) / 100;
            merchant = mix(key_index * USUAL_MERCHANTS + (uint64_t)(m * USUAL_MERCHANTS)) % MERCHANTS;
        } else {
            /* card testing: merchants the user never uses, amounts that do not
             * follow the user's (the plain draw), card-not-present categories
             * somewhat more often: alone, the event says little */
            merchant = (uint64_t)(m * MERCHANTS);
            if (c < 0.3) /* electronics, gambling or online */
                cat = c < 0.1 ? 5 : c < 0.2 ? 6 : 2;
        }
    }

    ks_buf_printf(b, "{\"id\":\"e%llu\",\"user_id\":\"u%llu\",", (unsigned long long)i,
                  (unsigned long long)key_index);
    if (kind != KS_GEN_PLAIN)
        ks_buf_printf(b, "\"merchant_id\":\"m%llu\",", merchant);
    switch (malformed_kind) {
    case 2:
        ks_buf_puts(b, "\"amount\":\"not-a-number\",");
        break;
    case 3:
        break; /* amount (required) missing */
    default:
        ks_buf_puts(b, "\"amount\":");
        ks_buf_json_double(b, amount);
        ks_buf_putc(b, ',');
    }
    ks_buf_printf(b, "\"merchant_category\":\"%s\",\"n_tx_24h\":%d,\"account_age_days\":%d,"
                     "\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02dZ\","
                     "\"payment\":{\"method\":\"%s\",\"country\":\"%s\"},\"sent_at_us\":%lld",
                  categories[cat], n_tx, age, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, methods[method], countries[country],
                  (long long)sent_at_us);
    if (malformed_kind == 4)
        ks_buf_puts(b, ",\"note\":\"\xc3\x28\""); /* invalid UTF-8 */
    if (malformed_kind == 1)
        ks_buf_puts(b, ",\"broken\":"); /* truncated JSON */
    else
        ks_buf_putc(b, '}');
}

/* Zipf(s) over [0, n) by inverse CDF on a precomputed table. */
typedef struct zipf {
    double *cdf;
    uint64_t n;
} zipf_t;

static void zipf_init(zipf_t *z, uint64_t n, double s)
{
    z->n = n;
    z->cdf = ks_xmalloc(n * sizeof(double));
    double sum = 0;
    for (uint64_t k = 0; k < n; k++)
        z->cdf[k] = (sum += 1.0 / pow((double)(k + 1), s));
    for (uint64_t k = 0; k < n; k++)
        z->cdf[k] /= sum;
}

static uint64_t zipf_draw(const zipf_t *z, double u)
{
    uint64_t lo = 0, hi = z->n - 1;
    while (lo < hi) {
        uint64_t mid = (lo + hi) / 2;
        if (z->cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Send lateness (actual send - stamp, microseconds) in a log-linear histogram:
 * exact below 128 us, then 64 sub-buckets per power of two (< 1.6% error). */
#define LATE_SUB_BITS 6
#define LATE_SUB (1 << LATE_SUB_BITS)
#define LATE_BUCKETS (LATE_SUB * 40)

static size_t late_index(uint64_t v)
{
    if (v < LATE_SUB)
        return (size_t)v;
    int e = 63 - __builtin_clzll(v) - LATE_SUB_BITS;
    size_t i = (size_t)LATE_SUB * (size_t)e + (size_t)(v >> e);
    return i < LATE_BUCKETS ? i : LATE_BUCKETS - 1;
}

static uint64_t late_value(size_t i)
{
    if (i < 2 * LATE_SUB)
        return i;
    size_t e = i / LATE_SUB - 1;
    return (uint64_t)(i - LATE_SUB * e) << e;
}

static uint64_t late_quantile(const uint64_t *h, uint64_t n, double q)
{
    uint64_t want = (uint64_t)ceil(q * (double)n), seen = 0;
    if (want == 0)
        want = 1;
    for (size_t i = 0; i < LATE_BUCKETS; i++)
        if ((seen += h[i]) >= want)
            return late_value(i);
    return 0;
}

static volatile sig_atomic_t gen_stop;
static void on_sig(int s)
{
    (void)s;
    gen_stop = 1;
}

typedef struct dr_state {
    uint64_t acked, failed;
} dr_state_t;

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    dr_state_t *st = opaque;
    if (m->err)
        st->failed++;
    else
        st->acked++;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_until_us(int64_t at)
{
    struct timespec ts = {(time_t)(at / 1000000), (long)(at % 1000000) * 1000};
    while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, NULL) != 0 && !gen_stop)
        ; /* EINTR: sleep the rest */
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Producer properties: ours first, then the user's -X key=value pairs. */
static rd_kafka_t *new_producer(const ks_gen_opts_t *o, dr_state_t *st)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *props[][2] = {{"bootstrap.servers", o->brokers},
                              {"enable.idempotence", "true"},
                              {"linger.ms", "5"},
                              {"partitioner", "murmur2_random"},
                              {"queue.buffering.max.messages", "1000000"},
                              {"queue.buffering.max.kbytes", "1048576"}};
    for (size_t i = 0; i < KS_ARRAY_LEN(props); i++)
        if (rd_kafka_conf_set(conf, props[i][0], props[i][1], err, sizeof(err))) {
            fprintf(stderr, "kscore gen: %s\n", err);
            goto fail;
        }
    for (size_t i = 0; i < o->n_props; i++) {
        const char *eq = strchr(o->props[i], '=');
        char name[256];
        if (!eq || eq == o->props[i] || (size_t)(eq - o->props[i]) >= sizeof(name)) {
            fprintf(stderr, "kscore gen: -X wants key=value, got '%s'\n", o->props[i]);
            goto fail;
        }
        memcpy(name, o->props[i], (size_t)(eq - o->props[i]));
        name[eq - o->props[i]] = '\0';
        if (rd_kafka_conf_set(conf, name, eq + 1, err, sizeof(err))) {
            fprintf(stderr, "kscore gen: -X %s: %s\n", o->props[i], err);
            goto fail;
        }
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_dr);
    rd_kafka_conf_set_opaque(conf, st);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "kscore gen: %s\n", err);
        goto fail;
    }
    return rk;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

/* --profiles FILE: the feature store's snapshot of users u0..u(keys-1), one
 * {"key": "features:u<k>", "value": {...}} line each (docs/lookups.md). */
static int write_profiles(const ks_gen_opts_t *o)
{
    FILE *f = fopen(o->profiles_path, "w");
    if (!f) {
        fprintf(stderr, "kscore gen: cannot write %s\n", o->profiles_path);
        return KS_EXIT_RUNTIME;
    }
    ks_buf_t b = {0};
    for (uint64_t k = 0; k < o->keys; k++) {
        ks_gen_profile_t pr;
        ks_gen_profile(k, &pr);
        ks_buf_reset(&b);
        ks_buf_printf(&b, "{\"key\":\"features:u%llu\",\"value\":{\"segment\":\"%s\","
                          "\"chargebacks_90d\":%d,\"avg_amount_90d\":",
                      (unsigned long long)k, pr.segment, pr.chargebacks_90d);
        ks_buf_json_double(&b, pr.avg_amount_90d);
        ks_buf_puts(&b, "}}\n");
        fwrite(b.data, 1, b.len, f);
    }
    ks_buf_free(&b);
    if (fclose(f) != 0) {
        fprintf(stderr, "kscore gen: error writing %s\n", o->profiles_path);
        return KS_EXIT_RUNTIME;
    }
    return KS_EXIT_OK;
}

/* The fraud scenario (--fraud F): picks the kind of the next event and, for
 * an attack, its user. At most one attack runs at a time: it starts at an
 * ordinary event of user k with probability F * risk(k) (risk: 3x for a
 * "new" segment, 1 + chargebacks_90d), makes that event and 2..7 more of
 * the following ones (each next event with probability 1/2, so they spread
 * over seconds) transactions on k's card. */
typedef struct scenario {
    uint64_t key;
    int left; /* attack transactions still to come */
} scenario_t;

static int scenario_next(const ks_gen_opts_t *o, scenario_t *sc, uint64_t *seed_state,
                         uint64_t *key)
{
    if (o->fraud <= 0)
        return KS_GEN_PLAIN;
    if (sc->left > 0) {
        if (unit(seed_state) < 0.5) {
            sc->left--;
            *key = sc->key;
            return KS_GEN_ATTACK;
        }
        return KS_GEN_ORDINARY;
    }
    ks_gen_profile_t pr;
    ks_gen_profile(*key, &pr);
    double risk = (strcmp(pr.segment, "new") == 0 ? 3 : 1) * (1 + pr.chargebacks_90d);
    if (unit(seed_state) < o->fraud * risk) {
        sc->key = *key;
        sc->left = 2 + (int)(unit(seed_state) * 6);
        return KS_GEN_ATTACK;
    }
    return KS_GEN_ORDINARY;
}

#define QUEUE_FULL_GIVE_UP_US (60 * 1000000LL) /* a broker that takes nothing for 60 s */
#define FLUSH_TIMEOUT_MS 60000

int ks_gen_run(const ks_gen_opts_t *o)
{
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_t *rkt = NULL;
    dr_state_t st = {0, 0};
    ks_buf_t b = {0};
    zipf_t z = {0};
    int rc = KS_EXIT_OK;
    uint64_t sent = 0, malformed = 0, late = 0, queue_full = 0;
    uint64_t seed_state = mix(o->seed ^ 0x5eed);
    uint64_t *late_hist = NULL, late_max = 0;
    int64_t first_stamp = 0, last_stamp = 0;
    FILE *out = o->to_stdout ? stdout : NULL, *labels = NULL;
    scenario_t sc = {0, 0};

    int profiles_only = o->profiles_path && !o->count && !(o->duration_s > 0);
    if (o->keys == 0 ||
        (!profiles_only && !o->to_stdout && (!o->topic || !o->brokers))) {
        fprintf(stderr, "kscore gen: needs --topic and --brokers (or --stdout), and --keys > 0\n");
        return KS_EXIT_USAGE;
    }
    if (!(o->rate >= 0) || !(o->zipf_s >= 0) || !(o->malformed_fraction >= 0) ||
        o->malformed_fraction > 1 || !(o->duration_s >= 0) || !(o->fraud >= 0) ||
        o->fraud > 1) {
        fprintf(stderr, "kscore gen: --rate, --duration and --zipf must be >= 0 and "
                        "--malformed and --fraud within [0, 1]\n");
        return KS_EXIT_USAGE;
    }
    if (o->profiles_path && (rc = write_profiles(o)) != KS_EXIT_OK)
        return rc;
    if (profiles_only)
        return KS_EXIT_OK;
    if (o->labels_path && !(labels = fopen(o->labels_path, "w"))) {
        fprintf(stderr, "kscore gen: cannot write %s\n", o->labels_path);
        return KS_EXIT_RUNTIME;
    }
    if (!out && !(rk = new_producer(o, &st))) {
        if (labels)
            fclose(labels);
        return KS_EXIT_USAGE;
    }
    if (rk)
        rkt = rd_kafka_topic_new(rk, o->topic, NULL);
    if (o->zipf_s > 0)
        zipf_init(&z, o->keys, o->zipf_s);
    late_hist = ks_xcalloc(LATE_BUCKETS, sizeof(*late_hist));
    signal(SIGINT, on_sig);
    signal(SIGTERM, on_sig);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* wake on time, not up to 50 us late */

    double cpu0 = cpu_seconds();
    int64_t start = now_us();
    double due = 0; /* microseconds after start */
    int64_t tick_us = o->tick_us > 0 ? (int64_t)o->tick_us : 0, last_wake = start;
    int64_t end_us = o->duration_s > 0 ? start + (int64_t)(o->duration_s * 1e6) : INT64_MAX;
    for (uint64_t i = o->start; !gen_stop; i++) {
        uint64_t k = i - o->start;
        if (o->count && k >= o->count)
            break;
        int64_t stamp;
        if (o->rate > 0) {
            if (k > 0)
                due += o->poisson ? -log(1.0 - unit(&seed_state)) * 1e6 / o->rate : 1e6 / o->rate;
            stamp = start + (int64_t)due;
            if (stamp >= end_us)
                break;
            if (now_us() < stamp) {
                /* wake at most once per tick: a sleep and wake-up costs far
                 * more CPU than building and sending an event, so high rates
                 * go out in small bursts, each event at most one tick late
                 * and stamped when it was due */
                int64_t until = stamp > last_wake + tick_us ? stamp : last_wake + tick_us;
                if (rk)
                    rd_kafka_poll(rk, 0); /* serve delivery reports while idle */
                sleep_until_us(until);
                last_wake = now_us();
                if (gen_stop)
                    break;
            }
        } else {
            stamp = now_us();
            if (stamp >= end_us)
                break;
        }
        double f = o->malformed_fraction;
        int bad = f > 0 && floor((double)(k + 1) * f) > floor((double)k * f);
        uint64_t key = o->zipf_s > 0 ? zipf_draw(&z, unit(&seed_state))
                                     : (uint64_t)(unit(&seed_state) * (double)o->keys);
        int kind = scenario_next(o, &sc, &seed_state, &key);
        ks_buf_reset(&b);
        ks_gen_event(&b, o->seed, i, key, bad ? (int)(malformed % 4) + 1 : 0, kind, stamp);
        malformed += bad;
        /* the chargeback feed: attacks, and a little fraud nothing shows (drawn
         * whether or not labels are written, so --labels changes no event) */
        int y = kind == KS_GEN_ATTACK;
        if (o->fraud > 0 && unit(&seed_state) < 0.002)
            y = 1;
        if (labels && !bad)
            fprintf(labels, "{\"id\":\"e%llu\",\"label\":%d}\n", (unsigned long long)i, y);
        if (out) {
            fwrite(b.data, 1, b.len, out);
            fputc('\n', out);
        } else {
            char keybuf[32];
            int kl = snprintf(keybuf, sizeof(keybuf), "u%llu", (unsigned long long)key);
            int64_t full_since = 0;
            for (;;) {
                rd_kafka_resp_err_t e = rd_kafka_producev(
                    rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_KEY(keybuf, (size_t)kl), RD_KAFKA_V_VALUE(b.data, b.len),
                    RD_KAFKA_V_TIMESTAMP(stamp / 1000), RD_KAFKA_V_END);
                if (!e)
                    break;
                if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                    fprintf(stderr, "kscore gen: produce failed: %s\n", rd_kafka_err2str(e));
                    rc = KS_EXIT_RUNTIME;
                    goto done;
                }
                /* The broker does not keep up with our own queue: the only
                 * thing that ever holds the generator back. Stamps stay the
                 * intended times, so the delay is still measured. */
                if (!full_since) {
                    full_since = now_us();
                    queue_full++;
                } else if (now_us() - full_since > QUEUE_FULL_GIVE_UP_US || gen_stop) {
                    fprintf(stderr, "kscore gen: the producer queue stayed full for 60 s: "
                                    "is the broker up?\n");
                    rc = KS_EXIT_RUNTIME;
                    goto done;
                }
                rd_kafka_poll(rk, 10);
            }
        }
        int64_t lateness = now_us() - stamp;
        uint64_t lu = lateness > 0 ? (uint64_t)lateness : 0;
        late_hist[late_index(lu)]++;
        if (lu > late_max)
            late_max = lu;
        if (o->rate > 0 && lu > 1000)
            late++;
        if (sent++ == 0)
            first_stamp = stamp;
        last_stamp = stamp;
        if (rk && (sent & 1023) == 0)
            rd_kafka_poll(rk, 0);
    }
done:;
    int64_t send_end = now_us();
    uint64_t unacked = 0;
    if (rk) {
        rd_kafka_flush(rk, FLUSH_TIMEOUT_MS);
        unacked = (uint64_t)rd_kafka_outq_len(rk);
        if (st.failed || unacked)
            rc = KS_EXIT_RUNTIME;
    }
    double secs = (double)(send_end - start) / 1e6;
    double flush_secs = (double)(now_us() - send_end) / 1e6;
    fprintf(stderr,
            "{\"sent\":%llu,\"malformed\":%llu,\"acked\":%llu,\"failed\":%llu,\"unacked\":%llu,"
            "\"offered_rate\":%.0f,\"rate\":%.0f,\"seconds\":%.3f,\"flush_seconds\":%.3f,"
            "\"late\":%llu,\"late_p50_us\":%llu,\"late_p99_us\":%llu,\"late_max_us\":%llu,"
            "\"queue_full_waits\":%llu,\"tick_us\":%lld,\"cpu_seconds\":%.3f,\"first_stamp_us\":%lld,"
            "\"last_stamp_us\":%lld}\n",
            (unsigned long long)sent, (unsigned long long)malformed,
            (unsigned long long)(out ? sent : st.acked), (unsigned long long)st.failed,
            (unsigned long long)unacked, o->rate, secs > 0 ? (double)sent / secs : 0, secs,
            flush_secs, (unsigned long long)late,
            (unsigned long long)late_quantile(late_hist, sent, 0.5),
            (unsigned long long)late_quantile(late_hist, sent, 0.99),
            (unsigned long long)late_max, (unsigned long long)queue_full, (long long)tick_us,
            cpu_seconds() - cpu0,
            (long long)first_stamp, (long long)last_stamp);
    if (labels && fclose(labels) != 0) {
        fprintf(stderr, "kscore gen: error writing %s\n", o->labels_path);
        rc = KS_EXIT_RUNTIME;
    }
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    if (rk)
        rd_kafka_destroy(rk);
    free(z.cdf);
    free(late_hist);
    ks_buf_free(&b);
    return rc;
}
