/*
 * snapshot.h - local snapshots of one input partition's window state
 * (state.dir): the files, written atomically, and read back into an empty
 * store. When to write one and when a snapshot may be used are the windows
 * stage's (engine/stages/windows.c); snapshot.c explains why the state a
 * snapshot plus the changelog's tail rebuild is exactly the committed
 * prefix's.
 *
 * A file <dir>/<group>/<topic>-<partition>.snap holds a header (format
 * version, the window config's fingerprint, the input topic, partition,
 * group and changelog topic, the source position P: the state is that of the
 * partition's events before P, and L: the changelog partition's end offset
 * when it was written), then one record per key in the changelog's record
 * encoding (state/window.h ks_wstore_each), then the key count and a
 * checksum of everything before it. The previous snapshot is kept as
 * <...>.snap.prev, so that a snapshot taken ahead of the committed offset
 * (refused on restore) never leaves a partition with none.
 *
 * Threads: one worker thread per store; files of different partitions are
 * independent.
 */
#ifndef KS_SNAPSHOT_H
#define KS_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "state/window.h"

#define KS_WSNAP_NAME_MAX 256

typedef struct ks_wsnap_header {
    uint64_t fingerprint;       /* ks_windows_fingerprint */
    int64_t position;           /* P: the state of the events before it */
    int64_t changelog_end;      /* L: the changelog partition's end offset then */
    int32_t partition;
    int64_t written_ms;         /* wall clock, for logs */
    char topic[KS_WSNAP_NAME_MAX];     /* input topic */
    char group[KS_WSNAP_NAME_MAX];     /* input.group_id */
    char changelog[KS_WSNAP_NAME_MAX]; /* changelog topic */
} ks_wsnap_header_t;

/* The snapshot's path: <dir>/<group>/<topic>-<partition>.snap (bytes of the
 * group other than [A-Za-z0-9._-] become '_'; the header names it exactly).
 * `prev` selects the previous snapshot's name. KS_EINVAL if it does not fit. */
int ks_wsnap_path(char *out, size_t size, const char *dir, const char *group, const char *topic,
                  int32_t partition, int prev);

/* Writes the store's state under header h to `path` atomically: a temporary
 * file in the same folder (created with its parents), fsync, the current
 * file renamed to <path>.prev, the new one renamed in place, the folder
 * fsynced. *bytes = the file's size. Between batches only. */
int ks_wsnap_write(ks_wstore_t *s, const char *path, const ks_wsnap_header_t *h, uint64_t *bytes,
                   char *errbuf, size_t errsize);

/* An open snapshot, positioned after its header. */
typedef struct ks_wsnap_reader ks_wsnap_reader_t;

/* Opens a snapshot and reads its header. KS_EIO with errno ENOENT left when
 * there is none; KS_EINVAL (with a message) when it is not a snapshot of
 * this format or its header is damaged. */
int ks_wsnap_open(const char *path, ks_wsnap_reader_t **out, ks_wsnap_header_t *h, char *errbuf,
                  size_t errsize);

/* Reads every key into `s` (an empty store) and checks the key count and the
 * checksum. On KS_EINVAL (damaged, truncated) the store holds part of the
 * snapshot: the caller discards it. *keys = keys read. */
int ks_wsnap_load(ks_wsnap_reader_t *r, ks_wstore_t *s, uint64_t *keys, char *errbuf,
                  size_t errsize);
void ks_wsnap_close(ks_wsnap_reader_t *r);

#endif
