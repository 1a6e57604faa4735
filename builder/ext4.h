/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The root filesystem (ext2/3/4) inside an image file, through libext2fs:
 * what a careful `install -D -m MODE -o UID -g GID` on a mounted filesystem
 * would do, without mounting.  Every function logs its own error naming the
 * image and path, and returns -errno. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct ext4_fs;

struct ext4_stat {
        uint32_t ino;
        uint32_t mode; /* full st_mode, type bits included */
        uint32_t uid, gid;
        uint64_t size;
        uint32_t nlink;
};

/* Opens read-write at offset; refuses a filesystem larger than part_size
 * (0: size not known, unchecked), one whose journal needs recovery, one
 * marked with errors, and incompat features this module does not handle. */
int ext4_open(const char *image, uint64_t offset, uint64_t part_size, struct ext4_fs **ret);
/* The general form: name is what messages call the image (the base, when
 * image is our temporary copy of it).  Without EXT4_RW the filesystem is
 * opened read-only, and an unclean one only warned about, and one with
 * features only writing cannot take (quotas, read-only, shared_blocks)
 * opened, unless EXT4_REQUIRE_CLEAN: the build's looks before it writes,
 * refusing all EXT4_RW would. */
enum { EXT4_RW = 1, EXT4_REQUIRE_CLEAN = 2 };
int ext4_open_as(const char *image, const char *name, uint64_t offset, uint64_t part_size, unsigned flags,
                 struct ext4_fs **ret);
/* Same, read-only (inspect): recovery/error states only warn. */
int ext4_open_ro(const char *image, uint64_t offset, uint64_t part_size, struct ext4_fs **ret);
/* Writes back bitmaps, group descriptors and superblock, then frees. */
int ext4_close(struct ext4_fs *fs);
/* Frees without writing anything back: after a failed edit, whose image
 * is thrown away (and whose write-back would fail the same way again,
 * a second error line for one cause). */
void ext4_abandon(struct ext4_fs *fs);

/* Unlogged: -ENOENT when absent, -ENOTDIR or -ELOOP when a leading component
 * is not a directory or loops (unreachable, as lstat(2) says). */
int ext4_lstat(struct ext4_fs *fs, const char *path, struct ext4_stat *st);
/* Regular files only; the last component is not followed (a symlink is
 * -EINVAL); symlinks in the leading directories resolve inside the image. */
int ext4_read(struct ext4_fs *fs, const char *path, size_t max, uint8_t **data, size_t *len);
/* mkdir -p; existing directories keep their mode/owner; new ones get these. */
int ext4_mkdir_p(struct ext4_fs *fs, const char *path, uint32_t mode, uint32_t uid, uint32_t gid);
/* Create or replace a regular file, as install(1) does: whatever is at
 * path (a file too, its xattrs with it) is removed first and the file is a
 * new inode with mode/owner as asked.  An immutable or append-only file or
 * directory in the way is refused (ext4_check_edit). */
int ext4_write(struct ext4_fs *fs, const char *path, const void *data, size_t len, uint32_t mode, uint32_t uid,
               uint32_t gid);
/* Same for a secret's bytes: they never pass through libext2fs's buffers. */
int ext4_write_secret(struct ext4_fs *fs, const char *path, const void *data, size_t len, uint32_t mode,
                      uint32_t uid, uint32_t gid);
/* Same, streaming the content from a host file. */
int ext4_write_from(struct ext4_fs *fs, const char *path, const char *host_file, uint32_t mode, uint32_t uid,
                    uint32_t gid);
int ext4_symlink(struct ext4_fs *fs, const char *path, const char *target, uint32_t uid, uint32_t gid);
/* files, symlinks, empty dirs; an absent or unreachable path is an unlogged
 * -ENOENT, -ENOTDIR or -ELOOP (as ext4_lstat), ok to ignore */
int ext4_unlink(struct ext4_fs *fs, const char *path);
int ext4_chmod(struct ext4_fs *fs, const char *path, uint32_t mode);
int ext4_chown(struct ext4_fs *fs, const char *path, uint32_t uid, uint32_t gid);
/* An existing directory made ours (symlinks followed): owner uid:gid, mode
 * narrowed to at most mode and never writable by group or others; one the
 * base keeps stricter (system-connections 0700) stays so. */
