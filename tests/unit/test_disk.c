/* SPDX-License-Identifier: GPL-3.0-or-later */
/* disk.c against real images from scripts/make-fixture.sh, checked against
 * what sfdisk and blkid (not our code) say about them. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "disk.h"
#include "log.h"
#include "test_util.h"
#include "util.h"

static char dir[PATH_MAX];
static char *fx_bookworm, *fx_trixie, *fx_gpt;

/* Run argv, stdout into out_path (or /dev/null); returns the exit status. */
static int run(const char *out_path, char *const argv[]) {
        return tu_run((const char *const *)argv, out_path, TU_STDERR_KEEP);
}

static char *run_capture(char *const argv[]) {
        _cleanup_free_ char *out = xasprintf("%s/capture.txt", dir);
        assert_int_equal(run(out, argv), 0);
        uint8_t *d;
        size_t n;
        assert_int_equal(read_file(out, 1 << 20, &d, &n), 0);
        return (char *)d;
}

static char *make_fixture(const char *name, const char *opt1, const char *opt2) {
        char *path = xasprintf("%s/%s.img", dir, name);
        char *argv[] = { "scripts/make-fixture.sh", "-o", path, (char *)opt1, (char *)opt2, NULL };
        if (run(NULL, argv) != 0) {
                fprintf(stderr, "make-fixture.sh %s failed (run from the top directory)\n", name);
                free(path);
                return NULL;
        }
        return path;
}

static char *copy_image(const char *src, const char *name) {
        char *dst = xasprintf("%s/%s.img", dir, name);
        char *argv[] = { "cp", "--sparse=always", (char *)src, dst, NULL };
        assert_int_equal(run(NULL, argv), 0);
        return dst;
}

static int setup(void **state) {
        if (tu_mkdtemp(dir, sizeof dir, "dimimage-test-disk") < 0)
                return -1;
        fx_bookworm = make_fixture("bookworm", NULL, NULL);
        fx_trixie = make_fixture("trixie", "--flavour", "trixie");
        fx_gpt = make_fixture("gpt", "--table", "gpt");
        return fx_bookworm && fx_trixie && fx_gpt ? 0 : -1;
}

static int teardown(void **state) {
        tu_rm_rf(dir);
        free(fx_bookworm);
        free(fx_trixie);
        free(fx_gpt);
        return 0;
}

/* sfdisk -d lines: "IMG1 : start=        8192, size=      524288, type=c" */
struct sf_part {
        unsigned long long start, size;
        char type[40];
};

static unsigned sfdisk_parts(const char *img, struct sf_part *p, unsigned max, char *label_id, size_t idlen) {
        char *argv[] = { "sfdisk", "-d", (char *)img, NULL };
        _cleanup_free_ char *out = run_capture(argv);
        unsigned n = 0;
        for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
                char *s = strstr(line, "start=");
                if (strncmp(line, "label-id: ", 10) == 0)
                        snprintf(label_id, idlen, "%s", line + 10);
                if (!s || n == max)
                        continue;
                assert_int_equal(sscanf(s, "start= %llu, size= %llu, type=%39[^,\n]", &p[n].start, &p[n].size,
                                        p[n].type),
                                 3);
                n++;
        }
        return n;
}

static char *blkid_value(const char *img, uint64_t offset, const char *key) {
        _cleanup_free_ char *off = xasprintf("%llu", (unsigned long long)offset);
        char *argv[] = { "blkid", "-p", "-o", "export", "--offset", off, (char *)img, NULL };
        _cleanup_free_ char *out = run_capture(argv);
        size_t kl = strlen(key);
        for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n"))
                if (strncmp(line, key, kl) == 0 && line[kl] == '=')
                        return xstrdup(line + kl + 1);
        return xstrdup("");
}

