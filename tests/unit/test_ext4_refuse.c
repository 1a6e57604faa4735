/* SPDX-License-Identifier: GPL-3.0-or-later */
/* What the ext4 module refuses to edit, and how it fails, against real
 * filesystems made by mkfs.ext4 and checked by e2fsck -fn and debugfs: a
 * filesystem libext2fs cannot edit safely is refused before anything is
 * written (inspect still reads it); one that fills up, or is corrupt, fails
 * with one error line and nothing half-done behind it. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <cmocka.h>

#include "ext4.h"
#include "log.h"
#include "util.h"
#include "ext4_test_util.h"

/* GCC 12 takes test_corrupt's second search of debugfs' output, after the
 * first output was freed, for a use of the freed one. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif

static void test_refuse_needs_recovery(void **state) {
        (void)state;
        char *img = make_image("recover", NULL, 64);
        free(dbg_w(img, "feature needs_recovery"));
        struct ext4_fs *fs;
        unsigned before = log_error_count();
        assert_int_equal(ext4_open(img, OFF, 64u << 20, &fs), -EUCLEAN);
        assert_int_equal(log_error_count(), before + 1);
        free(img);
}

static void test_refuse_error_state(void **state) {
        (void)state;
        char *img = make_image("errfs", NULL, 64);
        free(dbg_w(img, "ssv state 2"));
        struct ext4_fs *fs;
        assert_int_equal(ext4_open(img, OFF, 64u << 20, &fs), -EUCLEAN);
        /* inspect still reads it */
        assert_int_equal(ext4_open_ro(img, OFF, 64u << 20, &fs), 0);
        assert_int_equal(ext4_close(fs), 0);
        free(img);
}

/* Without a journal, the kernel clears VALID_FS while mounted: the bitmaps
 * of a filesystem that was not unmounted may be stale. */
static void test_refuse_not_clean(void **state) {
        (void)state;
        char *img = make_image("notclean", "^has_journal", 64);
        free(dbg_w(img, "ssv state 0"));
        struct ext4_fs *fs;
        assert_int_equal(ext4_open(img, OFF, 64u << 20, &fs), -EUCLEAN);
        assert_int_equal(ext4_open_ro(img, OFF, 64u << 20, &fs), 0);
        assert_int_equal(ext4_close(fs), 0);
        free(img);
}

/* Quota files libext2fs would not update: refused for writing, read. */
static void test_refuse_quota(void **state) {
        (void)state;
        char *img = make_image("quota", "quota", 64);
        struct ext4_fs *fs;
        unsigned before = log_error_count();
        assert_int_equal(ext4_open(img, OFF, 64u << 20, &fs), -EOPNOTSUPP);
        assert_int_equal(log_error_count(), before + 1);
        assert_int_equal(ext4_open_ro(img, OFF, 64u << 20, &fs), 0);
        assert_int_equal(ext4_close(fs), 0);
        free(img);
}

static void test_refuse_bigger_than_partition(void **state) {
        (void)state;
        char *img = make_image("big", NULL, 64);
        struct ext4_fs *fs;
        assert_int_equal(ext4_open(img, OFF, 32u << 20, &fs), -EINVAL);
        assert_int_equal(ext4_open("/nonexistent.img", OFF, 0, &fs) < 0, 1);
        free(img);
}

static void test_refuse_unknown_incompat(void **state) {
        (void)state;
        char *img = make_image("casefold", "casefold", 64);
        struct ext4_fs *fs;
        assert_int_equal(ext4_open(img, OFF, 64u << 20, &fs), -EOPNOTSUPP);
        free(img);
}

/* e2fsprogs' writers refuse RO_COMPAT_READONLY, and the kernel mounts it
 * read-only: a build must not edit it. */
static void test_refuse_readonly(void **state) {
        (void)state;
        char *img = make_image("readonly", NULL, 16);
        free(dbg_w(img, "feature read-only"));
        struct ext4_fs *fs;
        assert_int_equal(ext4_open(img, OFF, 16u << 20, &fs), -EOPNOTSUPP);
        assert_int_equal(exit_code_for(-EOPNOTSUPP), EX_DATAERR);
        assert_int_equal(ext4_open_ro(img, OFF, 16u << 20, &fs), 0);
        assert_int_equal(ext4_close(fs), 0);
        free(img);
}

static void test_full_enospc(void **state) {
        (void)state;
        char *img = make_image("full", "^has_journal", 8);
        struct ext4_fs *fs = open_rw(img, 8);
        size_t n = 16u << 20;
        uint8_t *big = tu_pattern(n, 5);
        unsigned before = log_error_count();
        assert_int_equal(ext4_write(fs, "/etc/huge", big, n, 0644, 0, 0), -ENOROOM);
        assert_int_equal(log_error_count(), before + 1);
        struct ext4_stat st;
        assert_int_equal(ext4_lstat(fs, "/etc/huge", &st), -ENOENT);
        /* still usable after the failure */
        assert_int_equal(ext4_write(fs, "/etc/after", "ok\n", 3, 0644, 0, 0), 0);
        assert_int_equal(ext4_close(fs), 0);
        fsck_ok(img);
        cat_equals(img, "/etc/after", "ok\n", 3);
        free(big), free(img);
}

