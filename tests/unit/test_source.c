/* SPDX-License-Identifier: GPL-3.0-or-later */
/* source: every base format against the real tools (xz, gzip, zstd, zip,
 * sha256sum), sparseness, one error line per failure, the cache. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache.h"
#include "hash.h"
#include "log.h"
#include "source.h"
#include "test_util.h"
#include "util.h"

#define IMG_SIZE (24u << 20)

static char dir[256];
static uint8_t *image;          /* the raw test image */
static char image_sha[65];      /* from sha256sum */

static char *tpath(const char *name) {
        return xasprintf("%s/%s", dir, name);
}

/* Run argv, stdout to out (when non-NULL); returns the exit status. */
static int run(const char *out, const char *const argv[]) {
        return tu_run(argv, out, TU_STDERR_NULL);
}

static void write_bytes(const char *path, const void *p, size_t n) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write_full(fd, p, n), 0);
        close(fd);
}

static uint8_t *slurp(const char *path, size_t *n) {
        uint8_t *d;
        assert_int_equal(read_file(path, 1u << 30, &d, n), 0);
        return d;
}

/* An MBR-signed image: random data at a few places, zeros between. */
static void make_image(void) {
        image = xcalloc(1, IMG_SIZE);
        uint64_t x = 0x9e3779b97f4a7c15ull;
        const struct {
                size_t off, len;
        } runs[] = {{0, 64 << 10}, {1 << 20, 2 << 20}, {9 << 20, 300 << 10}, {20 << 20, 1 << 20}};
        for (size_t r = 0; r < ARRAY_SIZE(runs); r++)
                for (size_t i = runs[r].off; i < runs[r].off + runs[r].len; i++) {
                        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                        image[i] = (uint8_t)x;
                }
        image[510] = 0x55;
        image[511] = 0xaa;
        image[IMG_SIZE - 1] = 1; /* a non-zero last byte: the size must be exact */
        _cleanup_free_ char *p = tpath("t.img");
        write_bytes(p, image, IMG_SIZE);
}

static int setup(void **state) {
        if (tu_mkdtemp(dir, sizeof dir, "dimimage-source") < 0)
                return -1;
        _cleanup_free_ char *cache = tpath("cache");
        setenv("XDG_CACHE_HOME", cache, 1);
        unsetenv("DIMIMAGE_CACHE_MAX");
        make_image();
        _cleanup_free_ char *img = tpath("t.img"), *sums = tpath("sums");
        if (run(sums, (const char *const[]){"sha256sum", img, NULL}) != 0)
                return -1;
        size_t n;
        _cleanup_free_ uint8_t *s = slurp(sums, &n);
        memcpy(image_sha, s, 64);
        image_sha[64] = 0;
        /* -T2 with small blocks: a multi-block .xz for the threaded decoder. */
        _cleanup_free_ char *xz = tpath("t.img.xz"), *gz = tpath("t.img.gz"), *zst = tpath("t.img.zst"),
                           *zip = tpath("t.zip"), *xz1 = tpath("single.img.xz");
        if (run(xz, (const char *const[]){"xz", "-c", "-T2", "--block-size=4MiB", "-1", img, NULL}) ||
            run(xz1, (const char *const[]){"xz", "-c", "-T1", "-1", img, NULL}) ||
            run(gz, (const char *const[]){"gzip", "-c", "-1", img, NULL}) ||
            run(zst, (const char *const[]){"zstd", "-q", "-c", img, NULL}) ||
            run(NULL, (const char *const[]){"zip", "-q", "-j", "-1", zip, img, NULL}))
                return -1;
        (void)state;
        return 0;
}

static int teardown(void **state) {
        tu_rm_rf(dir);
        free(image);
        (void)state;
        return 0;
}

/* stderr into a file until stderr_restore, which puts what was said in
 * err (cut to n - 1 bytes) */
static int stderr_capture(void) {
        _cleanup_free_ char *errfile = tpath("stderr");
        fflush(stderr);
        int saved = dup(2);
        int efd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        assert_true(saved >= 0 && efd >= 0);
        dup2(efd, 2);
        close(efd);
        return saved;
}

static void stderr_restore(int saved, char *err, size_t n) {
        _cleanup_free_ char *errfile = tpath("stderr");
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        size_t len;
        _cleanup_free_ uint8_t *e = slurp(errfile, &len);
        snprintf(err, n, "%.*s", (int)len, (char *)e);
}

/* Extract with stderr captured; returns the result, errors counted. */
struct outcome {
        int r;
        unsigned errors;
        char err[1024];
        struct source_info info;
        bool pending;
        bool sum_pending; /* before the verdict */
        int verdict;
};

