/*
 * batch.c - the micro-batch's memory (see batch.h): per-row arrays sized for
 * the largest batch seen and reused, the model matrices sized for the model
 * of the batch (a hot swap may change them), the arena reset per batch.
 */
#include "engine/batch.h"
#include "base/common.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void ks_batch_init(ks_batch_t *b, size_t n_fields, size_t n_cols)
{
    memset(b, 0, sizeof(*b));
    b->n_fields = n_fields;
    b->n_cols = n_cols;
    ks_arena_init(&b->arena, 1 << 16);
}

void ks_batch_destroy(ks_batch_t *b)
{
    ks_arena_free(&b->arena);
    free(b->ev);
    free(b->fields);
    free(b->F);
    free(b->xbuf);
    free(b->out);
    free(b->good_row);
    free(b->rec_off);
    free(b->rec_len);
    free(b->key_off);
    free(b->key_len);
    free(b->key_ptr);
    free(b->err);
    free(b->errmsg);
    free(b->err_stage);
    ks_buf_free(&b->recs);
    memset(b, 0, sizeof(*b));
}

void ks_batch_reset(ks_batch_t *b, size_t n)
{
    if (n > b->cap) {
        size_t nf = b->n_fields ? b->n_fields : 1;
        b->ev = ks_xrealloc(b->ev, n * sizeof(*b->ev));
        b->fields = ks_xrealloc(b->fields, n * nf * sizeof(ks_value_t));
        b->good_row = ks_xrealloc(b->good_row, n * sizeof(size_t));
        b->rec_off = ks_xrealloc(b->rec_off, n * sizeof(size_t));
        b->rec_len = ks_xrealloc(b->rec_len, n * sizeof(size_t));
        b->key_off = ks_xrealloc(b->key_off, n * sizeof(size_t));
        b->key_len = ks_xrealloc(b->key_len, n * sizeof(size_t));
        b->key_ptr = ks_xrealloc(b->key_ptr, n * sizeof(char *));
        b->err = ks_xrealloc(b->err, n * sizeof(ks_errclass_t));
        b->errmsg = ks_xrealloc(b->errmsg, n * sizeof(char *));
        b->err_stage = ks_xrealloc(b->err_stage, n * sizeof(char *));
        b->F = ks_xrealloc(b->F, n * (b->n_cols ? b->n_cols : 1) * sizeof(double));
        b->cap = n;
    }
    b->n = n;
    b->rows = 0;
    b->sv = NULL;
    b->X = NULL;
    b->degraded = NULL;
    b->hold_ms = 0;
    b->hold_reason = NULL;
    b->rt = NULL;
    b->variant = NULL;
    b->shadow_out = NULL;
    b->shadow_ok = NULL;
    b->shadow_recs = NULL;
    for (size_t i = 0; i < n; i++) {
        b->err[i] = KS_ERRCLASS_NONE;
        b->errmsg[i] = NULL;
        b->err_stage[i] = NULL;
        b->good_row[i] = SIZE_MAX;
    }
    ks_buf_reset(&b->recs);
    ks_arena_reset(&b->arena);
}

void ks_batch_size_model(ks_batch_t *b, int reorder, size_t n_features, size_t n_outputs)
{
    size_t rows = b->rows ? b->rows : 1;
    size_t nx = rows * (n_features ? n_features : 1), no = rows * n_outputs;
    if (reorder && nx > b->x_cap) {
        b->xbuf = ks_xrealloc(b->xbuf, nx * sizeof(double));
        b->x_cap = nx;
    }
    if (no > b->out_cap) {
        b->out = ks_xrealloc(b->out, no * sizeof(double));
        b->out_cap = no;
    }
}

void ks_batch_fail(ks_batch_t *b, size_t i, ks_errclass_t cls, const char *stage,
                   const char *msg)
{
    size_t len = strlen(msg);
    char *copy = ks_arena_alloc(&b->arena, len + 1);
    memcpy(copy, msg, len + 1);
    b->err[i] = cls;
    b->errmsg[i] = copy;
    b->err_stage[i] = stage;
    b->good_row[i] = SIZE_MAX;
}
