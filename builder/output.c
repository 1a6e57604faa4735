/* SPDX-License-Identifier: GPL-3.0-or-later */
/* OUT is only ever created by rename(2) of a complete, fsynced temporary in
 * the same directory, so a reader sees either the old OUT or the new one,
 * never half an image; every temporary is removed on error and on
 * SIGINT/SIGTERM/SIGHUP. */
#include "output.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bmap.h"
#include "compress.h"
#include "hash.h"
#include "log.h"
#include "util.h"

#define READ_CHUNK (4u << 20)

/* The one global beyond options and logging: a signal handler has no
 * context argument, so the paths it must unlink live in static storage.
 * Fixed size and plain char arrays, because the handler may only call
 * async-signal-safe functions (unlink) and must not touch malloc'd lists
 * that the main program could be resizing when the signal lands. */
#define MAX_TRACKED 16
static char tracked[MAX_TRACKED][PATH_MAX];
static volatile sig_atomic_t tracked_used[MAX_TRACKED];
static volatile sig_atomic_t handlers_installed;

static void on_fatal_signal(int sig) {
        for (int i = 0; i < MAX_TRACKED; i++)
                if (tracked_used[i])
                        unlink(tracked[i]);
        signal(sig, SIG_DFL);
        raise(sig);
}

void output_install_signal_handlers(void) {
        if (handlers_installed)
                return;
        struct sigaction sa = { .sa_handler = on_fatal_signal };
        sigemptyset(&sa.sa_mask);
        /* Block the other two while cleaning up so the unlinks finish. */
        sigaddset(&sa.sa_mask, SIGINT);
        sigaddset(&sa.sa_mask, SIGTERM);
        sigaddset(&sa.sa_mask, SIGHUP);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        handlers_installed = 1;
}

void output_track_temp(const char *path) {
        if (strlen(path) >= PATH_MAX)
                return;
        for (int i = 0; i < MAX_TRACKED; i++)
                if (!tracked_used[i]) {
                        memcpy(tracked[i], path, strlen(path) + 1);
                        __atomic_signal_fence(__ATOMIC_SEQ_CST);
                        tracked_used[i] = 1;
                        return;
                }
        log_warn(path, "too many temporary files to track; it may be left behind on interrupt");
}

void output_untrack_temp(const char *path) {
        for (int i = 0; i < MAX_TRACKED; i++)
                if (tracked_used[i] && strcmp(tracked[i], path) == 0) {
                        tracked_used[i] = 0;
                        return;
                }
}

enum out_format output_format_for(const char *path) {
        const char *base = path_basename(path);
        static const struct {
                const char *ext;
                enum out_format f;
        } exts[] = { { ".img.xz", OUT_XZ }, { ".img.zst", OUT_ZSTD }, { ".img.gz", OUT_GZIP }, { ".img", OUT_RAW } };
        for (size_t i = 0; i < ARRAY_SIZE(exts); i++)
                if (strlen(base) > strlen(exts[i].ext) && str_has_suffix(base, exts[i].ext))
                        return exts[i].f;
        return OUT_UNKNOWN;
}

int output_create_temp(const char *path, char **tmp) {
        static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        _cleanup_free_ char *dir = path_dirname(path);
        for (int attempt = 0; attempt < 100; attempt++) {
                uint8_t rnd[6];
                if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
                        return log_error(errno ? errno : EIO, path, "getrandom failed: %m");
                char suffix[7];
                for (size_t i = 0; i < 6; i++)
                        suffix[i] = alnum[rnd[i] % (sizeof(alnum) - 1)];
                suffix[6] = 0;
                char *t = xasprintf("%s/.%s.%s.tmp", dir, path_basename(path), suffix);
                int fd = open(t, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
                if (fd >= 0) {
                        output_track_temp(t);
                        *tmp = t;
                        return fd;
                }
                int err = errno;
                free(t);
                if (err != EEXIST)
                        return log_error(err, dir, "cannot create a temporary file here: %s", strerror(err));
        }
        return log_error(EEXIST, dir, "cannot find a free temporary file name");
}

static void remove_temp(char **tmp) {
        if (*tmp) {
                output_untrack_temp(*tmp);
                unlink(*tmp);
                free(*tmp);
                *tmp = NULL;
        }
}

static int fsync_dir_of(const char *path) {
        _cleanup_free_ char *dir = path_dirname(path);
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0)
                return log_error(errno, dir, "cannot sync directory: %m");
        return 0;
}

