/*
 * deploy.c - deployment messages and the routing state they fold into (see
 * deploy.h). No I/O and no clocks: the same messages give the same state on
 * every replica and in `kscore deployments`.
 */
#include "engine/deploy.h"
#include "base/common.h"
#include "base/json.h"
#include "features/murmur3.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const action_names[] = {"shadow", "canary", "ab", "promote", "rollback",
                                           "retire"};

const char *ks_deploy_action_name(ks_deploy_action_t a)
{
    return (size_t)a < KS_ARRAY_LEN(action_names) ? action_names[a] : "?";
}

void ks_deploy_copy(char *dst, size_t n, const char *src)
{
    size_t len = strlen(src);
    if (len >= n)
        len = n - 1;
    memmove(dst, src, len);
    dst[len] = '\0';
}

/* Copies a string member into dst (size n); absent = "". */
static int get_str(const ks_json_t *root, const char *key, char *dst, size_t n, char *errbuf,
                   size_t errsize)
{
    const ks_json_t *v = ks_json_get(root, key);
    dst[0] = '\0';
    if (!v || ks_json_type(v) == KS_JSON_NULL)
        return KS_OK;
    if (!ks_json_is(v, KS_JSON_STRING))
        return ks_err(errbuf, errsize, KS_EINVAL, "\"%s\" must be a string, not %s", key,
                      ks_json_type_name(ks_json_type(v)));
    if (v->len >= n || strlen(v->u.str) != v->len)
        return ks_err(errbuf, errsize, KS_EINVAL, "\"%s\" is longer than %zu bytes or holds NUL",
                      key, n - 1);
    memcpy(dst, v->u.str, v->len + 1);
    return KS_OK;
}

/* A percent (0 < p <= 100, at most two decimals) as buckets. */
static int percent_buckets(const ks_json_t *v, const char *what, int *out, char *errbuf,
                           size_t errsize)
{
    double p = ks_json_num(v, NAN);
    if (!ks_json_is(v, KS_JSON_NUMBER) || !(p > 0 && p <= 100))
        return ks_err(errbuf, errsize, KS_EINVAL, "%s must be a number above 0 and at most 100",
                      what);
    double b = p * (KS_DEPLOY_BUCKETS / 100);
    if (fabs(b - round(b)) > 1e-6)
        return ks_err(errbuf, errsize, KS_EINVAL, "%s %g has more than two decimals", what, p);
    *out = (int)round(b);
    return KS_OK;
}

static int is_hex64(const char *s)
{
    size_t i;
    for (i = 0; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return i == 64;
}

int ks_deploy_msg_parse(const char *buf, size_t len, ks_deploy_msg_t *m, char *errbuf,
                        size_t errsize)
{
    ks_json_t *root = NULL;
    char action[32];
    int rc;
    memset(m, 0, sizeof(*m));
    if ((rc = ks_json_parse(buf, len, &root, errbuf, errsize)))
        goto out;
    if (!ks_json_is(root, KS_JSON_OBJECT)) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "a deployment message must be a JSON object");
        goto out;
    }
    if ((rc = get_str(root, "action", action, sizeof(action), errbuf, errsize)) ||
        (rc = get_str(root, "version", m->version, sizeof(m->version), errbuf, errsize)) ||
        (rc = get_str(root, "path", m->path, sizeof(m->path), errbuf, errsize)) ||
        (rc = get_str(root, "sha256", m->sha256, sizeof(m->sha256), errbuf, errsize)) ||
        (rc = get_str(root, "reason", m->reason, sizeof(m->reason), errbuf, errsize)))
        goto out;
    size_t a;
    for (a = 0; a < KS_ARRAY_LEN(action_names) && strcmp(action, action_names[a]) != 0; a++)
        ;
    if (a == KS_ARRAY_LEN(action_names)) {
        rc = ks_err(errbuf, errsize, KS_EINVAL,
                    "\"action\" must be one of shadow, canary, ab, promote, rollback, retire "
                    "(got \"%s\")", action);
        goto out;
    }
    m->action = (ks_deploy_action_t)a;
    if (!m->path[0] != !m->sha256[0]) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "\"path\" and \"sha256\" go together");
        goto out;
    }
    if (m->sha256[0] && !is_hex64(m->sha256)) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "\"sha256\" must be 64 lowercase hex digits");
        goto out;
    }
    if (!m->version[0] && m->action != KS_DEPLOY_ROLLBACK && m->action != KS_DEPLOY_AB) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "\"version\" is required for %s",
                    action_names[a]);
        goto out;
    }
    if (m->action == KS_DEPLOY_CANARY &&
        (rc = percent_buckets(ks_json_get(root, "percent"), "\"percent\"", &m->buckets, errbuf,
                              errsize)))
        goto out;
    if (m->action == KS_DEPLOY_AB) {
        const ks_json_t *v = ks_json_get(root, "variants");
        size_t n = ks_json_len(v);
        int total = 0;
        if (!ks_json_is(v, KS_JSON_OBJECT) || n < 2 || n > KS_DEPLOY_VARIANTS_MAX) {
            rc = ks_err(errbuf, errsize, KS_EINVAL,
                        "\"variants\" must be an object of 2 to %d versions with their percent",
                        KS_DEPLOY_VARIANTS_MAX);
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            const ks_json_t *it = ks_json_at(v, i);
            const char *ver = ks_json_key(it);
            char what[KS_DEPLOY_VERSION_MAX + 32];
            if (!ver || !ver[0] || strlen(ver) >= KS_DEPLOY_VERSION_MAX) {
                rc = ks_err(errbuf, errsize, KS_EINVAL, "\"variants\" has an invalid version");
                goto out;
            }
            for (size_t k = 0; k < i; k++)
                if (strcmp(m->variants[k].version, ver) == 0) {
                    rc = ks_err(errbuf, errsize, KS_EINVAL, "\"variants\" names %s twice", ver);
                    goto out;
                }
            snprintf(what, sizeof(what), "the percent of %s", ver);
            ks_deploy_copy(m->variants[i].version, KS_DEPLOY_VERSION_MAX, ver);
            if ((rc = percent_buckets(it, what, &m->variants[i].buckets, errbuf, errsize)))
                goto out;
            total += m->variants[i].buckets;
        }
        m->n_variants = n;
        if (total != KS_DEPLOY_BUCKETS) {
            rc = ks_err(errbuf, errsize, KS_EINVAL, "the variants' percents add up to %g, not 100",
                        total / 100.0);
            goto out;
        }
    }
