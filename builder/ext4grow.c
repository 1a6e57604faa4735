/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Growing the root filesystem to fill a grown partition.  libext2fs has no
 * resize: that code lives in resize2fs, which is run here with an explicit
 * size (without one it would grow past the partition, to the end of the
 * image file). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ext4.h"
#include "log.h"
#include "util.h"

/* ---- growing ------------------------------------------------------------ */

/* resize2fs lives in /sbin, often not on a normal user's PATH. */
static char *find_tool(const char *name) {
        const char *path = getenv("PATH");
        _cleanup_free_ char *all = xasprintf("%s:/usr/sbin:/sbin", path && *path ? path : "/usr/bin:/bin");
        char *save = NULL;
        for (char *d = strtok_r(all, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
                char *p = xasprintf("%s/%s", d, name);
                if (access(p, X_OK) == 0)
                        return p;
                free(p);
        }
        return NULL;
}

int ext4_grow(const char *image, const char *name, uint64_t offset, uint64_t new_bytes) {
        struct ext4_fs *e;
        int r = ext4_open_as(image, name, offset, 0, 0, &e);
        if (r < 0)
                return r;
        uint64_t bs = ext4_block_size(e), cur = ext4_size_bytes(e) / bs;
        bool clean = ext4_is_clean(e);
        r = ext4_close(e);
        if (r < 0)
                return r;
        if (!clean)
                return log_error(-EUCLEAN, name,
                                 "ext4 filesystem at offset %" PRIu64 " is not clean; run e2fsck -fy '%s?offset=%" PRIu64
                                 "' before growing it",
                                 offset, name, offset);
        uint64_t want = new_bytes / bs;
        if (want == cur)
                return 0;
        if (want < cur)
                return log_error(-EINVAL, name,
                                 "ext4 filesystem at offset %" PRIu64 " has %" PRIu64 " blocks; refusing to shrink it "
                                 "to %" PRIu64,
                                 offset, cur, want);

        _cleanup_free_ char *tool = find_tool("resize2fs");
        if (!tool)
                return log_error(-ENOENT, name, "resize2fs not found (install e2fsprogs) to grow the root filesystem");
        struct stat before;
        if (stat(image, &before) < 0)
                return log_error(-errno, name, "cannot stat: %m");
        _cleanup_free_ char *dev = xasprintf("%s?offset=%" PRIu64, image, offset);
        /* In KiB: without an explicit size resize2fs grows to the end of the
         * file, past the partition. */
        _cleanup_free_ char *size = xasprintf("%" PRIu64 "K", want * bs / 1024);
        char *argv[] = {tool, (char *)"-f", dev, size, NULL};

        /* Reproducible superblock/inode times from resize2fs too. */
        size_t n = 0;
        while (environ[n])
                n++;
        char **envp = xcalloc(n + 2, sizeof *envp);
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
                if (!str_has_prefix(environ[i], "E2FSPROGS_FAKE_TIME="))
                        envp[k++] = environ[i];
        _cleanup_free_ char *fake = xasprintf("E2FSPROGS_FAKE_TIME=%lld", (long long)build_time());
        envp[k++] = fake;

        int pipefd[2];
        if (pipe2(pipefd, O_CLOEXEC) < 0) {
                free(envp);
                return log_error(-errno, name, "pipe: %m");
        }
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        /* resize2fs (1.47.0) ends by truncating a regular file to the new
         * filesystem size, ignoring ?offset=: that would cut off the end of
         * the root partition, with the metadata it just wrote there.  It
         * skips that step when the file's descriptor is 0, so leave fd 0
         * free for it to take; the size is checked again below. */
        posix_spawn_file_actions_addclose(&fa, STDIN_FILENO);
        posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
        posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDERR_FILENO);
        pid_t pid;
        int err = posix_spawn(&pid, tool, &fa, NULL, argv, envp);
        posix_spawn_file_actions_destroy(&fa);
        free(envp);
        close(pipefd[1]);
        if (err) {
                close(pipefd[0]);
                return log_error(-err, name, "cannot run %s: %s", tool, strerror(err));
        }
        struct buf out = {0};
        char chunk[4096];
        for (;;) {
                ssize_t m = read(pipefd[0], chunk, sizeof chunk);
                if (m < 0 && errno == EINTR)
                        continue;
                if (m <= 0)
                        break;
                if (out.len < 65536)
                        buf_append(&out, chunk, (size_t)m);
        }
        close(pipefd[0]);
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR) {
                        buf_free(&out);
                        return log_error(-errno, name, "waiting for resize2fs: %m");
                }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                /* The last non-empty line of its output says why. */
                char *s = out.data ? (char *)out.data : (char *)"";
                size_t l = strlen(s);
                while (l && (s[l - 1] == '\n' || s[l - 1] == ' '))
                        s[--l] = '\0';
                char *last = strrchr(s, '\n');
                r = log_error(-EIO, name, "resize2fs %s %s failed (%s %d): %s", dev, size,
                              WIFEXITED(status) ? "exit" : "signal",
                              WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), last ? last + 1 : s);
                buf_free(&out);
                return r;
        }
        buf_free(&out);
        struct stat after;
        if (stat(image, &after) < 0)
                return log_error(-errno, name, "cannot stat: %m");
        if (after.st_size < before.st_size)
                return log_error(-EIO, name,
                                 "resize2fs truncated the image from %lld to %lld bytes (a resize2fs bug with "
                                 "?offset=); the root filesystem was not grown safely",
                                 (long long)before.st_size, (long long)after.st_size);
        return 0;
}