/* later: a cache hit's check left running (source_opts.verify_later), a
 * warning said while it runs, then the verdict in o.verdict.  sum_later:
 * source_opts.sum_later too; between, if set, runs before the verdict. */
static struct outcome extract_late(const char *base, const char *out, bool no_cache, bool later, bool sum_later,
                                   void (*between)(const char *base)) {
        struct outcome o = {0};
        int saved = stderr_capture();
        int fd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0644);
        assert_true(fd >= 0);
        unsigned before = log_error_count();
        struct source_opts opts = {.no_cache = no_cache, .quiet = true, .verify_later = later, .sum_later = sum_later};
        o.r = source_extract(base, fd, &opts, &o.info);
        if (later) {
                o.pending = o.info.check != NULL;
                o.sum_pending = o.info.sum_pending;
                if (o.sum_pending)
                        assert_string_equal(o.info.sha256, "");
                if (between)
                        between(base);
                log_warn(base, "said while the check runs");
                o.verdict = source_verify(&o.info);
                assert_null(o.info.check);
                assert_int_equal(source_verify(&o.info), o.verdict); /* repeats itself */
        }
        o.errors = log_error_count() - before;
        close(fd);
        stderr_restore(saved, o.err, sizeof(o.err));
        return o;
}

static struct outcome extract_opts(const char *base, const char *out, bool no_cache, bool later) {
        return extract_late(base, out, no_cache, later, false, NULL);
}

static struct outcome extract(const char *base, const char *out, bool no_cache) {
        return extract_opts(base, out, no_cache, false);
}

static void assert_image_equal(const char *path) {
        size_t n;
        _cleanup_free_ uint8_t *d = slurp(path, &n);
        assert_int_equal(n, IMG_SIZE);
        assert_memory_equal(d, image, IMG_SIZE);
}

static void assert_sparse(const char *path) {
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_size, IMG_SIZE);
        /* 3.4 MiB of data in 24 MiB */
        assert_true((uint64_t)st.st_blocks * 512 < 8u << 20);
}

static void check_format(const char *name, const char *format, const char *const tool[]) {
        _cleanup_free_ char *base = tpath(name), *out = tpath("out.img"), *ref = tpath("ref.img");
        struct outcome o = extract(base, out, true);
        assert_int_equal(o.r, 0);
        assert_int_equal(o.errors, 0);
        assert_string_equal(o.info.sha256, image_sha);
        assert_int_equal(o.info.bytes, IMG_SIZE);
        assert_string_equal(o.info.format, format);
        assert_false(o.info.from_cache);
        assert_image_equal(out);
        assert_sparse(out);
        if (tool) {
                /* what the format's own tool decodes, byte for byte */
                const char *argv[8];
                size_t i = 0;
                for (; tool[i]; i++)
                        argv[i] = tool[i];
                argv[i++] = base;
                argv[i] = NULL;
                assert_int_equal(run(ref, argv), 0);
                assert_image_equal(ref);
        }
}

static void test_raw(void **state) {
        check_format("t.img", "raw", NULL);
}
static void test_xz(void **state) {
        check_format("t.img.xz", "xz", (const char *const[]){"xz", "-dc", NULL});
        check_format("single.img.xz", "xz", (const char *const[]){"xz", "-dc", NULL});
}
static void test_gzip(void **state) {
        check_format("t.img.gz", "gzip", (const char *const[]){"gzip", "-dc", NULL});
}
static void test_zstd(void **state) {
        check_format("t.img.zst", "zstd", (const char *const[]){"zstd", "-q", "-dc", NULL});
}
static void test_zip(void **state) {
        check_format("t.zip", "zip", (const char *const[]){"unzip", "-p", NULL});
}

/* Detection by content: a .xz named .img is still read as xz. */
static void test_magic_not_name(void **state) {
        _cleanup_free_ char *xz = tpath("t.img.xz"), *renamed = tpath("renamed.img"), *out = tpath("out.img");
        size_t n;
        _cleanup_free_ uint8_t *d = slurp(xz, &n);
        write_bytes(renamed, d, n);
        struct outcome o = extract(renamed, out, true);
        assert_int_equal(o.r, 0);
        assert_string_equal(o.info.format, "xz");
        assert_image_equal(out);
}

/* A damaged copy of `from` with `len` bytes kept (0: all) and the byte at
 * `flip` (when non-zero) inverted. */
