/* SPDX-License-Identifier: GPL-3.0-or-later */
/* What ext4.c and ext4query.c share: the handle and the helpers both
 * sides of the module need.  Not for other modules: they see ext4.h. */
#pragma once

#include <e2p/e2p.h>
#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "ext4.h"

/* Files are read and written a MiB at a time. */
#define CHUNK (1u << 20)

struct ext4_fs {
        ext2_filsys fs;
        char *image;
        uint64_t offset;
        time_t now;
};

/* A libext2fs failure as a logged -errno naming path and what was done. */
int ext4_fail(const struct ext4_fs *e, errcode_t code, const char *path, const char *what);
errcode_t ext4_read_ino(struct ext4_fs *e, ext2_ino_t ino, struct ext2_inode_large *in);
uint32_t ext4_ino_uid(const struct ext2_inode_large *in);
uint32_t ext4_ino_gid(const struct ext2_inode_large *in);
/* path -> its inode number and inode.  Failures are logged, except an
 * absent or unreachable path with quiet, which is a bare -errno. */
int ext4_find_inode(struct ext4_fs *e, const char *path, bool quiet, bool follow, ext2_ino_t *ino,
                    struct ext2_inode_large *in);

/* 0 when in's flags (the inode of path itself, or with dir that of the
 * directory path is in) have none of forbid's EXT2_IMMUTABLE_FL and
 * EXT2_APPEND_FL; else a logged -EINVAL saying which flag stands in the way
 * of what the build does ("replaces it").  ext4flags.c. */
int ext4_flags_refuse(const struct ext4_fs *e, const char *path, const char *dir, const struct ext2_inode_large *in,
                      uint32_t forbid, const char *doing);
/* Removing (or, replacing, replacing) the inode in of path from its
 * directory pin, whose path is dir: ext4_flags_refuse for both.
 * ext4flags.c. */
int ext4_refuse_unlink(const struct ext4_fs *e, const char *path, const char *dir, const struct ext2_inode_large *in,
                       const struct ext2_inode_large *pin, bool replacing);
/* A directory on the way to path (dir) that the base has as something
 * else (code: the lookup's), refused as the edits refuse it.  ext4.c. */
int ext4_in_the_way(const struct ext4_fs *e, const char *path, const char *dir, errcode_t code);
/* A directory (ino, at path) that an edit would remove, refused when it
 * is not empty.  ext4.c. */
int ext4_refuse_full_dir(struct ext4_fs *e, ext2_ino_t ino, const char *path);
/* The directory an entry of path is in, path[0..end) with its trailing
 * slashes gone ("/" for the root's), for messages.  Caller frees.
 * ext4flags.c. */
char *ext4_dir_of(const char *path, size_t end);
/* Whether ext4_own_dir would change this directory inode. */
bool ext4_own_dir_changes(const struct ext2_inode_large *in, uint32_t mode, uint32_t uid, uint32_t gid);
/* A logged -EOPNOTSUPP naming the features in mask (of e2p's kind compat:
 * E2P_FEATURE_INCOMPAT, E2P_FEATURE_RO_INCOMPAT) as e2fsprogs names them,
 * "uses ext4 feature 'casefold' which dimimage cannot edit safely".
 * name: the image, for messages.  ext4flags.c. */
int ext4_refuse_features(const char *name, uint64_t offset, int compat, uint32_t mask);
