/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void oom(void) {
        fputs("dimimage: error: out of memory\n", stderr);
        abort();
}

void *xmalloc(size_t n) {
        void *p = malloc(n ? n : 1);
        if (!p)
                oom();
        return p;
}

void *xcalloc(size_t n, size_t size) {
        void *p = calloc(n ? n : 1, size ? size : 1);
        if (!p)
                oom();
        return p;
}

void *xrealloc(void *p, size_t n) {
        void *q = realloc(p, n ? n : 1);
        if (!q)
                oom();
        return q;
}

void *xmemdup(const void *p, size_t n) {
        void *q = xmalloc(n + 1);
        if (n)
                memcpy(q, p, n);
        ((char *)q)[n] = 0;
        return q;
}

char *xstrdup(const char *s) { return xmemdup(s, strlen(s)); }

char *xstrndup(const char *s, size_t n) { return xmemdup(s, strnlen(s, n)); }

/* Measured, then printed into a block of its size: glibc's vasprintf
 * grows a block of its own and frees it unwiped, and what is formatted may
 * be a secret (KEY=VALUE, a shadow line). */
char *xasprintf(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0)
                oom();
        char *s = xmalloc((size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(s, (size_t)n + 1, fmt, ap);
        va_end(ap);
        return s;
}

void strv_push(char ***v, size_t *n, const char *s) {
        *v = xrealloc(*v, (*n + 1) * sizeof **v);
        (*v)[(*n)++] = xstrdup(s);
}

void strv_clear(char ***v, size_t *n) {
        for (size_t i = 0; i < *n; i++)
                free((*v)[i]);
        free(*v);
        *v = NULL;
        *n = 0;
}

void strv_clear_secret(char ***v, size_t *n) {
        for (size_t i = 0; i < *n; i++)
                explicit_bzero((*v)[i], strlen((*v)[i]));
        strv_clear(v, n);
}

void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}

static void buf_reserve(struct buf *b, size_t extra) {
        if (b->len + extra + 1 <= b->cap)
                return;
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + extra + 1) {
                if (cap > SIZE_MAX / 2)
                        oom();
                cap *= 2;
        }
        if (b->secret && b->data) {
                /* realloc would free the old block as it is */
                uint8_t *grown = xmalloc(cap);
                memcpy(grown, b->data, b->len + 1);
                explicit_bzero(b->data, b->cap);
                free(b->data);
                b->data = grown;
        } else {
                b->data = xrealloc(b->data, cap);
        }
        b->cap = cap;
}

void buf_append(struct buf *b, const void *p, size_t n) {
        buf_reserve(b, n);
        if (n)
                memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = 0;
}

void buf_puts(struct buf *b, const char *s) { buf_append(b, s, strlen(s)); }

void buf_printf(struct buf *b, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0)
                oom();
        buf_reserve(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
}

void buf_free_secret(struct buf *b) {
        b->secret = true;
        buf_free(b);
}

void buf_free(struct buf *b) {
        if (b->secret && b->data)
                explicit_bzero(b->data, b->cap);
        free(b->data);
        *b = (struct buf){0};
}

uint8_t *buf_steal(struct buf *b, size_t *len) {
        /* an empty buffer (an empty file read) is still "" for the caller:
         * the reserve alone left its first byte whatever malloc gave */
        if (!b->data) {
                buf_reserve(b, 0);
                b->data[0] = 0;
        }
        uint8_t *p = b->data;
        if (len)
                *len = b->len;
        *b = (struct buf){0};
        return p;
}

/* The buffer is sized for the file up front (size, bounded by max), so
 * that the bytes of a secret read this way (a password file, an .env) are
 * not left behind in the heap by a realloc as it grows; the stack chunk is
 * wiped for the same reason. A pipe, whose size is not known, still grows,
 * and what each growth leaves behind is wiped. */
static int read_all(int fd, off_t size, size_t max, uint8_t **data, size_t *len) {
        struct buf b = { .secret = true };
        uint8_t chunk[65536];
        int r = 0;
        if (size > 0)
                buf_reserve(&b, (uint64_t)size < max ? (size_t)size : max);
        for (;;) {
                ssize_t n = read(fd, chunk, sizeof chunk);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                if (n == 0)
                        break;
                if (b.len + (size_t)n > max) {
                        r = -EFBIG;
                        break;
                }
                buf_append(&b, chunk, (size_t)n);
        }
        explicit_bzero(chunk, sizeof chunk);
        if (r < 0) {
                buf_free_secret(&b);
                return r;
        }
        *data = buf_steal(&b, len);
        return 0;
}

