/*
 * scorer.c - one micro-batch through decode -> features -> model, and the
 * output record encoder. Used as-is by the Kafka worker and by offline
 * `kscore predict`, so both produce the same bits for the same event.
 *
 * Memory: every buffer is sized for the largest batch seen and reused; the
 * arena holds unescaped strings and error messages and is reset per batch.
 */
#include "engine/pipeline.h"
#include "base/common.h"
#include "features/features.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ks_scorer_init(ks_scorer_t *s, const struct ks_pipeline *p, char *errbuf, size_t errsize)
{
    memset(s, 0, sizeof(*s));
    s->p = p;
    ks_arena_init(&s->arena, 1 << 16);
    s->cols = ks_xcalloc(p->n_cols ? p->n_cols : 1, sizeof(double));
    return ks_decoder_new(p->cfg->schema, &s->decoder, errbuf, errsize);
}

void ks_scorer_destroy(ks_scorer_t *s)
{
    if (s->decoder)
        ks_decoder_free(s->decoder);
    ks_arena_free(&s->arena);
    free(s->fields);
    free(s->cols);
    free(s->X);
    free(s->out);
    free(s->good_row);
    free(s->rec_off);
    free(s->rec_len);
    free(s->key_off);
    free(s->key_len);
    free(s->key_ptr);
    free(s->err);
    free(s->errmsg);
    ks_buf_free(&s->recs);
}

/* Sizes the buffers for n events and model m (which a hot swap may change). */
static void grow(ks_scorer_t *s, size_t n, const ks_model_t *m)
{
    size_t nx = n * (m->n_features ? m->n_features : 1), no = n * m->n_outputs;
    if (nx > s->x_cap) {
        s->X = ks_xrealloc(s->X, nx * sizeof(double));
        s->x_cap = nx;
    }
    if (no > s->out_cap) {
        s->out = ks_xrealloc(s->out, no * sizeof(double));
        s->out_cap = no;
    }
    if (n <= s->cap)
        return;
    size_t nf = s->p->cfg->schema->n_fields;
    s->fields = ks_xrealloc(s->fields, n * (nf ? nf : 1) * sizeof(ks_value_t));
    s->good_row = ks_xrealloc(s->good_row, n * sizeof(size_t));
    s->rec_off = ks_xrealloc(s->rec_off, n * sizeof(size_t));
    s->rec_len = ks_xrealloc(s->rec_len, n * sizeof(size_t));
    s->key_off = ks_xrealloc(s->key_off, n * sizeof(size_t));
    s->key_len = ks_xrealloc(s->key_len, n * sizeof(size_t));
    s->key_ptr = ks_xrealloc(s->key_ptr, n * sizeof(char *));
    s->err = ks_xrealloc(s->err, n * sizeof(ks_errclass_t));
    s->errmsg = ks_xrealloc(s->errmsg, n * sizeof(char *));
    s->cap = n;
}

static void set_error(ks_scorer_t *s, size_t i, ks_errclass_t cls, const char *msg)
{
    size_t len = strlen(msg);
    char *copy = ks_arena_alloc(&s->arena, len + 1);
    memcpy(copy, msg, len + 1);
    s->err[i] = cls;
    s->errmsg[i] = copy;
    s->good_row[i] = SIZE_MAX;
}

