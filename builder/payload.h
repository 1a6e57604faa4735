/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The payload: everything a build puts into the image, as a sorted list of
 * entries.  plan.c produces it without touching any image; apply.c hands each
 * entry to fat.c (boot partition) or ext4.c (root partition). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum part { PART_BOOT = 1, PART_ROOT = 2 };
enum entry_type { ENTRY_DIR, ENTRY_FILE, ENTRY_SYMLINK, ENTRY_UNLINK };

struct payload_entry {
        enum part part;
        char *path;           /* absolute inside its filesystem, "/etc/hostname" */
        enum entry_type type;
        uint32_t mode;        /* permission bits only (07777) */
        uint32_t uid, gid;
        uint8_t *data;        /* ENTRY_FILE content when source is NULL */
        size_t len;
        char *source;         /* ENTRY_FILE: copy this host file instead of data */
        char *target;         /* ENTRY_SYMLINK */
        bool secret;          /* never logged, dumped or put on the FAT partition */
        bool own_dir;         /* ENTRY_DIR: dimimage's, so one already in the base gets this mode
                               * and owner too (a world-writable one would let anyone swap the
                               * files root reads there); else an existing one is left alone */
        /* ENTRY_SYMLINK: the target must be in the base; static text saying
         * what to check when it is not.  NULL: any target. */
        const char *target_hint;
        /* ...and who asked for that target ("host.yml:22", "--timezone"),
         * named by the refusal in place of the base; NULL: the base. */
        char *target_where;
};

struct payload {
        struct payload_entry *v;
        size_t n, cap;
        /* Where in PLAN_MANIFEST's content the base's sha256 is still to be
         * filled in (plan_input.base_sha256_pending), or 0. */
        size_t pending_sum_at;
};

/* Adding a path that is already present replaces the earlier entry, so later
 * layers (profile overlay, then host settings) override earlier ones. */
struct payload_entry *payload_add_file(struct payload *p, enum part part, const char *path, uint32_t mode,
                                       uint32_t uid, uint32_t gid, const void *data, size_t len);
struct payload_entry *payload_add_file_from(struct payload *p, enum part part, const char *path, uint32_t mode,
                                            uint32_t uid, uint32_t gid, const char *source);
struct payload_entry *payload_add_dir(struct payload *p, enum part part, const char *path, uint32_t mode,
                                      uint32_t uid, uint32_t gid);
struct payload_entry *payload_add_symlink(struct payload *p, enum part part, const char *path, const char *target);
/* Another payload's entry, taken over (from is left empty): replaces p's
 * entry at its path, as an add would. */
struct payload_entry *payload_move(struct payload *p, struct payload_entry *from);
struct payload_entry *payload_add_unlink(struct payload *p, enum part part, const char *path);
const struct payload_entry *payload_find(const struct payload *p, enum part part, const char *path);

/* Copy a host directory tree (an overlay) to dest in part, keeping permission
 * bits; files and dirs are owned uid:gid.  Refuses symlinks that escape the
 * tree and anything but regular files, dirs and symlinks.  Logs, -errno. */
int payload_add_tree(struct payload *p, enum part part, const char *hostdir, const char *dest, uint32_t uid,
                     uint32_t gid);

/* Deterministic order: partition, then path with '/' sorting before every
 * other byte, so a directory always precedes its contents. */
void payload_sort(struct payload *p);
/* Total bytes of file content (for room estimates). */
uint64_t payload_bytes(const struct payload *p, enum part part);
/* One line per entry, content as sha256 (secret files as "<secret>"): the
 * golden-file form used by tests and --dry-run. */
void payload_dump(const struct payload *p, FILE *f);
void payload_free(struct payload *p);
/* Drop every entry at or below path in part. */
void payload_remove_tree(struct payload *p, enum part part, const char *path);

/* Validate a path for the payload: absolute, no "." or ".." components, no
 * empty components, no NUL.  Returns false when unsafe. */
bool payload_path_ok(const char *path);
