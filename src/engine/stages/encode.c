/*
 * encode.c - stage "encode": the output record of every good row, JSON, all
 * of a batch's records back to back in one buffer (one clock read for the
 * batch's prediction_time and latency_ms, and prediction_time formatted once
 * per batch):
 *
 *   {"id":..., <carry fields>, "prediction":..., "probabilities":{...},
 *    "score":..., "confidence":..., "label":..., "degraded":[...],
 *    "features":{name: value, ...} (output.include_features), "model_version":"...",
 *    "variant":"...", "event_time":"...", "prediction_time":"...", "latency_ms":...}
 *
 * or, with output.format: compact, only what a throughput-bound consumer
 * needs, the same numbers formatted the same way:
 *
 *   {"id":..., "score":... | "prediction":..., "model_version":"..."}
 *
 * ("score" for binary classifiers, else "prediction"). The record's Kafka key
 * is the id field's text (ks_batch_key).
 *
 * What is the same in every record is written once and copied: the quoted
 * field names and the record's opening per thread, each model's class
 * labels, "probabilities" keys and "model_version" member per batch (a
 * batch holds its models, so a pointer identifies one only within a batch).
 * Each number is formatted once, shortest round-trip (base/fmtnum.h), and
 * copied where the record repeats it ("score" is probabilities["1"],
 * "confidence" the largest probability); a carried string or number the
 * decoder read from the event is copied from there (decode/value.h).
 *
 * Under a routing (model.deployments_topic) each row's record names the
 * model version that scored it and its "variant" (champion, canary, a..d);
 * with a shadow model and shadow.topic, each good row also gets a shadow
 * record of the same shape with the shadow's prediction, "variant":"shadow"
 * and "shadow_of": the version it shadowed, into a buffer of this stage's
 * thread state that the shadow sink reads (b->shadow_recs).
 */
#include "base/common.h"
#include "engine/pipeline.h"
#include "engine/stage.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A piece of constant text in a fragments buffer. */
typedef struct frag {
    size_t off, len;
} frag_t;

/* What a model's records repeat, built from its model once per batch. */
typedef struct model_frags {
    const ks_serving_t *sv;
    uint64_t batch;           /* the batch (encode_thread_t.batch) they belong to */
    ks_buf_t text;
    frag_t *label;            /* per class: the label as "prediction" writes it */
    frag_t *prob_key;         /* per class: ,"probabilities":{"0": then ,"1": ... */
    size_t cap_classes;
    frag_t version;           /* ,"model_version":"..." */
} model_frags_t;

static frag_t frag_end(const ks_buf_t *t, size_t start)
{
    frag_t f = {start, t->len - start};
    return f;
}

/* Fragment texts end with this much readable slack, so that put_frag can
 * copy whole words past a fragment's end. */
#define FRAG_SLACK 16

/* Appends a fragment: up to 32 bytes as overlapping word copies (no memcpy
 * call for a length known only at run time), longer ones by memcpy. */
static inline void put_frag(ks_buf_t *b, const ks_buf_t *t, frag_t f)
{
    const char *src = t->data + f.off;
    size_t n = f.len;
    if (n > 32) {
        ks_buf_append(b, src, n);
        return;
    }
    ks_buf_reserve(b, 32);
    char *d = b->data + b->len;
    if (n > 16) {
        char w[16];
        memcpy(w, src + n - 16, 16);
        memcpy(d, src, 16);
        memcpy(d + n - 16, w, 16);
    } else if (n > 8) {
        uint64_t x, y;
        memcpy(&x, src, 8);
        memcpy(&y, src + n - 8, 8);
        memcpy(d, &x, 8);
        memcpy(d + n - 8, &y, 8);
    } else {
        memcpy(d, src, 8); /* (the slack: bytes past n are overwritten next) */
    }
    b->len += n;
    b->data[b->len] = '\0';
}

/* Ends a fragments text: room for put_frag's word copies past its end. */
static void frags_done(ks_buf_t *t)
{
    ks_buf_reserve(t, FRAG_SLACK);
    memset(t->data + t->len, 0, FRAG_SLACK);
}

/* Appends again the len bytes of b at off (a number the record repeats). */
static inline void put_again(ks_buf_t *b, size_t off, size_t len)
{
    ks_buf_reserve(b, len);
    memcpy(b->data + b->len, b->data + off, len);
    b->len += len;
    b->data[b->len] = '\0';
}

