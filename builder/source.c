/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "source.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bmap.h"
#include "cache.h"
#include "decoder.h"
#include "hash.h"
#include "log.h"
#include "progress.h"
#include "util.h"
#include "writepiece.h"

/* Four 4 MiB buffers between the reader/decoder and the writer/hasher: large
 * enough for few syscalls, small enough to keep memory flat. */
#define SLOT_SIZE (4u << 20)
#define NSLOTS 4
/* All-zero runs of this granularity become holes (the ext4 block size). */
#define ZERO_GRAIN 4096u
/* a clone's kernel copy step, each one's writeback started at once */
#define WRITEBACK_STEP (64ull << 20)
/* a cache hit's check reads this much at a time */
#define CHECK_CHUNK (1u << 20)

/* ---- the writer: hashes and writes sparse, on its own thread ---- */

struct slot {
        uint8_t *buf;
        uint64_t len, off;
        bool hole;  /* len zero bytes, nothing in buf */
        bool write; /* the writer writes it (else it is already in place) */
};

struct pipeline {
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct slot slots[NSLOTS];
        unsigned head, count;
        bool closing;
        int err; /* first writer failure, -errno; logged by the producer */
        int out_fd;
        int tee_fd;     /* a second output written the same, or -1 (source_opts.tee) */
        int err_fd;     /* the output p->err is about */
        bool writeback; /* start each slot's writeback once written */
        bool hash;      /* else only written: a cache hit checked on the side */
        /* the writes' piece size, probed (writepiece.c) unless the output is
         * copied next (source_opts.cloned): only the thread that writes
         * the slots (the producer of a raw base, else the writer) uses it */
        struct write_piece wp;
        struct sha256 sha;
};

/* Write buf's non-zero ZERO_GRAIN runs at off: all-zero grains stay holes.
 * Each run goes to fd in pieces of `piece`, then to tee_fd (unless -1) in
 * the same (WRITE_PIECEs for whole ones: the tee is not copied next);
 * *err_fd names the one that failed, *written (unless NULL) counts the
 * bytes put. */
static int write_nonzero_tee(int fd, int tee_fd, const uint8_t *buf, size_t len, uint64_t off, size_t piece,
                             int *err_fd, uint64_t *written) {
        size_t tee_piece = piece == SIZE_MAX ? WRITE_PIECE : piece;
        size_t i = 0;
        while (i < len) {
                size_t g = MIN(ZERO_GRAIN, len - i);
                if (mem_is_zero(buf + i, g)) {
                        i += g;
                        continue;
                }
                /* Coalesce the run of non-zero grains into one write. */
                size_t j = i + g;
                while (j < len) {
                        size_t g2 = MIN(ZERO_GRAIN, len - j);
                        if (mem_is_zero(buf + j, g2))
                                break;
                        j += g2;
                }
                int r = pwrite_pieces(fd, buf + i, j - i, off + i, piece);
                if (r == 0 && tee_fd >= 0 && (r = pwrite_pieces(tee_fd, buf + i, j - i, off + i, tee_piece)) < 0)
                        fd = tee_fd;
                if (r < 0) {
                        if (err_fd)
                                *err_fd = fd;
                        return r;
                }
                if (written)
                        *written += j - i;
                i = j;
        }
        return 0;
}

static int write_nonzero(int fd, const uint8_t *buf, size_t len, uint64_t off, size_t piece) {
        return write_nonzero_tee(fd, -1, buf, len, off, piece, NULL, NULL);
}

/* A slot's writes, their piece size probed and then chosen (p->wp): the
 * clock (a syscall each time) is read only while the probe lasts. */
static int write_slot(struct pipeline *p, const uint8_t *buf, size_t len, uint64_t off, int *err_fd) {
        size_t piece = write_piece_next(&p->wp);
        if (!write_piece_probing(&p->wp))
                return write_nonzero_tee(p->out_fd, p->tee_fd, buf, len, off, piece, err_fd, NULL);
        uint64_t written = 0, t = thread_cpu_ns();
        int r = write_nonzero_tee(p->out_fd, p->tee_fd, buf, len, off, piece, err_fd, &written);
        write_piece_account(&p->wp, piece, written, thread_cpu_ns() - t);
        return r;
}

