/* SPDX-License-Identifier: GPL-3.0-or-later */
/* ext4 module against real filesystems made by mkfs.ext4 and checked by
 * e2fsck -fn and debugfs (nothing here is mocked): what it writes, replaces,
 * links and grows.  What it refuses, and how it fails, is test_ext4_refuse.c. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ext4.h"
#include "ext4io.h"
#include "log.h"
#include "util.h"
#include "ext4_test_util.h"

static void test_write_new_and_read(void **state) {
        (void)state;
        char *img = make_image("new", NULL, 64);
        struct ext4_fs *fs = open_rw(img, 64);
        assert_int_equal(ext4_write(fs, "/etc/new.conf", "hello\n", 6, 0640, 100000, 100001), 0);
        assert_int_equal(ext4_write(fs, "/etc/empty", "", 0, 0600, 0, 0), 0);
        uint8_t *big = tu_pattern(3 * 1048576 + 123, 1);
        assert_int_equal(ext4_write(fs, "/big.bin", big, 3 * 1048576 + 123, 0644, 0, 0), 0);
        struct ext4_stat st;
        assert_int_equal(ext4_lstat(fs, "/etc/new.conf", &st), 0);
        assert_int_equal(st.mode, 0100640);
        assert_int_equal(st.uid, 100000);
        assert_int_equal(st.gid, 100001);
        assert_int_equal(ext4_lstat(fs, "/etc/missing", &st), -ENOENT);
        assert_int_equal(ext4_lstat(fs, "/nodir/missing", &st), -ENOENT);
        assert_int_equal(ext4_close(fs), 0);
        fsck_ok(img);

        struct dstat s;
        dstat(img, "/etc/new.conf", &s);
        assert_int_equal(s.mode, 0640);
        assert_int_equal(s.uid, 100000);
        assert_int_equal(s.gid, 100001);
        assert_non_null(strstr(s.text, "ctime: 0x6553f100:00000000"));
        assert_non_null(strstr(s.text, "mtime: 0x6553f100:00000000"));
        assert_non_null(strstr(s.text, "crtime: 0x6553f100:00000000"));
        assert_true(s.flags & 0x80000); /* extents */
        cat_equals(img, "/etc/new.conf", "hello\n", 6);
        cat_equals(img, "/etc/empty", "", 0);
        dump_equals(img, "/big.bin", big, 3 * 1048576 + 123);
        read_equals(img, 64, "/big.bin", big, 3 * 1048576 + 123);
        /* the parent directory was modified: stamped too */
        dstat(img, "/etc", &s);
        assert_non_null(strstr(s.text, "mtime: 0x6553f100:00000000"));
        free(big), free(img);
}

/* A secret goes in as zeros through libext2fs and its bytes after
 * (put_secret): what is read back is the secret, whole blocks and a part
 * of one, with extents and with indirect maps, replacing a file too. */
static void write_secret_on(const char *name, const char *features) {
        char *img = make_image(name, features, 64);
        struct ext4_fs *fs = open_rw(img, 64);
        size_t n = 3 * 4096 + 1234;
        uint8_t *secret = tu_pattern(n, 7);
        assert_int_equal(ext4_write(fs, "/etc/app.env", "OLD=1\n", 6, 0644, 0, 0), 0);
        assert_int_equal(ext4_write_secret(fs, "/etc/app.env", secret, n, 0600, 0, 0), 0);
        assert_int_equal(ext4_write_secret(fs, "/etc/one", "k", 1, 0600, 0, 0), 0);
        assert_int_equal(ext4_write_secret(fs, "/etc/none", "", 0, 0600, 0, 0), 0);
        assert_int_equal(ext4_close(fs), 0);
        fsck_ok(img);
        dump_equals(img, "/etc/app.env", secret, n);
        read_equals(img, 64, "/etc/app.env", secret, n);
        cat_equals(img, "/etc/one", "k", 1);
        cat_equals(img, "/etc/none", "", 0);
        struct dstat st;
        dstat(img, "/etc/app.env", &st);
        assert_int_equal(st.mode, 0600);
        free(secret), free(img);
}

static void test_write_secret(void **state) {
        (void)state;
        write_secret_on("secret", NULL);
        write_secret_on("secret3", "^extents,^64bit,^flex_bg,^metadata_csum");
}

static void test_write_from_streams(void **state) {
        (void)state;
        char *img = make_image("from", NULL, 64);
        char *host = xasprintf("%s/host.bin", tmp);
        size_t n = 5 * 1048576 + 7;
        uint8_t *data = tu_pattern(n, 2);
        int fd = open(host, O_CREAT | O_TRUNC | O_WRONLY, 0644);
        assert_int_equal(write_full(fd, data, n), 0);
        close(fd);
        struct ext4_fs *fs = open_rw(img, 64);
        assert_int_equal(ext4_write_from(fs, "/usr/lib/blob", host, 0755, 0, 0), 0);
        unsigned before = log_error_count();
        assert_int_equal(ext4_write_from(fs, "/usr/lib/nope", "/nonexistent/file", 0644, 0, 0), -ENOENT);
        assert_int_equal(log_error_count(), before + 1);
        assert_int_equal(ext4_close(fs), 0);
        fsck_ok(img);
        dump_equals(img, "/usr/lib/blob", data, n);
        free(data), free(host), free(img);
}

