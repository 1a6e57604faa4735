/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The root filesystem through libext2fs 1.47.0.  Pitfalls this file works
 * around are listed in docs/ext4.md; the short version: ext2fs_new_inode
 * does not mark the bitmap, unix_io does not bound writes, inline-data
 * writes are broken before 1.47.4, and wall-clock times leak in unless
 * fs->now is set. */
#include "ext4.h"

#include <errno.h>
#include <et/com_err.h>
#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>
#include <fcntl.h>
#include <inttypes.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ext4_private.h"
#include "ext4io.h"
#include "log.h"
#include "util.h"

extern char **environ;

/* Incompat features whose on-disk effects this module understands.  Others
 * (encrypt, casefold, mmp, ea_inode, journal_dev, compression...) change
 * how names, data or ownership work and are refused up front. */
#define SUPPORTED_INCOMPAT                                                                                   \
        (EXT2_FEATURE_INCOMPAT_FILETYPE | EXT3_FEATURE_INCOMPAT_EXTENTS | EXT4_FEATURE_INCOMPAT_64BIT |      \
         EXT4_FEATURE_INCOMPAT_FLEX_BG | EXT2_FEATURE_INCOMPAT_META_BG | EXT4_FEATURE_INCOMPAT_INLINE_DATA | \
         EXT4_FEATURE_INCOMPAT_CSUM_SEED | EXT4_FEATURE_INCOMPAT_LARGEDIR | EXT3_FEATURE_INCOMPAT_RECOVER)
/* Read-only compatible features: anyone may read past the others, but a
 * writer must know them (shared_blocks: freeing a block another inode
 * shares would corrupt that file; replica, snapshots).  Checked where a
 * build opens the filesystem; bigalloc, quota, project and read-only have
 * refusals of their own, saying what to do. */
#define SUPPORTED_RO_COMPAT                                                                                    \
        (EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER | EXT2_FEATURE_RO_COMPAT_LARGE_FILE |                             \
         EXT4_FEATURE_RO_COMPAT_HUGE_FILE | EXT4_FEATURE_RO_COMPAT_GDT_CSUM | EXT4_FEATURE_RO_COMPAT_DIR_NLINK | \
         EXT4_FEATURE_RO_COMPAT_EXTRA_ISIZE | EXT4_FEATURE_RO_COMPAT_METADATA_CSUM |                           \
         EXT4_FEATURE_RO_COMPAT_ORPHAN_PRESENT | EXT4_FEATURE_RO_COMPAT_VERITY |                               \
         EXT4_FEATURE_RO_COMPAT_BIGALLOC | EXT4_FEATURE_RO_COMPAT_QUOTA | EXT4_FEATURE_RO_COMPAT_PROJECT |     \
         EXT4_FEATURE_RO_COMPAT_READONLY)


/* The filesystem inside the image is full, as opposed to the disk under
 * the image file (a plain ENOSPC passed through). */
static bool fs_full(errcode_t code) {
        switch (code) {
        case EXT2_ET_DIR_NO_SPACE:
        case EXT2_ET_DIR_NO_SPACE_FOR_CSUM:
        case EXT2_ET_BLOCK_ALLOC_FAIL:
        case EXT2_ET_INODE_ALLOC_FAIL:
        case EXT2_ET_INLINE_DATA_NO_SPACE:
        case EXT2_ET_EA_NO_SPACE:
        case EXT2_ET_RES_GDT_BLOCKS:
                return true;
        default:
                return false;
        }
}

static int errno_of(errcode_t code) {
        if (code > 0 && code < 4096) /* libext2fs passes plain errno values through */
                return -(int)code;
        if (fs_full(code))
                return -ENOROOM;
        switch (code) {
        case EXT2_ET_FILE_NOT_FOUND:
                return -ENOENT;
        case EXT2_ET_NO_DIRECTORY:
                return -ENOTDIR;
        case EXT2_ET_SYMLINK_LOOP:
                return -ELOOP;
        case EXT2_ET_FILE_TOO_BIG:
                return -EFBIG;
        case EXT2_ET_RO_FILSYS:
                return -EROFS;
        case EXT2_ET_FILE_EXISTS:
        case EXT2_ET_DIR_EXISTS:
                /* a clash inside the image is bad input; EEXIST is an
                 * existing output (EX_CANTCREAT) */
                return -EINVAL;
        case EXT2_ET_INVALID_ARGUMENT:
                return -EINVAL;
        case EXT2_ET_NO_MEMORY:
                return -ENOMEM;
        /* a damaged base is bad input (65), not an I/O error (74) */
        case EXT2_ET_DIR_CORRUPTED:
        case EXT2_ET_CORRUPT_SUPERBLOCK:
        case EXT2_ET_RESIZE_INODE_CORRUPT:
        case EXT2_ET_FILESYSTEM_CORRUPTED:
        case EXT2_ET_INODE_CORRUPTED:
        case EXT2_ET_EA_INODE_CORRUPTED:
        case EXT2_ET_EXTENT_HEADER_BAD:
        case EXT2_ET_EXTENT_INDEX_BAD:
        case EXT2_ET_EXTENT_LEAF_BAD:
        case EXT2_ET_BAD_INODE_NUM:
        case EXT2_ET_BAD_BLOCK_NUM:
        case EXT2_ET_BAD_IND_BLOCK:
        case EXT2_ET_BAD_DIND_BLOCK:
        case EXT2_ET_BAD_TIND_BLOCK:
        case EXT2_ET_BAD_EA_BLOCK_NUM:
        case EXT2_ET_BAD_EA_HEADER:
        case EXT2_ET_BAD_EA_HASH:
        case EXT2_ET_INODE_CSUM_INVALID:
        case EXT2_ET_INODE_BITMAP_CSUM_INVALID:
        case EXT2_ET_BLOCK_BITMAP_CSUM_INVALID:
        case EXT2_ET_EXTENT_CSUM_INVALID:
        case EXT2_ET_DIR_CSUM_INVALID:
        case EXT2_ET_EXT_ATTR_CSUM_INVALID:
        case EXT2_ET_SB_CSUM_INVALID:
                return -EUCLEAN;
        default:
                return -EIO;
        }
}

