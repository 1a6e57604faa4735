/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Reading the root filesystem: what a path is, where its bytes lie, what
 * it holds; and how much room the filesystem has left.  Nothing here
 * writes. */
#include <errno.h>
#include <et/com_err.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ext4_private.h"
#include "log.h"
#include "util.h"

/* ---- queries ------------------------------------------------------------ */

int ext4_lstat(struct ext4_fs *e, const char *path, struct ext4_stat *st) {
        ext2_ino_t ino;
        struct ext2_inode_large in;
        int r = ext4_find_inode(e, path, true, false, &ino, &in);
        if (r < 0)
                return r;
        *st = (struct ext4_stat){
                .ino = ino,
                .mode = in.i_mode,
                .uid = ext4_ino_uid(&in),
                .gid = ext4_ino_gid(&in),
                .size = EXT2_I_SIZE(&in),
                .nlink = in.i_links_count,
        };
        return 0;
}

int ext4_map(struct ext4_fs *e, const char *path, uint64_t off, uint64_t len, struct ext4_span *v, size_t max,
             size_t *n) {
        *n = 0;
        ext2_ino_t ino;
        struct ext2_inode_large in;
        int r = ext4_find_inode(e, path, false, false, &ino, &in);
        if (r < 0)
                return r;
        /* inline data lives in the inode, under its checksum: not bytes
         * anyone may patch later */
        if (!LINUX_S_ISREG(in.i_mode) || (in.i_flags & EXT4_INLINE_DATA_FL) || off + len < off ||
            off + len > EXT2_I_SIZE(&in))
                return log_error(-EINVAL, e->image, "ext4 %s: bytes %" PRIu64 "-%" PRIu64 " are not in its data blocks",
                                 path, off, off + len);
        uint32_t bs = e->fs->blocksize;
        const uint64_t from = off, to = off + len;
        while (len > 0) {
                blk64_t pblk = 0;
                int flags = 0;
                errcode_t code = ext2fs_bmap2(e->fs, ino, (struct ext2_inode *)&in, NULL, 0, off / bs, &flags, &pblk);
                if (code)
                        return ext4_fail(e, code, path, "mapping a block");
                if (pblk == 0 || (flags & BMAP_RET_UNINIT))
                        return log_error(-EINVAL, e->image, "ext4 %s: byte %" PRIu64 " is in a hole", path, off);
                uint64_t within = off % bs, k = MIN(len, bs - within);
                uint64_t at = e->offset + (uint64_t)pblk * bs + within;
                if (*n > 0 && v[*n - 1].image_off + v[*n - 1].len == at)
                        v[*n - 1].len += k;
                else if (*n == max)
                        return log_error(-E2BIG, e->image,
                                         "ext4 %s: bytes %" PRIu64 "-%" PRIu64 " lie in more than %zu extents", path,
                                         from, to, max);
                else
                        v[(*n)++] = (struct ext4_span){.image_off = at, .len = k, .file_off = off};
                off += k;
                len -= k;
        }
        return 0;
}

/* Reads exactly i_size bytes: 1.47.0's inline-data read returns the whole
 * inline area (past i_size) when asked for more. */
static int read_ino_data(struct ext4_fs *e, ext2_ino_t ino, const char *path, size_t max, uint8_t **data,
                         size_t *len) {
        struct ext2_inode_large in;
        errcode_t code = ext4_read_ino(e, ino, &in);
        if (code)
                return ext4_fail(e, code, path, "reading inode");
        uint64_t size = EXT2_I_SIZE(&in);
        if (size > max)
                return log_error(-EFBIG, e->image, "ext4 %s: %" PRIu64 " bytes, more than the %zu allowed", path,
                                 size, max);
        ext2_file_t f;
        code = ext2fs_file_open2(e->fs, ino, (struct ext2_inode *)&in, 0, &f);
        if (code)
                return ext4_fail(e, code, path, "opening");
        uint8_t *buf = xmalloc((size_t)size + 1);
        size_t got = 0;
        while (got < size) {
                unsigned int want = (unsigned int)MIN(size - got, (uint64_t)CHUNK), n = 0;
                code = ext2fs_file_read(f, buf + got, want, &n);
                if (code || n == 0)
                        break;
                got += n;
        }
        errcode_t cc = ext2fs_file_close(f);
        if (!code && got < size)
                code = EXT2_ET_SHORT_READ;
        if (!code)
                code = cc;
        if (code) {
                free(buf);
                return ext4_fail(e, code, path, "reading");
        }
        buf[got] = 0;
        *data = buf;
        *len = got;
        return 0;
}

