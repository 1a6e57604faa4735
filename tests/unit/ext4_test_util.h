/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Helpers shared by test_ext4.c, test_ext4_refuse.c and test_ext4_flags.c:
 * filesystems made by mkfs.ext4 at OFF inside an image file, checked with
 * e2fsck -fn and read back with debugfs, an independent reader.  Static
 * functions in a header on purpose: each test is one translation unit and
 * uses a subset (hence "unused"). */
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ext4.h"
#include "test_util.h"
#include "util.h"

/* GCC 12 misreads the capture-by-out-pointer helpers below (cat, dstat) as
 * returning a local's address.  Pushed and popped, so that a test's own code
 * is still warned about unless its file says otherwise. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif

#define OFF 1048576ull
#define EPOCH 1700000000 /* 0x6553f100 */

static char tmp[256];

/* The group setup and teardown of the ext4 tests.  The scratch directory
 * is named after the test binary, so one kept by DIMIMAGE_KEEP_TMP says
 * whose it is. */
static __attribute__((unused)) int ext4_test_setup(void **state) {
        assert_int_equal(tu_mkdtemp(tmp, sizeof tmp, program_invocation_short_name), 0);
        /* The stamps the tests find in the images (0x6553f100 in debugfs'
         * stat), whenever they run. */
        char epoch[24];
        snprintf(epoch, sizeof epoch, "%d", EPOCH);
        setenv("SOURCE_DATE_EPOCH", epoch, 1);
        /* make_image's source tree has the modes the tests expect to find in
         * the image, whatever the caller's umask (077 would make them 0700). */
        umask(022);
        tu_path_with_sbin();
        return 0;
}

static __attribute__((unused)) int ext4_test_teardown(void **state) {
        tu_rm_rf(tmp);
        return 0;
}

/* Runs a command, stdout+stderr captured into *out (may be NULL). */
#define RUN(out, ...) tu_run_capture((const char *const[]){__VA_ARGS__, NULL}, (out))

static __attribute__((unused)) char *dev(const char *img) {
        return xasprintf("%s?offset=%llu", img, OFF);
}

static __attribute__((unused)) void write_host(const char *path, const char *content) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(content, f);
        fclose(f);
}

/* The host tree every test image starts from: /etc/hostname, /etc/small,
 * /etc/dir/f (caller frees the path). */
static __attribute__((unused)) char *tree_start(const char *name) {
        char *src = xasprintf("%s/%s.src", tmp, name);
        char *p;
        mkdir(src, 0755);
        p = xasprintf("%s/etc", src), mkdir(p, 0755), free(p);
        p = xasprintf("%s/etc/hostname", src), write_host(p, "raspberrypi\n"), free(p);
        p = xasprintf("%s/etc/small", src), write_host(p, "tiny\n"), free(p);
        p = xasprintf("%s/etc/dir", src), mkdir(p, 0755), free(p);
        p = xasprintf("%s/etc/dir/f", src), write_host(p, "in dir\n"), free(p);
        return src;
}

/* img made of src: a size_m MiB filesystem at OFF inside a file with 1 MiB
 * to spare after it; extra mkfs options in feat (-O list) may be NULL. */
static __attribute__((unused)) void mkfs_at(const char *img, const char *src, const char *feat, unsigned size_m) {
        int fd = open(img, O_CREAT | O_TRUNC | O_WRONLY, 0644);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t)((size_m + 2) * 1048576ull)), 0);
        close(fd);
        char *opt = xasprintf("offset=%llu,root_owner=0:0", OFF);
        char *sz = xasprintf("%uM", size_m);
        char *out = NULL;
        int rc = feat ? RUN(&out, "mkfs.ext4", "-q", "-F", "-O", feat, "-E", opt, "-d", src, img, sz)
                      : RUN(&out, "mkfs.ext4", "-q", "-F", "-E", opt, "-d", src, img, sz);
        if (rc != 0)
                fprintf(stderr, "mkfs: %s\n", out);
        assert_int_equal(rc, 0);
        free(out), free(opt), free(sz);
}

/* A populated filesystem of size_m MiB at OFF inside a file with 1 MiB to
 * spare after it; extra mkfs options in feat (-O list) may be NULL. */
