/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The commit's one pass over the finished image (output_commit). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bmap.h"
#include "compress.h"
#include "hash.h"
#include "log.h"
#include "output_pass.h"
#include "progress.h"
#include "util.h"

/* ---- the one pass over the finished image ----
 * The image is read once, in large chunks aligned to PASS_CHUNK, holes never
 * read; every chunk goes to up to three consumers, each on its own thread so
 * the two SHA-256 streams (whole image, bmap ranges) and the compressor run
 * side by side on different CPUs.  A chunk's slot is reused only when every
 * consumer is done with it, so memory stays PASS_SLOTS * PASS_CHUNK. */

#define PASS_CHUNK (4u << 20)
#define PASS_SLOTS 4

enum use { USE_WHOLE, USE_RANGES, USE_COMPRESS, NUSES };

struct chunk {
        uint8_t *buf;
        uint64_t len;
        size_t range;     /* its bmap range (data chunks) */
        bool hole;        /* len zero bytes, not read, buf unused */
        bool range_start; /* first chunk of its range */
        bool range_end;   /* last chunk of its range */
};

struct pass {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct chunk chunks[PASS_SLOTS];
        uint64_t produced;    /* chunks handed to the consumers */
        uint64_t done[NUSES]; /* chunks each consumer has finished */
        bool on[NUSES];
        bool closing;
        int err; /* first consumer failure, logged by that consumer */
        struct bmap *b;
        struct compressor *c;
        struct sha256 whole, range;
        bool range_open;
        struct progress pr; /* of the image's bytes handed on (o->progress) */
        /* the output's patch (output.h): filled yet, and bytes put */
        bool filled;
        uint8_t fill[OUTPUT_PATCH_BYTES];
        uint64_t patched;
};

struct worker {
        struct pass *p;
        enum use use;
        pthread_t thread;
};

static int consume(struct pass *p, enum use use, const struct chunk *ch) {
        switch (use) {
        case USE_WHOLE:
                if (ch->hole)
                        sha256_zeros(&p->whole, ch->len);
                else
                        sha256_update(&p->whole, ch->buf, ch->len);
                return 0;
        case USE_RANGES:
                /* Ranges cover whole data extents: holes lie between them. */
                if (ch->hole)
                        return 0;
                if (ch->range_start) {
                        sha256_init(&p->range);
                        p->range_open = true;
                }
                sha256_update(&p->range, ch->buf, ch->len);
                if (ch->range_end) {
                        sha256_final_hex(&p->range, p->b->v[ch->range].sha256);
                        p->range_open = false;
                }
                return 0;
        case USE_COMPRESS:
                return ch->hole ? compressor_write_zeros(p->c, ch->len) : compressor_write(p->c, ch->buf, ch->len);
        default:
                return -EINVAL;
        }
}

