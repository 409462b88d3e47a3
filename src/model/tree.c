/*
 * tree.c - the tree-ensemble engine shared by every tree format: validation
 * and flattening at load time, batched evaluation at predict time.
 *
 * Load: a loader describes each tree as an array of ks_tree_node_spec_t in
 * its own indexing; ks_ensemble_add_tree() walks it breadth-first from the
 * root, refusing anything that is not a proper binary tree (a child out of
 * range, a node reached twice - which covers cycles -, a node never reached, a
 * feature out of range, depth over KS_TREE_MAX_DEPTH), and writes it into the
 * shared node array with both children of a split adjacent. Evaluation can
 * therefore never loop or read out of bounds whatever the file said.
 *
 * Predict: rows go in blocks of up to KS_TREE_BLOCK; for KS_CMP_F32 ensembles
 * the block is first copied with every value rounded to float32 (that is
 * what XGBoost's DMatrix and scikit-learn's tree input validation do); then
 * each tree is walked for every row of the block while its nodes are in
 * cache, and its leaf value added to the row's raw score. Eight rows are
 * walked in lockstep for a fixed number of steps (the tree's depth; leaves
 * loop to themselves), which hides the latency of each dependent node load
 * and leaves no data-dependent branch to mispredict.
 * LightGBM ensembles (zero_band) get a copy too, with |x| <= 1e-35f read as
 * 0.0, as LightGBM's own predict does when it turns a dense row into its
 * sparse (index, value) form.
 * No allocation happens on the predict path unless a row has more than
 * KS_SCRATCH_DOUBLES features.
 */
#include "model/model_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"

#define KS_SCRATCH_DOUBLES 4096

/* LightGBM's kZeroThreshold is the float 1e-35f compared in double. */
static const double ks_zero_threshold = (double)1e-35f;

ks_ensemble_t *ks_ensemble_new(ks_cmp_t cmp, size_t n_features, size_t n_raw, size_t leaf_width)
{
    ks_ensemble_t *e = ks_xcalloc(1, sizeof(*e));
    e->cmp = cmp;
    e->n_features = n_features;
    e->n_raw = n_raw;
    e->leaf_width = leaf_width;
    e->base = ks_xcalloc(n_raw ? n_raw : 1, sizeof(double));
    e->tree_div = 1.0;
    e->link = KS_LINK_IDENTITY;
    e->link_scale = 1.0;
    return e;
}

void ks_ensemble_free(ks_ensemble_t *e)
{
    if (!e)
        return;
    free(e->base);
    free(e->tree_root);
    free(e->tree_group);
    free(e->tree_depth);
    free(e->nodes);
    free(e->leaf_slot);
    free(e->leaf_values);
    free(e->cat_words);
    free(e);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) {
        if (c > SIZE_MAX / 2 / elem)
            return KS_ENOMEM;
        c *= 2;
    }
    *p = ks_xrealloc(*p, c * elem);
    *cap = c;
    return 0;
}