static __attribute__((unused)) char *make_image(const char *name, const char *feat, unsigned size_m) {
        char *img = xasprintf("%s/%s.img", tmp, name);
        char *src = tree_start(name);
        char *p;
        p = xasprintf("%s/etc/emptydir", src), mkdir(p, 0700), free(p);
        p = xasprintf("%s/lnk", src), symlink("etc/hostname", p), free(p);
        p = xasprintf("%s/usr", src), mkdir(p, 0755), free(p);
        p = xasprintf("%s/usr/lib", src), mkdir(p, 0755), free(p);
        p = xasprintf("%s/usr/lib/os-release", src), write_host(p, "ID=debian\n"), free(p);
        p = xasprintf("%s/lib", src), symlink("usr/lib", p), free(p);
        mkfs_at(img, src, feat, size_m);
        free(src);
        return img;
}

static __attribute__((unused)) void fsck_ok(const char *img) {
        char *d = dev(img), *out = NULL;
        int rc = RUN(&out, "e2fsck", "-fn", d);
        if (rc != 0)
                fprintf(stderr, "e2fsck -fn %s: rc %d\n%s\n", d, rc, out);
        assert_int_equal(rc, 0);
        free(out), free(d);
}

static __attribute__((unused)) char *dbg(const char *img, const char *req) {
        char *d = dev(img), *out = NULL;
        RUN(&out, "debugfs", "-R", req, d);
        free(d);
        return out;
}

static __attribute__((unused)) char *dbg_w(const char *img, const char *req) {
        char *d = dev(img), *out = NULL;
        assert_int_equal(RUN(&out, "debugfs", "-w", "-R", req, d), 0);
        free(d);
        return out;
}

/* debugfs prints "debugfs 1.47.0 (...)" first on stderr; drop that line. */
static __attribute__((unused)) char *cat(const char *img, const char *path) {
        char *req = xasprintf("cat %s", path);
        char *out = dbg(img, req);
        free(req);
        char *nl = strchr(out, '\n');
        if (str_has_prefix(out, "debugfs ") && nl)
                memmove(out, nl + 1, strlen(nl + 1) + 1);
        return out;
}

struct dstat {
        unsigned ino, mode, uid, gid, flags;
        unsigned long long size;
        char text[4096];
};

static __attribute__((unused)) void dstat(const char *img, const char *path, struct dstat *s) {
        char *req = xasprintf("stat %s", path);
        char *out = dbg(img, req);
        memset(s, 0, sizeof *s);
        snprintf(s->text, sizeof s->text, "%s", out);
        const char *p;
        assert_non_null(p = strstr(out, "Inode: "));
        sscanf(p, "Inode: %u", &s->ino);
        assert_non_null(p = strstr(out, "Mode: "));
        sscanf(p, "Mode: %o", &s->mode);
        assert_non_null(p = strstr(out, "Flags: "));
        sscanf(p, "Flags: %x", &s->flags);
        assert_non_null(p = strstr(out, "User: "));
        sscanf(p, "User: %u", &s->uid);
        assert_non_null(p = strstr(out, "Group: "));
        sscanf(p, "Group: %u", &s->gid);
        assert_non_null(p = strstr(out, "Size: "));
        sscanf(p, "Size: %llu", &s->size);
        free(out), free(req);
}

static __attribute__((unused)) struct ext4_fs *open_rw(const char *img, unsigned size_m) {
        struct ext4_fs *fs = NULL;
        assert_int_equal(ext4_open(img, OFF, size_m * 1048576ull, &fs), 0);
        return fs;
}

static __attribute__((unused)) void cat_equals(const char *img, const char *path, const void *data, size_t len) {
        char *out = cat(img, path);
        struct dstat s;
        dstat(img, path, &s);
        assert_int_equal(s.size, len);
        /* debugfs output is text-safe only for text; compare via our reader
         * for binary (below) and byte-exact here when printable. */
        if (len < 4096 && memchr(data, 0, len) == NULL)
                assert_memory_equal(out, data, len);
        free(out);
}

static __attribute__((unused)) void read_equals(const char *img, unsigned size_m, const char *path, const void *data, size_t len) {
        struct ext4_fs *fs;
        assert_int_equal(ext4_open_ro(img, OFF, size_m * 1048576ull, &fs), 0);
        uint8_t *got;
        size_t n;
        assert_int_equal(ext4_read(fs, path, 64u << 20, &got, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(got, data, len);
        free(got);
        assert_int_equal(ext4_close(fs), 0);
}

/* dump a file with debugfs to host and compare bytes: independent reader */
static __attribute__((unused)) void dump_equals(const char *img, const char *path, const void *data, size_t len) {
        char *host = xasprintf("%s/dump.bin", tmp);
        unlink(host);
        char *req = xasprintf("dump %s \"%s\"", path, host);
        free(dbg(img, req));
        uint8_t *got;
        size_t n;
        assert_int_equal(read_file(host, 64u << 20, &got, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(got, data, len);
        free(got), free(req), free(host);
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