/* Writes a class label: as a JSON number when it is one, else as a string. */
static void put_label(ks_buf_t *b, const char *label)
{
    char *end;
    size_t len = strlen(label);
    if (len && len < 20 && (strtoll(label, &end, 10), *end == '\0'))
        ks_buf_puts(b, label);
    else
        ks_buf_json_string(b, label, len);
}

/* A probability's key: ,"probabilities":{"label": for the first class. */
static void put_prob_key(ks_buf_t *b, const ks_model_t *m, size_t k)
{
    ks_buf_puts(b, k ? "," : ",\"probabilities\":{");
    ks_buf_json_string(b, m->class_labels[k], strlen(m->class_labels[k]));
    ks_buf_putc(b, ':');
}

static void model_frags_build(model_frags_t *mf, const ks_serving_t *sv, uint64_t batch)
{
    const ks_model_t *m = sv->model;
    ks_buf_t *t = &mf->text;
    mf->sv = sv;
    mf->batch = batch;
    ks_buf_reset(t);
    if (m->n_classes > mf->cap_classes) {
        mf->label = ks_xrealloc(mf->label, m->n_classes * sizeof(frag_t));
        mf->prob_key = ks_xrealloc(mf->prob_key, m->n_classes * sizeof(frag_t));
        mf->cap_classes = m->n_classes;
    }
    for (size_t k = 0; k < m->n_classes; k++) {
        size_t start = t->len;
        put_label(t, m->class_labels[k]);
        mf->label[k] = frag_end(t, start);
        start = t->len;
        put_prob_key(t, m, k);
        mf->prob_key[k] = frag_end(t, start);
    }
    size_t start = t->len;
    ks_buf_puts(t, ",\"model_version\":");
    ks_buf_json_string(t, m->version, strlen(m->version));
    mf->version = frag_end(t, start);
    frags_done(t);
}

static void put_value(ks_buf_t *b, const ks_value_t *v)
{
    switch (v->type) {
    case KS_VAL_NUM: ks_buf_json_double(b, v->num); break;
    case KS_VAL_STR: ks_buf_json_string(b, v->str, v->len); break;
    case KS_VAL_BOOL: ks_buf_puts(b, v->b ? "true" : "false"); break;
    default: ks_buf_puts(b, "null"); break;
    }
}

/* A decoded field's value, copied from the event where the decoder left its
 * JSON text there: a string without escapes (the event's bytes, quotes
 * included, are exactly what ks_buf_json_string would write) or, with
 * copy_num, a number's token (it parses to the same double: the decoder
 * read it with strtod's rounding). Anything else is formatted. The id is
 * not copied as a number: its text is also the record's key, which stays
 * the canonical spelling ("1.0" and "1" are one key). */
static inline void put_field(ks_buf_t *b, const ks_value_t *v, int decoded, int copy_num,
                             const ks_event_t *ev)
{
    if (decoded && v->type == KS_VAL_STR && (uintptr_t)v->str > (uintptr_t)ev->value &&
        (uintptr_t)v->str + v->len < (uintptr_t)ev->value + ev->len && v->str[-1] == '"' &&
        v->str[v->len] == '"') {
        ks_buf_append(b, v->str - 1, (size_t)v->len + 2);
        return;
    }
    if (copy_num && decoded && v->type == KS_VAL_NUM && v->num_len &&
        (size_t)v->num_off + v->num_len <= ev->len) {
        ks_buf_append(b, ev->value + v->num_off, v->num_len);
        return;
    }
    put_value(b, v);
}

/* Appends "prediction": the value for regressors, the most probable class's
 * label for classifiers; returns that class (0 for regressors). Labels come
 * from mf when given. */
static size_t put_prediction(ks_buf_t *b, const ks_model_t *m, const model_frags_t *mf,
                             const double *o)
{
    ks_buf_puts(b, "\"prediction\":");
    if (m->task != KS_TASK_CLASSIFICATION) {
        ks_buf_json_double(b, o[0]);
        return 0;
    }
    size_t best = 0;
    for (size_t k = 1; k < m->n_classes; k++)
        if (o[k] > o[best])
            best = k;
    if (mf)
        put_frag(b, &mf->text, mf->label[best]);
    else
        put_label(b, m->class_labels[best]);
    return best;
}

/* The prediction members (see ks_encode_prediction), constants from mf when
 * given. */
