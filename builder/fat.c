/* SPDX-License-Identifier: GPL-3.0-or-later */
/* FAT16/FAT32 inside a partition window.  Design notes in docs/fat.md.
 *
 * The FAT (first copy, only the part that maps real clusters) lives in
 * memory; changed FAT sectors are written to every copy on close.
 * Directories are loaded whole (at most 2 MiB by the spec) and only the
 * 32-byte entries that change are written back.  Every cluster number and
 * chain read from disk is validated and chain walks are bounded by the
 * cluster count, so a crafted image cannot crash us or make us loop. */
#include "fat.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"
#include "fat_name.h"
#include "fat_private.h"

#define DIR_MAX_BYTES (65536u * 32u) /* the spec's limit on a directory */

/* A directory, loaded whole.  The FAT16 root is a fixed region (chain NULL). */
struct dir {
        bool root;
        bool fat32;       /* entries' cluster_hi counts; FAT16 reserves it */
        uint32_t cluster; /* first cluster; 0 for the FAT16 root */
        uint8_t *data;
        size_t len;
        uint32_t *chain;
        size_t nchain;
};

static uint64_t cluster_off(const struct fat_fs *fs, uint32_t c) {
        return (fs->data_sector + (uint64_t)(c - 2) * fs->spc) * fs->bps;
}

/* ---- the FAT ---- */

static bool fat_is_eoc(const struct fat_fs *fs, uint32_t v) {
        return fs->bits == 16 ? v >= 0xFFF8u : v >= 0x0FFFFFF8u;
}

static void fat_set(struct fat_fs *fs, uint32_t c, uint32_t v) {
        size_t pos;
        uint32_t old = fat_get(fs, c);
        if (fs->bits == 16) {
                pos = (size_t)c * 2;
                put_le16(fs->fat + pos, (uint16_t)v);
        } else {
                pos = (size_t)c * 4;
                /* The top four bits are reserved: keep them. */
                put_le32(fs->fat + pos, (get_le32(fs->fat + pos) & 0xF0000000u) | (v & 0x0FFFFFFFu));
        }
        if (old == 0 && v != 0)
                fs->free--;
        else if (old != 0 && v == 0)
                fs->free++;
        fs->fat_dirty[pos / fs->bps] = 1;
        fs->changed = true;
}

static uint32_t fat_eoc(const struct fat_fs *fs) { return fs->bits == 16 ? 0xFFFFu : 0x0FFFFFFFu; }

/* Walks a chain from first, collecting at most max clusters (0: the whole
 * chain).  A chain longer than the cluster count has a cycle. */
static int chain_walk(struct fat_fs *fs, uint32_t first, size_t max, const char *what, uint32_t **ret, size_t *n) {
        _cleanup_free_ uint32_t *list = NULL;
        size_t len = 0, cap = 0;
        uint32_t c = first;
        for (;;) {
                if (!fat_cluster_valid(fs, c))
                        return log_error(EINVAL, fs->name, "%s: invalid cluster number %" PRIu32 " in chain", what, c);
                if (len >= fs->nclusters)
                        return log_error(EINVAL, fs->name, "%s: cluster chain loops", what);
                if (len == cap) {
                        cap = cap ? cap * 2 : 16;
                        list = xrealloc(list, cap * sizeof *list);
                }
                list[len++] = c;
                if (max && len == max)
                        break;
                uint32_t next = fat_get(fs, c);
                if (fat_is_eoc(fs, next))
                        break;
                c = next;
        }
        *ret = list;
        list = NULL;
        *n = len;
        return 0;
}

static void chain_free(struct fat_fs *fs, const uint32_t *list, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (fat_get(fs, list[i]) != 0)
                        fat_set(fs, list[i], 0);
}

/* Next free cluster after the hint; the caller has checked fs->free. */
static uint32_t alloc_one(struct fat_fs *fs) {
        uint32_t c = fs->hint;
        for (uint32_t i = 0; i < fs->nclusters; i++) {
                c = (c < 2 || c - 2 + 1 >= fs->nclusters) ? 2 : c + 1;
                if (fat_get(fs, c) == 0) {
                        fat_set(fs, c, fat_eoc(fs));
                        fs->hint = c;
                        return c;
                }
        }
        return 0;
}