/* One place that turns a libext2fs failure into a logged -errno. */
int ext4_fail(const struct ext4_fs *e, errcode_t code, const char *path, const char *what) {
        int r = errno_of(code);
        if (fs_full(code))
                return log_error(r, e->image, "ext4 %s: %s: %s (the root filesystem is full: grow it with --grow)",
                                 path, what, error_message(code));
        return log_error(r, e->image, "ext4 %s: %s: %s%s", path, what, error_message(code), edit_write_hint(r));
}

/* ---- opening ------------------------------------------------------------ */

int ext4_open_as(const char *image, const char *name, uint64_t offset, uint64_t part_size, unsigned flags,
                 struct ext4_fs **ret) {
        bool rw = flags & EXT4_RW;
        bool strict = rw || (flags & EXT4_REQUIRE_CLEAN);
        initialize_ext2_error_table();

        char opts[96];
        if (part_size)
                snprintf(opts, sizeof opts, "offset=%" PRIu64 "&size=%" PRIu64, offset, part_size);
        else
                snprintf(opts, sizeof opts, "offset=%" PRIu64, offset);
        ext2_filsys fs = NULL;
        int lib_flags = EXT2_FLAG_64BITS | (rw ? EXT2_FLAG_RW : 0);
        errcode_t code = ext2fs_open2(image, opts, lib_flags, 0, 0, ext4io_manager, &fs);
        /* libext2fs refuses features it does not know without naming them:
         * opened again past that check, read-only, for the checks below to
         * refuse them by name */
        errcode_t unsupp = 0;
        if (code == EXT2_ET_UNSUPP_FEATURE || code == EXT2_ET_RO_UNSUPP_FEATURE) {
                unsupp = code;
                code = ext2fs_open2(image, opts, EXT2_FLAG_64BITS | EXT2_FLAG_FORCE, 0, 0, ext4io_manager, &fs);
                if (code)
                        code = unsupp;
        }
        if (code)
                return log_error(errno_of(code) == -ENOENT ? -ENOENT : -EINVAL, name,
                                 "no usable ext2/3/4 filesystem at offset %" PRIu64 ": %s", offset,
                                 error_message(code));

        struct ext2_super_block *sb = fs->super;
        uint64_t bytes = ext2fs_blocks_count(sb) * (uint64_t)fs->blocksize;
        uint32_t incompat = sb->s_feature_incompat & ~(uint32_t)SUPPORTED_INCOMPAT;
        uint32_t ro_compat = sb->s_feature_ro_compat & ~(uint32_t)SUPPORTED_RO_COMPAT;
        int r = 0;
        if (part_size && bytes > part_size)
                r = log_error(-EINVAL, name,
                              "ext4 filesystem at offset %" PRIu64 " is %" PRIu64 " bytes, larger than its "
                              "partition (%" PRIu64 " bytes); the image is truncated or the partition table is wrong",
                              offset, bytes, part_size);
        else if (ext2fs_has_feature_bigalloc(sb))
                r = ext4_refuse_features(name, offset, E2P_FEATURE_RO_INCOMPAT, EXT4_FEATURE_RO_COMPAT_BIGALLOC);
        else if (incompat)
                r = ext4_refuse_features(name, offset, E2P_FEATURE_INCOMPAT, incompat);
        /* mounted read-only by the kernel and refused by e2fsprogs' writers;
         * a base to change (EX_DATAERR), not an output that cannot be
         * written (EROFS would say EX_CANTCREAT) */
        else if (strict && ext2fs_has_feature_readonly(sb))
                r = log_error(-EOPNOTSUPP, name,
                              "ext4 filesystem at offset %" PRIu64 " is marked read-only (feature read-only); "
                              "clear it first: tune2fs -O ^read-only '%s?offset=%" PRIu64 "'",
                              offset, name, offset);
        /* libext2fs writes files without charging them to a quota, and
         * e2fsck then finds the usage wrong. */
        else if (strict && (ext2fs_has_feature_quota(sb) || ext2fs_has_feature_project(sb)))
                r = log_error(-EOPNOTSUPP, name,
                              "ext4 filesystem at offset %" PRIu64 " keeps quotas, which this tool cannot update; "
                              "turn them off first: tune2fs -O ^quota,^project '%s?offset=%" PRIu64 "'",
                              offset, name, offset);
        else if ((strict || unsupp) && ro_compat)
                r = ext4_refuse_features(name, offset, E2P_FEATURE_RO_INCOMPAT, ro_compat);
        else if (unsupp) /* what the library refused and the masks above took */
                r = log_error(-EOPNOTSUPP, name, "no usable ext2/3/4 filesystem at offset %" PRIu64 ": %s", offset,
                              error_message(unsupp));
        else if (ext2fs_has_feature_journal_needs_recovery(sb) || (sb->s_state & EXT2_ERROR_FS) ||
                 !(sb->s_state & EXT2_VALID_FS) || ext2fs_has_feature_orphan_present(sb) || sb->s_last_orphan) {
                const char *why = ext2fs_has_feature_journal_needs_recovery(sb) ? "its journal needs recovery"
                                  : (sb->s_state & EXT2_ERROR_FS)                 ? "it is marked as having errors"
                                  : !(sb->s_state & EXT2_VALID_FS) ? "it was not cleanly unmounted"
                                                                   : "it has unprocessed orphan inodes";
                if (strict)
                        r = log_error(-EUCLEAN, name,
                                      "ext4 filesystem at offset %" PRIu64 " is not clean (%s): repair it with "
                                      "e2fsck -fy '%s?offset=%" PRIu64 "' (on an uncompressed copy) first",
                                      offset, why, name, offset);
                else
                        log_warn(name, "ext4 filesystem at offset %" PRIu64 " is not clean (%s)", offset, why);
        }
        if (r == 0 && rw) {
                code = ext2fs_read_bitmaps(fs);
                if (code)
                        r = log_error(-EIO, name, "ext4 filesystem at offset %" PRIu64 ": reading bitmaps: %s",
                                      offset, error_message(code));
        }
        if (r < 0) {
                ext2fs_free(fs);
                return r;
        }

        struct ext4_fs *e = xcalloc(1, sizeof *e);
        e->fs = fs;
        e->image = xstrdup(name); /* for messages: what the user knows the image as */
        e->offset = offset;
        e->now = build_time();
        /* libext2fs stamps s_wtime, new-inode times and dtimes with fs->now
         * when set, else with the wall clock. */
        fs->now = e->now;
        *ret = e;
        return 0;
}