/* Start the writeback of [off, off+len) without waiting for it, for an output
 * that will be synced by the commit: streamed like this, the disk works
 * beside the extraction instead of after it.  A hint: errors show at the
 * commit's fdatasync. */
static void start_writeback(int fd, uint64_t off, uint64_t len) {
        (void)sync_file_range(fd, (off64_t)off, (off64_t)len, SYNC_FILE_RANGE_WRITE);
}

static int consume(struct pipeline *p, const struct slot *s, int *err_fd) {
        if (s->hole) {
                if (p->hash)
                        sha256_zeros(&p->sha, s->len);
                return 0;
        }
        if (p->hash)
                sha256_update(&p->sha, s->buf, s->len);
        int r = s->write ? write_slot(p, s->buf, (size_t)s->len, s->off, err_fd) : 0;
        if (r == 0 && p->writeback) {
                start_writeback(p->out_fd, s->off, s->len);
                if (p->tee_fd >= 0)
                        start_writeback(p->tee_fd, s->off, s->len);
        }
        return r;
}

static void *writer(void *arg) {
        struct pipeline *p = arg;
        pthread_mutex_lock(&p->lock);
        for (;;) {
                while (p->count == 0 && !p->closing)
                        pthread_cond_wait(&p->cond, &p->lock);
                if (p->count == 0)
                        break;
                struct slot *s = &p->slots[p->head];
                pthread_mutex_unlock(&p->lock);
                int err_fd = p->out_fd;
                int r = consume(p, s, &err_fd);
                pthread_mutex_lock(&p->lock);
                p->head = (p->head + 1) % NSLOTS;
                p->count--;
                if (r < 0 && !p->err) {
                        p->err = r;
                        p->err_fd = err_fd;
                }
                pthread_cond_broadcast(&p->cond);
                if (r < 0)
                        break;
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

static void pipeline_start(struct pipeline *p, int out_fd, const struct source_opts *o, bool hash) {
        *p = (struct pipeline){.out_fd = out_fd,
                               .tee_fd = o->tee ? o->tee_fd : -1,
                               .err_fd = out_fd,
                               .writeback = o->writeback,
                               .hash = hash};
        write_piece_init(&p->wp, o->cloned);
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->cond, NULL);
        for (unsigned i = 0; i < NSLOTS; i++)
                p->slots[i].buf = xmalloc(SLOT_SIZE);
        sha256_init(&p->sha);
        if (pthread_create(&p->thread, NULL, writer, p) != 0)
                abort();
}

/* The next free slot, or NULL when the writer has failed. */
static struct slot *pipeline_get(struct pipeline *p) {
        pthread_mutex_lock(&p->lock);
        while (p->count == NSLOTS && !p->err)
                pthread_cond_wait(&p->cond, &p->lock);
        struct slot *s = p->err ? NULL : &p->slots[(p->head + p->count) % NSLOTS];
        pthread_mutex_unlock(&p->lock);
        return s;
}

static void pipeline_put(struct pipeline *p) {
        pthread_mutex_lock(&p->lock);
        p->count++;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
}

/* Wait for the writer; returns its error (not yet logged) and the hash into
 * hex, unless hex is NULL. */
static int pipeline_finish(struct pipeline *p, char hex[65]) {
        char unused[65];
        pthread_mutex_lock(&p->lock);
        p->closing = true;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->thread, NULL);
        if (p->wp.slots[0] + p->wp.slots[1] > 0) {
                char how[160];
                write_piece_describe(&p->wp, how, sizeof(how));
                log_debug("page-cache writes in %s", how);
        }
        sha256_final_hex(&p->sha, hex ? hex : unused);
        for (unsigned i = 0; i < NSLOTS; i++)
                free(p->slots[i].buf);
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->cond);
        return p->err;
}

static void fd_name(int fd, char *name, size_t n) {
        char link[64];
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        ssize_t k = readlink(link, name, n - 1);
        if (k <= 0)
                snprintf(name, n, "output");
        else
                name[k] = 0;
}