/* A replaced file is a new inode, as install(1) makes it: its xattrs (a
 * security.capability) do not carry over to what we write, and another
 * hard link to it keeps the old content. */
static void test_replace_new_inode(void **state) {
        (void)state;
        char *img = make_image("repl", NULL, 64);
        free(dbg_w(img, "ea_set /etc/hostname security.capability value42"));
        free(dbg_w(img, "ln /etc/hostname /etc/hostname.link"));
        free(dbg_w(img, "sif /etc/hostname links_count 2"));
        fsck_ok(img);
        struct dstat before, after, link;
        dstat(img, "/etc/hostname", &before);
        struct ext4_fs *fs = open_rw(img, 64);
        uint8_t *big = tu_pattern(200000, 3);
        assert_int_equal(ext4_write(fs, "/etc/hostname", big, 200000, 0600, 1000, 1000), 0);
        assert_int_equal(ext4_write(fs, "/etc/hostname", "pi-app\n", 7, 0644, 0, 0), 0);
        assert_int_equal(ext4_close(fs), 0);
        fsck_ok(img);
        dstat(img, "/etc/hostname", &after);
        assert_int_not_equal(after.ino, before.ino);
        assert_int_equal(after.mode, 0644);
        cat_equals(img, "/etc/hostname", "pi-app\n", 7);
        char *ea = dbg(img, "ea_list /etc/hostname");
        assert_null(strstr(ea, "capability"));
        dstat(img, "/etc/hostname.link", &link);
        assert_int_equal(link.ino, before.ino);
        assert_non_null(strstr(link.text, "Links: 1"));
        ea = (free(ea), dbg(img, "ea_get /etc/hostname.link security.capability"));
        assert_non_null(strstr(ea, "value42"));
        free(ea), free(big), free(img);
}

static void test_replace_other_types(void **state) {
        (void)state;
        char *img = make_image("types", NULL, 64);
        struct ext4_fs *fs = open_rw(img, 64);
        /* symlink -> file, empty dir -> file, non-empty dir refused */
        assert_int_equal(ext4_write(fs, "/lnk", "was a link\n", 11, 0644, 0, 0), 0);
        assert_int_equal(ext4_write(fs, "/etc/emptydir", "was a dir\n", 10, 0644, 0, 0), 0);
        unsigned before = log_error_count();
        assert_int_equal(ext4_write(fs, "/etc/dir", "x", 1, 0644, 0, 0), -ENOTEMPTY);
        assert_int_equal(log_error_count(), before + 1);
        /* file -> symlink, dir -> symlink */
        assert_int_equal(ext4_symlink(fs, "/etc/small", "hostname", 0, 0), 0);
        assert_int_equal(ext4_write(fs, "/etc/dir2", "x", 1, 0644, 0, 0), 0);
        assert_int_equal(ext4_close(fs), 0);
        fsck_ok(img);
        struct dstat s;
        dstat(img, "/lnk", &s);
        assert_int_equal(s.mode, 0644);
        assert_non_null(strstr(s.text, "Type: regular"));
        cat_equals(img, "/etc/emptydir", "was a dir\n", 10);
        dstat(img, "/etc/small", &s);
        assert_non_null(strstr(s.text, "Fast link dest: \"hostname\""));
        /* /etc link count: emptydir gone, dir remains */
        dstat(img, "/etc", &s);
        assert_non_null(strstr(s.text, "Links: 3"));
        free(img);
}

static void test_mkdir_p(void **state) {
        (void)state;
        char *img = make_image("mkdir", NULL, 64);
        struct ext4_fs *fs = open_rw(img, 64);
        assert_int_equal(ext4_mkdir_p(fs, "/opt/dimdim-health/deploy/config", 0750, 70000, 70001), 0);
        /* existing ones keep mode/owner */
        assert_int_equal(ext4_mkdir_p(fs, "/etc/dir/sub", 0700, 5, 5), 0);
        /* through the /lib -> usr/lib symlink */
        assert_int_equal(ext4_mkdir_p(fs, "/lib/systemd/system", 0755, 0, 0), 0);
        assert_int_equal(ext4_write(fs, "/lib/systemd/system/x.service", "[Unit]\n", 7, 0644, 0, 0), 0);
        unsigned before = log_error_count();
        /* a file in the base where a directory goes: bad input data (65) */
        assert_int_equal(ext4_mkdir_p(fs, "/etc/hostname/x", 0755, 0, 0), -EINVAL);
        assert_int_equal(log_error_count(), before + 1);
        assert_int_equal(ext4_close(fs), 0);
        fsck_ok(img);
        struct dstat s;
        dstat(img, "/opt/dimdim-health/deploy/config", &s);
        assert_int_equal(s.mode, 0750);
        assert_int_equal(s.uid, 70000);
        assert_int_equal(s.gid, 70001);
        assert_non_null(strstr(s.text, "Type: directory"));
        dstat(img, "/etc/dir", &s);
        assert_int_equal(s.mode, 0755);
        /* mkfs -d gave it our own uid (0 only when the tests run as root) */
        assert_int_equal(s.uid, getuid());
        dstat(img, "/etc/dir/sub", &s);
        assert_int_equal(s.mode, 0700);
        cat_equals(img, "/usr/lib/systemd/system/x.service", "[Unit]\n", 7);
        dstat(img, "/etc", &s);
        assert_non_null(strstr(s.text, "Links: 4"));
        free(img);
}

