/*
 * test_deploy.c - model deployments without a broker: the message format,
 * the state fold every replica runs (engine/deploy.c), the routing hash
 * (10 % of 100,000 keys, pinned so an upgrade cannot silently move keys),
 * the guard's arithmetic (engine/guard.c), and a real pipeline folding
 * messages (engine/deployments.c ks_deployments_apply) with real model
 * files: every refusal reason leaves the routing in service untouched;
 * shadow outputs equal `kscore model predict` of the candidate on the same
 * feature rows (ks_model_predict_csv is that command); canary rows are
 * scored by the candidate and carry its version and variant; old routings
 * live until their last holder releases them.
 */
#include "base/common.h"
#include "base/sha256.h"
#include "cli/model_cli.h"
#include "engine/deploy.h"
#include "engine/deployments.h"
#include "engine/guard.h"
#include "engine/pipeline.h"
#include "features/murmur3.h"
#include "kscore/kscore.h"
#include "test.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int parse(const char *json, ks_deploy_msg_t *m, char *err)
{
    return ks_deploy_msg_parse(json, strlen(json), m, err, 512);
}

static void test_msg_parse(void)
{
    ks_deploy_msg_t m;
    char err[512];
    const char *sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    char buf[1024];
    snprintf(buf, sizeof(buf),
             "{\"version\":\"fraud-v7\",\"path\":\"/m/v7.json\",\"sha256\":\"%s\","
             "\"action\":\"canary\",\"percent\":10}", sha);
    CHECK_MSG(parse(buf, &m, err) == 0, "%s", err);
    CHECK(m.action == KS_DEPLOY_CANARY);
    CHECK_EQ_STR(m.version, "fraud-v7");
    CHECK_EQ_INT(m.buckets, 1000);
    CHECK_EQ_STR(m.sha256, sha);
    /* the writer's JSON reads back the same */
    ks_buf_t b = {0};
    ks_deploy_msg_json(&m, &b);
    ks_deploy_msg_t m2;
    CHECK_MSG(ks_deploy_msg_parse(b.data, b.len, &m2, err, sizeof(err)) == 0, "%s", err);
    CHECK(memcmp(&m, &m2, sizeof(m)) == 0);
    ks_buf_free(&b);

    CHECK(parse("{\"action\":\"ab\",\"version\":\"v7\",\"variants\":{\"v6\":50,\"v7\":50}}", &m,
                err) == 0);
    CHECK_EQ_INT((long long)m.n_variants, 2);
    CHECK_EQ_STR(m.variants[1].version, "v7");
    CHECK(parse("{\"action\":\"rollback\"}", &m, err) == 0);

    struct { const char *json, *says; } bad[] = {
        {"[1]", "JSON object"},
        {"{\"action\":\"deploy\",\"version\":\"v\"}", "\"action\" must be one of"},
        {"{\"action\":\"canary\",\"version\":\"v\",\"percent\":0}", "above 0"},
        {"{\"action\":\"canary\",\"version\":\"v\",\"percent\":101}", "at most 100"},
        {"{\"action\":\"canary\",\"version\":\"v\",\"percent\":10.001}", "two decimals"},
        {"{\"action\":\"canary\",\"version\":\"v\"}", "\"percent\""},
        {"{\"action\":\"ab\",\"variants\":{\"a\":50,\"b\":40}}", "add up to 90"},
        {"{\"action\":\"ab\",\"variants\":{\"a\":100}}", "2 to 4"},
        {"{\"action\":\"shadow\"}", "\"version\" is required"},
        {"{\"action\":\"shadow\",\"version\":\"v\",\"path\":\"/x\"}", "go together"},
        {"{\"action\":\"shadow\",\"version\":\"v\",\"path\":\"/x\",\"sha256\":\"XYZ\"}", "hex"},
        {"{\"action\":\"shadow\",\"version\":7}", "must be a string"},
        {"{\"action\":\"shadow\",\"version\":\"v\"", "line 1"},
    };
    for (size_t i = 0; i < KS_ARRAY_LEN(bad); i++) {
        CHECK_MSG(parse(bad[i].json, &m, err) != 0, "%s was accepted", bad[i].json);
        CHECK_CONTAINS(err, bad[i].says);
    }
}