static char *damaged(const char *from, const char *name, size_t len, size_t flip) {
        _cleanup_free_ char *src = tpath(from);
        char *dst = tpath(name);
        size_t n;
        _cleanup_free_ uint8_t *d = slurp(src, &n);
        if (flip)
                d[flip] ^= 0xff;
        write_bytes(dst, d, len ? len : n);
        return dst;
}

static void expect_fail(const char *base, int err, const char *pattern) {
        _cleanup_free_ char *out = tpath("out.img");
        struct outcome o = extract(base, out, true);
        if (o.r != -err || o.errors != 1 || !strstr(o.err, pattern))
                print_error("%s: r=%d errors=%u stderr=%s", base, o.r, o.errors, o.err);
        assert_int_equal(o.r, -err);
        assert_int_equal(o.errors, 1);
        assert_non_null(strstr(o.err, pattern));
        assert_non_null(strstr(o.err, path_basename(base)));
        /* exactly one line */
        unsigned lines = 0;
        for (const char *c = o.err; *c; c++)
                lines += *c == '\n';
        assert_int_equal(lines, 1);
}

static void test_errors(void **state) {
        size_t xz_n, gz_n, zst_n;
        {
                _cleanup_free_ char *a = tpath("t.img.xz"), *b = tpath("t.img.gz"), *c = tpath("t.img.zst");
                free(slurp(a, &xz_n));
                free(slurp(b, &gz_n));
                free(slurp(c, &zst_n));
        }
        _cleanup_free_ char *txz = damaged("t.img.xz", "trunc.img.xz", xz_n / 2, 0);
        expect_fail(txz, EBADMSG, "corrupt or truncated xz data");
        _cleanup_free_ char *bxz = damaged("t.img.xz", "bad.img.xz", 0, xz_n / 2);
        expect_fail(bxz, EBADMSG, "corrupt or truncated xz data");
        _cleanup_free_ char *bgz = damaged("t.img.gz", "badcrc.img.gz", 0, gz_n - 6);
        expect_fail(bgz, EBADMSG, "corrupt or truncated gzip data");
        _cleanup_free_ char *tgz = damaged("t.img.gz", "trunc.img.gz", gz_n - 100, 0);
        expect_fail(tgz, EBADMSG, "corrupt or truncated gzip data");
        _cleanup_free_ char *tzst = damaged("t.img.zst", "trunc.img.zst", zst_n / 2, 0);
        expect_fail(tzst, EBADMSG, "corrupt or truncated zstd data");

        _cleanup_free_ char *img = tpath("t.img"), *img2 = tpath("u.img"), *two = tpath("two.zip"),
                           *none = tpath("none.zip"), *txt = tpath("notes.txt");
        write_bytes(img2, image, 1 << 20);
        write_bytes(txt, "hello\n", 6);
        assert_int_equal(run(NULL, (const char *const[]){"zip", "-q", "-j", two, img, img2, NULL}), 0);
        assert_int_equal(run(NULL, (const char *const[]){"zip", "-q", "-j", none, txt, NULL}), 0);
        expect_fail(two, EINVAL, "holds 2 images (t.img, u.img)");
        expect_fail(none, EINVAL, "holds no *.img file (notes.txt)");
        expect_fail(txt, EINVAL, "not a disk image");

        _cleanup_free_ char *garbage = tpath("garbage.img.xz");
        write_bytes(garbage, image + (1 << 20), 100000); /* random bytes, misleading name */
        expect_fail(garbage, EINVAL, "not a disk image");

        _cleanup_free_ char *empty = tpath("empty.img");
        write_bytes(empty, "", 0);
        expect_fail(empty, EINVAL, "empty file");
        _cleanup_free_ char *missing = tpath("missing.img.xz");
        expect_fail(missing, ENOENT, "cannot open: No such file or directory");
        expect_fail(dir, EISDIR, "is a directory");
        expect_fail("/dev/null", EINVAL, "not a regular file or block device");
}

/* The base is opened read-only and left as it was. */
static void test_base_untouched(void **state) {
        _cleanup_free_ char *xz = tpath("t.img.xz"), *out = tpath("out.img");
        struct stat a, b;
        assert_int_equal(stat(xz, &a), 0);
        assert_int_equal(chmod(xz, 0444), 0);
        struct outcome o = extract(xz, out, true);
        assert_int_equal(o.r, 0);
        assert_int_equal(chmod(xz, 0644), 0);
        assert_int_equal(stat(xz, &b), 0);
        assert_int_equal(a.st_size, b.st_size);
        assert_int_equal(a.st_mtim.tv_sec, b.st_mtim.tv_sec);
        assert_int_equal(a.st_mtim.tv_nsec, b.st_mtim.tv_nsec);
}