int ext4_open(const char *image, uint64_t offset, uint64_t part_size, struct ext4_fs **ret) {
        return ext4_open_as(image, image, offset, part_size, EXT4_RW, ret);
}

int ext4_open_ro(const char *image, uint64_t offset, uint64_t part_size, struct ext4_fs **ret) {
        return ext4_open_as(image, image, offset, part_size, 0, ret);
}

void ext4_abandon(struct ext4_fs *e) {
        if (!e)
                return;
        ext2fs_free(e->fs);
        free(e->image);
        free(e);
}

int ext4_close(struct ext4_fs *e) {
        if (!e)
                return 0;
        int r = 0;
        if (e->fs->flags & EXT2_FLAG_RW) {
                e->fs->super->s_wtime = (uint32_t)e->now;
                e->fs->super->s_wtime_hi = (uint8_t)((uint64_t)e->now >> 32);
                ext2fs_mark_super_dirty(e->fs);
        }
        /* No fsync here: the image is synced once, at the commit, beside the
         * hashing pass; an fsync now would wait for the whole base's
         * writeback in the middle of the build. */
        errcode_t code = ext2fs_close2(e->fs, EXT2_FLAG_FLUSH_NO_SYNC);
        if (code) {
                /* libext2fs says which structure it could not write, and
                 * not why: the channel kept the system's reason */
                int werr = ext4io_write_error(e->fs->io);
                ext2fs_free(e->fs); /* close2 frees it only on success */
                const char *hint = werr ? edit_write_hint(werr) : "";
                _cleanup_free_ char *why = werr && code != (errcode_t)werr
                                                   ? xasprintf(": %s%s", strerror(werr), hint)
                                                   : xstrdup(hint);
                r = log_error(werr ? -werr : -EIO, e->image,
                              "ext4 filesystem at offset %" PRIu64 ": writing back: %s%s", e->offset,
                              error_message(code), why);
        }
        free(e->image);
        free(e);
        return r;
}

/* ---- inodes ------------------------------------------------------------- */

errcode_t ext4_read_ino(struct ext4_fs *e, ext2_ino_t ino, struct ext2_inode_large *in) {
        memset(in, 0, sizeof *in);
        return ext2fs_read_inode_full(e->fs, ino, (struct ext2_inode *)in, sizeof *in);
}

/* Writing a 160-byte view of a 256-byte inode is a read-modify-write in
 * libext2fs, so in-inode xattrs beyond it survive. */
static errcode_t write_ino(struct ext4_fs *e, ext2_ino_t ino, struct ext2_inode_large *in) {
        return ext2fs_write_inode_full(e->fs, ino, (struct ext2_inode *)in, sizeof *in);
}

uint32_t ext4_ino_uid(const struct ext2_inode_large *in) {
        return in->i_uid | (uint32_t)in->osd2.linux2.l_i_uid_high << 16;
}
uint32_t ext4_ino_gid(const struct ext2_inode_large *in) {
        return in->i_gid | (uint32_t)in->osd2.linux2.l_i_gid_high << 16;
}
static void set_owner(struct ext2_inode_large *in, uint32_t uid, uint32_t gid) {
        in->i_uid = (uint16_t)uid;
        in->osd2.linux2.l_i_uid_high = (uint16_t)(uid >> 16);
        in->i_gid = (uint16_t)gid;
        in->osd2.linux2.l_i_gid_high = (uint16_t)(gid >> 16);
}

/* A time field and, where the inode has room, its epoch bits.  Without
 * them the field holds a signed 32-bit time: a build time past 2038 is
 * clamped to its last second, as the kernel clamps (a wrapped value would
 * read as 1901). */
static void set_time(uint32_t *lo, uint32_t *extra, int64_t t) {
        if (!extra) {
                *lo = (uint32_t)(t > INT32_MAX ? INT32_MAX : t);
                return;
        }
        *lo = (uint32_t)t;
        *extra = (uint32_t)(((t - (int64_t)(int32_t)*lo) >> 32) & EXT4_EPOCH_MASK);
}

/* Whether an inode of SIZE bytes has FIELD: e2fsprogs' inode_includes,
 * which 1.47.1 renamed ext2fs_inode_includes (Debian 13 has only the new
 * name, Debian 12 only the old): ours builds with both. */
#define INODE_HAS(size, field) \
        ((size) >= offsetof(struct ext2_inode_large, field) + sizeof(((struct ext2_inode_large *)0)->field))

/* Every inode we touch gets the build time, nanoseconds zero. */
static void stamp(const struct ext4_fs *e, struct ext2_inode_large *in, bool created) {
        int64_t t = (int64_t)e->now;
        size_t have = EXT2_INODE_SIZE(e->fs->super) <= EXT2_GOOD_OLD_INODE_SIZE
                              ? EXT2_GOOD_OLD_INODE_SIZE
                              : EXT2_GOOD_OLD_INODE_SIZE + in->i_extra_isize;
        set_time(&in->i_ctime, INODE_HAS(have, i_ctime_extra) ? &in->i_ctime_extra : NULL, t);
        set_time(&in->i_mtime, INODE_HAS(have, i_mtime_extra) ? &in->i_mtime_extra : NULL, t);
        set_time(&in->i_atime, INODE_HAS(have, i_atime_extra) ? &in->i_atime_extra : NULL, t);
        if (created && INODE_HAS(have, i_crtime_extra))
                set_time(&in->i_crtime, &in->i_crtime_extra, t);
}

