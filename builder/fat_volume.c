/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The FAT volume as a whole: its boot sector read and checked, its
 * window's I/O, FSInfo kept true, the FAT's copies made to agree, and the
 * changed FAT sectors written to every copy on close. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fat_private.h"
#include "log.h"
#include "util.h"

struct fat_bpb {
        uint8_t jump[3];
        char oem[8];
        uint8_t bytes_per_sector[2];
        uint8_t sectors_per_cluster;
        uint8_t reserved_sectors[2];
        uint8_t num_fats;
        uint8_t root_entries[2];
        uint8_t total_sectors16[2];
        uint8_t media;
        uint8_t fat_size16[2];
        uint8_t sectors_per_track[2];
        uint8_t num_heads[2];
        uint8_t hidden_sectors[4];
        uint8_t total_sectors32[4];
} _packed_;
_Static_assert(sizeof(struct fat_bpb) == 36, "BPB is 36 bytes");

struct fat32_ext {
        uint8_t fat_size32[4];
        uint8_t ext_flags[2];
        uint8_t version[2];
        uint8_t root_cluster[4];
        uint8_t fsinfo_sector[2];
        uint8_t backup_boot_sector[2];
        uint8_t reserved[12];
        uint8_t drive_number;
        uint8_t reserved1;
        uint8_t boot_signature;
        uint8_t volume_id[4];
        char volume_label[11];
        char fs_type[8];
} _packed_;
_Static_assert(sizeof(struct fat_bpb) + sizeof(struct fat32_ext) == 90, "FAT32 BPB is 90 bytes");

struct fat_fsinfo {
        uint8_t lead_sig[4];
        uint8_t reserved1[480];
        uint8_t struct_sig[4];
        uint8_t free_count[4];
        uint8_t next_free[4];
        uint8_t reserved2[12];
        uint8_t trail_sig[4];
} _packed_;
_Static_assert(sizeof(struct fat_fsinfo) == 512, "FSInfo is 512 bytes");
#define FSINFO_LEAD 0x41615252u
#define FSINFO_STRUCT 0x61417272u
#define FSINFO_TRAIL 0xAA550000u

int fat_win_read(struct fat_fs *fs, void *buf, size_t n, uint64_t off) {
        if (off > fs->size || n > fs->size - off)
                return log_error(EINVAL, fs->name, "read of %zu bytes at %" PRIu64 " is outside the partition", n, off);
        int r = pread_full(fs->fd, buf, n, fs->off + off);
        if (r < 0)
                return log_error(r, fs->name, "cannot read %zu bytes at partition offset %" PRIu64 ": %s", n, off,
                                 strerror(-r));
        return 0;
}

int fat_win_write(struct fat_fs *fs, const void *buf, size_t n, uint64_t off) {
        if (off > fs->size || n > fs->size - off)
                return log_error(EIO, fs->name, "refusing to write %zu bytes at %" PRIu64 " outside the partition", n,
                                 off);
        int r = pwrite_full(fs->fd, buf, n, fs->off + off);
        if (r < 0)
                return log_error(r, fs->name, "boot partition: cannot write %zu bytes at partition offset %" PRIu64
                                 ": %s%s", n, off, strerror(-r), edit_write_hint(r));
        return 0;
}

/* A FAT copy that differs from the active one makes fsck.fat -n fail
 * ("FATs differ") although nothing is lost: the copies are only ever made
 * to agree by a write, which touches the sectors it changes.  Every sector
 * of another copy that differs gets the active one's at fat_close, as
 * fsck.fat itself would repair it ("Using first FAT"): the active copy is
 * the one every read here went by. */
static int settle_copies(struct fat_fs *fs) {
        enum { CHUNK = 64 };
        _cleanup_free_ uint8_t *buf = xmalloc((size_t)CHUNK * fs->bps);
        for (uint32_t k = 0; k < fs->nfats; k++) {
                if (k == fs->active_fat)
                        continue;
                for (uint32_t s = 0; s < fs->fat_nsect; s += CHUNK) {
                        uint32_t n = MIN((uint32_t)CHUNK, fs->fat_nsect - s);
                        uint64_t sector = (uint64_t)fs->fat_start + (uint64_t)k * fs->fat_sectors + s;
                        int r = fat_win_read(fs, buf, (size_t)n * fs->bps, sector * fs->bps);
                        if (r < 0)
                                return r;
                        for (uint32_t i = 0; i < n; i++)
                                if (memcmp(buf + (size_t)i * fs->bps, fs->fat + (size_t)(s + i) * fs->bps, fs->bps)) {
                                        fs->fat_dirty[s + i] = 1;
                                        fs->changed = true;
                                }
                }
        }
        return 0;
}

int fat_settle(struct fat_fs *fs) {
        if (fs->fsinfo && get_le32(((const struct fat_fsinfo *)fs->fsinfo)->free_count) != fs->free)
                fs->changed = true;
        return settle_copies(fs);
}