static void put_prediction_members(ks_buf_t *b, const ks_serving_t *sv, const model_frags_t *mf,
                                   const double *o)
{
    const ks_model_t *m = sv->model;
    size_t best = put_prediction(b, m, mf, o);
    if (m->task != KS_TASK_CLASSIFICATION)
        return;
    /* "score" and "confidence" repeat a probability: format each number once */
    size_t at[2] = {0, 0}, len[2] = {0, 0}; /* where P(class 1) and P(best) went in b */
    for (size_t k = 0; k < m->n_classes; k++) {
        if (mf)
            put_frag(b, &mf->text, mf->prob_key[k]);
        else
            put_prob_key(b, m, k);
        size_t start = b->len;
        ks_buf_json_double(b, o[k]);
        if (k == 1) {
            at[0] = start;
            len[0] = b->len - start;
        }
        if (k == best) {
            at[1] = start;
            len[1] = b->len - start;
        }
    }
    ks_buf_putc(b, '}');
    if (sv->binary) {
        ks_buf_puts(b, ",\"score\":");
        put_again(b, at[0], len[0]);
    }
    ks_buf_puts(b, ",\"confidence\":");
    put_again(b, at[1], len[1]);
}

void ks_encode_prediction(ks_buf_t *b, const ks_serving_t *sv, const double *o)
{
    put_prediction_members(b, sv, NULL, o);
}

/* The compact record's prediction: P(class 1) for binary classifiers, the
 * predicted label for others, the value for regressors. */
static void encode_compact(ks_buf_t *b, const ks_serving_t *sv, const model_frags_t *mf,
                           const double *o)
{
    if (sv->binary) {
        ks_buf_puts(b, "\"score\":");
        ks_buf_json_double(b, o[1]);
        return;
    }
    put_prediction(b, sv->model, mf, o);
}

typedef struct encode_thread {
    const struct ks_pipeline *p;
    int compact;              /* output.format: compact */
    int include_features;     /* output.include_features */
    ks_buf_t prediction_time; /* the batch's, formatted */
    ks_buf_t shadow;          /* shadow records, back to back */
    size_t *shadow_off, *shadow_len;
    size_t cap;
    /* the pipeline's constant pieces */
    ks_buf_t text;
    frag_t open;              /* {"id": or { */
    frag_t *carry_key;        /* per carried field: "name": */
    int *carry_decoded;       /* per carried field: read from the event */
    frag_t *feature_key;      /* per feature column: ,"features":{"name": then ,"name": */
    /* the batch's models' pieces */
    uint64_t batch;
    model_frags_t *mf;
    size_t n_mf;
} encode_thread_t;

/* The pieces of sv for this batch, built on first use. */
static const model_frags_t *frags_for(encode_thread_t *t, const ks_serving_t *sv)
{
    model_frags_t *free_slot = NULL;
    for (size_t i = 0; i < t->n_mf; i++) {
        if (t->mf[i].batch == t->batch && t->mf[i].sv == sv)
            return &t->mf[i];
        if (t->mf[i].batch != t->batch && !free_slot)
            free_slot = &t->mf[i];
    }
    if (!free_slot) {
        t->mf = ks_xrealloc(t->mf, (t->n_mf + 1) * sizeof(*t->mf));
        free_slot = &t->mf[t->n_mf++];
        memset(free_slot, 0, sizeof(*free_slot));
    }
    model_frags_build(free_slot, sv, t->batch);
    return free_slot;
}

/* ,"features":{"name":value,...}: the row's feature columns as the model got
 * them (NaN = missing: null). */
static void put_features(const encode_thread_t *t, const ks_batch_t *s, size_t i, ks_buf_t *b)
{
    const double *row = s->F + s->good_row[i] * s->n_cols;
    for (size_t c = 0; c < s->n_cols; c++) {
        put_frag(b, &t->text, t->feature_key[c]);
        ks_buf_json_double(b, row[c]);
    }
    ks_buf_putc(b, '}');
}

/* Appends event i's record, scored by sv with outputs o, to b. For the
 * output record (shadow_of NULL) the key is noted: either a pointer into
 * the event (string ids) or an offset into b (numeric ids), see
 * ks_batch_key. */