static int no_space(struct fat_fs *fs, const char *path, uint64_t need_clusters) {
        return log_error(ENOROOM, fs->name,
                         "boot partition: not enough space for %s: needs %" PRIu64 " bytes, %" PRIu64 " bytes free; use a bigger boot partition or fewer files",
                         path, need_clusters * fs->cs, (uint64_t)fs->free * fs->cs);
}

static int zero_cluster(struct fat_fs *fs, uint32_t c) {
        _cleanup_free_ uint8_t *z = xcalloc(1, fs->cs);
        return fat_win_write(fs, z, fs->cs, cluster_off(fs, c));
}


static void dir_free(struct dir *d) {
        free(d->data);
        free(d->chain);
        *d = (struct dir){0};
}

static int dir_load(struct fat_fs *fs, bool root, uint32_t cluster, const char *path, struct dir *d) {
        *d = (struct dir){.root = root, .fat32 = fs->bits == 32, .cluster = cluster};
        if (root && fs->bits == 16) {
                d->len = (size_t)fs->root_entries * 32;
                d->data = xmalloc(d->len);
                int r = fat_win_read(fs, d->data, d->len, (uint64_t)fs->root_sector * fs->bps);
                if (r < 0)
                        dir_free(d);
                return r;
        }
        if (root)
                d->cluster = cluster = fs->root_cluster;
        int r = chain_walk(fs, cluster, 0, path, &d->chain, &d->nchain);
        if (r < 0)
                return r;
        if (d->nchain > DIR_MAX_BYTES / fs->cs + 1) {
                dir_free(d);
                return log_error(EINVAL, fs->name, "%s: directory is larger than FAT allows", path);
        }
        d->len = d->nchain * fs->cs;
        d->data = xmalloc(d->len);
        for (size_t i = 0; i < d->nchain; i++) {
                r = fat_win_read(fs, d->data + i * fs->cs, fs->cs, cluster_off(fs, d->chain[i]));
                if (r < 0) {
                        dir_free(d);
                        return r;
                }
        }
        return 0;
}

static uint64_t dir_entry_off(const struct fat_fs *fs, const struct dir *d, size_t i) {
        if (!d->chain)
                return (uint64_t)fs->root_sector * fs->bps + i * 32;
        return cluster_off(fs, d->chain[i * 32 / fs->cs]) + (i * 32) % fs->cs;
}

static int dir_flush(struct fat_fs *fs, const struct dir *d, size_t first, size_t count) {
        for (size_t i = first; i < first + count; i++) {
                int r = fat_win_write(fs, d->data + i * 32, 32, dir_entry_off(fs, d, i));
                if (r < 0)
                        return r;
        }
        return 0;
}

/* On FAT16 an entry's high cluster word is not part of its cluster (OS/2
 * kept an extended-attribute handle there): Linux, fsck.fat and mtools
 * ignore it, and so do we. */
static int dir_next(const struct dir *d, size_t *pos, struct fat_dent *e) {
        int r = fat_dent_next(d->data, d->len, pos, e);
        if (r > 0 && !d->fat32)
                e->cluster &= 0xffff;
        return r;
}

static int dir_find(const struct dir *d, const char *name, struct fat_dent *e) {
        size_t pos = 0;
        while (dir_next(d, &pos, e))
                if (!fat_dent_is_dot(e) && fat_dent_matches(e, name))
                        return 1;
        return 0;
}

/* Whether d may take another cluster: FAT16's root has a fixed size. */
static int dir_may_grow(struct fat_fs *fs, const struct dir *d, const char *path) {
        if (!d->chain)
                return log_error(ENOROOM, fs->name,
                                 "boot partition: no room for %s: its root directory is full (FAT16 has a fixed %" PRIu32
                                 " entries); remove a file from it, or use a base whose boot partition is FAT32",
                                 path, fs->root_entries);
        if (d->len + fs->cs > DIR_MAX_BYTES)
                return log_error(ENOROOM, fs->name, "boot partition: no room for %s: its directory is full (65536 entries)",
                                 path);
        return 0;
}

