/* SPDX-License-Identifier: GPL-3.0-or-later */
/* OUT is only ever created by rename(2) of a complete, fsynced temporary in
 * the same directory, so a reader sees either the old OUT or the new one,
 * never half an image; every temporary is removed on error and on
 * SIGINT/SIGTERM/SIGHUP/SIGQUIT. */
#include "output.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "bmap.h"
#include "compress.h"
#include "hash.h"
#include "log.h"
#include "output_pass.h"
#include "progress.h"
#include "util.h"

/* The one global beyond options and logging: a signal handler has no
 * context argument, so the paths it must unlink live in a table it reaches
 * through a static pointer.  Plain char arrays, because the handler may only
 * call async-signal-safe functions (unlink) and must not follow anything
 * the program could be freeing when the signal lands: a full table is
 * replaced by a copy twice its size, published with one atomic store, and
 * the old one is never freed (a handler on another thread may be walking
 * it).  A fleet keeps each host's image (and Imager list) tracked until it
 * is done, so a fixed table would overflow with a few dozen hosts. */
#define TRACKED_FIRST 64
/* TRACK_FINAL: a file renamed into place, removed only while it is still
 * the one renamed (its device and inode), so it can be tracked before its
 * rename without a signal in between removing the file it replaces;
 * TRACK_OUTPUT: such an OUT, with its companions. */
/* TRACK_KEPT: a hard link keeping a file a --force run replaces (its
 * device and inode), linked back to its name by a signal (output_keep). */
enum { TRACK_FREE, TRACK_TEMP, TRACK_FINAL, TRACK_OUTPUT, TRACK_DIR, TRACK_KEPT };
struct tracked_slot {
        char path[PATH_MAX];
        dev_t dev;
        ino_t ino;
        int used; /* TRACK_*: stored atomically, the signal handler reads it */
};
struct tracked_table {
        struct tracked_table *older; /* kept reachable, never freed */
        size_t n;
        struct tracked_slot slot[];
};
static struct tracked_table *tracked;
static volatile sig_atomic_t handlers_installed;

/* OUT's companions (output_companions), named in buf (the handler's own:
 * the tracked name stays as it is).  Only memcpy and unlink, both
 * async-signal-safe; they are OUT's own, since the commit removes the
 * previous ones before OUT takes its name. */
static void unlink_companions(const char *path) {
        char buf[PATH_MAX + 16];
        size_t n = strlen(path);
        memcpy(buf, path, n + 1);
        for (const char *const *c = output_companions; *c; c++) {
                memcpy(buf + n, *c, strlen(*c) + 1);
                unlink(buf);
        }
}

/* A kept file's own name: "DIR/KEEP/NAME" is DIR/NAME's.  In buf, with only
 * memcpy: the signal handler calls it. */
static bool kept_origin(const char *kept, char *buf, size_t size) {
        size_t n = strlen(kept), last = n, keep = 0;
        while (last > 0 && kept[last - 1] != '/')
                last--;
        if (last < 2)
                return false;
        for (keep = last - 1; keep > 0 && kept[keep - 1] != '/';)
                keep--;
        if (keep + (n - last) + 1 > size)
                return false;
        memcpy(buf, kept, keep);
        memcpy(buf + keep, kept + last, n - last + 1);
        return true;
}

/* Back to its name, unless something else took it meanwhile (another
 * build's file: that one stays, and so does the kept one, where it is).
 * -1 then, 1 when it was put back, 0 when it never left (the run had not
 * replaced it).  link, unlink and lstat only: the signal handler calls it. */
static int restore_kept(const char *kept, dev_t dev, ino_t ino) {
        char orig[PATH_MAX];
        if (!kept_origin(kept, orig, sizeof(orig)))
                return -1;
        int put_back = link(kept, orig) == 0;
        if (!put_back && !path_is(orig, dev, ino))
                return -1;
        unlink(kept);
        return put_back;
}

/* Set once everything is in place (output_finished): from then on there is
 * nothing to undo, and dying of the signal would report as interrupted a
 * run whose outputs are all there. */
static volatile sig_atomic_t finished;

/* Files being created and not yet tracked (create_begin), and
 * whether the handler has started: see there. */
static int creating;
static int dying;

/* The line a stopping signal says, "dimimage: interrupted: FILE: NOTE",
 * from pieces made before it (the handler may not format, allocate or use
 * stdio): FILE made printable once per run, NOTE a string that outlives the
 * run, swapped in one store.  Without a note, "dimimage: interrupted". */