out:
    ks_json_free(root);
    return rc;
}

void ks_deploy_msg_json(const ks_deploy_msg_t *m, ks_buf_t *b)
{
    ks_buf_puts(b, "{\"action\":\"");
    ks_buf_puts(b, ks_deploy_action_name(m->action));
    ks_buf_putc(b, '"');
    if (m->version[0]) {
        ks_buf_puts(b, ",\"version\":");
        ks_buf_json_string(b, m->version, strlen(m->version));
    }
    if (m->path[0]) {
        ks_buf_puts(b, ",\"path\":");
        ks_buf_json_string(b, m->path, strlen(m->path));
        ks_buf_printf(b, ",\"sha256\":\"%s\"", m->sha256);
    }
    if (m->action == KS_DEPLOY_CANARY)
        ks_buf_printf(b, ",\"percent\":%g", m->buckets / 100.0);
    if (m->action == KS_DEPLOY_AB) {
        ks_buf_puts(b, ",\"variants\":{");
        for (size_t i = 0; i < m->n_variants; i++) {
            if (i)
                ks_buf_putc(b, ',');
            ks_buf_json_string(b, m->variants[i].version, strlen(m->variants[i].version));
            ks_buf_printf(b, ":%g", m->variants[i].buckets / 100.0);
        }
        ks_buf_putc(b, '}');
    }
    if (m->reason[0]) {
        ks_buf_puts(b, ",\"reason\":");
        ks_buf_json_string(b, m->reason, strlen(m->reason));
    }
    ks_buf_putc(b, '}');
}

void ks_deploy_state_init(ks_deploy_state_t *s, const char *version, const char *path)
{
    memset(s, 0, sizeof(*s));
    ks_deploy_copy(s->champion, sizeof(s->champion), version);
    ks_deploy_copy(s->model[0].version, sizeof(s->model[0].version), version);
    ks_deploy_copy(s->model[0].path, sizeof(s->model[0].path), path);
    s->n_models = 1;
    s->last_offset = -1;
}

const ks_deploy_model_t *ks_deploy_find(const ks_deploy_state_t *s, const char *version)
{
    for (size_t i = 0; i < s->n_models; i++)
        if (strcmp(s->model[i].version, version) == 0)
            return &s->model[i];
    return NULL;
}

/* Registers (or re-registers) a version's file; the oldest registration
 * that is not in use goes when the table is full. */
