/* SPDX-License-Identifier: GPL-3.0-or-later */
/* --source DIR|ARCHIVE: the application source (build context of the api
 * and worker services) added to the payload under dest. */
#pragma once

#include "payload.h"

struct appsource_cache;

/* A directory is copied as a tree (top-level .git and target/ skipped: they
 * are never part of a Docker build context worth shipping).  An archive
 * (tar, tar.gz/xz/zst/bz2, zip) is read with libarchive; a single top-level
 * directory is stripped; absolute paths, ".." components, links that escape
 * the tree, hard links and device nodes are refused. Logs, -errno. */
int appsource_add(struct payload *p, const char *source, const char *dest, struct appsource_cache *cache);

/* The archives read so far, by path, for builds in one run (a fleet's hosts
 * and its check before them): each is read once, which a pipe (--source
 * /dev/stdin) allows only once anyway, and a big one costs only once.  A
 * NULL cache: read for this build alone.  Zeroed to start. */
struct appsource_cache {
        struct appsource_archive *v;
        size_t n;
};
void appsource_cache_free(struct appsource_cache *cache);