static char *cached_image(void) {
        _cleanup_free_ char *cd = cache_dir();
        char *p = xasprintf("%s/base-%s.img", cd, image_sha);
        return p;
}

static void test_cache(void **state) {
        assert_int_equal(cache_clean(), 0);
        _cleanup_free_ char *zst = tpath("t.img.zst"), *out = tpath("out.img"), *out2 = tpath("out2.img");
        struct outcome o = extract(zst, out, false);
        assert_int_equal(o.r, 0);
        assert_false(o.info.from_cache);
        _cleanup_free_ char *ci = cached_image();
        struct stat st;
        assert_int_equal(stat(ci, &st), 0);
        assert_int_equal(st.st_size, IMG_SIZE);
        assert_true((uint64_t)st.st_blocks * 512 < 8u << 20); /* sparse in the cache too */

        o = extract(zst, out2, false);
        assert_int_equal(o.r, 0);
        assert_int_equal(o.errors, 0);
        assert_true(o.info.from_cache);
        assert_string_equal(o.info.format, "zstd");
        assert_string_equal(o.info.sha256, image_sha);
        assert_int_equal(o.info.bytes, IMG_SIZE);
        assert_image_equal(out2);
        assert_sparse(out2);

        /* no_cache bypasses a valid entry */
        o = extract(zst, out2, true);
        assert_false(o.info.from_cache);

        /* a damaged cached image is noticed, not used, and replaced */
        int fd = open(ci, O_WRONLY);
        assert_true(fd >= 0);
        assert_int_equal(pwrite_full(fd, "XXXX", 4, (1 << 20) + 12345), 0);
        close(fd);
        o = extract(zst, out2, false);
        assert_int_equal(o.r, 0);
        assert_int_equal(o.errors, 0);
        assert_false(o.info.from_cache);
        assert_non_null(strstr(o.err, "damaged"));
        assert_string_equal(o.info.sha256, image_sha);
        assert_image_equal(out2);
        o = extract(zst, out2, false);
        assert_true(o.info.from_cache);
        assert_image_equal(out2);

        /* a touched base (new mtime) is a different key: a miss */
        assert_int_equal(utimensat(AT_FDCWD, zst, NULL, 0), 0);
        o = extract(zst, out2, false);
        assert_false(o.info.from_cache);

        /* a base rewritten in place with its mtime put back (touch -d, cp
         * -p, rsync -t) is a different key too: its ctime moved */
        assert_int_equal(stat(zst, &st), 0);
        o = extract(zst, out2, false);
        assert_true(o.info.from_cache);
        size_t zn;
        _cleanup_free_ uint8_t *z = slurp(zst, &zn);
        write_bytes(zst, z, zn);
        struct timespec back[2] = {st.st_atim, st.st_mtim};
        assert_int_equal(utimensat(AT_FDCWD, zst, back, 0), 0);
        o = extract(zst, out2, false);
        assert_false(o.info.from_cache);

        /* list shows the entry; clean empties the cache */
        _cleanup_free_ char *listing = tpath("list.txt");
        FILE *f = fopen(listing, "w");
        assert_non_null(f);
        assert_int_equal(cache_list(f), 0);
        fclose(f);
        size_t n;
        _cleanup_free_ uint8_t *l = slurp(listing, &n);
        char prefix[17];
        memcpy(prefix, image_sha, 16);
        prefix[16] = 0;
        assert_non_null(strstr((char *)l, prefix));
        assert_non_null(strstr((char *)l, "t.img.zst (zstd)"));
        assert_int_equal(cache_clean(), 0);
        assert_int_equal(access(ci, F_OK), -1);

        /* raw bases are never cached */
        _cleanup_free_ char *raw = tpath("t.img");
        o = extract(raw, out2, false);
        assert_int_equal(access(ci, F_OK), -1);
}

/* verify_later: the copy is handed over at once, the check's verdict comes
 * with source_verify, and what was said in between is printed only when the
 * entry was sound. */
/* A hit handed over before its check, and the check's verdict. */
static void assert_checked_hit(const struct outcome *o, int verdict) {
        assert_int_equal(o->r, 0);
        assert_true(o->info.from_cache);
        assert_true(o->pending);
        assert_int_equal(o->verdict, verdict);
        assert_int_equal(o->info.damaged, verdict);
        assert_int_equal(o->errors, 0);
}

