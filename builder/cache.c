/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hash.h"
#include "log.h"
#include "output.h"
#include "util.h"

/* Layout of the cache directory:
 *   ref-<sha256 of the key>   which base (by identity) decompresses to what
 *   base-<sha256>.img         a raw image, sparse, named by its content
 *   sum-<sha256 of the key>   the sha256 of a raw base (no image: the base
 *                             is its own copy), the key with its ctime
 *   tmp-XXXXXX                being written; renamed into place when done
 * Bases with identical content share one image. */

#define REF_MAX 8192

/* The cache directory; *home is $HOME when it is under it, else NULL. */
static char *cache_dir_in(const char **home) {
        const char *xdg = getenv("XDG_CACHE_HOME");
        *home = NULL;
        /* The XDG spec says relative values are to be ignored. */
        if (xdg && xdg[0] == '/')
                return xasprintf("%s/dimimage", xdg);
        const char *h = getenv("HOME");
        if (h && h[0] == '/') {
                *home = h;
                return xasprintf("%s/.cache/dimimage", h);
        }
        return NULL;
}

char *cache_dir(void) {
        const char *home;
        return cache_dir_in(&home);
}

uint64_t cache_max_bytes(uint64_t max) {
        if (max)
                return max;
        const char *env = getenv("DIMIMAGE_CACHE_MAX");
        uint64_t v;
        if (env && *env && parse_size(env, &v) == 0)
                return v;
        if (env && *env)
                log_warn("DIMIMAGE_CACHE_MAX", "'%s' is not a size (e.g. 20G); the default bound is used", env);
        return CACHE_DEFAULT_MAX;
}

/* Whether the cache directory may be trusted with what builds read back
 * from it: ours, and writable by no one else.  In a shared place
 * (XDG_CACHE_HOME=/tmp/x, made there by another user, or left writable)
 * anyone could put in an image with a ref naming that image's own sha256,
 * which the check before use passes: a build would then be made from it.
 * 0: trusted, or not there yet (cache_mkdir makes it 0700); -ENOTDIR or
 * -EPERM, said as a warning with warn (the lookup's; the store is silent
 * then), or -errno. */
