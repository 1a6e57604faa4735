/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The base's flags against the ext4 module.  Features it cannot edit
 * (made by mkfs.ext4 -O, or set by debugfs) are refused in one line naming
 * them as e2fsprogs does.  The immutable and append-only flags (chattr +i,
 * +a, set here with debugfs): what the kernel refuses with EPERM is refused
 * with one error line, by ext4_check_edit ahead of time and by each edit
 * itself; the filesystem stays e2fsck-clean, the flagged files as they
 * were, flags included; and what the flags allow (a new name in an
 * append-only directory) still works. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ext4.h"
#include "log.h"
#include "util.h"
#include "ext4_test_util.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif

#define SIZE_M 16u
#define IMM 0x10u /* EXT2_IMMUTABLE_FL */
#define APP 0x20u /* EXT2_APPEND_FL */

static FILE *sif_out;
static size_t sif_skip;

static int sif_root(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        (void)st, (void)type;
        if (ftw->level > 0)
                fprintf(sif_out, "sif \"%s\" uid 0\nsif \"%s\" gid 0\n", path + sif_skip, path + sif_skip);
        return 0;
}

/* Every inode copied from src, root's (as make-fixture.sh does). */
static void chown_to_root(const char *img, const char *src) {
        char *cmds = xasprintf("%s.debugfs", src), *d = dev(img), *out = NULL;
        sif_out = fopen(cmds, "w");
        assert_non_null(sif_out);
        sif_skip = strlen(src);
        assert_int_equal(nftw(src, sif_root, 16, FTW_PHYS), 0);
        assert_int_equal(fclose(sif_out), 0);
        int rc = RUN(&out, "debugfs", "-w", "-f", cmds, d);
        if (rc != 0)
                fprintf(stderr, "debugfs: %s\n", out);
        assert_int_equal(rc, 0);
        free(out), free(cmds), free(d);
}

/* /etc/hostname, /etc/small, /etc/dir/f, /lnkdir -> etc/dir, in a 16 MiB
 * filesystem at OFF; feat: mkfs.ext4 -O's list, or NULL. */
static char *make_image_with(const char *name, const char *feat) {
        char *img = xasprintf("%s/%s.img", tmp, name);
        char *src = tree_start(name);
        char *p = xasprintf("%s/lnkdir", src);
        symlink("etc/dir", p), free(p);
        mkfs_at(img, src, feat, SIZE_M);
        /* mkfs -d gives every copied inode the caller's uid and gid: root's
         * only when the tests run as root.  A base's /etc is root's, and
         * the tests below ask for root's owner to mean "no change". */
        if (getuid() != 0 || getgid() != 0)
                chown_to_root(img, src);
        free(src);
        return img;
}

/* As dbg, but debugfs must succeed. */
static char *dbg_ok(const char *img, const char *req) {
        char *d = dev(img), *out = NULL;
        assert_int_equal(RUN(&out, "debugfs", "-R", req, d), 0);
        free(d);
        return out;
}

static unsigned flags_of(const char *img, const char *path) {
        char *req = xasprintf("stat %s", path);
        char *out = dbg_ok(img, req);
        const char *p = strstr(out, "Flags: ");
        assert_non_null(p);
        unsigned flags = 0;
        sscanf(p, "Flags: %x", &flags);
        free(out), free(req);
        return flags;
}

/* chattr +flags, by debugfs: the inode's other flags (extents) kept */
static void add_flags(const char *img, const char *path, unsigned flags) {
        char *req = xasprintf("sif %s flags 0x%x", path, flags_of(img, path) | flags);
        free(dbg_w(img, req));
        free(req);
        assert_int_equal(flags_of(img, path) & flags, flags);
}

/* The file's content, by debugfs. */
static bool content_is(const char *img, const char *path, const char *want) {
        char *req = xasprintf("cat %s", path);
        char *out = dbg_ok(img, req);
        bool ok = strstr(out, want) != NULL;
        free(out), free(req);
        return ok;
}