static void test_spelling(void **state) {
        (void)state;
        char *img = make_image("spelling", NULL, 64);
        struct ext4_fs *fs = open_rw(img, 64);
        assert_int_equal(ext4_mkdir_p(fs, "/usr/share/zoneinfo/Europe", 0755, 0, 0), 0);
        assert_int_equal(ext4_write(fs, "/usr/share/zoneinfo/Europe/Berlin", "TZif", 4, 0644, 0, 0), 0);
        assert_int_equal(ext4_write(fs, "/etc/Twin", "a", 1, 0644, 0, 0), 0);
        assert_int_equal(ext4_write(fs, "/etc/TWIN", "b", 1, 0644, 0, 0), 0);
        char *s = ext4_spelling(fs, "/usr/share/zoneinfo/europe/BERLIN");
        assert_string_equal(s, "/usr/share/zoneinfo/Europe/Berlin");
        free(s);
        /* the name itself, though another case of it is there too */
        s = ext4_spelling(fs, "/etc/TWIN");
        assert_string_equal(s, "/etc/TWIN");
        free(s);
        /* two other spellings: no guess */
        assert_null(ext4_spelling(fs, "/etc/twin"));
        assert_null(ext4_spelling(fs, "/usr/share/zoneinfo/Europe/Paris"));
        /* through a file, or a symlink (/lib -> usr/lib), nothing is found */
        assert_null(ext4_spelling(fs, "/etc/hostname/x"));
        assert_null(ext4_spelling(fs, "/lib/x"));
        assert_null(ext4_spelling(fs, "relative"));
        assert_int_equal(ext4_close(fs), 0);
        free(img);
}

/* A directory's names, sorted, without "." and ".."; quiet refusals for
 * what is no directory, missing, or more than asked for. */
static void test_list(void **state) {
        (void)state;
        char *img = make_image("list", NULL, 64);
        struct ext4_fs *fs = open_rw(img, 64);
        char **v = NULL;
        size_t n = 0;
        assert_int_equal(ext4_list(fs, "/etc", 16, &v, &n), 0);
        static const char *const want[] = {"dir", "emptydir", "hostname", "small"};
        assert_int_equal(n, ARRAY_SIZE(want));
        for (size_t i = 0; i < n; i++)
                assert_string_equal(v[i], want[i]);
        strv_clear(&v, &n);
        assert_int_equal(ext4_list(fs, "/etc/emptydir", 16, &v, &n), 0);
        assert_int_equal(n, 0);
        unsigned errors = log_error_count();
        assert_int_equal(ext4_list(fs, "/etc/hostname", 16, &v, &n), -ENOTDIR);
        assert_int_equal(ext4_list(fs, "/nowhere", 16, &v, &n), -ENOENT);
        assert_int_equal(ext4_list(fs, "/etc", 3, &v, &n), -E2BIG);
        assert_int_equal(ext4_list(fs, "/lib", 16, &v, &n), -ENOTDIR); /* a symlink, not followed */
        assert_null(v);
        assert_int_equal(n, 0);
        assert_int_equal(log_error_count(), errors);
        assert_int_equal(ext4_close(fs), 0);
        free(img);
}

static void test_symlinks(void **state) {
        (void)state;
        char *img = make_image("sym", NULL, 64);
        char longt[201];
        memset(longt, 'a', 200);
        longt[200] = 0;
        memcpy(longt, "/very/long/", 11);
        struct ext4_fs *fs = open_rw(img, 64);
        assert_int_equal(ext4_symlink(fs, "/etc/short", "/lib/systemd/system/dimdim.service", 0, 0), 0);
        assert_int_equal(ext4_symlink(fs, "/etc/long", longt, 1000, 1001), 0);
        /* replacing a link with a link */
        assert_int_equal(ext4_symlink(fs, "/lnk", "usr/lib/os-release", 0, 0), 0);
        char *t;
        assert_int_equal(ext4_readlink(fs, "/etc/long", &t), 0);
        assert_string_equal(t, longt);
        free(t);
        assert_int_equal(ext4_readlink(fs, "/etc/short", &t), 0);
        assert_string_equal(t, "/lib/systemd/system/dimdim.service");
        free(t);
        assert_int_equal(ext4_close(fs), 0);
        fsck_ok(img);
        struct dstat s;
        dstat(img, "/etc/short", &s);
        assert_non_null(strstr(s.text, "Fast link dest: \"/lib/systemd/system/dimdim.service\""));
        dstat(img, "/etc/long", &s);
        assert_int_equal(s.size, 200);
        assert_int_equal(s.uid, 1000);
        assert_int_equal(s.gid, 1001);
        assert_int_equal(s.mode, 0777);
        char *out = cat(img, "/etc/long");
        assert_memory_equal(out, longt, 200);
        free(out);
        /* read follows nothing; read_follow resolves inside the image */
        assert_int_equal(ext4_open_ro(img, OFF, 64u << 20, &fs), 0);
        uint8_t *d;
        size_t n;
        assert_int_equal(ext4_read(fs, "/lnk", 100, &d, &n), -EINVAL);
        assert_int_equal(ext4_read_follow(fs, "/lnk", 100, &d, &n), 0);
        assert_int_equal(n, 10);
        assert_memory_equal(d, "ID=debian\n", 10);
        free(d);
        assert_int_equal(ext4_read(fs, "/lib/os-release", 100, &d, &n), 0); /* leading link followed */
        free(d);
        assert_int_equal(ext4_read(fs, "/etc", 100, &d, &n), -EISDIR);
        assert_int_equal(ext4_read(fs, "/etc/hostname", 3, &d, &n), -EFBIG);
        assert_int_equal(ext4_close(fs), 0);
        free(img);
}