static int read_common(struct ext4_fs *e, const char *path, size_t max, uint8_t **data, size_t *len, bool follow) {
        ext2_ino_t ino;
        struct ext2_inode_large in;
        int r = ext4_find_inode(e, path, false, follow, &ino, &in);
        if (r < 0)
                return r;
        if (LINUX_S_ISDIR(in.i_mode))
                return log_error(-EISDIR, e->image, "ext4 %s: is a directory, not a file", path);
        if (!LINUX_S_ISREG(in.i_mode))
                return log_error(-EINVAL, e->image, "ext4 %s: not a regular file (mode %06o)", path, in.i_mode);
        return read_ino_data(e, ino, path, max, data, len);
}

int ext4_read(struct ext4_fs *e, const char *path, size_t max, uint8_t **data, size_t *len) {
        return read_common(e, path, max, data, len, false);
}

int ext4_read_follow(struct ext4_fs *e, const char *path, size_t max, uint8_t **data, size_t *len) {
        return read_common(e, path, max, data, len, true);
}

int ext4_readlink(struct ext4_fs *e, const char *path, char **target) {
        ext2_ino_t ino;
        struct ext2_inode_large in;
        int r = ext4_find_inode(e, path, false, false, &ino, &in);
        if (r < 0)
                return r;
        if (!LINUX_S_ISLNK(in.i_mode))
                return log_error(-EINVAL, e->image, "ext4 %s: not a symlink", path);
        if (ext2fs_is_fast_symlink((struct ext2_inode *)&in)) {
                *target = xstrndup((const char *)in.i_block, EXT2_I_SIZE(&in));
                return 0;
        }
        uint8_t *data = NULL;
        size_t len;
        r = read_ino_data(e, ino, path, e->fs->blocksize, &data, &len);
        if (r < 0)
                return r;
        *target = (char *)data;
        return 0;
}

/* ---- listing ------------------------------------------------------------ */

struct list_ctx {
        char **names;
        size_t n, max;
        bool over;
};

static int list_cb(ext2_ino_t dir, int entry, struct ext2_dir_entry *de, int offset, int blocksize, char *buf,
                   void *priv) {
        (void)dir, (void)entry, (void)offset, (void)blocksize, (void)buf;
        struct list_ctx *c = priv;
        size_t len = (size_t)ext2fs_dirent_name_len(de);
        if (de->inode == 0 || (len == 1 && de->name[0] == '.') || (len == 2 && !memcmp(de->name, "..", 2)))
                return 0;
        if (c->n == c->max) {
                c->over = true;
                return DIRENT_ABORT;
        }
        c->names = xrealloc(c->names, (c->n + 1) * sizeof(*c->names));
        c->names[c->n++] = xstrndup(de->name, len);
        return 0;
}