/* Appends a zeroed cluster to a cluster-chain directory. */
static int dir_grow(struct fat_fs *fs, struct dir *d, const char *path) {
        int r = dir_may_grow(fs, d, path);
        if (r < 0)
                return r;
        if (fs->free < 1)
                return no_space(fs, path, 1);
        uint32_t c = alloc_one(fs);
        if (!c)
                return no_space(fs, path, 1);
        r = zero_cluster(fs, c);
        if (r < 0) {
                fat_set(fs, c, 0);
                return r;
        }
        fat_set(fs, d->chain[d->nchain - 1], c);
        d->chain = xrealloc(d->chain, (d->nchain + 1) * sizeof *d->chain);
        d->chain[d->nchain++] = c;
        d->data = xrealloc(d->data, d->len + fs->cs);
        memset(d->data + d->len, 0, fs->cs);
        d->len += fs->cs;
        return 0;
}

/* The first of count consecutive free slots in d as it stands; false when
 * d must grow first.  *mark: the slot after them, where the end marker
 * must be kept (entries past the marker are free by definition), or
 * SIZE_MAX. */
static bool dir_free_run(const struct dir *d, size_t count, size_t *first, size_t *mark) {
        size_t n = d->len / 32, run = 0;
        bool past_end = false;
        for (size_t i = 0; i < n; i++) {
                uint8_t b = d->data[i * 32];
                if (b == 0)
                        past_end = true;
                if (!past_end && b != DELETED) {
                        run = 0;
                        continue;
                }
                if (++run == count) {
                        *first = i + 1 - count;
                        *mark = past_end && i + 1 < n && d->data[(i + 1) * 32] != 0 ? i + 1 : SIZE_MAX;
                        return true;
                }
        }
        return false;
}

/* Finds count consecutive free slots, growing the directory if needed. */
static int dir_find_slots(struct fat_fs *fs, struct dir *d, const char *path, size_t count, size_t *ret) {
        size_t mark;
        while (!dir_free_run(d, count, ret, &mark)) {
                int r = dir_grow(fs, d, path);
                if (r < 0)
                        return r;
        }
        if (mark == SIZE_MAX)
                return 0;
        d->data[mark * 32] = 0;
        return dir_flush(fs, d, mark, 1);
}

static void fat_datetime(time_t t, uint8_t time_out[2], uint8_t date_out[2], uint8_t *tenth) {
        struct tm tm;
        if (t < 315532800 /* 1980-01-01 */)
                t = 315532800;
        if (t > 4354819198LL /* 2107-12-31 23:59:58 */)
                t = 4354819198LL;
        gmtime_r(&t, &tm);
        put_le16(time_out, (uint16_t)(tm.tm_hour << 11 | tm.tm_min << 5 | tm.tm_sec / 2));
        put_le16(date_out, (uint16_t)((tm.tm_year - 80) << 9 | (tm.tm_mon + 1) << 5 | tm.tm_mday));
        if (tenth)
                *tenth = (uint8_t)((tm.tm_sec % 2) * 100);
}

static void dirent_set_cluster(struct fat_dirent *de, uint32_t c) {
        put_le16(de->cluster_lo, (uint16_t)c);
        put_le16(de->cluster_hi, (uint16_t)(c >> 16));
}

static void dirent_touch(struct fat_dirent *de, time_t mtime) {
        fat_datetime(mtime, de->mtime, de->mdate, NULL);
        uint8_t unused[2];
        fat_datetime(mtime, unused, de->adate, NULL);
}

/* LFN entries right before a free slot belong to no live entry: a tool
 * deleted only the 8.3 entry after them, or crashed before writing it.
 * Left there, they would be read (by Linux, mtools, fsck.fat and us) as
 * the long name of a plain 8.3 entry written into that slot whenever
 * their checksum happens to match its name, 1 in 256; and fsck.fat -n
 * reports them.  Returns the first of them (== first when there are none),
 * marked free as fsck.fat's own repair marks them. */
static size_t dir_drop_orphan_lfn(struct dir *d, size_t first) {
        size_t i = first;
        while (i > 0) {
                const uint8_t *p = d->data + (i - 1) * 32;
                if (p[0] == 0 || p[0] == DELETED || (p[11] & 0x3F) != ATTR_LFN)
                        break;
                i--;
        }
        for (size_t k = i; k < first; k++)
                d->data[k * 32] = DELETED;
        return i;
}

