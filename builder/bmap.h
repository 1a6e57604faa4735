/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Block maps in bmaptool's format (version 2.0, SHA-256 per range): which
 * 4096-byte blocks of a sparse raw image hold data.  Produced from
 * SEEK_DATA/SEEK_HOLE by output.c, parsed back by flash.c. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define BMAP_BLOCK_SIZE 4096u

struct bmap_range {
        uint64_t first, last;   /* block numbers, inclusive */
        char sha256[65];        /* of the range's bytes (last block cut at image end); "" when unknown */
};

struct bmap {
        uint64_t image_size;
        uint32_t block_size;
        uint64_t blocks_count;  /* DIV_ROUND_UP(image_size, block_size) */
        uint64_t mapped_blocks;
        struct bmap_range *v;
        size_t n, cap;
        /* bmap_parse: the file's ChecksumType ("sha1" for a 1.x file that
         * names none); its checksums are verified only when it is sha256 */
        char checksum_type[16];
};

/* Byte extent of range r: [*start, *end), the end clipped to the image size. */
void bmap_range_bytes(const struct bmap *b, const struct bmap_range *r, uint64_t *start, uint64_t *end);
/* Append a range of blocks, merging with the previous one when adjacent. */
void bmap_add_range(struct bmap *b, uint64_t first, uint64_t last);
/* Fill b with the mapped ranges of the first `size` bytes of fd (SEEK_DATA /
 * SEEK_HOLE, rounded out to whole blocks), without checksums.  Logs (unless
 * path is NULL), -errno; bmap_free(b) either way. */
int bmap_scan(int fd, uint64_t size, const char *path, struct bmap *b);
/* The XML text, byte for byte what `bmaptool create` writes for the same
 * ranges, with BmapFileChecksum filled in.  Every range needs its sha256.
 * Caller frees. */
char *bmap_format(const struct bmap *b, size_t *len);
/* Parse a bmap file (versions 1.x and 2.x; range checksums are used only
 * when ChecksumType is sha256), verifying BmapFileChecksum when present.
 * Logs, -errno. */
int bmap_parse(const char *path, const char *text, size_t len, struct bmap *b);
int bmap_load(const char *path, struct bmap *b);
void bmap_free(struct bmap *b);