int ext4_own_dir(struct ext4_fs *fs, const char *path, uint32_t mode, uint32_t uid, uint32_t gid);
/* An edit, as apply.c makes it: write (or replace) a file or symlink,
 * unlink, mkdir -p, mkdir -p and ext4_own_dir. */
enum ext4_edit { EXT4_EDIT_WRITE, EXT4_EDIT_UNLINK, EXT4_EDIT_MKDIR, EXT4_EDIT_OWN_DIR };
/* Refuses (logged, -EINVAL), without writing anything, an edit of path that
 * the base's immutable or append-only flags (chattr +i, +a) forbid, as the
 * kernel would with EPERM: replacing, removing or changing the mode of such
 * an inode, adding a name to an immutable directory, removing one from an
 * append-only one.  The edits themselves refuse the same, but only on
 * getting there: this asks before any of them.  mode, uid, gid: those of
 * EXT4_EDIT_OWN_DIR.  Anything else wrong with path is left to the edit
 * (0). */
int ext4_check_edit(struct ext4_fs *fs, const char *path, enum ext4_edit what, uint32_t mode, uint32_t uid,
                    uint32_t gid);
uint64_t ext4_free_bytes(const struct ext4_fs *fs);
/* Not marked with errors and no journal to recover. */
bool ext4_is_clean(const struct ext4_fs *fs);
/* The filesystem's own size (blocks x block size). */
uint64_t ext4_size_bytes(const struct ext4_fs *fs);
uint32_t ext4_block_size(const struct ext4_fs *fs);
/* Bytes (whole blocks, plus metadata estimate) needed to store len bytes. */
uint64_t ext4_cost(const struct ext4_fs *fs, uint64_t len);

/* Grow the (closed) filesystem at offset to exactly new_bytes, which must
 * not exceed its partition.  Runs resize2fs with an explicit size; messages
 * name name (the base, not the temporary image). */
int ext4_grow(const char *image, const char *name, uint64_t offset, uint64_t new_bytes);

/* Additions. */
/* Like ext4_read, but a symlink as last component is followed inside the
 * image (e.g. /etc/os-release -> ../usr/lib/os-release). */
int ext4_read_follow(struct ext4_fs *fs, const char *path, size_t max, uint8_t **data, size_t *len);
/* The names in directory dir but "." and "..", sorted (caller frees each
 * and the array).  Quiet when dir is missing or no directory (-errno as
 * ext4_lstat's, -ENOTDIR) or holds more than max (-E2BIG); logs when the
 * directory cannot be read. */
int ext4_list(struct ext4_fs *fs, const char *dir, size_t max, char ***names, size_t *n);
/* The target of a symlink (caller frees). -EINVAL when not a symlink. */
int ext4_readlink(struct ext4_fs *fs, const char *path, char **target);
/* path as this filesystem spells it when each of its components is there
 * in one spelling only, regardless of case ("/usr/share/zoneinfo/europe/
 * berlin" -> ".../Europe/Berlin"), for a suggestion; else NULL.  Caller
 * frees.  Symlinks are not followed. */
char *ext4_spelling(struct ext4_fs *fs, const char *path);
/* Inodes: free ones, and what a block group (the unit growth adds them
 * in) brings: its inodes, its bytes; how many groups there are. */
struct ext4_inode_room {
        uint64_t free, per_group, group_bytes, groups;
};
void ext4_inode_room(const struct ext4_fs *fs, struct ext4_inode_room *room);
/* Bytes a new directory costs (one block); add it to ext4_cost per mkdir. */
uint64_t ext4_dir_cost(const struct ext4_fs *fs);

/* Where bytes of a regular file lie in the image: len bytes from off, as at
 * most max spans (*n of them), in file order.  Inline data, holes and
 * unwritten extents are refused (-EINVAL): only bytes in written blocks can
 * be rewritten in the image later without the filesystem's say. */
struct ext4_span {
        uint64_t image_off; /* from the image's start, not the partition's */
        uint64_t len;
        uint64_t file_off;
};
int ext4_map(struct ext4_fs *fs, const char *path, uint64_t off, uint64_t len, struct ext4_span *v, size_t max,
             size_t *n);
