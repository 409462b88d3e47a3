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

static void put_value(ks_buf_t *b, const ks_value_t *v)
{
    switch (v->type) {
    case KS_VAL_NUM: ks_buf_json_double(b, v->num); break;
    case KS_VAL_STR: ks_buf_json_string(b, v->str, v->len); break;
    case KS_VAL_BOOL: ks_buf_puts(b, v->b ? "true" : "false"); break;
    default: ks_buf_puts(b, "null"); break;
    }
}

/* Appends "prediction": the value for regressors, the most probable class's
 * label for classifiers; returns that class (0 for regressors). */
static size_t put_prediction(ks_buf_t *b, const ks_model_t *m, const double *o)
{
    ks_buf_puts(b, "\"prediction\":");
    if (m->task != KS_TASK_CLASSIFICATION) {
        ks_buf_json_double17(b, o[0]);
        return 0;
    }
    size_t best = 0;
    for (size_t k = 1; k < m->n_classes; k++)
        if (o[k] > o[best])
            best = k;
    put_label(b, m->class_labels[best]);
    return best;
}

void ks_encode_prediction(ks_buf_t *b, const ks_serving_t *sv, const double *o)
{
    const ks_model_t *m = sv->model;
    size_t best = put_prediction(b, m, o);
    if (m->task != KS_TASK_CLASSIFICATION)
        return;
    ks_buf_puts(b, ",\"probabilities\":{");
    /* "score" and "confidence" repeat a probability: format each number once */
    size_t at[2] = {0, 0}, len[2] = {0, 0}; /* where P(class 1) and P(best) went in b */
    for (size_t k = 0; k < m->n_classes; k++) {
        if (k)
            ks_buf_putc(b, ',');
        ks_buf_json_string(b, m->class_labels[k], strlen(m->class_labels[k]));
        ks_buf_putc(b, ':');
        size_t start = b->len;
        ks_buf_json_double17(b, o[k]);
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
    char num[40];
    if (sv->binary) {
        ks_buf_puts(b, ",\"score\":");
        memcpy(num, b->data + at[0], len[0]);
        ks_buf_append(b, num, len[0]);
    }
    ks_buf_puts(b, ",\"confidence\":");
    memcpy(num, b->data + at[1], len[1]);
    ks_buf_append(b, num, len[1]);
}

/* The compact record's prediction: P(class 1) for binary classifiers, the
 * predicted label for others, the value for regressors. */
static void encode_compact(ks_buf_t *b, const ks_serving_t *sv, const double *o)
{
    if (sv->binary) {
        ks_buf_puts(b, "\"score\":");
        ks_buf_json_double17(b, o[1]);
        return;
    }
    put_prediction(b, sv->model, o);
}

typedef struct encode_thread {
    const struct ks_pipeline *p;
    int compact;              /* output.format: compact */
    int include_features;     /* output.include_features */
    ks_buf_t prediction_time; /* the batch's, formatted */
    ks_buf_t shadow;          /* shadow records, back to back */
    size_t *shadow_off, *shadow_len;
    size_t cap;
} encode_thread_t;

/* ,"features":{"name":value,...}: the row's feature columns as the model got
 * them (NaN = missing: null). */
static void put_features(const struct ks_pipeline *p, const ks_batch_t *s, size_t i, ks_buf_t *b)
{
    const ks_features_t *f = p->cfg->features;
    const double *row = s->F + s->good_row[i] * s->n_cols;
    ks_buf_puts(b, ",\"features\":{");
    for (size_t c = 0; c < s->n_cols; c++) {
        const char *name = ks_features_name(f, c);
        if (c)
            ks_buf_putc(b, ',');
        ks_buf_json_string(b, name, strlen(name));
        ks_buf_putc(b, ':');
        ks_buf_json_double(b, row[c]);
    }
    ks_buf_putc(b, '}');
}

/* Appends event i's record, scored by sv with outputs o, to b. For the
 * output record (shadow_of NULL) the key is noted: either a pointer into
 * the event (string ids) or an offset into b (numeric ids), see
 * ks_batch_key. */
static void encode_one(const encode_thread_t *t, ks_batch_t *s, size_t i, ks_buf_t *b,
                       const ks_serving_t *sv, const double *o, const char *variant,
                       const char *shadow_of)
{
    const struct ks_pipeline *p = t->p;
    const struct ks_config *cfg = p->cfg;
    const ks_model_t *m = sv->model;
    const ks_value_t *fields = ks_batch_row(s, i);
    const ks_event_t *ev = s->ev;
    size_t rec_off = b->len;

    if (!shadow_of) {
        s->key_ptr[i] = NULL;
        s->key_off[i] = SIZE_MAX;
        s->key_len[i] = 0;
    }
    ks_buf_putc(b, '{');
    if (p->id_field >= 0) {
        const ks_value_t *id = &fields[p->id_field];
        ks_buf_puts(b, "\"id\":");
        size_t start = b->len;
        put_value(b, id);
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
        encode_compact(b, sv, o);
        ks_buf_puts(b, ",\"model_version\":");
        ks_buf_json_string(b, m->version, strlen(m->version));
    } else {
        for (size_t c = 0; c < p->n_carry; c++) {
            const ks_field_t *f = &cfg->schema->fields[p->carry[c]];
            ks_buf_json_string(b, f->name, strlen(f->name));
            ks_buf_putc(b, ':');
            put_value(b, &fields[p->carry[c]]);
            ks_buf_putc(b, ',');
        }
        ks_encode_prediction(b, sv, o);
        if (cfg->output_has_threshold && sv->binary)
            ks_buf_puts(b, o[1] >= cfg->output_threshold ? ",\"label\":true"
                                                          : ",\"label\":false");
        ks_batch_degraded_json(s, i, b);
        if (t->include_features)
            put_features(p, s, i, b);
        ks_buf_puts(b, ",\"model_version\":");
        ks_buf_json_string(b, m->version, strlen(m->version));
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
        if (ev[i].timestamp_ms >= 0) {
            ks_buf_puts(b, ",\"event_time\":\"");
            ks_buf_iso8601_ms(b, ev[i].timestamp_ms);
            ks_buf_putc(b, '"');
        }
        ks_buf_puts(b, ",\"prediction_time\":\"");
        ks_buf_append(b, t->prediction_time.data, t->prediction_time.len);
        ks_buf_puts(b, "\",\"latency_ms\":");
        double lat = (double)(s->now_ns - ev[i].recv_ns) / 1e6;
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
    encode_thread_t *t = ks_xcalloc(1, sizeof(*t));
    t->p = env->p;
    t->compact = strcmp(env->p->cfg->output_format, "compact") == 0;
    t->include_features = strcmp(env->p->cfg->output_include_features, "true") == 0;
    *tctx = t;
    return KS_OK;
}

static void encode_thread_free(void *tctx)
{
    encode_thread_t *t = tctx;
    ks_buf_free(&t->prediction_time);
    ks_buf_free(&t->shadow);
    free(t->shadow_off);
    free(t->shadow_len);
    free(t);
}

static void encode_run(void *tctx, ks_batch_t *b)
{
    encode_thread_t *t = tctx;
    const struct ks_pipeline *p = t->p;
    const ks_routing_t *rt = b->rt;
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