static void test_cache_verify_later(void **state) {
        assert_int_equal(cache_clean(), 0);
        _cleanup_free_ char *zst = tpath("t.img.zst"), *out = tpath("later.img"), *ci = cached_image();
        struct outcome o = extract_opts(zst, out, false, true);
        assert_int_equal(o.r, 0);
        assert_false(o.info.from_cache); /* a miss: decompressed and checked on the way */
        assert_false(o.pending);
        assert_int_equal(o.verdict, 0);
        assert_non_null(strstr(o.err, "said while the check runs"));

        o = extract_opts(zst, out, false, true);
        assert_checked_hit(&o, 0);
        assert_string_equal(o.info.sha256, image_sha);
        assert_non_null(strstr(o.err, "said while the check runs"));
        assert_image_equal(out);
        assert_sparse(out);

        /* damaged: the copy is handed over all the same, the verdict says
         * so, what was said meanwhile is dropped, the entry goes */
        int fd = open(ci, O_WRONLY);
        assert_true(fd >= 0);
        assert_int_equal(pwrite_full(fd, "XXXX", 4, (3 << 20) + 7), 0);
        close(fd);
        o = extract_opts(zst, out, false, true);
        assert_checked_hit(&o, 1);
        assert_non_null(strstr(o.err, "damaged"));
        assert_null(strstr(o.err, "said while the check runs"));
        assert_int_equal(access(ci, F_OK), -1);
        /* and the next one decompresses again */
        o = extract_opts(zst, out, false, true);
        assert_false(o.info.from_cache);
        assert_image_equal(out);
        assert_int_equal(cache_clean(), 0);
}

/* How many sum-* files the cache holds; *last (unless NULL) gets the path
 * of the last one read, or NULL. */
static unsigned sum_files(char **last) {
        _cleanup_free_ char *cd = cache_dir();
        DIR *d = opendir(cd);
        unsigned n = 0;
        struct dirent *de;
        if (last)
                *last = NULL;
        while (d && (de = readdir(d))) {
                if (strncmp(de->d_name, "sum-", 4))
                        continue;
                n++;
                if (last) {
                        free(*last);
                        *last = xasprintf("%s/%s", cd, de->d_name);
                }
        }
        if (d)
                closedir(d);
        return n;
}

static unsigned count_sums(void) {
        return sum_files(NULL);
}

/* The one sum-* file in the cache, or NULL. */
static char *sum_file(void) {
        char *found;
        assert_true(sum_files(&found) <= 1);
        return found;
}

static void scribble(const char *base);

/* A base written while it is read (a cp over it, a download still running)
 * is refused, -EAGAIN (exit 75), not built from.  The writer here is the
 * extraction itself, its output being the base: the same bytes, so the
 * copy succeeds, but new times, as any writer leaves them. */