/* A name's LFN entries and its short entry (the rest zero) in d's memory,
 * at slot first; the short entry, for the caller to complete. */
static struct fat_dirent *dir_place(struct dir *d, size_t first, const struct fat_lfn *lfn, size_t nlfn,
                                    const uint8_t raw[11], uint8_t attr, uint8_t nt) {
        memcpy(d->data + first * 32, lfn, nlfn * 32);
        struct fat_dirent *de = (void *)(d->data + (first + nlfn) * 32);
        memset(de, 0, sizeof *de);
        memcpy(de->name, raw, 11);
        de->attr = attr;
        de->nt_flags = nt;
        return de;
}

/* Adds an entry (with LFN entries when the name needs them). */
static int dir_add(struct fat_fs *fs, struct dir *d, const char *path, const char *name, uint8_t attr,
                   uint32_t cluster, uint32_t size, time_t mtime, size_t *ret_idx) {
        uint8_t raw[11], nt;
        struct fat_lfn lfn[LFN_MAX_ENTRIES];
        size_t nlfn;
        int r = fat_name_encode(fs->name, path, name, d->data, d->len, raw, &nt, lfn, &nlfn);
        if (r < 0)
                return r;
        size_t first;
        r = dir_find_slots(fs, d, path, nlfn + 1, &first);
        if (r < 0)
                return r;
        struct fat_dirent *de = dir_place(d, first, lfn, nlfn, raw, attr, nt);
        fat_datetime(mtime, de->ctime, de->cdate, &de->ctime_tenth);
        dirent_touch(de, mtime);
        dirent_set_cluster(de, cluster);
        put_le32(de->size, size);
        if (ret_idx)
                *ret_idx = first + nlfn;
        size_t from = dir_drop_orphan_lfn(d, first);
        return dir_flush(fs, d, from, first - from + nlfn + 1);
}

/* ---- paths ---- */

struct path {
        char *buf;
        char *comp[128];
        size_t n;
};

static void path_free(struct path *p) { free(p->buf); }

static int path_split(struct fat_fs *fs, const char *path, struct path *p) {
        *p = (struct path){.buf = xstrdup(path)};
        for (char *save = NULL, *c = strtok_r(p->buf, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
                if (!strcmp(c, "."))
                        continue;
                if (!strcmp(c, "..") || strlen(c) >= NAME_MAX_UTF8 || p->n == ARRAY_SIZE(p->comp)) {
                        path_free(p);
                        return log_error(EINVAL, fs->name, "%s: unsupported path", path);
                }
                p->comp[p->n++] = c;
        }
        return 0;
}

static int dir_open_entry(struct fat_fs *fs, const struct fat_dent *e, const char *path, struct dir *d) {
        if (!(e->attr & ATTR_DIR))
                return log_error(ENOTDIR, fs->name, "%s: not a directory", path);
        return dir_load(fs, false, e->cluster, path, d);
}

/* Loads the directory holding the first n components of p. */
static int walk(struct fat_fs *fs, const char *path, const struct path *p, size_t n, bool quiet_missing,
                struct dir *d) {
        int r = dir_load(fs, true, 0, path, d);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                struct fat_dent e;
                if (!dir_find(d, p->comp[i], &e)) {
                        dir_free(d);
                        return quiet_missing ? -ENOENT
                                             : log_error(ENOENT, fs->name, "%s: directory %s does not exist", path,
                                                         p->comp[i]);
                }
                struct dir sub;
                r = dir_open_entry(fs, &e, path, &sub);
                dir_free(d);
                if (r >= 0)
                        *d = sub;
        }
        return r;
}

static void stat_from(const struct fat_dent *e, struct fat_stat *st) {
        *st = (struct fat_stat){.is_dir = e->attr & ATTR_DIR, .size = e->size, .first_cluster = e->cluster};
        memcpy(st->short_name, e->short_name, sizeof st->short_name);
}

/* Resolves path to its parent directory (loaded into d) and entry.  Returns
 * 1 when found, 0 when only the entry is missing. */
