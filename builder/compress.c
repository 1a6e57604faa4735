/* SPDX-License-Identifier: GPL-3.0-or-later */
/* xz and zstd go straight to their libraries: liblzma's multi-threaded
 * encoder lets us fix the block size (so the .xz has many independent
 * blocks and decodes in parallel) and the check, and avoids libarchive's
 * extra copy.  gzip goes through libarchive's gzip filter (raw format) since
 * zlib is not a direct dependency; its header carries no name and mtime 0. */
#include "compress.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <lzma.h>
#include <malloc.h>
#include <string.h>
#include <unistd.h>
/* ZSTD_createCCtx_advanced and ZSTD_customMem are in zstd's "experimental"
 * section, yet exported by the shared library and unchanged since 1.0. */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#include "hash.h"
#include "log.h"
#include "util.h"

#define OUT_CHUNK (1u << 20)
#define WRITEBACK_EVERY (32u << 20)

/* Source of hole bytes: holes are fed to the compressor, never read. */
static const uint8_t zeros[1u << 16];

struct compressor {
        enum out_format format;
        int fd;
        const char *path;
        struct sha256 hash;
        uint64_t bytes;
        uint64_t synced; /* bytes whose writeback was started */
        uint8_t *out;
        lzma_stream xz;
        ZSTD_CCtx *zstd;
        struct archive *ar;
        int ar_errno;
};

/* The encoders' windows and block buffers hold the image, its .env and
 * /etc/shadow included, and both libraries free them unwiped: they get an
 * allocator that wipes what it frees, as our own secret buffers are
 * (docs/hardening.md; 74-freed-secrets looks).  Neither frees with a size, so
 * malloc_usable_size tells it.  gzip goes through libarchive, which offers no
 * allocator; its deflate window is 32 KiB. */
static void *wiped_alloc(void *opaque, size_t n) {
        (void)opaque;
        return malloc(n);
}

static void wiped_free(void *opaque, void *p) {
        (void)opaque;
        if (!p)
                return;
        explicit_bzero(p, malloc_usable_size(p));
        free(p);
}

static void *wiped_lzma_alloc(void *opaque, size_t nmemb, size_t size) {
        size_t n;
        return __builtin_mul_overflow(nmemb, size, &n) ? NULL : wiped_alloc(opaque, n);
}

static const lzma_allocator lzma_wiped = {.alloc = wiped_lzma_alloc, .free = wiped_free};
static const ZSTD_customMem zstd_wiped = {.customAlloc = wiped_alloc, .customFree = wiped_free};

int compress_default_level(enum out_format f) {
        switch (f) {
        case OUT_XZ:
                return 3;
        case OUT_ZSTD:
                return 3;
        case OUT_GZIP:
                return 6;
        default:
                return 0;
        }
}

static int max_level(enum out_format f) {
        return f == OUT_ZSTD ? ZSTD_maxCLevel() : 9;
}

int compress_check_level(enum out_format f, int level, const char *out) {
        if (level < 0 || f == OUT_UNKNOWN) /* an unknown extension has its own error */
                return 0;
        if (f != OUT_XZ && f != OUT_ZSTD && f != OUT_GZIP)
                return log_error(EUSAGE, out, "--compression-level is for compressed outputs (.img.xz, .img.zst, "
                                              ".img.gz); this one is not compressed");
        if (level > max_level(f))
                return log_error(EUSAGE, out, "--compression-level %d is out of range for this format (1-%d; 0: the "
                                              "default, %d)",
                                 level, max_level(f), compress_default_level(f));
        return 0;
}

/* Written, hashed, and on its way to disk: the writeback of every
 * WRITEBACK_EVERY bytes is started at once (SYNC_FILE_RANGE_WRITE does not
 * wait), so the commit's fsync finds little left (0.24 s less for the bench
 * base's .img.zst).  -errno, unlogged. */
static int put(struct compressor *c, const void *p, size_t n) {
        int r = write_full(c->fd, p, n);
        if (r < 0)
                return r;
        sha256_update(&c->hash, p, n);
        c->bytes += n;
        if (c->bytes - c->synced >= WRITEBACK_EVERY) {
                (void)sync_file_range(c->fd, (off64_t)c->synced, (off64_t)(c->bytes - c->synced),
                                      SYNC_FILE_RANGE_WRITE);
                c->synced = c->bytes;
        }
        return 0;
}

