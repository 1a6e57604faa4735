/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "apply.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ext4.h"
#include "fat.h"
#include "log.h"
#include "plan.h"
#include "util.h"

#define MIB (1024ULL * 1024)
#define GROW_MARGIN (64 * MIB)

static const struct disk_part *boot_part(const struct disk_layout *l) { return &l->parts[l->boot]; }
static const struct disk_part *root_part(const struct disk_layout *l) { return &l->parts[l->root]; }

static int open_root(const struct apply_opts *o, const struct disk_layout *l, unsigned flags, struct ext4_fs **fs) {
        const struct disk_part *rp = root_part(l);
        return ext4_open_as(o->image, o->name, disk_part_offset(rp), disk_part_bytes(rp), flags, fs);
}

static int open_boot(const struct apply_opts *o, const struct disk_layout *l, struct fat_fs **fs) {
        const struct disk_part *bp = boot_part(l);
        return fat_open(o->fd, disk_part_offset(bp), disk_part_bytes(bp), o->name, fs);
}

/* Whether path is in the base: an error (an I/O error, a damaged
 * directory: logged) is no absence, and goes to *err unless one is there
 * already, to fail the build once every file is read. */
static bool ext4_there(struct ext4_fs *fs, const char *path, struct ext4_stat *st, int *err) {
        int r = ext4_lstat(fs, path, st);
        if (r < 0 && r != -ENOENT && r != -ENOTDIR && r != -ELOOP && *err == 0)
                *err = r;
        return r == 0;
}

/* NULL when path is not a regular text file; why says what it is instead
 * (static text), when asked.  One that cannot be read is an error, in *err
 * (logged). */
static char *read_text_ext4_why(struct ext4_fs *fs, const char *path, const char **why, int *err) {
        uint8_t *data = NULL;
        size_t len;
        struct ext4_stat st;
        const char *w = NULL;
        int r;
        if (!ext4_there(fs, path, &st, err))
                w = "is missing";
        else if (S_ISLNK(st.mode))
                w = "is a symbolic link";
        else if (!S_ISREG(st.mode))
                w = "is not a regular file";
        else if ((r = ext4_read(fs, path, 4 << 20, &data, &len)) < 0) {
                w = "cannot be read";
                if (*err == 0)
                        *err = r;
        }
        /* text only: a NUL would silently cut what the plan rewrites */
        else if (memchr(data, 0, len))
                w = "holds a NUL byte";
        if (w) {
                free(data);
                data = NULL;
        }
        if (why)
                *why = w;
        return (char *)data;
}

static char *read_text_ext4(struct ext4_fs *fs, const char *path, int *err) {
        return read_text_ext4_why(fs, path, NULL, err);
}

/* The account files are rewritten in place: a regular text file each. */
static char *read_account_file(struct ext4_fs *fs, const char *path, struct base_files *bf, int *err) {
        const char *why;
        char *text = read_text_ext4_why(fs, path, &why, err);
        if (!text && !bf->accounts_why) {
                bf->accounts_why = why;
                bf->accounts_path = path;
        }
        return text;
}

/* *text NULL when path is not there.  One that is there but cannot be read
 * (a broken cluster chain, a directory, a NUL byte) fails the build: the
 * plan would otherwise drop the edit it makes to it without a word. */
static int read_text_fat(struct fat_fs *fs, const char *name, const char *path, char **text) {
        uint8_t *data = NULL;
        size_t len;
        *text = NULL;
        int r = fat_read(fs, path, &data, &len);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        if (memchr(data, 0, len)) {
                free(data);
                return log_error(EINVAL, name, "boot partition: %s holds a NUL byte; it is not a text file", path);
        }
        *text = (char *)data; /* fat_read ends it with a NUL */
        return 0;
}

/* /etc/skel's bounds: what a home starts with is a few dotfiles; a base
 * with more is copied no part of (one warning) rather than in part. */
#define SKEL_MAX_ENTRIES 256
#define SKEL_MAX_DEPTH 8
#define SKEL_MAX_BYTES (4u << 20)