static errcode_t touch(struct ext4_fs *e, ext2_ino_t ino) {
        struct ext2_inode_large in;
        errcode_t code = ext4_read_ino(e, ino, &in);
        if (code)
                return code;
        stamp(e, &in, false);
        return write_ino(e, ino, &in);
}

struct release_ctx {
        errcode_t err;
};

static int release_cb(ext2_filsys fs, blk64_t *blk, e2_blkcnt_t cnt, blk64_t ref, int ref_off, void *priv) {
        (void)cnt, (void)ref, (void)ref_off;
        struct release_ctx *c = priv;
        if (*blk < fs->super->s_first_data_block || *blk >= ext2fs_blocks_count(fs->super)) {
                c->err = EXT2_ET_BAD_BLOCK_NUM;
                return BLOCK_ABORT;
        }
        ext2fs_block_alloc_stats2(fs, *blk, -1);
        return 0;
}

/* Drops an inode whose link count reached zero: blocks, xattr block and
 * the bitmap bit. */
static errcode_t free_inode(struct ext4_fs *e, ext2_ino_t ino) {
        struct ext2_inode_large in;
        errcode_t code = ext4_read_ino(e, ino, &in);
        if (code)
                return code;
        bool dir = LINUX_S_ISDIR(in.i_mode);
        if (ext2fs_inode_has_valid_blocks2(e->fs, (struct ext2_inode *)&in)) {
                struct release_ctx c = {0};
                code = ext2fs_block_iterate3(e->fs, ino, BLOCK_FLAG_READ_ONLY, NULL, release_cb, &c);
                if (!code)
                        code = c.err;
                if (code)
                        return code;
        }
        code = ext4_read_ino(e, ino, &in);
        if (code)
                return code;
        in.i_links_count = 0;
        in.i_dtime = (uint32_t)e->now;
        code = ext2fs_free_ext_attr(e->fs, ino, &in);
        if (code)
                return code;
        code = write_ino(e, ino, &in);
        if (code)
                return code;
        ext2fs_inode_alloc_stats2(e->fs, ino, -1, dir);
        return 0;
}

/* After a failed ext2fs_mkdir: its cleanup clears the bitmap bit, but an
 * inode it already wrote still has links, and e2fsck counts it in use. */
static void forget_inode(struct ext4_fs *e, ext2_ino_t ino) {
        struct ext2_inode_large in;
        if (ext2fs_test_inode_bitmap2(e->fs->inode_map, ino) || ext4_read_ino(e, ino, &in) || !in.i_links_count)
                return;
        in.i_links_count = 0;
        in.i_dtime = (uint32_t)e->now;
        write_ino(e, ino, &in);
}

/* Undoes ext2fs_mkdir(..., NULL) whose name could not be linked: the new
 * directory goes, and the parent's link for its "..".  (A count of 1 means
 * "too many to count", dir_nlink: left alone.) */
static void unmake_dir(struct ext4_fs *e, ext2_ino_t parent, ext2_ino_t ino) {
        struct ext2_inode_large pin;
        free_inode(e, ino);
        if (!ext4_read_ino(e, parent, &pin) && pin.i_links_count > 2) {
                pin.i_links_count--;
                write_ino(e, parent, &pin);
        }
}

/* ---- paths -------------------------------------------------------------- */

/* A leading component that is missing, not a directory or a symlink loop
 * leaves the path unreachable: absent, as lstat(2) reports it (ENOENT,
 * ENOTDIR, ELOOP), not a damaged filesystem. */
static bool unreachable(errcode_t code) {
        return code == EXT2_ET_FILE_NOT_FOUND || code == EXT2_ET_NO_DIRECTORY || code == EXT2_ET_SYMLINK_LOOP;
}

/* A directory on the way to path that the base has as something else: a
 * file, a symlink loop, a symlink to nothing.  Bad input data, as a
 * directory where a file goes is (-ENOTEMPTY), not a missing input file. */
int ext4_in_the_way(const struct ext4_fs *e, const char *path, const char *dir, errcode_t code) {
        ext2_ino_t ino;
        /* not found: a symlink to nothing if dir itself is there */
        if (!unreachable(code) ||
            (code == EXT2_ET_FILE_NOT_FOUND && ext2fs_namei(e->fs, EXT2_ROOT_INO, EXT2_ROOT_INO, dir, &ino)))
                return ext4_fail(e, code, path, "looking up its directory");
        const char *what = code == EXT2_ET_NO_DIRECTORY    ? "is not a directory (nor a symlink to one)"
                           : code == EXT2_ET_SYMLINK_LOOP ? "is a symlink loop"
                                                          : "is a symlink to nothing";
        return log_error(-EINVAL, e->image, "ext4 %s: %s %s in the base, where a directory is needed", path, dir,
                         what);
}

/* Absolute path -> parent directory inode (leading symlinks followed inside
 * the image) and a malloc'd last component; "/" gives base NULL.  quiet:
 * an unreachable path is a bare -errno, unlogged (callers that probe take
 * it as absence, and must not leave an error line behind a build that
 * goes on to succeed). */
static int split(struct ext4_fs *e, const char *path, ext2_ino_t *dir, char **base, bool quiet) {
        if (!path || path[0] != '/')
                return log_error(-EINVAL, e->image, "ext4 path '%s' is not absolute", path ? path : "(null)");
        _cleanup_free_ char *norm = xstrdup(path);
        size_t n = strlen(norm);
        while (n > 1 && norm[n - 1] == '/')
                norm[--n] = '\0';
        *base = NULL;
        *dir = EXT2_ROOT_INO;
        if (strcmp(norm, "/") == 0)
                return 0;
        char *slash = strrchr(norm, '/');
        const char *b = slash + 1;
        if (strcmp(b, ".") == 0 || strcmp(b, "..") == 0)
                return log_error(-EINVAL, e->image, "ext4 path '%s' must not end in . or ..", path);
        if (strlen(b) > EXT2_NAME_LEN)
                return log_error(-ENAMETOOLONG, e->image, "ext4 path '%s': name longer than %d bytes", path,
                                 EXT2_NAME_LEN);
        if (slash != norm) {
                *slash = '\0';
                errcode_t code = ext2fs_namei_follow(e->fs, EXT2_ROOT_INO, EXT2_ROOT_INO, norm, dir);
                if (!code)
                        code = ext2fs_check_directory(e->fs, *dir);
                if (code) {
                        if (quiet && unreachable(code))
                                return errno_of(code);
                        return ext4_in_the_way(e, path, norm, code);
                }
        }
        *base = xstrdup(b);
        return 0;
}