static int output_error(int fd, int err, const struct source_opts *o) {
        char name[4096];
        fd_name(fd, name, sizeof(name));
        /* a scratch file is unlinked by its owner once this returns: its
         * directory is what the hint is about */
        if (o && o->scratch) {
                char *slash = strrchr(name, '/');
                if (slash && slash > name)
                        *slash = '\0';
                return log_output_error_hint(err, name, "write", scratch_write_hint(err));
        }
        /* our hidden temporary (DIR/.OUT.XXXXXX.tmp) is gone by the time
         * the error is read: name DIR/OUT, the file being written */
        char *slash = strrchr(name, '/');
        if (slash && slash[1] == '.' && str_has_suffix(slash, ".tmp")) {
                slash[strlen(slash) - 4] = '\0';
                char *dot = strrchr(slash, '.');
                if (dot > slash + 1) {
                        *dot = '\0';
                        memmove(slash + 1, slash + 2, strlen(slash + 2) + 1);
                }
        }
        return log_output_error(err, name, "write");
}

/* ---- producers ---- */

/* The writer stops at the first error; the producer's own output errors are
 * recorded the same way, so both are reported once, as the output's. */
static void pipeline_fail(struct pipeline *p, int err, int err_fd) {
        pthread_mutex_lock(&p->lock);
        if (!p->err) {
                p->err = err;
                p->err_fd = err_fd;
        }
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
}

/* A raw image (or a cached one): read only the data extents, feed holes to
 * the hash as zeros without reading them.
 * shared: the output already shares the base's extents (FICLONE), only the
 * hash is left.  Otherwise this thread writes each slot (its zero grains left
 * as holes) while the writer thread hashes the one before.  copy_file_range
 * would save the user-space copy, but it fills the page cache in large
 * folios, which took 0.7-2.3 s of system time for 1.7 GB here against
 * 0.65 s for pread + WRITE_PIECE pwrites (util.h); a raw build's extraction
 * went from 2.5-3.9 s to 1.75 s, its hash's own time. */
static int produce_raw(struct pipeline *p, int fd, const char *path, uint64_t size, struct progress *pr,
                       bool silent, bool shared) {
        uint64_t off = 0;
        while (off < size) {
                off_t data = lseek(fd, (off_t)off, SEEK_DATA);
                if (data < 0) {
                        if (errno == ENXIO)
                                data = (off_t)size;
                        else if (errno == EINVAL || errno == EOPNOTSUPP)
                                data = (off_t)off;
                        else
                                return silent ? -errno : log_error(errno, path, "cannot seek: %m");
                }
                uint64_t d = MIN((uint64_t)data, size);
                if (d > off) {
                        struct slot *s = pipeline_get(p);
                        if (!s)
                                return 0;
                        *s = (struct slot){.buf = s->buf, .len = d - off, .off = off, .hole = true};
                        pipeline_put(p);
                        off = d;
                        continue;
                }
                off_t hole = lseek(fd, (off_t)off, SEEK_HOLE);
                uint64_t h = hole < 0 ? size : MIN((uint64_t)hole, size);
                if (h <= off)
                        h = size;
                while (off < h) {
                        struct slot *s = pipeline_get(p);
                        if (!s)
                                return 0;
                        size_t n = (size_t)MIN((uint64_t)SLOT_SIZE, h - off);
                        int r = pread_full(fd, s->buf, n, off);
                        if (r < 0 && silent)
                                return r;
                        if (r < 0)
                                return log_error(r, path, r == -EIO ? "cannot read: file shrank while reading"
                                                                    : "cannot read: %s", strerror(-r));
                        *s = (struct slot){.buf = s->buf, .len = n, .off = off};
                        int err_fd = p->out_fd;
                        if (!shared && (r = write_slot(p, s->buf, n, off, &err_fd)) < 0) {
                                pipeline_fail(p, r, err_fd);
                                return 0;
                        }
                        pipeline_put(p);
                        off += n;
                        progress_update(pr, off);
                }
        }
        return 0;
}

static int produce_decoded(struct pipeline *p, struct decoder *d, struct progress *pr, uint64_t *bytes) {
        uint64_t off = 0;
        for (;;) {
                struct slot *s = pipeline_get(p);
                if (!s)
                        return 0;
                long long n = decoder_read(d, s->buf, SLOT_SIZE);
                if (n < 0)
                        return (int)n;
                if (off == 0) {
                        int r = source_check_head(d->path, s->buf, (size_t)n, true, true);
                        if (r < 0)
                                return r;
                }
                if (n == 0)
                        break;
                s->len = (uint64_t)n;
                s->off = off;
                s->hole = false;
                s->write = true;
                pipeline_put(p);
                off += (uint64_t)n;
                progress_update_bytes(pr, decoder_consumed(d), off);
                if ((size_t)n < SLOT_SIZE)
                        break;
        }
        *bytes = off;
        return 0;
}