int ks_ensemble_add_tree(ks_ensemble_t *e, const ks_tree_node_spec_t *spec, size_t n_spec,
                         size_t root, size_t group, char *errbuf, size_t errsize)
{
    int rc = KS_OK;
    size_t t = e->n_trees;
    uint32_t *slot_src = NULL;   /* slot -> spec index */
    uint32_t *slot_depth = NULL;
    uint8_t *seen = NULL;
    size_t base = e->n_nodes, n_cat = 0, n_leafvals = 0, max_depth = 0;

    if (n_spec == 0 || root >= n_spec) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "tree %zu: has no nodes or its root is out of range", t);
        goto out;
    }
    if (n_spec > KS_TREE_MAX_NODES - e->n_nodes) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "tree %zu: too many nodes (%zu; the limit is %u in all)",
                    t, n_spec, KS_TREE_MAX_NODES);
        goto out;
    }
    if (e->leaf_width == 1 && group >= e->n_raw) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "tree %zu: output group %zu out of range (the model has %zu)",
                    t, group, e->n_raw);
        goto out;
    }
    /* Pass 1: validate and count what the tree needs. */
    slot_src = ks_xmalloc(n_spec * sizeof(uint32_t));
    slot_depth = ks_xmalloc(n_spec * sizeof(uint32_t));
    seen = ks_xcalloc(n_spec, 1);
    size_t n_slots = 1;
    slot_src[0] = (uint32_t)root;
    slot_depth[0] = 0;
    seen[root] = 1;
    for (size_t s = 0; s < n_slots; s++) {
        const ks_tree_node_spec_t *n = &spec[slot_src[s]];
        size_t idx = slot_src[s];
        if (slot_depth[s] > max_depth)
            max_depth = slot_depth[s];
        if (n->kind == KS_SPLIT_LEAF) {
            if (e->leaf_width > 1) {
                if (!n->leaf_vec) {
                    rc = ks_err(errbuf, errsize, KS_EINVAL, "tree %zu: node %zu: leaf has no values", t, idx);
                    goto out;
                }
                n_leafvals += e->leaf_width;
            }
            continue;
        }
        if (n->kind != KS_SPLIT_NUM && n->kind != KS_SPLIT_NUM_ZERO && n->kind != KS_SPLIT_CAT) {
            rc = ks_err(errbuf, errsize, KS_EINVAL, "tree %zu: node %zu: unknown split kind", t, idx);
            goto out;
        }
        if (n->feature < 0 || (uint64_t)n->feature >= e->n_features || n->feature > KS_TREE_MAX_FEATURE) {
            rc = ks_err(errbuf, errsize, KS_EINVAL,
                        "tree %zu: node %zu: split feature %lld is out of range (the model has %zu features)",
                        t, idx, (long long)n->feature, e->n_features);
            goto out;
        }
        if (n->kind == KS_SPLIT_CAT) {
            if (!n->cat_left || n->cat_words == 0 || n->cat_words > 65535) {
                rc = ks_err(errbuf, errsize, KS_EINVAL,
                            "tree %zu: node %zu: categorical split has an empty or oversized bitset", t, idx);
                goto out;
            }
            n_cat += n->cat_words * (n->cat_known ? 2 : 1);
        } else if (isnan(n->threshold)) {
            /* A NaN threshold sends every number right: harmless but surely
             * a broken file. */
            rc = ks_err(errbuf, errsize, KS_EINVAL, "tree %zu: node %zu: threshold is NaN", t, idx);
            goto out;
        }
        int64_t kids[2] = {n->left, n->right};
        for (int k = 0; k < 2; k++) {
            if (kids[k] < 0 || (uint64_t)kids[k] >= n_spec) {
                rc = ks_err(errbuf, errsize, KS_EINVAL,
                            "tree %zu: node %zu: child index %lld is out of range (the tree has %zu nodes)",
                            t, idx, (long long)kids[k], n_spec);
                goto out;
            }
            if (seen[kids[k]]) {
                rc = ks_err(errbuf, errsize, KS_EINVAL,
                            "tree %zu: node %zu: child %lld is reached twice (a cycle or shared subtree)",
                            t, idx, (long long)kids[k]);
                goto out;
            }
            if (slot_depth[s] + 1 > KS_TREE_MAX_DEPTH) {
                rc = ks_err(errbuf, errsize, KS_EINVAL, "tree %zu: deeper than %d levels", t,
                            KS_TREE_MAX_DEPTH);
                goto out;
            }
            seen[kids[k]] = 1;
            slot_src[n_slots] = (uint32_t)kids[k];
            slot_depth[n_slots] = slot_depth[s] + 1;
            n_slots++;
        }
    }
    if (n_slots != n_spec) {
        size_t lost = 0;
        while (seen[lost])
            lost++;
        rc = ks_err(errbuf, errsize, KS_EINVAL, "tree %zu: node %zu is not reachable from the root", t, lost);
        goto out;
    }
    if (n_cat > UINT32_MAX - e->n_cat_words || n_leafvals > UINT32_MAX - e->n_leaf_values) {
        rc = ks_err(errbuf, errsize, KS_EINVAL, "tree %zu: too many categorical or leaf values", t);
        goto out;
    }

    /* Pass 2: emit. Slot s becomes node base + s; the children of a split
     * were given consecutive slots above, in BFS order. */
    if (grow((void **)&e->nodes, &e->nodes_cap, base + n_spec, sizeof(ks_tnode_t)) ||
        grow((void **)&e->cat_words, &e->cat_words_cap, e->n_cat_words + n_cat, sizeof(uint32_t)) ||
        grow((void **)&e->leaf_values, &e->leaf_values_cap, e->n_leaf_values + n_leafvals, sizeof(double)) ||
        grow((void **)&e->tree_root, &e->trees_cap, t + 1, sizeof(uint32_t))) {
        rc = ks_err(errbuf, errsize, KS_ENOMEM, "tree %zu: out of memory", t);
        goto out;
    }
    e->tree_group = ks_xrealloc(e->tree_group, e->trees_cap * sizeof(uint32_t));
    e->tree_depth = ks_xrealloc(e->tree_depth, e->trees_cap * sizeof(uint32_t));
    e->leaf_slot = ks_xrealloc(e->leaf_slot, e->nodes_cap * sizeof(ks_leafslot_t));
    size_t next_child = 1;
    for (size_t s = 0; s < n_slots; s++) {
        const ks_tree_node_spec_t *n = &spec[slot_src[s]];
        ks_tnode_t *o = &e->nodes[base + s];
        memset(o, 0, sizeof(*o));
        if (n->kind == KS_SPLIT_LEAF) {
            o->feature = KS_TN_LEAF | KS_TN_DEFLEFT;
            o->v.threshold = INFINITY;
            o->next = (uint32_t)(base + s);
            if (e->leaf_width > 1) {
                e->leaf_slot[base + s].offset = e->n_leaf_values;
                memcpy(e->leaf_values + e->n_leaf_values, n->leaf_vec, e->leaf_width * sizeof(double));
                e->n_leaf_values += e->leaf_width;
            } else {
                e->leaf_slot[base + s].value = n->leaf;
            }
            continue;
        }
        o->feature = (uint32_t)n->feature;
        if (n->default_left)
            o->feature |= KS_TN_DEFLEFT;
        o->next = (uint32_t)(base + next_child);
        next_child += 2;
        if (n->kind == KS_SPLIT_NUM) {
            o->v.threshold = n->threshold;
        } else if (n->kind == KS_SPLIT_NUM_ZERO) {
            e->has_special = 1;
            o->feature |= KS_TN_SPECIAL;
            o->v.threshold = n->threshold;
        } else {
            e->has_special = 1;
            o->feature |= KS_TN_SPECIAL | KS_TN_CAT;
            o->v.cat.offset = (uint32_t)e->n_cat_words;
            o->v.cat.n_words = (uint16_t)n->cat_words;
            o->v.cat.strict = n->cat_known != NULL;
            memcpy(e->cat_words + e->n_cat_words, n->cat_left, n->cat_words * sizeof(uint32_t));
            e->n_cat_words += n->cat_words;
            if (n->cat_known) {
                memcpy(e->cat_words + e->n_cat_words, n->cat_known, n->cat_words * sizeof(uint32_t));
                e->n_cat_words += n->cat_words;
            }
        }
    }
    e->n_nodes = base + n_spec;
    e->tree_root[t] = (uint32_t)base;
    e->tree_group[t] = (uint32_t)(e->leaf_width == 1 ? group : 0);
    e->tree_depth[t] = (uint32_t)max_depth;
    e->n_trees = t + 1;
    if (max_depth > e->max_depth)
        e->max_depth = max_depth;