static int dir_trusted(const char *dir, bool warn) {
        struct stat st;
        if (stat(dir, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISDIR(st.st_mode)) {
                if (warn)
                        log_warn(dir, "not used as the cache: it is not a directory (remove it, or point "
                                 "XDG_CACHE_HOME elsewhere)");
                return -ENOTDIR;
        }
        const char *why = st.st_uid != geteuid()             ? "another user owns it"
                          : st.st_mode & (S_IWGRP | S_IWOTH) ? "other users may write to it"
                                                             : NULL;
        if (!why)
                return 0;
        if (warn)
                log_warn(dir, "not used as the cache: %s, so what it holds cannot be trusted (make it yours with "
                         "mode 700, or point XDG_CACHE_HOME elsewhere)", why);
        return -EPERM;
}

/* The identity of a base file, hashed: no read of its contents needed.
 * With the ctime, which only a write moves: touch -d, cp -p and rsync -t
 * can put an mtime back, and a compressed base rewritten in place at the
 * same size and mtime would otherwise get the decoded copy of the old one
 * (checked against its own sha256, which it matches). */
static int base_key(const char *base, const struct stat *st, char key[65], char **real) {
        char *rp = realpath(base, NULL);
        if (!rp)
                return -errno;
        struct buf b = {0};
        buf_printf(&b, "%s\n%" PRIu64 " %lld.%09ld %" PRIu64 " %" PRIu64 " ctime %lld.%09ld", rp, (uint64_t)st->st_size,
                   (long long)st->st_mtim.tv_sec, (long)st->st_mtim.tv_nsec, (uint64_t)st->st_ino,
                   (uint64_t)st->st_dev, (long long)st->st_ctim.tv_sec, (long)st->st_ctim.tv_nsec);
        sha256_hex(b.data, b.len, key);
        buf_free(&b);
        *real = rp;
        return 0;
}

static bool is_hex64(const char *s) {
        if (strlen(s) != 64)
                return false;
        for (; *s; s++)
                if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
                        return false;
        return true;
}

struct ref {
        char key[65], sha256[65], format[16];
        uint64_t bytes;
        char source[PATH_MAX];
};

/* Parse "field value" lines; anything unexpected makes the ref invalid. */
static int ref_read(const char *path, struct ref *ref) {
        uint8_t *data;
        size_t len;
        int r = read_regular_file(path, REF_MAX, &data, &len);
        if (r < 0)
                return r;
        *ref = (struct ref){0};
        bool magic = false, have_bytes = false;
        char *save = NULL;
        for (char *line = strtok_r((char *)data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *v = strchr(line, ' ');
                if (!v)
                        continue;
                *v++ = 0;
                if (!strcmp(line, "dimimage-cache"))
                        magic = !strcmp(v, "1");
                else if (!strcmp(line, "key"))
                        snprintf(ref->key, sizeof(ref->key), "%s", v);
                else if (!strcmp(line, "sha256"))
                        snprintf(ref->sha256, sizeof(ref->sha256), "%s", v);
                else if (!strcmp(line, "format"))
                        snprintf(ref->format, sizeof(ref->format), "%s", v);
                else if (!strcmp(line, "source"))
                        snprintf(ref->source, sizeof(ref->source), "%s", v);
                else if (!strcmp(line, "bytes")) {
                        char *end;
                        errno = 0;
                        ref->bytes = strtoull(v, &end, 10);
                        have_bytes = !errno && !*end && end != v;
                }
        }
        free(data);
        if (!magic || !have_bytes || !is_hex64(ref->key) || !is_hex64(ref->sha256) || !ref->format[0])
                return -EBADMSG;
        return 0;
}

static bool cache_temp(const char *name, const void *arg) { return str_has_prefix(name, "tmp-"); }

static void report_removed(const char *dir, const char *name, uint64_t bytes) {
        log_debug("cache: removed %s/%s, left by an interrupted build", dir, name);
}

/* A build killed outright leaves its half-written tmp-XXXXXX, up to a whole
 * decompressed base.  A live one locks it (temp_lock); the minute, as for
 * an output's temporaries, covers the instant between its mkstemp and its
 * lock.  Swept at a hit as at a store, so the space comes back at the
 * next build that uses the cache. */
static void sweep_temps(const char *dir) { sweep_stale(dir, cache_temp, NULL, 60, report_removed); }

/* The ref (sum: the sum) naming base as it is now: 1 with *ref, its *path
 * and, unless real is NULL, the base's *real path set (caller frees), 0
 * when there is none. */
static int find_ref(const char *base, const struct stat *st, bool sum, struct ref *ref, char **path, char **real) {
        _cleanup_free_ char *dir = cache_dir();
        if (!dir || dir_trusted(dir, true) < 0)
                return 0;
        char key[65];
        _cleanup_free_ char *rp = NULL;
        if (base_key(base, st, key, &rp) < 0)
                return 0;
        char *p = xasprintf("%s/%s-%s", dir, sum ? "sum" : "ref", key);
        if (ref_read(p, ref) < 0 || strcmp(ref->key, key) != 0) {
                free(p);
                return 0;
        }
        *path = p;
        if (real) {
                *real = rp;
                rp = NULL;
        }
        return 1;
}

static void entry_from_ref(struct cache_entry *e, const struct ref *ref, char *image, char *path, bool is_base) {
        *e = (struct cache_entry){.image = image, .ref = path, .bytes = ref->bytes, .is_base = is_base};
        memcpy(e->sha256, ref->sha256, sizeof(e->sha256));
        snprintf(e->format, sizeof(e->format), "%s", ref->format);
}

int cache_lookup(const char *base, const struct stat *st, struct cache_entry *e) {
        *e = (struct cache_entry){0};
        struct ref ref;
        char *path;
        if (!find_ref(base, st, false, &ref, &path, NULL))
                return 0;
        _cleanup_free_ char *dir = path_dirname(path);
        char *image = xasprintf("%s/base-%s.img", dir, ref.sha256);
        struct stat ist;
        if (stat(image, &ist) < 0 || !S_ISREG(ist.st_mode) || (uint64_t)ist.st_size != ref.bytes) {
                free(image);
                free(path);
                return 0;
        }
        /* The image's mtime is its last use: eviction goes by it. */
        (void)utimensat(AT_FDCWD, image, NULL, 0);
        sweep_temps(dir);
        entry_from_ref(e, &ref, image, path, false);
        return 1;
}

int cache_lookup_sum(const char *base, const struct stat *st, struct cache_entry *e) {
        *e = (struct cache_entry){0};
        struct ref ref;
        char *path, *real;
        if (!find_ref(base, st, true, &ref, &path, &real))
                return 0;
        if (ref.bytes != (uint64_t)st->st_size) {
                free(real);
                free(path);
                return 0;
        }
        entry_from_ref(e, &ref, real, path, true);
        return 1;
}

void cache_discard(const struct cache_entry *e) {
        if (e->image && !e->is_base)
                (void)unlink(e->image);
        if (e->ref)
                (void)unlink(e->ref);
}

void cache_entry_free(struct cache_entry *e) {
        free(e->image);
        free(e->ref);
        *e = (struct cache_entry){0};
}

/* ---- eviction ---- */

struct image {
        char *name;
        uint64_t allocated, bytes;
        struct timespec used;
};

static int cmp_used(const void *a, const void *b) {
        const struct image *x = a, *y = b;
        if (x->used.tv_sec != y->used.tv_sec)
                return x->used.tv_sec < y->used.tv_sec ? -1 : 1;
        if (x->used.tv_nsec != y->used.tv_nsec)
                return x->used.tv_nsec < y->used.tv_nsec ? -1 : 1;
        return strcmp(x->name, y->name);
}

/* The cached images, least recently used first. */
static int list_images(const char *dir, struct image **ret, size_t *n) {
        DIR *d = opendir(dir);
        *ret = NULL;
        *n = 0;
        if (!d)
                return errno == ENOENT ? 0 : -errno;
        int dfd = dirfd(d);
        if (dfd < 0) {
                int r = -errno;
                closedir(d);
                return r;
        }
        size_t cap = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (!str_has_prefix(de->d_name, "base-") || !str_has_suffix(de->d_name, ".img"))
                        continue;
                struct stat st;
                if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                        continue;
                if (*n == cap) {
                        cap = cap ? 2 * cap : 16;
                        *ret = xrealloc(*ret, cap * sizeof(**ret));
                }
                (*ret)[(*n)++] = (struct image){
                        .name = xstrdup(de->d_name),
                        .allocated = (uint64_t)st.st_blocks * 512,
                        .bytes = (uint64_t)st.st_size,
                        .used = st.st_mtim,
                };
        }
        closedir(d);
        if (*n)
                qsort(*ret, *n, sizeof(**ret), cmp_used);
        return 0;
}

static void free_images(struct image *v, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(v[i].name);
        free(v);
}

/* Unlink the PREFIX-* files that keep() does not want; an unreadable one
 * is never wanted. */
static void prune_refs(const char *dir, const char *prefix,
                       bool (*keep)(const char *dir, const struct ref *ref, const void *arg), const void *arg) {
        DIR *d = opendir(dir);
        if (!d)
                return;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (!str_has_prefix(de->d_name, prefix))
                        continue;
                _cleanup_free_ char *path = xasprintf("%s/%s", dir, de->d_name);
                struct ref ref;
                if (ref_read(path, &ref) < 0 || !keep(dir, &ref, arg))
                        (void)unlink(path);
        }
        closedir(d);
}