/* out_fd, and the tee if any, made exactly `bytes` long (their tails holes) */
static int finish_output(int out_fd, const struct source_opts *o, uint64_t bytes) {
        if (ftruncate(out_fd, (off_t)bytes) < 0)
                return output_error(out_fd, -errno, o);
        if (o->tee && ftruncate(o->tee_fd, (off_t)bytes) < 0)
                return output_error(o->tee_fd, -errno, o);
        return 0;
}

/* Copy a raw image (the base itself, or a cached one) into out_fd, hashing
 * it into hex unless hex is NULL.  For a cached image (from_cache), trouble
 * reading it is not the build's: it returns 1 unlogged so the caller
 * decompresses instead. */
static int extract_raw(int fd, const char *path, const char *label, uint64_t size, int out_fd,
                       const struct source_opts *o, bool from_cache, char hex[65]) {
        if (!from_cache) {
                int r = decoder_check_raw_head(fd, path, size, true);
                if (r < 0)
                        return r;
        }
        /* Sharing extents costs nothing and leaves only the hash to do,
         * if any: a check beside the build hashes on its own. */
        struct stat st;
        bool shared = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && ioctl(out_fd, FICLONE, fd) == 0 &&
                      (!o->tee || ioctl(o->tee_fd, FICLONE, fd) == 0);
        if (shared && !hex)
                return finish_output(out_fd, o, size);
        struct pipeline p;
        pipeline_start(&p, out_fd, o, hex != NULL);
        struct progress pr;
        progress_begin(&pr, label, size);
        if (o->quiet)
                pr.enabled = 0;
        int r = produce_raw(&p, fd, path, size, &pr, from_cache, shared);
        progress_end(&pr);
        int w = pipeline_finish(&p, hex);
        if (r < 0 && !from_cache)
                return r;
        if (w < 0)
                return output_error(p.err_fd, w, o);
        if (r < 0)
                return 1;
        return finish_output(out_fd, o, size);
}

static int extract_decoded(int fd, const char *path, uint64_t size, enum fmt fmt, int out_fd,
                           const struct source_opts *o, char hex[65], uint64_t *bytes) {
        struct decoder d;
        int r = decoder_open(&d, fd, path, size, fmt);
        if (r < 0)
                return r;
        struct pipeline p;
        pipeline_start(&p, out_fd, o, true);
        struct progress pr;
        progress_begin(&pr, path_basename(path), size);
        if (o->quiet)
                pr.enabled = 0;
        r = produce_decoded(&p, &d, &pr, bytes);
        progress_end(&pr);
        int w = pipeline_finish(&p, hex);
        decoder_close(&d);
        if (r < 0)
                return r;
        if (w < 0)
                return output_error(p.err_fd, w, o);
        return finish_output(out_fd, o, *bytes);
}

static void drop_damaged(struct cache_entry *e, const char *base, bool moved) {
        if (e->is_base && moved)
                log_warn(base, "changed while it was read; reading it again");
        else if (e->is_base)
                log_warn(base, "does not match the sha256 remembered for it; reading it again");
        else
                log_warn(e->image, "cached copy of %s is damaged; dropping it and decompressing again", base);
        cache_discard(e);
}

/* A cache hit copied before its check (source_opts.verify_later): the entry
 * hashed again on its own thread, beside the edits and the output's hashing,
 * which are what a rebuild from the cache otherwise waits on.  With compute,
 * a raw base with no sha256 to check against (source_opts.sum_later): the
 * hash is the result, and e.sha256 gets it. */
struct source_check {
        pthread_t thread;
        struct cache_entry e;
        char *base;
        int fd;
        bool match;
        bool moved; /* the base's size, mtime or ctime moved while it was read */
        bool compute;
        bool remember;  /* compute: remember the sum once it is known */
        struct stat st; /* the base as it was opened */
        atomic_bool stop; /* source_drop: nobody waits for the result */
};

/* A base whose size, mtime or ctime moved while it was read may have
 * handed the copy and the hash different bytes. */