out:
    free(slot_src);
    free(slot_depth);
    free(seen);
    return rc;
}

/* ------------------------------------------------------------ evaluation */

static int bit_is_set(const uint32_t *words, size_t n_words, uint32_t c)
{
    uint32_t w = c >> 5;
    return w < n_words && ((words[w] >> (c & 31)) & 1);
}

/* Decision for SPECIAL nodes; returns 1 to go right. */
static uint32_t special_right(const ks_tnode_t *n, uint32_t f, double x, const uint32_t *cat_words)
{
    uint32_t def_right = !(f & KS_TN_DEFLEFT);
    if (isnan(x))
        return def_right;
    if (!(f & KS_TN_CAT)) {
        if (x >= -ks_zero_threshold && x <= ks_zero_threshold)
            return def_right;
        return !(x <= n->v.threshold);
    }
    const uint32_t *left = cat_words + n->v.cat.offset;
    size_t nw = n->v.cat.n_words;
    if (n->v.cat.strict) {
        /* HistGradientBoosting: negative, non-integer, or unknown -> missing. */
        if (x < 0 || x >= 4294967296.0 || x != floor(x))
            return def_right;
        uint32_t c = (uint32_t)x;
        if (bit_is_set(left, nw, c))
            return 0;
        if (!bit_is_set(left + nw, nw, c))
            return def_right;
        return 1;
    }
    /* LightGBM: static_cast<int> truncation; negative or overflow -> default. */
    if (!(x > -1.0) || x >= 2147483648.0)
        return def_right;
    return !bit_is_set(left, nw, (uint32_t)(int32_t)x);
}

