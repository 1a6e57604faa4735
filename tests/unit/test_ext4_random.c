/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Randomized: the same long sequence of create/replace/delete/mkdir/symlink/
 * chmod operations goes to an ext4 image (through the ext4 module) and to a
 * host directory (through POSIX calls); then debugfs rdump extracts the
 * image and the two trees must match byte for byte, and e2fsck -fn must
 * pass.  Seed: DIMIMAGE_TEST_SEED (default 424242), printed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ext4.h"
#include "log.h"
#include "test_util.h"
#include "util.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif

#define OFF 1048576ull
#define SIZE_M 160u
#define OPS 1000

static char tmp[256];
static uint64_t seed = 424242;
static uint64_t rng;

static uint32_t rnd(void) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return (uint32_t)(rng >> 16);
}
static uint32_t below(uint32_t n) {
        return rnd() % n;
}

/* Runs a command, stdout+stderr captured into *out (may be NULL). */
#define RUN(out, ...) tu_run_capture((const char *const[]){__VA_ARGS__, NULL}, (out))

static void host_write(const char *path, const void *data, size_t n, mode_t mode) {
        int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write_full(fd, data, n), 0);
        assert_int_equal(fchmod(fd, mode), 0);
        close(fd);
}

static bool host_dir_empty(const char *path) {
        DIR *d = opendir(path);
        assert_non_null(d);
        struct dirent *de;
        bool empty = true;
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                        empty = false;
        closedir(d);
        return empty;
}

/* Walks the model; every entry must exist in out with the same type,
 * permission bits, content or target; and out must have nothing more. */
static struct ext4_fs *ro; /* the image, to work around debugfs below */
static char *out_root;