static bool unchanged(int fd, const struct stat *was) {
        struct stat st;
        return fstat(fd, &st) == 0 && st.st_size == was->st_size && st.st_mtim.tv_sec == was->st_mtim.tv_sec &&
               st.st_mtim.tv_nsec == was->st_mtim.tv_nsec && st.st_ctim.tv_sec == was->st_ctim.tv_sec &&
               st.st_ctim.tv_nsec == was->st_ctim.tv_nsec;
}

/* One thread reading and hashing in CHECK_CHUNKs: the build's other threads
 * keep the CPUs busy, a pipeline would only hold 16 MiB more. */
static void *check_entry(void *arg) {
        struct source_check *k = arg;
        struct bmap b;
        if (bmap_scan(k->fd, k->e.bytes, NULL, &b) < 0) { /* unlogged: a failed check says enough */
                bmap_free(&b);
                return NULL;
        }
        uint8_t *buf = xmalloc(CHECK_CHUNK);
        struct sha256 h;
        sha256_init(&h);
        uint64_t pos = 0;
        int r = 0;
        for (size_t i = 0; i < b.n && r == 0; i++) {
                uint64_t start, end;
                bmap_range_bytes(&b, &b.v[i], &start, &end);
                sha256_zeros(&h, start - pos);
                for (pos = start; pos < end && r == 0; pos += CHECK_CHUNK) {
                        size_t n = (size_t)MIN((uint64_t)CHECK_CHUNK, end - pos);
                        if (atomic_load_explicit(&k->stop, memory_order_relaxed))
                                r = -ECANCELED;
                        else if ((r = pread_full(k->fd, buf, n, pos)) == 0)
                                sha256_update(&h, buf, n);
                }
                pos = MIN(pos, end);
        }
        if (r == 0) /* a stopped check hashes no more */
                sha256_zeros(&h, k->e.bytes - pos);
        char hex[65];
        sha256_final_hex(&h, hex);
        if (k->compute) {
                k->match = r == 0; /* and unchanged: see check_wait */
                memcpy(k->e.sha256, hex, sizeof(hex));
        } else
                k->match = r == 0 && strcmp(hex, k->e.sha256) == 0;
        free(buf);
        bmap_free(&b);
        return NULL;
}

/* fd: the base, already open (its own descriptor is taken), so the check
 * reads the file that was copied even if the path is replaced meanwhile;
 * -1: open the cache entry's image.  st: the base as it was opened (a
 * base's check, e->is_base; NULL for a cache entry's).  compute: its sha256
 * is to be computed (else checked against e->sha256); remember: then
 * remember it. */
