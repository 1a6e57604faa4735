/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Apply a sorted payload to the image: boot entries through fat.c, root
 * entries through ext4.c.  Checks room first and grows the root partition
 * and filesystem when allowed. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "disk.h"
#include "ext4.h"
#include "payload.h"

struct apply_opts {
        const char *image;      /* temporary output file (path for libext2fs) */
        int fd;                 /* same file, for the FAT code */
        const char *name;       /* what messages call the image: the base it was copied from */
        time_t mtime;
        uint64_t grow;          /* explicit extra bytes for the root fs (0: automatic) */
        bool no_grow;           /* refuse instead of growing */
};

/* Files the plan needs from the base, read once (NULL when absent). */
struct base_files;
int apply_read_base(const struct apply_opts *o, const struct disk_layout *l, struct base_files *bf);
void base_files_free(struct base_files *bf);

int apply_payload(const struct apply_opts *o, struct disk_layout *l, const struct payload *p);
/* What apply_payload would refuse, found without writing (a dry run, on
 * the base itself): room in either partition, the base's immutable or
 * append-only files and directories it would change, symlink targets the
 * plan needs in the base.  *grow: bytes the root filesystem would grow by. */
int apply_check(const struct apply_opts *o, const struct disk_layout *l, const struct payload *p, uint64_t *grow);

/* Where len bytes of a root filesystem file (from off) lie in the image,
 * once the payload is in: see ext4_map. */
int apply_locate(const struct apply_opts *o, const struct disk_layout *l, const char *path, uint64_t off,
                 uint64_t len, struct ext4_span *v, size_t max, size_t *n);
