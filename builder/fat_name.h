/* SPDX-License-Identifier: GPL-3.0-or-later */
/* FAT directory entries and their names, for fat.c: the on-disk 8.3 and LFN
 * entry layouts, UTF-8 <-> UTF-16, 8.3 names and their case flags, unique
 * "LONGFI~1.TXT" aliases, LFN checksums, and decoding a directory's entries
 * with their long names.  No I/O: everything works on directory bytes held
 * in memory. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct fat_dirent {
        uint8_t name[11];
        uint8_t attr;
        uint8_t nt_flags;
        uint8_t ctime_tenth;
        uint8_t ctime[2];
        uint8_t cdate[2];
        uint8_t adate[2];
        uint8_t cluster_hi[2];
        uint8_t mtime[2];
        uint8_t mdate[2];
        uint8_t cluster_lo[2];
        uint8_t size[4];
} _packed_;
_Static_assert(sizeof(struct fat_dirent) == 32, "directory entry is 32 bytes");

struct fat_lfn {
        uint8_t ord;
        uint8_t name1[10];
        uint8_t attr;
        uint8_t type;
        uint8_t checksum;
        uint8_t name2[12];
        uint8_t cluster[2];
        uint8_t name3[4];
} _packed_;
_Static_assert(sizeof(struct fat_lfn) == 32, "LFN entry is 32 bytes");

#define ATTR_READONLY 0x01
#define ATTR_HIDDEN 0x02
#define ATTR_SYSTEM 0x04
#define ATTR_VOLUME 0x08
#define ATTR_DIR 0x10
#define ATTR_ARCHIVE 0x20
#define ATTR_LFN 0x0F
#define NT_LOWER_BASE 0x08
#define NT_LOWER_EXT 0x10
#define LFN_LAST 0x40
#define DELETED 0xE5
#define LFN_MAX 255 /* UTF-16 units */
#define LFN_MAX_ENTRIES 20
#define NAME_MAX_UTF8 (LFN_MAX * 3 + 1)

/* One directory entry as found by fat_dent_next(). */
struct fat_dent {
        size_t idx;     /* the 8.3 entry */
        size_t lfn_idx; /* first LFN entry, == idx when there is none */
        char long_name[NAME_MAX_UTF8];
        char short_name[13]; /* raw: "CMDLINE.TXT" */
        char display[13];    /* with the NT lower-case flags applied */
        uint8_t attr;
        uint32_t cluster, size;
};

/* ASCII-only case folding, as FAT's own upper-casing of 8.3 names. */
int fat_name_casecmp(const char *a, const char *b);
uint8_t fat_lfn_checksum(const uint8_t name[11]);
/* Lone surrogates become U+FFFD; output truncated to outsz (NUL included). */
void fat_utf16_to_utf8(const uint16_t *in, size_t n, char *out, size_t outsz);
/* Strict UTF-8 -> UTF-16; -EINVAL on malformed input or more than max units. */
int fat_utf8_to_utf16(const char *s, uint16_t *out, size_t max, size_t *n);
/* "CMDLINE.TXT" from the raw 11 bytes; apply_case: honour the NT flags. */
void fat_short_format(const uint8_t raw[11], uint8_t nt, char out[13], bool apply_case);

/* Next live entry of the directory bytes data[0..len) at or after *pos, with
 * its long name when the LFN entries before it are complete and their
 * checksum matches.  Returns 1, or 0 at the end.  Orphaned or broken LFN
 * entries are ignored. */
int fat_dent_next(const uint8_t *data, size_t len, size_t *pos, struct fat_dent *e);
bool fat_dent_is_dot(const struct fat_dent *e);
/* Case-insensitive match against the long or the 8.3 name. */
bool fat_dent_matches(const struct fat_dent *e, const char *name);

/* How a new name is stored in a directory whose bytes are data[0..len):
 * raw 8.3 name (an alias when needed), NT case flags, and nlfn LFN entries
 * (0 when the name fits 8.3 as is) written into lfn.  Logs (naming fsname
 * and path) and returns -errno for a name FAT cannot hold. */
int fat_name_encode(const char *fsname, const char *path, const char *name, const uint8_t *data, size_t len,
                    uint8_t raw[11], uint8_t *nt, struct fat_lfn lfn[LFN_MAX_ENTRIES], size_t *nlfn);
/* Only the checks of fat_name_encode(), for use before allocating anything. */
int fat_name_validate(const char *fsname, const char *path, const char *name);