static char interrupt_file[PATH_MAX];
static const char *interrupt_note;
/* What clears a progress line first, when stderr is a terminal (fixed
 * when the handlers are installed; isatty is not async-signal-safe). */
static const char *interrupt_clear = "";

void output_on_interrupt(const char *file, const char *note) {
        if (!__atomic_load_n(&interrupt_note, __ATOMIC_ACQUIRE)) {
                snprintf(interrupt_file, sizeof(interrupt_file), "%s", file);
                str_printable(interrupt_file);
        }
        __atomic_store_n(&interrupt_note, note, __ATOMIC_RELEASE);
}

/* s after buf's first *n bytes, keeping room for the newline */
static void append(char *buf, size_t size, size_t *n, const char *s) {
        for (; *s && *n + 1 < size; s++)
                buf[(*n)++] = *s;
}

/* One write(2), so it cannot interleave with another thread's line. */
static void say_interrupted(void) {
        char buf[PATH_MAX + 256];
        size_t n = 0;
        const char *note = __atomic_load_n(&interrupt_note, __ATOMIC_ACQUIRE);
        append(buf, sizeof(buf), &n, interrupt_clear);
        append(buf, sizeof(buf), &n, "dimimage: interrupted");
        if (note) {
                append(buf, sizeof(buf), &n, ": ");
                append(buf, sizeof(buf), &n, interrupt_file);
                append(buf, sizeof(buf), &n, ": ");
                append(buf, sizeof(buf), &n, note);
        }
        buf[n++] = '\n';
        (void)!write(STDERR_FILENO, buf, n);
}

static void on_fatal_signal(int sig) {
        if (finished)
                return;
        /* One undo, and one line: a second signal, delivered to another
         * thread meanwhile, waits for this one to end the process. */
        if (__atomic_exchange_n(&dying, 1, __ATOMIC_SEQ_CST))
                for (;;)
                        pause();
        /* Bounded: a creation waiting for a lock this thread was
         * interrupted holding (malloc's, say) would never end. */
        for (int ms = 0; ms < 2000 && __atomic_load_n(&creating, __ATOMIC_SEQ_CST); ms++) {
                struct timespec one = {.tv_nsec = 1000000};
                nanosleep(&one, NULL);
        }
        struct tracked_table *t = __atomic_load_n(&tracked, __ATOMIC_ACQUIRE);
        for (size_t i = 0; t && i < t->n; i++) {
                struct tracked_slot *s = &t->slot[i];
                int used = __atomic_load_n(&s->used, __ATOMIC_ACQUIRE);
                if (used == TRACK_TEMP) {
                        unlink(s->path);
                } else if ((used == TRACK_FINAL || used == TRACK_OUTPUT) && path_is(s->path, s->dev, s->ino)) {
                        unlink(s->path);
                        if (used == TRACK_OUTPUT)
                                unlink_companions(s->path);
                }
        }
        /* what a --force run replaced, back once its own files are gone */
        for (size_t i = 0; t && i < t->n; i++) {
                struct tracked_slot *s = &t->slot[i];
                if (__atomic_load_n(&s->used, __ATOMIC_ACQUIRE) == TRACK_KEPT)
                        restore_kept(s->path, s->dev, s->ino);
        }
        /* directories after the files in them; rmdir removes only an empty one */
        for (size_t i = 0; t && i < t->n; i++)
                if (__atomic_load_n(&t->slot[i].used, __ATOMIC_ACQUIRE) == TRACK_DIR)
                        rmdir(t->slot[i].path);
        say_interrupted();
        signal(sig, SIG_DFL);
        raise(sig);
}

void output_finished(void) { finished = 1; }

static void fatal_set(sigset_t *s) {
        sigemptyset(s);
        sigaddset(s, SIGINT);
        sigaddset(s, SIGTERM);
        sigaddset(s, SIGHUP);
        sigaddset(s, SIGQUIT);
}

/* The signals are held on this thread, so the handler cannot run between
 * the two here; on another thread (a fleet's commit runs beside the next
 * host's build) it waits for the creations under way, and a creation begun
 * once it started never happens: that thread waits for the process to die. */
static void create_begin(sigset_t *saved) {
        sigset_t fatal;
        fatal_set(&fatal);
        pthread_sigmask(SIG_BLOCK, &fatal, saved);
        __atomic_add_fetch(&creating, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&dying, __ATOMIC_SEQ_CST)) {
                __atomic_sub_fetch(&creating, 1, __ATOMIC_SEQ_CST);
                for (;;)
                        pause();
        }
}