static struct source_check *check_start(const struct cache_entry *e, const char *base, int fd,
                                        const struct stat *st, bool compute, bool remember) {
        fd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : open(e->image, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        struct source_check *k = xmalloc(sizeof(*k));
        *k = (struct source_check){
                .e = *e, .base = xstrdup(base), .fd = fd, .compute = compute, .remember = remember};
        atomic_init(&k->stop, false);
        if (st)
                k->st = *st;
        if (pthread_create(&k->thread, NULL, check_entry, k) != 0)
                abort();
        return k;
}

/* Wait for the check; the caller frees k (k->e's strings are a shallow
 * copy of the caller's entry). */
static bool check_wait(struct source_check *k) {
        pthread_join(k->thread, NULL);
        /* at the verdict: a base written at any time since it was opened may
         * have handed the copy and the check different bytes (one with a
         * remembered sum, rewritten in place mid-build, was "checked out").
         * Not a cache entry: written once, and touched (utimensat) by every
         * build that uses it, so its ctime moves under a parallel build. */
        if (k->e.is_base && !unchanged(k->fd, &k->st)) {
                k->match = false;
                k->moved = true;
        }
        close(k->fd);
        return k->match;
}

/* entry: k owns its entry's strings (use_entry), freed too */
static void check_free(struct source_check *k, bool entry) {
        if (entry)
                cache_entry_free(&k->e);
        free(k->base);
        free(k);
}

/* A check whose verdict no longer matters (its copy failed, or the build
 * did): stopped at its next read, then freed (the thread writes k->e until
 * it ends). */
static void check_drop(struct source_check *k, bool entry) {
        atomic_store_explicit(&k->stop, true, memory_order_relaxed);
        (void)check_wait(k);
        check_free(k, entry);
}

/* The base's sha256, hashed beside the build (compute): known now. */
static void sum_known(struct source_info *info, const struct source_check *k) {
        memcpy(info->sha256, k->e.sha256, sizeof(info->sha256));
        info->sum_pending = false;
        log_debug("%s: sha256 computed beside the build", k->base);
        if (k->remember)
                cache_remember(k->base, &k->st, info);
}

int source_verify(struct source_info *info) {
        struct source_check *k = info->check;
        if (!k)
                return info->damaged;
        bool match = check_wait(k);
        info->check = NULL;
        info->damaged = !match;
        if (k->compute) {
                if (match)
                        sum_known(info, k);
                else
                        log_warn(k->base, "changed or could not be read while it was copied; reading it again");
        } else {
                log_release(match);
                if (match)
                        log_debug("%s: %s checked out", k->base,
                                  k->e.is_base ? "its remembered sha256" : "the cached decompressed image");
                else
                        drop_damaged(&k->e, k->base, k->moved);
        }
        check_free(k, true);
        return info->damaged;
}

int source_drop(struct source_info *info) {
        struct source_check *k = info->check;
        if (!k || !k->compute)
                return source_verify(info);
        info->check = NULL;
        check_drop(k, true);
        return 0;
}

/* The copy of entry e in the output is the base's image from now on.  With
 * k its check still runs, beside the build, and source_verify has the
 * verdict: until then messages are held back.  k then owns e's strings. */
static void use_entry(struct source_info *info, const struct cache_entry *e, const char *base,
                      struct source_check *k) {
        snprintf(info->sha256, sizeof(info->sha256), "%s", e->sha256);
        info->bytes = e->bytes;
        snprintf(info->format, sizeof(info->format), "%s", e->format);
        info->from_cache = !e->is_base;
        const char *how = k ? ", checked beside the build" : "";
        if (e->is_base)
                log_debug("%s: sha256 remembered%s", base, how);
        else
                log_debug("%s: using the cached decompressed image %s%s", base, e->image, how);
        if (k) {
                info->check = k;
                log_hold();
        }
}

/* A cache hit is used only when the copy hashes to what was recorded (or,
 * with verify_later, once source_verify says so).
 * 1: used, 0: not (out_fd emptied again), -errno: the output failed. */
static int try_cache(const char *base, const struct stat *st, int out_fd, const struct source_opts *o,
                     struct source_info *info) {
        struct cache_entry e;
        if (cache_lookup(base, st, &e) <= 0)
                return 0;
        /* One open for the copy and the check: an entry replaced between two
         * opens (another build, cache clean) was copied and never checked. */
        int cfd = open(e.image, O_RDONLY | O_CLOEXEC);
        if (cfd < 0 && errno == ENOENT) {
                /* Removed since the lookup (cache clean, another build's
                 * eviction): a miss, not damage, and whatever has its name
                 * by the time we would drop it is another build's entry. */
                log_debug("cache: %s went away before it could be read", e.image);
                cache_entry_free(&e);
                return 0;
        }
        if (cfd < 0) {
                /* not damage: kept (EMFILE passes; the cache is the user's
                 * to clean), and the base decoded as on a miss */
                log_warn(e.image, "cannot read the cached copy of %s: %s; decompressing again (dimimage cache "
                         "clean removes it)", base, strerror(errno));
                cache_entry_free(&e);
                return 0;
        }
        /* started first, so the check overlaps the copy too */
        struct source_check *k = o->verify_later ? check_start(&e, base, cfd, NULL, false, false) : NULL;
        char hex[65] = "";
        int r = extract_raw(cfd, e.image, path_basename(base), e.bytes, out_fd, o, true, k ? NULL : hex);
        close(cfd);
        if (k && r == 0) {
                use_entry(info, &e, base, k);
                return 1;
        }
        if (k)
                check_drop(k, false);
        if (r < 0) {
                cache_entry_free(&e);
                return r;
        }
        if (r == 0 && strcmp(hex, e.sha256) == 0) {
                use_entry(info, &e, base, NULL);
                cache_entry_free(&e);
                return 1;
        }
        drop_damaged(&e, base, false);
        cache_entry_free(&e);
        r = finish_output(out_fd, o, 0); /* emptied for the decoding */
        return r < 0 ? r : 0;
}

/* A raw base whose sha256 is remembered: copied without hashing, and
 * checked beside the build like a cache hit, the check reading the base
 * itself.  1: used, 0: nothing remembered, -errno: the copy failed. */
static int try_sum(const char *base, const struct stat *st, int fd, int out_fd, const struct source_opts *o,
                   struct source_info *info) {
        struct cache_entry e;
        if (cache_lookup_sum(base, st, &e) <= 0)
                return 0;
        struct source_check *k = check_start(&e, base, fd, st, false, false);
        if (!k) {
                cache_entry_free(&e);
                return 0;
        }
        int r = extract_raw(fd, base, path_basename(base), e.bytes, out_fd, o, false, NULL);
        if (r < 0) {
                check_drop(k, false);
                cache_entry_free(&e);
                return r;
        }
        use_entry(info, &e, base, k);
        return 1;
}

/* A raw base with nothing remembered, for a caller that takes the sha256
 * late (source_opts.sum_later): copied at once and hashed beside the
 * build, so the edits need not wait for a pass over the whole base.
 * 1: copied (info->sum_pending), 0: no check to be had, -errno: the copy
 * failed. */
static int hash_beside(const char *base, const struct stat *st, int fd, uint64_t size, int out_fd,
                       const struct source_opts *o, bool remember, struct source_info *info) {
        struct cache_entry e = {.image = xstrdup(base), .bytes = size, .is_base = true};
        snprintf(e.format, sizeof(e.format), "%s", decoder_fmt_name(FMT_RAW));
        struct source_check *k = check_start(&e, base, fd, st, true, remember);
        if (!k) {
                cache_entry_free(&e);
                return 0;
        }
        int r = extract_raw(fd, base, path_basename(base), size, out_fd, o, false, NULL);
        if (r < 0) {
                check_drop(k, false);
                cache_entry_free(&e);
                return r;
        }
        info->bytes = size;
        info->check = k;
        info->sum_pending = true;
        log_debug("%s: copied at once, its sha256 computed beside the build", base);
        return 1;
}

static bool cache_acceptable(const char *base, const struct source_opts *o) {
        if (!o->cache_accept)
                return true;
        int r = o->cache_accept(o->cache_accept_arg);
        if (r < 0)
                log_debug("cache: %s is not a base a build accepts; not cached", base);
        return r >= 0;
}

/* Read in one pass, the base's bytes and their sha256 agree with each
 * other, but not with any version of a file something was writing
 * meanwhile (cp over it, a download still running): refused, not built. */
static int still_as_opened(int fd, const char *base, const struct stat *st) {
        if (!S_ISREG(st->st_mode) || unchanged(fd, st))
                return 0;
        return log_error(EAGAIN, base, "changed while it was read (is something writing it?); nothing was built "
                         "from it: try again once it is complete");
}

/* Around a read of the base's bytes (watch: it is a regular file): when the
 * read failed and the base changed meanwhile (a download still running, cp
 * over it), that is what is said, exit 75, not the damage it looked like
 * (corrupt or cut-short data, a short read), which is dropped unsaid. */
static void watch_begin(bool watch) {
        if (watch)
                log_hold();
}

static int watch_end(bool watch, int r, int fd, const char *base, const struct stat *st) {
        if (!watch)
                return r;
        bool moved = r < 0 && !unchanged(fd, st);
        log_release(!moved);
        return moved ? still_as_opened(fd, base, st) : r;
}

int source_extract(const char *base, int out_fd, const struct source_opts *o, struct source_info *info) {
        static const struct source_opts defaults = {0};
        if (!o)
                o = &defaults;
        *info = (struct source_info){0};
        struct stat st = {0};
        uint64_t size = 0;
        enum fmt fmt;
        int fd = decoder_open_file(base, &st, &size, &fmt);
        if (fd < 0)
                return fd;
        int r = 0;
        snprintf(info->format, sizeof(info->format), "%s", decoder_fmt_name(fmt));
        bool use_cache = !o->no_cache && S_ISREG(st.st_mode);
        if (fmt == FMT_RAW) {
                if (use_cache && o->verify_later && (r = try_sum(base, &st, fd, out_fd, o, info)) != 0)
                        goto out;
                bool watch = S_ISREG(st.st_mode);
                if (o->verify_later && o->sum_later && watch) {
                        watch_begin(watch);
                        r = watch_end(watch, hash_beside(base, &st, fd, size, out_fd, o, use_cache, info), fd, base,
                                      &st);
                        if (r != 0)
                                goto out;
                }
                watch_begin(watch);
                r = watch_end(watch, extract_raw(fd, base, path_basename(base), size, out_fd, o, false, info->sha256),
                              fd, base, &st);
                info->bytes = size;
                if (r == 0)
                        r = still_as_opened(fd, base, &st);
                if (r == 0 && use_cache)
                        cache_remember(base, &st, info);
                goto out;
        }
        if (use_cache && !o->fresh) {
                r = try_cache(base, &st, out_fd, o, info);
                if (r != 0)
                        goto out;
        }
        /* copied into the cache next: see source_opts.cloned */
        struct source_opts so = *o;
        so.cloned |= use_cache;
        watch_begin(S_ISREG(st.st_mode));
        r = watch_end(S_ISREG(st.st_mode), extract_decoded(fd, base, size, fmt, out_fd, &so, info->sha256, &info->bytes),
                      fd, base, &st);
        if (r == 0)
                r = still_as_opened(fd, base, &st);
        if (r == 0 && use_cache && cache_acceptable(base, o))
                cache_store(base, &st, out_fd, info, o->cache_max);
out:
        close(fd);
        if (r < 0) {
                *info = (struct source_info){0};
                return r;
        }
        return 0;
}

/* ---- cloning ---- */

/* Copy [off, end) of a data extent.  The kernel copies (copy_file_range,
 * while *kernel), in steps after each of which the writeback can start: a
 * fleet's shared base or a base going to the cache, written in whole slots
 * (source_opts.cloned), is copied in 0.8 s that way, against 3.1-3.9 s when
 * written in WRITE_PIECEs or copied through user space.  Else read and
 * write, zero grains left as holes. */
static int copy_extent(int from_fd, int to_fd, uint8_t *buf, uint64_t off, uint64_t end, bool writeback,
                       bool *kernel) {
        while (off < end) {
                size_t n = (size_t)MIN(WRITEBACK_STEP, end - off);
                if (*kernel) {
                        loff_t in = (loff_t)off, out = (loff_t)off;
                        ssize_t k = copy_file_range(from_fd, &in, to_fd, &out, n, 0);
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP ||
                                      errno == EBADF)) {
                                *kernel = false;
                                continue;
                        }
                        if (k <= 0)
                                return k < 0 ? -errno : -EIO;
                        n = (size_t)k;
                } else {
                        n = MIN(n, (size_t)SLOT_SIZE);
                        int r = pread_full(from_fd, buf, n, off);
                        if (r == 0)
                                r = write_nonzero(to_fd, buf, n, off, WRITE_PIECE);
                        if (r < 0)
                                return r;
                }
                if (writeback)
                        start_writeback(to_fd, off, n);
                off += n;
        }
        return 0;
}

