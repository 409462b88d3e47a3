/*
 * model_internal.h - what the model backends share and nobody else needs:
 * the tree-ensemble engine (tree.c), output links (sigmoid, softmax, ...),
 * the scaler pre-processing step, and metadata helpers.
 *
 * The tree engine is the heart of the speed work. Every tree family (XGBoost,
 * LightGBM, scikit-learn trees, HistGradientBoosting) is loaded into one
 * flattened layout: all nodes of all trees in one array of 16-byte nodes, the
 * two children of a split adjacent (right = left + 1), nodes in breadth-first
 * order per tree, so the top levels of a tree share cache lines. A row block
 * (up to KS_TREE_BLOCK rows) is walked tree by tree, so a tree's nodes stay
 * hot while every row of the block goes through it.
 *
 * The libraries' different comparison semantics are reduced, at load time,
 * to one decision rule:
 *
 *   x = row[feature]  (for KS_CMP_F32 ensembles: first rounded to float32)
 *   if x is NaN             -> default direction (node flag)
 *   if node is zero-missing and -1e-35f <= x <= 1e-35f -> default direction
 *   if node is categorical  -> bitset rule (see ks_tree_node_spec_t)
 *   else                    -> left iff x <= threshold (double)
 *
 * XGBoost's float32 `x < t` becomes `x <= nextafterf(t, -inf)`; scikit-learn's
 * float32(x) <= double(t) needs only the input rounding; LightGBM's missing
 * type None (NaN treated as 0.0) becomes default = (0 <= t). See tree.c.
 */
#ifndef KS_MODEL_INTERNAL_H
#define KS_MODEL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

/* ------------------------------------------------------------------ links */

/* How raw scores (n_raw per row) become outputs (n_outputs per row). */
typedef enum {
    KS_LINK_IDENTITY = 0,   /* out = raw (n_outputs = n_raw) */
    KS_LINK_SIGMOID,        /* out[k] = 1 / (1 + exp(-scale * raw[k])) */
    KS_LINK_SIGMOID_BINARY, /* n_raw = 1, out = {1 - p, p}, p = sigmoid(scale * raw) */
    KS_LINK_SOFTMAX,        /* out = softmax(raw) */
    KS_LINK_EXP,            /* out[k] = exp(raw[k]) (Poisson, Gamma, Tweedie) */
    KS_LINK_BINARY_PROBA,   /* n_raw = 1 is P(class 1): out = {1 - raw, raw} */
} ks_link_t;

/* Applies the link to one row in place: raw has n_raw values, out gets the
 * outputs (raw and out may not alias). */
void ks_link_apply(ks_link_t link, double scale, const double *raw, size_t n_raw, double *out);
/* Number of outputs a link produces from n_raw raw scores. */
size_t ks_link_n_outputs(ks_link_t link, size_t n_raw);
const char *ks_link_name(ks_link_t link);

/* ------------------------------------------------------------ tree engine */

#define KS_TREE_MAX_DEPTH   4096          /* deeper trees are refused at load */
#define KS_TREE_MAX_NODES   (1u << 30)    /* total over the ensemble */
#define KS_TREE_MAX_FEATURE ((1u << 28) - 1)
#define KS_TREE_BLOCK       64            /* rows walked per tree at a time */

/* Node flags, in the high bits of ks_tnode_t.feature. */
#define KS_TN_LEAF     0x80000000u
#define KS_TN_DEFLEFT  0x40000000u  /* NaN (and other "missing") goes left */
#define KS_TN_SPECIAL  0x20000000u  /* categorical or zero-as-missing: slow path */
#define KS_TN_CAT      0x10000000u  /* with SPECIAL: categorical, else zero-missing */
#define KS_TN_FMASK    0x0FFFFFFFu

typedef struct ks_tnode {
    union {
        double threshold;   /* numerical split (+inf at leaves, see below) */
        struct {
            uint32_t offset;   /* into cat_words */
            uint16_t n_words;  /* bitset length in 32-bit words */
            uint16_t strict;   /* 1: HistGradientBoosting rule (see node spec) */
        } cat;
    } v;
    uint32_t feature;   /* feature index | KS_TN_* flags */
    uint32_t next;      /* index of the left child (right = next + 1) */
} ks_tnode_t;

/* A leaf is a node that loops to itself: threshold +inf, default left, next =
 * its own index, so a walk of exactly `tree_depth` steps ends on the leaf
 * whatever path it took (no data-dependent loop exit, no misprediction). Its
 * value lives in leaf_slot[node index]. */
typedef union ks_leafslot {
    double value;       /* single-output trees */
    uint64_t offset;    /* vector leaves: offset into leaf_values */
} ks_leafslot_t;

/* Input comparison precision. */
typedef enum {
    KS_CMP_F64 = 0,   /* compare the double as given (LightGBM, HistGradientBoosting) */
    KS_CMP_F32,       /* round inputs to float32 first (XGBoost, scikit-learn trees) */
} ks_cmp_t;

/* A node as a loader describes it, in the file's own indexing. */
typedef enum {
    KS_SPLIT_LEAF = 0,
    KS_SPLIT_NUM,        /* left iff x <= threshold; NaN -> default_left */
    KS_SPLIT_NUM_ZERO,   /* as NUM, and |x| <= 1e-35f also -> default_left (LightGBM zero-as-missing) */
    KS_SPLIT_CAT,        /* categorical, see below */
} ks_split_kind_t;