/* /etc/skel's tree below rel ("" for itself) into bf->skel, a directory
 * before its contents; what is not a directory, regular file or symlink is
 * left out, as useradd leaves it.  0, 1 when past the bounds, -errno when
 * a file there cannot be read (logged). */
static int read_skel(struct ext4_fs *fs, const char *rel, unsigned depth, size_t *bytes, struct base_files *bf) {
        _cleanup_free_ char *dir = xasprintf("/etc/skel%s%s", *rel ? "/" : "", rel);
        char **names = NULL;
        size_t n = 0;
        int r = ext4_list(fs, dir, SKEL_MAX_ENTRIES, &names, &n);
        if (r == -E2BIG)
                return 1;
        if (r < 0) /* none (or no directory): a home starts empty */
                return r == -ENOENT || r == -ENOTDIR ? 0 : r;
        for (size_t i = 0; i < n && r == 0; i++) {
                _cleanup_free_ char *path = xasprintf("%s/%s", dir, names[i]);
                struct ext4_stat st;
                if (ext4_lstat(fs, path, &st) < 0 || !(S_ISDIR(st.mode) || S_ISREG(st.mode) || S_ISLNK(st.mode)))
                        continue;
                if (bf->nskel == SKEL_MAX_ENTRIES || (S_ISDIR(st.mode) && depth == SKEL_MAX_DEPTH) ||
                    (S_ISREG(st.mode) && st.size > SKEL_MAX_BYTES - *bytes)) {
                        r = 1;
                        break;
                }
                struct skel_entry e = {.path = xasprintf("%s%s%s", rel, *rel ? "/" : "", names[i]), .mode = st.mode};
                if (S_ISREG(st.mode) && (r = ext4_read(fs, path, SKEL_MAX_BYTES, &e.data, &e.len)) == 0)
                        *bytes += e.len;
                if (S_ISLNK(st.mode))
                        r = ext4_readlink(fs, path, &e.target);
                bf->skel = xrealloc(bf->skel, (bf->nskel + 1) * sizeof(*bf->skel));
                bf->skel[bf->nskel++] = e;
                if (r == 0 && S_ISDIR(st.mode))
                        r = read_skel(fs, e.path, depth + 1, bytes, bf);
        }
        strv_clear(&names, &n);
        return r;
}

static void skel_free(struct base_files *bf) {
        for (size_t i = 0; i < bf->nskel; i++) {
                free(bf->skel[i].path);
                free(bf->skel[i].data);
                free(bf->skel[i].target);
        }
        free(bf->skel);
        bf->skel = NULL;
        bf->nskel = 0;
}

void base_files_free(struct base_files *bf) {
        free(bf->os_release);
        free(bf->passwd);
        free(bf->group);
        free(bf->shadow);
        free(bf->gshadow);
        free(bf->subuid);
        free(bf->subgid);
        free(bf->hosts);
        free(bf->config_txt);
        free(bf->cmdline_txt);
        free(bf->user_data);
        free(bf->network_config);
        free(bf->locale_gen);
        free(bf->locales_supported);
        free(bf->iso3166);
        free(bf->xkb_rules);
        free(bf->nm_state);
        free(bf->manifest);
        skel_free(bf);
        strv_clear(&bf->homes, &bf->nhomes);
        *bf = (struct base_files){0};
}

