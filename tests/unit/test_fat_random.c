/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Randomized FAT test: a long random sequence of create/replace/delete/mkdir
 * with tiny to large files, applied both to a FAT image (through fat.c) and
 * to a plain host directory; then the image is extracted with mtools and
 * compared to the host tree with diff -r, read back with fat_read too, and
 * checked with fsck.fat -n.  Seed 12345 unless DIMIMAGE_TEST_SEED is set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fat.h"
#include "fat_test_util.h"

#define OPS 300
#define MAX_DIRS 16
#define MAX_FILES 256

static uint64_t rng_state;

static uint32_t rnd(uint32_t n) {
        /* xorshift64*: fixed across platforms, unlike rand() */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return (uint32_t)((rng_state * 2685821657736338717ull) >> 33) % n;
}

static const char *const names[] = {
        "CMDLINE.TXT", "config.txt", "README", "user-data", "meta-data", "network-config",
        "Long File Name.txt", "Long File Name 2.txt", "a.b.c.d", "kernel8.img", "initramfs8",
        "bcm2712-rpi-5-b.dtb", "ssh", "userconf.txt", "x", "Mixed Case Name With Spaces.JSON",
        "very long name that needs several long file name entries to be stored.bin", "NUMBERS~1.TXT",
};
static const char *const dirnames[] = {"overlays", "firmware", "Sub Dir", "deep"};

struct model {
        char host[300];
        char dirs[MAX_DIRS][256]; /* "" is the root */
        int ndirs;
        char files[MAX_FILES][1024];
        int nfiles;
};

static void host_path(const struct model *m, const char *p, char *out, size_t n) {
        snprintf(out, n, "%s%s", m->host, p);
}

static int find_file(const struct model *m, const char *p) {
        for (int i = 0; i < m->nfiles; i++)
                if (!strcmp(m->files[i], p))
                        return i;
        return -1;
}

static int find_dir(const struct model *m, const char *p) {
        for (int i = 0; i < m->ndirs; i++)
                if (!strcmp(m->dirs[i], p))
                        return i;
        return -1;
}

static bool dir_empty(const struct model *m, const char *d) {
        size_t n = strlen(d);
        for (int i = 0; i < m->nfiles; i++)
                if (!strncmp(m->files[i], d, n) && m->files[i][n] == '/')
                        return false;
        for (int i = 0; i < m->ndirs; i++)
                if (strcmp(m->dirs[i], d) && !strncmp(m->dirs[i], d, n) && m->dirs[i][n] == '/')
                        return false;
        return true;
}

static size_t pick_size(void) {
        switch (rnd(10)) {
        case 0:
                return 0;
        case 1:
        case 2:
        case 3:
                return 1 + rnd(100);
        case 4:
        case 5:
        case 6:
                return 1 + rnd(20000);
        case 7:
                return 400 + rnd(4000) * 2; /* near cluster multiples */
        case 8:
                return 4096 * (1 + rnd(8));
        default:
                return 100000 + rnd(900000);
        }
}

/* An upper-cased spelling of p: lookups must be case-insensitive. */
static void upcase(const char *p, char *out, size_t n) {
        size_t i;
        for (i = 0; p[i] && i + 1 < n; i++)
                out[i] = (char)(p[i] >= 'a' && p[i] <= 'z' ? p[i] - 32 : p[i]);
        out[i] = 0;
}

static void compare(struct model *m, const char *img) {
        /* our own reader, on a fresh open */
        int fd = open(img, O_RDWR);
        struct stat sb;
        fstat(fd, &sb);
        struct fat_fs *fs;
        assert_int_equal(fat_open(fd, 0, (uint64_t)sb.st_size, "random.img", &fs), 0);
        for (int i = 0; i < m->nfiles; i++) {
                char hp[1024];
                host_path(m, m->files[i], hp, sizeof hp);
                uint8_t *want, *got;
                size_t wl, gl;
                assert_int_equal(read_file(hp, 1 << 30, &want, &wl), 0);
                assert_int_equal(fat_read(fs, m->files[i], &got, &gl), 0);
                assert_int_equal(gl, wl);
                assert_memory_equal(got, want, wl);
                free(want);
                free(got);
        }
        assert_int_equal(fat_close(fs), 0);
        close(fd);
        /* mtools extraction, the real comparison */
        char out[512];
        snprintf(out, sizeof out, "%s/extract", tmpdir);
        const char *rm[] = {"rm", "-rf", out, NULL};
        tu_run(rm, NULL, TU_STDERR_KEEP);
        mkdir(out, 0755);
        if (m->nfiles + m->ndirs > 1) {
                const char *cp[] = {"mcopy", "-s", "-n", "-i", img, "::/*", out, NULL};
                char *msg;
                int rc = tu_run_capture(cp, &msg);
                if (rc != 0)
                        fprintf(stderr, "mcopy: %s\n", msg);
                free(msg);
                assert_int_equal(rc, 0);
        }
        const char *diff[] = {"diff", "-r", m->host, out, NULL};
        char *msg;
        int rc = tu_run_capture(diff, &msg);
        if (rc != 0)
                fprintf(stderr, "diff -r model image:\n%s\n", msg);
        free(msg);
        assert_int_equal(rc, 0);
        assert_true(fsck_clean(img));
        assert_true(fats_identical(img, 0));
}