/* One step of a walk. `special` is a compile-time constant at every call
 * site: ensembles without categorical or zero-as-missing nodes run a loop
 * without that test. A missing value takes a (rarely taken) branch. */
static inline __attribute__((always_inline)) uint32_t step(const ks_tnode_t *nodes, uint32_t i, const double *row,
                                                           const uint32_t *cat_words, int special)
{
    const ks_tnode_t *n = nodes + i;
    uint32_t f = n->feature;
    double x = row[f & KS_TN_FMASK];
    if (special && KS_UNLIKELY(f & KS_TN_SPECIAL))
        return n->next + special_right(n, f, x, cat_words);
    if (KS_UNLIKELY(isnan(x)))
        return n->next + !(f & KS_TN_DEFLEFT);
    return n->next + (x > n->v.threshold);
}

/* Walks rows [0, n) of a block (row stride nf) through one tree of the
 * given depth, returning leaf node indices in leaves[]. Every row takes
 * exactly `depth` steps (leaves loop to themselves), eight rows in lockstep:
 * eight independent dependency chains keep the core busy while each node
 * load is in flight, and nothing in the loop depends on the data but the
 * node indices. */
static inline __attribute__((always_inline)) void walk_block(const ks_tnode_t *nodes, uint32_t root,
                                                            uint32_t depth, const double *rows, size_t nf, size_t n,
                                                            const uint32_t *cat_words, uint32_t *leaves, int special)
{
    size_t r = 0;
    for (; r + 8 <= n; r += 8) {
        const double *x = rows + r * nf;
        uint32_t i0 = root, i1 = root, i2 = root, i3 = root, i4 = root, i5 = root, i6 = root, i7 = root;
        for (uint32_t d = 0; d < depth; d++) {
            i0 = step(nodes, i0, x, cat_words, special);
            i1 = step(nodes, i1, x + nf, cat_words, special);
            i2 = step(nodes, i2, x + 2 * nf, cat_words, special);
            i3 = step(nodes, i3, x + 3 * nf, cat_words, special);
            i4 = step(nodes, i4, x + 4 * nf, cat_words, special);
            i5 = step(nodes, i5, x + 5 * nf, cat_words, special);
            i6 = step(nodes, i6, x + 6 * nf, cat_words, special);
            i7 = step(nodes, i7, x + 7 * nf, cat_words, special);
        }
        leaves[r] = i0, leaves[r + 1] = i1, leaves[r + 2] = i2, leaves[r + 3] = i3;
        leaves[r + 4] = i4, leaves[r + 5] = i5, leaves[r + 6] = i6, leaves[r + 7] = i7;
    }
    for (; r < n; r++) {
        const double *x = rows + r * nf;
        uint32_t i = root;
        for (uint32_t d = 0; d < depth; d++)
            i = step(nodes, i, x, cat_words, special);
        leaves[r] = i;
    }
}

/* Adds one tree's leaf for row r into the accumulators. */
static inline void add_leaf(const ks_ensemble_t *e, size_t t, uint32_t leaf, size_t r, double *raw, float *facc)
{
    size_t G = e->n_raw;
    if (e->leaf_width == 1) {
        size_t g = e->tree_group[t];
        if (e->acc_f32)
            facc[r * G + g] += (float)e->leaf_slot[leaf].value;
        else
            raw[r * G + g] += e->leaf_slot[leaf].value;
    } else {
        const double *lv = e->leaf_values + e->leaf_slot[leaf].offset;
        for (size_t g = 0; g < G; g++)
            raw[r * G + g] += lv[g];
    }
}

