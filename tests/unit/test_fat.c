/* SPDX-License-Identifier: GPL-3.0-or-later */
/* FAT16/FAT32 module against real images: made by mkfs.vfat/mtools, checked
 * with fsck.fat -n and read back with mtools after every scenario. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fat.h"
#include "log.h"
#include "fat_test_util.h"

/* ---- stderr capture, to check the one error line ---- */

static struct tu_capture cap;

static void capture_begin(void) {
        tu_capture_begin(&cap);
}

/* Also echoed, so a failing test's log shows it. */
static char *capture_end(void) {
        char *err = tu_capture_end(&cap, NULL);
        fprintf(stderr, "%s", err);
        return err;
}

static struct fat_fs *open_fs(const char *img, int *fd, uint64_t offset, uint64_t size) {
        *fd = open(img, O_RDWR);
        assert_true(*fd >= 0);
        if (!size) {
                struct stat st;
                assert_int_equal(fstat(*fd, &st), 0);
                size = (uint64_t)st.st_size - offset;
        }
        struct fat_fs *fs = NULL;
        assert_int_equal(fat_open(*fd, offset, size, "test.img", &fs), 0);
        return fs;
}

static void close_fs(struct fat_fs *fs, int fd) {
        assert_int_equal(fat_close(fs), 0);
        close(fd);
}