static errcode_t lookup(struct ext4_fs *e, ext2_ino_t dir, const char *base, ext2_ino_t *ino) {
        if (!base) {
                *ino = EXT2_ROOT_INO;
                return 0;
        }
        return ext2fs_lookup(e->fs, dir, base, (int)strlen(base), NULL, ino);
}

/* ext2fs_link does not grow linear directories; expand_dir does (and
 * converts an inline directory).  Indexed directories grow inside
 * ext2fs_link, and a block appended outside the tree would corrupt them. */
static errcode_t link_entry(struct ext4_fs *e, ext2_ino_t dir, const char *name, ext2_ino_t ino, int ftype) {
        for (int tries = 0;; tries++) {
                errcode_t code = ext2fs_link(e->fs, dir, name, ino, ftype);
                if (code != EXT2_ET_DIR_NO_SPACE || tries >= 2)
                        return code;
                struct ext2_inode_large in;
                code = ext4_read_ino(e, dir, &in);
                if (code)
                        return code;
                if (in.i_flags & EXT2_INDEX_FL)
                        return EXT2_ET_DIR_NO_SPACE;
                code = ext2fs_expand_dir(e->fs, dir);
                if (code)
                        return code;
        }
}

struct empty_ctx {
        bool empty;
};

static int empty_cb(ext2_ino_t d, int entry, struct ext2_dir_entry *de, int offset, int blocksize, char *buf,
                    void *priv) {
        (void)d, (void)entry, (void)offset, (void)blocksize, (void)buf;
        struct empty_ctx *c = priv;
        int len = ext2fs_dirent_name_len(de);
        if (de->inode == 0 || (len == 1 && de->name[0] == '.') || (len == 2 && de->name[0] == '.' && de->name[1] == '.'))
                return 0;
        c->empty = false;
        return DIRENT_ABORT;
}

int ext4_refuse_full_dir(struct ext4_fs *e, ext2_ino_t ino, const char *path) {
        struct empty_ctx c = {true};
        errcode_t code = ext2fs_dir_iterate2(e->fs, ino, 0, NULL, empty_cb, &c);
        if (code)
                return ext4_fail(e, code, path, "reading directory");
        if (!c.empty)
                return log_error(-ENOTEMPTY, e->image, "ext4 %s: directory not empty, refusing to remove it", path);
        return 0;
}

/* Removes name (inode ino) from dir; directories only when empty.
 * replacing: a new entry takes its place (for messages). */
static int remove_entry(struct ext4_fs *e, ext2_ino_t dir, const char *name, ext2_ino_t ino, const char *path,
                        bool replacing) {
        struct ext2_inode_large in, pin;
        errcode_t code = ext4_read_ino(e, ino, &in);
        if (!code)
                code = ext4_read_ino(e, dir, &pin);
        if (code)
                return ext4_fail(e, code, path, "reading inode");
        _cleanup_free_ char *dpath = path_dirname(path);
        int r = ext4_refuse_unlink(e, path, dpath, &in, &pin, replacing);
        if (r < 0)
                return r;
        bool isdir = LINUX_S_ISDIR(in.i_mode);
        if (isdir && (r = ext4_refuse_full_dir(e, ino, path)) < 0)
                return r;
        code = ext2fs_unlink(e->fs, dir, name, ino, 0);
        if (code)
                return ext4_fail(e, code, path, "removing directory entry");
        if (isdir || in.i_links_count <= 1) {
                code = free_inode(e, ino);
        } else {
                in.i_links_count--;
                stamp(e, &in, false);
                code = write_ino(e, ino, &in);
        }
        if (code)
                return ext4_fail(e, code, path, "releasing inode");
        code = ext4_read_ino(e, dir, &pin);
        if (!code) {
                /* A link count of 1 on a directory means "too many to count"
                 * (dir_nlink); leave it alone then. */
                if (isdir && pin.i_links_count > 2)
                        pin.i_links_count--;
                stamp(e, &pin, false);
                code = write_ino(e, dir, &pin);
        }
        if (code)
                return ext4_fail(e, code, path, "updating parent directory");
        return 0;
}

/* Quiet failures are split's bare -errno. */
int ext4_find_inode(struct ext4_fs *e, const char *path, bool quiet, bool follow, ext2_ino_t *ino,
                      struct ext2_inode_large *in) {
        /* defined on every path, for callers and the static analyzer alike */
        *ino = 0;
        memset(in, 0, sizeof *in);
        ext2_ino_t dir;
        _cleanup_free_ char *base = NULL;
        int r = split(e, path, &dir, &base, quiet);
        if (r < 0)
                return r;
        errcode_t code = base && follow ? ext2fs_namei_follow(e->fs, EXT2_ROOT_INO, dir, base, ino)
                                        : lookup(e, dir, base, ino);
        if (quiet && unreachable(code))
                return errno_of(code);
        if (code)
                return ext4_fail(e, code, path, "looking up");
        code = ext4_read_ino(e, *ino, in);
        if (code)
                return ext4_fail(e, code, path, "reading inode");
        return 0;
}

/* ---- creating ----------------------------------------------------------- */

