/* SPDX-License-Identifier: GPL-3.0-or-later */
/* What fat.c (clusters, directories, files) and fat_volume.c (boot
 * sector, FSInfo, the FAT's copies, open and close) share.  Not for other
 * modules: they see fat.h. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fat.h"
#include "util.h"

struct fat_fs {
        int fd;
        uint64_t off, size;
        char *name;
        unsigned bits;
        uint32_t bps, spc, cs; /* bytes/sector, sectors/cluster, bytes/cluster */
        uint32_t fat_start, fat_sectors, nfats;
        bool mirror;         /* FAT32 ext_flags bit 7 clear: all copies in use */
        uint32_t active_fat; /* the copy read */
        uint32_t root_sector, root_entries; /* FAT16 fixed root */
        uint32_t root_cluster;              /* FAT32 */
        uint64_t data_sector;
        uint32_t nclusters; /* valid cluster numbers: 2 .. nclusters+1 */
        uint8_t *fat;       /* first fat_nsect sectors of the active FAT */
        uint32_t fat_nsect;
        uint8_t *fat_dirty; /* one flag per loaded FAT sector */
        uint32_t free, hint;
        bool changed;
        uint32_t fsinfo_sector;
        uint8_t *fsinfo; /* NULL unless present and valid */
};

/* Reads and writes inside the partition's window, bounded by it and
 * logged on failure. */
int fat_win_read(struct fat_fs *fs, void *buf, size_t n, uint64_t off);
int fat_win_write(struct fat_fs *fs, const void *buf, size_t n, uint64_t off);

static inline bool fat_cluster_valid(const struct fat_fs *fs, uint32_t c) { return c >= 2 && c - 2 < fs->nclusters; }

static inline uint32_t fat_get(const struct fat_fs *fs, uint32_t c) {
        if (fs->bits == 16)
                return get_le16(fs->fat + (size_t)c * 2);
        return get_le32(fs->fat + (size_t)c * 4) & 0x0FFFFFFFu;
}