static void assert_fat_content(struct fat_fs *fs, const char *path, const void *want, size_t len) {
        uint8_t *data;
        size_t n;
        assert_int_equal(fat_read(fs, path, &data, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(data, want, len);
        free(data);
}

static void assert_mtools_content(const char *img, const char *path, const void *want, size_t len) {
        size_t n = 0;
        char *data = mtools_read(img, path, &n);
        if (!data)
                fail_msg("mtools cannot read %s", path);
        assert_int_equal(n, len);
        assert_memory_equal(data, want, len);
        free(data);
}

static void assert_image_ok(const char *img) {
        assert_true(fsck_clean(img));
        assert_true(fats_identical(img, 0));
}

/* ---- scenarios ---- */

static void basic_ops(int bits, int spc, unsigned size_mib) {
        char name[64];
        snprintf(name, sizeof name, "basic%d-%d.img", bits, spc);
        char *img = make_image(name, size_mib, bits, spc);
        int fd;
        struct fat_fs *fs = open_fs(img, &fd, 0, 0);
        assert_int_equal(fat_bits(fs), (unsigned)bits);
        uint64_t free0 = fat_free_bytes(fs);

        size_t big = 300 * 1024 + 17;
        uint8_t *a = tu_pattern(big, 1), *b = tu_pattern(big * 2, 2);
        assert_int_equal(fat_write(fs, "/kernel8.img", a, big, 1700000000), 0);
        assert_int_equal(fat_write(fs, "/empty", "", 0, 1700000000), 0);
        assert_int_equal(fat_write(fs, "/tiny.txt", "hi\n", 3, 1700000000), 0);
        assert_fat_content(fs, "/KERNEL8.IMG", a, big);
        struct fat_stat st;
        assert_int_equal(fat_stat(fs, "/Kernel8.Img", &st), 0);
        assert_false(st.is_dir);
        assert_int_equal(st.size, big);
        assert_string_equal(st.short_name, "KERNEL8.IMG");
        assert_int_equal(fat_stat(fs, "/", &st), 0);
        assert_true(st.is_dir);
        close_fs(fs, fd);
        assert_image_ok(img);
        assert_mtools_content(img, "/kernel8.img", a, big);
        assert_mtools_content(img, "/empty", "", 0);
        assert_mtools_content(img, "/tiny.txt", "hi\n", 3);

        /* Replace: bigger, then smaller, then empty, then again. */
        fs = open_fs(img, &fd, 0, 0);
        assert_int_equal(fat_write(fs, "/kernel8.img", b, big * 2, 1700000001), 0);
        assert_fat_content(fs, "/kernel8.img", b, big * 2);
        close_fs(fs, fd);
        assert_image_ok(img);
        assert_mtools_content(img, "/kernel8.img", b, big * 2);

        fs = open_fs(img, &fd, 0, 0);
        assert_int_equal(fat_write(fs, "/kernel8.img", a, 1000, 1700000002), 0);
        assert_int_equal(fat_write(fs, "/tiny.txt", "", 0, 1700000002), 0);
        assert_int_equal(fat_write(fs, "/empty", b, 5000, 1700000002), 0);
        close_fs(fs, fd);
        assert_image_ok(img);
        assert_mtools_content(img, "/kernel8.img", a, 1000);
        assert_mtools_content(img, "/tiny.txt", "", 0);
        assert_mtools_content(img, "/empty", b, 5000);

        /* Delete gives back exactly the clusters used. */
        fs = open_fs(img, &fd, 0, 0);
        assert_int_equal(fat_unlink(fs, "/kernel8.img"), 0);
        assert_int_equal(fat_unlink(fs, "/TINY.TXT"), 0);
        assert_int_equal(fat_unlink(fs, "/empty"), 0);
        assert_int_equal(fat_free_bytes(fs), free0);
        assert_int_equal(fat_stat(fs, "/kernel8.img", &st), -ENOENT);
        close_fs(fs, fd);
        assert_image_ok(img);
        assert_null(mtools_read(img, "/kernel8.img", &big));
        free(a);
        free(b);
        free(img);
}

static void test_fat32_512(void **state) { basic_ops(32, 1, 64); }
static void test_fat32_4k(void **state) { basic_ops(32, 8, 300); }
static void test_fat16(void **state) { basic_ops(16, 0, 64); }

/* An 8.3-only upper-case CMDLINE.TXT (as RasPiOS ships it) keeps its name. */
static void test_cmdline_keeps_83_name(void **state) {
        char *img = make_image("cmdline.img", 64, 32, 1);
        char *src = xasprintf("%s/CMDLINE.TXT", tmpdir);
        FILE *f = fopen(src, "w");
        fputs("console=serial0,115200 root=PARTUUID=abcd-02\n", f);
        fclose(f);
        const char *cp[] = {"mcopy", "-i", img, src, "::/CMDLINE.TXT", NULL};
        assert_int_equal(tu_run(cp, NULL, TU_STDERR_KEEP), 0);
        const char *dir[] = {"mdir", "-a", "-i", img, "::/", NULL};
        char *out;
        assert_int_equal(tu_run_capture(dir, &out), 0);
        assert_null(strstr(out, "cmdline")); /* mcopy made an 8.3-only entry */
        free(out);

        int fd;
        struct fat_fs *fs = open_fs(img, &fd, 0, 0);
        const char *line = "console=serial0,115200 root=PARTUUID=abcd-02 quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n";
        assert_int_equal(fat_write(fs, "/cmdline.txt", line, strlen(line), 1700000000), 0);
        struct fat_stat st;
        assert_int_equal(fat_stat(fs, "/cmdline.txt", &st), 0);
        assert_string_equal(st.short_name, "CMDLINE.TXT");
        close_fs(fs, fd);
        assert_image_ok(img);
        assert_int_equal(tu_run_capture(dir, &out), 0);
        assert_null(strstr(out, "cmdline"));
        assert_non_null(strstr(out, "CMDLINE  TXT"));
        free(out);
        assert_mtools_content(img, "/CMDLINE.TXT", line, strlen(line));

        /* Raw check: exactly one entry, no LFN entries in the root. */
        fd = open(img, O_RDONLY);
        uint8_t bs[512];
        assert_int_equal(pread_full(fd, bs, 512, 0), 0);
        uint32_t bps = get_le16(bs + 11), res = get_le16(bs + 14), fsz = get_le32(bs + 36);
        uint64_t root = ((uint64_t)res + 2ull * fsz) * bps; /* root cluster 2 */
        uint8_t ents[512];
        assert_int_equal(pread_full(fd, ents, sizeof ents, root), 0);
        close(fd);
        int lfn = 0, found = 0;
        for (int i = 0; i < 16 && ents[i * 32]; i++) {
                if (ents[i * 32] == 0xE5)
                        continue;
                if (ents[i * 32 + 11] == 0x0F)
                        lfn++;
                else if (!memcmp(ents + i * 32, "CMDLINE TXT", 11))
                        found++;
        }
        assert_int_equal(lfn, 0);
        assert_int_equal(found, 1);
        free(src);
        free(img);
}

struct names {
        char list[64][300];
        char shorts[64][13];
        int n;
};

static int collect(const char *name, const struct fat_stat *st, void *u) {
        struct names *nm = u;
        if (nm->n < 64) {
                snprintf(nm->list[nm->n], sizeof nm->list[0], "%s", name);
                memcpy(nm->shorts[nm->n], st->short_name, 13);
                nm->n++;
        }
        return 0;
}

static void test_long_names_and_aliases(void **state) {
        char *img = make_image("lfn.img", 64, 32, 1);
        int fd;
        struct fat_fs *fs = open_fs(img, &fd, 0, 0);
        const char *names[] = {"Long File Name.txt", "Long File Name 2.txt", "long_file_name_3.txt",
                               "config.txt", "README.md", "MixedCase.TXT", ".hidden rc", "Grüße €.txt",
                               "a name with many dots.tar.gz",
                               "this is a very long file name that spans several LFN entries for sure 0123456789.dat"};
        for (size_t i = 0; i < ARRAY_SIZE(names); i++)
                assert_int_equal(fat_write(fs, names[i], names[i], strlen(names[i]), 1700000000), 0);
        struct fat_stat st;
        assert_int_equal(fat_stat(fs, "/long file name.TXT", &st), 0);
        assert_string_equal(st.short_name, "LONGFI~1.TXT");
        assert_int_equal(fat_stat(fs, "/Long File Name 2.txt", &st), 0);
        assert_string_equal(st.short_name, "LONGFI~2.TXT");
        assert_int_equal(fat_stat(fs, "/long_file_name_3.txt", &st), 0);
        assert_string_equal(st.short_name, "LONG_F~1.TXT");
        assert_int_equal(fat_stat(fs, "/LONGFI~2.TXT", &st), 0); /* by alias */
        assert_int_equal(st.size, strlen("Long File Name 2.txt"));
        assert_int_equal(fat_stat(fs, "/config.txt", &st), 0);
        assert_string_equal(st.short_name, "CONFIG.TXT");
        assert_int_equal(fat_stat(fs, "/GRÜSSE", &st), -ENOENT);
        struct names nm = {0};
        assert_int_equal(fat_list(fs, "/", collect, &nm), 0);
        assert_int_equal(nm.n, (int)ARRAY_SIZE(names));
        for (size_t i = 0; i < ARRAY_SIZE(names); i++)
                assert_string_equal(nm.list[i], names[i]);
        close_fs(fs, fd);
        assert_image_ok(img);
        for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
                if (i == 7)
                        continue; /* mtools' charset handling is its own business */
                char *p = xasprintf("/%s", names[i]);
                assert_mtools_content(img, p, names[i], strlen(names[i]));
                free(p);
        }
        const char *dir[] = {"mdir", "-i", img, "::/", NULL};
        char *out;
        assert_int_equal(tu_run_capture(dir, &out), 0);
        assert_non_null(strstr(out, "config   txt")); /* NT lower-case flags honoured */
        assert_non_null(strstr(out, "Long File Name 2.txt"));
        free(out);

        /* Reopen: the name read back from disk, and replacing keeps the alias. */
        fs = open_fs(img, &fd, 0, 0);
        assert_int_equal(fat_write(fs, "/LONG FILE NAME 2.TXT", "x", 1, 1700000000), 0);
        assert_int_equal(fat_stat(fs, "/long file name 2.txt", &st), 0);
        assert_string_equal(st.short_name, "LONGFI~2.TXT");
        memset(&nm, 0, sizeof nm);
        assert_int_equal(fat_list(fs, "/", collect, &nm), 0);
        assert_string_equal(nm.list[1], "Long File Name 2.txt");
        assert_string_equal(nm.list[7], "Grüße €.txt");
        /* delete removes the LFN entries too; the name is free again */
        assert_int_equal(fat_unlink(fs, "/Long File Name.txt"), 0);
        assert_int_equal(fat_write(fs, "/Long File Name 4.txt", "y", 1, 1700000000), 0);
        assert_int_equal(fat_stat(fs, "/Long File Name 4.txt", &st), 0);
        assert_string_equal(st.short_name, "LONGFI~1.TXT");
        close_fs(fs, fd);
        assert_image_ok(img);
        assert_mtools_content(img, "/Long File Name 4.txt", "y", 1);
        assert_null(mtools_read(img, "/Long File Name.txt", &(size_t){0}));
        free(img);
}


struct short_names {
        char (*list)[13];
        size_t n;
};

static int collect_short(const char *name, const struct fat_stat *st, void *u) {
        struct short_names *sn = u;
        sn->list = xrealloc(sn->list, (sn->n + 1) * sizeof *sn->list);
        memcpy(sn->list[sn->n++], st->short_name, 13);
        return 0;
}

static int cmp_short(const void *a, const void *b) { return strcmp(a, b); }

/* 1200 long names sharing one basis: tails of one to four digits, the
 * basis cut to make room (LONGFI~9, LONGF~10, LONG~100, LON~1000), an 8.3
 * name that looks like an alias skipped, freed tails used again, every
 * alias unique, and fsck.fat and mtools content with the result. */
static void test_many_aliases(void **state) {
        char *img = make_image("aliases.img", 64, 32, 1);
        int fd;
        struct fat_fs *fs = open_fs(img, &fd, 0, 0);
        enum { N = 1200 };
        char p[96];
        assert_int_equal(fat_mkdir(fs, "/dir", 1700000000), 0);
        assert_int_equal(fat_write(fs, "/dir/LONGFI~3.TXT", "plain", 5, 1700000000), 0);
        for (int i = 0; i < N; i++) {
                snprintf(p, sizeof p, "/dir/long file name number %04d.txt", i);
                assert_int_equal(fat_write(fs, p, p, strlen(p), 1700000000), 0);
        }
        struct fat_stat st;
        const struct {
                int i;
                const char *alias;
        } want[] = {{0, "LONGFI~1.TXT"}, {2, "LONGFI~4.TXT"}, {7, "LONGFI~9.TXT"},    {8, "LONGF~10.TXT"},
                    {97, "LONGF~99.TXT"}, {98, "LONG~100.TXT"}, {997, "LONG~999.TXT"}, {998, "LON~1000.TXT"},
                    {N - 1, "LON~1201.TXT"}};
        for (size_t k = 0; k < ARRAY_SIZE(want); k++) {
                snprintf(p, sizeof p, "/dir/long file name number %04d.txt", want[k].i);
                assert_int_equal(fat_stat(fs, p, &st), 0);
                assert_string_equal(st.short_name, want[k].alias);
        }
        /* Freed tails are the smallest free ones: taken again, in order. */
        assert_int_equal(fat_unlink(fs, "/dir/long file name number 0500.txt"), 0); /* LONG~502 */
        assert_int_equal(fat_unlink(fs, "/dir/long file name number 0003.txt"), 0); /* LONGFI~5 */
        assert_int_equal(fat_write(fs, "/dir/long file name again 1.txt", "a", 1, 1700000000), 0);
        assert_int_equal(fat_write(fs, "/dir/long file name again 2.txt", "b", 1, 1700000000), 0);
        assert_int_equal(fat_write(fs, "/dir/long file name again 3.txt", "c", 1, 1700000000), 0);
        assert_int_equal(fat_stat(fs, "/dir/long file name again 1.txt", &st), 0);
        assert_string_equal(st.short_name, "LONGFI~5.TXT");
        assert_int_equal(fat_stat(fs, "/dir/long file name again 2.txt", &st), 0);
        assert_string_equal(st.short_name, "LONG~502.TXT");
        assert_int_equal(fat_stat(fs, "/dir/long file name again 3.txt", &st), 0);
        assert_string_equal(st.short_name, "LON~1202.TXT");
        struct short_names sn = {0};
        assert_int_equal(fat_list(fs, "/dir", collect_short, &sn), 0);
        assert_int_equal(sn.n, N + 2);
        qsort(sn.list, sn.n, sizeof *sn.list, cmp_short);
        for (size_t k = 1; k < sn.n; k++)
                if (!strcmp(sn.list[k - 1], sn.list[k]))
                        fail_msg("alias %s twice", sn.list[k]);
        free(sn.list);
        close_fs(fs, fd);
        assert_image_ok(img);
        const char *dir[] = {"mdir", "-i", img, "::/dir", NULL};
        char *out;
        assert_int_equal(tu_run_capture(dir, &out), 0);
        for (int i = 0; i < N; i++) {
                snprintf(p, sizeof p, "long file name number %04d.txt\n", i);
                if ((i == 500 || i == 3) != !strstr(out, p))
                        fail_msg("mdir: %s%s", p, i == 500 || i == 3 ? " listed" : " missing");
        }
        assert_non_null(strstr(out, "LON~1202 TXT"));
        free(out);
        assert_mtools_content(img, "/dir/long file name number 1199.txt", "/dir/long file name number 1199.txt", 35);
        assert_mtools_content(img, "/dir/long file name again 2.txt", "b", 1);
        assert_mtools_content(img, "/dir/LONGFI~3.TXT", "plain", 5);
        free(img);
}

/* LFN entries whose checksum does not match their 8.3 entry are orphans:
 * ignored, the 8.3 name is what remains. */
/* The first 16 entries of the root directory, and where they are: after the
 * FATs on FAT16, in cluster 2 (its root's) on FAT32. */
static uint64_t read_root(const char *img, uint8_t ents[512]) {
        int fd = open(img, O_RDONLY);
        assert_true(fd >= 0);
        uint8_t bs[512];
        assert_int_equal(pread_full(fd, bs, 512, 0), 0);
        uint64_t fatsz = get_le16(bs + 22) ? get_le16(bs + 22) : get_le32(bs + 36);
        uint64_t root = ((uint64_t)get_le16(bs + 14) + (uint64_t)bs[16] * fatsz) * get_le16(bs + 11);
        assert_int_equal(pread_full(fd, ents, 512, root), 0);
        close(fd);
        return root;
}

static void write_root(const char *img, const uint8_t ents[512], uint64_t root) {
        int fd = open(img, O_RDWR);
        assert_true(fd >= 0);
        assert_int_equal(pwrite_full(fd, ents, 512, root), 0);
        close(fd);
}

static void test_orphan_lfn_ignored(void **state) {
        char *img = make_image("orphan.img", 64, 32, 1);
        int fd;
        struct fat_fs *fs = open_fs(img, &fd, 0, 0);
        assert_int_equal(fat_write(fs, "/Long File Name.txt", "abc", 3, 1700000000), 0);
        close_fs(fs, fd);
        uint8_t ents[512];
        uint64_t root = read_root(img, ents);
        int changed = 0;
        for (int i = 0; i < 16; i++)
                if (ents[i * 32 + 11] == 0x0F && ents[i * 32] != 0xE5) {
                        ents[i * 32 + 13] ^= 0x5A;
                        changed++;
                }
        assert_int_equal(changed, 2);
        write_root(img, ents, root);
        fs = open_fs(img, &fd, 0, 0);
        struct fat_stat st;
        assert_int_equal(fat_stat(fs, "/Long File Name.txt", &st), -ENOENT);
        assert_int_equal(fat_stat(fs, "/longfi~1.txt", &st), 0);
        struct names nm = {0};
        assert_int_equal(fat_list(fs, "/", collect, &nm), 0);
        assert_int_equal(nm.n, 1);
        assert_string_equal(nm.list[0], "LONGFI~1.TXT");
        assert_fat_content(fs, "/LONGFI~1.TXT", "abc", 3);
        /* A new file with the same long name gets a fresh alias. */
        assert_int_equal(fat_write(fs, "/Long File Name.txt", "new", 3, 1700000000), 0);
        assert_int_equal(fat_stat(fs, "/Long File Name.txt", &st), 0);
        assert_string_equal(st.short_name, "LONGFI~2.TXT");
        close_fs(fs, fd);
        assert_mtools_content(img, "/Long File Name.txt", "new", 3);
        free(img);
}

static uint8_t lfn_checksum(const char raw[11]) {
        uint8_t sum = 0;
        for (int i = 0; i < 11; i++)
                sum = (uint8_t)(((sum & 1) << 7) + (sum >> 1) + (uint8_t)raw[i]);
        return sum;
}

/* LFN entries right before a free slot are orphans (a tool deleted only
 * their 8.3 entry, or crashed before writing it).  Their checksum is made
 * to match NEW.TXT, the 1-in-256 case where Linux, mtools and fsck.fat
 * read them as the long name of a plain 8.3 entry written into that slot:
 * the new file must not take it, and the orphans end up freed as fsck.fat
 * would free them.  The slot is the deleted 8.3 entry or the end marker;
 * the new name plain 8.3 or long. */
static void test_orphan_lfn_before_free_slot(void **state) {
        char *empty = xasprintf("%s/empty", tmpdir);
        int efd = open(empty, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        assert_true(efd >= 0);
        close(efd);
        for (int k = 0; k < 8; k++) {
                int bits = k & 1 ? 32 : 16;
                bool end_marker = k & 2, plain = !(k & 4);
                const char *name = plain ? "/new.txt" : "/A New Long Name.txt";
                char iname[32];
                snprintf(iname, sizeof iname, "orphan-slot%d.img", k);
                char *img = make_image(iname, 64, bits, bits == 32 ? 1 : 0);
                const char *cp[] = {"mcopy", "-i", img, empty, "::/Some Long Name.txt", NULL};
                assert_int_equal(tu_run(cp, NULL, TU_STDERR_KEEP), 0);
                uint8_t ents[512];
                uint64_t root = read_root(img, ents);
                int nlfn = 0, slot = -1;
                for (int i = 0; i < 16; i++) {
                        uint8_t *e = ents + i * 32;
                        if (e[11] == 0x0F) {
                                e[13] = lfn_checksum("NEW     TXT");
                                nlfn++;
                        } else if (!memcmp(e, "SOMELO~1TXT", 11)) {
                                if (end_marker)
                                        memset(e, 0, 32);
                                else
                                        e[0] = 0xE5;
                                slot = i;
                        }
                }
                assert_int_equal(nlfn, 2);
                assert_int_equal(slot, 3); /* after the volume label and the two LFN entries */
                write_root(img, ents, root);
                const char *fsck[] = {"fsck.fat", "-n", img, NULL};
                char *out;
                tu_run_capture(fsck, &out);
                assert_non_null(strstr(out, "Orphaned long file name part \"Some Long Name.txt\""));
                free(out);

                int fd;
                struct fat_fs *fs = open_fs(img, &fd, 0, 0);
                assert_int_equal(fat_write(fs, name, "new", 3, 1700000000), 0);
                struct names nm = {0};
                assert_int_equal(fat_list(fs, "/", collect, &nm), 0);
                assert_int_equal(nm.n, 1);
                assert_string_equal(nm.list[0], name + 1);
                close_fs(fs, fd);
                read_root(img, ents);
                if (plain)
                        assert_memory_equal(ents + slot * 32, "NEW     TXT", 11); /* the orphans' neighbour */
                assert_image_ok(img);
                assert_mtools_content(img, name, "new", 3);
                assert_null(mtools_read(img, "/Some Long Name.txt", &(size_t){0}));
                const char *dir[] = {"mdir", "-i", img, "::/", NULL};
                assert_int_equal(tu_run_capture(dir, &out), 0);
                assert_null(strstr(out, "Some Long Name"));
                assert_non_null(strstr(out, plain ? "new      txt" : "A New Long Name.txt"));
                free(out);
                free(img);
        }
        free(empty);
}

/* On FAT16 an entry's cluster_hi is reserved (OS/2 stored an extended
 * attribute handle there): Linux, fsck.fat and mtools ignore it, so must we. */
static void test_fat16_cluster_hi_ignored(void **state) {
        (void)state;
        char *img = make_image("hi16.img", 64, 16, 0);
        int fd;
        struct fat_fs *fs = open_fs(img, &fd, 0, 0);
        assert_int_equal(fat_write(fs, "/HELLO.TXT", "hello", 5, 1700000000), 0);
        close_fs(fs, fd);
        uint8_t ents[512];
        uint64_t root = read_root(img, ents);
        int changed = 0;
        for (int i = 0; i < 16; i++)
                if (!memcmp(ents + i * 32, "HELLO   TXT", 11)) {
                        put_le16(ents + i * 32 + 20, 1);
                        changed++;
                }
        assert_int_equal(changed, 1);
        write_root(img, ents, root);
        assert_true(fsck_clean(img));
        fs = open_fs(img, &fd, 0, 0);
        assert_fat_content(fs, "/HELLO.TXT", "hello", 5);
        assert_int_equal(fat_write(fs, "/HELLO.TXT", "bye", 3, 1700000000), 0);
        close_fs(fs, fd);
        assert_true(fsck_clean(img));
        assert_mtools_content(img, "/HELLO.TXT", "bye", 3);
        free(img);
}

static void test_subdirectories(void **state) {
        for (int bits = 16; bits <= 32; bits += 16) {
                char *img = make_image(bits == 16 ? "sub16.img" : "sub32.img", 64, bits, bits == 16 ? 4 : 1);
                int fd;
                struct fat_fs *fs = open_fs(img, &fd, 0, 0);
                uint64_t free0 = fat_free_bytes(fs);
                assert_int_equal(fat_mkdir(fs, "/overlays/deep/er", 1700000000), 0);
                assert_int_equal(fat_mkdir(fs, "/overlays/deep", 1700000000), 0); /* -p: exists is fine */
                assert_int_equal(fat_mkdir(fs, "/", 1700000000), 0);
                /* Enough long names to grow the directory over several clusters. */
                for (int i = 0; i < 60; i++) {
                        char p[128];
                        snprintf(p, sizeof p, "/overlays/deep/er/device tree overlay number %03d.dtbo", i);
                        assert_int_equal(fat_write(fs, p, p, strlen(p), 1700000000), 0);
                }
                struct fat_stat st;
                assert_int_equal(fat_stat(fs, "/OVERLAYS/Deep", &st), 0);
                assert_true(st.is_dir);
                uint8_t *d;
                size_t n;
                assert_int_equal(fat_read(fs, "/overlays", &d, &n), -EISDIR);
                assert_int_equal(fat_unlink(fs, "/overlays/deep"), -ENOTEMPTY);
                assert_int_equal(fat_write(fs, "/overlays/deep/er/device tree overlay number 000.dtbo/x", "", 0, 0),
                                 -ENOTDIR);
                assert_int_equal(fat_mkdir(fs, "/overlays/deep/er/device tree overlay number 001.dtbo", 0), -ENOTDIR);
                assert_int_equal(fat_write(fs, "/overlays", "", 0, 0), -EINVAL);
                assert_int_equal(fat_write(fs, "/nodir/file", "", 0, 0), -ENOENT);
                assert_int_equal(fat_mkdir(fs, "/empty", 1700000000), 0);
                close_fs(fs, fd);
                assert_image_ok(img);
                const char *p = "/overlays/deep/er/device tree overlay number 059.dtbo";
                assert_mtools_content(img, p, p, strlen(p));
                const char *dir[] = {"mdir", "-i", img, "::/overlays/deep/er", NULL};
                char *out;
                assert_int_equal(tu_run_capture(dir, &out), 0);
                assert_non_null(strstr(out, "62 files")); /* mdir counts . and .. */
                free(out);

                fs = open_fs(img, &fd, 0, 0);
                assert_int_equal(fat_unlink(fs, "/empty"), 0);
                for (int i = 0; i < 60; i++) {
                        char q[128];
                        snprintf(q, sizeof q, "/overlays/deep/er/device tree overlay number %03d.dtbo", i);
                        assert_int_equal(fat_unlink(fs, q), 0);
                }
                assert_int_equal(fat_unlink(fs, "/overlays/deep/er"), 0);
                assert_int_equal(fat_unlink(fs, "/overlays/deep"), 0);
                assert_int_equal(fat_unlink(fs, "/overlays"), 0);
                assert_int_equal(fat_free_bytes(fs), free0);
                assert_int_equal(fat_unlink(fs, "/"), -EBUSY);
                close_fs(fs, fd);
                assert_image_ok(img);
                free(img);
        }
}

/* fat_check_writes says what the writes will meet: a dry run is only as
 * good as this prediction, so each one is checked against the writes. */
static void test_check_writes(void **state) {
        (void)state;
        /* FAT16: two root slots left; user-data takes both (a long name) */
        char *img = make_image("check16.img", 64, 16, 0);
        int fd;
        struct fat_fs *fs = open_fs(img, &fd, 0, 0);
        for (int i = 0; i < 509; i++) {
                char p[32];
                snprintf(p, sizeof p, "/F%04d.TXT", i);
                assert_int_equal(fat_write(fs, p, "x", 1, 1700000000), 0);
        }
        uint64_t cl = 99, cs = fat_cluster_bytes(fs);
        const struct fat_planned one[] = {{"/user-data", 10}}, two[] = {{"/user-data", 10}, {"/meta-data", 10}};
        assert_int_equal(fat_check_writes(fs, one, 1, &cl), 0);
        assert_int_equal(cl, 1);
        capture_begin();
        int r = fat_check_writes(fs, two, 2, &cl);
        char *err = capture_end();
        assert_int_equal(r, -ENOROOM);
        assert_non_null(strstr(err, "no room for /meta-data: its root directory is full"));
        free(err);
        /* and the writes meet just that */
        assert_int_equal(fat_write(fs, "/user-data", "0123456789", 10, 1700000000), 0);
        capture_begin();
        assert_int_equal(fat_write(fs, "/meta-data", "0123456789", 10, 1700000000), -ENOROOM);
        free(capture_end());
        /* a directory where a file goes */
        assert_int_equal(fat_unlink(fs, "/F0000.TXT"), 0);
        assert_int_equal(fat_mkdir(fs, "/SSH", 1700000000), 0);
        const struct fat_planned ssh[] = {{"/ssh", 0}};
        capture_begin();
        r = fat_check_writes(fs, ssh, 1, &cl);
        err = capture_end();
        assert_int_equal(r, -EINVAL);
        assert_non_null(strstr(err, "boot partition: /ssh is a directory in the base"));
        free(err);
        close_fs(fs, fd);
        free(img);

        /* FAT32: names fill the root's clusters; the one that needs another
         * cluster is counted, and the write takes exactly that */
        img = make_image("check32.img", 64, 32, 1);
        fs = open_fs(img, &fd, 0, 0);
        cs = fat_cluster_bytes(fs);
        bool grew = false;
        for (int i = 0; i < 200 && !grew; i++) {
                char p[32];
                snprintf(p, sizeof p, "/G%04d.TXT", i);
                const struct fat_planned g[] = {{p, 1}};
                assert_int_equal(fat_check_writes(fs, g, 1, &cl), 0);
                assert_true(cl == 1 || cl == 2);
                grew = cl == 2;
                uint64_t before = fat_free_bytes(fs);
                assert_int_equal(fat_write(fs, p, "x", 1, 1700000000), 0);
                assert_int_equal(before - fat_free_bytes(fs), cl * cs);
        }
        assert_true(grew);
        close_fs(fs, fd);
        assert_image_ok(img);
        free(img);
}

static void test_fat16_root_full(void **state) {
        char *img = make_image("root16.img", 64, 16, 0);
        int fd;
        struct fat_fs *fs = open_fs(img, &fd, 0, 0);
        int r = 0, i;
        for (i = 0; i < 600; i++) {
                char p[32];
                snprintf(p, sizeof p, "/F%04d.TXT", i);
                if (i == 511)
                        capture_begin();
                r = fat_write(fs, p, "x", 1, 1700000000);
                if (r < 0)
                        break;
        }
        char *err = capture_end();
        assert_int_equal(r, -ENOROOM);
        assert_int_equal(i, 511); /* 512 minus the volume label */
        assert_non_null(strstr(err, "test.img: "));
        assert_non_null(strstr(err, "boot partition: no room for /F0511.TXT: its root directory is full (FAT16 has a fixed 512 entries)"));
        free(err);
        /* a subdirectory still works: it grows by clusters */
        assert_int_equal(fat_unlink(fs, "/F0007.TXT"), 0);
        assert_int_equal(fat_mkdir(fs, "/sub", 1700000000), 0);
        assert_int_equal(fat_write(fs, "/sub/x", "x", 1, 1700000000), 0);
        close_fs(fs, fd);
        assert_image_ok(img);
        assert_mtools_content(img, "/F0510.TXT", "x", 1);
        assert_mtools_content(img, "/sub/x", "x", 1);
        free(img);
}

static void test_full_partition(void **state) {
        char *img = make_image("full.img", 40, 32, 1);
        int fd;
        struct fat_fs *fs = open_fs(img, &fd, 0, 0);
        uint64_t avail = fat_free_bytes(fs);
        size_t too_big = (size_t)avail + 1;
        uint8_t *data = tu_pattern(too_big, 3);
        capture_begin();
        int r = fat_write(fs, "/big.bin", data, too_big, 1700000000);
        char *err = capture_end();
        assert_int_equal(r, -ENOROOM);
        assert_non_null(strstr(err, "bytes free"));
        assert_non_null(strstr(err, "/big.bin"));
        free(err);
        assert_int_equal(fat_free_bytes(fs), avail); /* nothing leaked */
        /* exactly the free space fits (root has room for the entry) */
        assert_int_equal(fat_write(fs, "/big.bin", data, (size_t)avail, 1700000000), 0);
        assert_int_equal(fat_free_bytes(fs), 0);
        assert_int_equal(fat_write(fs, "/one.more", "x", 1, 1700000000), -ENOROOM);
        assert_int_equal(fat_mkdir(fs, "/dir", 1700000000), -ENOROOM);
        /* replacing in place can reuse the file's own clusters */
        assert_int_equal(fat_write(fs, "/big.bin", data + 1, (size_t)avail, 1700000000), 0);
        close_fs(fs, fd);
        assert_image_ok(img);
        assert_mtools_content(img, "/big.bin", data + 1, (size_t)avail);
        free(data);
        free(img);
}

static uint32_t fsinfo_free(const char *img) {
        int fd = open(img, O_RDONLY);
        uint8_t fi[512];
        assert_int_equal(pread_full(fd, fi, 512, 512), 0);
        close(fd);
        assert_int_equal(get_le32(fi), 0x41615252u);
        return get_le32(fi + 488);
}

static void test_fsinfo_and_free_count(void **state) {
        char *img = make_image("fsinfo.img", 64, 32, 1);
        int fd;
        struct fat_fs *fs = open_fs(img, &fd, 0, 0);
        uint64_t free0 = fat_free_bytes(fs);
        uint8_t *data = tu_pattern(100000, 4);
        assert_int_equal(fat_write(fs, "/a.bin", data, 100000, 1700000000), 0);
        assert_int_equal(free0 - fat_free_bytes(fs), DIV_ROUND_UP(100000, 512) * 512);
        close_fs(fs, fd);
        assert_int_equal((uint64_t)fsinfo_free(img) * 512, free0 - DIV_ROUND_UP(100000, 512) * 512);
        assert_image_ok(img);
        fs = open_fs(img, &fd, 0, 0);
        assert_int_equal(fat_unlink(fs, "/a.bin"), 0);
        close_fs(fs, fd);
        assert_int_equal((uint64_t)fsinfo_free(img) * 512, free0);
        assert_image_ok(img);
        free(data);
        free(img);
}

/* A partition inside a bigger file: bytes outside the window never change. */
static void test_offset_window(void **state) {
        char *img = xasprintf("%s/window.img", tmpdir);
        uint64_t off = 1 << 20, size = 64ull << 20, tail = 1 << 20;
        int fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0644);
        uint8_t *pad = xmalloc(off);
        memset(pad, 0xAB, off);
        assert_int_equal(pwrite_full(fd, pad, off, 0), 0);
        assert_int_equal(pwrite_full(fd, pad, tail, off + size), 0);
        close(fd);
        const char *mk[] = {"mkfs.vfat", "-F", "32", "-s", "1", "--offset", "2048", "-i", "1", img, "65536", NULL};
        assert_int_equal(tu_run_capture(mk, NULL), 0);

        struct fat_fs *fs = open_fs(img, &fd, off, size);
        uint8_t *data = tu_pattern(200000, 5);
        assert_int_equal(fat_mkdir(fs, "/overlays", 1700000000), 0);
        assert_int_equal(fat_write(fs, "/overlays/x.dtbo", data, 200000, 1700000000), 0);
        assert_int_equal(fat_write(fs, "/cmdline.txt", "root=x\n", 7, 1700000000), 0);
        close_fs(fs, fd);

        /* A window one sector too small for the filesystem is refused. */
        fd = open(img, O_RDWR);
        struct fat_fs *bad = NULL;
        capture_begin();
        assert_int_equal(fat_open(fd, off, size - 512, "small.img", &bad), -EINVAL);
        char *err = capture_end();
        assert_non_null(strstr(err, "larger than its partition"));
        free(err);
        close(fd);

        fd = open(img, O_RDONLY);
        uint8_t *chk = xmalloc(off);
        assert_int_equal(pread_full(fd, chk, off, 0), 0);
        assert_memory_equal(chk, pad, off);
        assert_int_equal(pread_full(fd, chk, tail, off + size), 0);
        assert_memory_equal(chk, pad, tail);
        /* extract the window for fsck.fat, which has no offset option */
        char *part = xasprintf("%s/window-part.img", tmpdir);
        int out = open(part, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        uint8_t *buf = xmalloc(1 << 20);
        for (uint64_t at = 0; at < size; at += 1 << 20) {
                assert_int_equal(pread_full(fd, buf, 1 << 20, off + at), 0);
                assert_int_equal(pwrite_full(out, buf, 1 << 20, at), 0);
        }
        close(out);
        close(fd);
        assert_image_ok(part);
        char *spec = xasprintf("%s@@%" PRIu64, img, off);
        assert_mtools_content(spec, "/overlays/x.dtbo", data, 200000);
        assert_mtools_content(spec, "/CMDLINE.TXT", "root=x\n", 7);
        free(spec);
        free(buf);
        free(part);
        free(chk);
        free(pad);
        free(data);
        free(img);
}

static void expect_open_error(const char *img, const char *msg) {
        int fd = open(img, O_RDWR);
        assert_true(fd >= 0);
        struct stat st;
        fstat(fd, &st);
        struct fat_fs *fs = NULL;
        unsigned before = log_error_count();
        capture_begin();
        int r = fat_open(fd, 0, (uint64_t)st.st_size, "base.img", &fs);
        char *err = capture_end();
        assert_true(r < 0);
        assert_null(fs);
        assert_int_equal(log_error_count(), before + 1);
        assert_non_null(strstr(err, "base.img: "));
        assert_non_null(strstr(err, msg));
        free(err);
        close(fd);
}

static void test_fat12_exfat_refused(void **state) {
        char *img = make_image("fat12.img", 4, 12, 0);
        expect_open_error(img, "boot partition is FAT12; only FAT16 and FAT32 are supported");
        free(img);
        /* exFAT: OEM name "EXFAT   ", no BPB */
        img = xasprintf("%s/exfat.img", tmpdir);
        int fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0644);
        uint8_t s[4096] = {0xEB, 0x76, 0x90, 'E', 'X', 'F', 'A', 'T', ' ', ' ', ' '};
        s[510] = 0x55;
        s[511] = 0xAA;
        assert_int_equal(pwrite_full(fd, s, sizeof s, 0), 0);
        close(fd);
        expect_open_error(img, "boot partition is exFAT; only FAT16 and FAT32 are supported");
        /* not a FAT at all */
        memset(s, 0, sizeof s);
        fd = open(img, O_RDWR);
        assert_int_equal(pwrite_full(fd, s, sizeof s, 0), 0);
        close(fd);
        expect_open_error(img, "signature 0x55AA");
        free(img);
}

static void test_errors_and_quiet_enoent(void **state) {
        char *img = make_image("err.img", 64, 16, 0);
        int fd;
        struct fat_fs *fs = open_fs(img, &fd, 0, 0);
        unsigned before = log_error_count();
        struct fat_stat st;
        uint8_t *d;
        size_t n;
        assert_int_equal(fat_stat(fs, "/missing", &st), -ENOENT);
        assert_int_equal(fat_stat(fs, "/missing/deeper", &st), -ENOENT);
        assert_int_equal(fat_read(fs, "/ssh", &d, &n), -ENOENT);
        assert_int_equal(log_error_count(), before); /* probing does not log */
        capture_begin();
        assert_int_equal(fat_unlink(fs, "/missing"), -ENOENT);
        assert_int_equal(fat_write(fs, "/bad:name", "", 0, 0), -EINVAL);
        assert_int_equal(fat_write(fs, "/trailing.", "", 0, 0), -EINVAL);
        assert_int_equal(fat_write(fs, "/a/../b", "", 0, 0), -EINVAL);
        assert_int_equal(fat_write(fs, "/bad\xff", "", 0, 0), -EINVAL);
        char *err = capture_end();
        free(err);
        assert_int_equal(log_error_count(), before + 5); /* one line per failure */
        /* a 255-character name is fine, 256 is not */
        char longname[300] = "/";
        memset(longname + 1, 'n', 255);
        assert_int_equal(fat_write(fs, longname, "l", 1, 0), 0);
        longname[256] = 'n';
        assert_int_equal(fat_write(fs, longname, "l", 1, 0), -EINVAL);
        close_fs(fs, fd);
        assert_image_ok(img);
        free(img);
}

/* Same operations on two copies of one image give identical bytes. */
static void test_deterministic(void **state) {
        char *img = make_image("det.img", 64, 32, 1);
        uint8_t *out[2];
        size_t len[2];
        for (int k = 0; k < 2; k++) {
                char *copy = xasprintf("%s/det%d.img", tmpdir, k);
                const char *cp[] = {"cp", "--sparse=always", img, copy, NULL};
                assert_int_equal(tu_run(cp, NULL, TU_STDERR_KEEP), 0);
                int fd;
                struct fat_fs *fs = open_fs(copy, &fd, 0, 0);
                assert_int_equal(fat_mkdir(fs, "/a/b", 1700000000), 0);
                assert_int_equal(fat_write(fs, "/a/b/Some Long Name.txt", "hello", 5, 1700000000), 0);
                assert_int_equal(fat_write(fs, "/user-data", "#cloud-config\n", 14, 1700000000), 0);
                close_fs(fs, fd);
                assert_int_equal(read_file(copy, 128 << 20, &out[k], &len[k]), 0);
                free(copy);
        }
        assert_int_equal(len[0], len[1]);
        assert_memory_equal(out[0], out[1], len[0]);
        free(out[0]);
        free(out[1]);
        free(img);
}

/* Corrupt structures: errors, never hangs or crashes. */
static void test_corrupt_chains(void **state) {
        char *img = make_image("corrupt.img", 64, 32, 1);
        int fd;
        struct fat_fs *fs = open_fs(img, &fd, 0, 0);
        uint8_t *data = tu_pattern(5000, 6);
        assert_int_equal(fat_write(fs, "/loop.bin", data, 5000, 1700000000), 0);
        struct fat_stat st;
        assert_int_equal(fat_stat(fs, "/loop.bin", &st), 0);
        close_fs(fs, fd);
        /* Point the file's second cluster back at its first: a cycle. */
        fd = open(img, O_RDWR);
        uint8_t bs[512];
        assert_int_equal(pread_full(fd, bs, 512, 0), 0);
        uint64_t fat0 = (uint64_t)get_le16(bs + 14) * 512;
        uint8_t e[4];
        put_le32(e, st.first_cluster);
        assert_int_equal(pwrite_full(fd, e, 4, fat0 + (st.first_cluster + 1) * 4ull), 0);
        close(fd);
        fs = open_fs(img, &fd, 0, 0);
        uint8_t *d;
        size_t n;
        capture_begin();
        assert_int_equal(fat_unlink(fs, "/loop.bin"), -EINVAL);
        assert_int_equal(fat_write(fs, "/loop.bin", data, 10, 1700000000), -EINVAL);
        char *err = capture_end();
        assert_non_null(strstr(err, "loops"));
        free(err);
        /* the read needs only the file's 10 clusters, and the loop comes
         * within them: the second and first over again are no file's data */
        capture_begin();
        assert_int_equal(fat_read(fs, "/loop.bin", &d, &n), -EINVAL);
        err = capture_end();
        assert_non_null(strstr(err, "test.img: /loop.bin: cluster chain loops"));
        free(err);
        assert_int_equal(fat_close(fs), 0);
        close(fd);
        free(data);
        free(img);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fat32_512),
                cmocka_unit_test(test_fat32_4k),
                cmocka_unit_test(test_fat16),
                cmocka_unit_test(test_cmdline_keeps_83_name),
                cmocka_unit_test(test_long_names_and_aliases),
                cmocka_unit_test(test_many_aliases),
                cmocka_unit_test(test_orphan_lfn_ignored),
                cmocka_unit_test(test_orphan_lfn_before_free_slot),
                cmocka_unit_test(test_subdirectories),
                cmocka_unit_test(test_fat16_cluster_hi_ignored),
                cmocka_unit_test(test_fat16_root_full),
                cmocka_unit_test(test_check_writes),
                cmocka_unit_test(test_full_partition),
                cmocka_unit_test(test_fsinfo_and_free_count),
                cmocka_unit_test(test_offset_window),
                cmocka_unit_test(test_fat12_exfat_refused),
                cmocka_unit_test(test_errors_and_quiet_enoent),
                cmocka_unit_test(test_deterministic),
                cmocka_unit_test(test_corrupt_chains),
        };
        return cmocka_run_group_tests_name("fat", tests, fat_setup, fat_teardown);
}