/* A path behind a file or a symlink loop is unreachable: lstat and unlink
 * say so as lstat(2) does, without logging (apply.c probes base files this
 * way and goes on when they are absent; an error line would stand behind a
 * build that succeeds).  Writing there still fails with one line. */
static void test_unreachable_quiet(void **state) {
        (void)state;
        char *img = make_image("unreach", NULL, 16);
        free(dbg_w(img, "symlink /loop /loop2"));
        free(dbg_w(img, "symlink /loop2 /loop"));
        free(dbg_w(img, "symlink /dangling /nowhere/at/all"));
        struct ext4_fs *fs = open_rw(img, 16);
        struct ext4_stat st;
        struct tu_capture cap;
        unsigned errors;
        tu_capture_begin(&cap);
        assert_int_equal(ext4_lstat(fs, "/etc/hostname/x", &st), -ENOTDIR);
        assert_int_equal(ext4_lstat(fs, "/etc/hostname/x/y", &st), -ENOTDIR);
        assert_int_equal(ext4_lstat(fs, "/loop/x", &st), -ELOOP);
        assert_int_equal(ext4_lstat(fs, "/nowhere/x", &st), -ENOENT);
        assert_int_equal(ext4_unlink(fs, "/etc/hostname/x"), -ENOTDIR);
        assert_int_equal(ext4_unlink(fs, "/loop/x"), -ELOOP);
        free(tu_capture_end(&cap, &errors));
        assert_int_equal(errors, 0);
        tu_capture_begin(&cap);
        assert_int_equal(ext4_write(fs, "/etc/hostname/x", "x", 1, 0644, 0, 0), -EINVAL);
        free(tu_capture_end(&cap, &errors));
        assert_int_equal(errors, 1);
        tu_capture_begin(&cap);
        assert_int_equal(ext4_mkdir_p(fs, "/loop/x", 0755, 0, 0), -EINVAL);
        free(tu_capture_end(&cap, &errors));
        assert_int_equal(errors, 1);
        /* a symlink to nothing is named as such; a plain missing directory
         * is not one */
        tu_capture_begin(&cap);
        assert_int_equal(ext4_write(fs, "/dangling/x", "x", 1, 0644, 0, 0), -EINVAL);
        char *msg = tu_capture_end(&cap, &errors);
        assert_int_equal(errors, 1);
        assert_non_null(strstr(msg, "/dangling is a symlink to nothing in the base"));
        free(msg);
        uint8_t *d;
        size_t n;
        tu_capture_begin(&cap);
        assert_int_equal(ext4_read(fs, "/nowhere/x", 10, &d, &n), -ENOENT);
        msg = tu_capture_end(&cap, &errors);
        assert_int_equal(errors, 1);
        assert_null(strstr(msg, "symlink to nothing"));
        free(msg);
        assert_int_equal(ext4_close(fs), 0);
        fsck_ok(img);
        free(img);
}

static void test_unlink_frees(void **state) {
        (void)state;
        char *img = make_image("unlink", NULL, 64);
        struct ext4_fs *fs = open_rw(img, 64);
        uint64_t free0 = ext4_free_bytes(fs);
        uint8_t *big = tu_pattern(1 << 20, 4);
        assert_int_equal(ext4_write(fs, "/etc/big", big, 1 << 20, 0644, 0, 0), 0);
        assert_true(ext4_free_bytes(fs) <= free0 - (1 << 20));
        assert_int_equal(ext4_unlink(fs, "/etc/big"), 0);
        assert_int_equal(ext4_free_bytes(fs), free0);
        assert_int_equal(ext4_unlink(fs, "/etc/big"), -ENOENT);
        assert_int_equal(ext4_unlink(fs, "/lnk"), 0);
        assert_int_equal(ext4_unlink(fs, "/etc/emptydir"), 0);
        unsigned before = log_error_count();
        assert_int_equal(ext4_unlink(fs, "/etc/dir"), -ENOTEMPTY);
        assert_int_equal(log_error_count(), before + 1);
        assert_int_equal(ext4_unlink(fs, "/etc/dir/f"), 0);
        assert_int_equal(ext4_unlink(fs, "/etc/dir"), 0);
        assert_int_equal(ext4_close(fs), 0);
        fsck_ok(img);
        char *out = dbg(img, "ls -l /etc");
        assert_null(strstr(out, "big"));
        assert_null(strstr(out, "emptydir"));
        free(out);
        struct dstat s;
        dstat(img, "/etc", &s);
        assert_non_null(strstr(s.text, "Links: 2"));
        /* free counts in the superblock agree with the bitmaps (e2fsck -fn
         * above) and with what we saw */
        out = dbg(img, "stats");
        assert_non_null(strstr(out, "Free blocks:"));
        free(out), free(big), free(img);
}

/* Free space in holes: up to n 4 KiB files in /f (fewer when it fills
 * up), every other one removed again. */