int ext4_mkdir_p(struct ext4_fs *e, const char *path, uint32_t mode, uint32_t uid, uint32_t gid) {
        if (!path || path[0] != '/')
                return log_error(-EINVAL, e->image, "ext4 path '%s' is not absolute", path ? path : "(null)");
        _cleanup_free_ char *copy = xstrdup(path);
        ext2_ino_t cur = EXT2_ROOT_INO;
        char *save = NULL;
        for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
                if (strcmp(c, ".") == 0)
                        continue;
                if (strlen(c) > EXT2_NAME_LEN)
                        return log_error(-ENAMETOOLONG, e->image, "ext4 %s: component '%s' too long", path, c);
                ext2_ino_t ino;
                errcode_t code = ext2fs_lookup(e->fs, cur, c, (int)strlen(c), NULL, &ino);
                if (code == 0) {
                        /* An existing symlink to a directory (merged /usr:
                         * /lib -> usr/lib) is followed, as mkdir -p would. */
                        code = ext2fs_namei_follow(e->fs, EXT2_ROOT_INO, cur, c, &ino);
                        if (!code)
                                code = ext2fs_check_directory(e->fs, ino);
                        if (code) {
                                _cleanup_free_ char *dir = xstrndup(path, (size_t)(c - copy) + strlen(c));
                                return ext4_in_the_way(e, path, dir, code);
                        }
                        cur = ino;
                        continue;
                }
                if (code != EXT2_ET_FILE_NOT_FOUND)
                        return ext4_fail(e, code, path, "looking up");
                if (strcmp(c, "..") == 0)
                        return log_error(-EINVAL, e->image, "ext4 %s: '..' in a path to create", path);
                struct ext2_inode_large pin;
                code = ext4_read_ino(e, cur, &pin);
                if (code)
                        return ext4_fail(e, code, path, "reading the parent directory");
                /* copy is path, cut at its slashes */
                _cleanup_free_ char *pdir = ext4_dir_of(path, (size_t)(c - copy));
                int r = ext4_flags_refuse(e, path, pdir, &pin, EXT2_IMMUTABLE_FL, "adds a name to it");
                if (r < 0)
                        return r;
                /* ext2fs_new_inode only picks a number: nothing to undo */
                code = ext2fs_new_inode(e->fs, cur, LINUX_S_IFDIR | 0755, NULL, &ino);
                if (code)
                        return ext4_fail(e, code, path, "allocating inode");
                /* Made without a name and linked after (link_entry's expand
                 * retry): given the name, 1.47.0's ext2fs_mkdir writes the
                 * inode first and, when linking fails, frees its block and
                 * bitmap bit but leaves the inode claiming them. */
                uint16_t parent_links = pin.i_links_count;
                if (parent_links >= EXT2_LINK_MAX && !ext2fs_has_feature_dir_nlink(e->fs->super))
                        return log_error(-EMLINK, e->image, "ext4 %s: its parent has %u subdirectories, the most "
                                         "without the dir_nlink feature", path, (unsigned)parent_links - 2);
                code = ext2fs_mkdir(e->fs, cur, ino, NULL);
                if (code) {
                        forget_inode(e, ino);
                        return ext4_fail(e, code, path, "creating directory");
                }
                /* 1.47.0's ext2fs_mkdir counts the parent's new link
                 * blindly; with dir_nlink a count of 1 means more
                 * subdirectories than EXT2_LINK_MAX, and stays 1, as the
                 * kernel keeps it (ext4_inc_count). */
                if (parent_links == 1 || parent_links >= EXT2_LINK_MAX) {
                        code = ext4_read_ino(e, cur, &pin);
                        if (!code) {
                                pin.i_links_count = 1;
                                code = write_ino(e, cur, &pin);
                        }
                        if (code) {
                                unmake_dir(e, cur, ino);
                                return ext4_fail(e, code, path, "creating directory");
                        }
                }
                code = link_entry(e, cur, c, ino, EXT2_FT_DIR);
                if (code) {
                        unmake_dir(e, cur, ino);
                        return ext4_fail(e, code, path, "creating directory");
                }
                struct ext2_inode_large in;
                code = ext4_read_ino(e, ino, &in);
                if (!code) {
                        in.i_mode = (uint16_t)(LINUX_S_IFDIR | (mode & 07777));
                        set_owner(&in, uid, gid);
                        stamp(e, &in, true);
                        code = write_ino(e, ino, &in);
                }
                if (!code)
                        code = touch(e, cur);
                if (code)
                        return ext4_fail(e, code, path, "setting up new directory");
                cur = ino;
        }
        return 0;
}

struct source {
        const uint8_t *data; /* in memory, or */
        size_t len;
        int fd; /* a host file, streamed */
        const char *host;
        bool secret; /* data goes in through put_secret, zeros first */
};

/* what a secret's blocks hold until put_secret fills them (a few KiB: an
 * .env, a keyfile, /etc/shadow) */
static const uint8_t secret_stand_in[4096];

/* Streams the source into the open file; returns a libext2fs code, or sets
 * *host_err when the host side failed. */
static errcode_t copy_in(ext2_file_t f, struct source *s, int *host_err) {
        uint8_t *buf = s->fd >= 0 ? xmalloc(CHUNK) : NULL;
        errcode_t code = 0;
        size_t off = 0;
        for (;;) {
                const uint8_t *p;
                size_t n;
                if (s->fd >= 0) {
                        ssize_t k = read(s->fd, buf, CHUNK);
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k < 0) {
                                *host_err = -errno;
                                break;
                        }
                        p = buf;
                        n = (size_t)k;
                } else if (s->secret) {
                        p = secret_stand_in;
                        n = MIN(s->len - off, sizeof secret_stand_in);
                        off += n;
                } else {
                        p = s->data + off;
                        n = MIN(s->len - off, (size_t)CHUNK);
                        off += n;
                }
                if (n == 0)
                        break;
                while (n > 0) {
                        unsigned int w = 0;
                        code = ext2fs_file_write(f, p, (unsigned int)n, &w);
                        if (code)
                                goto out;
                        if (w == 0) {
                                code = EXT2_ET_SHORT_WRITE;
                                goto out;
                        }
                        p += w;
                        n -= w;
                }
        }
out:
        free(buf);
        return code;
}

