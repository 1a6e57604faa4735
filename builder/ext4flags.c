/* SPDX-License-Identifier: GPL-3.0-or-later */
/* What the base's flags forbid a build, said in their own names: the
 * filesystem's features it cannot edit ('casefold', as e2fsprogs calls
 * them), and its files' immutable and append-only flags.
 *
 * The immutable and append-only inode flags (chattr +i, +a) forbid a build
 * what the kernel forbids with EPERM: `cp` or `install` onto an immutable
 * file fails, and so does adding a name to an immutable directory or
 * removing one from an append-only one.
 *
 * Refused, not carried over: a replaced file is a new inode, so going on
 * would drop the flag without a word, and keeping it on the new inode
 * would still change the content it froze.  Whoever set it meant the
 * file to stay as it is; they clear it, or the build does not go on.
 *
 * ext4.c asks ext4_flags_refuse before each change it makes; apply.c asks
 * ext4_check_edit for every root entry before the image is written, so a
 * refusal leaves nothing half done. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ext4_private.h"
#include "log.h"
#include "util.h"

int ext4_refuse_features(const char *name, uint64_t offset, int compat, uint32_t mask) {
        struct buf b = {0};
        unsigned n = 0;
        for (unsigned bit = 0; bit < 32; bit++) {
                if (!(mask & (1u << bit)))
                        continue;
                /* into our buffer: e2p_feature2string's is static, and a
                 * fleet opens filesystems on more than one thread */
                char f[64];
                e2p_feature_to_string(compat, 1u << bit, f, sizeof f);
                buf_printf(&b, "%s'%s'", n++ ? ", " : "", f);
        }
        buf_append(&b, "", 0);
        int r = log_error(-EOPNOTSUPP, name,
                          "ext4 filesystem at offset %" PRIu64 " uses ext4 feature%s %s which dimimage cannot edit "
                          "safely",
                          offset, n > 1 ? "s" : "", (const char *)b.data);
        buf_free(&b);
        return r;
}

int ext4_flags_refuse(const struct ext4_fs *e, const char *path, const char *dir, const struct ext2_inode_large *in,
                      uint32_t forbid, const char *doing) {
        uint32_t hit = in->i_flags & forbid & (EXT2_IMMUTABLE_FL | EXT2_APPEND_FL);
        if (!hit)
                return 0;
        /* immutable says more, and clearing it alone would still leave +a */
        bool imm = hit & EXT2_IMMUTABLE_FL;
        const char *what = imm ? "immutable" : "append-only";
        char c = imm ? 'i' : 'a';
        if (dir)
                return log_error(-EINVAL, e->image,
                                 "ext4 %s: its directory %s is %s (chattr +%c) in the base, and this build %s; clear "
                                 "the flag first (chattr -%c)",
                                 path, dir, what, c, doing, c);
        return log_error(-EINVAL, e->image,
                         "ext4 %s is %s (chattr +%c) in the base, and this build %s; clear the flag first (chattr -%c)",
                         path, what, c, doing, c);
}

char *ext4_dir_of(const char *path, size_t end) {
        while (end > 0 && path[end - 1] == '/')
                end--;
        return end ? xstrndup(path, end) : xstrdup("/");
}

int ext4_refuse_unlink(const struct ext4_fs *e, const char *path, const char *dir, const struct ext2_inode_large *in,
                       const struct ext2_inode_large *pin, bool replacing) {
        int r = ext4_flags_refuse(e, path, NULL, in, EXT2_IMMUTABLE_FL | EXT2_APPEND_FL,
                                  replacing ? "replaces it" : "removes it");
        if (r < 0)
                return r;
        return ext4_flags_refuse(e, path, dir, pin, EXT2_IMMUTABLE_FL | EXT2_APPEND_FL,
                                 replacing ? "replaces a name in it" : "removes a name from it");
}

/* The last component exists (ino, not followed) in directory cur, whose
 * path is path[0..dirlen). */