static int plan(ks_deploy_state_t *s, const char *json, char *err)
{
    ks_deploy_msg_t m;
    ks_deploy_state_t next;
    int rc = parse(json, &m, err);
    if (rc == 0 && (rc = ks_deploy_plan(s, &m, &next, err, 512)) == 0)
        *s = next;
    return rc;
}

#define SHA "\"sha256\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\""

static void test_plan(void)
{
    ks_deploy_state_t s;
    char err[512];
    ks_deploy_state_init(&s, "v6", "/m/v6.json");
    /* unknown versions, the champion against itself */
    CHECK(plan(&s, "{\"action\":\"canary\",\"version\":\"v7\",\"percent\":10}", err) != 0);
    CHECK_CONTAINS(err, "not known");
    CHECK(plan(&s, "{\"action\":\"shadow\",\"version\":\"v6\"}", err) != 0);
    CHECK(plan(&s, "{\"action\":\"rollback\"}", err) != 0);
    CHECK_CONTAINS(err, "nothing to roll back");
    /* shadow, then canary with the registered file, then promote */
    CHECK(plan(&s, "{\"action\":\"shadow\",\"version\":\"v7\",\"path\":\"/m/v7.json\"," SHA "}",
               err) == 0);
    CHECK_EQ_STR(s.shadow, "v7");
    CHECK(plan(&s, "{\"action\":\"canary\",\"version\":\"v7\",\"percent\":10}", err) == 0);
    CHECK_EQ_INT((long long)s.n_variants, 2);
    CHECK_EQ_STR(s.variant[0].name, "canary");
    CHECK_EQ_INT(s.variant[0].buckets, 1000);
    CHECK_EQ_STR(s.variant[1].version, "v6");
    CHECK(s.seed == ks_murmur3_32("v7", 2, 0));
    const char *vers[8];
    CHECK_EQ_INT((long long)ks_deploy_versions(&s, vers, 8), 2); /* v6, v7 once */
    CHECK(plan(&s, "{\"action\":\"retire\",\"version\":\"v6\"}", err) != 0);
    CHECK_CONTAINS(err, "champion");
    /* a rollback of the candidate, twice (two replicas' guards): the second changes nothing */
    ks_deploy_state_t before = s;
    CHECK(plan(&s, "{\"action\":\"rollback\",\"version\":\"v7\"}", err) == 0);
    CHECK_EQ_INT((long long)s.n_variants, 0);
    CHECK_EQ_STR(s.shadow, "");
    ks_deploy_state_t once = s;
    CHECK(plan(&s, "{\"action\":\"rollback\",\"version\":\"v7\"}", err) == 0);
    CHECK(memcmp(&s, &once, sizeof(s)) == 0);
    s = before;
    CHECK(plan(&s, "{\"action\":\"promote\",\"version\":\"v7\"}", err) == 0);
    CHECK_EQ_STR(s.champion, "v7");
    CHECK_EQ_INT((long long)s.n_variants, 0);
    CHECK_EQ_STR(s.shadow, "");
    CHECK_EQ_STR(s.history[0], "v6");
    /* A/B over the two known versions, then a rollback: candidates go first */
    CHECK(plan(&s, "{\"action\":\"ab\",\"variants\":{\"v6\":30,\"v7\":70}}", err) == 0);
    CHECK_EQ_STR(s.variant[0].name, "a");
    CHECK_EQ_INT(s.variant[1].buckets, 7000);
    CHECK(plan(&s, "{\"action\":\"rollback\"}", err) == 0);
    CHECK_EQ_INT((long long)s.n_variants, 0);
    CHECK_EQ_STR(s.champion, "v7");
    CHECK(plan(&s, "{\"action\":\"rollback\"}", err) == 0); /* now the promotion */
    CHECK_EQ_STR(s.champion, "v6");
    CHECK_EQ_INT((long long)s.n_history, 0);
    ks_buf_t b = {0};
    ks_deploy_state_json(&s, &b);
    CHECK_CONTAINS(b.data, "\"champion\":\"v6\"");
    CHECK_CONTAINS(b.data, "\"path\":\"/m/v7.json\"");
    ks_buf_free(&b);
}

/* 10 % of 100,000 keys on the canary, the same keys whoever asks, and the
 * same keys (plus more) when the canary grows. */
