/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "xzmt.h"

#include <errno.h>
#include <lzma.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* Input is read in large chunks: the decoder threads want whole blocks. */
#define XZ_IN_SIZE (1u << 20)
/* Bound the memory used for threading; above it liblzma uses fewer threads
 * rather than failing (memlimit_stop is the hard limit). */
#define XZ_MEMLIMIT_THREADING (256ull << 20)

struct xzmt {
        lzma_stream strm;
        int fd;
        const char *path;
        uint8_t *in;
        uint64_t in_off; /* next file offset to read */
        bool eof, done;
};

static int lzma_fail(struct xzmt *x, lzma_ret ret) {
        switch (ret) {
        case LZMA_MEM_ERROR:
                return log_error(ENOMEM, x->path, "out of memory decoding xz data");
        case LZMA_MEMLIMIT_ERROR:
                return log_error(ENOMEM, x->path, "xz data needs more memory than the decoder allows");
        case LZMA_FORMAT_ERROR:
                return log_error(EINVAL, x->path, "not xz data");
        case LZMA_OPTIONS_ERROR:
                return log_error(EINVAL, x->path, "unsupported xz options (made by a newer xz?)");
        case LZMA_BUF_ERROR:
                return log_error(EBADMSG, x->path, "corrupt or truncated xz data: unexpected end of input");
        case LZMA_DATA_ERROR:
                return log_error(EBADMSG, x->path, "corrupt or truncated xz data: compressed data is corrupt");
        default:
                return log_error(EBADMSG, x->path, "corrupt or truncated xz data: liblzma error %d", (int)ret);
        }
}

int xzmt_open(int fd, const char *path, struct xzmt **ret) {
        struct xzmt *x = xcalloc(1, sizeof(*x));
        x->strm = (lzma_stream)LZMA_STREAM_INIT;
        x->fd = fd;
        x->path = path;
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        lzma_mt mt = {
                /* like xz -d: concatenated streams are one file */
                .flags = LZMA_CONCATENATED,
                .threads = (uint32_t)MAX(1, MIN(cpus, 64)),
                .memlimit_threading = XZ_MEMLIMIT_THREADING,
                .memlimit_stop = UINT64_MAX,
        };
        lzma_ret r = lzma_stream_decoder_mt(&x->strm, &mt);
        if (r != LZMA_OK) {
                int e = lzma_fail(x, r);
                xzmt_close(x);
                return e;
        }
        x->in = xmalloc(XZ_IN_SIZE);
        *ret = x;
        return 0;
}

long long xzmt_read(struct xzmt *x, void *buf, size_t n) {
        x->strm.next_out = buf;
        x->strm.avail_out = n;
        while (x->strm.avail_out > 0 && !x->done) {
                if (x->strm.avail_in == 0 && !x->eof) {
                        ssize_t k = pread(x->fd, x->in, XZ_IN_SIZE, (off_t)x->in_off);
                        if (k < 0) {
                                if (errno == EINTR)
                                        continue;
                                return log_error(errno, x->path, "cannot read: %m");
                        }
                        if (k == 0)
                                x->eof = true;
                        x->in_off += (uint64_t)k;
                        x->strm.next_in = x->in;
                        x->strm.avail_in = (size_t)k;
                }
                lzma_ret r = lzma_code(&x->strm, x->eof ? LZMA_FINISH : LZMA_RUN);
                if (r == LZMA_STREAM_END)
                        x->done = true;
                else if (r != LZMA_OK)
                        return lzma_fail(x, r);
        }
        return (long long)(n - x->strm.avail_out);
}

uint64_t xzmt_consumed(const struct xzmt *x) {
        return x->strm.total_in;
}

void xzmt_close(struct xzmt *x) {
        if (!x)
                return;
        lzma_end(&x->strm);
        free(x->in);
        free(x);
}

int xz_decoded_size(int fd, uint64_t file_size, uint64_t *bytes) {
        lzma_stream strm = LZMA_STREAM_INIT;
        lzma_index *idx = NULL;
        /* The index is small (a few bytes per block); 64 MiB bounds a hostile one. */
        if (lzma_file_info_decoder(&strm, &idx, 64u << 20, file_size) != LZMA_OK)
                return -ENOMEM;
        uint8_t buf[16384];
        uint64_t pos = 0;
        int r = -EBADMSG;
        for (;;) {
                if (strm.avail_in == 0) {
                        ssize_t n = pread(fd, buf, sizeof buf, (off_t)pos);
                        if (n < 0) {
                                r = -errno;
                                break;
                        }
                        strm.next_in = buf;
                        strm.avail_in = (size_t)n;
                        pos += (uint64_t)n;
                }
                lzma_ret ret = lzma_code(&strm, LZMA_RUN);
                if (ret == LZMA_SEEK_NEEDED) {
                        pos = strm.seek_pos;
                        strm.avail_in = 0;
                } else if (ret == LZMA_STREAM_END) {
                        *bytes = lzma_index_uncompressed_size(idx);
                        r = 0;
                        break;
                } else if (ret != LZMA_OK) {
                        r = ret == LZMA_MEM_ERROR || ret == LZMA_MEMLIMIT_ERROR ? -ENOMEM : -EBADMSG;
                        break;
                }
        }
        if (idx)
                lzma_index_end(idx, NULL);
        lzma_end(&strm);
        return r;
}