static void encode_one(encode_thread_t *t, ks_batch_t *s, size_t i, ks_buf_t *b,
                       const ks_serving_t *sv, const double *o, const char *variant,
                       const char *shadow_of)
{
    const struct ks_pipeline *p = t->p;
    const struct ks_config *cfg = p->cfg;
    const model_frags_t *mf = frags_for(t, sv);
    const ks_value_t *fields = ks_batch_row(s, i);
    const ks_event_t *ev = &s->ev[i];
    size_t rec_off = b->len;

    if (!shadow_of) {
        s->key_ptr[i] = NULL;
        s->key_off[i] = SIZE_MAX;
        s->key_len[i] = 0;
    }
    put_frag(b, &t->text, t->open);
    if (p->id_field >= 0) {
        const ks_value_t *id = &fields[p->id_field];
        size_t start = b->len;
        put_field(b, id, (size_t)p->id_field < cfg->schema->n_decoded, 0, ev);
        if (!shadow_of && id->type == KS_VAL_STR) {
            s->key_ptr[i] = id->str;
            s->key_len[i] = id->len;
        } else if (!shadow_of && id->type == KS_VAL_NUM) {
            s->key_off[i] = start; /* the number's text in b */
            s->key_len[i] = b->len - start;
        }
        ks_buf_putc(b, ',');
    }
    if (t->compact) {
        encode_compact(b, sv, mf, o);
        put_frag(b, &mf->text, mf->version);
    } else {
        for (size_t c = 0; c < p->n_carry; c++) {
            put_frag(b, &t->text, t->carry_key[c]);
            put_field(b, &fields[p->carry[c]], t->carry_decoded[c], 1, ev);
            ks_buf_putc(b, ',');
        }
        put_prediction_members(b, sv, mf, o);
        if (cfg->output_has_threshold && sv->binary)
            ks_buf_puts(b, o[1] >= cfg->output_threshold ? ",\"label\":true"
                                                          : ",\"label\":false");
        ks_batch_degraded_json(s, i, b);
        if (t->include_features)
            put_features(t, s, i, b);
        put_frag(b, &mf->text, mf->version);
    }
    if (variant) {
        ks_buf_puts(b, ",\"variant\":\"");
        ks_buf_puts(b, variant); /* a static name: no escaping */
        ks_buf_putc(b, '"');
    }
    if (shadow_of) {
        ks_buf_puts(b, ",\"shadow_of\":");
        ks_buf_json_string(b, shadow_of, strlen(shadow_of));
    }
    if (!t->compact) {
        if (ev->timestamp_ms >= 0) {
            ks_buf_puts(b, ",\"event_time\":\"");
            ks_buf_iso8601_ms(b, ev->timestamp_ms);
            ks_buf_putc(b, '"');
        }
        ks_buf_puts(b, ",\"prediction_time\":\"");
        ks_buf_append(b, t->prediction_time.data, t->prediction_time.len);
        ks_buf_puts(b, "\",\"latency_ms\":");
        double lat = (double)(s->now_ns - ev->recv_ns) / 1e6;
        ks_buf_fixed3(b, lat < 0 ? 0 : lat);
    }
    ks_buf_putc(b, '}');
    if (!shadow_of) {
        s->rec_off[i] = rec_off;
        s->rec_len[i] = b->len - rec_off;
    }
}

static int encode_thread_init(void *ctx, const ks_stage_env_t *env, void **tctx, char *errbuf,
                              size_t errsize)
{
    const struct ks_pipeline *p = env->p;
    const struct ks_config *cfg = p->cfg;
    encode_thread_t *t = ks_xcalloc(1, sizeof(*t));
    t->p = p;
    t->compact = strcmp(cfg->output_format, "compact") == 0;
    t->include_features = strcmp(cfg->output_include_features, "true") == 0;
    ks_buf_t *x = &t->text;
    size_t start = x->len;
    ks_buf_puts(x, p->id_field >= 0 ? "{\"id\":" : "{");
    t->open = frag_end(x, start);
    t->carry_key = ks_xcalloc(p->n_carry ? p->n_carry : 1, sizeof(frag_t));
    t->carry_decoded = ks_xcalloc(p->n_carry ? p->n_carry : 1, sizeof(int));
    for (size_t c = 0; c < p->n_carry; c++) {
        const ks_field_t *f = &cfg->schema->fields[p->carry[c]];
        start = x->len;
        ks_buf_json_string(x, f->name, strlen(f->name));
        ks_buf_putc(x, ':');
        t->carry_key[c] = frag_end(x, start);
        t->carry_decoded[c] = (size_t)p->carry[c] < cfg->schema->n_decoded;
    }
    size_t n_cols = p->n_cols;
    t->feature_key = ks_xcalloc(n_cols ? n_cols : 1, sizeof(frag_t));
    for (size_t c = 0; c < n_cols; c++) {
        const char *name = ks_features_name(cfg->features, c);
        start = x->len;
        ks_buf_puts(x, c ? "," : ",\"features\":{");
        ks_buf_json_string(x, name, strlen(name));
        ks_buf_putc(x, ':');
        t->feature_key[c] = frag_end(x, start);
    }
    frags_done(x);
    *tctx = t;
    return KS_OK;
}