static void fragment(struct ext4_fs *fs, int n) {
        assert_int_equal(ext4_mkdir_p(fs, "/f", 0755, 0, 0), 0);
        char p[64];
        uint8_t blk[4096];
        memset(blk, 0x5a, sizeof blk);
        for (int i = 0; i < n; i++) {
                snprintf(p, sizeof p, "/f/%d", i);
                int r = ext4_write(fs, p, blk, sizeof blk, 0644, 0, 0);
                if (r == -ENOROOM)
                        break;
                assert_int_equal(r, 0);
        }
        for (int i = 0; i < n; i += 2) {
                snprintf(p, sizeof p, "/f/%d", i);
                (void)ext4_unlink(fs, p);
        }
}

/* A file whose extent tree has index blocks (free space fragmented on
 * purpose), replaced in place and then unlinked: all blocks come back. */
static void test_fragmented_extent_tree(void **state) {
        (void)state;
        char *img = make_image("frag", "^has_journal", 32);
        struct ext4_fs *fs = open_rw(img, 32);
        fragment(fs, 3000);
        uint64_t free0 = ext4_free_bytes(fs);
        size_t n = 2u << 20;
        uint8_t *big = tu_pattern(n, 9);
        assert_int_equal(ext4_write(fs, "/frag", big, n, 0644, 0, 0), 0);
        /* what the build's room check counts covers the tree blocks too */
        assert_true(free0 - ext4_free_bytes(fs) <= ext4_cost(fs, n));
        assert_true(free0 - ext4_free_bytes(fs) > n);
        assert_int_equal(ext4_close(fs), 0);
        fsck_ok(img);
        char *out = dbg(img, "ex /frag");
        assert_non_null(strstr(out, "Level Entries"));
        assert_non_null(strstr(out, "\n 1/ ")); /* index blocks below the in-inode root */
        free(out);
        dump_equals(img, "/frag", big, n);
        fs = open_rw(img, 32);
        assert_int_equal(ext4_write(fs, "/frag", "small\n", 6, 0644, 0, 0), 0);
        assert_int_equal(ext4_free_bytes(fs), free0 - ext4_block_size(fs));
        assert_int_equal(ext4_write(fs, "/frag", big, n, 0644, 0, 0), 0);
        assert_int_equal(ext4_unlink(fs, "/frag"), 0);
        assert_int_equal(ext4_free_bytes(fs), free0);
        assert_int_equal(ext4_close(fs), 0);
        fsck_ok(img);
        free(big), free(img);
}

/* ext4_map: the spans of a fragmented file are where its bytes lie in the
 * image; rewritten there behind libext2fs's back, the file reads back so
 * and the filesystem stays clean.  Inline data, bytes past the end and
 * too few spans are refused. */
static void test_map(void **state) {
        (void)state;
        char *img = make_image("map", "^has_journal", 32);
        struct ext4_fs *fs = open_rw(img, 32);
        fragment(fs, 64);
        size_t n = 40000;
        uint8_t *data = tu_pattern(n, 4);
        assert_int_equal(ext4_write(fs, "/frag", data, n, 0644, 0, 0), 0);
        struct ext4_span v[64];
        size_t nv = 0;
        uint64_t off = 1000, len = n - 2000;
        assert_int_equal(ext4_map(fs, "/frag", off, len, v, 64, &nv), 0);
        assert_true(nv > 1); /* the holes left above split it */
        assert_int_equal(ext4_map(fs, "/frag", off, len, v, 1, &nv), -E2BIG);
        assert_int_equal(ext4_map(fs, "/frag", n - 10, 11, v, 64, &nv), -EINVAL);
        assert_int_equal(ext4_map(fs, "/f", 0, 1, v, 64, &nv), -EINVAL);
        assert_int_equal(ext4_map(fs, "/frag", off, len, v, 64, &nv), 0);
        assert_int_equal(ext4_close(fs), 0);

        int fd = open(img, O_RDWR | O_CLOEXEC);
        assert_true(fd >= 0);
        uint64_t want = off, total = 0;
        uint8_t *got = xmalloc(n);
        for (size_t i = 0; i < nv; i++) {
                assert_int_equal(v[i].file_off, want);
                assert_int_equal(pread_full(fd, got, v[i].len, v[i].image_off), 0);
                assert_memory_equal(got, data + want, v[i].len);
                memset(data + want, 'P', v[i].len);
                assert_int_equal(pwrite(fd, data + want, v[i].len, (off_t)v[i].image_off), (ssize_t)v[i].len);
                want += v[i].len;
                total += v[i].len;
        }
        close(fd);
        assert_int_equal(total, len);
        fsck_ok(img);
        dump_equals(img, "/frag", data, n);
        free(got), free(data), free(img);

        img = make_image("map-inline", "inline_data", 64);
        assert_int_equal(ext4_open_ro(img, OFF, 64 * 1048576ull, &fs), 0);
        assert_int_equal(ext4_map(fs, "/etc/small", 0, 2, v, 64, &nv), -EINVAL);
        assert_int_equal(ext4_close(fs), 0);
        free(img);
}

