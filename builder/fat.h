/* SPDX-License-Identifier: GPL-3.0-or-later */
/* FAT16/FAT32 inside a byte window of an image file: read, create, replace
 * in place, delete, mkdir.  Our own code (as Raspberry Pi Imager does): no
 * mount, no mtools.  FAT12 and exFAT are refused.
 *
 * Paths are '/'-separated and absolute within the filesystem ("/cmdline.txt");
 * lookup is case-insensitive across long (LFN) and 8.3 names.  Every function
 * logs its own error naming the image and returns -errno. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct fat_fs;

struct fat_stat {
        bool is_dir;
        uint32_t size;
        uint32_t first_cluster;
        char short_name[13]; /* "CMDLINE.TXT" */
};

/* name: used in error messages ("out.img: boot partition: ...").  offset and
 * size: the partition window in bytes.  The fd stays owned by the caller. */
int fat_open(int fd, uint64_t offset, uint64_t size, const char *name, struct fat_fs **ret);
/* Flushes every FAT copy and FSInfo, then frees.  fs may be NULL. */
int fat_close(struct fat_fs *fs);

int fat_stat(struct fat_fs *fs, const char *path, struct fat_stat *st); /* -ENOENT when absent */
int fat_read(struct fat_fs *fs, const char *path, uint8_t **data, size_t *len);
/* Create, or replace an existing file in place (its directory entry and
 * existing name - even an 8.3-only upper-case one - are kept).  The parent
 * directory must exist. */
int fat_write(struct fat_fs *fs, const char *path, const void *data, size_t len, time_t mtime);
/* mkdir -p */
int fat_mkdir(struct fat_fs *fs, const char *path, time_t mtime);
int fat_unlink(struct fat_fs *fs, const char *path); /* files and empty directories */
/* Calls fn for each entry of a directory (long name when present). */
int fat_list(struct fat_fs *fs, const char *path, int (*fn)(const char *name, const struct fat_stat *st, void *u),
             void *userdata);
/* What fat_write of each file, in order, would take beyond what the base
 * gives them: *clusters for their data and the directory growth of new
 * names (compare with fat_free_bytes), or the refusal fat_write would give
 * (a directory in a file's place, FAT16's full root directory).  Only the
 * root directory's growth is counted. */
struct fat_planned {
        const char *path;
        size_t len;
};
int fat_check_writes(struct fat_fs *fs, const struct fat_planned *v, size_t n, uint64_t *clusters);
uint64_t fat_free_bytes(const struct fat_fs *fs);
uint32_t fat_cluster_bytes(const struct fat_fs *fs);
/* For a filesystem being written: what fsck.fat -n fails on in a base
 * whose files are intact is put right at fat_close, even when no cluster
 * changes hands: an FSInfo free count that is not the real one, and FAT
 * copies that differ from the active one (they get its sectors). */
int fat_settle(struct fat_fs *fs);
unsigned fat_bits(const struct fat_fs *fs); /* 16 or 32 */
