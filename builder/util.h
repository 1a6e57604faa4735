/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Small helpers every module uses: allocation that aborts on OOM, explicit
 * little-endian access for on-disk structures, a growable byte buffer, and
 * full-length I/O.  Nothing here logs: callers own their error messages. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _packed_ __attribute__((packed))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define DIV_ROUND_UP(a, b) (((a) + (b)-1) / (b))

/* Abort only on out-of-memory: there is nothing sensible left to do. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
void *xmemdup(const void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) _printf_(1, 2);

static inline void freep(void *p) { free(*(void **)p); }
#define _cleanup_free_ _cleanup_(freep)
/* A secret's string (a password, a key) wiped before it is freed; NULL is fine. */
void free_secret(char *s);
static inline void free_secretp(char **s) { free_secret(*s); }
#define _cleanup_free_secret_ _cleanup_(free_secretp)
void closep(int *fd);

/* A growable array of owned strings: push copies s; clear frees every one
 * and the array, and leaves both empty. */
void strv_push(char ***v, size_t *n, const char *s);
void strv_clear(char ***v, size_t *n);
/* strv_clear for strings that may hold a secret (KEY=VALUE assignments) */
void strv_clear_secret(char ***v, size_t *n);
#define _cleanup_close_ _cleanup_(closep)