/* Refs whose image is gone are dead weight. */
static bool image_exists(const char *dir, const struct ref *ref, const void *arg) {
        _cleanup_free_ char *image = xasprintf("%s/base-%s.img", dir, ref->sha256);
        return access(image, F_OK) == 0;
}

/* Make room for `need` more bytes under max, oldest first. */
static void evict(const char *dir, uint64_t need, uint64_t max) {
        sweep_temps(dir);
        struct image *v;
        size_t n;
        if (list_images(dir, &v, &n) < 0)
                return;
        uint64_t total = 0;
        for (size_t i = 0; i < n; i++)
                total += v[i].allocated;
        bool removed = false;
        for (size_t i = 0; i < n && total + need > max; i++) {
                _cleanup_free_ char *path = xasprintf("%s/%s", dir, v[i].name);
                if (unlink(path) == 0) {
                        log_debug("cache: evicted %s", path);
                        total -= v[i].allocated;
                        removed = true;
                }
        }
        free_images(v, n);
        if (removed)
                prune_refs(dir, "ref-", image_exists, NULL);
}

/* ---- storing ---- */

/* tmp (written with fd, r its verdict so far) renamed to path, and only
 * then closed: its lock (temp_lock) goes with the close, and cache clean
 * removes any tmp-* not locked, even a finished copy about to be renamed.
 * Whatever failed, neither name is left.  0 or -errno. */