static void test_changed_while_read(void **state) {
        _cleanup_free_ char *raw = tpath("moving.img");
        write_bytes(raw, image, IMG_SIZE);
        int fd = open(raw, O_RDWR | O_CLOEXEC);
        assert_true(fd >= 0);
        struct timespec past[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
        assert_int_equal(futimens(fd, past), 0); /* so any write moves them */
        struct source_opts opts = {.no_cache = true, .quiet = true};
        struct source_info info;
        char err[4096];
        int saved = stderr_capture();
        int r = source_extract(raw, fd, &opts, &info);
        stderr_restore(saved, err, sizeof(err));
        assert_int_equal(r, -EAGAIN);
        assert_non_null(strstr(err, "moving.img: changed while it was read (is something writing it?)"));
        assert_string_equal(info.sha256, "");
        close(fd);
        assert_int_equal(unlink(raw), 0);
}

/* A raw base's sha256, remembered by one build, lets the next copy it at
 * once and check it beside the build; a wrong sum costs the sum, never the
 * base. */
static void test_remembered_sum(void **state) {
        assert_int_equal(cache_clean(), 0);
        _cleanup_free_ char *raw = tpath("r.img"), *out = tpath("sum.img");
        write_bytes(raw, image, IMG_SIZE);
        struct outcome o = extract_opts(raw, out, true, true);
        assert_int_equal(o.r, 0);
        assert_false(o.pending);
        assert_null(sum_file()); /* no_cache: nothing remembered */

        o = extract_opts(raw, out, false, true);
        assert_int_equal(o.r, 0);
        assert_false(o.pending); /* hashed on the way, then remembered */
        assert_string_equal(o.info.sha256, image_sha);
        _cleanup_free_ char *sum = sum_file();
        assert_non_null(sum);

        o = extract_opts(raw, out, false, true);
        assert_int_equal(o.r, 0);
        assert_true(o.pending);
        assert_int_equal(o.verdict, 0);
        assert_false(o.info.from_cache);
        assert_string_equal(o.info.sha256, image_sha);
        assert_string_equal(o.info.format, "raw");
        assert_int_equal(o.info.bytes, IMG_SIZE);
        assert_image_equal(out);
        assert_sparse(out);
        /* without verify_later the base is hashed on the way as ever */
        o = extract_opts(raw, out, false, false);
        assert_false(o.pending);
        assert_string_equal(o.info.sha256, image_sha);

        /* a remembered sum that is wrong: the verdict says so, what was said
         * meanwhile is dropped, the sum goes and the base stays */
        size_t n;
        uint8_t *text;
        assert_int_equal(read_file(sum, 4096, &text, &n), 0);
        char *at = strstr((char *)text, image_sha);
        assert_non_null(at);
        memset(at, 'a', 64);
        write_bytes(sum, text, n);
        free(text);
        o = extract_opts(raw, out, false, true);
        assert_int_equal(o.r, 0);
        assert_true(o.pending);
        assert_int_equal(o.verdict, 1);
        assert_int_equal(o.errors, 0);
        assert_non_null(strstr(o.err, "does not match the sha256 remembered for it"));
        assert_null(strstr(o.err, "said while the check runs"));
        assert_int_equal(access(sum, F_OK), -1);
        assert_image_equal(raw);
        o = extract_opts(raw, out, false, true);
        assert_false(o.pending);
        assert_string_equal(o.info.sha256, image_sha);

        /* a touched base is another key: hashed again, and its old sum
         * forgotten */
        assert_int_equal(utimensat(AT_FDCWD, raw, NULL, 0), 0);
        o = extract_opts(raw, out, false, true);
        assert_false(o.pending);
        _cleanup_free_ char *again = sum_file(); /* asserts there is one */
        assert_string_not_equal(again, sum);
        o = extract_opts(raw, out, false, true);
        assert_true(o.pending);
        assert_int_equal(o.verdict, 0);

        /* cache list counts it; clean forgets it */
        _cleanup_free_ char *listing = tpath("sums.txt");
        FILE *f = fopen(listing, "w");
        assert_non_null(f);
        assert_int_equal(cache_list(f), 0);
        fclose(f);
        _cleanup_free_ uint8_t *l = slurp(listing, &n);
        assert_non_null(strstr((char *)l, "sha256 of 1 raw base,"));
        assert_int_equal(cache_clean(), 0);
        _cleanup_free_ char *none = sum_file();
        assert_null(none);

        /* a base written while it is read, its sum remembered: the check
         * may have hashed the old bytes and the copy the new (or the other
         * way round), so the verdict is "read it again", never "checked out" */
        o = extract_opts(raw, out, false, true);
        assert_false(o.pending);
        o = extract_late(raw, out, false, true, false, scribble);
        assert_true(o.pending);
        assert_int_equal(o.verdict, 1);
        assert_non_null(strstr(o.err, "changed while it was read; reading it again"));
        assert_int_equal(unlink(raw), 0);
}

/* Written while the build runs: the byte the copy saw is not there now. */
static void scribble(const char *base) {
        int fd = open(base, O_WRONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, "x", 1, 4096), 1);
        close(fd);
}

/* A raw base with nothing remembered, its sha256 taken late (sum_later):
 * copied at once and hashed beside; the verdict fills the sum in and
 * remembers it (not with no_cache).  A base written before the verdict is
 * a verdict of 1, with a word, and nothing remembered. */