static inline uint16_t get_le16(const void *p) {
        const uint8_t *b = p;
        return (uint16_t)(b[0] | b[1] << 8);
}
static inline uint32_t get_le32(const void *p) {
        const uint8_t *b = p;
        return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
/* network order: SSH's wire format */
static inline uint32_t get_be32(const void *p) {
        const uint8_t *b = p;
        return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}
static inline uint64_t get_le64(const void *p) {
        return (uint64_t)get_le32(p) | (uint64_t)get_le32((const uint8_t *)p + 4) << 32;
}
static inline void put_le16(void *p, uint16_t v) {
        uint8_t *b = p;
        b[0] = (uint8_t)v;
        b[1] = (uint8_t)(v >> 8);
}
static inline void put_le32(void *p, uint32_t v) {
        uint8_t *b = p;
        b[0] = (uint8_t)v;
        b[1] = (uint8_t)(v >> 8);
        b[2] = (uint8_t)(v >> 16);
        b[3] = (uint8_t)(v >> 24);
}
static inline void put_le64(void *p, uint64_t v) {
        put_le32(p, (uint32_t)v);
        put_le32((uint8_t *)p + 4, (uint32_t)(v >> 32));
}

/* A growable byte buffer; data is always NUL-terminated for convenience. */
struct buf {
        uint8_t *data;
        size_t len, cap;
        /* a secret's bytes: the block a growth leaves behind is wiped, and
         * buf_free wipes too (set it before the first byte goes in) */
        bool secret;
};
void buf_append(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) _printf_(2, 3);
void buf_free(struct buf *b);
/* buf_free for a secret's bytes: wiped first (what a growth left behind is
 * wiped only when b->secret was set before it grew). */
void buf_free_secret(struct buf *b);
/* Hand the bytes over to the caller (who frees them) and reset b. */
uint8_t *buf_steal(struct buf *b, size_t *len);

/* Whole-file read, refusing files larger than max bytes (-EFBIG). -errno. */
int read_file(const char *path, size_t max, uint8_t **data, size_t *len);
/* The same for a file only this program writes (the cache's): anything but
 * a regular file (a FIFO, a symlink, a device) is -EINVAL (-EISDIR for a
 * directory), refused without waiting on it. */
int read_regular_file(const char *path, size_t max, uint8_t **data, size_t *len);
int pread_full(int fd, void *buf, size_t n, uint64_t off);
/* Into the page cache in pieces of at most this much, where a write is
 * small or not worth measuring (a large copy chooses its own, writepiece.c).
 * Linux 6.x gives ext4 large folios for large writes, and on some of this
 * project's VMs the copy into fresh high-order pages is slow: writing 1.4 GB
 * took 0.8-2.3 s of system time in 4 MiB writes and 0.33-0.37 s in 32 KiB
 * ones (64 KiB ones were already slow).  bench/README.md has the
 * measurements. */
#define WRITE_PIECE (32u << 10)

/* pwrite_full writes in WRITE_PIECE pieces; pwrite_pieces chooses the piece
 * (SIZE_MAX: whole, see source_opts.cloned). */
int pwrite_full(int fd, const void *buf, size_t n, uint64_t off);
int pwrite_pieces(int fd, const void *buf, size_t n, uint64_t off, size_t piece);
int write_full(int fd, const void *buf, size_t n);

/* What to do next after a write or sync of an output failed with err
 * (errno, either sign): for a full filesystem or quota, or a file too large
 * for it (EFBIG), a hint to append
 * to the error, else "". */
const char *write_hint(int err);
/* The same for a scratch file in $TMPDIR (inspect's decompressed image),
 * which no -o places: TMPDIR is what to change. */
/* write_hint's, for a write that edits the image being built: the
 * message names the base (the image as the user knows it), so the full
 * disk is said to be OUT's. */
const char *edit_write_hint(int err);
const char *scratch_write_hint(int err);

/* Seconds on the monotonic clock: for durations (progress rates, --verbose
 * timings), which the wall clock's jumps must not disturb. */
double monotonic_s(void);

/* SOURCE_DATE_EPOCH when set and valid, else the current time; read once. */
time_t build_time(void);
bool source_date_epoch_set(void);
/* SOURCE_DATE_EPOCH's value when it is set (not empty) but not a number of
 * seconds since 1970, else NULL: a build refuses it rather than be quietly
 * not reproducible (reproducible-builds.org's specification says so too). */
const char *source_date_epoch_malformed(void);

bool str_has_suffix(const char *s, const char *suffix);
bool str_has_prefix(const char *s, const char *prefix);
/* "/a/b/c" -> "/a/b" (new string); "/a" -> "/". */
char *path_dirname(const char *path);
const char *path_basename(const char *path);
/* path as named in file (a --host or fleet file): a relative one is taken
 * from file's directory, as a user reading it would expect (caller frees). */
char *path_relative_to(const char *file, const char *path);
/* true if the memory block is all zero bytes; fast for large aligned blocks */
bool mem_is_zero(const void *p, size_t n);
/* Parse "512M", "2G", "1048576" (binary units) into bytes; -EINVAL when malformed. */
int parse_size(const char *s, uint64_t *bytes);
/* Format bytes as "1.5 GiB" into out. */
void format_size(uint64_t bytes, char out[32]);

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 when it is
 * not one: a stray continuation byte, a truncated sequence, an overlong
 * form, a surrogate (U+D800-DFFF) or a code point past U+10FFFF.  JSON and a
 * terminal both need exactly this much to be true of a byte string. */
size_t utf8_len(const unsigned char *s, size_t n);

/* For text from outside (an image's labels and os-release, archive entry
 * names, sysfs) about to reach a terminal: every byte of a control
 * character (C0, DEL, C1 such as U+009B, a CSI) or of an invalid UTF-8
 * sequence becomes '?', in place, so no escape sequence gets through;
 * tabs and valid printable UTF-8 stay. */
void str_printable(char *s);

/* Whether path (not followed) is still the file of that device and inode,
 * the one a run renamed there (another run may have replaced it since).
 * Only lstat: safe in a signal handler. */
bool path_is(const char *path, dev_t dev, ino_t ino);

/* Temporaries a process killed outright (SIGKILL, the OOM killer, a power
 * cut) left: a live one holds an flock on each temporary it writes
 * (temp_lock, released when fd closes).  sweep_stale removes the regular
 * files of this user in dir that match(name, arg), untouched for min_age
 * seconds and not locked, passing each to removed(); returns how many.
 * Best effort. */
void temp_lock(int fd);
unsigned sweep_stale(const char *dir, bool (*match)(const char *name, const void *arg), const void *arg, time_t min_age,
                 void (*removed)(const char *dir, const char *name, uint64_t bytes));
