/*
 * decode.c - stage "decode": each event's bytes into the schema's typed
 * fields (decode/decoder.h). A malformed event, a missing required field or
 * a wrong type fails its row with the decoder's class and message.
 */
#include "base/common.h"
#include "decode/decoder.h"
#include "engine/pipeline.h"
#include "engine/stage.h"

static int decode_thread_init(void *ctx, const ks_stage_env_t *env, void **tctx, char *errbuf,
                              size_t errsize)
{
    return ks_decoder_new(env->p->cfg->schema, (ks_decoder_t **)tctx, errbuf, errsize);
}

static void decode_run(void *tctx, ks_batch_t *b)
{
    ks_decoder_t *d = tctx;
    for (size_t i = 0; i < b->n; i++) {
        ks_decode_error_t derr;
        if (!ks_batch_ok(b, i))
            continue;
        if (ks_decoder_decode(d, b->ev[i].value, b->ev[i].len, b->fields + i * b->n_fields,
                              &b->arena, &derr))
            ks_batch_fail(b, i, derr.cls, "decode", derr.msg);
    }
}

static void decode_thread_free(void *tctx)
{
    if (tctx)
        ks_decoder_free(tctx);
}

const ks_stage_type_t ks_stage_decode = {
    .name = "decode",
    .thread_init = decode_thread_init,
    .run = decode_run,
    .thread_free = decode_thread_free,
};