int read_file(const char *path, size_t max, uint8_t **data, size_t *len) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        return read_all(fd, st.st_size, max, data, len);
}

int read_regular_file(const char *path, size_t max, uint8_t **data, size_t *len) {
        /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
         * writer that never comes; O_NOFOLLOW: a symlink is not the file */
        _cleanup_close_ int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
        return read_all(fd, st.st_size, max, data, len);
}

int pread_full(int fd, void *buf, size_t n, uint64_t off) {
        uint8_t *p = buf;
        while (n > 0) {
                ssize_t r = pread(fd, p, n, (off_t)off);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (r == 0)
                        return -EIO; /* short: the image ends early */
                p += r;
                n -= (size_t)r;
                off += (uint64_t)r;
        }
        return 0;
}

int pwrite_full(int fd, const void *buf, size_t n, uint64_t off) {
        return pwrite_pieces(fd, buf, n, off, WRITE_PIECE);
}

int pwrite_pieces(int fd, const void *buf, size_t n, uint64_t off, size_t piece) {
        const uint8_t *p = buf;
        while (n > 0) {
                ssize_t r = pwrite(fd, p, MIN(n, piece), (off_t)off);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += r;
                n -= (size_t)r;
                off += (uint64_t)r;
        }
        return 0;
}

int write_full(int fd, const void *buf, size_t n) {
        const uint8_t *p = buf;
        while (n > 0) {
                ssize_t r = write(fd, p, MIN(n, (size_t)WRITE_PIECE));
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += r;
                n -= (size_t)r;
        }
        return 0;
}

const char *write_hint(int err) {
        err = err < 0 ? -err : err;
        if (err == EFBIG)
                return " (more than the filesystem there holds in one file, 4 GiB on FAT32, or than `ulimit -f` "
                       "allows; the raw image is made beside OUT even when OUT is compressed: give -o a place on "
                       "another filesystem)";
        return err == ENOSPC || err == EDQUOT ? " (free some space there, or give -o a place with room)" : "";
}

const char *edit_write_hint(int err) {
        err = err < 0 ? -err : err;
        if (err == EFBIG)
                return write_hint(err);
        return err == ENOSPC || err == EDQUOT ? " (the disk the image is built on, OUT's, is full: free some space "
                                                "there, or give -o a place with room)"
                                              : "";
}

const char *scratch_write_hint(int err) {
        err = err < 0 ? -err : err;
        if (err == EFBIG)
                return " (more than the filesystem there holds in one file, or than `ulimit -f` allows; a compressed "
                       "IMAGE is decompressed there to be read: set TMPDIR to a directory on another filesystem)";
        return err == ENOSPC || err == EDQUOT ? " (free some space there, or set TMPDIR to a directory with room: a "
                                                "compressed IMAGE is decompressed there to be read)"
                                              : "";
}

static int sde_state = -1; /* -1 unknown, 0 unset, 1 set, 2 set but not a time */
static time_t sde_value;

static void sde_load(void) {
        if (sde_state >= 0)
                return;
        const char *s = getenv("SOURCE_DATE_EPOCH");
        char *end = NULL;
        errno = 0;
        /* digits only, as `date +%s` prints them: strtoll would take " 17" or "+17" */
        long long v = s && *s >= '0' && *s <= '9' ? strtoll(s, &end, 10) : -1;
        if (v >= 0 && !errno && !*end) {
                sde_value = (time_t)v;
                sde_state = 1;
        } else {
                sde_value = time(NULL);
                sde_state = s && *s ? 2 : 0;
        }
}

const char *source_date_epoch_malformed(void) {
        sde_load();
        return sde_state == 2 ? getenv("SOURCE_DATE_EPOCH") : NULL;
}

void free_secret(char *s) {
        if (s)
                explicit_bzero(s, strlen(s));
        free(s);
}

double monotonic_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

time_t build_time(void) {
        sde_load();
        return sde_value;
}

bool source_date_epoch_set(void) {
        sde_load();
        return sde_state == 1;
}