int clone_range(int from_fd, int to_fd, uint64_t bytes, bool writeback) {
        struct stat st;
        if (fstat(from_fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == bytes &&
            ioctl(to_fd, FICLONE, from_fd) == 0)
                return 0;
        _cleanup_free_ uint8_t *buf = xmalloc(SLOT_SIZE); /* untouched while the kernel copies */
        bool kernel = true;
        uint64_t off = 0;
        int r = 0;
        while (off < bytes && r == 0) {
                off_t data = lseek(from_fd, (off_t)off, SEEK_DATA);
                if (data < 0) {
                        if (errno != ENXIO && errno != EINVAL)
                                return -errno;
                        data = errno == ENXIO ? (off_t)bytes : (off_t)off;
                }
                off = MIN((uint64_t)data, bytes);
                if (off >= bytes)
                        break;
                off_t hole = lseek(from_fd, (off_t)off, SEEK_HOLE);
                uint64_t end = hole < 0 ? bytes : MIN((uint64_t)hole, bytes);
                if (end <= off)
                        end = bytes;
                r = copy_extent(from_fd, to_fd, buf, off, end, writeback, &kernel);
                off = end;
        }
        if (r == 0 && ftruncate(to_fd, (off_t)bytes) < 0)
                r = -errno;
        return r;
}

int source_clone(int from_fd, int to_fd, uint64_t bytes, bool writeback) {
        int r = clone_range(from_fd, to_fd, bytes, writeback);
        return r < 0 ? output_error(to_fd, r, NULL) : 0;
}
