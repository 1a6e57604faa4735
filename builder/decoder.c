/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "decoder.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "source.h"
#include "util.h"
#include "xzmt.h"

#define ARCHIVE_BLOCK (1u << 20)

static const char *const names[] = {
        [FMT_RAW] = "raw", [FMT_XZ] = "xz", [FMT_GZIP] = "gzip", [FMT_ZSTD] = "zstd", [FMT_ZIP] = "zip",
};

const char *decoder_fmt_name(enum fmt fmt) {
        return names[fmt];
}

/* ---- opening and recognising a base ---- */

static int open_base(const char *path, struct stat *st, uint64_t *size) {
        /* O_NONBLOCK so a FIFO cannot hang us before we refuse it. */
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return log_error(input_err(-errno), path, "cannot open: %m");
        if (fstat(fd, st) < 0) {
                int e = log_error(errno, path, "cannot stat: %m");
                close(fd);
                return e;
        }
        int e = 0;
        if (S_ISDIR(st->st_mode))
                e = log_error(EISDIR, path, "is a directory, not an image file");
        else if (S_ISBLK(st->st_mode)) {
                if (ioctl(fd, BLKGETSIZE64, size) < 0)
                        e = log_error(errno, path, "cannot get the block device size: %m");
        } else if (S_ISREG(st->st_mode))
                *size = (uint64_t)st->st_size;
        else
                e = log_error(EINVAL, path, "not a regular file or block device");
        if (!e && *size == 0)
                e = log_error(EINVAL, path, "empty file, not an image");
        if (!e && fcntl(fd, F_SETFL, 0) < 0)
                e = log_error(errno, path, "cannot open: %m");
        if (e) {
                close(fd);
                return e;
        }
        return fd;
}

/* By content, never by name: a renamed .xz is still xz. */
static int detect(int fd, const char *path, uint64_t size, enum fmt *fmt) {
        uint8_t m[8] = {0};
        int r = pread_full(fd, m, MIN(size, sizeof(m)), 0);
        if (r < 0)
                return log_error(r, path, "cannot read: %s", strerror(-r));
        if (!memcmp(m, "\xfd" "7zXZ\0", 6))
                *fmt = FMT_XZ;
        else if (m[0] == 0x1f && m[1] == 0x8b)
                *fmt = FMT_GZIP;
        /* a zstd frame, or a skippable frame (0x184D2A5?) before one */
        else if (!memcmp(m, "\x28\xb5\x2f\xfd", 4) || ((m[0] & 0xf0) == 0x50 && !memcmp(m + 1, "\x2a\x4d\x18", 3)))
                *fmt = FMT_ZSTD;
        else if (!memcmp(m, "PK\x03\x04", 4) || !memcmp(m, "PK\x05\x06", 4))
                *fmt = FMT_ZIP;
        else
                *fmt = FMT_RAW;
        return 0;
}

int decoder_open_file(const char *path, struct stat *st, uint64_t *size, enum fmt *fmt) {
        struct stat unused;
        int fd = open_base(path, st ? st : &unused, size);
        if (fd < 0)
                return fd;
        int r = detect(fd, path, *size, fmt);
        if (r < 0) {
                close(fd);
                return r;
        }
        return fd;
}

bool source_is_iso9660(const uint8_t *b, size_t n) {
        return n >= SOURCE_ISO9660_HEAD && !memcmp(b + SOURCE_ISO9660_MAGIC_OFF, SOURCE_ISO9660_MAGIC, 5);
}

int source_refuse_iso9660(const char *path, bool compressed) {
        return log_error(EINVAL, path,
                         "%s an ISO 9660 (CD/DVD or installer) image, not a Raspberry Pi OS disk image: the "
                         "Raspberry Pi OS downloads are .img.xz files (such as raspios-trixie-arm64-lite.img.xz)",
                         compressed ? "decompresses to" : "is");
}

/* A disk image starts with an MBR/protective-MBR/FAT boot signature or is a
 * bare ext2/3/4 filesystem; anything else (a text file, garbage) is refused
 * here rather than as a confusing partition-table error later.  An ISO
 * with an MBR (a hybrid one) is a disk image to flash; a base is refused
 * here, before it is copied or decoded, and inspect when it reads the
 * partitions (disk.c). */
