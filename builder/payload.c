/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "payload.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"
#include "log.h"
#include "util.h"

/* The analyzer loses the zeroing below across slot()'s symbolic index and
 * reports a double free on a second replacement of the same entry. */
static void entry_clear(struct payload_entry *e) {
        free(e->path);
        if (e->secret && e->data)
                explicit_bzero(e->data, e->len);
        free(e->data); /* NOLINT(clang-analyzer-unix.Malloc): see above */
        free(e->source);
        free(e->target);
        free(e->target_where);
        *e = (struct payload_entry){0};
}

static struct payload_entry *slot(struct payload *p, enum part part, const char *path) {
        for (size_t i = 0; i < p->n; i++)
                if (p->v[i].part == part && strcmp(p->v[i].path, path) == 0) {
                        /* path may be the entry's own string: copy before clearing */
                        char *copy = xstrdup(path);
                        entry_clear(&p->v[i]);
                        p->v[i].part = part;
                        p->v[i].path = copy;
                        return &p->v[i];
                }
        if (p->n == p->cap) {
                p->cap = p->cap ? 2 * p->cap : 32;
                p->v = xrealloc(p->v, p->cap * sizeof *p->v);
        }
        struct payload_entry *e = &p->v[p->n++];
        *e = (struct payload_entry){.part = part, .path = xstrdup(path)};
        return e;
}

struct payload_entry *payload_move(struct payload *p, struct payload_entry *from) {
        struct payload_entry *e = slot(p, from->part, from->path);
        char *path = e->path;
        free(from->path);
        *e = *from;
        e->path = path;
        *from = (struct payload_entry){0};
        return e;
}

struct payload_entry *payload_add_file(struct payload *p, enum part part, const char *path, uint32_t mode,
                                       uint32_t uid, uint32_t gid, const void *data, size_t len) {
        struct payload_entry *e = slot(p, part, path);
        e->type = ENTRY_FILE;
        e->mode = mode & 07777;
        e->uid = uid;
        e->gid = gid;
        e->data = xmemdup(data ? data : "", len);
        e->len = len;
        return e;
}

struct payload_entry *payload_add_file_from(struct payload *p, enum part part, const char *path, uint32_t mode,
                                            uint32_t uid, uint32_t gid, const char *source) {
        struct payload_entry *e = slot(p, part, path);
        e->type = ENTRY_FILE;
        e->mode = mode & 07777;
        e->uid = uid;
        e->gid = gid;
        e->source = xstrdup(source);
        struct stat st;
        if (stat(source, &st) == 0)
                e->len = (size_t)st.st_size;
        return e;
}

struct payload_entry *payload_add_dir(struct payload *p, enum part part, const char *path, uint32_t mode,
                                      uint32_t uid, uint32_t gid) {
        struct payload_entry *e = slot(p, part, path);
        e->type = ENTRY_DIR;
        e->mode = mode & 07777;
        e->uid = uid;
        e->gid = gid;
        return e;
}

struct payload_entry *payload_add_symlink(struct payload *p, enum part part, const char *path, const char *target) {
        struct payload_entry *e = slot(p, part, path);
        e->type = ENTRY_SYMLINK;
        e->mode = 0777;
        e->target = xstrdup(target);
        return e;
}

struct payload_entry *payload_add_unlink(struct payload *p, enum part part, const char *path) {
        struct payload_entry *e = slot(p, part, path);
        e->type = ENTRY_UNLINK;
        return e;
}

const struct payload_entry *payload_find(const struct payload *p, enum part part, const char *path) {
        for (size_t i = 0; i < p->n; i++)
                if (p->v[i].part == part && strcmp(p->v[i].path, path) == 0)
                        return &p->v[i];
        return NULL;
}

