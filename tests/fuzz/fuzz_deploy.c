/*
 * fuzz_deploy.c - libFuzzer target for deployment messages (engine/deploy.c),
 * the outside input every replica reads from model.deployments_topic:
 *
 *  1. ks_deploy_msg_parse on the bytes; when it accepts, the message written
 *     back (ks_deploy_msg_json) must parse to the same message;
 *  2. the bytes split at newlines are folded, one message per line, into a
 *     state through ks_deploy_plan, as a replica does: a refused plan must
 *     leave the state as it was, and every state must route keys to one of
 *     its variants and serialise (ks_deploy_state_json).
 *
 * Besides "no crash, no sanitizer report", a broken invariant calls abort().
 *
 * Build: CC=clang cmake -S . -B build-fuzz -DKSCORE_FUZZ=ON && cmake --build
 * build-fuzz --target fuzz_deploy && build-fuzz/tests/fuzz_deploy corpus/
 * (normal builds replay tests/fuzz/corpus/fuzz_deploy/ under ctest).
 */
#include "base/buf.h"
#include "engine/deploy.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void roundtrip(const ks_deploy_msg_t *m)
{
    ks_buf_t b = {0};
    ks_deploy_msg_t again;
    char err[512];
    ks_deploy_msg_json(m, &b);
    if (ks_deploy_msg_parse(b.data, b.len, &again, err, sizeof(err)) != 0 ||
        memcmp(m, &again, sizeof(*m)) != 0)
        abort();
    ks_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ks_deploy_state_t s, next, before;
    ks_deploy_msg_t m;
    char err[512];
    if (ks_deploy_msg_parse((const char *)data, size, &m, err, sizeof(err)) == 0)
        roundtrip(&m);

    ks_deploy_state_init(&s, "champion-v1", "/models/v1.json");
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (ks_deploy_msg_parse(p, len, &m, err, sizeof(err)) == 0) {
            roundtrip(&m);
            before = s;
            if (ks_deploy_plan(&s, &m, &next, err, sizeof(err)) == 0)
                s = next;
            else if (memcmp(&s, &before, sizeof(s)) != 0)
                abort();
            if (s.n_variants) {
                size_t v = ks_deploy_route(&s, p, len);
                if (v >= s.n_variants)
                    abort();
                int total = 0;
                for (size_t i = 0; i < s.n_variants; i++)
                    total += s.variant[i].buckets;
                if (total != KS_DEPLOY_BUCKETS)
                    abort();
            }
            ks_buf_t b = {0};
            ks_deploy_state_json(&s, &b);
            ks_buf_free(&b);
        }
        p += len + 1;
    }
    return 0;
}
