/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Multi-threaded .xz decoding with liblzma's lzma_stream_decoder_mt:
 * libarchive's xz reader uses one thread, and a multi-block .xz (what
 * `xz -T0` writes) decodes nearly N times faster with N threads. */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct xzmt;

/* Decode the .xz data read from fd (from offset 0, with pread: the file
 * position is not used).  path names the file in messages.  Logs, -errno. */
int xzmt_open(int fd, const char *path, struct xzmt **ret);
/* Fill buf with up to n decoded bytes; returns fewer only at the end of the
 * data, 0 at the end, -errno on corrupt or truncated input (logged). */
long long xzmt_read(struct xzmt *x, void *buf, size_t n);
/* Compressed bytes consumed so far (for progress). */
uint64_t xzmt_consumed(const struct xzmt *x);
void xzmt_close(struct xzmt *x);

/* The decoded size of the .xz file fd (file_size bytes), from its indexes
 * alone (a few small reads at its end): 0, or -errno (not logged; -EBADMSG
 * for data that is not a valid .xz). */
int xz_decoded_size(int fd, uint64_t file_size, uint64_t *bytes);