static void test_chmod_chown(void **state) {
        (void)state;
        char *img = make_image("chmod", NULL, 64);
        struct ext4_fs *fs = open_rw(img, 64);
        assert_int_equal(ext4_chmod(fs, "/etc/hostname", 04711), 0);
        assert_int_equal(ext4_chown(fs, "/etc/dir", 123456, 654321), 0);
        assert_int_equal(ext4_close(fs), 0);
        fsck_ok(img);
        struct dstat s;
        dstat(img, "/etc/hostname", &s);
        assert_int_equal(s.mode, 04711);
        dstat(img, "/etc/dir", &s);
        assert_int_equal(s.uid, 123456);
        assert_int_equal(s.gid, 654321);
        assert_int_equal(s.mode, 0755);
        free(img);
}

/* dir_nlink: a directory with more than EXT2_LINK_MAX subdirectories counts
 * 1 link, and keeps 1 as more are made (ext2fs_mkdir alone counted on). */
static void test_mkdir_many_links(void **state) {
        (void)state;
        char *img = make_image("nlink", NULL, 16);
        struct ext4_fs *fs = open_rw(img, 16);
        assert_int_equal(ext4_mkdir_p(fs, "/many/a", 0755, 0, 0), 0);
        assert_int_equal(ext4_mkdir_p(fs, "/full/a", 0755, 0, 0), 0);
        assert_int_equal(ext4_close(fs), 0);
        free(dbg_w(img, "sif /many links_count 1"));
        free(dbg_w(img, "sif /full links_count 65000"));
        fs = open_rw(img, 16);
        assert_int_equal(ext4_mkdir_p(fs, "/many/b/c", 0755, 0, 0), 0);
        assert_int_equal(ext4_mkdir_p(fs, "/full/b", 0755, 0, 0), 0);
        assert_int_equal(ext4_close(fs), 0);
        struct dstat s;
        dstat(img, "/many", &s);
        assert_non_null(strstr(s.text, "Links: 1 "));
        dstat(img, "/many/b", &s); /* a fresh parent counts as usual */
        assert_non_null(strstr(s.text, "Links: 3 "));
        dstat(img, "/full", &s);
        assert_non_null(strstr(s.text, "Links: 1 "));
        /* without dir_nlink, 65000 is as many as there may be */
        char *img2 = make_image("nlink2", "^dir_nlink", 16);
        fs = open_rw(img2, 16);
        assert_int_equal(ext4_mkdir_p(fs, "/full/a", 0755, 0, 0), 0);
        assert_int_equal(ext4_close(fs), 0);
        free(dbg_w(img2, "sif /full links_count 65000"));
        fs = open_rw(img2, 16);
        unsigned before = log_error_count();
        assert_int_equal(ext4_mkdir_p(fs, "/full/b", 0755, 0, 0), -EMLINK);
        assert_int_equal(log_error_count(), before + 1);
        assert_int_equal(ext4_close(fs), 0);
        free(img), free(img2);
}

/* The same scenario on each supported feature set. */
static void scenario(const char *name, const char *feat) {
        char *img = make_image(name, feat, 64);
        uint8_t *big = tu_pattern(300000, 6);
        char longt[201];
        memset(longt, 'b', 200);
        longt[200] = 0;
        struct ext4_fs *fs = open_rw(img, 64);
        assert_int_equal(ext4_mkdir_p(fs, "/opt/a/b", 0755, 1000, 1000), 0);
        assert_int_equal(ext4_write(fs, "/opt/a/b/small", "small\n", 6, 0644, 0, 0), 0);
        assert_int_equal(ext4_write(fs, "/opt/a/b/big", big, 300000, 0600, 0, 0), 0);
        /* existing (inline on inline_data) files replaced with more and less */
        assert_int_equal(ext4_write(fs, "/etc/small", big, 300000, 0644, 0, 0), 0);
        assert_int_equal(ext4_write(fs, "/etc/hostname", "h\n", 2, 0644, 0, 0), 0);
        assert_int_equal(ext4_symlink(fs, "/opt/short", "a/b/small", 0, 0), 0);
        assert_int_equal(ext4_symlink(fs, "/opt/long", longt, 0, 0), 0);
        assert_int_equal(ext4_unlink(fs, "/etc/dir/f"), 0);
        assert_int_equal(ext4_unlink(fs, "/lnk"), 0);
        /* many entries in one new directory: forces directory growth */
        char name2[64];
        for (int i = 0; i < 300; i++) {
                snprintf(name2, sizeof name2, "/opt/a/many-file-with-a-long-name-%04d", i);
                assert_int_equal(ext4_write(fs, name2, name2, strlen(name2), 0644, 0, 0), 0);
        }
        assert_int_equal(ext4_close(fs), 0);
        fsck_ok(img);
        cat_equals(img, "/opt/a/b/small", "small\n", 6);
        dump_equals(img, "/opt/a/b/big", big, 300000);
        dump_equals(img, "/etc/small", big, 300000);
        cat_equals(img, "/etc/hostname", "h\n", 2);
        cat_equals(img, "/opt/a/many-file-with-a-long-name-0299", "/opt/a/many-file-with-a-long-name-0299", 38);
        read_equals(img, 64, "/etc/hostname", "h\n", 2);
        read_equals(img, 64, "/usr/lib/os-release", "ID=debian\n", 10);
        assert_int_equal(ext4_open_ro(img, OFF, 64u << 20, &fs), 0);
        char *t;
        assert_int_equal(ext4_readlink(fs, "/opt/long", &t), 0);
        assert_string_equal(t, longt);
        free(t);
        assert_int_equal(ext4_close(fs), 0);
        free(big), free(img);
}