static void test_sum_beside(void **state) {
        assert_int_equal(cache_clean(), 0);
        _cleanup_free_ char *raw = tpath("b.img"), *out = tpath("beside.img");
        write_bytes(raw, image, IMG_SIZE);
        struct outcome o = extract_late(raw, out, true, true, true, NULL);
        assert_int_equal(o.r, 0);
        assert_true(o.pending);
        assert_true(o.sum_pending);
        assert_int_equal(o.verdict, 0);
        assert_int_equal(o.errors, 0);
        assert_false(o.info.sum_pending);
        assert_string_equal(o.info.sha256, image_sha);
        assert_string_equal(o.info.format, "raw");
        assert_int_equal(o.info.bytes, IMG_SIZE);
        assert_false(o.info.from_cache);
        assert_non_null(strstr(o.err, "said while the check runs")); /* nothing held back */
        assert_image_equal(out);
        assert_sparse(out);
        assert_null(sum_file());

        o = extract_late(raw, out, false, true, true, NULL);
        assert_true(o.sum_pending);
        assert_int_equal(o.verdict, 0);
        _cleanup_free_ char *sum = sum_file();
        assert_non_null(sum);
        size_t n;
        _cleanup_free_ uint8_t *text = slurp(sum, &n);
        assert_non_null(memmem(text, n, image_sha, 64));
        /* remembered now: checked against it, no longer computed */
        o = extract_late(raw, out, false, true, true, NULL);
        assert_true(o.pending);
        assert_false(o.sum_pending);
        assert_int_equal(o.verdict, 0);
        /* without verify_later, sum_later means nothing */
        assert_int_equal(cache_clean(), 0);
        o = extract_late(raw, out, false, false, true, NULL);
        assert_false(o.info.sum_pending);
        assert_string_equal(o.info.sha256, image_sha);

        assert_int_equal(cache_clean(), 0);
        o = extract_late(raw, out, false, true, true, scribble);
        assert_int_equal(o.r, 0);
        assert_true(o.sum_pending);
        assert_int_equal(o.verdict, 1);
        assert_int_equal(o.errors, 0);
        assert_non_null(strstr(o.err, "changed or could not be read while it was copied"));
        assert_null(sum_file());

        /* a failed build drops a sum being computed: not remembered, not
         * waited for, nothing said */
        write_bytes(raw, image, IMG_SIZE);
        {
                int fd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0644);
                assert_true(fd >= 0);
                struct source_opts opts = {.quiet = true, .verify_later = true, .sum_later = true};
                struct source_info info;
                unsigned before = log_error_count();
                assert_int_equal(source_extract(raw, fd, &opts, &info), 0);
                assert_true(info.sum_pending);
                source_drop(&info);
                assert_null(info.check);
                assert_string_equal(info.sha256, "");
                assert_int_equal(source_verify(&info), 0); /* nothing left to say */
                assert_int_equal(log_error_count(), before);
                close(fd);
                assert_null(sum_file());
        }

        /* a deleted base's sum goes when another base's is written */
        _cleanup_free_ char *other = tpath("b2.img");
        write_bytes(raw, image, IMG_SIZE);
        write_bytes(other, image, IMG_SIZE);
        assert_int_equal(extract_late(raw, out, false, true, true, NULL).verdict, 0);
        assert_int_equal(extract_late(other, out, false, true, true, NULL).verdict, 0);
        assert_int_equal(count_sums(), 2);
        assert_int_equal(unlink(raw), 0);
        assert_int_equal(utimensat(AT_FDCWD, other, NULL, 0), 0); /* a new key: written again */
        assert_int_equal(extract_late(other, out, false, true, true, NULL).verdict, 0);
        _cleanup_free_ char *left = sum_file(); /* asserts there is one */
        _cleanup_free_ uint8_t *text2 = slurp(left, &n);
        assert_non_null(strstr((char *)text2, "/b2.img"));
        assert_int_equal(unlink(other), 0);
}

/* A bound smaller than the image keeps nothing; a bound that fits one
 * image evicts the older. */
static void test_cache_bound(void **state) {
        assert_int_equal(cache_clean(), 0);
        _cleanup_free_ char *gz = tpath("t.img.gz"), *out = tpath("out.img"), *ci = cached_image();
        setenv("DIMIMAGE_CACHE_MAX", "1M", 1);
        struct outcome o = extract(gz, out, false);
        assert_int_equal(o.r, 0);
        assert_int_equal(access(ci, F_OK), -1);

        setenv("DIMIMAGE_CACHE_MAX", "6M", 1);
        o = extract(gz, out, false);
        assert_int_equal(access(ci, F_OK), 0);
        /* a second, different image pushes the first out */
        _cleanup_free_ char *img2 = tpath("v.img"), *gz2 = tpath("v.img.gz");
        image[2 << 20] ^= 1;
        write_bytes(img2, image, IMG_SIZE);
        image[2 << 20] ^= 1;
        assert_int_equal(run(gz2, (const char *const[]){"gzip", "-c", "-1", img2, NULL}), 0);
        o = extract(gz2, out, false);
        assert_int_equal(o.r, 0);
        assert_int_equal(access(ci, F_OK), -1);
        unsetenv("DIMIMAGE_CACHE_MAX");
        assert_int_equal(cache_clean(), 0);
}