static int fill_file(struct ext4_fs *e, ext2_ino_t ino, struct source *s, const char *path) {
        ext2_file_t f;
        errcode_t code = ext2fs_file_open(e->fs, ino, EXT2_FILE_WRITE, &f);
        if (code)
                return ext4_fail(e, code, path, "opening for writing");
        int host_err = 0;
        code = copy_in(f, s, &host_err);
        errcode_t cc = ext2fs_file_close(f);
        if (!code)
                code = cc;
        if (host_err)
                return log_error(host_err, s->host, "reading (to copy to %s): %s", path, strerror(-host_err));
        if (code)
                return ext4_fail(e, code, path, "writing");
        return 0;
}

/* The parent of a new file or symlink at path, and the way to it
 * cleared: whatever was there goes, a regular file too,
 * as install(1) does: rewritten in place, its other hard links would see
 * the new content, and its xattrs would stay with it -- a
 * security.capability onto our file, ACLs at odds with MODE. */
static int clear_way(struct ext4_fs *e, const char *path, ext2_ino_t *dir, char **base) {
        int r = split(e, path, dir, base, false);
        if (r < 0)
                return r;
        if (!*base)
                return log_error(-EINVAL, e->image, "ext4 %s: cannot replace the root directory", path);
        ext2_ino_t ino;
        errcode_t code = lookup(e, *dir, *base, &ino);
        if (code == 0)
                return remove_entry(e, *dir, *base, ino, path, true);
        if (code != EXT2_ET_FILE_NOT_FOUND)
                return ext4_fail(e, code, path, "looking up");
        struct ext2_inode_large pin;
        code = ext4_read_ino(e, *dir, &pin);
        if (code)
                return ext4_fail(e, code, path, "reading the parent directory");
        _cleanup_free_ char *dpath = path_dirname(path);
        return ext4_flags_refuse(e, path, dpath, &pin, EXT2_IMMUTABLE_FL, "adds a name to it");
}

/* A secret's bytes, put into the blocks fill_file allocated (and filled
 * with zeros) from a block of ours, wiped after.  Through libext2fs's file
 * I/O they would stay in the block buffer it frees as it is, for the heap
 * to hand out again.  Read, filled and written back a block at a time: the
 * bytes past the end stay as libext2fs left them. */
static int put_secret(struct ext4_fs *e, ext2_ino_t ino, const struct source *s, const char *path) {
        const uint32_t bs = e->fs->blocksize;
        uint8_t *block = xmalloc(bs);
        int r = 0;
        for (size_t off = 0; off < s->len && r == 0; off += bs) {
                blk64_t pblk = 0;
                int flags = 0;
                errcode_t code = ext2fs_bmap2(e->fs, ino, NULL, NULL, 0, off / bs, &flags, &pblk);
                if (code) {
                        r = ext4_fail(e, code, path, "mapping a block");
                        break;
                }
                if (pblk == 0 || (flags & BMAP_RET_UNINIT)) {
                        r = log_error(-EIO, e->image, "ext4 %s: internal error: byte %zu is in no block", path, off);
                        break;
                }
                code = io_channel_read_blk64(e->fs->io, pblk, 1, block);
                if (!code) {
                        memcpy(block, s->data + off, MIN((size_t)bs, s->len - off));
                        code = io_channel_write_blk64(e->fs->io, pblk, 1, block);
                }
                if (code)
                        r = ext4_fail(e, code, path, "writing");
        }
        explicit_bzero(block, bs);
        free(block);
        return r;
}

static int write_common(struct ext4_fs *e, const char *path, struct source *s, uint32_t mode, uint32_t uid,
                        uint32_t gid) {
        ext2_ino_t dir, ino;
        _cleanup_free_ char *base = NULL;
        int r = clear_way(e, path, &dir, &base);
        if (r < 0)
                return r;
        errcode_t code = ext2fs_new_inode(e->fs, dir, LINUX_S_IFREG | 0644, NULL, &ino);
        if (code)
                return ext4_fail(e, code, path, "allocating inode");
        struct ext2_inode_large in = {0};
        in.i_mode = (uint16_t)(LINUX_S_IFREG | (mode & 07777));
        set_owner(&in, uid, gid);
        in.i_links_count = 1;
        in.i_atime = in.i_mtime = in.i_ctime = (uint32_t)e->now;
        /* Never inline: see above. */
        if (ext2fs_has_feature_extents(e->fs->super)) {
                ext2_extent_handle_t h;
                code = ext2fs_extent_open2(e->fs, ino, (struct ext2_inode *)&in, &h);
                if (code)
                        return ext4_fail(e, code, path, "setting up extents");
                ext2fs_extent_free(h);
        }
        code = ext2fs_write_new_inode(e->fs, ino, (struct ext2_inode *)&in);
        if (code)
                return ext4_fail(e, code, path, "writing new inode");
        /* ext2fs_new_inode only picks a number; the bitmap is ours to set. */
        ext2fs_inode_alloc_stats2(e->fs, ino, +1, 0);
        code = ext4_read_ino(e, ino, &in);
        if (!code) {
                stamp(e, &in, true);
                code = write_ino(e, ino, &in);
        }
        if (code) {
                free_inode(e, ino);
                return ext4_fail(e, code, path, "writing new inode");
        }
        r = fill_file(e, ino, s, path);
        if (r >= 0 && s->secret)
                r = put_secret(e, ino, s, path);
        if (r < 0) {
                free_inode(e, ino); /* leave the filesystem consistent */
                return r;
        }
        code = link_entry(e, dir, base, ino, EXT2_FT_REG_FILE);
        if (!code)
                code = touch(e, dir);
        if (code) {
                free_inode(e, ino);
                return ext4_fail(e, code, path, "adding directory entry");
        }
        return 0;
}

int ext4_write(struct ext4_fs *e, const char *path, const void *data, size_t len, uint32_t mode, uint32_t uid,
               uint32_t gid) {
        struct source s = {.data = data, .len = len, .fd = -1};
        return write_common(e, path, &s, mode, uid, gid);
}