static void test_feature_default(void **state) {
        (void)state;
        scenario("fdefault", NULL);
}
static void test_feature_no64bit(void **state) {
        (void)state;
        scenario("fno64", "^64bit");
}
static void test_feature_orphan_file(void **state) {
        (void)state;
        scenario("forphan", "orphan_file");
}
static void test_feature_csum_seed(void **state) {
        (void)state;
        scenario("fseed", "metadata_csum_seed");
}
static void test_feature_inline_data(void **state) {
        (void)state;
        /* precondition: mkfs stored the small files inline */
        char *img = make_image("finl-probe", "inline_data", 64);
        struct dstat s;
        dstat(img, "/etc/small", &s);
        assert_true(s.flags & 0x10000000);
        free(img);
        scenario("finline", "inline_data");
}
static void test_feature_ext3_style(void **state) {
        (void)state;
        scenario("fext3", "^extents,^64bit,^flex_bg,^metadata_csum");
}

static void test_htree_directory(void **state) {
        (void)state;
        char *img = make_image("htree", NULL, 64);
        struct ext4_fs *fs = open_rw(img, 64);
        assert_int_equal(ext4_mkdir_p(fs, "/big", 0755, 0, 0), 0);
        char p[128];
        for (int i = 0; i < 3000; i++) {
                snprintf(p, sizeof p, "/big/entry-%05d", i);
                assert_int_equal(ext4_write(fs, p, "", 0, 0644, 0, 0), 0);
        }
        assert_int_equal(ext4_close(fs), 0);
        fsck_ok(img);
        /* index it, as a kernel-made large directory would be */
        char *d = dev(img), *out = NULL;
        int rc = RUN(&out, "e2fsck", "-fyD", d);
        assert_true(rc == 0 || rc == 1);
        free(out);
        struct dstat s;
        dstat(img, "/big", &s);
        assert_true(s.flags & 0x1000); /* EXT2_INDEX_FL */
        fs = open_rw(img, 64);
        for (int i = 0; i < 3000; i++) {
                snprintf(p, sizeof p, "/big/added-with-longer-name-%05d", i);
                assert_int_equal(ext4_write(fs, p, p, strlen(p), 0644, 0, 0), 0);
        }
        for (int i = 0; i < 3000; i += 7) {
                snprintf(p, sizeof p, "/big/entry-%05d", i);
                assert_int_equal(ext4_unlink(fs, p), 0);
        }
        assert_int_equal(ext4_mkdir_p(fs, "/big/subdir", 0755, 0, 0), 0);
        assert_int_equal(ext4_symlink(fs, "/big/zlink", "entry-00001", 0, 0), 0);
        assert_int_equal(ext4_close(fs), 0);
        fsck_ok(img);
        /* lookups through the index find new entries */
        cat_equals(img, "/big/added-with-longer-name-02999", "/big/added-with-longer-name-02999", 33);
        struct dstat s2;
        dstat(img, "/big/subdir", &s2);
        assert_non_null(strstr(s2.text, "Type: directory"));
        free(d), free(img);
}

static void apply_ops(const char *img) {
        struct ext4_fs *fs = open_rw(img, 64);
        uint8_t *big = tu_pattern(777777, 7);
        assert_int_equal(ext4_mkdir_p(fs, "/opt/x/y", 0755, 0, 0), 0);
        assert_int_equal(ext4_write(fs, "/opt/x/y/big", big, 777777, 0644, 0, 0), 0);
        assert_int_equal(ext4_write(fs, "/etc/hostname", "repro\n", 6, 0644, 0, 0), 0);
        assert_int_equal(ext4_symlink(fs, "/opt/l", "x/y/big", 0, 0), 0);
        assert_int_equal(ext4_unlink(fs, "/etc/dir/f"), 0);
        assert_int_equal(ext4_chmod(fs, "/etc/small", 0600), 0);
        assert_int_equal(ext4_close(fs), 0);
        free(big);
}

static void test_reproducible(void **state) {
        (void)state;
        char *img = make_image("repro", NULL, 64);
        char *a = xasprintf("%s/repro-a.img", tmp), *b = xasprintf("%s/repro-b.img", tmp);
        assert_int_equal(RUN(NULL, "cp", "--sparse=always", img, a), 0);
        apply_ops(a);
        sleep(1); /* a wall-clock leak would now differ */
        assert_int_equal(RUN(NULL, "cp", "--sparse=always", img, b), 0);
        apply_ops(b);
        char *out = NULL;
        int rc = RUN(&out, "cmp", a, b);
        if (rc)
                fprintf(stderr, "%s\n", out);
        assert_int_equal(rc, 0);
        fsck_ok(a);
        char *sb = dbg(a, "stats");
        assert_non_null(strstr(sb, "Last write time:"));
        free(sb), free(out), free(a), free(b), free(img);
}