int source_check_head(const char *path, const uint8_t *b, size_t n, bool compressed, bool as_base) {
        bool mbr = n >= 512 && b[510] == 0x55 && b[511] == 0xaa;
        if (source_is_iso9660(b, n) && (as_base || !mbr))
                return source_refuse_iso9660(path, compressed);
        if (mbr)
                return 0;
        if (n >= 1082 && get_le16(b + 1080) == 0xef53)
                return 0;
        /* the mistake a user makes most: the download's .tar.xz, or an image
         * packed with tar before compressing */
        if (n >= 262 && memcmp(b + 257, "ustar", 5) == 0)
                return log_error(EINVAL, path, "%s is a tar archive, not a disk image: extract the .img from it and "
                                 "give that (or the .img.xz of it) instead",
                                 compressed ? "the decompressed data" : "this");
        /* a .zip compressed again (.zip.gz, .zip.zst) */
        if (compressed && n >= 4 && memcmp(b, "PK\3\4", 4) == 0)
                return log_error(EINVAL, path, "the decompressed data is a zip archive, not a disk image: decompress "
                                 "it and give the .zip");
        return log_error(EINVAL, path, "%s is not a disk image: no partition table or filesystem signature at its start",
                         compressed ? "the decompressed data" : "this");
}

int decoder_check_raw_head(int fd, const char *path, uint64_t size, bool as_base) {
        size_t n = (size_t)MIN(size, (uint64_t)SOURCE_ISO9660_HEAD);
        _cleanup_free_ uint8_t *head = xmalloc(SOURCE_ISO9660_HEAD);
        int r = pread_full(fd, head, n, 0);
        if (r < 0)
                return log_error(r, path, "cannot read: %s", strerror(-r));
        return source_check_head(path, head, n, false, as_base);
}

int source_probe(const char *base, bool as_base) {
        uint64_t size = 0;
        enum fmt fmt;
        int fd = decoder_open_file(base, NULL, &size, &fmt);
        if (fd < 0)
                return fd;
        int r = fmt == FMT_RAW ? decoder_check_raw_head(fd, base, size, as_base) : 0;
        close(fd);
        return r;
}

/* ---- libarchive (gzip, zstd, zip) ---- */

/* zip: the base is a .zip, read as one (zip_pick); else the compressed
 * stream is the image itself, and a zip inside a .gz or .zst (read as a
 * zip, its first entry taken without zip_pick's one-image rule) is no
 * disk image. */
static struct archive *archive_open(int fd, const char *path, bool zip) {
        struct archive *a = archive_read_new();
        if (!a)
                abort();
        /* Individually, not filter_all: that falls back to external programs. */
        archive_read_support_filter_xz(a);
        archive_read_support_filter_gzip(a);
        archive_read_support_filter_zstd(a);
        if (zip)
                archive_read_support_format_zip(a);
        else
                archive_read_support_format_raw(a);
        if (lseek(fd, 0, SEEK_SET) < 0 || archive_read_open_fd(a, fd, ARCHIVE_BLOCK) != ARCHIVE_OK) {
                log_error(EBADMSG, path, "cannot read archive: %s", archive_error_string(a) ?: strerror(errno));
                archive_read_free(a);
                return NULL;
        }
        return a;
}

static int archive_fail(struct archive *a, const char *path, enum fmt fmt) {
        const char *msg = archive_error_string(a);
        /* an encrypted zip is not damaged: say what to do instead */
        if (fmt == FMT_ZIP && msg && strcasestr(msg, "passphrase"))
                return log_error(EINVAL, path, "the zip archive is encrypted: unzip it (with its password) and give "
                                 "the .img");
        /* libarchive says nothing when the stream just stops */
        return log_error(EBADMSG, path, "corrupt or truncated %s data: %s", names[fmt],
                         msg ? msg : "it ends before its data does (cut short?)");
}

static bool is_image_name(const char *name) {
        size_t n = strlen(name);
        return n > 4 && strcasecmp(name + n - 4, ".img") == 0;
}