static void random_run(int bits, int spc) {
        uint64_t seed = 12345;
        const char *env = getenv("DIMIMAGE_TEST_SEED");
        if (env && *env)
                seed = strtoull(env, NULL, 0);
        rng_state = seed ? seed : 1;
        printf("test_fat_random: FAT%d seed %" PRIu64 " (set DIMIMAGE_TEST_SEED to change)\n", bits, seed);
        char name[32];
        snprintf(name, sizeof name, "random%d.img", bits);
        char *img = make_image(name, 64, bits, spc);
        struct model *m = xcalloc(1, sizeof *m);
        snprintf(m->host, sizeof m->host, "%s/model%d", tmpdir, bits);
        mkdir(m->host, 0755);
        m->ndirs = 1; /* root: "" */

        int fd = open(img, O_RDWR);
        struct stat sb;
        fstat(fd, &sb);
        struct fat_fs *fs;
        assert_int_equal(fat_open(fd, 0, (uint64_t)sb.st_size, "random.img", &fs), 0);
        for (int op = 0; op < OPS; op++) {
                uint32_t kind = rnd(20);
                char p[1024], hp[2048], alt[1024];
                if (kind < 11 || m->nfiles == 0) { /* create or replace */
                        const char *d = m->dirs[rnd((uint32_t)m->ndirs)];
                        snprintf(p, sizeof p, "%s/%s", d, names[rnd(ARRAY_SIZE(names))]);
                        if (find_dir(m, p) >= 0)
                                continue;
                        size_t len = pick_size();
                        uint8_t *data = xmalloc(len + 1);
                        for (size_t i = 0; i < len; i++)
                                data[i] = (uint8_t)rnd(256);
                        bool exists = find_file(m, p) >= 0;
                        upcase(p, alt, sizeof alt);
                        assert_int_equal(fat_write(fs, exists && rnd(2) ? alt : p, data, len, 1700000000 + op), 0);
                        host_path(m, p, hp, sizeof hp);
                        int h = open(hp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                        assert_true(h >= 0);
                        assert_int_equal(write_full(h, data, len), 0);
                        close(h);
                        if (!exists && m->nfiles < MAX_FILES)
                                snprintf(m->files[m->nfiles++], sizeof m->files[0], "%s", p);
                        free(data);
                } else if (kind < 16) { /* delete a file */
                        int i = (int)rnd((uint32_t)m->nfiles);
                        assert_int_equal(fat_unlink(fs, m->files[i]), 0);
                        host_path(m, m->files[i], hp, sizeof hp);
                        assert_int_equal(unlink(hp), 0);
                        memcpy(m->files[i], m->files[--m->nfiles], sizeof m->files[0]);
                } else if (kind < 19) { /* mkdir -p one or two levels */
                        if (m->ndirs + 2 > MAX_DIRS)
                                continue;
                        const char *d = m->dirs[rnd((uint32_t)m->ndirs)];
                        if (strlen(d) > 100)
                                continue;
                        char p1[600];
                        snprintf(p1, sizeof p1, "%s/%s", d, dirnames[rnd(ARRAY_SIZE(dirnames))]);
                        snprintf(p, sizeof p, "%s", p1);
                        bool two = rnd(2);
                        if (two)
                                snprintf(p, sizeof p, "%s/%s", p1, dirnames[rnd(ARRAY_SIZE(dirnames))]);
                        if (find_file(m, p1) >= 0 || find_file(m, p) >= 0)
                                continue;
                        assert_int_equal(fat_mkdir(fs, p, 1700000000 + op), 0);
                        const char *levels[2] = {p1, p};
                        for (int k = 0; k < (two ? 2 : 1); k++) {
                                if (find_dir(m, levels[k]) >= 0)
                                        continue;
                                host_path(m, levels[k], hp, sizeof hp);
                                assert_int_equal(mkdir(hp, 0755), 0);
                                snprintf(m->dirs[m->ndirs++], sizeof m->dirs[0], "%s", levels[k]);
                        }
                } else if (m->ndirs > 1) { /* remove an empty directory, or fail on a full one */
                        int i = 1 + (int)rnd((uint32_t)m->ndirs - 1);
                        if (dir_empty(m, m->dirs[i])) {
                                assert_int_equal(fat_unlink(fs, m->dirs[i]), 0);
                                host_path(m, m->dirs[i], hp, sizeof hp);
                                assert_int_equal(rmdir(hp), 0);
                                memcpy(m->dirs[i], m->dirs[--m->ndirs], sizeof m->dirs[0]);
                        } else {
                                assert_int_equal(fat_unlink(fs, m->dirs[i]), -ENOTEMPTY);
                        }
                }
                if (op % 100 == 99) {
                        assert_int_equal(fat_close(fs), 0);
                        compare(m, img);
                        assert_int_equal(fat_open(fd, 0, (uint64_t)sb.st_size, "random.img", &fs), 0);
                }
        }
        assert_int_equal(fat_close(fs), 0);
        close(fd);
        compare(m, img);
        printf("test_fat_random: FAT%d: %d files, %d directories at the end\n", bits, m->nfiles, m->ndirs - 1);
        free(m);
        free(img);
}

static void test_random_fat32(void **state) { random_run(32, 1); }
static void test_random_fat16(void **state) { random_run(16, 0); }

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_random_fat32),
                cmocka_unit_test(test_random_fat16),
        };
        return cmocka_run_group_tests_name("fat_random", tests, fat_setup, fat_teardown);
}