int apply_read_base(const struct apply_opts *o, const struct disk_layout *l, struct base_files *bf) {
        struct ext4_fs *e = NULL;
        int r = open_root(o, l, EXT4_REQUIRE_CLEAN, &e);
        if (r < 0)
                return r;
        /* what cannot be read (an I/O error, a damaged directory) fails
         * the build once all is read: taken as absent, it would change
         * what the build writes, after an error line, with exit 0 */
        int err = 0;
        bf->os_release = read_text_ext4(e, "/etc/os-release", &err);
        if (!bf->os_release)
                bf->os_release = read_text_ext4(e, "/usr/lib/os-release", &err);
        bf->passwd = read_account_file(e, "/etc/passwd", bf, &err);
        bf->group = read_account_file(e, "/etc/group", bf, &err);
        bf->shadow = read_account_file(e, "/etc/shadow", bf, &err);
        bf->gshadow = read_text_ext4(e, "/etc/gshadow", &err);
        bf->subuid = read_text_ext4(e, "/etc/subuid", &err);
        bf->subgid = read_text_ext4(e, "/etc/subgid", &err);
        bf->hosts = read_text_ext4(e, "/etc/hosts", &err);
        bf->locale_gen = read_text_ext4(e, "/etc/locale.gen", &err);
        bf->locales_supported = read_text_ext4(e, "/usr/share/i18n/SUPPORTED", &err);
        bf->iso3166 = read_text_ext4(e, "/usr/share/zoneinfo/iso3166.tab", &err);
        bf->xkb_rules = read_text_ext4(e, "/usr/share/X11/xkb/rules/evdev.lst", &err);
        bf->nm_state = read_text_ext4(e, NM_STATE, &err);
        struct ext4_stat st;
        bf->armhf = ext4_there(e, "/usr/lib/arm-linux-gnueabihf", &st, &err) &&
                    !ext4_there(e, "/usr/lib/aarch64-linux-gnu", &st, &err);
        bf->cloud_init_local = ext4_there(e, "/usr/lib/systemd/system/cloud-init-local.service", &st, &err) ||
                               ext4_there(e, "/lib/systemd/system/cloud-init-local.service", &st, &err);
        bf->rename_pending = ext4_there(e, "/etc/ssh/sshd_config.d/rename_user.conf", &st, &err) ||
                             ext4_there(e, "/etc/systemd/system/multi-user.target.wants/userconfig.service", &st, &err);
        bf->built = ext4_there(e, PLAN_MANIFEST, &st, &err);
        bf->manifest = bf->built ? read_text_ext4(e, PLAN_MANIFEST, &err) : NULL;
        size_t skel_bytes = 0;
        r = err < 0 ? err : read_skel(e, "", 0, &skel_bytes, bf);
        if (r > 0) {
                log_warn(o->name, "the base's /etc/skel holds more than %u entries, %u levels or %u MiB; a new "
                         "user's home gets none of it", SKEL_MAX_ENTRIES, SKEL_MAX_DEPTH, SKEL_MAX_BYTES >> 20);
                skel_free(bf);
        }
        if (r >= 0 && ext4_list(e, "/home", 1u << 16, &bf->homes, &bf->nhomes) < 0)
                bf->nhomes = 0; /* none there, or too many to tell: a new user's home is new */
        int k = ext4_close(e);
        if (r < 0 || k < 0)
                return r < 0 ? r : k;
        struct fat_fs *f = NULL;
        r = open_boot(o, l, &f);
        if (r < 0)
                return r;
        r = read_text_fat(f, o->name, "/config.txt", &bf->config_txt);
        if (r >= 0)
                r = read_text_fat(f, o->name, "/cmdline.txt", &bf->cmdline_txt);
        if (r >= 0)
                r = read_text_fat(f, o->name, "/user-data", &bf->user_data);
        if (r >= 0)
                r = read_text_fat(f, o->name, "/network-config", &bf->network_config);
        /* what the plan must not build over: see plan_check_boot */
        static const char *const custom[] = {"custom.toml", "rpi-preseed.toml", "userconf.txt", "userconf"};
        for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(custom) && !bf->boot_custom; i++) {
                _cleanup_free_ char *path = xasprintf("/%s", custom[i]);
                struct fat_stat fst;
                if (fat_stat(f, path, &fst) == 0 && !fst.is_dir)
                        bf->boot_custom = custom[i];
        }
        int rc = fat_close(f);
        return r < 0 ? r : rc;
}

static int load_content(const struct payload_entry *e, uint8_t **data, size_t *len) {
        if (!e->source) {
                *data = NULL;
                *len = e->len;
                return 0;
        }
        int r = read_file(e->source, 64 << 20, data, len);
        if (r < 0)
                return log_error(input_err(r), e->source, "cannot read: %s", strerror(-r));
        return 0;
}