/* A directory whose name cannot be linked (its parent full, no block left
 * to grow it) leaves nothing behind: given the name, 1.47.0's ext2fs_mkdir
 * left its inode claiming the block it had freed. */
static void test_mkdir_full(void **state) {
        (void)state;
        char *img = make_image("mkfull", "^has_journal", 8);
        struct ext4_fs *fs = open_rw(img, 8);
        assert_int_equal(ext4_mkdir_p(fs, "/d", 0755, 0, 0), 0);
        assert_int_equal(ext4_mkdir_p(fs, "/g", 0755, 0, 0), 0);
        /* Every block used: 16 KiB files, then one block each. */
        uint8_t *data = tu_pattern(16384, 7);
        char p[300];
        int r, small = 0;
        for (int i = 0; (r = ext4_write(fs, (snprintf(p, sizeof p, "/g/%d", i), p), data, 16384, 0644, 0, 0)) == 0; i++)
                ;
        assert_int_equal(r, -ENOROOM);
        while ((r = ext4_write(fs, (snprintf(p, sizeof p, "/g/s%d", small), p), data, 1024, 0644, 0, 0)) == 0)
                small++;
        assert_int_equal(r, -ENOROOM);
        assert_true(small > 0);
        /* /d's blocks full of long names (empty files need no block). */
        char name[201];
        memset(name, 'x', 200), name[200] = 0;
        for (int i = 0; (r = ext4_write(fs, (snprintf(p, sizeof p, "/d/%03d%s", i, name), p), "", 0, 0644, 0, 0)) == 0;
             i++)
                assert_true(i < 1000);
        assert_int_equal(r, -ENOROOM);
        /* One block free, outside /d: the new directory takes it, and then
         * its name has nowhere to go. */
        assert_int_equal(ext4_unlink(fs, "/g/s0"), 0);
        unsigned before = log_error_count();
        assert_int_equal(ext4_mkdir_p(fs, (snprintf(p, sizeof p, "/d/new%s", name), p), 0755, 0, 0), -ENOROOM);
        assert_int_equal(log_error_count(), before + 1);
        assert_int_equal(ext4_close(fs), 0);
        fsck_ok(img);
        free(data), free(img);
}

static void test_corrupt(void **state) {
        (void)state;
        /* garbage superblock: clean error */
        char *img = make_image("corrupt", "^has_journal", 16);
        int fd = open(img, O_RDWR);
        uint8_t junk[4096];
        memset(junk, 0xA5, sizeof junk);
        assert_int_equal(pwrite_full(fd, junk, 1024, OFF + 1024), 0);
        close(fd);
        struct ext4_fs *fs;
        assert_true(ext4_open(img, OFF, 16u << 20, &fs) < 0);
        free(img);

        /* garbage over the inode table: operations fail, nothing crashes */
        img = make_image("corrupt2", "^has_journal,^metadata_csum", 16);
        char *out = dbg(img, "stat /etc");
        char *p = strstr(out, "EXTENTS:");
        assert_non_null(p);
        free(out);
        out = dbg(img, "imap /etc");
        p = strstr(out, "located at block ");
        assert_non_null(p);
        unsigned long blk = strtoul(p + strlen("located at block "), NULL, 10);
        free(out);
        fd = open(img, O_RDWR);
        for (unsigned i = 0; i < 4; i++)
                assert_int_equal(pwrite_full(fd, junk, sizeof junk, OFF + (blk + i) * 4096ull), 0);
        close(fd);
        int r = ext4_open(img, OFF, 16u << 20, &fs);
        if (r == 0) {
                struct ext4_stat st;
                uint8_t *d;
                size_t n;
                (void)ext4_lstat(fs, "/etc/hostname", &st);
                if (ext4_read(fs, "/etc/hostname", 1 << 20, &d, &n) == 0)
                        free(d);
                (void)ext4_write(fs, "/etc/x", "x", 1, 0644, 0, 0);
                (void)ext4_mkdir_p(fs, "/etc/a/b", 0755, 0, 0);
                (void)ext4_symlink(fs, "/etc/l", "x", 0, 0);
                (void)ext4_unlink(fs, "/etc/hostname");
                (void)ext4_close(fs);
        }
        free(img);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_refuse_needs_recovery),
                cmocka_unit_test(test_refuse_error_state),
                cmocka_unit_test(test_refuse_bigger_than_partition),
                cmocka_unit_test(test_refuse_unknown_incompat),
                cmocka_unit_test(test_refuse_readonly),
                cmocka_unit_test(test_full_enospc),
                cmocka_unit_test(test_mkdir_full),
                cmocka_unit_test(test_refuse_not_clean),
                cmocka_unit_test(test_refuse_quota),
                cmocka_unit_test(test_corrupt),
        };
        return cmocka_run_group_tests(tests, ext4_test_setup, ext4_test_teardown);
}