static void create_end(const sigset_t *saved) {
        __atomic_sub_fetch(&creating, 1, __ATOMIC_SEQ_CST);
        pthread_sigmask(SIG_SETMASK, saved, NULL);
}

void output_install_signal_handlers(void) {
        if (handlers_installed)
                return;
        /* as progress_end clears its line (a dumb terminal: under it) */
        if (isatty(STDERR_FILENO))
                interrupt_clear = progress_term_is_dumb() ? "\n" : "\r\033[K";
        struct sigaction sa = { .sa_handler = on_fatal_signal };
        /* Block the others while cleaning up so the unlinks finish. */
        fatal_set(&sa.sa_mask);
        /* ^\ stops a run as ^C does: its temporaries (a build's hold the
         * secrets) go too; the core dump it would have left, a build never
         * writes (cmd_build).  A signal the parent ignores stays ignored,
         * as POSIX has it: nohup's SIGHUP, a background job's SIGINT and
         * SIGQUIT from a shell without job control. */
        static const int fatal[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
        for (size_t i = 0; i < ARRAY_SIZE(fatal); i++) {
                struct sigaction old;
                if (sigaction(fatal[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
                        continue;
                sigaction(fatal[i], &sa, NULL);
        }
        handlers_installed = 1;
}

/* Between threads (a fleet's detached commits): the handler needs no lock. */
static pthread_mutex_t tracked_lock = PTHREAD_MUTEX_INITIALIZER;

/* A table of n free slots holding old's used ones (under tracked_lock). */
static struct tracked_table *tracked_grow(struct tracked_table *old, size_t n) {
        struct tracked_table *t = xcalloc(1, sizeof(*t) + n * sizeof(t->slot[0]));
        t->older = old;
        t->n = n;
        for (size_t i = 0; old && i < old->n; i++) {
                const struct tracked_slot *s = &old->slot[i];
                memcpy(t->slot[i].path, s->path, strlen(s->path) + 1);
                t->slot[i].dev = s->dev;
                t->slot[i].ino = s->ino;
                t->slot[i].used = s->used;
        }
        return t;
}

static void track_as(const char *path, int kind, const struct stat *id) {
        if (strlen(path) >= PATH_MAX) {
                log_warn(path, "too long a name to track; it may be left behind on interrupt");
                return;
        }
        pthread_mutex_lock(&tracked_lock);
        struct tracked_table *t = tracked;
        struct tracked_slot *s = NULL;
        for (size_t i = 0; t && i < t->n && !s; i++)
                if (t->slot[i].used == TRACK_FREE)
                        s = &t->slot[i];
        if (!s) {
                size_t n = t ? t->n : 0;
                t = tracked_grow(t, n ? 2 * n : TRACKED_FIRST);
                __atomic_store_n(&tracked, t, __ATOMIC_RELEASE);
                s = &t->slot[n];
        }
        memcpy(s->path, path, strlen(path) + 1);
        s->dev = id ? id->st_dev : 0;
        s->ino = id ? id->st_ino : 0;
        /* the handler reads the name only once the slot says it is used */
        __atomic_store_n(&s->used, kind, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&tracked_lock);
}

void output_track_temp(const char *path) { track_as(path, TRACK_TEMP, NULL); }

/* path, once tmp is renamed to it (tracked before the rename: see
 * TRACK_FINAL).  0, or -errno when tmp is not there. */
static int track_final(const char *path, const char *tmp, int kind) {
        struct stat st;
        if (stat(tmp, &st) < 0)
                return -errno;
        track_as(path, kind, &st);
        return 0;
}

void output_track_dir(const char *path) {
        output_install_signal_handlers();
        track_as(path, TRACK_DIR, NULL);
}

int output_mkstemp(char *tmpl) {
        sigset_t saved;
        create_begin(&saved);
        int fd = mkostemp(tmpl, O_CLOEXEC);
        int err = errno;
        if (fd >= 0)
                output_track_temp(tmpl);
        create_end(&saved);
        return fd >= 0 ? fd : -err;
}

int output_mkdir(const char *path, mode_t mode) {
        sigset_t saved;
        create_begin(&saved);
        int r = mkdir(path, mode) == 0 ? 0 : -errno;
        if (r == 0)
                output_track_dir(path);
        create_end(&saved);
        return r;
}

void output_untrack_temp(const char *path) {
        pthread_mutex_lock(&tracked_lock);
        struct tracked_table *t = tracked;
        for (size_t i = 0; t && i < t->n; i++)
                if (t->slot[i].used != TRACK_FREE && strcmp(t->slot[i].path, path) == 0) {
                        __atomic_store_n(&t->slot[i].used, TRACK_FREE, __ATOMIC_RELAXED);
                        break;
                }
        pthread_mutex_unlock(&tracked_lock);
}

char *output_keep_dir(const char *dir) {
        char *tmpl = xasprintf("%s/.dimimage-previous.XXXXXX", dir);
        sigset_t saved;
        create_begin(&saved);
        bool made = mkdtemp(tmpl) != NULL;
        int err = errno;
        if (made)
                track_as(tmpl, TRACK_DIR, NULL);
        create_end(&saved);
        if (made)
                return tmpl;
        log_warn(dir, "cannot make a directory to keep the files this run replaces until it succeeds (%s): a "
                      "failed run leaves them replaced",
                 strerror(err));
        free(tmpl);
        return NULL;
}

int output_keep(const char *path, const char *keep_dir, char **kept) {
        *kept = NULL;
        struct stat st;
        if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
                return 0;
        char *k = xasprintf("%s/%s", keep_dir, path_basename(path));
        /* tracked before the link, as the link: a signal between finds
         * the name back where it was, and drops nothing */
        track_as(k, TRACK_KEPT, &st);
        if (link(path, k) < 0) {
                int err = errno;
                output_untrack_temp(k);
                free(k);
                log_warn(path, "cannot keep it until the run succeeds (%s): a failed run leaves it replaced",
                         strerror(err));
                return -err;
        }
        *kept = k;
        return 0;
}

void output_kept_done(const char *kept, bool restore) {
        struct stat st;
        if (lstat(kept, &st) < 0) {
                output_untrack_temp(kept);
                return;
        }
        /* untracked after: a signal meanwhile restores it the same way */
        _cleanup_free_ char *orig = xstrdup(kept);
        int back = restore && kept_origin(kept, orig, strlen(orig) + 1) ? restore_kept(kept, st.st_dev, st.st_ino) : 0;
        if (!restore)
                unlink(kept);
        else if (back > 0)
                log_info("Restored %s: the run failed", orig);
        else if (back < 0)
                log_warn(kept, "kept here: another build wrote %s meanwhile", path_basename(kept));
        output_untrack_temp(kept);
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
                sigset_t saved;
                create_begin(&saved);
                /* 0600, whatever the umask: an image holds the stack's
                 * secrets and the Wi-Fi key, and OUT.secrets.env them
                 * alone; a reader that opens a file keeps it after any
                 * chmod, so a narrower mode must be there from the start
                 * (write_temp widens the companions' to 0644) */
                int fd = open(t, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
                int err = errno;
                if (fd >= 0)
                        output_track_temp(t);
                create_end(&saved);
                if (fd >= 0) {
                        temp_lock(fd); /* output_sweep's sign that this build lives */
                        *tmp = t;
                        return fd;
                }
                free(t);
                /* whatever the reason, an output that cannot be created is
                 * EX_CANTCREAT, not a missing input (ENOENT in /proc) */
                if (err != EEXIST)
                        return log_error(exit_code_for(-err) == EX_NOINPUT ? EACCES : err, dir,
                                         "cannot create a temporary file here: %s", strerror(err));
        }
        return log_error(EEXIST, dir, "cannot find a free temporary file name");
}

/* output_create_temp's names for a path named name: ".NAME" + anything +
 * ".XXXXXX.tmp" (sweep_stale's match). */
static bool temp_of(const char *entry, const void *arg) {
        const char *name = arg;
        size_t el = strlen(entry), nl = strlen(name);
        if (entry[0] != '.' || strncmp(entry + 1, name, nl) != 0 || el < 1 + nl + 11 ||
            !str_has_suffix(entry, ".tmp") || entry[el - 11] != '.')
                return false;
        for (size_t i = el - 10; i < el - 4; i++)
                if (!isalnum((unsigned char)entry[i]))
                        return false;
        return true;
}

static void report_removed(const char *dir, const char *name, uint64_t bytes) {
        char size[32];
        format_size(bytes, size);
        log_info("Removed %s/%s (%s), left by a build that was killed", dir, name, size);
}

/* A live build locks the temporaries it keeps open (the image's, the
 * compressed output's), and the ones it closes before their rename live
 * for milliseconds: a minute untouched and unlocked is a dead build's. */
void output_sweep(const char *path) {
        _cleanup_free_ char *dir = path_dirname(path);
        sweep_stale(dir, temp_of, path_basename(path), 60, report_removed);
}

static void remove_temp(char **tmp) {
        if (*tmp) {
                output_untrack_temp(*tmp);
                unlink(*tmp);
                free(*tmp);
                *tmp = NULL;
        }
}

/* After the renames: path is in place, its bytes synced, and a failure
 * now cannot take it back (a --force build's old files are gone), so it is
 * said as what it is, and the build stands. */
static int fsync_dir_of(const char *path) {
        _cleanup_free_ char *dir = path_dirname(path);
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0)
                log_warn(dir, "cannot sync the directory (%m): %s is written, but a power cut before the system "
                              "writes the directory back could lose it",
                         path_basename(path));
        return 0;
}

/* A new temporary beside path holding data, with mode set before the first
 * byte is written (created 0600: secrets are never readable by others, not
 * even for a moment), synced.  *tmp names it, also on failure.  Logs, -errno. */
static int write_temp(const char *path, const void *data, size_t len, unsigned mode, char **tmp) {
        int fd = output_create_temp(path, tmp);
        if (fd < 0)
                return fd;
        int r = 0;
        if (fchmod(fd, mode) < 0)
                r = log_error(errno, path, "cannot set mode: %m");
        else if ((r = write_full(fd, data, len)) < 0)
                log_output_error(r, path, "write");
        else if (fsync(fd) < 0)
                r = log_output_error(errno, path, "sync");
        close(fd);
        return r;
}

int output_write_file_atomic(const char *path, const void *data, size_t len, unsigned mode, bool track) {
        _cleanup_free_ char *tmp = NULL;
        int r = write_temp(path, data, len, mode, &tmp);
        if (r < 0 && !tmp)
                return r;
        /* tracked before its rename (TRACK_FINAL): a signal right after it
         * finds the file under its name */
        bool final_tracked = r >= 0 && track && track_final(path, tmp, TRACK_FINAL) == 0;
        if (r >= 0 && rename(tmp, path) < 0)
                r = log_error(errno, path, "cannot rename %s into place: %m", tmp);
        if (r < 0) {
                if (final_tracked)
                        output_untrack_temp(path);
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

bool output_same_file(const char *a, const char *b) {
        struct stat bst;
        bool have = stat(b, &bst) == 0;
        return same_file(a, b, have ? &bst : NULL);
}

static int check_not_base(const char *path, const char *base) {
        if (!base)
                return 0;
        struct stat bst;
        bool have = stat(base, &bst) == 0;
        if (same_file(path, base, have ? &bst : NULL))
                return log_error(EINVAL, path, "the output may not be the base image; choose another -o");
        for (const char *const *c = output_companions; *c; c++) {
                _cleanup_free_ char *a = xasprintf("%s%s", path, *c);
                if (same_file(a, base, have ? &bst : NULL))
                        return log_error(EINVAL, path, "writing %s would overwrite the base image; choose another -o",
                                         a);
        }
        return 0;
}

int output_check_inputs(const char *path, const struct output_input *in, size_t n) {
        for (size_t i = 0; i < n; i++) {
                struct stat st;
                bool have = in[i].path && stat(in[i].path, &st) == 0;
                if (!have)
                        continue;
                if (same_file(path, in[i].path, &st))
                        return log_error(EINVAL, in[i].path, "%s names the output image; choose another -o", in[i].what);
                for (const char *const *c = output_companions; *c; c++) {
                        _cleanup_free_ char *a = xasprintf("%s%s", path, *c);
                        if (!same_file(a, in[i].path, &st))
                                continue;
                        bool alias = strcmp(a, in[i].path) != 0;
                        return log_error(EINVAL, in[i].path,
                                         "%s names a file that this build replaces or removes along with %s%s%s%s; "
                                         "move it elsewhere first and give its new path, or choose another -o",
                                         in[i].what, path, alias ? " (it is " : "", alias ? a : "", alias ? ")" : "");
                }
        }
        return 0;
}

/* An immutable or append-only file (chattr +i, +a) cannot be renamed over,
 * by root neither.  0 when path is not there, is a symbolic link (rename
 * replaces the link) or its flags cannot be read. */
static int check_not_immutable(const char *path, const char *what) {
        int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return 0;
        int flags = 0;
        bool stuck = ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 && (flags & (FS_IMMUTABLE_FL | FS_APPEND_FL));
        close(fd);
        if (!stuck)
                return 0;
        bool immutable = flags & FS_IMMUTABLE_FL;
        char letter = immutable ? 'i' : 'a';
        return log_error(EPERM, path, "%s%sis %s (chattr +%c), so nothing may replace it: clear that with chattr -%c "
                         "(as root), or choose another %s",
                         what ? what : "", what ? " " : "", immutable ? "immutable" : "append-only", letter, letter,
                         what ? what : "-o");
}

/* Whether the commit may rename over path (or remove it): the build would
 * find out only then, after all its work, so it is asked first, here.  In
 * a sticky directory (/tmp) only a file's owner, the directory's or root
 * may remove or rename over it (CAP_FOWNER: root is what holds it); and
 * not even root over an immutable one.  0, or an error naming path and
 * what to do. */
static int check_replaceable(const char *path, const char *dir, const struct stat *dst, const char *what) {
        struct stat st;
        uid_t me = geteuid();
        if ((dst->st_mode & S_ISVTX) && me != 0 && dst->st_uid != me && lstat(path, &st) == 0 && st.st_uid != me)
                return log_error(EPERM, path, "%s%sbelongs to another user (uid %u) in the sticky directory %s, where "
                                 "only its owner may replace it; choose another %s", what ? what : "",
                                 what ? " " : "", (unsigned)st.st_uid, dir, what ? what : "-o");
        return check_not_immutable(path, what);
}

/* A file the build will create: its directory there and writable, and
 * path itself absent or (with force) a regular file we may replace.  what:
 * the option naming a file beside OUT, or NULL for OUT itself. */
static int check_target(const char *path, const char *what, bool force) {
        _cleanup_free_ char *dir = path_dirname(path);
        struct stat dst, st;
        /* EACCES for both so the exit code is EX_CANTCREAT. */
        if (stat(dir, &dst) < 0 || !S_ISDIR(dst.st_mode))
                return what ? log_error(EACCES, dir, "directory for %s does not exist; create it first", what)
                            : log_error(EACCES, dir, "output directory does not exist; create it first");
        if (access(dir, W_OK | X_OK) < 0)
                return what ? log_error(EACCES, dir, "directory for %s is not writable", what)
                            : log_error(EACCES, dir, "output directory is not writable");
        if (stat(path, &st) == 0) {
                if (!S_ISREG(st.st_mode))
                        return what ? log_error(EINVAL, path, "%s names something that is not a regular file", what)
                                    : log_error(EINVAL, path, "exists and is not a regular file (to write a device "
                                                              "use `dimimage flash`)");
                if (!force)
                        return log_error(EEXIST, path, "%sexists; use --force to overwrite", what ? "" : "output ");
        } else if (!force && lstat(path, &st) == 0) {
                /* a symbolic link to nothing: the commit, which looks at
                 * the link, would refuse it after all the work */
                return log_error(EEXIST, path, "%sexists (a symbolic link to nothing); use --force to overwrite",
                                 what ? "" : "output ");
        }
        int r = check_replaceable(path, dir, &dst, what);
        /* OUT's companions from an earlier build go at the commit, --force
         * or not: each must be ours to remove too */
        for (const char *const *c = output_companions; !what && *c && r == 0; c++) {
                _cleanup_free_ char *comp = xasprintf("%s%s", path, *c);
                r = check_replaceable(comp, dir, &dst, NULL);
        }
        return r;
}

int output_check_extra(const char *path, const char *what, const char *const *others, size_t n, bool force) {
        for (size_t i = 0; i < n; i++) {
                struct stat ost;
                bool have = stat(others[i], &ost) == 0;
                if (same_file(path, others[i], have ? &ost : NULL))
                        return log_error(EINVAL, path, "%s would overwrite %s; choose another file", what, others[i]);
        }
        return check_target(path, what, force);
}

int output_check_name(const char *path) {
        struct stat st;
        if (output_format_for(path) != OUT_UNKNOWN)
                return 0;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
                return log_error(EUSAGE, path, "is a directory; -o names the image to write (%s/NAME.img), or "
                                 "a fleet's directory with --fleet", path);
        return log_error(EUSAGE, path, "unknown output extension; use .img, .img.xz, .img.zst or .img.gz");
}

int output_check(const char *path, const char *base, bool force) {
        int r = output_check_name(path);
        if (r >= 0)
                r = check_not_base(path, base);
        return r < 0 ? r : check_target(path, NULL, force);
}

int output_begin(struct output *o, const char *path, const char *base, bool force) {
        bool no_bmap = o->no_bmap, no_raw_sha256 = o->no_raw_sha256;
        int level = o->compression_level;
        *o = (struct output){ .fd = -1,
                              .no_bmap = no_bmap,
                              .no_raw_sha256 = no_raw_sha256,
                              .compression_level = level,
                              .force = force };
        o->format = output_format_for(path);
        int r = output_check(path, base, force);
        if (r < 0)
                return r;
        output_install_signal_handlers();
        output_sweep(path);
        o->path = xstrdup(path);
        r = output_create_temp(path, &o->tmp_raw);
        if (r < 0) {
                output_abort(o);
                return r;
        }
        o->fd = r;
        return 0;
}

int output_adopt(struct output *o, const char *path, int fd) {
        int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (nfd < 0)
                return 1;
        /* rename() replaces output_begin's empty temporary in one step, so
         * the signal handler's list (which names tmp_raw) stays right. */
        if (rename(path, o->tmp_raw) < 0) {
                close(nfd);
                return 1;
        }
        close(o->fd);
        o->fd = nfd;
        return 0;
}

/* fdatasync on its own thread, so the disk writes overlap the pass. */
struct syncer {
        pthread_t thread;
        int fd;
        int err; /* errno */
        bool started;
};

static void *syncer_run(void *arg) {
        struct syncer *s = arg;
        if (fdatasync(s->fd) < 0)
                s->err = errno;
        return NULL;
}

static void syncer_start(struct syncer *s, int fd) {
        *s = (struct syncer){ .fd = fd };
        if (pthread_create(&s->thread, NULL, syncer_run, s) == 0)
                s->started = true;
        else
                syncer_run(s);
}

static int syncer_wait(struct syncer *s) {
        if (s->started)
                pthread_join(s->thread, NULL);
        s->started = false;
        return s->err;
}

static int aux_prepare(struct output_file *a, const char *path, const void *data, size_t len, unsigned mode) {
        a->path = xstrdup(path);
        return write_temp(path, data, len, mode, &a->tmp);
}

int output_add_file(struct output *o, const char *path, const void *data, size_t len, unsigned mode) {
        if (o->nextra == OUTPUT_MAX_EXTRA)
                return log_error(EINVAL, path, "internal error: too many files beside the output");
        return aux_prepare(&o->extra[o->nextra++], path, data, len, mode);
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

static void aux_cleanup(struct output_file *a, bool failed) {
        remove_temp(&a->tmp);
        if (failed && a->tracked)
                output_untrack_temp(a->path);
        if (failed && a->renamed)
                unlink(a->path);
        free(a->path);
        *a = (struct output_file){0};
}

static int unlink_stale(const char *path) {
        if (unlink(path) < 0 && errno != ENOENT)
                return log_error(errno, path, "cannot remove the previous build's file: %m");
        return 0;
}

/* Stopped anywhere in here, even by SIGKILL, the directory may lack some of
 * OUT's companions but never holds ones that describe another OUT (a
 * --force'd rebuild's new bmap beside the old image would make flash write
 * garbage): the old companions go first, then OUT is renamed, then the new
 * companions.  On failure, whatever of the new set is in place is removed. */
/* .secrets.env too: when this build has none, the old one holds the secrets
 * of the image being replaced, not of this one. */
const char *const output_companions[] = { ".bmap", ".sha256", ".secrets.env", NULL };

static bool is_companion(const char *out, const char *path) {
        size_t n = strlen(out);
        if (strncmp(out, path, n) != 0)
                return false;
        for (const char *const *c = output_companions; *c; c++)
                if (strcmp(path + n, *c) == 0)
                        return true;
        return false;
}

/* Another build of the same OUT may commit at the same moment (a script
 * running builds in parallel, two fleets into one directory): the
 * directory's flock makes each commit whole, so OUT and its companions
 * always come from one build, and without --force an OUT that appeared
 * since output_begin checked is refused, not replaced.  -1: no lock to be
 * had (the commit goes on, as it would have before). */
int output_lock_dir(const char *dir) {
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
                return fd;
        /* a commit holds it for moments, a fleet for its whole run: say
         * why nothing happens meanwhile */
        if (errno == EWOULDBLOCK)
                log_info("Waiting for another dimimage run writing into %s", dir);
        if (flock(fd, LOCK_EX) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

static int lock_out_dir(const char *path) {
        _cleanup_free_ char *dir = path_dirname(path);
        return output_lock_dir(dir);
}

static int commit_locked(struct output *o, struct output_file *aux, size_t naux) {
        int r = 0;
        struct stat st;
        if (!o->force && lstat(o->path, &st) == 0)
                return log_error(EEXIST, o->path, "exists (written by another build meanwhile); use --force to overwrite");
        for (const char *const *c = output_companions; *c && r == 0; c++) {
                _cleanup_free_ char *stale = xasprintf("%s%s", o->path, *c);
                r = unlink_stale(stale);
        }
        for (size_t i = 0; i < naux && r == 0; i++)
                r = unlink_stale(aux[i].path);
        if (r < 0)
                return r;
        char **final_tmp = o->tmp_out ? &o->tmp_out : &o->tmp_raw;
        bool tracked_out = o->track_committed && *final_tmp && track_final(o->path, *final_tmp, TRACK_OUTPUT) == 0;
        if ((r = rename_into_place(final_tmp, o->path)) < 0) {
                if (tracked_out)
                        output_untrack_temp(o->path);
                return r;
        }
        for (size_t i = 0; i < naux; i++) {
                /* what is not OUT's companion (an Imager list) is tracked
                 * on its own, and left tracked: a single build's last files */
                if (o->track_committed && !is_companion(o->path, aux[i].path) && aux[i].tmp)
                        aux[i].tracked = track_final(aux[i].path, aux[i].tmp, TRACK_FINAL) == 0;
                if ((r = rename_into_place(&aux[i].tmp, aux[i].path)) < 0) {
                        if (tracked_out)
                                output_untrack_temp(o->path);
                        unlink(o->path);
                        return r;
                }
                aux[i].renamed = true;
        }
        return 0;
}

static int commit_files(struct output *o, struct output_file *aux, size_t naux) {
        int dfd = o->dir_locked ? -1 : lock_out_dir(o->path);
        int r = commit_locked(o, aux, naux);
        if (dfd >= 0)
                close(dfd); /* and the lock with it */
        return r;
}

int output_commit(struct output *o) {
        struct bmap b = { 0 };
        struct compressor *c = NULL;
        struct output_file aux[2 + OUTPUT_MAX_EXTRA] = { 0 };
        size_t naux = 0;
        int out_fd = -1, err;
        struct syncer sync = { 0 };
        _cleanup_free_ char *bmap_text = NULL, *sums = NULL, *sp = NULL;

        struct stat st;
        int r = 0;
        if (fstat(o->fd, &st) < 0) {
                r = log_error(errno, o->tmp_raw, "cannot stat: %m");
                goto fail;
        }
        o->raw_bytes = (uint64_t)st.st_size;
        /* Only a raw output keeps these bytes; a compressed one deletes them.
         * Their writing to disk overlaps the hashing pass. */
        if (o->format == OUT_RAW)
                syncer_start(&sync, o->fd);
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
        r = output_pass(o, &b, c);
        if (r < 0)
                goto fail;
        if (o->precommit && (r = o->precommit(o->precommit_arg)) < 0)
                goto fail;
        if (o->format == OUT_RAW) {
                err = syncer_wait(&sync);
                /* the patch was written after the syncer's fdatasync began */
                if (!err && o->patch.nspan && fdatasync(o->fd) < 0)
                        err = errno;
                if (err) {
                        r = log_output_error(err, o->tmp_raw, "sync");
                        goto fail;
                }
        }
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
                        r = log_output_error(errno, o->path, "sync");
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
                r = aux_prepare(&aux[naux++], p, bmap_text, len, 0644);
                free(p);
                if (r < 0)
                        goto fail;
        }
        sums = xasprintf("%s  %s\n", o->sha256, path_basename(o->path));
        sp = xasprintf("%s.sha256", o->path);
        r = aux_prepare(&aux[naux++], sp, sums, strlen(sums), 0644);
        if (r < 0)
                goto fail;
        o->has_bmap = !o->no_bmap;
        if (o->describe && (r = o->describe(o->describe_arg, o)) < 0)
                goto fail;
        /* the commit's from here: its failure path removes them */
        for (size_t i = 0; i < o->nextra; i++) {
                aux[naux++] = o->extra[i];
                o->extra[i] = (struct output_file){0};
        }
        o->nextra = 0;

        r = commit_files(o, aux, naux);
        if (r < 0)
                goto fail;
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
        syncer_wait(&sync);
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
        for (size_t i = 0; i < o->nextra; i++)
                aux_cleanup(&o->extra[i], false);
        o->nextra = 0;
        free(o->path);
        o->path = NULL;
}