static void register_model(ks_deploy_state_t *s, const ks_deploy_msg_t *m)
{
    ks_deploy_model_t *slot = (ks_deploy_model_t *)ks_deploy_find(s, m->version);
    if (!slot) {
        if (s->n_models == KS_DEPLOY_MODELS_MAX) {
            const char *used[KS_DEPLOY_VARIANTS_MAX + 2];
            size_t n_used = ks_deploy_versions(s, used, KS_ARRAY_LEN(used)), i, k = 0;
            for (i = 0; i < s->n_models; i++) {
                for (k = 0; k < n_used && strcmp(used[k], s->model[i].version) != 0; k++)
                    ;
                if (k == n_used)
                    break;
            }
            memmove(&s->model[i], &s->model[i + 1], (s->n_models - i - 1) * sizeof(s->model[0]));
            s->n_models--;
        }
        slot = &s->model[s->n_models++];
    }
    ks_deploy_copy(slot->version, sizeof(slot->version), m->version);
    ks_deploy_copy(slot->path, sizeof(slot->path), m->path);
    ks_deploy_copy(slot->sha256, sizeof(slot->sha256), m->sha256);
}

static void push_history(ks_deploy_state_t *s, const char *version)
{
    if (s->n_history == KS_DEPLOY_HISTORY_MAX) {
        memmove(s->history[0], s->history[1], (KS_DEPLOY_HISTORY_MAX - 1) * sizeof(s->history[0]));
        s->n_history--;
    }
    ks_deploy_copy(s->history[s->n_history++], KS_DEPLOY_VERSION_MAX, version);
}

static int routed(const ks_deploy_state_t *s, const char *version)
{
    for (size_t i = 0; i < s->n_variants; i++)
        if (strcmp(s->variant[i].version, version) == 0)
            return 1;
    return 0;
}

int ks_deploy_plan(const ks_deploy_state_t *cur, const ks_deploy_msg_t *m,
                   ks_deploy_state_t *s, char *errbuf, size_t errsize)
{
    *s = *cur;
    if (m->path[0])
        register_model(s, m);
    const char *v = m->version;
    if (v[0] && m->action != KS_DEPLOY_ROLLBACK && m->action != KS_DEPLOY_RETIRE &&
        !ks_deploy_find(s, v))
        return ks_err(errbuf, errsize, KS_EINVAL,
                      "version %s is not known: give its path and sha256 in this message", v);
    switch (m->action) {
    case KS_DEPLOY_SHADOW:
        if (strcmp(v, s->champion) == 0)
            return ks_err(errbuf, errsize, KS_EINVAL, "%s is the champion; it cannot shadow itself",
                          v);
        ks_deploy_copy(s->shadow, sizeof(s->shadow), v);
        break;
    case KS_DEPLOY_CANARY:
        if (strcmp(v, s->champion) == 0)
            return ks_err(errbuf, errsize, KS_EINVAL, "%s is the champion already", v);
        memset(s->variant, 0, sizeof(s->variant));
        s->n_variants = 2;
        snprintf(s->variant[0].name, sizeof(s->variant[0].name), "canary");
        ks_deploy_copy(s->variant[0].version, KS_DEPLOY_VERSION_MAX, v);
        s->variant[0].buckets = m->buckets;
        snprintf(s->variant[1].name, sizeof(s->variant[1].name), "champion");
        ks_deploy_copy(s->variant[1].version, KS_DEPLOY_VERSION_MAX, s->champion);
        s->variant[1].buckets = KS_DEPLOY_BUCKETS - m->buckets;
        s->seed = ks_murmur3_32(v, strlen(v), 0);
        break;
    case KS_DEPLOY_AB: {
        uint32_t seed = 0;
        memset(s->variant, 0, sizeof(s->variant));
        for (size_t i = 0; i < m->n_variants; i++) {
            const char *ver = m->variants[i].version;
            if (!ks_deploy_find(s, ver))
                return ks_err(errbuf, errsize, KS_EINVAL,
                              "A/B variant %s is not known: deploy it with its path first "
                              "(e.g. as a shadow)", ver);
            snprintf(s->variant[i].name, sizeof(s->variant[i].name), "%c", (char)('a' + i));
            ks_deploy_copy(s->variant[i].version, KS_DEPLOY_VERSION_MAX, ver);
            s->variant[i].buckets = m->variants[i].buckets;
            seed = ks_murmur3_32(ver, strlen(ver), seed);
        }
        s->n_variants = m->n_variants;
        s->seed = seed;
        break;
    }
    case KS_DEPLOY_PROMOTE:
        if (strcmp(v, s->champion) != 0) {
            push_history(s, s->champion);
            ks_deploy_copy(s->champion, sizeof(s->champion), v);
        }
        s->n_variants = 0;
        if (strcmp(s->shadow, v) == 0)
            s->shadow[0] = '\0';
        break;
    case KS_DEPLOY_ROLLBACK:
        if (v[0] && strcmp(v, s->champion) != 0) {
            /* a candidate: take it out (nothing to do if it is out already,
             * e.g. every replica's guard rolled it back) */
            if (routed(s, v))
                s->n_variants = 0;
            if (strcmp(s->shadow, v) == 0)
                s->shadow[0] = '\0';
            break;
        }
        if (!v[0] && (s->n_variants || s->shadow[0])) { /* the candidates go */
            s->n_variants = 0;
            s->shadow[0] = '\0';
            break;
        }
        if (s->n_history == 0)
            return ks_err(errbuf, errsize, KS_EINVAL,
                          "nothing to roll back: no candidate is routed and %s is the first "
                          "champion", s->champion);
        ks_deploy_copy(s->champion, sizeof(s->champion), s->history[--s->n_history]);
        s->n_variants = 0;
        if (strcmp(s->shadow, s->champion) == 0)
            s->shadow[0] = '\0';
        break;
    case KS_DEPLOY_RETIRE:
        if (strcmp(v, s->champion) == 0)
            return ks_err(errbuf, errsize, KS_EINVAL,
                          "%s is the champion: promote another version before retiring it", v);
        if (routed(s, v))
            s->n_variants = 0;
        if (strcmp(s->shadow, v) == 0)
            s->shadow[0] = '\0';
        break;
    }
    return KS_OK;
}