static void check_against_tools(const char *img, const char *want_id, uint64_t boot_start) {
        struct disk_layout l;
        assert_int_equal(disk_probe(img, &l), 0);
        assert_string_equal(l.table, "dos");
        assert_string_equal(l.disk_id, want_id);

        struct sf_part sp[8];
        char label_id[64] = "";
        unsigned n = sfdisk_parts(img, sp, 8, label_id, sizeof(label_id));
        assert_int_equal(n, l.n);
        _cleanup_free_ char *want_label = xasprintf("0x%s", want_id);
        assert_string_equal(label_id, want_label);
        struct stat st;
        assert_int_equal(stat(img, &st), 0);
        assert_int_equal(l.image_bytes, (uint64_t)st.st_size);
        for (unsigned i = 0; i < n; i++) {
                const struct disk_part *p = &l.parts[i];
                assert_int_equal(p->number, i + 1);
                assert_int_equal(p->start, sp[i].start);
                assert_int_equal(p->sectors, sp[i].size);
                assert_int_equal(p->mbr_type, (uint8_t)strtoul(sp[i].type, NULL, 16));
                _cleanup_free_ char *type = blkid_value(img, disk_part_offset(p), "TYPE");
                _cleanup_free_ char *label = blkid_value(img, disk_part_offset(p), "LABEL");
                _cleanup_free_ char *uuid = blkid_value(img, disk_part_offset(p), "UUID");
                _cleanup_free_ char *version = blkid_value(img, disk_part_offset(p), "VERSION");
                assert_string_equal(p->fs_type, type);
                assert_string_equal(p->label, label);
                assert_string_equal(p->uuid, uuid);
                assert_string_equal(p->fs_version, version);
                _cleanup_free_ char *pu = xasprintf("%s-%02u", want_id, p->number);
                assert_string_equal(p->partuuid, pu);
        }
        assert_int_equal(l.parts[0].start, boot_start);
        assert_int_equal(l.boot, 0);
        assert_int_equal(l.root, 1);
        assert_string_equal(l.parts[0].fs_type, "vfat");
        assert_string_equal(l.parts[0].label, "bootfs");
        assert_string_equal(l.parts[1].fs_type, "ext4");
        assert_string_equal(l.parts[1].label, "rootfs");
}

static void test_probe_bookworm(void **state) { check_against_tools(fx_bookworm, "2a7c1d5e", 8192); }
static void test_probe_trixie(void **state) { check_against_tools(fx_trixie, "2a7c1d5e", 16384); }

/* Expect exactly one logged error containing `want`. */
static void expect_refusal(const char *img, bool strict, const char *want) {
        struct disk_layout l;
        unsigned before = log_error_count();
        int saved = dup(2);
        fflush(stderr);
        _cleanup_free_ char *errpath = xasprintf("%s/stderr.txt", dir);
        int efd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(efd, 2);
        close(efd);
        int r = strict ? disk_probe(img, &l) : disk_probe_any(img, &l);
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        uint8_t *text;
        size_t n;
        assert_int_equal(read_file(errpath, 1 << 16, &text, &n), 0);
        if (!strstr((char *)text, want))
                fprintf(stderr, "stderr was: %s\nwanted: %s\n", text, want);
        assert_int_equal(r, -EINVAL);
        assert_int_equal(log_error_count(), before + 1);
        assert_non_null(strstr((char *)text, want));
        assert_non_null(strstr((char *)text, img));
        free(text);
}

static char *write_file(const char *name, const void *data, size_t len, uint64_t size) {
        char *p = xasprintf("%s/%s", dir, name);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write_full(fd, data, len), 0);
        assert_int_equal(ftruncate(fd, (off_t)MAX(size, len)), 0);
        close(fd);
        return p;
}

static void set_entry(uint8_t *s0, unsigned i, uint8_t type, uint32_t start, uint32_t len) {
        uint8_t *e = s0 + 446 + 16 * i;
        memset(e, 0, 16);
        e[4] = type;
        put_le32(e + 8, start);
        put_le32(e + 12, len);
}

static void patch_mbr(const char *img, unsigned i, uint8_t type, uint32_t start, uint32_t len) {
        int fd = open(img, O_RDWR);
        assert_true(fd >= 0);
        uint8_t s0[512];
        assert_int_equal(pread_full(fd, s0, 512, 0), 0);
        set_entry(s0, i, type, start, len);
        assert_int_equal(pwrite_full(fd, s0, 512, 0), 0);
        close(fd);
}