/* Categorical rule. NaN -> default direction. Otherwise, lenient (LightGBM):
 * x <= -1 or x >= 2^31 -> default direction, else c = (int)x (truncation)
 * and left iff bit c is set in the left bitset. Strict (HistGradientBoosting,
 * exported by kscore-export): x < 0, a non-integer x or a category outside the
 * `known` bitset -> default direction; else left iff c in the left bitset.
 * For strict nodes the known bitset follows the left bitset (same length). */
typedef struct ks_tree_node_spec {
    int kind;               /* ks_split_kind_t */
    int64_t left, right;    /* child indices in the loader's array */
    int64_t feature;
    double threshold;       /* NUM: the threshold in the x <= t rule */
    int default_left;
    const uint32_t *cat_left;   /* CAT: bitset words */
    const uint32_t *cat_known;  /* CAT strict: known categories, else NULL */
    size_t cat_words;
    double leaf;            /* LEAF, leaf_width == 1 */
    const double *leaf_vec; /* LEAF, leaf_width > 1: leaf_width values */
} ks_tree_node_spec_t;

typedef struct ks_ensemble {
    ks_cmp_t cmp;
    int acc_f32;            /* accumulate raw scores in float32, tree order (XGBoost) */
    int zero_band;          /* inputs with |x| <= 1e-35f read as 0.0 (LightGBM's C API drops
                               them from the row before predicting) */
    size_t n_features;
    size_t n_raw;           /* raw score columns ("groups") */
    size_t leaf_width;      /* 1: each tree adds to one column; n_raw: vector leaves */
    double *base;           /* n_raw initial raw scores */
    double tree_div;        /* raw = base + (sum of trees) / tree_div; 1, or n for averaging */
    ks_link_t link;
    double link_scale;      /* sigmoid slope (LightGBM sigmoid:k); 1 otherwise */

    size_t n_trees, trees_cap;
    uint32_t *tree_root;    /* node index of each tree's root */
    uint32_t *tree_group;   /* raw column each tree adds to (leaf_width == 1) */
    uint32_t *tree_depth;   /* steps from the root to the deepest leaf */
    size_t max_depth;
    int has_special;        /* any categorical or zero-as-missing node */

    ks_tnode_t *nodes;
    ks_leafslot_t *leaf_slot;   /* per node, meaningful at leaves */
    size_t n_nodes, nodes_cap;
    double *leaf_values;
    size_t n_leaf_values, leaf_values_cap;
    uint32_t *cat_words;
    size_t n_cat_words, cat_words_cap;
} ks_ensemble_t;

/* Creates an empty ensemble; the caller then sets base[] (zeroed here), link,
 * tree_scale etc. and adds trees. Free with ks_ensemble_free. */
ks_ensemble_t *ks_ensemble_new(ks_cmp_t cmp, size_t n_features, size_t n_raw, size_t leaf_width);
void ks_ensemble_free(ks_ensemble_t *e);

/* Validates one tree (root at index `root`, every node reachable exactly once,
 * children and features in range, depth <= KS_TREE_MAX_DEPTH, categorical
 * bitsets sane) and appends it flattened. `group` is the raw column it adds to
 * (ignored for vector leaves). On error writes "tree T: node N: ..." and the
 * ensemble is unchanged. */
int ks_ensemble_add_tree(ks_ensemble_t *e, const ks_tree_node_spec_t *nodes, size_t n_nodes,
                         size_t root, size_t group, char *errbuf, size_t errsize);

/* Raw scores: X n_rows x n_features (row-major), raw n_rows x n_raw. */
void ks_ensemble_raw(const ks_ensemble_t *e, const double *X, size_t n_rows, double *raw);
/* Outputs (link applied): out n_rows x ks_link_n_outputs(link, n_raw). */
void ks_ensemble_predict(const ks_ensemble_t *e, const double *X, size_t n_rows, double *out);

/* -------------------------------------------------------- pre-processing */

/* Per-feature affine step applied before the model:
 *   STANDARD: x' = (x - offset) / scale   (scikit-learn StandardScaler)
 *   MINMAX:   x' = x * scale + offset     (scikit-learn MinMaxScaler)
 * NaN stays NaN. */
typedef enum { KS_SCALE_NONE = 0, KS_SCALE_STANDARD, KS_SCALE_MINMAX } ks_scale_kind_t;

typedef struct ks_scaler {
    ks_scale_kind_t kind;
    double *offset;
    double *scale;
} ks_scaler_t;

void ks_scaler_apply(const ks_scaler_t *s, size_t n_features, const double *in, double *out);

/* ---------------------------------------------------------------- helpers */

/* Frees every metadata field of m (names, labels, strings) but not impl. */
void ks_model_meta_free(ks_model_t *m);
/* Sets names "f0".."f{n-1}" (when a file carries none). */
void ks_model_default_feature_names(ks_model_t *m, size_t n);
/* Sets class labels "0".."{n-1}". */
void ks_model_default_class_labels(ks_model_t *m, size_t n);

/* Strict number parsing for text formats: the whole token [s, end) must be a
 * number (strtod syntax incl. inf/nan for doubles); returns 0 or KS_EINVAL. */
int ks_parse_double(const char *s, const char *end, double *out);
/* Probe helper for JSON model formats: 1 if buf is a JSON object (after
 * leading whitespace) whose first 4 KiB contain `marker`. */
int ks_probe_json_marker(const char *buf, size_t len, const char *marker);
int ks_parse_i64(const char *s, const char *end, int64_t *out);

#endif