/* r is a refusal with exactly one error line, which has needle in it. */
static struct tu_capture cap;
static void begin(void) { tu_capture_begin(&cap); }
static void refused(int r, const char *needle) {
        unsigned errors;
        char *err = tu_capture_end(&cap, &errors);
        if (r != -EINVAL || errors != 1 || !strstr(err, needle))
                fprintf(stderr, "r=%d errors=%u, want /%s/ in:\n%s", r, errors, needle, err);
        assert_int_equal(r, -EINVAL);
        assert_int_equal(errors, 1);
        assert_non_null(strstr(err, needle));
        free(err);
}
#define REFUSED(call, needle) (begin(), refused((call), (needle)))

/* ext4_open's refusal: -EOPNOTSUPP, one line, with want in it. */
static void open_refused(const char *img, const char *want) {
        struct ext4_fs *fs = NULL;
        begin();
        int r = ext4_open(img, OFF, SIZE_M * 1048576ull, &fs);
        unsigned errors;
        char *err = tu_capture_end(&cap, &errors);
        if (r != -EOPNOTSUPP || errors != 1 || !strstr(err, want))
                fprintf(stderr, "r=%d errors=%u, want /%s/ in:\n%s", r, errors, want, err);
        assert_int_equal(r, -EOPNOTSUPP);
        assert_int_equal(errors, 1);
        assert_non_null(strstr(err, want));
        free(err);
}

static void test_feature_names(void **state) {
        (void)state;
        char *img = make_image_with("casefold", "casefold");
        open_refused(img, "ext4 filesystem at offset 1048576 uses ext4 feature 'casefold' which dimimage cannot edit "
                          "safely");
        free(img);
        img = make_image_with("encrypt", "encrypt,casefold");
        open_refused(img, "uses ext4 features 'encrypt', 'casefold' which dimimage cannot edit safely");
        free(img);
        img = make_image_with("bigalloc", "bigalloc");
        open_refused(img, "uses ext4 feature 'bigalloc' which");
        free(img);
        /* read-only compatible: libext2fs writes past shared_blocks (and
         * would free a block another file still has); replica it refuses
         * to write, unnamed ("unsupported read-only feature(s)") */
        img = make_image_with("shared", NULL);
        free(dbg_w(img, "feature shared_blocks"));
        open_refused(img, "uses ext4 feature 'shared_blocks' which dimimage cannot edit safely");
        struct ext4_fs *fs = NULL;
        assert_int_equal(ext4_open_ro(img, OFF, SIZE_M * 1048576ull, &fs), 0); /* inspect reads it */
        assert_int_equal(ext4_close(fs), 0);
        /* a build's read-only looks at the base refuse it too, before it
         * writes anything (and a dry run's) */
        begin();
        assert_int_equal(ext4_open_as(img, img, OFF, SIZE_M * 1048576ull, EXT4_REQUIRE_CLEAN, &fs), -EOPNOTSUPP);
        unsigned errors;
        free(tu_capture_end(&cap, &errors));
        assert_int_equal(errors, 1);
        free(dbg_w(img, "feature replica"));
        open_refused(img, "uses ext4 features 'replica', 'shared_blocks' which");
        free(img);
        /* quotas, likewise: refused where a build first looks */
        img = make_image_with("quota", "quota");
        begin();
        assert_int_equal(ext4_open_as(img, img, OFF, SIZE_M * 1048576ull, EXT4_REQUIRE_CLEAN, &fs), -EOPNOTSUPP);
        char *err = tu_capture_end(&cap, &errors);
        assert_int_equal(errors, 1);
        assert_non_null(strstr(err, "keeps quotas"));
        free(err);
        assert_int_equal(ext4_open_ro(img, OFF, SIZE_M * 1048576ull, &fs), 0);
        assert_int_equal(ext4_close(fs), 0);
        free(img);
}