static void test_refuse_gpt(void **state) {
        expect_refusal(fx_gpt, true, "GPT partition tables are not supported");
        /* inspect reports it */
        struct disk_layout l;
        assert_int_equal(disk_probe_any(fx_gpt, &l), 0);
        assert_string_equal(l.table, "gpt");
        assert_int_equal(l.n, 2);
        assert_int_equal(l.parts[0].start, 8192);
        assert_string_equal(l.parts[0].fs_type, "vfat");
        assert_string_equal(l.parts[1].fs_type, "ext4");
        assert_int_equal(l.boot, 0);
        assert_int_equal(l.root, 1);
}

static void test_refuse_tiny_text_zero(void **state) {
        _cleanup_free_ char *tiny = write_file("tiny.img", "\x01\x02\x03", 3, 4096);
        expect_refusal(tiny, true, "too small to be a disk image (4096 bytes)");
        expect_refusal(tiny, false, "too small to be a disk image");
        const char *txt = "console=serial0,115200 root=PARTUUID=2a7c1d5e-02\nhello\n";
        _cleanup_free_ char *text = write_file("text.img", txt, strlen(txt), 0);
        expect_refusal(text, true, "is a text file");
        expect_refusal(text, false, "is a text file");
        _cleanup_free_ char *zero = write_file("zero.img", "", 0, 8u << 20);
        expect_refusal(zero, true, "image is empty (all zero)");
        expect_refusal(zero, false, "image is empty (all zero)");
        _cleanup_free_ char *empty = write_file("empty.img", "", 0, 0);
        expect_refusal(empty, false, "image is empty (0 bytes)");
        /* not zero, but no 0x55AA: no table */
        uint8_t junk[512];
        for (unsigned i = 0; i < sizeof(junk); i++)
                junk[i] = (uint8_t)(i * 7 + 1);
        junk[0] = 0;
        _cleanup_free_ char *nt = write_file("notable.img", junk, sizeof(junk), 4u << 20);
        expect_refusal(nt, true, "no partition table found");
        expect_refusal(nt, false, "no partition table found");
}

static void test_refuse_shapes(void **state) {
        /* p2 past the end */
        _cleanup_free_ char *trunc = copy_image(fx_bookworm, "trunc");
        assert_int_equal(truncate(trunc, 400ll << 20), 0);
        expect_refusal(trunc, true, "partition 2 ends at sector 1187840, past the end of the image (819200 sectors)");
        struct disk_layout l;
        assert_int_equal(disk_probe_any(trunc, &l), 0);
        assert_int_equal(l.n, 2);
        assert_int_equal(l.parts[1].sectors, 655360);

        /* overlapping p1/p2 */
        _cleanup_free_ char *ov = copy_image(fx_bookworm, "overlap");
        patch_mbr(ov, 1, 0x83, 8192 + 1000, 655360);
        expect_refusal(ov, true, "partitions 1 and 2 overlap");
        assert_int_equal(disk_probe_any(ov, &l), 0);

        /* no FAT: p1 pointed at an empty area */
        _cleanup_free_ char *nofat = copy_image(fx_bookworm, "nofat");
        patch_mbr(nofat, 0, 0x0c, 2048, 4096);
        expect_refusal(nofat, true, "no FAT boot partition");
        assert_int_equal(disk_probe_any(nofat, &l), 0);
        assert_int_equal(l.boot, -1);
        assert_int_equal(l.root, 1);

        /* no ext4: p2 removed */
        _cleanup_free_ char *noext = copy_image(fx_bookworm, "noext4");
        patch_mbr(noext, 1, 0, 0, 0);
        expect_refusal(noext, true, "no ext4 root partition");
        assert_int_equal(disk_probe_any(noext, &l), 0);
        assert_int_equal(l.n, 1);
        assert_int_equal(l.root, -1);

        /* an MBR with no partitions at all */
        _cleanup_free_ char *none = copy_image(fx_bookworm, "noparts");
        patch_mbr(none, 0, 0, 0, 0);
        patch_mbr(none, 1, 0, 0, 0);
        expect_refusal(none, true, "no FAT boot partition");

        /* partition over the MBR itself */
        _cleanup_free_ char *zero = copy_image(fx_bookworm, "atzero");
        patch_mbr(zero, 2, 0x83, 0, 100);
        expect_refusal(zero, true, "partition 3 starts at sector 0");
}