bool payload_path_ok(const char *path) {
        if (!path || path[0] != '/')
                return false;
        if (strlen(path) >= PATH_MAX)
                return false;
        const char *c = path + 1;
        if (!*c)
                return true; /* "/" itself */
        while (*c) {
                const char *end = strchrnul(c, '/');
                size_t n = (size_t)(end - c);
                if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
                        return false;
                if (n > 255)
                        return false;
                c = *end ? end + 1 : end;
                if (*end && !*c)
                        return false; /* trailing slash */
        }
        return true;
}

static int name_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Symlinks in overlays are kept as links, but only when their target,
 * resolved from the link's own directory, stays inside the overlay: an
 * escaping link would let an overlay point root-owned files anywhere. */
static bool link_stays_inside(const char *rel_dir, const char *target) {
        if (target[0] == '/')
                return false;
        int depth = 0;
        for (const char *c = rel_dir; *c; c++)
                if (*c == '/' && c[1])
                        depth++;
        if (rel_dir[0] && strcmp(rel_dir, "/") != 0 && rel_dir[strlen(rel_dir) - 1] != '/')
                depth++;
        const char *c = target;
        while (*c) {
                const char *end = strchrnul(c, '/');
                size_t n = (size_t)(end - c);
                if (n == 2 && c[0] == '.' && c[1] == '.') {
                        if (--depth < 0)
                                return false;
                } else if (n > 0 && !(n == 1 && c[0] == '.'))
                        depth++;
                c = *end ? end + 1 : end;
        }
        return true;
}

static int add_tree_rec(struct payload *p, enum part part, const char *hostdir, const char *rel, const char *dest,
                        uint32_t uid, uint32_t gid, unsigned depth) {
        if (depth > 64)
                return log_error(ELOOP, hostdir, "directory tree nested deeper than 64 levels");
        _cleanup_free_ char *dirpath = xasprintf("%s%s", hostdir, rel);
        DIR *d = opendir(dirpath);
        if (!d)
                return log_error(input_err(-errno), dirpath, "cannot read directory: %s", strerror(errno));
        char **names = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                if (n == cap) {
                        cap = cap ? 2 * cap : 16;
                        names = xrealloc(names, cap * sizeof *names);
                }
                names[n++] = xstrdup(de->d_name);
        }
        closedir(d);
        if (n)
                qsort(names, n, sizeof *names, name_cmp);
        int r = 0;
        for (size_t i = 0; i < n && r >= 0; i++) {
                _cleanup_free_ char *hrel = xasprintf("%s/%s", rel, names[i]);
                _cleanup_free_ char *host = xasprintf("%s%s", hostdir, hrel);
                _cleanup_free_ char *in = strcmp(dest, "/") == 0 ? xasprintf("%s", hrel) : xasprintf("%s%s", dest, hrel);
                struct stat st;
                if (lstat(host, &st) < 0) {
                        r = log_error(input_err(-errno), host, "cannot stat: %s", strerror(errno));
                        break;
                }
                if (!payload_path_ok(in)) {
                        r = log_error(EINVAL, host, "unsafe path in overlay");
                        break;
                }
                if (S_ISDIR(st.st_mode)) {
                        payload_add_dir(p, part, in, st.st_mode & 07777, uid, gid);
                        r = add_tree_rec(p, part, hostdir, hrel, dest, uid, gid, depth + 1);
                } else if (S_ISREG(st.st_mode)) {
                        /* read only as the image is written: one we may
                         * not read is refused now, before any output
                         * exists, and by --dry-run */
                        if (faccessat(AT_FDCWD, host, R_OK, AT_EACCESS) < 0) {
                                r = log_error(input_err(-errno), host, "cannot read: %s", strerror(errno));
                                break;
                        }
                        payload_add_file_from(p, part, in, st.st_mode & 07777, uid, gid, host);
                } else if (S_ISLNK(st.st_mode)) {
                        char target[PATH_MAX];
                        ssize_t tl = readlink(host, target, sizeof target - 1);
                        if (tl < 0) {
                                r = log_error(input_err(-errno), host, "cannot read symlink: %s", strerror(errno));
                                break;
                        }
                        target[tl] = 0;
                        _cleanup_free_ char *reldir = path_dirname(hrel);
                        if (!link_stays_inside(reldir, target)) {
                                r = log_error(EINVAL, host, "symlink to '%s' escapes the overlay tree", target);
                                break;
                        }
                        payload_add_symlink(p, part, in, target);
                } else {
                        r = log_error(EINVAL, host, "not a regular file, directory or symlink");
                }
        }
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        return r;
}