/* A zip must hold exactly one *.img; find its index (entries are read in
 * order, so the second pass skips to it). */
static int zip_pick(int fd, const char *path, int *index) {
        struct archive *a = archive_open(fd, path, true);
        if (!a)
                return -EBADMSG;
        struct buf images = {0}, all = {0};
        int count = 0, total = 0, r = 0;
        for (int i = 0;; i++) {
                struct archive_entry *e;
                int ar = archive_read_next_header(a, &e);
                if (ar == ARCHIVE_EOF)
                        break;
                if (ar < ARCHIVE_WARN) {
                        r = archive_fail(a, path, FMT_ZIP);
                        goto out;
                }
                const char *name = archive_entry_pathname(e) ?: "?";
                buf_printf(&all, "%s%s", total++ ? ", " : "", name);
                if (archive_entry_filetype(e) == AE_IFREG && is_image_name(name)) {
                        buf_printf(&images, "%s%s", count ? ", " : "", name);
                        if (count++ == 0)
                                *index = i;
                }
        }
        if (count == 0)
                r = log_error(EINVAL, path, "zip archive holds no *.img file (%s)", total ? (char *)all.data : "it is empty");
        else if (count > 1)
                r = log_error(EINVAL, path, "zip archive holds %d images (%s): unpack the one you want", count,
                              (char *)images.data);
out:
        buf_free(&images);
        buf_free(&all);
        archive_read_free(a);
        return r;
}

/* ---- gzip's CRC-32 ----
 * libarchive's gzip reader does not check the member CRC, so a flipped bit
 * in a .gz would pass silently; zlib is not linked, hence slice-by-8 here. */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
        for (uint32_t i = 0; i < 256; i++) {
                uint32_t c = i;
                for (int k = 0; k < 8; k++)
                        c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
                crc_table[0][i] = c;
        }
        for (uint32_t i = 0; i < 256; i++)
                for (int t = 1; t < 8; t++)
                        crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
        pthread_once(&crc_once, crc_init);
        crc = ~crc;
        while (n >= 8) {
                uint32_t a = get_le32(p) ^ crc, b = get_le32(p + 4);
                crc = crc_table[7][a & 0xff] ^ crc_table[6][(a >> 8) & 0xff] ^ crc_table[5][(a >> 16) & 0xff] ^
                      crc_table[4][a >> 24] ^ crc_table[3][b & 0xff] ^ crc_table[2][(b >> 8) & 0xff] ^
                      crc_table[1][(b >> 16) & 0xff] ^ crc_table[0][b >> 24];
                p += 8;
                n -= 8;
        }
        while (n--)
                crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        return ~crc;
}

/* ---- one reader over every format ---- */

/* The last member's trailer (CRC-32, size mod 2^32) against the data.
 * What it cannot cover is refused, not let through: a multi-member .gz (cat
 * a.gz b.gz), whose members libarchive joins without checking any, a
 * damaged size, or bytes after the end, which gzip -t fails too. */
static int gzip_check(struct decoder *d) {
        uint8_t t[8];
        /* a 10-byte header and the trailer: a file cut shorter has no
         * trailer to read (its offset would be before the start) */
        if (d->size < 10 + sizeof(t))
                return log_error(EBADMSG, d->path, "corrupt or truncated gzip data: %" PRIu64
                                 " bytes, too few for a gzip file", d->size);
        int r = pread_full(d->fd, t, sizeof(t), d->size - sizeof(t));
        if (r < 0)
                return log_error(r, d->path, "cannot read: %s", strerror(-r));
        if (get_le32(t + 4) != (uint32_t)d->out)
                return log_error(EBADMSG, d->path,
                                 "cannot verify this gzip file: its trailer does not cover the data (damaged or "
                                 "cut short, several members, or bytes after the end); check it with 'gzip -t' and "
                                 "give the decompressed .img, or recompress it with 'gzip -c'");
        if (get_le32(t) != d->crc)
                return log_error(EBADMSG, d->path, "corrupt or truncated gzip data: CRC mismatch");
        return 0;
}