static int lookup(struct fat_fs *fs, const char *path, bool quiet, struct path *p, struct dir *d, struct fat_dent *e) {
        int r = path_split(fs, path, p);
        if (r < 0)
                return r;
        if (p->n == 0)
                return 2; /* the root itself */
        r = walk(fs, path, p, p->n - 1, quiet, d);
        if (r < 0) {
                path_free(p);
                return r;
        }
        return dir_find(d, p->comp[p->n - 1], e);
}

/* ---- public API ---- */

int fat_stat(struct fat_fs *fs, const char *path, struct fat_stat *st) {
        struct path p;
        struct dir d = {0};
        struct fat_dent e;
        int r = lookup(fs, path, true, &p, &d, &e);
        if (r < 0)
                return r;
        if (r == 2)
                *st = (struct fat_stat){.is_dir = true, .first_cluster = fs->bits == 32 ? fs->root_cluster : 0};
        else if (r == 1)
                stat_from(&e, st);
        else
                r = -ENOENT;
        dir_free(&d);
        path_free(&p);
        return r < 0 ? r : 0;
}

static int cmp_u32(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
        return (x > y) - (x < y);
}

/* Reads the first len bytes of a chain. */
static int read_chain(struct fat_fs *fs, const char *path, uint32_t first, uint8_t *out, size_t len) {
        if (len == 0)
                return 0;
        _cleanup_free_ uint32_t *list = NULL;
        size_t n;
        size_t need = DIV_ROUND_UP(len, fs->cs);
        int r = chain_walk(fs, first, need, path, &list, &n);
        if (r < 0)
                return r;
        if (n < need)
                return log_error(EINVAL, fs->name, "%s: cluster chain is shorter than the file size", path);
        /* chain_walk stops at need clusters, before its own loop check:
         * a chain that comes back on itself within them repeats a cluster */
        _cleanup_free_ uint32_t *sorted = xmalloc(n * sizeof(*sorted));
        memcpy(sorted, list, n * sizeof(*sorted));
        qsort(sorted, n, sizeof(*sorted), cmp_u32);
        for (size_t i = 1; i < n; i++)
                if (sorted[i] == sorted[i - 1])
                        return log_error(EINVAL, fs->name, "%s: cluster chain loops", path);
        for (size_t i = 0; i < n; i++) {
                /* Coalesce contiguous clusters into one read. */
                size_t j = i;
                while (j + 1 < n && list[j + 1] == list[j] + 1)
                        j++;
                size_t at = i * fs->cs;
                size_t bytes = MIN((j - i + 1) * (size_t)fs->cs, len - at);
                r = fat_win_read(fs, out + at, bytes, cluster_off(fs, list[i]));
                if (r < 0)
                        return r;
                i = j;
        }
        return 0;
}

int fat_read(struct fat_fs *fs, const char *path, uint8_t **data, size_t *len) {
        struct path p;
        struct dir d = {0};
        struct fat_dent e;
        int r = lookup(fs, path, true, &p, &d, &e);
        if (r < 0)
                return r;
        if (r == 0)
                r = -ENOENT;
        else if (r == 2 || (e.attr & ATTR_DIR))
                r = log_error(EISDIR, fs->name, "%s: is a directory", path);
        else if ((uint64_t)e.size > (uint64_t)fs->nclusters * fs->cs)
                r = log_error(EINVAL, fs->name, "%s: file size %" PRIu32 " exceeds the filesystem", path, e.size);
        else {
                uint8_t *buf = xmalloc((size_t)e.size + 1);
                r = read_chain(fs, path, e.cluster, buf, e.size);
                if (r < 0) {
                        free(buf);
                } else {
                        buf[e.size] = 0;
                        *data = buf;
                        *len = e.size;
                }
        }
        dir_free(&d);
        path_free(&p);
        return r < 0 ? r : 0;
}

/* Makes first_inout's chain exactly len bytes long (reusing its clusters)
 * and writes data into it. */
