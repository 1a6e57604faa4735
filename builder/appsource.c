/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "appsource.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "util.h"

#define MAX_SOURCE_BYTES (1ULL << 30) /* held in memory until applied */
#define MAX_ENTRIES 200000

struct item {
        char *path; /* relative, normalised, no leading slash */
        mode_t type;
        uint32_t mode;
        uint8_t *data;
        size_t len;
        char *target;
};

static void items_free(struct item *v, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(v[i].path);
                free(v[i].data);
                free(v[i].target);
        }
        free(v);
}

struct appsource_archive {
        char *source;
        struct item *v;
        size_t n;
};

void appsource_cache_free(struct appsource_cache *cache) {
        for (size_t i = 0; i < cache->n; i++) {
                free(cache->v[i].source);
                items_free(cache->v[i].v, cache->v[i].n);
        }
        free(cache->v);
        *cache = (struct appsource_cache){0};
}

/* "./a//b/" -> "a/b"; NULL when absolute or with "..". */
static char *normalise(const char *raw) {
        if (!raw || raw[0] == '/')
                return NULL;
        struct buf b = {0};
        const char *c = raw;
        while (*c) {
                const char *end = strchrnul(c, '/');
                size_t n = (size_t)(end - c);
                if (n == 2 && c[0] == '.' && c[1] == '.') {
                        buf_free(&b);
                        return NULL;
                }
                if (n && !(n == 1 && c[0] == '.')) {
                        if (b.len)
                                buf_puts(&b, "/");
                        buf_append(&b, c, n);
                }
                c = *end ? end + 1 : end;
        }
        if (!b.len) {
                buf_free(&b);
                return xstrdup("");
        }
        return (char *)buf_steal(&b, NULL);
}

/* Does a symlink at rel_path with this target stay inside the tree? */
static bool link_inside(const char *rel_path, const char *target) {
        if (target[0] == '/')
                return false;
        int depth = 0;
        for (const char *c = rel_path; *c; c++)
                if (*c == '/')
                        depth++;
        for (const char *c = target; *c;) {
                const char *end = strchrnul(c, '/');
                size_t n = (size_t)(end - c);
                if (n == 2 && c[0] == '.' && c[1] == '.') {
                        if (--depth < 0)
                                return false;
                } else if (n && !(n == 1 && c[0] == '.'))
                        depth++;
                c = *end ? end + 1 : end;
        }
        return true;
}

static int read_archive(const char *source, struct item **out, size_t *count) {
        struct archive *a = archive_read_new();
        if (!a)
                return log_error(ENOMEM, source, "out of memory");
        /* Filters one by one: filter_all would fall back to external programs. */
        archive_read_support_filter_gzip(a);
        archive_read_support_filter_xz(a);
        archive_read_support_filter_zstd(a);
        archive_read_support_filter_bzip2(a);
        archive_read_support_format_tar(a);
        archive_read_support_format_gnutar(a);
        archive_read_support_format_zip(a);
        int r = 0;
        struct item *v = NULL;
        size_t n = 0;
        uint64_t total = 0;
        if (archive_read_open_filename(a, source, 1 << 16) != ARCHIVE_OK) {
                /* a file we may not read is missing input, not a bad archive */
                int e = archive_errno(a);
                if (e == EACCES || e == EPERM)
                        r = log_error(input_err(-e), source, "cannot read --source: %s", strerror(e));
                else
                        r = log_error(EINVAL, source, "not a readable tar or zip archive: %s",
                                      archive_error_string(a));
                goto out;
        }
        struct archive_entry *ae;
        for (;;) {
                int ar = archive_read_next_header(a, &ae);
                if (ar == ARCHIVE_EOF)
                        break;
                if (ar < ARCHIVE_WARN) {
                        r = log_error(EINVAL, source, "corrupt archive: %s", archive_error_string(a));
                        goto out;
                }
                const char *name = archive_entry_pathname(ae);
                _cleanup_free_ char *rel = normalise(name);
                if (!rel) {
                        r = log_error(EINVAL, source, "entry '%s' has an absolute or '..' path; refusing the archive",
                                      name ? name : "(null)");
                        goto out;
                }
                if (!*rel)
                        continue;
                if (archive_entry_hardlink(ae)) {
                        r = log_error(EINVAL, source, "entry '%s' is a hard link; not supported", rel);
                        goto out;
                }
                mode_t type = archive_entry_filetype(ae);
                if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) {
                        r = log_error(EINVAL, source, "entry '%s' is not a file, directory or symlink", rel);
                        goto out;
                }
                if (n >= MAX_ENTRIES) {
                        r = log_error(E2BIG, source, "more than %d entries", MAX_ENTRIES);
                        goto out;
                }
                v = xrealloc(v, (n + 1) * sizeof *v);
                struct item *it = &v[n++];
                *it = (struct item){.path = rel, .type = type, .mode = archive_entry_perm(ae) & 07777};
                rel = NULL;
                if (type == AE_IFLNK) {
                        const char *t = archive_entry_symlink(ae);
                        if (!t || !link_inside(it->path, t)) {
                                r = log_error(EINVAL, source, "symlink '%s' points outside the source tree", it->path);
                                goto out;
                        }
                        it->target = xstrdup(t);
                } else if (type == AE_IFREG) {
                        struct buf b = {0};
                        char chunk[65536];
                        la_ssize_t got;
                        while ((got = archive_read_data(a, chunk, sizeof chunk)) > 0) {
                                total += (uint64_t)got;
                                if (total > MAX_SOURCE_BYTES) {
                                        buf_free(&b);
                                        r = log_error(EFBIG, source, "application source larger than 1 GiB");
                                        goto out;
                                }
                                buf_append(&b, chunk, (size_t)got);
                        }
                        if (got < 0) {
                                buf_free(&b);
                                r = log_error(EINVAL, source, "corrupt archive data in '%s': %s", it->path,
                                              archive_error_string(a));
                                goto out;
                        }
                        it->data = buf_steal(&b, &it->len);
                }
        }