int ext4_write_secret(struct ext4_fs *e, const char *path, const void *data, size_t len, uint32_t mode,
                      uint32_t uid, uint32_t gid) {
        struct source s = {.data = data, .len = len, .fd = -1, .secret = true};
        return write_common(e, path, &s, mode, uid, gid);
}

int ext4_write_from(struct ext4_fs *e, const char *path, const char *host_file, uint32_t mode, uint32_t uid,
                    uint32_t gid) {
        _cleanup_close_ int fd = open(host_file, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return log_error(input_err(-errno), host_file, "cannot open (to copy to %s): %m", path);
        struct source s = {.fd = fd, .host = host_file};
        return write_common(e, path, &s, mode, uid, gid);
}

int ext4_symlink(struct ext4_fs *e, const char *path, const char *target, uint32_t uid, uint32_t gid) {
        size_t tlen = target ? strlen(target) : 0;
        if (tlen == 0)
                return log_error(-EINVAL, e->image, "ext4 %s: empty symlink target", path);
        if (tlen >= e->fs->blocksize)
                return log_error(-ENAMETOOLONG, e->image, "ext4 %s: symlink target longer than %u bytes", path,
                                 e->fs->blocksize - 1);
        ext2_ino_t dir, ino;
        _cleanup_free_ char *base = NULL;
        int r = clear_way(e, path, &dir, &base);
        if (r < 0)
                return r;
        errcode_t code = ext2fs_new_inode(e->fs, dir, LINUX_S_IFLNK | 0777, NULL, &ino);
        if (code)
                return ext4_fail(e, code, path, "allocating inode");
        /* No name: the entry is added below, with expand_dir retries. */
        code = ext2fs_symlink(e->fs, dir, ino, NULL, target);
        if (code)
                return ext4_fail(e, code, path, "creating symlink");
        struct ext2_inode_large in;
        code = ext4_read_ino(e, ino, &in);
        if (!code) {
                set_owner(&in, uid, gid);
                stamp(e, &in, true);
                code = write_ino(e, ino, &in);
        }
        if (!code)
                code = link_entry(e, dir, base, ino, EXT2_FT_SYMLINK);
        if (!code)
                code = touch(e, dir);
        if (code) {
                free_inode(e, ino);
                return ext4_fail(e, code, path, "creating symlink");
        }
        return 0;
}

int ext4_unlink(struct ext4_fs *e, const char *path) {
        ext2_ino_t dir, ino;
        _cleanup_free_ char *base = NULL;
        int r = split(e, path, &dir, &base, true);
        if (r < 0)
                return r;
        if (!base)
                return log_error(-EBUSY, e->image, "ext4 %s: cannot remove the root directory", path);
        errcode_t code = lookup(e, dir, base, &ino);
        if (code == EXT2_ET_FILE_NOT_FOUND)
                return -ENOENT; /* callers treat a missing path as done */
        if (code)
                return ext4_fail(e, code, path, "looking up");
        return remove_entry(e, dir, base, ino, path, false);
}

/* An inode whose mode or owner was changed, written back with the time. */
static int put_changed(struct ext4_fs *e, ext2_ino_t ino, struct ext2_inode_large *in, const char *path) {
        stamp(e, in, false);
        errcode_t code = write_ino(e, ino, in);
        if (code)
                return ext4_fail(e, code, path, "writing inode");
        return 0;
}

static int change(struct ext4_fs *e, const char *path, bool set_mode, uint32_t mode, bool set_own, uint32_t uid,
                  uint32_t gid) {
        ext2_ino_t ino;
        struct ext2_inode_large in;
        int r = ext4_find_inode(e, path, false, false, &ino, &in);
        if (r < 0)
                return r;
        if ((r = ext4_flags_refuse(e, path, NULL, &in, EXT2_IMMUTABLE_FL | EXT2_APPEND_FL,
                                   set_mode ? "changes its mode" : "changes its owner")) < 0)
                return r;
        if (set_mode)
                in.i_mode = (uint16_t)((in.i_mode & ~07777) | (mode & 07777));
        if (set_own)
                set_owner(&in, uid, gid);
        return put_changed(e, ino, &in, path);
}

int ext4_chmod(struct ext4_fs *e, const char *path, uint32_t mode) {
        return change(e, path, true, mode, false, 0, 0);
}

int ext4_chown(struct ext4_fs *e, const char *path, uint32_t uid, uint32_t gid) {
        return change(e, path, false, 0, true, uid, gid);
}

/* At most mode, never writable by group or others, and never wider than
 * the base has it. */
static uint32_t own_dir_mode(const struct ext2_inode_large *in, uint32_t mode) {
        return (in->i_mode & 07777 & mode) & ~(uint32_t)07022;
}

bool ext4_own_dir_changes(const struct ext2_inode_large *in, uint32_t mode, uint32_t uid, uint32_t gid) {
        return (in->i_mode & 07777) != own_dir_mode(in, mode) || ext4_ino_uid(in) != uid || ext4_ino_gid(in) != gid;
}

int ext4_own_dir(struct ext4_fs *e, const char *path, uint32_t mode, uint32_t uid, uint32_t gid) {
        ext2_ino_t ino;
        struct ext2_inode_large in;
        /* followed: a link to elsewhere is where the files went (mkdir_p
         * follows it too), and a link's own mode means nothing */
        int r = ext4_find_inode(e, path, false, true, &ino, &in);
        if (r < 0)
                return r;
        if (!LINUX_S_ISDIR(in.i_mode))
                return log_error(ENOTDIR, e->image, "ext4 %s: not a directory", path);
        if (!ext4_own_dir_changes(&in, mode, uid, gid))
                return 0;
        if ((r = ext4_flags_refuse(e, path, NULL, &in, EXT2_IMMUTABLE_FL | EXT2_APPEND_FL,
                                   "changes its mode and owner")) < 0)
                return r;
        in.i_mode = (uint16_t)((in.i_mode & ~07777) | own_dir_mode(&in, mode));
        set_owner(&in, uid, gid);
        return put_changed(e, ino, &in, path);
}