static int write_chain(struct fat_fs *fs, const char *path, uint32_t *first_inout, const void *data, size_t len) {
        _cleanup_free_ uint32_t *list = NULL;
        size_t n = 0;
        int r;
        if (*first_inout != 0) {
                r = chain_walk(fs, *first_inout, 0, path, &list, &n);
                if (r < 0)
                        return r;
        }
        uint64_t need = DIV_ROUND_UP((uint64_t)len, fs->cs);
        if (need > n && need - n > fs->free)
                return no_space(fs, path, need - n);
        if (need < n) {
                chain_free(fs, list + need, n - need);
                if (need)
                        fat_set(fs, list[need - 1], fat_eoc(fs));
                n = need;
        }
        list = xrealloc(list, (size_t)MAX(need, 1) * sizeof *list);
        while (n < need) {
                uint32_t c = alloc_one(fs);
                if (!c)
                        return no_space(fs, path, need - n);
                if (n)
                        fat_set(fs, list[n - 1], c);
                list[n++] = c;
        }
        *first_inout = need ? list[0] : 0;
        const uint8_t *src = data;
        for (size_t i = 0; i < n; i++) {
                size_t j = i;
                while (j + 1 < n && list[j + 1] == list[j] + 1 && (j + 2) * (size_t)fs->cs <= len)
                        j++;
                size_t at = i * fs->cs;
                size_t bytes = MIN((j - i + 1) * (size_t)fs->cs, len - at);
                if (bytes % fs->cs) {
                        /* Zero the slack of the last cluster: deterministic output. */
                        _cleanup_free_ uint8_t *tail = xcalloc(1, fs->cs);
                        size_t full = bytes - bytes % fs->cs;
                        if (full) {
                                r = fat_win_write(fs, src + at, full, cluster_off(fs, list[i]));
                                if (r < 0)
                                        return r;
                        }
                        memcpy(tail, src + at + full, bytes - full);
                        r = fat_win_write(fs, tail, fs->cs, cluster_off(fs, list[j]));
                } else {
                        r = fat_win_write(fs, src + at, bytes, cluster_off(fs, list[i]));
                }
                if (r < 0)
                        return r;
                i = j;
        }
        return 0;
}

/* The base's data, not ours to remove: a bad input (EINVAL), not an
 * unreadable one. */
static int dir_in_the_way(struct fat_fs *fs, const char *path) {
        return log_error(EINVAL, fs->name,
                         "boot partition: %s is a directory in the base, where a file is written; remove it from the "
                         "base",
                         path);
}

int fat_write(struct fat_fs *fs, const char *path, const void *data, size_t len, time_t mtime) {
        if (len > UINT32_MAX)
                return log_error(EFBIG, fs->name, "%s: FAT files are limited to 4 GiB", path);
        struct path p;
        struct dir d = {0};
        struct fat_dent e;
        int r = lookup(fs, path, false, &p, &d, &e);
        if (r < 0)
                return r;
        if (r == 2) {
                path_free(&p);
                return dir_in_the_way(fs, path);
        }
        if (r == 1) {
                if (e.attr & ATTR_DIR) {
                        r = dir_in_the_way(fs, path);
                } else {
                        uint32_t first = e.cluster;
                        r = write_chain(fs, path, &first, data, len);
                        if (r >= 0) {
                                struct fat_dirent *de = (void *)(d.data + e.idx * 32);
                                dirent_set_cluster(de, first);
                                put_le32(de->size, (uint32_t)len);
                                de->attr |= ATTR_ARCHIVE;
                                dirent_touch(de, mtime);
                                r = dir_flush(fs, &d, e.idx, 1);
                        }
                }
        } else {
                uint32_t first = 0;
                const char *name = p.comp[p.n - 1];
                r = fat_name_validate(fs->name, path, name);
                if (r >= 0)
                        r = write_chain(fs, path, &first, data, len);
                if (r >= 0) {
                        r = dir_add(fs, &d, path, name, ATTR_ARCHIVE, first, (uint32_t)len, mtime, NULL);
                        if (r < 0 && first) {
                                _cleanup_free_ uint32_t *list = NULL;
                                size_t n;
                                if (chain_walk(fs, first, 0, path, &list, &n) >= 0)
                                        chain_free(fs, list, n);
                        }
                }
        }
        dir_free(&d);
        path_free(&p);
        return r < 0 ? r : 0;
}

