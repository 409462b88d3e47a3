/*
 * conftree.h - the configuration as a tree of YAML nodes that remember where
 * they came from (file and line), so every config error can name file, line
 * and key.
 *
 * The config loader (engine/config.c) reads the file into this tree, applies
 * `--set key.path=value` overrides, and then each module parses its own section
 * from the tree (features, input fields, ...). Consumers mark the nodes they
 * read as used; whatever is left unmarked is an unknown key and an error
 * (ks_node_check_unused).
 *
 * Nodes are owned by the tree; ks_node_free(root) frees everything. Not
 * thread-safe; used at start-up only.
 */
#ifndef KS_CONFTREE_H
#define KS_CONFTREE_H

#include <stddef.h>

typedef enum { KS_NODE_SCALAR, KS_NODE_MAP, KS_NODE_SEQ } ks_node_kind_t;

typedef struct ks_node {
    ks_node_kind_t kind;
    const char *file;        /* source name: the YAML path, or "--set" */
    int line;                /* 1-based line in `file` */
    char *key;               /* key in the parent map; NULL for seq items and root */
    char *scalar;            /* KS_NODE_SCALAR: the text (never NULL) */
    int quoted;              /* scalar was quoted in YAML: always a string */
    int used;                /* set by whoever consumed the node */
    struct ks_node *parent;
    struct ks_node **items;  /* map entries (each with key) or sequence items */
    size_t n_items;
} ks_node_t;

/* Parses YAML text; `name` is used in messages and must outlive the tree
 * (nodes point to it). The root of an empty document
 * is an empty map. Anchors/aliases and multi-document streams are refused. */
int ks_node_parse_file(const char *path, ks_node_t **root, char *errbuf, size_t errsize);
int ks_node_parse_string(const char *name, const char *text, size_t len, ks_node_t **root,
                         char *errbuf, size_t errsize);
void ks_node_free(ks_node_t *root);

/* Applies one `--set a.b.c=value` override. Intermediate maps are created as
 * needed. A value containing a comma becomes a sequence of scalars; so does
 * a value starting with '[' and ending with ']' (a YAML flow list). When a map
 * has a key containing dots that matches the rest of the path, it wins
 * (`input.fields.payment.amount.default=0`). Below a section listed in
 * In a list of maps with a `name` key, the next path segment picks the item
 * by name (`lookups.profile.snapshot=file.jsonl`). Below a section listed in
 * `flat` (NULL-terminated dotted paths, e.g. "kafka"), the rest of the path
 * is one key (`kafka.session.timeout.ms=6000`) and the value is never split
 * into a list; the longest listed section that matches applies. */
int ks_node_set(ks_node_t *root, const char *assignment, const char *const *flat, char *errbuf,
                size_t errsize);

/* Direct child of a map by key (NULL if absent or not a map); marks nothing. */
ks_node_t *ks_node_get(const ks_node_t *map, const char *key);

/* Writes the dotted key path of a node ("batch.max_size", "features[3].expr"). */
void ks_node_keypath(const ks_node_t *n, char *buf, size_t size);

/* Writes "file:line: key.path: <message>" into errbuf and returns KS_EINVAL. */
int ks_node_err(const ks_node_t *n, char *errbuf, size_t errsize, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Typed reads of a scalar node: mark it used, check the type and range, and on
 * failure write a ks_node_err message. */
int ks_node_int(ks_node_t *n, long long min, long long max, long long *out,
                char *errbuf, size_t errsize);
int ks_node_double(ks_node_t *n, double *out, char *errbuf, size_t errsize);
int ks_node_bool(ks_node_t *n, int *out, char *errbuf, size_t errsize);
int ks_node_string(ks_node_t *n, const char **out, char *errbuf, size_t errsize);
/* Expects a map / a sequence; marks it used. */
int ks_node_expect(ks_node_t *n, ks_node_kind_t kind, char *errbuf, size_t errsize);

/* Refuses the first key of `map` not in `allowed` (NULL-terminated):
 * "file:line: key.path: unknown key 'x' in <what> (expected a, b, c)". */
int ks_node_check_keys(const ks_node_t *map, const char *const *allowed, const char *what,
                       char *errbuf, size_t errsize);

/* Marks a node and its whole subtree used (pass-through sections). */
void ks_node_mark_used(ks_node_t *n);

/* Fails with "file:line: unknown key 'a.b'" for the first unused node. */
int ks_node_check_unused(const ks_node_t *root, char *errbuf, size_t errsize);

#endif