static int sink(struct compressor *c, const void *p, size_t n) {
        int r = put(c, p, n);
        return r < 0 ? log_output_error(r, c->path, "write") : 0;
}

static unsigned threads(void) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        return n < 1 ? 1 : (unsigned)MIN(n, 64);
}

static la_ssize_t ar_write(struct archive *a, void *data, const void *p, size_t n) {
        struct compressor *c = data;
        int r = put(c, p, n);
        if (r < 0) {
                c->ar_errno = -r;
                archive_set_error(a, -r, "write failed");
                return -1;
        }
        return (la_ssize_t)n;
}

static int ar_fail(struct compressor *c, const char *what) {
        int err = c->ar_errno ? c->ar_errno : archive_errno(c->ar) > 0 ? archive_errno(c->ar) : EIO;
        return log_error(err, c->path, "gzip %s failed: %s", what,
                         c->ar_errno ? strerror(c->ar_errno) : archive_error_string(c->ar));
}

static int open_gzip(struct compressor *c, int level) {
        c->ar = archive_write_new();
        if (!c->ar)
                abort();
        char opts[64];
        snprintf(opts, sizeof(opts), "gzip:compression-level=%d,gzip:!timestamp", level);
        if (archive_write_add_filter_gzip(c->ar) != ARCHIVE_OK || archive_write_set_format_raw(c->ar) != ARCHIVE_OK ||
            archive_write_set_options(c->ar, opts) != ARCHIVE_OK || archive_write_set_bytes_per_block(c->ar, OUT_CHUNK) ||
            archive_write_set_bytes_in_last_block(c->ar, 1) != ARCHIVE_OK)
                return ar_fail(c, "setup");
        if (archive_write_open2(c->ar, c, NULL, ar_write, NULL, NULL) != ARCHIVE_OK)
                return ar_fail(c, "open");
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_pathname(e, "image");
        int r = archive_write_header(c->ar, e);
        archive_entry_free(e);
        if (r != ARCHIVE_OK)
                return ar_fail(c, "header");
        return 0;
}