static int mkdir_one(struct fat_fs *fs, struct dir *parent, const char *path, const char *name, time_t mtime,
                     struct dir *ret) {
        if (fs->free < 1)
                return no_space(fs, path, 1);
        uint32_t c = alloc_one(fs);
        if (!c)
                return no_space(fs, path, 1);
        struct dir d = {.cluster = c, .len = fs->cs, .nchain = 1};
        d.data = xcalloc(1, fs->cs);
        d.chain = xmalloc(sizeof *d.chain);
        d.chain[0] = c;
        struct fat_dirent *dot = (void *)d.data, *dotdot = dot + 1;
        memset(dot->name, ' ', 11);
        memset(dotdot->name, ' ', 11);
        dot->name[0] = dotdot->name[0] = dotdot->name[1] = '.';
        dot->attr = dotdot->attr = ATTR_DIR;
        fat_datetime(mtime, dot->ctime, dot->cdate, &dot->ctime_tenth);
        dirent_touch(dot, mtime);
        dirent_set_cluster(dot, c);
        fat_datetime(mtime, dotdot->ctime, dotdot->cdate, &dotdot->ctime_tenth);
        dirent_touch(dotdot, mtime);
        /* ".." of a first-level directory names the root as cluster 0. */
        dirent_set_cluster(dotdot, parent->root ? 0 : parent->cluster);
        int r = fat_win_write(fs, d.data, fs->cs, cluster_off(fs, c));
        if (r >= 0)
                r = dir_add(fs, parent, path, name, ATTR_DIR, c, 0, mtime, NULL);
        if (r < 0) {
                fat_set(fs, c, 0);
                dir_free(&d);
                return r;
        }
        *ret = d;
        return 0;
}

int fat_mkdir(struct fat_fs *fs, const char *path, time_t mtime) {
        struct path p;
        int r = path_split(fs, path, &p);
        if (r < 0)
                return r;
        struct dir d;
        r = dir_load(fs, true, 0, path, &d);
        for (size_t i = 0; r >= 0 && i < p.n; i++) {
                struct fat_dent e;
                struct dir sub = {0}; /* set whenever r >= 0; cppcheck cannot tell */
                if (dir_find(&d, p.comp[i], &e)) {
                        if (!(e.attr & ATTR_DIR))
                                r = log_error(ENOTDIR, fs->name, "%s: %s exists and is not a directory", path,
                                              p.comp[i]);
                        else
                                r = dir_load(fs, false, e.cluster, path, &sub);
                } else {
                        r = mkdir_one(fs, &d, path, p.comp[i], mtime, &sub);
                }
                dir_free(&d);
                if (r >= 0)
                        d = sub;
        }
        if (r >= 0)
                dir_free(&d);
        path_free(&p);
        return r < 0 ? r : 0;
}

static int dir_is_empty(struct fat_fs *fs, const struct fat_dent *e, const char *path) {
        struct dir sub;
        int r = dir_load(fs, false, e->cluster, path, &sub);
        if (r < 0)
                return r;
        size_t pos = 0;
        struct fat_dent x;
        bool empty = true;
        while (empty && dir_next(&sub, &pos, &x))
                if (!fat_dent_is_dot(&x))
                        empty = false;
        dir_free(&sub);
        return empty ? 0 : log_error(ENOTEMPTY, fs->name, "%s: directory is not empty", path);
}

int fat_unlink(struct fat_fs *fs, const char *path) {
        struct path p;
        struct dir d = {0};
        struct fat_dent e;
        int r = lookup(fs, path, false, &p, &d, &e);
        if (r < 0)
                return r;
        if (r == 2)
                r = log_error(EBUSY, fs->name, "cannot remove the root directory");
        else if (r == 0)
                r = log_error(ENOENT, fs->name, "%s: no such file or directory", path);
        else {
                _cleanup_free_ uint32_t *list = NULL;
                size_t n = 0;
                r = 0;
                if (e.attr & ATTR_DIR)
                        r = dir_is_empty(fs, &e, path);
                /* Validate the whole chain before changing anything. */
                if (r >= 0 && e.cluster != 0)
                        r = chain_walk(fs, e.cluster, 0, path, &list, &n);
                if (r >= 0) {
                        chain_free(fs, list, n);
                        for (size_t i = e.lfn_idx; i <= e.idx; i++)
                                d.data[i * 32] = DELETED;
                        r = dir_flush(fs, &d, e.lfn_idx, e.idx - e.lfn_idx + 1);
                }
        }
        dir_free(&d);
        path_free(&p);
        return r < 0 ? r : 0;
}

