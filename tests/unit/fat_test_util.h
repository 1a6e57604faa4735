/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Helpers shared by test_fat.c and test_fat_random.c: real images made with
 * mkfs.vfat, checked with fsck.fat and read back with mtools (run through
 * test_util.h).  Static functions in a header on purpose: each test is one
 * translation unit and uses a subset (hence "unused"). */
#pragma once

#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

#include "test_util.h"

static char tmpdir[256];

static void tmpdir_make(void) {
        if (tu_mkdtemp(tmpdir, sizeof tmpdir, "dimimage-fat") < 0)
                abort();
        setenv("MTOOLS_SKIP_CHECK", "1", 1);
        setenv("MTOOLS_NO_VFAT", "0", 1);
}

/* The group setup and teardown of both FAT tests. */
static __attribute__((unused)) int fat_setup(void **state) {
        tmpdir_make();
        return 0;
}

static __attribute__((unused)) int fat_teardown(void **state) {
        tu_rm_rf(tmpdir);
        return 0;
}

/* mkfs.vfat on a new sparse file of size_mib; bits 12/16/32; spc 0 = default. */
static __attribute__((unused)) char *make_image(const char *name, unsigned size_mib, int bits, int spc) {
        char *img = xasprintf("%s/%s", tmpdir, name);
        int fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || ftruncate(fd, (off_t)size_mib << 20) < 0)
                abort();
        close(fd);
        char fbits[8], fspc[8];
        snprintf(fbits, sizeof fbits, "%d", bits);
        snprintf(fspc, sizeof fspc, "%d", spc ? spc : 4);
        const char *argv[] = {"mkfs.vfat", "-F", fbits, "-i", "12345678", "-n", "BOOTFS", img, "-s", fspc, NULL};
        if (!spc)
                argv[8] = NULL;
        char *out;
        int rc = tu_run_capture(argv, &out);
        if (rc != 0) {
                fprintf(stderr, "mkfs.vfat failed: %s\n", out);
                abort();
        }
        free(out);
        return img;
}

/* fsck.fat -n: true when it finds nothing to fix. */
static __attribute__((unused)) bool fsck_clean(const char *img) {
        const char *argv[] = {"fsck.fat", "-n", img, NULL};
        char *out;
        int rc = tu_run_capture(argv, &out);
        bool ok = rc == 0 && !strstr(out, "wrong") && !strstr(out, "Free cluster summary");
        if (!ok)
                fprintf(stderr, "fsck.fat -n %s (rc %d):\n%s\n", img, rc, out);
        free(out);
        return ok;
}

/* mtype -i img ::path into a buffer; NULL when mtype fails. */
static __attribute__((unused)) char *mtools_read(const char *img, const char *path, size_t *len) {
        char *target = xasprintf("::%s", path);
        char *outpath = xasprintf("%s/.mtype", tmpdir);
        const char *argv[] = {"mcopy", "-n", "-i", img, target, outpath, NULL};
        char *msg;
        int rc = tu_run_capture(argv, &msg);
        free(msg);
        free(target);
        uint8_t *data = NULL;
        if (rc != 0 || read_file(outpath, 1u << 30, &data, len) < 0)
                data = NULL;
        unlink(outpath);
        free(outpath);
        return (char *)data;
}

/* Every FAT copy identical, bytes compared straight from the image file. */
static __attribute__((unused)) bool fats_identical(const char *img, uint64_t offset) {
        int fd = open(img, O_RDONLY);
        uint8_t bs[512];
        if (fd < 0 || pread_full(fd, bs, sizeof bs, offset) < 0)
                abort();
        uint32_t bps = get_le16(bs + 11), res = get_le16(bs + 14), nf = bs[16];
        uint32_t fsz = get_le16(bs + 22) ? get_le16(bs + 22) : get_le32(bs + 36);
        size_t n = (size_t)fsz * bps;
        uint8_t *a = xmalloc(n), *b = xmalloc(n);
        bool same = true;
        if (pread_full(fd, a, n, offset + (uint64_t)res * bps) < 0)
                abort();
        for (uint32_t k = 1; k < nf; k++) {
                if (pread_full(fd, b, n, offset + ((uint64_t)res + (uint64_t)k * fsz) * bps) < 0)
                        abort();
                if (memcmp(a, b, n))
                        same = false;
        }
        free(a);
        free(b);
        close(fd);
        return same;
}