static void encode_thread_free(void *tctx)
{
    encode_thread_t *t = tctx;
    ks_buf_free(&t->prediction_time);
    ks_buf_free(&t->shadow);
    ks_buf_free(&t->text);
    free(t->carry_key);
    free(t->carry_decoded);
    free(t->feature_key);
    for (size_t i = 0; i < t->n_mf; i++) {
        ks_buf_free(&t->mf[i].text);
        free(t->mf[i].label);
        free(t->mf[i].prob_key);
    }
    free(t->mf);
    free(t->shadow_off);
    free(t->shadow_len);
    free(t);
}

static void encode_run(void *tctx, ks_batch_t *b)
{
    encode_thread_t *t = tctx;
    const struct ks_pipeline *p = t->p;
    const ks_routing_t *rt = b->rt;
    t->batch++; /* the models' pieces are rebuilt for this batch's models */
    b->now_ns = ks_now_mono_ns();
    b->now_ms = ks_now_wall_ms();
    ks_buf_reset(&t->prediction_time);
    ks_buf_iso8601_ms(&t->prediction_time, b->now_ms);
    b->shadow_recs = NULL;
    if (!rt) {
        for (size_t i = 0; i < b->n; i++)
            if (ks_batch_ok(b, i))
                encode_one(t, b, i, &b->recs, b->sv,
                           b->out + b->good_row[i] * b->sv->model->n_outputs, NULL, NULL);
        return;
    }
    size_t n_out = b->sv->model->n_outputs;
    for (size_t i = 0; i < b->n; i++)
        if (ks_batch_ok(b, i))
            encode_one(t, b, i, &b->recs, rt->v[b->variant[i]].sv,
                       b->out + b->good_row[i] * n_out, rt->v[b->variant[i]].name, NULL);
    if (!b->shadow_out || !p->cfg->shadow_topic)
        return; /* no shadow records without shadow.topic: metrics only */
    if (b->n > t->cap) {
        t->shadow_off = ks_xrealloc(t->shadow_off, b->n * sizeof(size_t));
        t->shadow_len = ks_xrealloc(t->shadow_len, b->n * sizeof(size_t));
        t->cap = b->n;
    }
    ks_buf_reset(&t->shadow);
    const ks_serving_t *ssv = rt->shadow.sv;
    for (size_t i = 0; i < b->n; i++) {
        t->shadow_len[i] = 0;
        if (!ks_batch_ok(b, i) || !b->shadow_ok[b->good_row[i]])
            continue;
        t->shadow_off[i] = t->shadow.len;
        encode_one(t, b, i, &t->shadow, ssv,
                   b->shadow_out + b->good_row[i] * ssv->model->n_outputs, "shadow",
                   rt->v[b->variant[i]].sv->model->version);
        t->shadow_len[i] = t->shadow.len - t->shadow_off[i];
    }
    b->shadow_recs = &t->shadow;
    b->shadow_off = t->shadow_off;
    b->shadow_len = t->shadow_len;
}

static const ks_config_key_t encode_keys[] = {
    {"output.include_features", KS_CONF_ENUM, KS_CONF_OFF(output_include_features), KS_CONF_NOHAS,
     0, "false", 0, 0, "true|false",
     "Adds \"features\": {name: value, ...} to each output record: the model's inputs as "
     "computed, window features included (missing values are null)."},
};

const ks_stage_type_t ks_stage_encode = {
    .name = "encode",
    .keys = encode_keys,
    .n_keys = KS_ARRAY_LEN(encode_keys),
    .thread_init = encode_thread_init,
    .run = encode_run,
    .thread_free = encode_thread_free,
};
