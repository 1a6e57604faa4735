/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Helpers shared by test_fat.c and test_fat_random.c: real images made with
 * mkfs.vfat, checked with fsck.fat and read back with mtools (run with
 * posix_spawn).  Static functions in a header on purpose: each test is one
 * translation unit and uses a subset (hence "unused"). */
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

extern char **environ;

static char tmpdir[256];

static void tmpdir_make(void) {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/dimimage-fat.XXXXXX", base ? base : "/tmp");
        if (!mkdtemp(tmpdir))
                abort();
        setenv("MTOOLS_SKIP_CHECK", "1", 1);
        setenv("MTOOLS_NO_VFAT", "0", 1);
}

static __attribute__((unused)) int run_argv(const char *const argv[]) {
        pid_t pid;
        if (posix_spawnp(&pid, argv[0], NULL, NULL, (char *const *)argv, environ) != 0)
                return -1;
        int st;
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static __attribute__((unused)) void tmpdir_remove(void) {
        const char *argv[] = {"rm", "-rf", tmpdir, NULL};
        if (tmpdir[0])
                run_argv(argv);
}

/* Runs argv with stdout+stderr captured into *out (caller frees). */
static __attribute__((unused)) int run_capture(const char *const argv[], char **out) {
        char path[300];
        snprintf(path, sizeof path, "%s/.capture", tmpdir);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
        pid_t pid;
        int rc = -1;
        if (posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ) == 0) {
                int st;
                while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                        ;
                rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        }
        posix_spawn_file_actions_destroy(&fa);
        uint8_t *data = NULL;
        size_t len;
        if (read_file(path, 64 << 20, &data, &len) < 0)
                data = (uint8_t *)xstrdup("");
        if (out)
                *out = (char *)data;
        else
                free(data);
        return rc;
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
        int rc = run_capture(argv, &out);
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
        int rc = run_capture(argv, &out);
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
        int rc = run_capture(argv, &msg);
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

/* libparted (linked in through the library) runs strchr on an unterminated
 * buffer in its constructor (ped_disk_gpt_init); ASan's strchr interceptor
 * would abort before main.  Not our bug, and not in code under test. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "intercept_strchr=0"; }