static void test_stream(void **state) {
        const char *names[] = {"t.img", "t.img.xz", "single.img.xz", "t.img.gz", "t.img.zst", "t.zip"};
        uint8_t *buf = xmalloc(IMG_SIZE + 1);
        for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
                _cleanup_free_ char *p = tpath(names[i]);
                struct source_stream *s;
                assert_int_equal(source_stream_open(p, &s), 0);
                size_t got = 0;
                long long k;
                /* odd-sized reads */
                while ((k = source_stream_read(s, buf + got, MIN((size_t)77777, IMG_SIZE + 1 - got))) > 0)
                        got += (size_t)k;
                assert_int_equal(k, 0);
                source_stream_close(s);
                assert_int_equal(got, IMG_SIZE);
                assert_memory_equal(buf, image, IMG_SIZE);
        }
        free(buf);
}

static void test_clone(void **state) {
        _cleanup_free_ char *raw = tpath("t.img"), *out = tpath("clone.img");
        int from = open(raw, O_RDONLY);
        int to = open(out, O_RDWR | O_CREAT | O_TRUNC, 0644);
        assert_true(from >= 0 && to >= 0);
        assert_int_equal(source_clone(from, to, IMG_SIZE, true), 0);
        close(from);
        close(to);
        assert_image_equal(out);
}

/* source_opts.tee: a second output written from the same buffers, for a
 * fleet's first host. */
static int extract_tee(const char *base, const char *out, const char *tee, bool no_cache, struct source_info *info) {
        int fd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0644);
        int tfd = open(tee, O_RDWR | O_CREAT | O_TRUNC, 0644);
        assert_true(fd >= 0 && tfd >= 0);
        struct source_opts opts = {.no_cache = no_cache, .quiet = true, .tee = true, .tee_fd = tfd};
        int r = source_extract(base, fd, &opts, info);
        close(fd);
        close(tfd);
        return r;
}

static void test_tee(void **state) {
        assert_int_equal(cache_clean(), 0);
        _cleanup_free_ char *out = tpath("out.img"), *tee = tpath("tee.img");
        static const char *const bases[] = {"t.img", "t.img.xz", "t.img.zst", "t.img.zst"};
        for (size_t i = 0; i < ARRAY_SIZE(bases); i++) {
                /* the .zst twice through the cache: a miss, then a hit */
                _cleanup_free_ char *base = tpath(bases[i]);
                struct source_info info;
                assert_int_equal(extract_tee(base, out, tee, i < 2, &info), 0);
                assert_string_equal(info.sha256, image_sha);
                assert_int_equal(info.from_cache, i == 3);
                assert_image_equal(out);
                assert_sparse(out);
                assert_image_equal(tee);
                assert_sparse(tee);
        }
        /* a damaged cache entry: both outputs emptied and decoded again */
        _cleanup_free_ char *ci = cached_image(), *zst = tpath("t.img.zst");
        int fd = open(ci, O_WRONLY);
        assert_true(fd >= 0);
        assert_int_equal(pwrite_full(fd, "XXXX", 4, (9 << 20) + 4321), 0);
        close(fd);
        struct source_info info;
        assert_int_equal(extract_tee(zst, out, tee, false, &info), 0);
        assert_false(info.from_cache);
        assert_image_equal(out);
        assert_image_equal(tee);
        assert_int_equal(cache_clean(), 0);

        /* a tee that cannot be written is named in the one error */
        _cleanup_free_ char *xz = tpath("t.img.xz");
        int ofd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0644);
        int tfd = open(tee, O_RDONLY);
        assert_true(ofd >= 0 && tfd >= 0);
        int saved = stderr_capture();
        unsigned before = log_error_count();
        struct source_opts opts = {.no_cache = true, .quiet = true, .tee = true, .tee_fd = tfd};
        int r = source_extract(xz, ofd, &opts, &info);
        char err[1024];
        stderr_restore(saved, err, sizeof(err));
        close(ofd);
        close(tfd);
        assert_int_equal(r, -EBADF);
        assert_int_equal(log_error_count() - before, 1);
        assert_non_null(strstr(err, "tee.img: cannot write"));
        (void)state;
}

int main(void) {
        log_level = LOG_NORMAL;
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_raw),
                cmocka_unit_test(test_xz),
                cmocka_unit_test(test_gzip),
                cmocka_unit_test(test_zstd),
                cmocka_unit_test(test_zip),
                cmocka_unit_test(test_magic_not_name),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_base_untouched),
                cmocka_unit_test(test_cache),
                cmocka_unit_test(test_cache_verify_later),
                cmocka_unit_test(test_remembered_sum),
                cmocka_unit_test(test_changed_while_read),
                cmocka_unit_test(test_sum_beside),
                cmocka_unit_test(test_cache_bound),
                cmocka_unit_test(test_stream),
                cmocka_unit_test(test_clone),
                cmocka_unit_test(test_tee),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
