/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A base file opened and recognised by its content, and one reader over
 * every format it may come in: raw, xz (liblzma's multi-threaded decoder,
 * xzmt.c), gzip, zstd and zip (libarchive).  source.c streams it into an
 * output; source.h's stream API (inspect, flash) is implemented here too. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

enum fmt { FMT_RAW, FMT_XZ, FMT_GZIP, FMT_ZSTD, FMT_ZIP };

/* "raw", "xz", "gzip", "zstd", "zip" */
const char *decoder_fmt_name(enum fmt fmt);

/* Open path read-only (a regular file or block device, not empty) and
 * tell its format by content, never by name: the fd, or -errno (logged).
 * st (may be NULL) gets its stat. */
int decoder_open_file(const char *path, struct stat *st, uint64_t *size, enum fmt *fmt);

/* 0 when a raw image starts like a disk image (source_check_head); logs. */
int decoder_check_raw_head(int fd, const char *path, uint64_t size, bool as_base);

struct decoder {
        enum fmt fmt;
        const char *path;
        int fd;
        uint64_t size;     /* of the base file */
        uint64_t raw_off;  /* FMT_RAW: bytes read */
        struct archive *a;
        struct xzmt *xz;
        uint32_t crc;      /* FMT_GZIP: of the data so far */
        uint64_t out;      /* decoded bytes so far */
        uint64_t entry_size; /* FMT_ZIP: the image's size as its header says, or 0 */
        bool checked;
};

int decoder_open(struct decoder *d, int fd, const char *path, uint64_t size, enum fmt fmt);
/* Fill buf (short only at the end).  Logs, -errno. */
long long decoder_read(struct decoder *d, void *buf, size_t n);
/* bytes of the base file read so far, for progress */
uint64_t decoder_consumed(const struct decoder *d);
void decoder_close(struct decoder *d);