static void test_grow(void **state) {
        (void)state;
        char *img = make_image("grow", NULL, 32);
        /* room for 64 MiB after the offset */
        assert_int_equal(truncate(img, (off_t)(OFF + (64u << 20) + (1u << 20))), 0);
        assert_int_equal(ext4_grow(img, img, OFF, 64u << 20), 0);
        fsck_ok(img);
        char *d = dev(img), *out = NULL;
        /* tune2fs -l, not dumpe2fs -h: 1.47.2's cannot open "FILE?offset=N" */
        assert_int_equal(RUN(&out, "tune2fs", "-l", d), 0);
        const char *p = strstr(out, "Block count:");
        assert_non_null(p);
        unsigned long long blocks = strtoull(p + strlen("Block count:"), NULL, 10);
        p = strstr(out, "Block size:");
        unsigned long bs = strtoul(p + strlen("Block size:"), NULL, 10);
        assert_int_equal(blocks * bs, 64ull << 20);
        free(out);
        /* no-op at the same size; shrink refused */
        assert_int_equal(ext4_grow(img, img, OFF, 64u << 20), 0);
        assert_int_equal(ext4_grow(img, img, OFF, 16u << 20), -EINVAL);
        /* still writable and consistent */
        struct ext4_fs *fs = open_rw(img, 64);
        uint8_t *big = tu_pattern(40u << 20, 8);
        assert_int_equal(ext4_write(fs, "/fill", big, 40u << 20, 0644, 0, 0), 0);
        assert_int_equal(ext4_close(fs), 0);
        fsck_ok(img);
        free(big), free(d), free(img);
}

/* The io_manager on its own: offset and size options, libext2fs' byte and
 * block counts, zeros and EXT2_ET_SHORT_READ past the end of the file, and
 * no write past the partition's end. */
static void test_ext4io(void **state) {
        (void)state;
        _cleanup_free_ char *path = xasprintf("%s/io.bin", tmp);
        uint8_t file[16384];
        for (size_t i = 0; i < sizeof file; i++)
                file[i] = (uint8_t)(i * 7);
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(pwrite_full(fd, file, sizeof file, 0), 0);

        io_channel io;
        assert_int_equal(ext4io_manager->open(path, IO_FLAG_RW, &io), 0);
        assert_int_equal(io_channel_set_options(io, "offset=4096&size=8192"), 0);
        assert_int_equal(io_channel_set_options(io, "cache=off"), EXT2_ET_INVALID_ARGUMENT);
        assert_int_equal(io_channel_set_options(io, "offset=12x"), EXT2_ET_INVALID_ARGUMENT);
        assert_int_equal(io_channel_set_blksize(io, 1024), 0);
        uint8_t b[4096];
        assert_int_equal(io_channel_read_blk64(io, 1, 2, b), 0); /* blocks 1-2: bytes 5120.. */
        assert_memory_equal(b, file + 5120, 2048);
        assert_int_equal(io_channel_read_blk64(io, 2, -100, b), 0); /* -count: bytes */
        assert_memory_equal(b, file + 6144, 100);

        memset(b, 0xab, sizeof b);
        assert_int_equal(io_channel_write_blk64(io, 7, 1, b), 0); /* the partition's last KiB */
        assert_int_equal(io_channel_write_blk64(io, 7, 2, b), EXT2_ET_BAD_BLOCK_NUM);
        assert_int_equal(io_channel_write_blk64(io, 8, 1, b), EXT2_ET_BAD_BLOCK_NUM);
        assert_int_equal(io_channel_write_byte(io, 10, 3, "xyz"), 0);
        assert_int_equal(io_channel_write_byte(io, 8190, 3, "xyz"), EXT2_ET_BAD_BLOCK_NUM);

        /* past the end of the file: zeros and a short read */
        assert_int_equal(io_channel_set_options(io, "size=0"), 0);
        assert_int_equal(io_channel_read_blk64(io, 11, 2, b), EXT2_ET_SHORT_READ);
        assert_memory_equal(b, file + 4096 + 11 * 1024, 1024);
        for (size_t i = 1024; i < 2048; i++)
                assert_int_equal(b[i], 0);
        assert_int_equal(io_channel_flush(io), 0);
        assert_int_equal(io_channel_close(io), 0);

        uint8_t after[sizeof file];
        assert_int_equal(pread_full(fd, after, sizeof after, 0), 0);
        close(fd);
        memset(file + 4096 + 7 * 1024, 0xab, 1024);
        memcpy(file + 4096 + 10, "xyz", 3);
        assert_memory_equal(after, file, sizeof file);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ext4io),
                cmocka_unit_test(test_write_new_and_read),
                cmocka_unit_test(test_write_from_streams),
                cmocka_unit_test(test_write_secret),
                cmocka_unit_test(test_replace_new_inode),
                cmocka_unit_test(test_replace_other_types),
                cmocka_unit_test(test_spelling),
                cmocka_unit_test(test_list),
                cmocka_unit_test(test_mkdir_p),
                cmocka_unit_test(test_symlinks),
                cmocka_unit_test(test_unreachable_quiet),
                cmocka_unit_test(test_unlink_frees),
                cmocka_unit_test(test_fragmented_extent_tree),
                cmocka_unit_test(test_map),
                cmocka_unit_test(test_chmod_chown),
                cmocka_unit_test(test_mkdir_many_links),
                cmocka_unit_test(test_feature_default),
                cmocka_unit_test(test_feature_no64bit),
                cmocka_unit_test(test_feature_orphan_file),
                cmocka_unit_test(test_feature_csum_seed),
                cmocka_unit_test(test_feature_inline_data),
                cmocka_unit_test(test_feature_ext3_style),
                cmocka_unit_test(test_htree_directory),
                cmocka_unit_test(test_reproducible),
                cmocka_unit_test(test_grow),
        };
        return cmocka_run_group_tests(tests, ext4_test_setup, ext4_test_teardown);
}