/* A bare FAT filesystem (0x55AA at 510, no table): libparted calls it "loop". */
static void test_superfloppy(void **state) {
        _cleanup_free_ char *img = xasprintf("%s/floppy.img", dir);
        char *argv[] = { "mkfs.vfat", "-C", img, "8192", NULL };
        assert_int_equal(run(NULL, argv), 0);
        expect_refusal(img, true, "no partition table found");
        expect_refusal(img, false, "no partition table found");
}

/* Root in a logical partition: probed, but not growable. */
static void test_logical_root(void **state) {
        _cleanup_free_ char *img = copy_image(fx_bookworm, "logical");
        const char *table = "label: dos\nlabel-id: 0x2a7c1d5e\nunit: sectors\n\n"
                            "start=8192, size=522240, type=c\n" /* ends where the EBR goes */
                            "start=530432, size=657408, type=5\n"
                            "start=532480, size=655360, type=83\n";
        _cleanup_free_ char *in = write_file("logical.in", table, strlen(table), 0);
        char *argv[] = { "sh", "-c", "sfdisk -q --no-reread --no-tell-kernel \"$0\" < \"$1\"", img, in, NULL };
        assert_int_equal(run(NULL, argv), 0);
        struct disk_layout l;
        assert_int_equal(disk_probe(img, &l), 0);
        assert_int_equal(l.n, 2);
        assert_int_equal(l.parts[1].number, 5);
        assert_int_equal(l.parts[1].start, 532480);
        assert_string_equal(l.parts[1].fs_type, "ext4");
        assert_string_equal(l.parts[1].partuuid, "2a7c1d5e-05");
        assert_int_equal(l.root, 1);
        unsigned before = log_error_count();
        assert_int_equal(disk_grow_last(img, img, &l, l.image_bytes + (1 << 20)), -EINVAL);
        assert_int_equal(log_error_count(), before + 1);
        struct stat st;
        assert_int_equal(stat(img, &st), 0);
        assert_int_equal((uint64_t)st.st_size, l.image_bytes);
}

/* Messages name the file the user gave, not the temporary copy probed. */
static void test_named(void **state) {
        _cleanup_free_ char *img = copy_image(fx_gpt, "named-copy");
        _cleanup_free_ char *errpath = xasprintf("%s/stderr-named.txt", dir);
        int saved = dup(2);
        fflush(stderr);
        int efd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(efd, 2);
        close(efd);
        struct disk_layout l;
        int r = disk_probe_named(img, "base.img.xz", &l);
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        assert_int_equal(r, -EINVAL);
        uint8_t *text;
        size_t n;
        assert_int_equal(read_file(errpath, 1 << 16, &text, &n), 0);
        assert_non_null(strstr((char *)text, "base.img.xz: GPT"));
        assert_null(strstr((char *)text, "named-copy"));
        free(text);
        assert_int_equal(disk_probe_any_named(img, "base.img.xz", &l), 0);
}

static void test_missing(void **state) {
        struct disk_layout l;
        _cleanup_free_ char *p = xasprintf("%s/does-not-exist.img", dir);
        unsigned before = log_error_count();
        assert_int_equal(disk_probe_any(p, &l), -ENOENT);
        assert_int_equal(log_error_count(), before + 1);
        assert_int_equal(disk_probe(dir, &l), -EISDIR);
}

