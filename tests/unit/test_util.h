/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Helpers every unit test may use: running the real tools we check against
 * (posix_spawn with an argv array, never a shell), scratch directories,
 * capturing our own stderr to count the error lines a call logs, and test
 * patterns.  Static functions in a header on purpose: each test is one
 * translation unit and uses a subset (hence "unused"). */
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "util.h"

extern char **environ;

/* libparted (linked in through the library) runs strchr on an unterminated
 * buffer in its constructor (ped_disk_gpt_init); ASan's strchr interceptor
 * would abort before main.  Not our bug, and not in code under test. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "intercept_strchr=0"; }

/* Where a spawned command's stderr goes. */
enum tu_stderr {
        TU_STDERR_KEEP, /* ours: shows in the test log */
        TU_STDERR_NULL,
};

static __attribute__((unused)) int tu_wait(pid_t pid) {
        int st;
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Runs argv (argv[0] looked up in PATH) with stdin from /dev/null, stdout
 * into out_path (truncated; /dev/null when NULL) and stderr as err says.
 * Returns the exit status, or -1 when it did not start or was killed. */
static __attribute__((unused)) int tu_run(const char *const argv[], const char *out_path, enum tu_stderr err) {
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 1, out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC,
                                         0644);
        if (err == TU_STDERR_NULL)
                posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
        pid_t pid;
        int r = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        return r == 0 ? tu_wait(pid) : -1;
}

/* Runs argv like tu_run() with stdout and stderr captured together into
 * *out (NUL-terminated, caller frees; out may be NULL).  noinline: GCC 12
 * misreads the capture-by-out-pointer as returning a local's address. */
__attribute__((noinline, unused)) static int tu_run_capture(const char *const argv[], char **out) {
        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, p[1], 1);
        posix_spawn_file_actions_adddup2(&fa, p[1], 2);
        pid_t pid;
        int err = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        close(p[1]);
        struct buf b = {0};
        char c[8192];
        ssize_t n;
        while (err == 0 && (n = read(p[0], c, sizeof c)) != 0) {
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        break;
                buf_append(&b, c, (size_t)n);
        }
        buf_append(&b, "", 0);
        close(p[0]);
        int rc = err == 0 ? tu_wait(pid) : -1;
        if (out)
                *out = (char *)buf_steal(&b, NULL);
        else
                buf_free(&b);
        return rc;
}

/* Scratch files go under $TMPDIR, /tmp without it: a test run must be
 * able to keep out of /tmp (and to have a space in the path). */
static __attribute__((unused)) const char *tu_tmpdir(void) {
        const char *t = getenv("TMPDIR");
        return t && *t ? t : "/tmp";
}

/* A new directory "$TMPDIR/NAME.XXXXXX" into dir; 0 or -1. */
static __attribute__((unused)) int tu_mkdtemp(char *dir, size_t size, const char *name) {
        if ((size_t)snprintf(dir, size, "%s/%s.XXXXXX", tu_tmpdir(), name) >= size)
                return -1;
        return mkdtemp(dir) ? 0 : -1;
}

/* A new file "$TMPDIR/NAME.XXXXXX" (its path into path), open read-write;
 * the fd or -1. */
static __attribute__((unused)) int tu_mkstemp(char *path, size_t size, const char *name) {
        if ((size_t)snprintf(path, size, "%s/%s.XXXXXX", tu_tmpdir(), name) >= size)
                return -1;
        return mkstemp(path);
}

/* As tmpfile, but under $TMPDIR: glibc's always takes /tmp. */
static __attribute__((unused)) FILE *tu_tmpfile(void) {
        char path[PATH_MAX];
        int fd = tu_mkstemp(path, sizeof path, "dimimage-test");
        if (fd < 0)
                return NULL;
        unlink(path);
        FILE *f = fdopen(fd, "w+");
        if (!f)
                close(fd);
        return f;
}

/* rm -rf dir, kept when DIMIMAGE_KEEP_TMP is set (to look at a failure). */
/* mkfs.ext4, debugfs and mkfs.vfat live in /usr/sbin, which Debian leaves
 * off a user's PATH. */
static __attribute__((unused)) void tu_path_with_sbin(void) {
        const char *path = getenv("PATH");
        char *np = xasprintf("%s:/usr/sbin:/sbin", path ? path : "/usr/bin:/bin");
        setenv("PATH", np, 1);
        free(np);
}

static __attribute__((unused)) void tu_rm_rf(const char *dir) {
        if (!dir[0] || getenv("DIMIMAGE_KEEP_TMP"))
                return;
        (void)tu_run((const char *const[]){"rm", "-rf", dir, NULL}, NULL, TU_STDERR_KEEP);
}

/* Our stderr (fd 2) into a temporary file between tu_capture_begin() and
 * tu_capture_end(), with the number of errors logged meanwhile: every
 * failure must log exactly one "dimimage: error:" line. */
struct tu_capture {
        FILE *tmp;
        int saved;
        unsigned errors_before;
};

static __attribute__((unused)) void tu_capture_begin(struct tu_capture *c) {
        fflush(stderr);
        c->tmp = tu_tmpfile();
        assert_non_null(c->tmp);
        c->saved = dup(2);
        assert_true(c->saved >= 0);
        assert_true(dup2(fileno(c->tmp), 2) >= 0);
        c->errors_before = log_error_count();
}

/* Returns what was written to stderr (caller frees); *errors (may be NULL)
 * gets the number of errors logged since tu_capture_begin(). */
static __attribute__((unused)) char *tu_capture_end(struct tu_capture *c, unsigned *errors) {
        fflush(stderr);
        assert_true(dup2(c->saved, 2) >= 0);
        close(c->saved);
        assert_int_equal(fseek(c->tmp, 0, SEEK_END), 0);
        long n = ftell(c->tmp);
        assert_true(n >= 0);
        char *s = xcalloc(1, (size_t)n + 1);
        rewind(c->tmp);
        if (n > 0)
                assert_int_equal(fread(s, 1, (size_t)n, c->tmp), (size_t)n);
        fclose(c->tmp);
        if (errors)
                *errors = log_error_count() - c->errors_before;
        return s;
}

/* len deterministic pseudo-random bytes (and one spare), different per seed. */
static __attribute__((unused)) uint8_t *tu_pattern(size_t len, unsigned seed) {
        uint8_t *p = xmalloc(len + 1);
        uint32_t x = seed * 2654435761u + 1;
        for (size_t i = 0; i < len; i++) {
                x = x * 1103515245u + 12345u;
                p[i] = (uint8_t)(x >> 16);
        }
        return p;
}

/* The golden sparse image of tests/golden/bmap-small.xml (what `bmaptool
 * create` writes for it): data in block 0, blocks 5-7 and the partial last
 * block, holes elsewhere.  Shared by test_bmap.c and test_output.c. */
#define TU_GOLDEN_IMG_SIZE (1048576 + 1000)

/* n bytes of a position-dependent pattern at off. */
static __attribute__((unused)) void tu_write_pattern(int fd, uint64_t off, size_t n) {
        uint8_t *b = xmalloc(n);
        for (size_t i = 0; i < n; i++)
                b[i] = (uint8_t)((off + i) * 131 + 7);
        assert_int_equal(pwrite_full(fd, b, n, off), 0);
        free(b);
}

static __attribute__((unused)) void tu_golden_image(int fd) {
        assert_int_equal(ftruncate(fd, TU_GOLDEN_IMG_SIZE), 0);
        tu_write_pattern(fd, 0, 4096);
        tu_write_pattern(fd, 5 * 4096, 3 * 4096);
        tu_write_pattern(fd, 1049000, 100);
}
