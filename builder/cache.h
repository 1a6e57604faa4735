/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The decompressed-base cache: decompressing a 500 MiB .xz takes longer than
 * everything else in a build, so the raw image is kept under
 * $XDG_CACHE_HOME/dimimage (default ~/.cache/dimimage; no cache when neither
 * is set).  A base is looked up by (realpath, size, mtime, inode, device),
 * which needs no read of the base; the entry records the sha256 and size of
 * the raw image, and the raw image (base-<sha256>.img, sparse) is verified
 * against that sha256 while it is copied out.  Least recently used images
 * are evicted beyond the size bound (allocated bytes; default 8 GiB,
 * $DIMIMAGE_CACHE_MAX).  A raw base is not copied: only its sha256 is
 * remembered (cache_remember), so that a rebuild from it need not hash it
 * before the edits. */
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "source.h"

struct cache_entry {
        char *image;    /* path of the cached raw image */
        char *ref;      /* path of the index entry that named it */
        char sha256[65];
        uint64_t bytes;
        char format[16];
        bool is_base;   /* image is the base itself (cache_lookup_sum): never deleted */
};

#define CACHE_DEFAULT_MAX (8ull << 30)

/* The cache directory, or NULL when there is none.  Caller frees. */
char *cache_dir(void);
/* The size bound: max when non-zero, else $DIMIMAGE_CACHE_MAX, else 8 GiB. */
uint64_t cache_max_bytes(uint64_t max);
/* 1 on a hit (e filled, free with cache_entry_free), 0 on a miss.  Never
 * fails: an unreadable or inconsistent cache is a miss. */
int cache_lookup(const char *base, const struct stat *st, struct cache_entry *e);
/* A raw base's remembered sha256: 1 on a hit, e->image being the base
 * itself (its real path), 0 when none is remembered for this base as it
 * is (path, size, mtime, ctime, inode, device).  Never fails. */
int cache_lookup_sum(const char *base, const struct stat *st, struct cache_entry *e);
/* Remember info->sha256 for the raw base.  Best effort, silent. */
void cache_remember(const char *base, const struct stat *st, const struct source_info *info);
/* Forget an entry whose image did not match its recorded sha256 (for a
 * remembered sum, only the sum: the base itself stays). */
void cache_discard(const struct cache_entry *e);
void cache_entry_free(struct cache_entry *e);
/* Keep the first info->bytes of fd (the just-extracted image) for base.
 * Best effort: a cache that cannot be written costs a warning, not the
 * build. */
void cache_store(const char *base, const struct stat *st, int fd, const struct source_info *info, uint64_t max);

/* source_clone without the logging (source.c): -errno. */
int clone_range(int from_fd, int to_fd, uint64_t bytes, bool writeback);

/* For `dimimage cache list|clean`.  Logs, -errno. */
int cache_list(FILE *out);
int cache_clean(void);