int decoder_open(struct decoder *d, int fd, const char *path, uint64_t size, enum fmt fmt) {
        *d = (struct decoder){.fmt = fmt, .path = path, .fd = fd, .size = size};
        if (fmt == FMT_RAW)
                return 0;
        if (fmt == FMT_XZ)
                return xzmt_open(fd, path, &d->xz);
        int index = 0;
        if (fmt == FMT_ZIP) {
                int r = zip_pick(fd, path, &index);
                if (r < 0)
                        return r;
        }
        d->a = archive_open(fd, path, fmt == FMT_ZIP);
        if (!d->a)
                return -EBADMSG;
        for (int i = 0; i <= index; i++) {
                struct archive_entry *e;
                int ar = archive_read_next_header(d->a, &e);
                if (ar < ARCHIVE_WARN || ar == ARCHIVE_EOF) {
                        int r = ar == ARCHIVE_EOF ? log_error(EBADMSG, path, "corrupt or truncated %s data: no data",
                                                              names[fmt])
                                                  : archive_fail(d->a, path, fmt);
                        archive_read_free(d->a);
                        d->a = NULL;
                        return r;
                }
                if (i == index && fmt == FMT_ZIP && archive_entry_size_is_set(e) && archive_entry_size(e) > 0)
                        d->entry_size = (uint64_t)archive_entry_size(e);
        }
        return 0;
}

long long decoder_read(struct decoder *d, void *buf, size_t n) {
        if (d->xz)
                return xzmt_read(d->xz, buf, n);
        if (d->checked)
                return 0;
        size_t got = 0;
        while (got < n) {
                ssize_t k;
                if (d->a) {
                        k = archive_read_data(d->a, (uint8_t *)buf + got, n - got);
                        if (k < 0)
                                return archive_fail(d->a, d->path, d->fmt);
                } else {
                        k = pread(d->fd, (uint8_t *)buf + got, n - got, (off_t)d->raw_off);
                        if (k < 0) {
                                if (errno == EINTR)
                                        continue;
                                return log_error(errno, d->path, "cannot read: %m");
                        }
                        d->raw_off += (uint64_t)k;
                }
                if (k == 0)
                        break;
                if (d->fmt == FMT_GZIP)
                        d->crc = crc32_update(d->crc, (uint8_t *)buf + got, (size_t)k);
                got += (size_t)k;
        }
        d->out += got;
        if (got < n && d->fmt == FMT_GZIP) {
                d->checked = true;
                int r = gzip_check(d);
                if (r < 0)
                        return r;
        }
        return (long long)got;
}

uint64_t decoder_consumed(const struct decoder *d) {
        if (d->xz)
                return xzmt_consumed(d->xz);
        if (d->a)
                return (uint64_t)MAX(archive_filter_bytes(d->a, -1), 0);
        return d->raw_off;
}

void decoder_close(struct decoder *d) {
        xzmt_close(d->xz);
        d->xz = NULL;
        if (d->a)
                archive_read_free(d->a);
        d->a = NULL;
}

/* ---- the stream API (inspect, flash) ---- */

struct source_stream {
        int fd;
        char *path;
        struct decoder d;
};

int source_stream_open(const char *path, struct source_stream **ret) {
        uint64_t size = 0;
        enum fmt fmt;
        int fd = decoder_open_file(path, NULL, &size, &fmt);
        if (fd < 0)
                return fd;
        struct source_stream *s = xcalloc(1, sizeof(*s));
        s->fd = fd;
        s->path = xstrdup(path);
        int r = decoder_open(&s->d, fd, s->path, size, fmt);
        if (r < 0) {
                close(fd);
                free(s->path);
                free(s);
                return r;
        }
        *ret = s;
        return 0;
}

long long source_stream_read(struct source_stream *s, void *buf, size_t n) {
        return decoder_read(&s->d, buf, n);
}

uint64_t source_stream_size_hint(const struct source_stream *s) { return s->d.entry_size; }

void source_stream_close(struct source_stream *s) {
        if (!s)
                return;
        decoder_close(&s->d);
        close(s->fd);
        free(s->path);
        free(s);
}