/* Few rows: walk eight trees in lockstep for one row instead (the same
 * latency hiding across trees), then add the leaves in tree order. */
static inline __attribute__((always_inline)) void trees_for_row(const ks_ensemble_t *e, const double *x, size_t r,
                                                               double *raw, float *facc, int special)
{
    const ks_tnode_t *nodes = e->nodes;
    const uint32_t *cw = e->cat_words;
    size_t t = 0;
    for (; t + 8 <= e->n_trees; t += 8) {
        const uint32_t *root = e->tree_root + t, *dep = e->tree_depth + t;
        uint32_t i0 = root[0], i1 = root[1], i2 = root[2], i3 = root[3];
        uint32_t i4 = root[4], i5 = root[5], i6 = root[6], i7 = root[7];
        uint32_t depth = dep[0];
        for (int k = 1; k < 8; k++)
            depth = dep[k] > depth ? dep[k] : depth;
        for (uint32_t d = 0; d < depth; d++) {
            i0 = step(nodes, i0, x, cw, special);
            i1 = step(nodes, i1, x, cw, special);
            i2 = step(nodes, i2, x, cw, special);
            i3 = step(nodes, i3, x, cw, special);
            i4 = step(nodes, i4, x, cw, special);
            i5 = step(nodes, i5, x, cw, special);
            i6 = step(nodes, i6, x, cw, special);
            i7 = step(nodes, i7, x, cw, special);
        }
        add_leaf(e, t, i0, r, raw, facc);
        add_leaf(e, t + 1, i1, r, raw, facc);
        add_leaf(e, t + 2, i2, r, raw, facc);
        add_leaf(e, t + 3, i3, r, raw, facc);
        add_leaf(e, t + 4, i4, r, raw, facc);
        add_leaf(e, t + 5, i5, r, raw, facc);
        add_leaf(e, t + 6, i6, r, raw, facc);
        add_leaf(e, t + 7, i7, r, raw, facc);
    }
    for (; t < e->n_trees; t++) {
        uint32_t i = e->tree_root[t];
        for (uint32_t d = 0; d < e->tree_depth[t]; d++)
            i = step(nodes, i, x, cw, special);
        add_leaf(e, t, i, r, raw, facc);
    }
}

/* Raw scores of one block of rows into raw (n x n_raw). Instantiated twice
 * (with and without the categorical / zero-as-missing test in the walk). */
static inline __attribute__((always_inline)) void raw_block_impl(const ks_ensemble_t *e, const double *rows,
                                                                 size_t n, double *raw, float *facc, int special)
{
    size_t G = e->n_raw, nf = e->n_features;
    uint32_t leaves[KS_TREE_BLOCK];
    const ks_tnode_t *nodes = e->nodes;

    if (e->acc_f32) {
        for (size_t r = 0; r < n; r++)
            for (size_t g = 0; g < G; g++)
                facc[r * G + g] = (float)e->base[g];
    } else {
        for (size_t r = 0; r < n; r++)
            for (size_t g = 0; g < G; g++)
                raw[r * G + g] = e->tree_div == 1.0 ? e->base[g] : 0.0;
    }
    if (n < 8) {
        for (size_t r = 0; r < n; r++)
            trees_for_row(e, rows + r * nf, r, raw, facc, special);
    } else {
        for (size_t t = 0; t < e->n_trees; t++) {
            walk_block(nodes, e->tree_root[t], e->tree_depth[t], rows, nf, n, e->cat_words, leaves, special);
            for (size_t r = 0; r < n; r++)
                add_leaf(e, t, leaves[r], r, raw, facc);
        }
    }
    if (e->acc_f32) {
        for (size_t i = 0; i < n * G; i++)
            raw[i] = facc[i];
    } else if (e->tree_div != 1.0) {
        for (size_t r = 0; r < n; r++)
            for (size_t g = 0; g < G; g++)
                raw[r * G + g] = e->base[g] + raw[r * G + g] / e->tree_div;
    }
}