int output_write_file_atomic(const char *path, const void *data, size_t len) {
        _cleanup_free_ char *tmp = NULL;
        int fd = output_create_temp(path, &tmp);
        if (fd < 0)
                return fd;
        int r = write_full(fd, data, len);
        if (r < 0)
                log_error(r, path, "cannot write: %s", strerror(-r));
        else if (fsync(fd) < 0)
                r = log_error(errno, path, "cannot sync: %m");
        close(fd);
        if (r >= 0 && rename(tmp, path) < 0)
                r = log_error(errno, path, "cannot rename %s into place: %m", tmp);
        if (r < 0) {
                remove_temp(&tmp);
                return r;
        }
        output_untrack_temp(tmp);
        return fsync_dir_of(path);
}

/* Absolute form of a path whose last component may not exist yet. */
static char *abs_path(const char *path) {
        char *real = realpath(path, NULL);
        if (real)
                return real;
        _cleanup_free_ char *dir = path_dirname(path);
        _cleanup_free_ char *rdir = realpath(dir, NULL);
        if (!rdir)
                return NULL;
        return xasprintf("%s/%s", strcmp(rdir, "/") ? rdir : "", path_basename(path));
}

static bool same_file(const char *a, const char *b, const struct stat *bst) {
        struct stat ast;
        if (bst && stat(a, &ast) == 0 && ast.st_dev == bst->st_dev && ast.st_ino == bst->st_ino)
                return true;
        _cleanup_free_ char *ra = abs_path(a), *rb = abs_path(b);
        return ra && rb && strcmp(ra, rb) == 0;
}

static int check_not_base(const char *path, const char *base) {
        if (!base)
                return 0;
        struct stat bst;
        bool have = stat(base, &bst) == 0;
        if (same_file(path, base, have ? &bst : NULL))
                return log_error(EINVAL, path, "the output may not be the base image; choose another -o");
        static const char *const aux[] = { ".bmap", ".sha256" };
        for (size_t i = 0; i < ARRAY_SIZE(aux); i++) {
                _cleanup_free_ char *a = xasprintf("%s%s", path, aux[i]);
                if (same_file(a, base, have ? &bst : NULL))
                        return log_error(EINVAL, path, "writing %s would overwrite the base image; choose another -o",
                                         a);
        }
        return 0;
}

int output_begin(struct output *o, const char *path, const char *base, bool force) {
        bool no_bmap = o->no_bmap;
        int level = o->compression_level;
        *o = (struct output){ .fd = -1, .no_bmap = no_bmap, .compression_level = level, .force = force };
        o->format = output_format_for(path);
        if (o->format == OUT_UNKNOWN)
                return log_error(EINVAL, path, "unknown output extension; use .img, .img.xz, .img.zst or .img.gz");
        int r = check_not_base(path, base);
        if (r < 0)
                return r;
        _cleanup_free_ char *dir = path_dirname(path);
        struct stat st;
        /* EACCES for both so the exit code is EX_CANTCREAT. */
        if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
                return log_error(EACCES, dir, "output directory does not exist; create it first");
        if (access(dir, W_OK | X_OK) < 0)
                return log_error(EACCES, dir, "output directory is not writable");
        if (stat(path, &st) == 0) {
                if (!S_ISREG(st.st_mode))
                        return log_error(EINVAL, path,
                                         "exists and is not a regular file (to write a device use `dimimage flash`)");
                if (!force)
                        return log_error(EEXIST, path, "output exists; use --force to overwrite");
        }
        output_install_signal_handlers();
        o->path = xstrdup(path);
        r = output_create_temp(path, &o->tmp_raw);
        if (r < 0) {
                output_abort(o);
                return r;
        }
        o->fd = r;
        return 0;
}