unsigned fat_bits(const struct fat_fs *fs) { return fs->bits; }

/* ---- open / close ---- */

static bool is_pow2(uint32_t v) { return v && !(v & (v - 1)); }

static int parse_boot(struct fat_fs *fs, const uint8_t *boot) {
        const struct fat_bpb *b = (const void *)boot;
        const struct fat32_ext *x = (const void *)(boot + sizeof *b);
        if (!memcmp(b->oem, "EXFAT   ", 8))
                return log_error(ENOTSUP, fs->name, "boot partition is exFAT; only FAT16 and FAT32 are supported");
        if (get_le16(boot + 510) != 0xAA55)
                return log_error(EINVAL, fs->name, "no FAT boot sector (signature 0x55AA missing)");
        fs->bps = get_le16(b->bytes_per_sector);
        fs->spc = b->sectors_per_cluster;
        if (fs->bps < 512 || fs->bps > 4096 || !is_pow2(fs->bps))
                return log_error(EINVAL, fs->name, "invalid FAT bytes per sector %" PRIu32, fs->bps);
        if (!is_pow2(fs->spc) || fs->bps * fs->spc > 65536)
                return log_error(EINVAL, fs->name, "invalid FAT sectors per cluster %" PRIu32, fs->spc);
        fs->cs = fs->bps * fs->spc;
        fs->fat_start = get_le16(b->reserved_sectors);
        fs->nfats = b->num_fats;
        if (fs->fat_start == 0 || fs->nfats == 0)
                return log_error(EINVAL, fs->name, "invalid FAT boot sector: %s", fs->fat_start ? "no FAT" : "no reserved sectors");
        fs->root_entries = get_le16(b->root_entries);
        uint64_t total = get_le16(b->total_sectors16) ? get_le16(b->total_sectors16) : get_le32(b->total_sectors32);
        fs->fat_sectors = get_le16(b->fat_size16) ? get_le16(b->fat_size16) : get_le32(x->fat_size32);
        uint64_t root_sectors = DIV_ROUND_UP((uint64_t)fs->root_entries * 32, fs->bps);
        fs->root_sector = fs->fat_start + fs->nfats * fs->fat_sectors;
        fs->data_sector = (uint64_t)fs->fat_start + (uint64_t)fs->nfats * fs->fat_sectors + root_sectors;
        if (fs->fat_sectors == 0 || total <= fs->data_sector)
                return log_error(EINVAL, fs->name, "invalid FAT boot sector: no room for data clusters");
        if (total * fs->bps > fs->size)
                return log_error(EINVAL, fs->name,
                                 "FAT filesystem (%" PRIu64 " bytes) is larger than its partition (%" PRIu64 " bytes)",
                                 total * fs->bps, fs->size);
        uint64_t clusters = (total - fs->data_sector) / fs->spc;
        /* FAT32 is the boot sector without a 16-bit FAT size, as Linux's
         * vfat, fsck.fat and mtools decide: mkfs.fat -F 32 on a small
         * partition makes one with fewer than 65525 clusters, which
         * Microsoft's rule (the cluster count alone) would call FAT16.
         * Otherwise the count tells FAT12 from FAT16. */
        fs->bits = get_le16(b->fat_size16) == 0 ? 32 : 16;
        if (fs->bits == 16 && clusters < 4085)
                return log_error(ENOTSUP, fs->name, "boot partition is FAT12; only FAT16 and FAT32 are supported");
        if (fs->bits == 16 && clusters >= 65525)
                return log_error(EINVAL, fs->name, "invalid FAT16 boot sector: %" PRIu64 " clusters, more than FAT16 has",
                                 clusters);
        if (fs->bits == 32 && clusters > 0x0FFFFFF5u)
                return log_error(EINVAL, fs->name, "invalid FAT32: too many clusters");
        fs->nclusters = (uint32_t)clusters;
        if (fs->bits == 16) {
                if (fs->root_entries == 0)
                        return log_error(EINVAL, fs->name, "invalid FAT16 boot sector: no root directory");
        } else {
                if (fs->root_entries != 0)
                        return log_error(EINVAL, fs->name, "invalid FAT32 boot sector: it has a FAT16 root directory");
                uint16_t flags = get_le16(x->ext_flags);
                fs->mirror = !(flags & 0x80);
                fs->active_fat = fs->mirror ? 0 : (flags & 0x0F);
                if (fs->active_fat >= fs->nfats)
                        return log_error(EINVAL, fs->name, "invalid FAT32 boot sector: active FAT %" PRIu32 " of %" PRIu32,
                                         fs->active_fat, fs->nfats);
                fs->root_cluster = get_le32(x->root_cluster);
                if (!fat_cluster_valid(fs, fs->root_cluster))
                        return log_error(EINVAL, fs->name, "invalid FAT32 root cluster %" PRIu32, fs->root_cluster);
                fs->fsinfo_sector = get_le16(x->fsinfo_sector);
        }
        if (fs->bits == 16)
                fs->mirror = true;
        if ((uint64_t)fs->fat_sectors * fs->bps < ((uint64_t)fs->nclusters + 2) * (fs->bits / 8))
                return log_error(EINVAL, fs->name, "invalid FAT boot sector: FAT too small for %" PRIu32 " clusters",
                                 fs->nclusters);
        return 0;
}