static void test_canary_keys(void)
{
    ks_deploy_state_t s;
    char err[512], key[32];
    ks_deploy_state_init(&s, "v6", "/m/v6.json");
    CHECK(plan(&s, "{\"action\":\"canary\",\"version\":\"v7\",\"path\":\"/m/v7.json\"," SHA
                   ",\"percent\":10}", err) == 0);
    ks_deploy_state_t wider = s;
    CHECK(plan(&wider, "{\"action\":\"canary\",\"version\":\"v7\",\"percent\":20}", err) == 0);
    size_t on = 0, lost = 0, wide = 0;
    for (int k = 0; k < 100000; k++) {
        int len = snprintf(key, sizeof(key), "user-%d", k);
        size_t v = ks_deploy_route(&s, key, (size_t)len);
        on += v == 0;
        size_t w = ks_deploy_route(&wider, key, (size_t)len);
        wide += w == 0;
        lost += v == 0 && w != 0;
    }
    CHECK_MSG(on >= 9000 && on <= 11000, "%zu of 100000 keys on the canary", on);
    CHECK_MSG(wide >= 19000 && wide <= 21000, "%zu of 100000 keys on the 20%% canary", wide);
    CHECK_EQ_INT((long long)lost, 0);
    /* pinned: a change to the hash or the bucketing moves live keys between
     * versions on upgrade; it must be deliberate (and documented) */
    CHECK_EQ_INT((long long)on, 9731);
}

static void test_guard_math(void)
{
    static const double bounds[] = {1, 2, 4};
    uint64_t c[] = {0, 10, 0, 0};
    CHECK_NEAR(ks_guard_quantile(bounds, 3, c, 0.5), 1.5, 1e-12);
    uint64_t tail[] = {99, 0, 0, 1};
    CHECK_NEAR(ks_guard_quantile(bounds, 3, tail, 0.999), 4, 1e-12); /* +Inf -> top bound */
    uint64_t none[] = {0, 0, 0, 0};
    CHECK(isnan(ks_guard_quantile(bounds, 3, none, 0.5)));
    uint64_t a[] = {100, 100, 100, 100}, same[] = {50, 50, 50, 50}, moved[] = {0, 0, 200, 200};
    CHECK_NEAR(ks_guard_psi(a, same, 4), 0, 1e-12);
    CHECK(ks_guard_psi(a, moved, 4) > 1);

    ks_guard_limits_t l = {0.05, NAN, NAN, 100, bounds, bounds, 3, 3};
    ks_guard_snap_t zero = {0}, cand = {0}, champ = {0};
    char why[256];
    cand.predictions = 50;
    cand.errors = 30; /* too few events to judge */
    champ.predictions = 1000;
    CHECK(ks_guard_judge(&l, &zero, &cand, &zero, &champ, why, sizeof(why)) == NULL);
    cand.predictions = 100;
    const char *b = ks_guard_judge(&l, &zero, &cand, &zero, &champ, why, sizeof(why));
    CHECK(b && !strcmp(b, "error_rate"));
    CHECK_CONTAINS(why, "guard.max_error_rate");
    champ.errors = 1000; /* the champion fails as often: not the candidate's fault */
    CHECK(ks_guard_judge(&l, &zero, &cand, &zero, &champ, why, sizeof(why)) == NULL);
    l.max_error_rate = NAN;
    l.max_p99_ms = 1500; /* ms: buckets in seconds */
    cand.latency[2] = 130; /* 2-4 s */
    champ.latency[0] = 2000;
    b = ks_guard_judge(&l, &zero, &cand, &zero, &champ, why, sizeof(why));
    CHECK(b && !strcmp(b, "p99"));
}

/* ---- a real pipeline ---------------------------------------------------- */

static char dir[64];

static char *slurp(const char *path, size_t *len)
{
    char *buf, err[256];
    if (ks_read_file(path, &buf, len, err, sizeof(err)))
        return NULL;
    return buf;
}

/* Writes `text` as dir/name and returns its sha256 in hex. */
static void put(const char *name, const char *text, size_t len, char hex[65])
{
    char path[128];
    uint8_t dig[32];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fwrite(text, 1, len, f);
    fclose(f);
    ks_sha256(text, len, dig);
    ks_sha256_hex(dig, 32, hex);
}

/* The example model with a substring replaced. */
static void variant_of(const char *model, const char *from, const char *to, const char *name,
                       char hex[65])
{
    const char *at = strstr(model, from);
    CHECK_MSG(at != NULL, "no '%s' in the model", from);
    if (!at)
        return;
    size_t n = strlen(model) + strlen(to) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int)(at - model), model, to, at + strlen(from));
    put(name, out, strlen(out), hex);
    free(out);
}

