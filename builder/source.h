/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The base image: .img, .img.xz, .img.gz, .img.zst or a .zip holding one
 * image, streamed into an output file descriptor with holes for all-zero
 * blocks, hashed (sha256 of the uncompressed stream) as it passes.  The base
 * is opened read-only and never written. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct source_info {
        char sha256[65];        /* of the uncompressed image */
        uint64_t bytes;         /* uncompressed size */
        char format[16];        /* "raw", "xz", "gzip", "zstd", "zip" */
        bool from_cache;
        /* A cache hit, or a raw base whose sha256 was remembered, copied
         * before its check (source_opts.verify_later): being hashed on a
         * thread; see source_verify. */
        struct source_check *check;
        bool damaged;           /* that check failed: the output holds bad bytes */
        bool sum_pending;       /* source_opts.sum_later: sha256 is empty until
                                 * source_verify, the check computing it */
};

struct source_opts {
        bool no_cache;          /* skip the decompressed-base cache */
        bool fresh;             /* read the base itself, not a cache hit (a hit just
                                 * found damaged may not have been removable); the
                                 * decoded base is still stored */
        bool quiet;             /* no progress */
        bool writeback;         /* out_fd will be synced: start its writeback as it is
                                 * written (not for temporaries nobody syncs) */
        bool cloned;            /* out_fd will be copied with source_clone (a fleet's
                                 * shared base; set here for a base going to the
                                 * cache): written in whole slots, not in
                                 * WRITE_PIECEs, since copy_file_range moves the large
                                 * page-cache folios that makes ~4x faster */
        bool tee;               /* tee_fd (empty) gets the same bytes as out_fd, holes
                                 * and all, written in WRITE_PIECEs and with the same
                                 * writeback: a fleet's first host's image, written
                                 * beside the decoding instead of copied after it */
        int tee_fd;
        bool scratch;           /* out_fd is a scratch file in $TMPDIR (inspect's), not an
                                 * output beside -o: a full disk there is TMPDIR's to fix */
        uint64_t cache_max;     /* cache size bound in bytes; 0: $DIMIMAGE_CACHE_MAX or 8 GiB */
        bool verify_later;      /* a cache hit (or a raw base with a remembered
                                 * sha256) is copied at once and checked on a
                                 * thread beside the rest of the build, instead
                                 * of hashed on the way (one SHA-256 pass off the
                                 * build's critical path); the caller must call
                                 * source_verify before trusting the output */
        /* A decompressed base goes into the cache only if this returns 0
         * for out_fd's bytes: a base every build refuses (GPT, a table past
         * its end, another OS) is not kept.  Its messages are its own
         * (printed, or held back).  NULL: always kept. */
        int (*cache_accept)(void *arg);
        void *cache_accept_arg;
        bool sum_later;         /* with verify_later: a raw base with no remembered
                                 * sha256 is copied at once too, and hashed on a
                                 * thread beside the build; source_verify fills
                                 * info->sha256 (a verdict of 1: the base changed
                                 * or failed to read meanwhile; build again
                                 * without these) */
};

/* What a dry run asks of the base: that it opens and, if raw, starts like a
 * disk image (a base one, as_base).  Nothing is decompressed.  Logs, -errno. */
int source_probe(const char *base, bool as_base);

/* Stream base into out_fd (positioned at 0, empty) and ftruncate it to the
 * image size.  Logs, -errno. */
int source_extract(const char *base, int out_fd, const struct source_opts *o, struct source_info *info);

/* The verdict on a cache hit copied with verify_later: waits for its check.
 * 0 when it matched (or no check was pending), 1 when the entry was damaged
 * (or the remembered sha256 wrong): it is dropped with a warning (a base
 * itself never is), and the output must be rebuilt from the base without
 * verify_later.  For a sum computed beside (sum_later), 0 fills
 * info->sha256 (and remembers it, cache allowed); 1 (with a warning) means
 * the base changed or could not be read while it was copied, and nothing
 * is held back.  Otherwise, until the verdict, warnings and errors are held
 * back (log_hold): what the build said about damaged bytes is dropped, the
 * rest printed.  Safe to call again: it repeats the verdict. */
int source_verify(struct source_info *info);

/* A failed build's last word on its base: a sum being computed beside it
 * (sum_later) is abandoned at once, unremembered, rather than read to the
 * end (0: nothing explains the failure); any other check gets its verdict
 * (source_verify's return). */
int source_drop(struct source_info *info);

/* Copy the first `bytes` of from_fd into to_fd (empty), sharing extents
 * (FICLONE) where the filesystem can, else copy_file_range over the data
 * extents only, so holes stay holes; to_fd ends up exactly `bytes` long.
 * For a fleet: extract once, clone per host.  writeback: as in
 * source_opts.  Logs, -errno. */
int source_clone(int from_fd, int to_fd, uint64_t bytes, bool writeback);

/* Open a (possibly compressed) image for reading as a stream: used by inspect
 * and flash (decoder.c).  read returns bytes read, 0 at end, -errno on error (logged). */
struct source_stream;
int source_stream_open(const char *path, struct source_stream **ret);
long long source_stream_read(struct source_stream *s, void *buf, size_t n);
/* The decoded size a container states up front (a .zip's entry), or 0. */
uint64_t source_stream_size_hint(const struct source_stream *s);
/* 0 when the first n bytes of an image b (decoded, when compressed) start
 * like a disk image: an MBR/FAT boot signature or a bare ext2/3/4
 * superblock; else logs "not a disk image" for path, -EINVAL.  A hybrid ISO
 * (an ISO 9660 with an MBR) is a disk image to flash, but no base (as_base). */
int source_check_head(const char *path, const uint8_t *b, size_t n, bool compressed, bool as_base);
/* ISO 9660 (a CD/DVD or installer image): its first volume descriptor, at
 * 32 KiB, holds "CD001" after its type byte.  Where, the bytes needed from
 * an image's start to tell, and whether b (n of them from the start) is one. */
#define SOURCE_ISO9660_MAGIC "CD001"
#define SOURCE_ISO9660_MAGIC_OFF 0x8001
#define SOURCE_ISO9660_HEAD (SOURCE_ISO9660_MAGIC_OFF + 5)
bool source_is_iso9660(const uint8_t *b, size_t n);
/* Logs that path is (or decompresses to) an ISO 9660 image, not a
 * Raspberry Pi OS disk image; -EINVAL. */
int source_refuse_iso9660(const char *path, bool compressed);
void source_stream_close(struct source_stream *s);