static void *consumer(void *arg) {
        struct worker *w = arg;
        struct pass *p = w->p;
        pthread_mutex_lock(&p->lock);
        for (;;) {
                while (!p->err && p->done[w->use] == p->produced && !p->closing)
                        pthread_cond_wait(&p->cond, &p->lock);
                if (p->err || p->done[w->use] == p->produced)
                        break;
                const struct chunk *ch = &p->chunks[p->done[w->use] % PASS_SLOTS];
                pthread_mutex_unlock(&p->lock);
                int r = consume(p, w->use, ch);
                pthread_mutex_lock(&p->lock);
                p->done[w->use]++;
                if (r < 0 && !p->err)
                        p->err = r;
                pthread_cond_broadcast(&p->cond);
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

/* The next free slot, or NULL once a consumer has failed. */
static struct chunk *pass_get(struct pass *p) {
        pthread_mutex_lock(&p->lock);
        for (;;) {
                uint64_t slowest = p->produced;
                for (int u = 0; u < NUSES; u++)
                        if (p->on[u])
                                slowest = MIN(slowest, p->done[u]);
                if (p->err || p->produced - slowest < PASS_SLOTS)
                        break;
                pthread_cond_wait(&p->cond, &p->lock);
        }
        struct chunk *ch = p->err ? NULL : &p->chunks[p->produced % PASS_SLOTS];
        pthread_mutex_unlock(&p->lock);
        return ch;
}

static void pass_put(struct pass *p) {
        pthread_mutex_lock(&p->lock);
        p->produced++;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
}

static int put_hole(struct pass *p, uint64_t n) {
        if (n == 0)
                return 0;
        struct chunk *ch = pass_get(p);
        if (!ch)
                return 1;
        *ch = (struct chunk){ .buf = ch->buf, .len = n, .hole = true };
        pass_put(p);
        return 0;
}

/* The hole from..to, in pieces: the compressor takes ~0.2 s per 32 MiB of
 * zeros (xz), and an image's last hole can be most of it, so the progress
 * line moves on through a hole too. */
#define HOLE_PIECE (32u << 20)

static int put_holes(struct pass *p, uint64_t from, uint64_t to) {
        while (from < to) {
                uint64_t n = MIN(to - from, HOLE_PIECE);
                int r = put_hole(p, n);
                if (r != 0)
                        return r;
                from += n;
                progress_update(&p->pr, from);
        }
        return 0;
}

/* Put the patch's bytes that fall in buf (len bytes of the image from off)
 * into buf, and into the image: the file on disk must say what was hashed. */
static int patch_chunk(struct pass *p, const struct output *o, uint8_t *buf, uint64_t off, size_t len) {
        const struct output_patch *t = &o->patch;
        for (size_t i = 0; i < t->nspan; i++) {
                uint64_t a = MAX(t->span[i].off, off), z = MIN(t->span[i].off + t->span[i].len, off + len);
                if (a >= z)
                        continue;
                if (!p->filled) {
                        int r = t->fill(t->arg, p->fill);
                        if (r < 0)
                                return r;
                        p->filled = true;
                }
                const uint8_t *from = p->fill + t->span[i].from + (a - t->span[i].off);
                memcpy(buf + (a - off), from, z - a);
                int r = pwrite_full(o->fd, from, z - a, a);
                if (r < 0)
                        return log_error(r, o->tmp_raw, "cannot write: %s", strerror(-r));
                p->patched += z - a;
        }
        return 0;
}

static uint64_t patch_bytes(const struct output_patch *t) {
        uint64_t n = 0;
        for (size_t i = 0; i < t->nspan; i++)
                n += t->span[i].len;
        return n;
}

/* Returns 1 when a consumer failed (it logged), -errno on a read error. */
static int produce(struct pass *p, const struct output *o) {
        const struct bmap *b = p->b;
        uint64_t pos = 0;
        for (size_t i = 0; i < b->n; i++) {
                uint64_t start, end;
                bmap_range_bytes(b, &b->v[i], &start, &end);
                int r = put_holes(p, pos, start);
                if (r != 0)
                        return r;
                for (uint64_t off = start; off < end;) {
                        /* Chunk ends on PASS_CHUNK boundaries: aligned reads. */
                        size_t n = (size_t)MIN(end - off, PASS_CHUNK - off % PASS_CHUNK);
                        struct chunk *ch = pass_get(p);
                        if (!ch)
                                return 1;
                        r = pread_full(o->fd, ch->buf, n, off);
                        if (r < 0)
                                return log_error(r, o->tmp_raw, "cannot read back the image: %s", strerror(-r));
                        if (o->patch.nspan && (r = patch_chunk(p, o, ch->buf, off, n)) < 0)
                                return r;
                        *ch = (struct chunk){ .buf = ch->buf, .len = n, .range = i, .range_start = off == start,
                                              .range_end = off + n == end };
                        pass_put(p);
                        off += n;
                        progress_update(&p->pr, off);
                }
                pos = end;
        }
        /* in a hole, or past the end: hashed as whatever is there */
        if (p->patched != patch_bytes(&o->patch))
                return log_error(EIO, o->tmp_raw, "internal error: bytes to fill in are not in the image's data");
        return put_holes(p, pos, b->image_size);
}

int output_pass(struct output *o, struct bmap *b, struct compressor *c) {
        struct pass p = { .b = b, .c = c };
        p.on[USE_WHOLE] = o->format == OUT_RAW || !o->no_raw_sha256;
        p.on[USE_RANGES] = !o->no_bmap;
        p.on[USE_COMPRESS] = c != NULL;
        pthread_mutex_init(&p.lock, NULL);
        pthread_cond_init(&p.cond, NULL);
        for (int i = 0; i < PASS_SLOTS; i++)
                p.chunks[i].buf = xmalloc(PASS_CHUNK);
        if (p.on[USE_WHOLE])
                sha256_init(&p.whole);
        posix_fadvise(o->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        struct worker w[NUSES];
        for (int u = 0; u < NUSES; u++) {
                w[u] = (struct worker){ .p = &p, .use = (enum use)u };
                if (p.on[u] && pthread_create(&w[u].thread, NULL, consumer, &w[u]) != 0)
                        abort();
        }
        /* the reader is at most PASS_SLOTS chunks ahead of the compressor:
         * its position is the compressor's, near enough */
        if (c && o->progress)
                progress_begin_named(&p.pr, "Compressing", path_basename(o->path), b->image_size);
        int r = produce(&p, o);
        pthread_mutex_lock(&p.lock);
        p.closing = true;
        pthread_cond_broadcast(&p.cond);
        pthread_mutex_unlock(&p.lock);
        for (int u = 0; u < NUSES; u++)
                if (p.on[u])
                        pthread_join(w[u].thread, NULL);
        /* The reader hands a small image's data on at once and the line
         * then waits on the compressor: drawn once more as it finishes, so a
         * compression that took a while is always seen to have. */
        progress_update(&p.pr, p.pr.done);
        progress_end(&p.pr);
        if (r >= 0 && p.err < 0)
                r = p.err;
        if (r > 0) /* a consumer stopped us; it has set p.err */
                r = p.err < 0 ? p.err : -EIO;
        if (p.on[USE_WHOLE])
                sha256_final_hex(&p.whole, o->raw_sha256);
        else
                o->raw_sha256[0] = 0;
        if (p.range_open) {
                char unused[65];
                sha256_final_hex(&p.range, unused);
        }
        /* the image's bytes, the stack's .env among them */
        for (int i = 0; i < PASS_SLOTS; i++) {
                explicit_bzero(p.chunks[i].buf, PASS_CHUNK);
                free(p.chunks[i].buf);
        }
        pthread_mutex_destroy(&p.lock);
        pthread_cond_destroy(&p.cond);
        return r;
}