static int apply(ks_pipeline_t *p, const char *fmt, ...) KS_PRINTF(2, 3);
static const char *last_why;
static char last_err[1024];
static int apply(ks_pipeline_t *p, const char *fmt, ...)
{
    char json[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(json, sizeof(json), fmt, ap);
    va_end(ap);
    static long long offset = 0;
    return ks_deployments_apply(p, json, strlen(json), offset++, &last_why, last_err,
                                sizeof(last_err));
}

enum { N_EVENTS = 2000 };
#define CANARY_TAG "\"model_version\":\"v2\",\"variant\":\"canary\""
static char *lines[N_EVENTS];

/* Runs the events through the pipeline's stages into b (caller releases). */
static void score_lines(ks_stage_runner_t *r, ks_batch_t *b, char **ev)
{
    ks_batch_reset(b, N_EVENTS);
    for (size_t i = 0; i < N_EVENTS; i++)
        b->ev[i] = (ks_event_t){ev[i], strlen(ev[i]), NULL, 0, -1, ks_now_mono_ns(), NULL,
                                -1, (int64_t)i, NULL};
    ks_stage_runner_run(r, b);
}

static void score(ks_pipeline_t *p, ks_stage_runner_t *r, ks_batch_t *b)
{
    score_lines(r, b, lines);
}

/* `kscore model predict` of model file `name` on the batch's feature rows:
 * CSV with the model's feature names, through ks_model_predict_csv. Returns
 * rows x n_outputs doubles (parsed from its %.17g text). */
static double *model_predict_cli(const char *name, const ks_batch_t *b, const ks_serving_t *sv)
{
    char path[128], err[256];
    ks_model_t *m = NULL;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    CHECK(ks_model_load_file(path, &m, err, sizeof(err)) == 0);
    char *csv = NULL, *outtext = NULL;
    size_t csv_len = 0, out_len = 0;
    FILE *in = open_memstream(&csv, &csv_len);
    for (size_t j = 0; j < m->n_features; j++)
        fprintf(in, "%s%s", j ? "," : "", m->feature_names[j]);
    fputc('\n', in);
    for (size_t r = 0; r < b->rows; r++)
        for (size_t j = 0; j < m->n_features; j++)
            fprintf(in, "%.17g%c", b->F[r * b->n_cols + sv->model_col[j]],
                    j + 1 < m->n_features ? ',' : '\n');
    fclose(in);
    FILE *src = fmemopen(csv, csv_len, "r"), *out = open_memstream(&outtext, &out_len);
    CHECK_MSG(ks_model_predict_csv(m, src, out, err, sizeof(err)) == 0, "%s", err);
    fclose(src);
    fclose(out);
    double *o = calloc(b->rows * m->n_outputs + 1, sizeof(double));
    char *s = outtext;
    for (size_t k = 0; k < b->rows * m->n_outputs; k++) {
        o[k] = strtod(s, &s);
        s++; /* ',' or '\n' */
    }
    free(csv);
    free(outtext);
    ks_model_unref(m);
    return o;
}

static void test_pipeline(void)
{
    char err[1024], hex_v2[65], hex_nan[65], hex_misfit[65], hex_corrupt[65], hex_regr[65];
    size_t len;
    snprintf(dir, sizeof(dir), "/tmp/kscore-test-deploy-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    char *model = slurp("examples/basic/model.json", &len);
    CHECK(model != NULL);
    if (!model)
        return;
    variant_of(model, "\"version\":\"fraud-lr-1\"", "\"version\":\"file-v2\"", "v2.json", hex_v2);
    {   /* the candidate must differ: shift its intercept */
        char *t = slurp(strcat(strcpy((char[128]){0}, dir), "/v2.json"), &len);
        char *at = strstr(t, "\"intercept\":[");
        double icpt = strtod(at + 13, NULL);
        char *end = strchr(at, ']');
        char repl[64];
        snprintf(repl, sizeof(repl), "\"intercept\":[%.17g", icpt + 0.75);
        size_t n = len + 64;
        char *out = malloc(n);
        snprintf(out, n, "%.*s%s%s", (int)(at - t), t, repl, end);
        put("v2.json", out, strlen(out), hex_v2);
        free(out);
        free(t);
    }
    /* scale 0: (x - mean) / 0 gives NaN outputs */
    char *sc = strstr(model, "\"scale\":[");
    char *sc_end = strchr(sc, ']');
    char *nan_model = malloc(len + 256);
    snprintf(nan_model, len + 256, "%.*s\"scale\":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0%s",
             (int)(sc - model), model, sc_end);
    put("nan.json", nan_model, strlen(nan_model), hex_nan);
    free(nan_model);
    variant_of(model, "\"log_amount\"", "\"no_such_feature\"", "misfit.json", hex_misfit);
    put("corrupt.json", model, len / 2, hex_corrupt);
    variant_of(model, "\"task\":\"classification\"", "\"task\":\"regression\"", "regr.json",
               hex_regr);

    const char *sets[] = {"model.deployments_topic=deploys", "batch.max_size=5000",
                          "shadow.topic=shadow-records", "guard.max_error_rate=0.05",
                          "guard.min_events=100"};
    ks_config_t *cfg = NULL;
    ks_pipeline_t *p = NULL;
    CHECK_MSG(ks_config_load("examples/basic/pipeline.yaml", sets, 5, &cfg, err, sizeof(err)) == 0,
              "%s", err);
    CHECK_MSG(ks_pipeline_new(cfg, &p, err, sizeof(err)) == 0, "%s", err);
    if (!p)
        return;
    for (int i = 0; i < N_EVENTS; i++) {
        char buf[512];
        snprintf(buf, sizeof(buf),
                 "{\"id\":\"e%d\",\"user_id\":\"u%d\",\"amount\":%d.5,\"merchant_category\":\"%s\","
                 "\"n_tx_24h\":%d,\"account_age_days\":%d,\"ts\":\"2026-11-2%dT%02d:15:00Z\","
                 "\"payment\":{\"method\":\"%s\",\"country\":\"%s\"}}",
                 i, i % 997, 3 + i % 400, i % 3 ? "travel" : "grocery", i % 30, i % 900,
                 i % 7, i % 24, i % 2 ? "card" : "wallet", i % 5 ? "US" : "NG");
        lines[i] = strdup(buf);
    }
    ks_stage_env_t env = {p, -1, NULL, NULL};
    ks_stage_runner_t *r = NULL;
    CHECK_MSG(ks_stage_runner_new(p->stages, &env, &r, err, sizeof(err)) == 0, "%s", err);
    ks_batch_t b;
    ks_batch_init(&b, cfg->schema->n_fields, p->n_cols);
    score(p, r, &b); /* recent rows for warm-ups */
    ks_batch_release_models(&b);

    /* refusals: the routing in service is the very same object after each */
    ks_routing_t *before = p->routing;
    struct { const char *file, *sha, *why; } refuse[] = {
        {"corrupt.json", hex_corrupt, "load_failed"},
        {"v2.json", hex_misfit, "sha256_mismatch"},
        {"misfit.json", hex_misfit, "feature_mismatch"},
        {"nan.json", hex_nan, "warmup_nan"},
        {"missing.json", hex_v2, "unreadable"},
        {"regr.json", hex_regr, "incompatible_outputs"},
    };
    for (size_t i = 0; i < KS_ARRAY_LEN(refuse); i++) {
        CHECK(apply(p, "{\"action\":\"shadow\",\"version\":\"bad\",\"path\":\"%s/%s\","
                       "\"sha256\":\"%s\"}", dir, refuse[i].file, refuse[i].sha) != 0);
        CHECK_MSG(last_why && !strcmp(last_why, refuse[i].why), "%s: %s (%s)", refuse[i].file,
                  last_why ? last_why : "accepted", last_err);
        CHECK(p->routing == before);
    }
    CHECK(apply(p, "{\"action\":\"promote\",\"version\":\"nobody\"}") != 0);
    CHECK_EQ_STR(last_why, "not_applicable");
    CHECK(apply(p, "not json") != 0);
    CHECK_EQ_STR(last_why, "invalid_message");
    CHECK(p->routing == before);

    /* shadow: every good row scored by v2 too; its outputs equal
     * `kscore model predict v2.json` on the same feature rows */
    CHECK_MSG(apply(p, "{\"action\":\"shadow\",\"version\":\"v2\",\"path\":\"%s/v2.json\","
                       "\"sha256\":\"%s\"}", dir, hex_v2) == 0, "%s", last_err);
    CHECK(p->routing != before);
    ks_routing_t *held = NULL;
    ks_serving_t *held_sv = NULL;
    ks_pipeline_acquire_routing(p, &held, &held_sv); /* a batch still in flight */
    score(p, r, &b);
    CHECK(b.shadow_out != NULL && b.shadow_recs != NULL);
    CHECK_EQ_INT((long long)b.rows, N_EVENTS);
    if (b.shadow_out) {
        double *want = model_predict_cli("v2.json", &b, b.rt->shadow.sv);
        size_t differ = 0;
        for (size_t k = 0; k < b.rows * 2; k++)
            differ += b.shadow_out[k] != want[k];
        CHECK_EQ_INT((long long)differ, 0);
        free(want);
        size_t rl;
        const char *rec = ks_batch_record(&b, 7, &rl);
        const char *tag = "\"model_version\":\"fraud-lr-1\",\"variant\":\"champion\"";
        CHECK(memmem(rec, rl, tag, strlen(tag)) != NULL);
        char shadow_rec[1024];
        snprintf(shadow_rec, sizeof(shadow_rec), "%.*s", (int)b.shadow_len[7],
                 b.shadow_recs->data + b.shadow_off[7]);
        CHECK_CONTAINS(shadow_rec, "\"id\":\"e7\"");
        CHECK_CONTAINS(shadow_rec, "\"model_version\":\"v2\",\"variant\":\"shadow\","
                                   "\"shadow_of\":\"fraud-lr-1\"");
        CHECK(atomic_load(&b.rt->shadow_compared->v) >= N_EVENTS);
    }
    ks_batch_release_models(&b);

    /* canary 10 %: the candidate scores its rows, which carry its version */
    CHECK_MSG(apply(p, "{\"action\":\"canary\",\"version\":\"v2\",\"percent\":10}") == 0, "%s",
              last_err);
    score(p, r, &b);
    size_t on = 0, wrong = 0;
    double *want = b.rt ? model_predict_cli("v2.json", &b, b.rt->v[0].sv) : NULL;
    for (size_t i = 0; i < b.n && want; i++) {
        if (!ks_batch_ok(&b, i))
            continue;
        size_t rl;
        const char *rec = ks_batch_record(&b, i, &rl);
        char id[16];
        int idl = snprintf(id, sizeof(id), "e%zu", i);
        int canary = ks_murmur3_32(id, (size_t)idl, ks_murmur3_32("v2", 2, 0)) % 10000 < 1000;
        on += canary;
        int w = (canary != (b.variant[i] == 0)) +
                (canary != (memmem(rec, rl, CANARY_TAG, strlen(CANARY_TAG)) != NULL)) * 2 +
                (canary && b.out[b.good_row[i] * 2 + 1] != want[b.good_row[i] * 2 + 1]) * 4;
        if (w && wrong < 3)
            fprintf(stderr, "row %zu: canary %d variant %d mismatch %d: %.*s\n", i, canary,
                    b.variant[i], w, (int)rl, rec);
        wrong += w != 0;
    }
    free(want);
    CHECK_EQ_INT((long long)wrong, 0);
    CHECK_MSG(on > N_EVENTS / 20 && on < N_EVENTS / 5, "%zu of %d rows on the canary", on,
              N_EVENTS);
    ks_batch_release_models(&b);

    /* the routing held since the shadow swap still works, then goes */
    CHECK(held->shadow.sv != NULL && held->shadow.sv->model != NULL);
    CHECK_EQ_INT(atomic_load(&held->refs), 1);
    ks_routing_release(held);
    ks_serving_release(held_sv);

    /* A/B 30/70 between the champion and v2: variants "a" and "b", each row
     * scored by its variant's version, the split close to 30/70 */
    CHECK_MSG(apply(p, "{\"action\":\"ab\",\"variants\":{\"fraud-lr-1\":30,\"v2\":70}}") == 0,
              "%s", last_err);
    score(p, r, &b);
    size_t on_b = 0, bad_ab = 0;
    for (size_t i = 0; i < b.n; i++) {
        if (!ks_batch_ok(&b, i))
            continue;
        size_t rl;
        const char *rec = ks_batch_record(&b, i, &rl);
        const char *ta = "\"model_version\":\"fraud-lr-1\",\"variant\":\"a\"";
        const char *tb = "\"model_version\":\"v2\",\"variant\":\"b\"";
        int is_b = memmem(rec, rl, tb, strlen(tb)) != NULL;
        bad_ab += !is_b && memmem(rec, rl, ta, strlen(ta)) == NULL;
        bad_ab += is_b != (b.variant[i] == 1);
        on_b += is_b;
    }
    CHECK_EQ_INT((long long)bad_ab, 0);
    CHECK_MSG(on_b > N_EVENTS * 6 / 10 && on_b < N_EVENTS * 8 / 10, "%zu of %d rows on b", on_b,
              N_EVENTS);
    ks_batch_release_models(&b);

    /* promote, then roll back to the first champion */
    CHECK(apply(p, "{\"action\":\"promote\",\"version\":\"v2\"}") == 0);
    CHECK_EQ_STR(p->serving->model->version, "v2");
    CHECK(apply(p, "{\"action\":\"rollback\"}") == 0);
    CHECK_EQ_STR(p->serving->model->version, "fraud-lr-1");
    /* the guard: a candidate returning NaN on live events (not on its
     * warm-up rows) is rolled back once it failed min_events rows, even when
     * they were all scored before the guard's first look */
    char hex_v3[65];
    variant_of(model, "\"coef\":[[", "\"coef\":[[1e300,0,-1e300,", "v3.json", hex_v3);
    char *v3 = slurp(strcat(strcpy((char[128]){0}, dir), "/v3.json"), &len);
    {   /* drop the three original coefficients the prefix displaced */
        char *at = strstr(v3, "-1e300,") + 7;
        char *rest = at;
        for (int k = 0; k < 3; k++)
            rest = strchr(rest, ',') + 1;
        memmove(at, rest, strlen(rest) + 1);
        put("v3.json", v3, strlen(v3), hex_v3);
        free(v3);
    }
    CHECK_MSG(apply(p, "{\"action\":\"canary\",\"version\":\"v3\",\"path\":\"%s/v3.json\","
                       "\"sha256\":\"%s\",\"percent\":50}", dir, hex_v3) == 0, "%s", last_err);
    char *extreme[N_EVENTS];
    for (int i = 0; i < N_EVENTS; i++) {
        char buf[256];
        snprintf(buf, sizeof(buf), "{\"id\":\"g%d\",\"amount\":1e306,\"n_tx_24h\":1e306,"
                 "\"account_age_days\":100,\"ts\":\"2026-01-01T00:00:00Z\"}", i);
        extreme[i] = strdup(buf);
    }
    score_lines(r, &b, extreme);
    size_t failed = 0;
    for (size_t i = 0; i < b.n; i++)
        failed += !ks_batch_ok(&b, i);
    CHECK_MSG(failed > N_EVENTS / 3 && failed < 2 * N_EVENTS / 3, "%zu rows failed", failed);
    ks_batch_release_models(&b);
    CHECK_EQ_INT((long long)p->routing->n, 2);
    ks_deployments_guard_tick(p);
    CHECK_EQ_INT((long long)p->routing->n, 1); /* rolled back */
    CHECK_EQ_STR(p->serving->model->version, "fraud-lr-1");
    score_lines(r, &b, extreme);
    failed = 0;
    for (size_t i = 0; i < b.n; i++)
        failed += !ks_batch_ok(&b, i);
    CHECK_EQ_INT((long long)failed, 0);
    ks_batch_release_models(&b);
    for (int i = 0; i < N_EVENTS; i++)
        free(extreme[i]);

    ks_buf_t js = {0};
    ks_deployments_status_json(p, &js);
    CHECK_CONTAINS(js.data, "\"champion\":\"fraud-lr-1\"");
    CHECK_CONTAINS(js.data, "\"refused\":8");
    CHECK_CONTAINS(js.data, "\"applied\":");
    ks_buf_free(&js);

    ks_batch_destroy(&b);
    ks_stage_runner_free(r);
    ks_pipeline_free(p);
    ks_config_free(cfg);
    for (int i = 0; i < N_EVENTS; i++)
        free(lines[i]);
    free(model);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

int main(void)
{
    RUN(test_msg_parse);
    RUN(test_plan);
    RUN(test_canary_keys);
    RUN(test_guard_math);
    RUN(test_pipeline);
    return test_summary();
}