static int cmp_names(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

int ext4_list(struct ext4_fs *e, const char *dir, size_t max, char ***names, size_t *n) {
        *names = NULL;
        *n = 0;
        ext2_ino_t ino;
        struct ext2_inode_large in;
        int r = ext4_find_inode(e, dir, true, false, &ino, &in);
        if (r < 0)
                return r;
        if (!LINUX_S_ISDIR(in.i_mode))
                return -ENOTDIR;
        struct list_ctx c = {.max = max};
        errcode_t code = ext2fs_dir_iterate2(e->fs, ino, 0, NULL, list_cb, &c);
        if (code || c.over) {
                strv_clear(&c.names, &c.n);
                return code ? ext4_fail(e, code, dir, "listing") : -E2BIG;
        }
        if (c.n) /* qsort of a NULL array is undefined, even of none */
                qsort(c.names, c.n, sizeof(*c.names), cmp_names);
        *names = c.names;
        *n = c.n;
        return 0;
}

/* ---- spelling ----------------------------------------------------------- */

struct nocase_ctx {
        const char *name;
        size_t len;
        char *found; /* the one entry spelt as name is, case aside */
        ext2_ino_t ino;
        unsigned matches;
        bool exact;
};

static int nocase_cb(ext2_ino_t dir, int entry, struct ext2_dir_entry *de, int offset, int blocksize, char *buf,
                     void *priv) {
        (void)dir, (void)entry, (void)offset, (void)blocksize, (void)buf;
        struct nocase_ctx *c = priv;
        size_t len = (size_t)ext2fs_dirent_name_len(de);
        if (de->inode == 0 || len != c->len || strncasecmp(de->name, c->name, len) != 0)
                return 0;
        bool exact = memcmp(de->name, c->name, len) == 0;
        if (c->exact && !exact)
                return 0;
        if (exact && !c->exact) /* the name itself beats any other case */
                c->matches = 0;
        c->exact = exact;
        c->matches++;
        free(c->found);
        c->found = xstrndup(de->name, len);
        c->ino = de->inode;
        return exact ? DIRENT_ABORT : 0;
}

char *ext4_spelling(struct ext4_fs *e, const char *path) {
        if (!path || path[0] != '/')
                return NULL;
        _cleanup_free_ char *copy = xstrdup(path);
        struct buf out = {0};
        ext2_ino_t cur = EXT2_ROOT_INO;
        char *save = NULL;
        for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
                struct nocase_ctx n = {.name = c, .len = strlen(c)};
                struct ext2_inode_large in;
                /* a directory must be one, not a symlink: this only
                 * suggests, and need not follow links to do it */
                if (ext4_read_ino(e, cur, &in) || !LINUX_S_ISDIR(in.i_mode) ||
                    ext2fs_dir_iterate2(e->fs, cur, 0, NULL, nocase_cb, &n) || n.matches != 1) {
                        free(n.found);
                        buf_free(&out);
                        return NULL;
                }
                buf_printf(&out, "/%s", n.found);
                free(n.found);
                cur = n.ino;
        }
        return (char *)buf_steal(&out, NULL);
}

/* ---- space -------------------------------------------------------------- */

/* All free blocks: libext2fs allocates from the root reserve too, as root
 * would on a mounted filesystem. */
uint64_t ext4_free_bytes(const struct ext4_fs *e) {
        return ext2fs_free_blocks_count(e->fs->super) * (uint64_t)e->fs->blocksize;
}

uint32_t ext4_block_size(const struct ext4_fs *e) {
        return e->fs->blocksize;
}

void ext4_inode_room(const struct ext4_fs *e, struct ext4_inode_room *room) {
        const struct ext2_super_block *sb = e->fs->super;
        *room = (struct ext4_inode_room){
                .free = sb->s_free_inodes_count,
                .per_group = sb->s_inodes_per_group,
                .group_bytes = (uint64_t)sb->s_blocks_per_group * e->fs->blocksize,
                .groups = e->fs->group_desc_count,
        };
}

uint64_t ext4_dir_cost(const struct ext4_fs *e) {
        return e->fs->blocksize;
}

uint64_t ext4_cost(const struct ext4_fs *e, uint64_t len) {
        uint64_t bs = e->fs->blocksize;
        uint64_t blocks = DIV_ROUND_UP(len, bs), meta = 0;
        if (ext2fs_has_feature_extents(e->fs->super)) {
                /* Free space may be in runs of one block (a base whose
                 * files were deleted in between): then every block is an
                 * extent.  Four fit in the inode, beyond that tree blocks of
                 * (bs - 12) / 12 entries each, level upon level.  The worst
                 * case costs 0.3% of the file with 4 KiB blocks. */
                uint64_t per = (bs - 12) / 12, level = blocks;
                while (level > 4) {
                        level = DIV_ROUND_UP(level, per);
                        meta += level;
                }
        } else {
                uint64_t per = bs / 4, rest = blocks > 12 ? blocks - 12 : 0;
                if (rest) {
                        meta++; /* single indirect */
                        rest = rest > per ? rest - per : 0;
                }
                if (rest) {
                        meta += 1 + DIV_ROUND_UP(MIN(rest, per * per), per); /* double */
                        rest = rest > per * per ? rest - per * per : 0;
                }
                if (rest)
                        meta += 1 + DIV_ROUND_UP(rest, per * per) + DIV_ROUND_UP(rest, per); /* triple */
        }
        return (blocks + meta) * bs;
}

bool ext4_is_clean(const struct ext4_fs *e) {
        struct ext2_super_block *sb = e->fs->super;
        return (sb->s_state & EXT2_VALID_FS) && !(sb->s_state & EXT2_ERROR_FS) &&
               !ext2fs_has_feature_journal_needs_recovery(sb);
}

uint64_t ext4_size_bytes(const struct ext4_fs *e) {
        return ext2fs_blocks_count(e->fs->super) * (uint64_t)e->fs->blocksize;
}