int fat_open(int fd, uint64_t offset, uint64_t size, const char *name, struct fat_fs **ret) {
        struct fat_fs *fs = xcalloc(1, sizeof *fs);
        fs->fd = fd;
        fs->off = offset;
        fs->size = size;
        fs->name = xstrdup(name ? name : "FAT");
        uint8_t boot[512];
        int r;
        if (size < sizeof boot)
                r = log_error(EINVAL, fs->name, "partition too small for a FAT filesystem (%" PRIu64 " bytes)", size);
        else
                r = fat_win_read(fs, boot, sizeof boot, 0);
        if (r >= 0)
                r = parse_boot(fs, boot);
        if (r < 0)
                goto fail;
        fs->fat_nsect = (uint32_t)DIV_ROUND_UP(((uint64_t)fs->nclusters + 2) * (fs->bits / 8), fs->bps);
        fs->fat = xmalloc((size_t)fs->fat_nsect * fs->bps);
        fs->fat_dirty = xcalloc(fs->fat_nsect, 1);
        r = fat_win_read(fs, fs->fat, (size_t)fs->fat_nsect * fs->bps,
                     ((uint64_t)fs->fat_start + (uint64_t)fs->active_fat * fs->fat_sectors) * fs->bps);
        if (r < 0)
                goto fail;
        for (uint32_t c = 2; c - 2 < fs->nclusters; c++)
                if (fat_get(fs, c) == 0)
                        fs->free++;
        fs->hint = 1; /* the search starts after the hint: cluster 2 first */
        if (fs->bits == 32 && fs->fsinfo_sector >= 1 && fs->fsinfo_sector < fs->fat_start) {
                fs->fsinfo = xmalloc(fs->bps);
                r = fat_win_read(fs, fs->fsinfo, fs->bps, (uint64_t)fs->fsinfo_sector * fs->bps);
                if (r < 0)
                        goto fail;
                const struct fat_fsinfo *fi = (const void *)fs->fsinfo;
                if (get_le32(fi->lead_sig) != FSINFO_LEAD || get_le32(fi->struct_sig) != FSINFO_STRUCT ||
                    get_le32(fi->trail_sig) != FSINFO_TRAIL) {
                        free(fs->fsinfo);
                        fs->fsinfo = NULL;
                } else if (fat_cluster_valid(fs, get_le32(fi->next_free))) {
                        fs->hint = get_le32(fi->next_free);
                }
        }
        *ret = fs;
        return 0;
fail:
        fat_close(fs);
        return r;
}

static int flush(struct fat_fs *fs) {
        if (!fs->changed)
                return 0;
        /* FAT32 with mirroring off (ext_flags) keeps only its active FAT, by
         * the spec; but Linux's vfat and fsck.fat ignore the flag and read
         * FAT #0.  So every copy gets the whole active FAT (flush runs once,
         * at fat_close), and whoever reads finds the files written. */
        if (!fs->mirror)
                memset(fs->fat_dirty, 1, fs->fat_nsect);
        for (uint32_t s = 0; s < fs->fat_nsect; s++) {
                if (!fs->fat_dirty[s])
                        continue;
                for (uint32_t k = 0; k < fs->nfats; k++) {
                        uint64_t sector = (uint64_t)fs->fat_start + (uint64_t)k * fs->fat_sectors + s;
                        int r = fat_win_write(fs, fs->fat + (size_t)s * fs->bps, fs->bps, sector * fs->bps);
                        if (r < 0)
                                return r;
                }
                fs->fat_dirty[s] = 0;
        }
        if (fs->fsinfo) {
                struct fat_fsinfo *fi = (void *)fs->fsinfo;
                put_le32(fi->free_count, fs->free);
                if (fs->hint >= 2)
                        put_le32(fi->next_free, fs->hint);
                int r = fat_win_write(fs, fs->fsinfo, sizeof *fi, (uint64_t)fs->fsinfo_sector * fs->bps);
                if (r < 0)
                        return r;
        }
        fs->changed = false;
        return 0;
}

int fat_close(struct fat_fs *fs) {
        if (!fs)
                return 0;
        int r = fs->fat ? flush(fs) : 0;
        free(fs->fat);
        free(fs->fat_dirty);
        free(fs->fsinfo);
        free(fs->name);
        free(fs);
        return r;
}