static int rename_locked(int fd, const char *tmp, const char *path, int r) {
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0) {
                r = -errno;
                (void)unlink(path); /* a copy that may not be whole */
        }
        if (r < 0)
                (void)unlink(tmp);
        return r;
}

/* ref-<key>, or with sum, sum-<key> */
static int write_ref(const char *dir, bool sum, const char *key, const char *source, const struct source_info *info) {
        _cleanup_free_ char *tmp = xasprintf("%s/tmp-XXXXXX", dir);
        int fd = output_mkstemp(tmp);
        if (fd < 0)
                return fd;
        temp_lock(fd);
        struct buf b = {0};
        buf_printf(&b, "dimimage-cache 1\nkey %s\nsha256 %s\nbytes %" PRIu64 "\nformat %s\nsource ", key,
                   info->sha256, info->bytes, info->format);
        /* For `cache list` only: keep it one line. */
        for (const char *c = source ? source : ""; *c; c++)
                buf_append(&b, *c == '\n' ? "?" : c, 1);
        buf_puts(&b, "\n");
        int r = write_full(fd, b.data, b.len);
        buf_free(&b);
        _cleanup_free_ char *path = xasprintf("%s/%s-%s", dir, sum ? "sum" : "ref", key);
        r = rename_locked(fd, tmp, path, r);
        output_untrack_temp(tmp);
        return r;
}

static int mkdir_p(const char *path, mode_t mode) {
        if (mkdir(path, mode) == 0 || errno == EEXIST)
                return 0;
        if (errno != ENOENT)
                return -errno;
        _cleanup_free_ char *parent = path_dirname(path);
        if (strcmp(parent, path) == 0)
                return -ENOENT;
        int r = mkdir_p(parent, mode);
        if (r < 0)
                return r;
        return mkdir(path, mode) == 0 || errno == EEXIST ? 0 : -errno;
}

/* cache_dir's directory, made 0700 with its parents as needed (the XDG
 * spec's way), all but $HOME itself: a HOME that is not a directory
 * (sbuild's /nonexistent, a service account's) says there is no place for
 * a cache (1, nothing to warn of), and root would otherwise make one there.
 * One already there must be trusted (dir_trusted; 1 too when it is not:
 * the lookup before said so). */
static int cache_mkdir(const char *dir) {
        const char *home;
        free(cache_dir_in(&home));
        struct stat st;
        if (home && (stat(home, &st) < 0 || !S_ISDIR(st.st_mode)))
                return 1;
        int r = mkdir_p(dir, 0700);
        return r < 0 ? r : dir_trusted(dir, false) < 0 ? 1 : 0;
}