int payload_add_tree(struct payload *p, enum part part, const char *hostdir, const char *dest, uint32_t uid,
                     uint32_t gid) {
        struct stat st;
        if (stat(hostdir, &st) < 0)
                return log_error(errno, hostdir, "overlay not found: %s", strerror(errno));
        if (!S_ISDIR(st.st_mode))
                return log_error(ENOTDIR, hostdir, "overlay is not a directory");
        if (!payload_path_ok(dest))
                return log_error(EINVAL, hostdir, "bad overlay destination '%s'", dest);
        return add_tree_rec(p, part, hostdir, "", dest, uid, gid, 0);
}

/* '/' sorts before any other byte so "/a/b" < "/a-b": a parent directory is
 * always created before what it holds. */
static int path_cmp(const char *a, const char *b) {
        for (;; a++, b++) {
                unsigned char ca = (unsigned char)*a, cb = (unsigned char)*b;
                if (ca == cb) {
                        if (!ca)
                                return 0;
                        continue;
                }
                if (!ca)
                        return -1;
                if (!cb)
                        return 1;
                if (ca == '/')
                        return -1;
                if (cb == '/')
                        return 1;
                return ca < cb ? -1 : 1;
        }
}

static int entry_cmp(const void *a, const void *b) {
        const struct payload_entry *x = a, *y = b;
        if (x->part != y->part)
                return x->part < y->part ? -1 : 1;
        return path_cmp(x->path, y->path);
}

void payload_sort(struct payload *p) {
        if (p->n)
                qsort(p->v, p->n, sizeof *p->v, entry_cmp);
}

uint64_t payload_bytes(const struct payload *p, enum part part) {
        uint64_t total = 0;
        for (size_t i = 0; i < p->n; i++)
                if (p->v[i].part == part && p->v[i].type == ENTRY_FILE)
                        total += p->v[i].len;
        return total;
}

void payload_dump(const struct payload *p, FILE *f) {
        static const char *const types[] = {"dir", "file", "symlink", "unlink"};
        for (size_t i = 0; i < p->n; i++) {
                const struct payload_entry *e = &p->v[i];
                fprintf(f, "%s %s %s", e->part == PART_BOOT ? "boot" : "root", types[e->type], e->path);
                if (e->type == ENTRY_DIR || e->type == ENTRY_FILE)
                        fprintf(f, " %04o %" PRIu32 ":%" PRIu32, e->mode, e->uid, e->gid);
                if (e->type == ENTRY_SYMLINK)
                        fprintf(f, " -> %s", e->target);
                if (e->type == ENTRY_FILE) {
                        if (e->secret)
                                fputs(" <secret>", f);
                        else if (e->source)
                                fprintf(f, " from %s", path_basename(e->source));
                        else {
                                char hex[65];
                                sha256_hex(e->data, e->len, hex);
                                fprintf(f, " %zu sha256:%.16s", e->len, hex);
                        }
                }
                fputc('\n', f);
        }
}

void payload_free(struct payload *p) {
        for (size_t i = 0; i < p->n; i++)
                entry_clear(&p->v[i]);
        free(p->v);
        *p = (struct payload){0};
}

void payload_remove_tree(struct payload *p, enum part part, const char *path) {
        size_t pl = strlen(path), w = 0;
        for (size_t i = 0; i < p->n; i++) {
                struct payload_entry *e = &p->v[i];
                if (e->part == part && strncmp(e->path, path, pl) == 0 && (e->path[pl] == 0 || e->path[pl] == '/')) {
                        entry_clear(e);
                        continue;
                }
                p->v[w++] = *e;
        }
        p->n = w;
}