void ks_scorer_run(ks_scorer_t *s, ks_serving_t *sv, const ks_event_t *ev, size_t n)
{
    const struct ks_pipeline *p = s->p;
    const ks_engine_metrics_t *em = &p->metrics;
    const ks_model_t *m = sv->model;
    size_t nf = p->cfg->schema->n_fields;
    size_t rows = 0;
    int64_t t0 = ks_now_mono_ns();

    s->sv = sv;
    grow(s, n, m);
    ks_arena_reset(&s->arena);
    for (size_t i = 0; i < n; i++) {
        ks_decode_error_t derr;
        s->err[i] = KS_ERRCLASS_NONE;
        s->errmsg[i] = NULL;
        if (ks_decoder_decode(s->decoder, ev[i].value, ev[i].len, s->fields + i * nf, &s->arena,
                              &derr))
            set_error(s, i, derr.cls, derr.msg);
    }
    int64_t t1 = ks_now_mono_ns();
    for (size_t i = 0; i < n; i++) {
        if (s->err[i] != KS_ERRCLASS_NONE)
            continue;
        double *x = s->X + rows * m->n_features;
        double *cols = sv->identity_cols ? x : s->cols;
        if (ks_features_compute(p->cfg->features, s->fields + i * nf, cols, s->errtmp,
                                sizeof(s->errtmp))) {
            set_error(s, i, KS_ERRCLASS_FEATURE, s->errtmp);
            continue;
        }
        if (!sv->identity_cols)
            for (size_t j = 0; j < m->n_features; j++)
                x[j] = cols[sv->model_col[j]];
        s->good_row[i] = rows++;
    }
    int64_t t2 = ks_now_mono_ns();
    int rc = rows ? ks_model_predict(m, s->X, rows, s->out) : KS_OK;
    int64_t t3 = ks_now_mono_ns();
    for (size_t i = 0; i < n && rows; i++) {
        if (s->err[i] != KS_ERRCLASS_NONE)
            continue;
        if (rc) {
            set_error(s, i, KS_ERRCLASS_INFERENCE, "the model failed to predict this batch");
            continue;
        }
        const double *o = s->out + s->good_row[i] * m->n_outputs;
        size_t k, best = 0;
        for (k = 0; k < m->n_outputs && isfinite(o[k]); k++)
            if (o[k] > o[best])
                best = k;
        if (k < m->n_outputs) {
            set_error(s, i, KS_ERRCLASS_INFERENCE, "the model returned a non-finite output");
            continue;
        }
        if (m->task == KS_TASK_CLASSIFICATION) {
            ks_histogram_observe(sv->score, sv->binary ? o[1] : o[best]);
            ks_histogram_observe(sv->confidence, o[best]);
        } else {
            ks_histogram_observe(sv->score, o[0]);
        }
    }
    ks_counter_add(em->batches, 1);
    ks_histogram_observe(em->batch_size, (double)n);
    ks_histogram_observe(em->stage[KS_STAGE_DECODE], (double)(t1 - t0) / 1e9);
    ks_histogram_observe(em->stage[KS_STAGE_FEATURES], (double)(t2 - t1) / 1e9);
    if (rows)
        ks_histogram_observe(em->stage[KS_STAGE_INFERENCE], (double)(t3 - t2) / 1e9);
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

static void put_value(ks_buf_t *b, const ks_value_t *v)
{
    switch (v->type) {
    case KS_VAL_NUM: ks_buf_json_double(b, v->num); break;
    case KS_VAL_STR: ks_buf_json_string(b, v->str, v->len); break;
    case KS_VAL_BOOL: ks_buf_puts(b, v->b ? "true" : "false"); break;
    default: ks_buf_puts(b, "null"); break;
    }
}

void ks_encode_prediction(ks_buf_t *b, const ks_serving_t *sv, const double *o)
{
    const ks_model_t *m = sv->model;
    if (m->task != KS_TASK_CLASSIFICATION) {
        ks_buf_puts(b, "\"prediction\":");
        ks_buf_json_double17(b, o[0]);
        return;
    }
    size_t best = 0;
    for (size_t k = 1; k < m->n_classes; k++)
        if (o[k] > o[best])
            best = k;
    ks_buf_puts(b, "\"prediction\":");
    put_label(b, m->class_labels[best]);
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

/* Appends event i's record to b; its key is either a pointer into the event
 * (string ids) or an offset into b (numeric ids), see ks_scorer_key. */
static void encode_one(ks_scorer_t *s, ks_buf_t *b, const ks_event_t *ev, size_t i,
                       int64_t now_ms, int64_t now_ns)
{
    const struct ks_pipeline *p = s->p;
    const struct ks_config *cfg = p->cfg;
    const ks_model_t *m = s->sv->model;
    const ks_value_t *fields = s->fields + i * cfg->schema->n_fields;
    const double *o = s->out + s->good_row[i] * m->n_outputs;

    s->key_ptr[i] = NULL;
    s->key_off[i] = SIZE_MAX;
    s->key_len[i] = 0;
    s->rec_off[i] = b->len;
    ks_buf_putc(b, '{');
    if (p->id_field >= 0) {
        const ks_value_t *id = &fields[p->id_field];
        ks_buf_puts(b, "\"id\":");
        size_t start = b->len;
        put_value(b, id);
        if (id->type == KS_VAL_STR) {
            s->key_ptr[i] = id->str;
            s->key_len[i] = id->len;
        } else if (id->type == KS_VAL_NUM) {
            s->key_off[i] = start; /* the number's text in b */
            s->key_len[i] = b->len - start;
        }
        ks_buf_putc(b, ',');
    }
    for (size_t c = 0; c < p->n_carry; c++) {
        const ks_field_t *f = &cfg->schema->fields[p->carry[c]];
        ks_buf_json_string(b, f->name, strlen(f->name));
        ks_buf_putc(b, ':');
        put_value(b, &fields[p->carry[c]]);
        ks_buf_putc(b, ',');
    }
    ks_encode_prediction(b, s->sv, o);
    if (cfg->output_has_threshold && s->sv->binary)
        ks_buf_puts(b, o[1] >= cfg->output_threshold ? ",\"label\":true" : ",\"label\":false");
    ks_buf_puts(b, ",\"model_version\":");
    ks_buf_json_string(b, m->version, strlen(m->version));
    if (ev[i].timestamp_ms >= 0) {
        ks_buf_puts(b, ",\"event_time\":\"");
        ks_buf_iso8601_ms(b, ev[i].timestamp_ms);
        ks_buf_putc(b, '"');
    }
    ks_buf_puts(b, ",\"prediction_time\":\"");
    ks_buf_iso8601_ms(b, now_ms);
    ks_buf_puts(b, "\",\"latency_ms\":");
    double lat = (double)(now_ns - ev[i].recv_ns) / 1e6;
    ks_buf_fixed3(b, lat < 0 ? 0 : lat);
    ks_buf_putc(b, '}');
    s->rec_len[i] = b->len - s->rec_off[i];
}

void ks_scorer_encode_batch(ks_scorer_t *s, const ks_event_t *ev, size_t n)
{
    int64_t t0 = ks_now_mono_ns(), now_ms = ks_now_wall_ms();
    ks_buf_reset(&s->recs);
    for (size_t i = 0; i < n; i++)
        if (s->err[i] == KS_ERRCLASS_NONE)
            encode_one(s, &s->recs, ev, i, now_ms, t0);
    ks_histogram_observe(s->p->metrics.stage[KS_STAGE_ENCODE],
                         (double)(ks_now_mono_ns() - t0) / 1e9);
}