static int check_existing(struct ext4_fs *e, const char *path, size_t dirlen, ext2_ino_t cur, const char *name,
                          ext2_ino_t ino, enum ext4_edit what, uint32_t mode, uint32_t uid, uint32_t gid) {
        struct ext2_inode_large in, pin;
        if (what == EXT4_EDIT_MKDIR || what == EXT4_EDIT_OWN_DIR) {
                /* mkdir -p follows a symlink to a directory, and own_dir
                 * changes the directory behind it */
                errcode_t code = ext2fs_namei_follow(e->fs, EXT2_ROOT_INO, cur, name, &ino);
                if (!code)
                        code = ext2fs_check_directory(e->fs, ino);
                if (code) {
                        _cleanup_free_ char *dir = ext4_dir_of(path, strlen(path));
                        return ext4_in_the_way(e, path, dir, code);
                }
                if (ext4_read_ino(e, ino, &in) || what == EXT4_EDIT_MKDIR)
                        return 0; /* a damaged inode: the edit reports it */
                if (!ext4_own_dir_changes(&in, mode, uid, gid))
                        return 0;
                return ext4_flags_refuse(e, path, NULL, &in, EXT2_IMMUTABLE_FL | EXT2_APPEND_FL,
                                         "changes its mode and owner");
        }
        if (ext4_read_ino(e, ino, &in) || ext4_read_ino(e, cur, &pin))
                return 0; /* a damaged inode: the edit reports it */
        _cleanup_free_ char *dir = ext4_dir_of(path, dirlen);
        int r = ext4_refuse_unlink(e, path, dir, &in, &pin, what == EXT4_EDIT_WRITE);
        if (r >= 0 && LINUX_S_ISDIR(in.i_mode))
                r = ext4_refuse_full_dir(e, ino, path);
        return r;
}

int ext4_check_edit(struct ext4_fs *e, const char *path, enum ext4_edit what, uint32_t mode, uint32_t uid,
                    uint32_t gid) {
        if (!path || path[0] != '/')
                return 0; /* the edit itself refuses it */
        ext2_ino_t cur = EXT2_ROOT_INO;
        const char *p = path;
        for (;;) {
                while (*p == '/')
                        p++;
                if (!*p)
                        return 0; /* the root directory, or what leads to it: nothing made there */
                size_t n = strcspn(p, "/");
                const char *next = p + n;
                while (*next == '/')
                        next++;
                bool last = !*next;
                if (n == 1 && p[0] == '.') {
                        p += n;
                        continue;
                }
                _cleanup_free_ char *name = xstrndup(p, n);
                ext2_ino_t ino;
                errcode_t code = ext2fs_lookup(e->fs, cur, name, (int)n, NULL, &ino);
                if (code == EXT2_ET_FILE_NOT_FOUND) {
                        /* name and all below it are new, made in cur */
                        struct ext2_inode_large pin;
                        if (what == EXT4_EDIT_UNLINK || ext4_read_ino(e, cur, &pin))
                                return 0;
                        _cleanup_free_ char *dir = ext4_dir_of(path, (size_t)(p - path));
                        return ext4_flags_refuse(e, path, dir, &pin, EXT2_IMMUTABLE_FL, "adds a name to it");
                }
                if (code)
                        return 0;
                if (last)
                        return check_existing(e, path, (size_t)(p - path), cur, name, ino, what, mode, uid, gid);
                /* a leading component: followed inside the image, as every
                 * edit follows it, and refused as they refuse it */
                code = ext2fs_namei_follow(e->fs, EXT2_ROOT_INO, cur, name, &ino);
                if (!code)
                        code = ext2fs_check_directory(e->fs, ino);
                /* nothing to remove under what is no directory: the unlink
                 * takes it as gone */
                if (code && what == EXT4_EDIT_UNLINK)
                        return 0;
                if (code) {
                        _cleanup_free_ char *dir = ext4_dir_of(path, (size_t)(p - path) + n);
                        return ext4_in_the_way(e, path, dir, code);
                }
                cur = ino;
                p += n;
        }
}
