/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Streaming compressors for outputs: xz (liblzma's multi-threaded,
 * multi-block encoder), zstd (libzstd with worker threads), gzip
 * (libarchive's gzip filter, raw format, no name and mtime 0).  The output
 * is deterministic: the same input and level give the same bytes whatever
 * the thread count.  Compressed bytes are hashed (sha256) as they are
 * written. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "output.h"

struct compressor;

/* Levels: -1 picks the format default (see compress_default_level). */
int compress_default_level(enum out_format f);
/* A --compression-level for OUT's format (0 or -1: the default), checked
 * before any work: a raw OUT takes none.  Logs (naming out), -EUSAGE. */
int compress_check_level(enum out_format f, int level, const char *out);
/* Compress into out_fd (path is for messages); size_hint is the raw size
 * (stored in the zstd frame header), 0 when unknown.  Logs, -errno. */
int compressor_open(struct compressor **ret, enum out_format f, int level, uint64_t size_hint, int out_fd,
                    const char *path);
int compressor_write(struct compressor *c, const void *p, size_t n);
/* n zero bytes, without the caller materialising them (holes). */
int compressor_write_zeros(struct compressor *c, uint64_t n);
/* Flush the end of the stream; hex gets the sha256 of all compressed bytes
 * and *bytes their count. */
int compressor_finish(struct compressor *c, char hex[65], uint64_t *bytes);
void compressor_free(struct compressor *c);