int compressor_open(struct compressor **ret, enum out_format f, int level, uint64_t size_hint, int out_fd,
                    const char *path) {
        if (level <= 0)
                level = compress_default_level(f);
        if (level > max_level(f))
                return log_error(EINVAL, path, "compression level %d out of range (1-%d)", level, max_level(f));
        struct compressor *c = xcalloc(1, sizeof(*c));
        c->format = f;
        c->fd = out_fd;
        c->path = path;
        c->out = xmalloc(OUT_CHUNK);
        sha256_init(&c->hash);
        int r = 0;
        switch (f) {
        case OUT_XZ: {
                lzma_mt mt = {
                        .threads = threads(),
                        .block_size = 0, /* 3 x dictionary: many blocks, parallel decoding */
                        .preset = (uint32_t)level,
                        .check = LZMA_CHECK_CRC64,
                };
                c->xz = (lzma_stream)LZMA_STREAM_INIT;
                c->xz.allocator = &lzma_wiped;
                lzma_ret lr = lzma_stream_encoder_mt(&c->xz, &mt);
                if (lr != LZMA_OK)
                        r = log_error(lr == LZMA_MEM_ERROR ? ENOMEM : EINVAL, path, "cannot start the xz encoder (%d)",
                                      (int)lr);
                break;
        }
        case OUT_ZSTD: {
                c->zstd = ZSTD_createCCtx_advanced(zstd_wiped);
                if (!c->zstd)
                        abort();
                size_t zr = ZSTD_CCtx_setParameter(c->zstd, ZSTD_c_compressionLevel, level);
                if (!ZSTD_isError(zr))
                        zr = ZSTD_CCtx_setParameter(c->zstd, ZSTD_c_checksumFlag, 1);
                /* Without MT support in libzstd this fails: compress single-threaded. */
                if (!ZSTD_isError(zr))
                        (void)ZSTD_CCtx_setParameter(c->zstd, ZSTD_c_nbWorkers, (int)threads());
                if (!ZSTD_isError(zr) && size_hint)
                        zr = ZSTD_CCtx_setPledgedSrcSize(c->zstd, size_hint);
                if (ZSTD_isError(zr))
                        r = log_error(EINVAL, path, "cannot set up the zstd encoder: %s", ZSTD_getErrorName(zr));
                break;
        }
        case OUT_GZIP:
                r = open_gzip(c, level);
                break;
        default:
                r = log_error(EINVAL, path, "not a compressed format");
        }
        if (r < 0) {
                compressor_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

static int xz_run(struct compressor *c, const uint8_t *p, size_t n, lzma_action action) {
        c->xz.next_in = p;
        c->xz.avail_in = n;
        for (;;) {
                c->xz.next_out = c->out;
                c->xz.avail_out = OUT_CHUNK;
                lzma_ret lr = lzma_code(&c->xz, action);
                size_t have = OUT_CHUNK - c->xz.avail_out;
                if (have) {
                        int r = sink(c, c->out, have);
                        if (r < 0)
                                return r;
                }
                if (lr == LZMA_STREAM_END)
                        return 0;
                if (lr != LZMA_OK)
                        return log_error(lr == LZMA_MEM_ERROR ? ENOMEM : EIO, c->path, "xz compression failed (%d)",
                                         (int)lr);
                if (action == LZMA_RUN && c->xz.avail_in == 0)
                        return 0;
        }
}

static int zstd_run(struct compressor *c, const void *p, size_t n, ZSTD_EndDirective mode) {
        ZSTD_inBuffer in = { p, n, 0 };
        for (;;) {
                ZSTD_outBuffer out = { c->out, OUT_CHUNK, 0 };
                size_t left = ZSTD_compressStream2(c->zstd, &out, &in, mode);
                if (ZSTD_isError(left))
                        return log_error(EIO, c->path, "zstd compression failed: %s", ZSTD_getErrorName(left));
                if (out.pos) {
                        int r = sink(c, c->out, out.pos);
                        if (r < 0)
                                return r;
                }
                if (mode == ZSTD_e_end ? left == 0 : in.pos == in.size)
                        return 0;
        }
}

int compressor_write(struct compressor *c, const void *p, size_t n) {
        switch (c->format) {
        case OUT_XZ:
                return xz_run(c, p, n, LZMA_RUN);
        case OUT_ZSTD:
                return zstd_run(c, p, n, ZSTD_e_continue);
        case OUT_GZIP:
                while (n > 0) {
                        la_ssize_t w = archive_write_data(c->ar, p, n);
                        if (w <= 0)
                                return ar_fail(c, "write");
                        p = (const uint8_t *)p + w;
                        n -= (size_t)w;
                }
                return 0;
        default:
                return -EINVAL;
        }
}

int compressor_write_zeros(struct compressor *c, uint64_t n) {
        while (n > 0) {
                size_t k = (size_t)MIN(n, (uint64_t)sizeof(zeros));
                int r = compressor_write(c, zeros, k);
                if (r < 0)
                        return r;
                n -= k;
        }
        return 0;
}

int compressor_finish(struct compressor *c, char hex[65], uint64_t *bytes) {
        int r = 0;
        switch (c->format) {
        case OUT_XZ:
                r = xz_run(c, NULL, 0, LZMA_FINISH);
                break;
        case OUT_ZSTD:
                r = zstd_run(c, NULL, 0, ZSTD_e_end);
                break;
        case OUT_GZIP:
                if (archive_write_close(c->ar) != ARCHIVE_OK)
                        r = ar_fail(c, "close");
                break;
        default:
                r = -EINVAL;
        }
        if (r < 0)
                return r;
        sha256_final_hex(&c->hash, hex);
        c->hash.evp = NULL;
        *bytes = c->bytes;
        return 0;
}

void compressor_free(struct compressor *c) {
        if (!c)
                return;
        if (c->format == OUT_XZ)
                lzma_end(&c->xz);
        ZSTD_freeCCtx(c->zstd);
        if (c->ar)
                archive_write_free(c->ar);
        if (c->hash.evp) {
                char hex[65];
                sha256_final_hex(&c->hash, hex);
        }
        /* compressed, but a zstd block may carry its literals as they are */
        explicit_bzero(c->out, OUT_CHUNK);
        free(c->out);
        free(c);
}