static int apply_boot(const struct apply_opts *o, const struct disk_layout *l, const struct payload *p) {
        struct fat_fs *fs = NULL;
        int r = open_boot(o, l, &fs);
        if (r < 0)
                return r;
        /* the output must pass fsck.fat -n, whatever the base's FSInfo
         * and FAT copies said */
        r = fat_settle(fs);
        for (size_t i = 0; i < p->n && r >= 0; i++) {
                const struct payload_entry *e = &p->v[i];
                if (e->part != PART_BOOT)
                        continue;
                _cleanup_free_ char *parent = path_dirname(e->path);
                if (strcmp(parent, "/") != 0 && e->type != ENTRY_UNLINK)
                        r = fat_mkdir(fs, parent, o->mtime);
                if (r < 0)
                        break;
                switch (e->type) {
                case ENTRY_DIR:
                        r = fat_mkdir(fs, e->path, o->mtime);
                        break;
                case ENTRY_FILE: {
                        uint8_t *data = NULL;
                        size_t len;
                        if ((r = load_content(e, &data, &len)) < 0)
                                break;
                        r = fat_write(fs, e->path, data ? data : e->data, len, o->mtime);
                        free(data);
                        break;
                }
                case ENTRY_UNLINK:
                        r = fat_unlink(fs, e->path);
                        if (r == -ENOENT)
                                r = 0;
                        break;
                case ENTRY_SYMLINK:
                        r = log_error(EINVAL, o->name, "boot partition: %s: FAT has no symbolic links", e->path);
                        break;
                }
        }
        int k = fat_close(fs);
        return r < 0 ? r : k;
}

/* ext4_lstat does not log an unreachable path: ext4_mkdir_p says what is
 * in the way (a file, a symlink loop), or makes what is missing.  Other
 * failures it has said why itself: that error is the build's, not a cue to
 * go on and fail again with a second line. */
static bool unreachable(int r) { return r == -ENOENT || r == -ENOTDIR || r == -ELOOP; }

static int ensure_parent(struct ext4_fs *fs, const char *path) {
        _cleanup_free_ char *parent = path_dirname(path);
        struct ext4_stat st;
        int r = ext4_lstat(fs, parent, &st);
        if (!unreachable(r))
                return r;
        return ext4_mkdir_p(fs, parent, 0755, 0, 0);
}

/* Why symlink link, which must lead to a time zone file (the time zone's),
 * would not with target, in the base: NULL when target, its links followed
 * as the Pi will, is a TZif file.  zoneinfo's "Europe" (a directory),
 * "localtime" (a link to /etc/localtime, itself once it is replaced) and
 * "leapseconds" (text) each leave the Pi on UTC as surely as a
 * misspelling.  Relative links (US/Eastern -> ../America/New_York) are
 * taken from their own directory. */
static const char *missing_target(struct ext4_fs *fs, const char *link, const char *target) {
        _cleanup_free_ char *path = xstrdup(target);
        for (unsigned hops = 0; hops < 16; hops++) {
                struct ext4_stat st;
                if (!strcmp(path, link))
                        return "which leads back to it through symbolic links";
                if (ext4_lstat(fs, path, &st) < 0)
                        return hops ? "which leads through symbolic links to a file this base does not have"
                                    : "which this base does not have";
                if (S_ISDIR(st.mode))
                        return "which is a directory in this base";
                if (S_ISLNK(st.mode)) {
                        char *to = NULL;
                        if (ext4_readlink(fs, path, &to) < 0)
                                return "which this base cannot read";
                        _cleanup_free_ char *dir = path_dirname(path);
                        char *next = to[0] == '/' ? xstrdup(to) : xasprintf("%s/%s", dir, to);
                        free(to);
                        free(path);
                        path = next;
                        continue;
                }
                uint8_t *data = NULL;
                size_t len = 0;
                /* zone files are a few KiB; a big file is no zone's */
                bool tzif = S_ISREG(st.mode) && st.size >= 4 && st.size <= (1u << 20) &&
                            ext4_read(fs, path, 1u << 20, &data, &len) == 0 && len >= 4 && !memcmp(data, "TZif", 4);
                free(data);
                return tzif ? NULL : "which is not a time zone file (TZif) in this base";
        }
        return "which leads through too many symbolic links in this base";
}