void cache_store(const char *base, const struct stat *st, int fd, const struct source_info *info, uint64_t max) {
        _cleanup_free_ char *dir = cache_dir();
        if (!dir)
                return;
        max = cache_max_bytes(max);
        struct stat ost;
        if (fstat(fd, &ost) < 0)
                return;
        uint64_t need = (uint64_t)ost.st_blocks * 512;
        if (need > max) {
                log_debug("cache: %s decompresses to more than the cache may hold; not cached", base);
                /* a bound lowered since the cache filled takes effect at a
                 * miss, this one too */
                if (dir_trusted(dir, false) == 0 && access(dir, F_OK) == 0)
                        evict(dir, 0, max);
                return;
        }
        char key[65];
        _cleanup_free_ char *real = NULL;
        int r = base_key(base, st, key, &real);
        if (r < 0)
                return;
        r = cache_mkdir(dir);
        if (r == 1)
                return;
        if (r < 0) {
                log_warn(dir, "cannot create the cache directory: %s; not caching", strerror(-r));
                return;
        }
        _cleanup_free_ char *image = xasprintf("%s/base-%s.img", dir, info->sha256);
        struct stat ist;
        /* Same content already cached (another copy or name of the base). */
        if (stat(image, &ist) == 0 && (uint64_t)ist.st_size == info->bytes) {
                (void)utimensat(AT_FDCWD, image, NULL, 0);
        } else {
                evict(dir, need, max);
                _cleanup_free_ char *tmp = xasprintf("%s/tmp-XXXXXX", dir);
                /* tracked: an interrupted build leaves no half copy to fill the cache */
                int tfd = output_mkstemp(tmp);
                if (tfd < 0) {
                        log_warn(dir, "cannot write to the cache: %s; not caching", strerror(-tfd));
                        return;
                }
                temp_lock(tfd);
                r = rename_locked(tfd, tmp, image, clone_range(fd, tfd, info->bytes, false));
                output_untrack_temp(tmp);
                if (r < 0) {
                        log_warn(dir, "cannot write to the cache: %s; not caching", strerror(-r));
                        return;
                }
        }
        r = write_ref(dir, false, key, real, info);
        if (r < 0)
                log_warn(dir, "cannot write to the cache: %s; not caching", strerror(-r));
}

/* Kept: another base's sum, while that base is still there.  A base
 * rewritten in place leaves its old sum behind under another key, and a
 * deleted base's sum would only take room: both go here, not only at cache
 * clean. */
static bool other_base(const char *dir, const struct ref *ref, const void *real) {
        return strcmp(ref->source, real) != 0 && access(ref->source, F_OK) == 0;
}

void cache_remember(const char *base, const struct stat *st, const struct source_info *info) {
        _cleanup_free_ char *dir = cache_dir();
        if (!dir)
                return;
        char key[65];
        _cleanup_free_ char *real = NULL;
        if (base_key(base, st, key, &real) < 0 || !real)
                return;
        int r = cache_mkdir(dir);
        if (r == 1)
                return;
        if (r == 0) {
                prune_refs(dir, "sum-", other_base, real);
                r = write_ref(dir, true, key, real, info);
        }
        /* Only a later build's speed is lost: not worth a warning on every
         * build from a base beside an unwritable cache. */
        if (r < 0)
                log_debug("cache: cannot remember the sha256 of %s: %s", base, strerror(-r));
}

/* ---- cache list / clean ---- */