static void test_immutable_file(void **state) {
        (void)state;
        char *img = make_image_with("immfile", NULL);
        add_flags(img, "/etc/hostname", IMM);
        struct ext4_fs *fs = open_rw(img, SIZE_M);
        const char *imm = "ext4 /etc/hostname is immutable (chattr +i) in the base, and this build";
        REFUSED(ext4_check_edit(fs, "/etc/hostname", EXT4_EDIT_WRITE, 0, 0, 0), imm);
        REFUSED(ext4_check_edit(fs, "/etc/hostname", EXT4_EDIT_UNLINK, 0, 0, 0), "removes it");
        REFUSED(ext4_write(fs, "/etc/hostname", "pi\n", 3, 0644, 0, 0), "replaces it; clear the flag first (chattr -i)");
        REFUSED(ext4_symlink(fs, "/etc/hostname", "/x", 0, 0), imm);
        REFUSED(ext4_unlink(fs, "/etc/hostname"), "removes it");
        REFUSED(ext4_chmod(fs, "/etc/hostname", 0600), "changes its mode");
        REFUSED(ext4_chown(fs, "/etc/hostname", 1000, 1000), "changes its owner");
        /* its neighbours are not held by it */
        assert_int_equal(ext4_check_edit(fs, "/etc/new", EXT4_EDIT_WRITE, 0, 0, 0), 0);
        assert_int_equal(ext4_check_edit(fs, "/etc/small", EXT4_EDIT_WRITE, 0, 0, 0), 0);
        assert_int_equal(ext4_write(fs, "/etc/small", "other\n", 6, 0644, 0, 0), 0);
        assert_int_equal(ext4_close(fs), 0);
        fsck_ok(img);
        assert_true(content_is(img, "/etc/hostname", "raspberrypi"));
        assert_int_equal(flags_of(img, "/etc/hostname") & IMM, IMM);
        assert_true(content_is(img, "/etc/small", "other"));
        free(img);
}

static void test_append_only_file(void **state) {
        (void)state;
        char *img = make_image_with("appfile", NULL);
        add_flags(img, "/etc/small", APP);
        struct ext4_fs *fs = open_rw(img, SIZE_M);
        const char *app = "ext4 /etc/small is append-only (chattr +a) in the base, and this build replaces it; "
                          "clear the flag first (chattr -a)";
        REFUSED(ext4_check_edit(fs, "/etc/small", EXT4_EDIT_WRITE, 0, 0, 0), app);
        REFUSED(ext4_write(fs, "/etc/small", "x", 1, 0644, 0, 0), app);
        REFUSED(ext4_unlink(fs, "/etc/small"), "append-only (chattr +a) in the base, and this build removes it");
        assert_int_equal(ext4_close(fs), 0);
        fsck_ok(img);
        assert_true(content_is(img, "/etc/small", "tiny"));
        assert_int_equal(flags_of(img, "/etc/small") & APP, APP);
        free(img);
}