struct pass {
        struct output *o;
        struct compressor *c;
        struct sha256 whole;
        uint8_t *buf;
};

static const uint8_t zero_block[1u << 16];

static int pass_zeros(struct pass *p, uint64_t n) {
        if (p->c) {
                int r = compressor_write_zeros(p->c, n);
                if (r < 0)
                        return r;
        }
        while (n > 0) {
                size_t k = (size_t)MIN(n, (uint64_t)sizeof(zero_block));
                sha256_update(&p->whole, zero_block, k);
                n -= k;
        }
        return 0;
}

/* Each data byte is read once and goes to the range hash, the whole-image
 * hash and the compressor; holes are never read. */
static int pass_range(struct pass *p, uint64_t start, uint64_t end, char hex[65]) {
        struct sha256 h;
        sha256_init(&h);
        int r = 0;
        for (uint64_t off = start; off < end;) {
                size_t k = (size_t)MIN(end - off, (uint64_t)READ_CHUNK);
                r = pread_full(p->o->fd, p->buf, k, off);
                if (r < 0) {
                        r = log_error(r, p->o->tmp_raw, "cannot read back the image: %s", strerror(-r));
                        break;
                }
                sha256_update(&h, p->buf, k);
                sha256_update(&p->whole, p->buf, k);
                if (p->c && (r = compressor_write(p->c, p->buf, k)) < 0)
                        break;
                off += k;
        }
        sha256_final_hex(&h, hex);
        return r;
}