/* The files in dir named prefix*, and their blocks' bytes when asked. */
static unsigned count_named(const char *dir, const char *prefix, uint64_t *allocated) {
        unsigned n = 0;
        DIR *d = opendir(dir);
        struct dirent *de;
        struct stat st;
        while (d && (de = readdir(d)))
                if (str_has_prefix(de->d_name, prefix)) {
                        n++;
                        if (allocated && fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
                                *allocated += (uint64_t)st.st_blocks * 512;
                }
        if (d)
                closedir(d);
        return n;
}

int cache_list(FILE *out) {
        _cleanup_free_ char *dir = cache_dir();
        if (!dir) {
                fprintf(out, "no cache: neither XDG_CACHE_HOME nor HOME is set\n");
                return 0;
        }
        (void)dir_trusted(dir, true); /* what builds would say of it */
        struct image *v;
        size_t n;
        int r = list_images(dir, &v, &n);
        if (r < 0)
                return log_error(r, dir, "cannot read the cache directory: %s", strerror(-r));
        uint64_t total = 0;
        fprintf(out, "%-16s %10s %10s  %-19s  %s\n", "IMAGE", "SIZE", "ON DISK", "LAST USED", "SOURCE");
        for (size_t i = n; i-- > 0;) {
                char size[32], alloc[32], when[32] = "?";
                format_size(v[i].bytes, size);
                format_size(v[i].allocated, alloc);
                struct tm tm;
                time_t t = v[i].used.tv_sec;
                if (localtime_r(&t, &tm))
                        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
                total += v[i].allocated;
                /* Every base that decompresses to this image. */
                struct buf sources = {0};
                DIR *d = opendir(dir);
                struct dirent *de;
                while (d && (de = readdir(d))) {
                        if (!str_has_prefix(de->d_name, "ref-"))
                                continue;
                        _cleanup_free_ char *path = xasprintf("%s/%s", dir, de->d_name);
                        struct ref ref;
                        if (ref_read(path, &ref) == 0 && strncmp(v[i].name + 5, ref.sha256, 64) == 0)
                                buf_printf(&sources, "%s%s (%s)", sources.len ? ", " : "", ref.source, ref.format);
                }
                if (d)
                        closedir(d);
                fprintf(out, "%-16.16s %10s %10s  %-19s  %s\n", v[i].name + 5, size, alloc, when,
                        sources.len ? (char *)sources.data : "-");
                buf_free(&sources);
        }
        char tot[32], lim[32];
        format_size(total, tot);
        format_size(cache_max_bytes(0), lim);
        fprintf(out, "%zu image%s, %s on disk (limit %s) in %s\n", n, n == 1 ? "" : "s", tot, lim, dir);
        unsigned sums = count_named(dir, "sum-", NULL);
        if (sums)
                fprintf(out, "and the sha256 of %u raw base%s, so that rebuilds from %s need not hash %s first\n", sums,
                        sums == 1 ? "" : "s", sums == 1 ? "it" : "them", sums == 1 ? "it" : "them");
        /* A build killed outright leaves its copy behind, up to a whole base,
         * until the next build that uses the cache: shown, as the space it is. */
        uint64_t tmp_bytes = 0;
        unsigned tmps = count_named(dir, "tmp-", &tmp_bytes);
        if (tmps) {
                char tb[32];
                format_size(tmp_bytes, tb);
                fprintf(out, "and %u unfinished cop%s, %s on disk: being written, or left by a build killed outright "
                        "(`dimimage cache clean` removes those no build holds)\n",
                        tmps, tmps == 1 ? "y" : "ies", tb);
        }
        free_images(v, n);
        return 0;
}

int cache_clean(void) {
        _cleanup_free_ char *dir = cache_dir();
        if (!dir)
                return 0;
        DIR *d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : log_error(errno, dir, "cannot read the cache directory: %m");
        int dfd = dirfd(d);
        if (dfd < 0) {
                int r = log_error(errno, dir, "cannot read the cache directory: %m");
                closedir(d);
                return r;
        }
        int r = 0;
        unsigned removed = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (!str_has_prefix(de->d_name, "base-") && !str_has_prefix(de->d_name, "ref-") &&
                    !str_has_prefix(de->d_name, "sum-"))
                        continue;
                if (unlinkat(dfd, de->d_name, 0) < 0) {
                        if (r == 0)
                                r = log_error(errno, dir, "cannot remove %s: %m", de->d_name);
                } else
                        removed++;
        }
        closedir(d);
        /* tmp- files only when no live build holds them (temp_lock): one
         * running beside the clean would lose the base it is storing */
        removed += sweep_stale(dir, cache_temp, NULL, 0, report_removed);
        if (r == 0)
                log_info("removed %u cache file%s from %s", removed, removed == 1 ? "" : "s", dir);
        return r;
}