static void raw_block_plain(const ks_ensemble_t *e, const double *rows, size_t n, double *raw, float *facc)
{
    raw_block_impl(e, rows, n, raw, facc, 0);
}

static void raw_block_special(const ks_ensemble_t *e, const double *rows, size_t n, double *raw, float *facc)
{
    raw_block_impl(e, rows, n, raw, facc, 1);
}

static void raw_block(const ks_ensemble_t *e, const double *rows, size_t n, double *raw, float *facc)
{
    if (e->has_special)
        raw_block_special(e, rows, n, raw, facc);
    else
        raw_block_plain(e, rows, n, raw, facc);
}

/* Inputs are copied (and rounded or zeroed) before the walk? */
static int needs_copy(const ks_ensemble_t *e)
{
    return e->cmp == KS_CMP_F32 || e->zero_band;
}

/* Rows per block so that the rounded copy and accumulators fit the scratch. */
static size_t block_rows(const ks_ensemble_t *e)
{
    size_t per_row = (needs_copy(e) ? e->n_features : 0) + e->n_raw;
    size_t rows = per_row ? KS_SCRATCH_DOUBLES / per_row : KS_TREE_BLOCK;
    if (rows > KS_TREE_BLOCK)
        rows = KS_TREE_BLOCK;
    return rows;
}

typedef void (*block_sink_t)(const ks_ensemble_t *e, const double *raw, size_t n, double *out);

static void sink_raw(const ks_ensemble_t *e, const double *raw, size_t n, double *out)
{
    memcpy(out, raw, n * e->n_raw * sizeof(double));
}

static void sink_link(const ks_ensemble_t *e, const double *raw, size_t n, double *out)
{
    size_t n_out = ks_link_n_outputs(e->link, e->n_raw);
    for (size_t r = 0; r < n; r++)
        ks_link_apply(e->link, e->link_scale, raw + r * e->n_raw, e->n_raw, out + r * n_out);
}

static void run(const ks_ensemble_t *e, const double *X, size_t n_rows, double *out, block_sink_t sink)
{
    double stack_scratch[KS_SCRATCH_DOUBLES];
    float facc_stack[KS_SCRATCH_DOUBLES];
    double *scratch = stack_scratch, *heap = NULL;
    float *facc = facc_stack, *fheap = NULL;
    size_t nf = e->n_features, G = e->n_raw;
    size_t rows = block_rows(e);
    size_t n_out = sink == sink_raw ? G : ks_link_n_outputs(e->link, G);

    if (rows == 0) {
        /* Very wide rows: one row at a time from the heap (the only
         * allocation on this path; see the file header). */
        rows = 1;
        heap = ks_xmalloc(((needs_copy(e) ? nf : 0) + G) * sizeof(double));
        fheap = ks_xmalloc(G * sizeof(float));
        scratch = heap;
        facc = fheap;
    }
    double *raw = scratch + (needs_copy(e) ? rows * nf : 0);
    for (size_t r0 = 0; r0 < n_rows; r0 += rows) {
        size_t n = n_rows - r0 < rows ? n_rows - r0 : rows;
        const double *block = X + r0 * nf;
        if (e->cmp == KS_CMP_F32) {
            for (size_t i = 0; i < n * nf; i++)
                scratch[i] = (double)(float)block[i];
            block = scratch;
        } else if (e->zero_band) {
            for (size_t i = 0; i < n * nf; i++) {
                double x = block[i];
                scratch[i] = (x >= -ks_zero_threshold && x <= ks_zero_threshold) ? 0.0 : x;
            }
            block = scratch;
        }
        raw_block(e, block, n, raw, facc);
        sink(e, raw, n, out + r0 * n_out);
    }
    free(heap);
    free(fheap);
}

void ks_ensemble_raw(const ks_ensemble_t *e, const double *X, size_t n_rows, double *raw)
{
    run(e, X, n_rows, raw, sink_raw);
}

void ks_ensemble_predict(const ks_ensemble_t *e, const double *X, size_t n_rows, double *out)
{
    run(e, X, n_rows, out, sink_link);
}