static void test_grow(void **state) {
        _cleanup_free_ char *img = copy_image(fx_bookworm, "grow");
        uint8_t before[512], after[512];
        int fd = open(img, O_RDONLY);
        assert_int_equal(pread_full(fd, before, 512, 0), 0);
        close(fd);

        struct disk_layout l;
        assert_int_equal(disk_probe(img, &l), 0);
        uint64_t old = l.image_bytes;
        uint64_t want = old + (64ull << 20);
        unsigned before_err = log_error_count();
        assert_int_equal(disk_grow_last(img, img, &l, want - 512 * 3 + 1), -EINVAL); /* not sector-aligned */
        assert_int_equal(disk_grow_last(img, img, &l, old - 512), -EINVAL);          /* shrink */
        assert_int_equal(log_error_count(), before_err + 2);
        assert_int_equal(disk_grow_last(img, img, &l, want), 0);
        assert_int_equal(l.image_bytes, want);
        assert_int_equal(l.parts[1].sectors, 655360 + 131072);

        struct stat st;
        assert_int_equal(stat(img, &st), 0);
        assert_int_equal((uint64_t)st.st_size, want);
        fd = open(img, O_RDONLY);
        assert_int_equal(pread_full(fd, after, 512, 0), 0);
        close(fd);
        /* boot code, disk id, p1's entry and the signature are untouched */
        assert_memory_equal(before, after, 446 + 16);
        assert_memory_equal(before + 446 + 32, after + 446 + 32, 512 - 446 - 32);
        /* p2: only the CHS end and the length changed */
        assert_memory_equal(before + 446 + 16, after + 446 + 16, 5);
        assert_memory_equal(before + 446 + 16 + 8, after + 446 + 16 + 8, 4);

        struct sf_part sp[4];
        char label_id[64] = "";
        assert_int_equal(sfdisk_parts(img, sp, 4, label_id, sizeof(label_id)), 2);
        assert_string_equal(label_id, "0x2a7c1d5e");
        assert_int_equal(sp[0].start, 8192);
        assert_int_equal(sp[0].size, 524288);
        assert_int_equal(sp[1].start, 532480);
        assert_int_equal(sp[1].size, 655360 + 131072);

        struct disk_layout again;
        assert_int_equal(disk_probe(img, &again), 0);
        assert_int_equal(again.parts[1].sectors, 655360 + 131072);
        assert_string_equal(again.disk_id, "2a7c1d5e");
        assert_string_equal(again.parts[1].uuid, l.parts[1].uuid);

        /* the same image again: a no-op grow is fine */
        assert_int_equal(disk_grow_last(img, img, &again, want), 0);
        /* a GPT layout cannot be grown */
        struct disk_layout g;
        assert_int_equal(disk_probe_any(fx_gpt, &g), 0);
        before_err = log_error_count();
        assert_int_equal(disk_grow_last(fx_gpt, fx_gpt, &g, g.image_bytes + (1 << 20)), -EINVAL);
        assert_int_equal(log_error_count(), before_err + 1);
}

/* CHS end as sfdisk writes it: compare against a table sfdisk made. */
static void test_grow_chs_matches_sfdisk(void **state) {
        _cleanup_free_ char *img = copy_image(fx_bookworm, "chs");
        struct disk_layout l;
        assert_int_equal(disk_probe(img, &l), 0);
        uint64_t want = l.image_bytes + (8ull << 20);
        assert_int_equal(disk_grow_last(img, img, &l, want), 0);
        uint8_t ours[512], theirs[512];
        int fd = open(img, O_RDONLY);
        assert_int_equal(pread_full(fd, ours, 512, 0), 0);
        close(fd);
        /* let sfdisk rewrite the same p2 and compare its entry */
        _cleanup_free_ char *size = xasprintf("%llu", (unsigned long long)l.parts[1].sectors);
        _cleanup_free_ char *line = xasprintf("start=532480, size=%s, type=83\n", size);
        _cleanup_free_ char *sf = write_file("sf.in", line, strlen(line), 0);
        char *argv[] = { "sh", "-c", "sfdisk -q --no-reread --no-tell-kernel -N 2 \"$0\" < \"$1\"", img, sf, NULL };
        assert_int_equal(run(NULL, argv), 0);
        fd = open(img, O_RDONLY);
        assert_int_equal(pread_full(fd, theirs, 512, 0), 0);
        close(fd);
        assert_memory_equal(ours + 446 + 16, theirs + 446 + 16, 16);
        assert_memory_equal(ours + 440, theirs + 440, 4);
}

int main(void) {
        log_level = LOG_QUIET;
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_probe_bookworm),
                cmocka_unit_test(test_probe_trixie),
                cmocka_unit_test(test_refuse_gpt),
                cmocka_unit_test(test_refuse_tiny_text_zero),
                cmocka_unit_test(test_refuse_shapes),
                cmocka_unit_test(test_superfloppy),
                cmocka_unit_test(test_logical_root),
                cmocka_unit_test(test_named),
                cmocka_unit_test(test_missing),
                cmocka_unit_test(test_grow),
                cmocka_unit_test(test_grow_chs_matches_sfdisk),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