static int run_pass(struct output *o, struct bmap *b, struct compressor *c) {
        struct pass p = { .o = o, .c = c, .buf = xmalloc(READ_CHUNK) };
        sha256_init(&p.whole);
        posix_fadvise(o->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        uint64_t pos = 0;
        int r = 0;
        for (size_t i = 0; i < b->n && r >= 0; i++) {
                uint64_t start, end;
                bmap_range_bytes(b, &b->v[i], &start, &end);
                r = pass_zeros(&p, start - pos);
                if (r >= 0)
                        r = pass_range(&p, start, end, b->v[i].sha256);
                pos = end;
        }
        if (r >= 0)
                r = pass_zeros(&p, b->image_size - pos);
        sha256_final_hex(&p.whole, o->raw_sha256);
        free(p.buf);
        return r;
}

/* A finished auxiliary file, still under its temporary name. */
struct aux {
        char *path, *tmp;
        bool renamed;
};

static int aux_prepare(struct aux *a, const char *path, const void *data, size_t len) {
        a->path = xstrdup(path);
        int fd = output_create_temp(path, &a->tmp);
        if (fd < 0)
                return fd;
        int r = write_full(fd, data, len);
        if (r < 0)
                log_error(r, path, "cannot write: %s", strerror(-r));
        else if (fsync(fd) < 0)
                r = log_error(errno, path, "cannot sync: %m");
        close(fd);
        return r;
}

static int rename_into_place(char **tmp, const char *path) {
        /* Every temporary renamed here came from a successful
         * output_create_temp(), which always names it.  Said explicitly
         * because the analyzer does not follow that function's retry loop
         * and so cannot see it (clang-analyzer-core.NonNullParamChecker). */
        if (!*tmp)
                return log_error(EINVAL, path, "internal error: no temporary file to rename");
        if (rename(*tmp, path) < 0)
                return log_error(errno, path, "cannot rename %s into place: %m", *tmp);
        output_untrack_temp(*tmp);
        free(*tmp);
        *tmp = NULL;
        return 0;
}

static void aux_cleanup(struct aux *a, bool failed) {
        remove_temp(&a->tmp);
        if (failed && a->renamed)
                unlink(a->path);
        free(a->path);
        a->path = NULL;
}

static int commit_files(struct output *o, struct aux aux[2], size_t naux) {
        for (size_t i = 0; i < naux; i++) {
                int r = rename_into_place(&aux[i].tmp, aux[i].path);
                if (r < 0)
                        return r;
                aux[i].renamed = true;
        }
        char **final_tmp = o->tmp_out ? &o->tmp_out : &o->tmp_raw;
        int r = rename_into_place(final_tmp, o->path);
        if (r < 0)
                return r;
        if (o->no_bmap) {
                /* A bmap left from an earlier --force'd build would describe
                 * another image: flash would trust it and write garbage. */
                _cleanup_free_ char *stale = xasprintf("%s.bmap", o->path);
                if (unlink(stale) < 0 && errno != ENOENT)
                        log_warn(stale, "cannot remove a stale bmap: %m");
        }
        return 0;
}

int output_commit(struct output *o) {
        struct bmap b = { 0 };
        struct compressor *c = NULL;
        struct aux aux[2] = { 0 };
        size_t naux = 0;
        int out_fd = -1;
        _cleanup_free_ char *bmap_text = NULL, *sums = NULL, *sp = NULL;

        struct stat st;
        int r = 0;
        if (fstat(o->fd, &st) < 0) {
                r = log_error(errno, o->tmp_raw, "cannot stat: %m");
                goto fail;
        }
        o->raw_bytes = (uint64_t)st.st_size;
        /* Only a raw output keeps these bytes; a compressed one deletes them. */
        if (o->format == OUT_RAW && fdatasync(o->fd) < 0) {
                r = log_error(errno, o->tmp_raw, "cannot sync: %m");
                goto fail;
        }
        r = bmap_scan(o->fd, o->raw_bytes, o->tmp_raw, &b);
        if (r < 0)
                goto fail;
        if (o->format != OUT_RAW) {
                out_fd = output_create_temp(o->path, &o->tmp_out);
                if (out_fd < 0) {
                        r = out_fd;
                        goto fail;
                }
                r = compressor_open(&c, o->format, o->compression_level, o->raw_bytes, out_fd, o->path);
                if (r < 0)
                        goto fail;
        }
        r = run_pass(o, &b, c);
        if (r < 0)
                goto fail;
        if (c) {
                r = compressor_finish(c, o->sha256, &o->out_bytes);
                if (r < 0)
                        goto fail;
                /* Drop the raw bytes before syncing: on ext4 (data=ordered)
                 * an fsync commits the journal, which first writes out every
                 * dirty allocated page -- gigabytes of a raw temporary we are
                 * about to delete.  Unlinked first, they are never written. */
                close(o->fd);
                o->fd = -1;
                remove_temp(&o->tmp_raw);
                if (fsync(out_fd) < 0) {
                        r = log_error(errno, o->path, "cannot sync: %m");
                        goto fail;
                }
        } else {
                memcpy(o->sha256, o->raw_sha256, sizeof(o->sha256));
                o->out_bytes = o->raw_bytes;
        }

        if (!o->no_bmap) {
                size_t len;
                bmap_text = bmap_format(&b, &len);
                char *p = xasprintf("%s.bmap", o->path);
                r = aux_prepare(&aux[naux++], p, bmap_text, len);
                free(p);
                if (r < 0)
                        goto fail;
        }
        sums = xasprintf("%s  %s\n", o->sha256, path_basename(o->path));
        sp = xasprintf("%s.sha256", o->path);
        r = aux_prepare(&aux[naux++], sp, sums, strlen(sums));
        if (r < 0)
                goto fail;

        r = commit_files(o, aux, naux);
        if (r < 0)
                goto fail;
        o->has_bmap = !o->no_bmap;
        o->committed = true;
        for (size_t i = 0; i < naux; i++)
                aux_cleanup(&aux[i], false);
        compressor_free(c);
        if (out_fd >= 0)
                close(out_fd);
        bmap_free(&b);
        if (o->fd >= 0)
                close(o->fd);
        o->fd = -1;
        return fsync_dir_of(o->path);

fail:
        for (size_t i = 0; i < naux; i++)
                aux_cleanup(&aux[i], true);
        compressor_free(c);
        if (out_fd >= 0)
                close(out_fd);
        bmap_free(&b);
        output_abort(o);
        return r;
}

void output_abort(struct output *o) {
        if (o->fd >= 0) {
                close(o->fd);
                o->fd = -1;
        }
        remove_temp(&o->tmp_out);
        remove_temp(&o->tmp_raw);
        free(o->path);
        o->path = NULL;
}