/* The refusal of a symlink whose target must be in the base (the time
 * zone's) and is not, named by who asked for it.  A target spelt in
 * another case (Europe/berlin) is the usual slip: what the base has then
 * is said. */
static int refuse_target(const struct apply_opts *o, struct ext4_fs *fs, const struct payload_entry *e,
                         const char *why) {
        _cleanup_free_ char *spelt = ext4_spelling(fs, e->target);
        struct ext4_stat st;
        _cleanup_free_ char *has = spelt && strcmp(spelt, e->target) && ext4_lstat(fs, spelt, &st) == 0 &&
                                                   !S_ISDIR(st.mode)
                                           ? xasprintf(" (it has %s)", spelt)
                                           : NULL;
        return log_error(EINVAL, e->target_where ? e->target_where : o->name, "%s would point to %s, %s%s; %s",
                         e->path, e->target, why, has ? has : "", e->target_hint);
}

static int apply_root(const struct apply_opts *o, const struct disk_layout *l, const struct payload *p) {
        struct ext4_fs *fs = NULL;
        int r = open_root(o, l, EXT4_RW, &fs);
        if (r < 0)
                return r;
        for (size_t i = 0; i < p->n && r >= 0; i++) {
                const struct payload_entry *e = &p->v[i];
                if (e->part != PART_ROOT)
                        continue;
                if (e->type != ENTRY_UNLINK && e->type != ENTRY_DIR && (r = ensure_parent(fs, e->path)) < 0)
                        break;
                switch (e->type) {
                case ENTRY_DIR:
                        r = ext4_mkdir_p(fs, e->path, e->mode, e->uid, e->gid);
                        if (r >= 0 && e->own_dir)
                                r = ext4_own_dir(fs, e->path, e->mode, e->uid, e->gid);
                        break;
                case ENTRY_FILE:
                        if (e->source)
                                r = ext4_write_from(fs, e->path, e->source, e->mode, e->uid, e->gid);
                        else if (e->secret)
                                r = ext4_write_secret(fs, e->path, e->data, e->len, e->mode, e->uid, e->gid);
                        else
                                r = ext4_write(fs, e->path, e->data, e->len, e->mode, e->uid, e->gid);
                        break;
                case ENTRY_SYMLINK: {
                        struct ext4_stat st;
                        const char *why = e->target_hint ? missing_target(fs, e->path, e->target) : NULL;
                        if (why) {
                                r = refuse_target(o, fs, e, why);
                                break;
                        }
                        r = ext4_lstat(fs, e->path, &st);
                        if (r == 0)
                                r = ext4_unlink(fs, e->path);
                        /* unreachable: ext4_symlink says what is in the way */
                        if (r == 0 || unreachable(r))
                                r = ext4_symlink(fs, e->path, e->target, e->uid, e->gid);
                        break;
                }
                case ENTRY_UNLINK: {
                        struct ext4_stat st;
                        r = ext4_lstat(fs, e->path, &st);
                        if (r == 0)
                                r = ext4_unlink(fs, e->path);
                        else if (unreachable(r)) /* nothing there to remove */
                                r = 0;
                        break;
                }
                }
        }
        if (r < 0) {
                ext4_abandon(fs);
                return r;
        }
        return ext4_close(fs);
}

/* What the root payload may take, counted as if nothing were replaced (an
 * estimate that errs on the side of growing), and what there is. */
struct root_room {
        uint64_t need, avail;  /* bytes */
        uint64_t inodes;       /* the payload's, and the directories made for it */
        uint64_t fs_bytes;
        struct ext4_inode_room ir;
};

/* apply_root's refusals for the base's immutable and append-only files
 * (chattr +i, +a), ahead of any write: the edits refuse them too, but by
 * then the boot partition is written and the filesystem maybe grown. */
