/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The partition table (libparted) and what is in each partition (libblkid):
 * find the boot (vfat) and root (ext4) partitions of a Raspberry-Pi-OS-shaped
 * image, and refuse anything else clearly. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define DISK_MAX_PARTS 16

struct disk_part {
        unsigned number;   /* 1-based, as in /dev/mmcblk0p<N> */
        uint64_t start;    /* in 512-byte sectors */
        uint64_t sectors;  /* in 512-byte sectors */
        uint8_t mbr_type;  /* 0x0c, 0x83, ... (0 for GPT) */
        char fs_type[16];  /* blkid TYPE: "vfat", "ext4", "" when unknown */
        char fs_version[16];
        char label[64];
        char uuid[64];
        char partuuid[64]; /* "2a7c1d5e-02" */
};

struct disk_layout {
        char table[8];     /* "dos" */
        char disk_id[40];  /* PTUUID, "2a7c1d5e" */
        uint64_t image_bytes;
        unsigned n;
        struct disk_part parts[DISK_MAX_PARTS];
        int boot;          /* index into parts of the vfat partition, -1 if none */
        int root;          /* index of the ext4 root partition, -1 if none */
};

/* Open an image file read-only (path; messages name it name), refusing a
 * directory.  Returns the fd or a logged -errno. */
struct stat;
int disk_open_image(const char *path, const char *name, struct stat *st);

/* Probe an image file (path for messages and libparted, fd for blkid).
 * Logs and returns -errno for anything that is not RasPiOS-shaped. */
int disk_probe(const char *image, struct disk_layout *ret);
/* Like disk_probe but only reports, never refuses on shape (inspect). */
int disk_probe_any(const char *image, struct disk_layout *ret);
/* disk_probe on path (e.g. the temporary copy of the base), naming the file
 * the user gave (the base) in messages. */
int disk_probe_named(const char *path, const char *name, struct disk_layout *ret);
/* disk_probe_any on path (e.g. a decompressed temporary), naming the file
 * the user gave in messages. */
int disk_probe_any_named(const char *path, const char *name, struct disk_layout *ret);
static inline uint64_t disk_part_offset(const struct disk_part *p) { return p->start * 512; }
static inline uint64_t disk_part_bytes(const struct disk_part *p) { return p->sectors * 512; }

/* Enlarge the image file to new_image_bytes and move the end of the last
 * partition (which must be the root partition) to the end of the image,
 * rewriting only that MBR entry so the disk id and boot code survive. */
int disk_grow_last(const char *image, const char *name, struct disk_layout *l, uint64_t new_image_bytes);
/* disk_grow_last's refusals alone (a dry run's), naming name. */
int disk_grow_check(const char *name, const struct disk_layout *l, uint64_t new_image_bytes);