static void test_immutable_dir(void **state) {
        (void)state;
        char *img = make_image_with("immdir", NULL);
        add_flags(img, "/etc/dir", IMM);
        struct ext4_fs *fs = open_rw(img, SIZE_M);
        const char *add = "ext4 /etc/dir/new: its directory /etc/dir is immutable (chattr +i) in the base, and this "
                          "build adds a name to it";
        REFUSED(ext4_check_edit(fs, "/etc/dir/new", EXT4_EDIT_WRITE, 0, 0, 0), add);
        REFUSED(ext4_write(fs, "/etc/dir/new", "x", 1, 0644, 0, 0), add);
        REFUSED(ext4_symlink(fs, "/etc/dir/new", "/x", 0, 0), add);
        /* through a symlink to it, and a directory made there */
        REFUSED(ext4_check_edit(fs, "/lnkdir/new", EXT4_EDIT_WRITE, 0, 0, 0), "its directory /lnkdir is immutable");
        REFUSED(ext4_check_edit(fs, "/etc/dir/a/b", EXT4_EDIT_MKDIR, 0755, 0, 0), "adds a name to it");
        REFUSED(ext4_check_edit(fs, "/etc/dir/a/b", EXT4_EDIT_WRITE, 0644, 0, 0), "its directory /etc/dir is immutable");
        REFUSED(ext4_mkdir_p(fs, "/etc/dir/a/b", 0755, 0, 0), "its directory /etc/dir is immutable");
        /* a name in it, replaced or removed */
        REFUSED(ext4_check_edit(fs, "/etc/dir/f", EXT4_EDIT_WRITE, 0, 0, 0), "replaces a name in it");
        REFUSED(ext4_write(fs, "/etc/dir/f", "x", 1, 0644, 0, 0), "replaces a name in it");
        REFUSED(ext4_unlink(fs, "/etc/dir/f"), "removes a name from it");
        /* the directory itself: there already, and ours only if that
         * changes nothing */
        assert_int_equal(ext4_check_edit(fs, "/etc/dir", EXT4_EDIT_MKDIR, 0755, 0, 0), 0);
        assert_int_equal(ext4_mkdir_p(fs, "/etc/dir", 0755, 0, 0), 0);
        assert_int_equal(ext4_check_edit(fs, "/etc/dir", EXT4_EDIT_OWN_DIR, 0755, 0, 0), 0);
        assert_int_equal(ext4_own_dir(fs, "/etc/dir", 0755, 0, 0), 0);
        const char *own = "ext4 /etc/dir is immutable (chattr +i) in the base, and this build changes its mode and owner";
        REFUSED(ext4_check_edit(fs, "/etc/dir", EXT4_EDIT_OWN_DIR, 0700, 1000, 1000), own);
        REFUSED(ext4_own_dir(fs, "/etc/dir", 0700, 1000, 1000), own);
        /* nothing to remove: nothing refused */
        assert_int_equal(ext4_check_edit(fs, "/etc/dir/absent", EXT4_EDIT_UNLINK, 0, 0, 0), 0);
        assert_int_equal(ext4_check_edit(fs, "/etc/other/x", EXT4_EDIT_WRITE, 0, 0, 0), 0);
        assert_int_equal(ext4_close(fs), 0);
        fsck_ok(img);
        char *ls = dbg_ok(img, "ls /etc/dir");
        assert_null(strstr(ls, "new"));
        assert_null(strstr(ls, " a "));
        free(ls);
        assert_true(content_is(img, "/etc/dir/f", "in dir"));
        assert_int_equal(flags_of(img, "/etc/dir") & IMM, IMM);
        free(img);
}

/* Append-only: a name may be added, none removed or replaced. */
static void test_append_only_dir(void **state) {
        (void)state;
        char *img = make_image_with("appdir", NULL);
        add_flags(img, "/etc/dir", APP);
        struct ext4_fs *fs = open_rw(img, SIZE_M);
        assert_int_equal(ext4_check_edit(fs, "/etc/dir/new", EXT4_EDIT_WRITE, 0, 0, 0), 0);
        assert_int_equal(ext4_write(fs, "/etc/dir/new", "new\n", 4, 0644, 0, 0), 0);
        assert_int_equal(ext4_check_edit(fs, "/etc/dir/sub/x", EXT4_EDIT_WRITE, 0, 0, 0), 0);
        assert_int_equal(ext4_mkdir_p(fs, "/etc/dir/sub", 0755, 0, 0), 0);
        const char *repl = "ext4 /etc/dir/f: its directory /etc/dir is append-only (chattr +a) in the base, and this "
                           "build replaces a name in it; clear the flag first (chattr -a)";
        REFUSED(ext4_check_edit(fs, "/etc/dir/f", EXT4_EDIT_WRITE, 0, 0, 0), repl);
        REFUSED(ext4_write(fs, "/etc/dir/f", "x", 1, 0644, 0, 0), repl);
        REFUSED(ext4_check_edit(fs, "/etc/dir/f", EXT4_EDIT_UNLINK, 0, 0, 0), "removes a name from it");
        REFUSED(ext4_unlink(fs, "/etc/dir/f"), "removes a name from it");
        assert_int_equal(ext4_close(fs), 0);
        fsck_ok(img);
        assert_true(content_is(img, "/etc/dir/new", "new"));
        assert_true(content_is(img, "/etc/dir/f", "in dir"));
        assert_int_equal(flags_of(img, "/etc/dir") & APP, APP);
        free(img);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_feature_names),
                cmocka_unit_test(test_immutable_file),
                cmocka_unit_test(test_append_only_file),
                cmocka_unit_test(test_immutable_dir),
                cmocka_unit_test(test_append_only_dir),
        };
        return cmocka_run_group_tests(tests, ext4_test_setup, ext4_test_teardown);
}