out:
        archive_read_free(a);
        if (r < 0) {
                items_free(v, n);
                return r;
        }
        *out = v;
        *count = n;
        return 0;
}

/* source's items, read now or (with a cache) before: without a cache the
 * caller frees them, with one the cache does. */
static int archive_items(const char *source, struct appsource_cache *cache, struct item **v, size_t *n) {
        for (size_t i = 0; cache && i < cache->n; i++)
                if (!strcmp(cache->v[i].source, source)) {
                        *v = cache->v[i].v;
                        *n = cache->v[i].n;
                        return 0;
                }
        int r = read_archive(source, v, n);
        if (r >= 0 && cache) {
                cache->v = xrealloc(cache->v, (cache->n + 1) * sizeof *cache->v);
                cache->v[cache->n++] = (struct appsource_archive){.source = xstrdup(source), .v = *v, .n = *n};
        }
        return r;
}

static int add_archive(struct payload *p, const char *source, const char *dest, struct appsource_cache *cache) {
        struct item *v = NULL;
        size_t n = 0;
        int r = archive_items(source, cache, &v, &n);
        if (r < 0)
                return r;
        if (!n) {
                if (!cache)
                        items_free(v, n);
                return log_error(EINVAL, source, "archive is empty");
        }
        /* git archive --prefix=x/ and GitHub tarballs wrap everything in one
         * directory: strip it so the archive's deploy/ lands at dest/deploy. */
        size_t strip = 0;
        const char *slash = strchr(v[0].path, '/');
        size_t first = slash ? (size_t)(slash - v[0].path) : strlen(v[0].path);
        bool single = true;
        for (size_t i = 0; i < n && single; i++) {
                if (strncmp(v[i].path, v[0].path, first) != 0 || (v[i].path[first] && v[i].path[first] != '/'))
                        single = false;
                if (!v[i].path[first] && v[i].type != AE_IFDIR)
                        single = false;
        }
        /* ... unless that directory is one the tree itself has at its top
         * (an archive of deploy/ alone) */
        static const char *const own[] = {"deploy", "config"};
        for (size_t i = 0; i < ARRAY_SIZE(own) && single; i++)
                if (first == strlen(own[i]) && !strncmp(v[0].path, own[i], first))
                        single = false;
        if (single)
                strip = first + 1;
        for (size_t i = 0; i < n; i++) {
                if (strlen(v[i].path) < strip)
                        continue;
                _cleanup_free_ char *path = xasprintf("%s/%s", dest, v[i].path + strip);
                if (!payload_path_ok(path)) {
                        r = log_error(EINVAL, source, "unsafe path '%s' in archive", v[i].path);
                        break;
                }
                /* parents an archive may not list explicitly */
                for (char *c = path + strlen(dest) + 1; (c = strchr(c, '/')); c++) {
                        *c = 0;
                        if (!payload_find(p, PART_ROOT, path))
                                payload_add_dir(p, PART_ROOT, path, 0755, 0, 0);
                        *c = '/';
                }
                if (v[i].type == AE_IFDIR)
                        payload_add_dir(p, PART_ROOT, path, v[i].mode ? v[i].mode : 0755, 0, 0);
                else if (v[i].type == AE_IFLNK)
                        payload_add_symlink(p, PART_ROOT, path, v[i].target);
                else
                        payload_add_file(p, PART_ROOT, path, v[i].mode ? v[i].mode : 0644, 0, 0, v[i].data, v[i].len);
        }
        if (!cache)
                items_free(v, n);
        return r;
}

int appsource_add(struct payload *p, const char *source, const char *dest, struct appsource_cache *cache) {
        struct stat st;
        if (stat(source, &st) < 0)
                return log_error(input_err(-errno), source, "cannot open --source: %s", strerror(errno));
        payload_add_dir(p, PART_ROOT, dest, 0755, 0, 0);
        if (!S_ISDIR(st.st_mode))
                return add_archive(p, source, dest, cache);
        int r = payload_add_tree(p, PART_ROOT, source, dest, 0, 0);
        if (r < 0)
                return r;
        /* Drop what no Docker build context should carry into the image. */
        static const char *const skip[] = {".git", "target", "node_modules", NULL};
        for (const char *const *s = skip; *s; s++) {
                _cleanup_free_ char *prefix = xasprintf("%s/%s", dest, *s);
                payload_remove_tree(p, PART_ROOT, prefix);
        }
        return 0;
}