size_t ks_deploy_versions(const ks_deploy_state_t *s, const char **out, size_t max)
{
    size_t n = 0;
    const char *cand[KS_DEPLOY_VARIANTS_MAX + 2];
    size_t nc = 0;
    cand[nc++] = s->champion;
    for (size_t i = 0; i < s->n_variants; i++)
        cand[nc++] = s->variant[i].version;
    if (s->shadow[0])
        cand[nc++] = s->shadow;
    for (size_t i = 0; i < nc && n < max; i++) {
        size_t k;
        for (k = 0; k < n && strcmp(out[k], cand[i]) != 0; k++)
            ;
        if (k == n)
            out[n++] = cand[i];
    }
    return n;
}

size_t ks_deploy_route(const ks_deploy_state_t *s, const void *key, size_t len)
{
    uint32_t upto[KS_DEPLOY_VARIANTS_MAX];
    uint32_t acc = 0;
    for (size_t i = 0; i < s->n_variants; i++)
        upto[i] = acc += (uint32_t)s->variant[i].buckets;
    return ks_deploy_pick(ks_murmur3_32(key, len, s->seed), upto, s->n_variants);
}

void ks_deploy_state_json(const ks_deploy_state_t *s, ks_buf_t *b)
{
    ks_buf_puts(b, "{\"champion\":");
    ks_buf_json_string(b, s->champion, strlen(s->champion));
    ks_buf_puts(b, ",\"routing\":[");
    if (s->n_variants == 0) {
        ks_buf_puts(b, "{\"variant\":\"champion\",\"model_version\":");
        ks_buf_json_string(b, s->champion, strlen(s->champion));
        ks_buf_puts(b, ",\"percent\":100}");
    }
    for (size_t i = 0; i < s->n_variants; i++) {
        ks_buf_printf(b, "%s{\"variant\":\"%s\",\"model_version\":", i ? "," : "",
                      s->variant[i].name);
        ks_buf_json_string(b, s->variant[i].version, strlen(s->variant[i].version));
        ks_buf_printf(b, ",\"percent\":%g}", s->variant[i].buckets / 100.0);
    }
    ks_buf_printf(b, "],\"seed\":%u,\"shadow\":", s->seed);
    if (s->shadow[0])
        ks_buf_json_string(b, s->shadow, strlen(s->shadow));
    else
        ks_buf_puts(b, "null");
    ks_buf_puts(b, ",\"history\":[");
    for (size_t i = 0; i < s->n_history; i++) {
        if (i)
            ks_buf_putc(b, ',');
        ks_buf_json_string(b, s->history[i], strlen(s->history[i]));
    }
    ks_buf_puts(b, "],\"models\":[");
    for (size_t i = 0; i < s->n_models; i++) {
        const ks_deploy_model_t *md = &s->model[i];
        ks_buf_puts(b, i ? ",{\"version\":" : "{\"version\":");
        ks_buf_json_string(b, md->version, strlen(md->version));
        ks_buf_puts(b, ",\"path\":");
        ks_buf_json_string(b, md->path, strlen(md->path));
        ks_buf_puts(b, ",\"sha256\":");
        if (md->sha256[0])
            ks_buf_printf(b, "\"%s\"}", md->sha256);
        else
            ks_buf_puts(b, "null}");
    }
    ks_buf_printf(b, "],\"applied\":%lld,\"refused\":%lld,\"last_offset\":%lld}", s->applied,
                  s->refused, s->last_offset);
}