static void compare_trees(const char *model, const char *out) {
        DIR *d = opendir(model);
        assert_non_null(d);
        struct dirent *de;
        size_t count = 0;
        while ((de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                count++;
                char *a = xasprintf("%s/%s", model, de->d_name), *b = xasprintf("%s/%s", out, de->d_name);
                struct stat sa, sb;
                assert_int_equal(lstat(a, &sa), 0);
                if (lstat(b, &sb) != 0)
                        fail_msg("missing in image: %s", b);
                if ((sa.st_mode & S_IFMT) != (sb.st_mode & S_IFMT))
                        fail_msg("type differs: %s", b);
                if (S_ISREG(sa.st_mode)) {
                        assert_int_equal(sa.st_mode & 07777, sb.st_mode & 07777);
                        if (sb.st_size == 60 && sa.st_size < 60) {
                                /* debugfs 1.47.0 extracts a small inline-data file
                                 * as its whole 60-byte inline area (fixed in
                                 * 1.47.4): trust i_size, checked by e2fsck. */
                                struct ext4_stat es;
                                assert_int_equal(ext4_lstat(ro, b + strlen(out_root), &es), 0);
                                assert_int_equal(es.size, (uint64_t)sa.st_size);
                                assert_int_equal(truncate(b, (off_t)es.size), 0);
                        }
                        uint8_t *x, *y;
                        size_t nx, ny;
                        assert_int_equal(read_file(a, 64u << 20, &x, &nx), 0);
                        assert_int_equal(read_file(b, 64u << 20, &y, &ny), 0);
                        if (nx != ny || memcmp(x, y, nx))
                                fail_msg("content differs: %s (%zu vs %zu bytes)", b, nx, ny);
                        free(x), free(y);
                } else if (S_ISLNK(sa.st_mode)) {
                        char ta[4096], tb[4096];
                        ssize_t la = readlink(a, ta, sizeof ta), lb = readlink(b, tb, sizeof tb);
                        assert_true(la > 0);
                        assert_int_equal(la, lb);
                        assert_memory_equal(ta, tb, (size_t)la);
                } else if (S_ISDIR(sa.st_mode)) {
                        assert_int_equal(sa.st_mode & 07777, sb.st_mode & 07777);
                        compare_trees(a, b);
                }
                free(a), free(b);
        }
        closedir(d);
        d = opendir(out);
        assert_non_null(d);
        size_t count2 = 0;
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                        count2++;
        closedir(d);
        if (count != count2)
                fail_msg("%s: %zu entries in the image, %zu in the model", out, count2, count);
}

struct world {
        char *img, *model;
        struct ext4_fs *fs;
        char *dirs[64]; /* relative paths ("" = root) */
        size_t ndirs;
        uint8_t *junk;
        size_t junk_len;
};

static char *pick_path(struct world *w, char **host) {
        const char *dir = w->dirs[below((uint32_t)w->ndirs)];
        char *rel = xasprintf("%s/n%u", dir, below(12));
        *host = xasprintf("%s%s", w->model, rel);
        return rel;
}

/* The model's parent must still be a directory (it may have been removed). */
static bool parent_ok(const char *host) {
        char *p = path_dirname(host);
        struct stat st;
        bool ok = lstat(p, &st) == 0 && S_ISDIR(st.st_mode);
        free(p);
        return ok;
}

static size_t pick_size(void) {
        uint32_t k = below(100);
        if (k < 55)
                return below(120); /* tiny: around the 60-byte inline limit */
        if (k < 90)
                return below(70000);
        return below(3u << 20); /* large */
}

static void op(struct world *w, unsigned i) {
        char *host;
        char *rel = pick_path(w, &host);
        struct stat st;
        bool exists = lstat(host, &st) == 0;
        bool nonempty_dir = exists && S_ISDIR(st.st_mode) && !host_dir_empty(host);
        /* no setuid: rdump chowns after chmod, which clears it */
        static const mode_t modes[] = {0644, 0600, 0755, 0640, 0700, 0444};
        uint32_t k = below(100);
        if (!parent_ok(host))
                goto out;
        if (k < 40) { /* create or replace a file */
                size_t n = pick_size();
                size_t off = below((uint32_t)(w->junk_len - n));
                mode_t m = modes[below(ARRAY_SIZE(modes))];
                int r = ext4_write(w->fs, rel, w->junk + off, n, m, 0, 0);
                if (nonempty_dir) {
                        assert_int_equal(r, -ENOTEMPTY);
                        goto out;
                }
                if (r != 0)
                        fail_msg("op %u: write %s (%zu bytes): %d", i, rel, n, r);
                /* replaced, as ext4_write does: a 0444 file could not be
                 * opened for writing by an owner who is not root */
                if (exists && S_ISDIR(st.st_mode))
                        assert_int_equal(rmdir(host), 0);
                else if (exists)
                        assert_int_equal(unlink(host), 0);
                host_write(host, w->junk + off, n, m);
        } else if (k < 55) { /* symlink, short or long target */
                char t[256];
                size_t n = 1 + below(below(2) ? 40 : 250);
                for (size_t j = 0; j < n; j++)
                        t[j] = (char)('a' + below(26));
                t[n] = 0;
                int r = ext4_symlink(w->fs, rel, t, 0, 0);
                if (nonempty_dir) {
                        assert_int_equal(r, -ENOTEMPTY);
                        goto out;
                }
                assert_int_equal(r, 0);
                if (exists)
                        assert_int_equal(S_ISDIR(st.st_mode) ? rmdir(host) : unlink(host), 0);
                assert_int_equal(symlink(t, host), 0);
        } else if (k < 75) { /* delete */
                int r = ext4_unlink(w->fs, rel);
                if (!exists)
                        assert_int_equal(r, -ENOENT);
                else if (nonempty_dir)
                        assert_int_equal(r, -ENOTEMPTY);
                else {
                        assert_int_equal(r, 0);
                        assert_int_equal(S_ISDIR(st.st_mode) ? rmdir(host) : unlink(host), 0);
                }
        } else if (k < 92) { /* mkdir -p, one or two levels */
                if (exists && !S_ISDIR(st.st_mode))
                        goto out;
                bool two = below(2);
                char *rel2 = two ? xasprintf("%s/d%u", rel, below(3)) : xstrdup(rel);
                char *host2 = xasprintf("%s%s", w->model, rel2);
                struct stat st2;
                bool exists2 = lstat(host2, &st2) == 0;
                mode_t m = below(2) ? 0755 : 0750;
                assert_int_equal(ext4_mkdir_p(w->fs, rel2, m, 0, 0), 0);
                if (!exists)
                        assert_int_equal(mkdir(host, m), 0), chmod(host, m);
                if (two && !exists2)
                        assert_int_equal(mkdir(host2, m), 0), chmod(host2, m);
                if (w->ndirs < ARRAY_SIZE(w->dirs)) {
                        if (!exists)
                                w->dirs[w->ndirs++] = xstrdup(rel);
                        if (two && !exists2 && w->ndirs < ARRAY_SIZE(w->dirs))
                                w->dirs[w->ndirs++] = xstrdup(rel2);
                }
                free(rel2), free(host2);
        } else if (exists && !S_ISLNK(st.st_mode)) { /* chmod */
                mode_t m = modes[below(ARRAY_SIZE(modes))];
                /* a directory stays its owner's to enter and change: the
                 * model is walked, filled and removed by a user who may
                 * not be root (nor is debugfs rdump's copy of it) */
                if (S_ISDIR(st.st_mode))
                        m |= 0700;
                assert_int_equal(ext4_chmod(w->fs, rel, m), 0);
                assert_int_equal(chmod(host, m), 0);
        }
out:
        free(rel), free(host);
}

static void run_world(const char *name, const char *features, bool seed_files) {
        struct world w = {0};
        w.img = xasprintf("%s/%s.img", tmp, name);
        w.model = xasprintf("%s/%s.model", tmp, name);
        assert_int_equal(mkdir(w.model, 0755), 0);
        assert_int_equal(chmod(w.model, 0755), 0);
        w.dirs[w.ndirs++] = xstrdup("");
        if (seed_files) { /* made by mkfs -d: inline files on inline_data */
                for (unsigned j = 0; j < 12; j++) {
                        char *p = xasprintf("%s/n%u", w.model, j);
                        char *c = xasprintf("seed %u %.*s", j, (int)(j * 9), "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
                        host_write(p, c, strlen(c), 0644);
                        free(p), free(c);
                }
        }
        int fd = open(w.img, O_CREAT | O_TRUNC | O_WRONLY, 0644);
        assert_int_equal(ftruncate(fd, (off_t)((SIZE_M + 1) * 1048576ull)), 0);
        close(fd);
        char *opt = xasprintf("offset=%llu,root_owner=0:0", OFF), *sz = xasprintf("%uM", SIZE_M), *out = NULL;
        int rc = RUN(&out, "mkfs.ext4", "-q", "-F", "-O", features, "-E", opt, "-d", w.model, w.img, sz);
        if (rc)
                fprintf(stderr, "%s\n", out);
        assert_int_equal(rc, 0);
        free(out), free(opt), free(sz);
        char *lf = xasprintf("%s/lost+found", w.model);
        assert_int_equal(mkdir(lf, 0700), 0);
        free(lf);

        w.junk_len = (3u << 20) + 4096;
        w.junk = xmalloc(w.junk_len);
        for (size_t j = 0; j < w.junk_len; j++)
                w.junk[j] = (uint8_t)(below(4) ? rnd() : 0);

        assert_int_equal(ext4_open(w.img, OFF, SIZE_M * 1048576ull, &w.fs), 0);
        for (unsigned i = 0; i < OPS; i++) {
                op(&w, i);
                if (i % 100 == 99) { /* persistence across sessions */
                        assert_int_equal(ext4_close(w.fs), 0);
                        assert_int_equal(ext4_open(w.img, OFF, SIZE_M * 1048576ull, &w.fs), 0);
                }
        }
        assert_int_equal(ext4_close(w.fs), 0);

        char *dev = xasprintf("%s?offset=%llu", w.img, OFF);
        rc = RUN(&out, "e2fsck", "-fn", dev);
        if (rc)
                fprintf(stderr, "seed %" PRIu64 ": e2fsck -fn %s:\n%s\n", seed, dev, out);
        assert_int_equal(rc, 0);
        free(out);
        char *outdir = xasprintf("%s/%s.out", tmp, name);
        assert_int_equal(mkdir(outdir, 0755), 0);
        char *req = xasprintf("rdump / \"%s\"", outdir);
        rc = RUN(&out, "debugfs", "-R", req, dev);
        assert_int_equal(rc, 0);
        free(out), free(req);
        assert_int_equal(ext4_open_ro(w.img, OFF, SIZE_M * 1048576ull, &ro), 0);
        out_root = outdir;
        compare_trees(w.model, outdir);
        assert_int_equal(ext4_close(ro), 0);
        rc = RUN(&out, "diff", "-r", "--no-dereference", w.model, outdir);
        if (rc)
                fprintf(stderr, "seed %" PRIu64 ": diff:\n%s\n", seed, out);
        assert_int_equal(rc, 0);
        free(out);
        for (size_t j = 0; j < w.ndirs; j++)
                free(w.dirs[j]);
        free(outdir), free(dev), free(w.junk), free(w.img), free(w.model);
}

static void test_random_default(void **state) {
        (void)state;
        rng = seed * 0x9E3779B97F4A7C15ull + 1;
        run_world("default", "metadata_csum,64bit", false);
}

static void test_random_inline(void **state) {
        (void)state;
        rng = seed * 0x9E3779B97F4A7C15ull + 2;
        run_world("inline", "inline_data,^64bit,orphan_file", true);
}

static int setup_all(void **state) {
        (void)state;
        assert_int_equal(tu_mkdtemp(tmp, sizeof tmp, "test_ext4_random"), 0);
        return 0;
}

static int teardown_all(void **state) {
        (void)state;
        tu_rm_rf(tmp);
        return 0;
}

int main(void) {
        const char *s = getenv("DIMIMAGE_TEST_SEED");
        if (s && *s)
                seed = strtoull(s, NULL, 0);
        printf("test_ext4_random: seed %" PRIu64 " (set DIMIMAGE_TEST_SEED to replay)\n", seed);
        fflush(stdout);
        setenv("SOURCE_DATE_EPOCH", "1700000000", 1);
        umask(022);
        tu_path_with_sbin();
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_random_default),
                cmocka_unit_test(test_random_inline),
        };
        return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