static int check_root_flags(struct ext4_fs *fs, const struct payload *p) {
        int r = 0;
        for (size_t i = 0; i < p->n && r >= 0; i++) {
                const struct payload_entry *e = &p->v[i];
                if (e->part != PART_ROOT)
                        continue;
                enum ext4_edit what = e->type == ENTRY_UNLINK ? EXT4_EDIT_UNLINK
                                      : e->type != ENTRY_DIR  ? EXT4_EDIT_WRITE
                                      : e->own_dir            ? EXT4_EDIT_OWN_DIR
                                                              : EXT4_EDIT_MKDIR;
                r = ext4_check_edit(fs, e->path, what, e->mode, e->uid, e->gid);
        }
        return r;
}

static int root_need(const struct apply_opts *o, const struct disk_layout *l, const struct payload *p,
                     struct root_room *rr) {
        struct ext4_fs *fs = NULL;
        int r = open_root(o, l, EXT4_REQUIRE_CLEAN, &fs);
        if (r < 0)
                return r;
        /* the build's read-only look at the root before it writes: the
         * flags first, then the room */
        if ((r = check_root_flags(fs, p)) < 0) {
                ext4_close(fs);
                return r;
        }
        /* ensure_parent may make a directory or two the payload does not list */
        *rr = (struct root_room){.inodes = 8};
        for (size_t i = 0; i < p->n; i++) {
                const struct payload_entry *e = &p->v[i];
                if (e->part != PART_ROOT || e->type == ENTRY_UNLINK)
                        continue;
                rr->need += e->type == ENTRY_FILE ? ext4_cost(fs, e->len) : ext4_block_size(fs);
                /* and its name in its directory, which an empty file's
                 * blocks leave out: 8 bytes and the name, to 4; twice that,
                 * as directory blocks split by an index are half full */
                rr->need += 2 * ((8 + strlen(path_basename(e->path)) + 3) & ~(size_t)3);
                rr->inodes++;
        }
        rr->avail = ext4_free_bytes(fs);
        rr->fs_bytes = ext4_size_bytes(fs);
        ext4_inode_room(fs, &rr->ir);
        return ext4_close(fs);
}

/* How much the root filesystem grows for the payload: --grow, or what it
 * needs beyond the free space and free inodes (refused with --no-grow), in
 * 4 MiB steps. */
static int root_growth(const struct apply_opts *o, const struct disk_layout *l, const struct payload *p,
                       uint64_t *grow) {
        struct root_room rr;
        int r = root_need(o, l, p, &rr);
        if (r < 0)
                return r;
        uint64_t g = o->grow;
        if (rr.need > rr.avail) {
                char a[32], b[32], c[32];
                format_size(rr.need - rr.avail, a);
                format_size(rr.avail, b);
                format_size(rr.need, c);
                if (o->no_grow)
                        return log_error(ENOROOM, o->name,
                                         "root filesystem is %s short (%s free, about %s needed); drop --no-grow or "
                                         "use --grow SIZE",
                                         a, b, c);
                uint64_t shortfall = rr.need - rr.avail + GROW_MARGIN;
                if (g < shortfall)
                        g = shortfall;
        }
        if (rr.inodes > rr.ir.free) {
                if (o->no_grow)
                        return log_error(ENOROOM, o->name,
                                         "root filesystem has %" PRIu64 " free inodes, the payload needs about %" PRIu64
                                         "; drop --no-grow or use --grow SIZE",
                                         rr.ir.free, rr.inodes);
                /* resize2fs adds inodes only with new block groups: grow to
                 * whole groups, as many more as the inodes need */
                uint64_t groups = DIV_ROUND_UP(rr.inodes - rr.ir.free, rr.ir.per_group);
                uint64_t target = (rr.ir.groups + groups) * rr.ir.group_bytes;
                if (target > rr.fs_bytes && g < target - rr.fs_bytes)
                        g = target - rr.fs_bytes;
        }
        *grow = DIV_ROUND_UP(g, 4 * MIB) * 4 * MIB;
        return 0;
}

/* The clusters the boot payload takes beyond those of the files it
 * replaces (a config.txt rewritten in place on a full partition may need
 * none), the root directory's growth for new names included; or the
 * refusal writing it would meet, so that a dry run meets it too. */
