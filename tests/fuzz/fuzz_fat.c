/* SPDX-License-Identifier: GPL-3.0-or-later */
/* libFuzzer target for builder/fat.c: open, list, read, write, mkdir,
 * unlink, close, then reopen and list again.
 *
 * Input is either a raw partition image (the window is the whole input) or,
 * since FAT16/FAT32 need megabytes and seeds stay under 64 KiB, a sparse
 * image: "FATSPRS1", u32 LE image size, then chunks {u32 LE offset, u16 LE
 * length, bytes} over a zero-filled image (see docs/fat.md). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fat.h"
#include "fuzz_common.h"
#include "util.h"

#define SPARSE_MAGIC "FATSPRS1"
#define SPARSE_MAX (64u << 20)

static int build_image(int fd, const uint8_t *data, size_t size, uint64_t *len) {
        if (size < 12 || memcmp(data, SPARSE_MAGIC, 8)) {
                *len = size;
                return pwrite_full(fd, data, size, 0);
        }
        uint64_t total = get_le32(data + 8);
        if (total > SPARSE_MAX)
                total = SPARSE_MAX;
        if (ftruncate(fd, (off_t)total) < 0)
                return -errno;
        size_t at = 12;
        while (at + 6 <= size) {
                uint64_t off = get_le32(data + at);
                size_t n = get_le16(data + at + 4);
                at += 6;
                n = MIN(n, size - at);
                if (off < total) {
                        size_t m = (size_t)MIN((uint64_t)n, total - off);
                        if (pwrite_full(fd, data + at, m, off) < 0)
                                return -EIO;
                }
                at += n;
        }
        *len = total;
        return 0;
}

struct seen {
        char names[8][800];
        struct fat_stat st[8];
        int n;
};

static int collect(const char *name, const struct fat_stat *st, void *u) {
        struct seen *s = u;
        if (s->n < 8) {
                snprintf(s->names[s->n], sizeof s->names[0], "/%s", name);
                s->st[s->n] = *st;
                s->n++;
        }
        return 0;
}

static void exercise(int fd, uint64_t len, bool mutate) {
        struct fat_fs *fs = NULL;
        if (fat_open(fd, 0, len, "fuzz.img", &fs) < 0)
                return;
        struct seen s = {0};
        (void)fat_list(fs, "/", collect, &s);
        for (int i = 0; i < s.n; i++) {
                struct fat_stat st;
                if (fat_stat(fs, s.names[i], &st) < 0)
                        continue;
                if (st.is_dir) {
                        struct seen sub = {0};
                        (void)fat_list(fs, s.names[i], collect, &sub);
                } else if (st.size <= (1u << 20)) {
                        uint8_t *buf = NULL;
                        size_t n;
                        if (fat_read(fs, s.names[i], &buf, &n) == 0)
                                free(buf);
                }
        }
        if (mutate) {
                static uint8_t blob[3000];
                memset(blob, 'z', sizeof blob);
                (void)fat_write(fs, "/fuzz.txt", blob, sizeof blob, 1700000000);
                (void)fat_write(fs, "/cmdline.txt", "root=x\n", 7, 1700000000);
                (void)fat_mkdir(fs, "/a/b", 1700000000);
                (void)fat_write(fs, "/a/b/A Long File Name.txt", blob, 100, 1700000000);
                if (s.n > 0) {
                        (void)fat_write(fs, s.names[0], blob, 10, 1700000000);
                        (void)fat_unlink(fs, s.names[s.n - 1]);
                }
                (void)fat_unlink(fs, "/fuzz.txt");
                (void)fat_unlink(fs, "/a/b/A Long File Name.txt");
                (void)fat_unlink(fs, "/a/b");
        }
        (void)fat_free_bytes(fs);
        (void)fat_bits(fs);
        (void)fat_close(fs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        int fd = memfd_create("fuzz_fat", MFD_CLOEXEC);
        if (fd < 0)
                abort();
        uint64_t len;
        if (build_image(fd, data, size, &len) == 0) {
                exercise(fd, len, true);
                exercise(fd, len, false); /* what we wrote must read back sanely */
        }
        close(fd);
        return 0;
}