int fat_list(struct fat_fs *fs, const char *path, int (*fn)(const char *name, const struct fat_stat *st, void *u),
             void *userdata) {
        struct path p;
        int r = path_split(fs, path, &p);
        if (r < 0)
                return r;
        struct dir d;
        r = walk(fs, path, &p, p.n, false, &d);
        path_free(&p);
        if (r < 0)
                return r;
        size_t pos = 0;
        struct fat_dent e;
        while (dir_next(&d, &pos, &e)) {
                if (fat_dent_is_dot(&e))
                        continue;
                struct fat_stat st;
                stat_from(&e, &st);
                r = fn(e.long_name[0] ? e.long_name : e.display, &st, userdata);
                if (r != 0)
                        break;
        }
        dir_free(&d);
        return r < 0 ? r : 0;
}

/* ---- what writes would take ---- */

/* dir_add's slots for name taken in d's memory alone, d grown there as
 * dir_grow would grow it on disk (*clusters counts those clusters). */
static int dir_reserve(struct fat_fs *fs, struct dir *d, const char *path, const char *name, uint64_t *clusters) {
        uint8_t raw[11], nt;
        struct fat_lfn lfn[LFN_MAX_ENTRIES];
        size_t nlfn, first, mark;
        int r = fat_name_encode(fs->name, path, name, d->data, d->len, raw, &nt, lfn, &nlfn);
        if (r < 0)
                return r;
        while (!dir_free_run(d, nlfn + 1, &first, &mark)) {
                if ((r = dir_may_grow(fs, d, path)) < 0)
                        return r;
                d->data = xrealloc(d->data, d->len + fs->cs);
                memset(d->data + d->len, 0, fs->cs);
                d->len += fs->cs;
                (*clusters)++;
        }
        if (mark != SIZE_MAX)
                d->data[mark * 32] = 0;
        /* the next name's alias must not be this one's */
        dir_place(d, first, lfn, nlfn, raw, ATTR_ARCHIVE, nt);
        return 0;
}

int fat_check_writes(struct fat_fs *fs, const struct fat_planned *v, size_t n, uint64_t *clusters) {
        struct dir root;
        int r = dir_load(fs, true, 0, "/", &root);
        if (r < 0)
                return r;
        uint64_t need = 0;
        for (size_t i = 0; i < n && r >= 0; i++) {
                const char *path = v[i].path;
                uint64_t want = DIV_ROUND_UP(v[i].len, fs->cs), have = 0;
                struct fat_dent e;
                if (path[0] != '/' || strchr(path + 1, '/')) {
                        /* below the root: its data alone, its directories not */
                        struct fat_stat st;
                        r = fat_stat(fs, path, &st);
                        if (r == 0 && st.is_dir)
                                r = dir_in_the_way(fs, path);
                        else if (r == 0)
                                have = DIV_ROUND_UP(st.size, fs->cs);
                        r = r == -ENOENT ? 0 : r;
                } else if (!path[1])
                        r = dir_in_the_way(fs, path);
                else if (dir_find(&root, path + 1, &e)) {
                        if (e.attr & ATTR_DIR)
                                r = dir_in_the_way(fs, path);
                        have = DIV_ROUND_UP(e.size, fs->cs);
                } else if ((r = fat_name_validate(fs->name, path, path + 1)) >= 0)
                        r = dir_reserve(fs, &root, path, path + 1, &need);
                need += want > have ? want - have : 0;
        }
        dir_free(&root);
        *clusters = need;
        return r < 0 ? r : 0;
}

uint64_t fat_free_bytes(const struct fat_fs *fs) { return (uint64_t)fs->free * fs->cs; }
uint32_t fat_cluster_bytes(const struct fat_fs *fs) { return fs->cs; }