static int boot_clusters_needed(struct fat_fs *fs, const struct payload *p, uint64_t *need) {
        _cleanup_free_ struct fat_planned *v = xcalloc(p->n ? p->n : 1, sizeof(*v));
        size_t n = 0;
        for (size_t i = 0; i < p->n; i++)
                if (p->v[i].part == PART_BOOT && p->v[i].type == ENTRY_FILE)
                        v[n++] = (struct fat_planned){p->v[i].path, p->v[i].len};
        return fat_check_writes(fs, v, n, need);
}

static int check_boot_room(const struct apply_opts *o, const struct disk_layout *l, const struct payload *p) {
        bool any = false;
        for (size_t i = 0; i < p->n && !any; i++)
                any = p->v[i].part == PART_BOOT;
        if (!any)
                return 0;
        struct fat_fs *fs = NULL;
        int r = open_boot(o, l, &fs);
        if (r < 0)
                return r;
        uint64_t need, avail = fat_free_bytes(fs), cs = fat_cluster_bytes(fs);
        r = boot_clusters_needed(fs, p, &need);
        fat_close(fs);
        if (r < 0)
                return r;
        if (need * cs > avail) {
                char a[32], b[32];
                format_size(need * cs, a);
                format_size(avail, b);
                return log_error(ENOROOM, o->name, "boot partition has %s free, the payload needs %s more", b, a);
        }
        return 0;
}

int apply_payload(const struct apply_opts *o, struct disk_layout *l, const struct payload *p) {
        uint64_t grow;
        int r = root_growth(o, l, p, &grow);
        if (r < 0)
                return r;
        if (grow) {
                char g[32];
                format_size(grow, g);
                log_info("Growing the root filesystem by %s", g);
                if ((r = disk_grow_last(o->image, o->name, l, l->image_bytes + grow)) < 0)
                        return r;
                const struct disk_part *rp = root_part(l); /* the layout changed */
                if ((r = ext4_grow(o->image, o->name, disk_part_offset(rp), disk_part_bytes(rp))) < 0)
                        return r;
        }
        if ((r = check_boot_room(o, l, p)) < 0)
                return r;
        if ((r = apply_boot(o, l, p)) < 0)
                return r;
        return apply_root(o, l, p);
}

/* apply_root's refusal, ahead of it: a symlink whose target must exist
 * (the time zone's) and is neither in the base nor in the payload. */
static int check_targets(const struct apply_opts *o, const struct disk_layout *l, const struct payload *p) {
        struct ext4_fs *fs = NULL;
        int r = open_root(o, l, EXT4_REQUIRE_CLEAN, &fs);
        if (r < 0)
                return r;
        for (size_t i = 0; i < p->n && r >= 0; i++) {
                const struct payload_entry *e = &p->v[i];
                if (e->part != PART_ROOT || e->type != ENTRY_SYMLINK || !e->target_hint)
                        continue;
                const struct payload_entry *t = payload_find(p, PART_ROOT, e->target);
                const char *why = t && t->type != ENTRY_UNLINK ? NULL : missing_target(fs, e->path, e->target);
                if (why)
                        r = refuse_target(o, fs, e, why);
        }
        int k = ext4_close(fs);
        return r < 0 ? r : k;
}

int apply_check(const struct apply_opts *o, const struct disk_layout *l, const struct payload *p, uint64_t *grow) {
        int r = root_growth(o, l, p, grow);
        if (r < 0)
                return r;
        if (*grow && (r = disk_grow_check(o->name, l, l->image_bytes + *grow)) < 0)
                return r;
        if ((r = check_boot_room(o, l, p)) < 0)
                return r;
        return check_targets(o, l, p);
}

int apply_locate(const struct apply_opts *o, const struct disk_layout *l, const char *path, uint64_t off,
                 uint64_t len, struct ext4_span *v, size_t max, size_t *n) {
        struct ext4_fs *fs = NULL;
        *n = 0;
        int r = open_root(o, l, 0, &fs);
        if (r < 0)
                return r;
        r = ext4_map(fs, path, off, len, v, max, n);
        int k = ext4_close(fs);
        return r < 0 ? r : k;
}