bool str_has_suffix(const char *s, const char *suffix) {
        size_t a = strlen(s), b = strlen(suffix);
        return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

bool str_has_prefix(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

char *path_dirname(const char *path) {
        const char *slash = strrchr(path, '/');
        if (!slash)
                return xstrdup(".");
        if (slash == path)
                return xstrdup("/");
        return xstrndup(path, (size_t)(slash - path));
}

const char *path_basename(const char *path) {
        const char *slash = strrchr(path, '/');
        return slash ? slash + 1 : path;
}

char *path_relative_to(const char *file, const char *path) {
        if (path[0] == '/' || !strchr(file, '/'))
                return xstrdup(path);
        _cleanup_free_ char *dir = path_dirname(file);
        return xasprintf("%s/%s", dir, path);
}

bool mem_is_zero(const void *p, size_t n) {
        const uint8_t *b = p;
        /* Check a 16-byte head by hand, then compare the block with itself
         * shifted by 16: memcmp is vectorised, a byte loop is not. */
        size_t head = MIN(n, (size_t)16);
        for (size_t i = 0; i < head; i++)
                if (b[i])
                        return false;
        return n <= 16 || memcmp(b, b + 16, n - 16) == 0;
}

int parse_size(const char *s, uint64_t *bytes) {
        char *end;
        errno = 0;
        if (!s || !*s || *s == '-')
                return -EINVAL;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || end == s)
                return -EINVAL;
        unsigned shift = 0;
        switch (*end) {
        case 0: break;
        case 'k': case 'K': shift = 10; break;
        case 'm': case 'M': shift = 20; break;
        case 'g': case 'G': shift = 30; break;
        case 't': case 'T': shift = 40; break;
        default: return -EINVAL;
        }
        if (*end) {
                end++;
                if (*end == 'i')
                        end++;
                if (*end == 'B' || *end == 'b')
                        end++;
                if (*end)
                        return -EINVAL;
        }
        if (shift && v > (UINT64_MAX >> shift))
                return -ERANGE;
        *bytes = (uint64_t)v << shift;
        return 0;
}

size_t utf8_len(const unsigned char *s, size_t n) {
        if (!n)
                return 0;
        unsigned c = s[0];
        if (c < 0x80)
                return 1;
        size_t len;
        uint32_t cp;
        /* 0xc0, 0xc1 and 0xf5-0xff never start a sequence */
        if (c >= 0xc2 && c <= 0xdf) {
                len = 2;
                cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
                len = 3;
                cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
                len = 4;
                cp = c & 0x07;
        } else
                return 0;
        if (n < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = cp << 6 | (s[i] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return len;
}

void str_printable(char *s) {
        size_t left = strlen(s);
        unsigned char *c = (unsigned char *)s;
        while (*c) {
                size_t n = utf8_len(c, left);
                /* U+0080-U+009F is 0xc2 0x80-0x9f: the 8-bit controls */
                bool control = n == 1 ? (*c < 0x20 && *c != '\t') || *c == 0x7f : n == 2 && c[0] == 0xc2 && c[1] < 0xa0;
                if (!n || control) {
                        size_t bad = n ? n : 1;
                        memset(c, '?', bad);
                        n = bad;
                }
                c += n;
                left -= n;
        }
}

void format_size(uint64_t bytes, char out[32]) {
        static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
        double v = (double)bytes;
        unsigned u = 0;
        while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
                v /= 1024;
                u++;
        }
        if (u == 0)
                snprintf(out, 32, "%" PRIu64 " B", bytes);
        else
                snprintf(out, 32, "%.1f %s", v, units[u]);
}

bool path_is(const char *path, dev_t dev, ino_t ino) {
        struct stat st;
        return lstat(path, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

void temp_lock(int fd) { (void)flock(fd, LOCK_EX | LOCK_NB); }

unsigned sweep_stale(const char *dir, bool (*match)(const char *name, const void *arg), const void *arg,
                     time_t min_age, void (*removed)(const char *dir, const char *name, uint64_t bytes)) {
        unsigned n = 0;
        DIR *d = opendir(dir);
        if (!d)
                return 0;
        int dfd = dirfd(d);
        if (dfd < 0) {
                closedir(d);
                return 0;
        }
        time_t now = time(NULL);
        struct dirent *de;
        while ((de = readdir(d))) {
                struct stat st;
                if (!match(de->d_name, arg) || fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                    !S_ISREG(st.st_mode) || st.st_uid != geteuid() || now - st.st_mtime < min_age)
                        continue;
                int fd = openat(dfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
                if (fd < 0)
                        continue;
                if (flock(fd, LOCK_EX | LOCK_NB) == 0 && unlinkat(dfd, de->d_name, 0) == 0) {
                        removed(dir, de->d_name, (uint64_t)st.st_blocks * 512);
                        n++;
                }
                close(fd);
        }
        closedir(d);
        return n;
}
