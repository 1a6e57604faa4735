/* SPDX-License-Identifier: GPL-3.0-or-later */
/* `dimimage inspect`: report what an image holds, never change it.  A
 * compressed image is decompressed to a temporary file first (removed on
 * every path, and on SIGINT/SIGTERM through output_track_temp). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cli.h"
#include "disk.h"
#include "ext4.h"
#include "inspect.h"
#include "json.h"
#include "log.h"
#include "output.h"
#include "source.h"
#include "util.h"

#define OS_RELEASE_MAX (64 * 1024)
#define MANIFEST_MAX (1024 * 1024)
#define MAX_KEYS 64

struct os_release {
        unsigned n;
        char *key[MAX_KEYS];
        char *value[MAX_KEYS];
};

struct report {
        const char *image;     /* as the user named it */
        struct disk_layout l;
        bool have_os;
        struct os_release os;
        char *manifest;        /* verbatim JSON text, NULL when none */
        bool manifest_bad;     /* there is one, but it is not one JSON object */
        bool root_unreadable;  /* there is a root filesystem, but it could not be read */
        bool no_root;          /* no partition reads as ext4: a damaged superblock, or another system */
};

static void os_release_free(struct os_release *o) {
        for (unsigned i = 0; i < o->n; i++) {
                free(o->key[i]);
                free(o->value[i]);
        }
        o->n = 0;
}

static const char *os_get(const struct os_release *o, const char *key) {
        for (unsigned i = 0; i < o->n; i++)
                if (strcmp(o->key[i], key) == 0)
                        return o->value[i];
        return NULL;
}

/* os-release(5): KEY=VALUE lines, values optionally quoted, shell-style
 * escapes inside double quotes. */
static void os_release_parse(const char *text, size_t len, struct os_release *o) {
        const char *p = text, *end = text + len;
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                const char *le = nl ? nl : end;
                while (p < le && (*p == ' ' || *p == '\t'))
                        p++;
                const char *eq = memchr(p, '=', (size_t)(le - p));
                if (p < le && *p != '#' && eq && eq > p && o->n < MAX_KEYS) {
                        bool valid_key = true;
                        for (const char *k = p; k < eq; k++)
                                if (!((*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') || *k == '_' ||
                                      (*k >= 'a' && *k <= 'z')))
                                        valid_key = false;
                        if (valid_key) {
                                struct buf v = { 0 };
                                const char *s = eq + 1;
                                const char *ve = le;
                                while (ve > s && (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '\r'))
                                        ve--;
                                char quote = 0;
                                for (; s < ve; s++) {
                                        if (!quote && (*s == '"' || *s == '\'')) {
                                                quote = *s;
                                                continue;
                                        }
                                        if (quote && *s == quote) {
                                                quote = 0;
                                                continue;
                                        }
                                        if (quote == '"' && *s == '\\' && s + 1 < ve &&
                                            strchr("\"\\$`", s[1]))
                                                s++;
                                        buf_append(&v, s, 1);
                                }
                                buf_append(&v, "", 0);
                                o->key[o->n] = xstrndup(p, (size_t)(eq - p));
                                o->value[o->n] = (char *)buf_steal(&v, NULL);
                                if (!o->value[o->n])
                                        o->value[o->n] = xstrdup("");
                                o->n++;
                        }
                }
                p = nl ? nl + 1 : end;
        }
}

/* Top-level "key": "string" or number from the manifest, for the human
 * summary only (the JSON output embeds the whole manifest). */
static char *manifest_field(const char *m, const char *key) { return json_lookup(m, strlen(m), &key, 1); }

/* inspect reports; it does not fail over a root filesystem it cannot read.
 * The one refusal ext4_open_ro would log as an error for an otherwise
 * readable image (a filesystem larger than its partition, e.g. a truncated
 * download) is checked here first and reported as a warning. */
static bool root_fits(const char *path, const struct report *rep, const struct disk_part *p) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        uint8_t sb[1024];
        if (fd < 0 || pread_full(fd, sb, sizeof(sb), disk_part_offset(p) + 1024) < 0)
                return false;
        if (get_le16(sb + 0x38) != 0xef53)
                return false;
        uint32_t log_bs = get_le32(sb + 0x18);
        if (log_bs > 6)
                return false;
        uint64_t blocks = get_le32(sb + 0x04);
        if (get_le32(sb + 0x60) & 0x80) /* INCOMPAT_64BIT */
                blocks |= (uint64_t)get_le32(sb + 0x150) << 32;
        uint64_t bytes = blocks << (10 + log_bs);
        if (bytes > disk_part_bytes(p) || disk_part_offset(p) + disk_part_bytes(p) > rep->l.image_bytes) {
                log_warn(rep->image, "the root filesystem (partition %u) does not fit in the image; not reading it",
                         p->number);
                return false;
        }
        return true;
}

/* A lookup that failed for another reason than an absent (or unreachable)
 * path means the filesystem itself is damaged: looking further would only
 * say so again. */
static bool absent(int r) { return r == -ENOENT || r == -ENOTDIR || r == -ELOOP; }

static void read_root_fs(const char *path, struct report *rep, const struct disk_part *p) {
        struct ext4_fs *fs = NULL;
        if (ext4_open_ro(path, disk_part_offset(p), disk_part_bytes(p), &fs) < 0) {
                rep->root_unreadable = true;
                return;
        }

        struct ext4_stat st;
        const char *os_path = NULL;
        bool follow = false;
        int r = ext4_lstat(fs, "/etc/os-release", &st);
        if (r == 0) {
                os_path = "/etc/os-release";
                follow = (st.mode & S_IFMT) == S_IFLNK;
        } else if (absent(r) && (r = ext4_lstat(fs, "/usr/lib/os-release", &st)) == 0 &&
                   (st.mode & S_IFMT) == S_IFREG)
                os_path = "/usr/lib/os-release";
        if (r < 0 && !absent(r)) {
                rep->root_unreadable = true;
                ext4_close(fs);
                return;
        }
        if (os_path) {
                uint8_t *d = NULL;
                size_t n = 0;
                r = follow ? ext4_read_follow(fs, os_path, OS_RELEASE_MAX, &d, &n)
                           : ext4_read(fs, os_path, OS_RELEASE_MAX, &d, &n);
                if (r == 0) {
                        os_release_parse((const char *)d, n, &rep->os);
                        rep->have_os = true;
                }
                free(d);
        }

        r = ext4_lstat(fs, "/etc/dimimage/manifest.json", &st);
        if (r == 0 && (st.mode & S_IFMT) == S_IFREG) {
                uint8_t *d = NULL;
                size_t n = 0;
                if (ext4_read(fs, "/etc/dimimage/manifest.json", MANIFEST_MAX, &d, &n) < 0)
                        rep->manifest_bad = true;
                /* pasted into --json's output as it is, so it must be
                 * exactly one object: anything else could add keys of its
                 * own or break the output */
                else if (json_is_object((const char *)d, n))
                        rep->manifest = xstrndup((const char *)d, n);
                else {
                        rep->manifest_bad = true;
                        log_warn(rep->image,
                                 "/etc/dimimage/manifest.json is not one valid JSON object; reported as null");
                }
                free(d);
        } else if (r < 0 && !absent(r))
                rep->manifest_bad = true;
        ext4_close(fs);
}

/* inspect is a report: damage inside the root filesystem is said as a
 * warning (by ext4.c, demoted) and the rest is still shown, exit 0.  Only
 * an image unreadable as a whole (disk_probe_any_named) is an error. */
static void read_root(const char *path, struct report *rep) {
        const struct disk_layout *l = &rep->l;
        if (l->root < 0) {
                /* "not built by dimimage" would be a guess: a damaged
                 * superblock hides a manifest as well as an OS */
                rep->no_root = true;
                log_warn(rep->image, "no partition reads as an ext4 root filesystem (a damaged superblock, or not "
                                     "a Raspberry Pi OS image): its OS and builder are unknown");
                return;
        }
        const struct disk_part *p = &l->parts[l->root];
        if (!root_fits(path, rep, p)) {
                rep->root_unreadable = true;
                return;
        }
        log_demote(true);
        read_root_fs(path, rep, p);
        log_demote(false);
}

static const char *role_of(const struct disk_layout *l, unsigned i) {
        if ((int)i == l->boot)
                return "boot";
        if ((int)i == l->root)
                return "root";
        return NULL;
}

static void json_str_or_null(struct json *j, const char *s) {
        if (s && *s)
                json_string(j, s);
        else
                json_null(j);
}

static char *render_json(const struct report *rep) {
        const struct disk_layout *l = &rep->l;
        struct json j = { 0 };
        json_begin_object(&j);
        json_key(&j, "table");
        json_str_or_null(&j, l->table);
        json_key(&j, "disk_id");
        json_str_or_null(&j, l->disk_id);
        json_key(&j, "image_bytes");
        json_uint(&j, l->image_bytes);
        json_key(&j, "partitions");
        json_begin_array(&j);
        for (unsigned i = 0; i < l->n; i++) {
                const struct disk_part *p = &l->parts[i];
                json_begin_object(&j);
                json_key(&j, "number");
                json_uint(&j, p->number);
                json_key(&j, "start_sector");
                json_uint(&j, p->start);
                json_key(&j, "sectors");
                json_uint(&j, p->sectors);
                json_key(&j, "fs_type");
                json_str_or_null(&j, p->fs_type);
                json_key(&j, "label");
                json_str_or_null(&j, p->label);
                json_key(&j, "uuid");
                json_str_or_null(&j, p->uuid);
                json_key(&j, "partuuid");
                json_str_or_null(&j, p->partuuid);
                json_key(&j, "role");
                json_str_or_null(&j, role_of(l, i));
                json_end_object(&j);
        }
        json_end_array(&j);
        /* what a null os_release and manifest stand for */
        json_key(&j, "root_filesystem");
        json_string(&j, rep->no_root ? "none" : rep->root_unreadable ? "unreadable" : "read");
        json_key(&j, "os_release");
        if (rep->have_os) {
                json_begin_object(&j);
                for (unsigned i = 0; i < rep->os.n; i++) {
                        json_key(&j, rep->os.key[i]);
                        json_string(&j, rep->os.value[i]);
                }
                json_end_object(&j);
        } else
                json_null(&j);
        json_key(&j, "manifest");
        if (rep->manifest)
                json_raw(&j, rep->manifest);
        else
                json_null(&j);
        json_end_object(&j);
        return json_finish(&j, NULL);
}

/* Everything but numbers in the human output comes from the image (or its
 * name): made printable, so a label or PRETTY_NAME cannot send the terminal
 * escape sequences.  --json needs no such care: it escapes controls. */
static void make_printable(struct report *rep) {
        struct disk_layout *l = &rep->l;
        str_printable(l->table);
        str_printable(l->disk_id);
        for (unsigned i = 0; i < l->n; i++) {
                str_printable(l->parts[i].fs_type);
                str_printable(l->parts[i].fs_version);
                str_printable(l->parts[i].label);
                str_printable(l->parts[i].uuid);
        }
        for (unsigned i = 0; i < rep->os.n; i++)
                str_printable(rep->os.value[i]);
}

static void print_human(struct report *rep) {
        make_printable(rep);
        const struct disk_layout *l = &rep->l;
        char sz[32];
        format_size(l->image_bytes, sz);
        _cleanup_free_ char *name = xstrdup(rep->image);
        str_printable(name);
        printf("%s: %llu bytes (%s)\n", name, (unsigned long long)l->image_bytes, sz);
        printf("Partition table: %s, disk id %s\n", l->table[0] ? l->table : "none",
               l->disk_id[0] ? l->disk_id : "-");
        printf("%-3s %-10s %-10s %-10s %-4s %-6s %-8s %-12s %-36s %s\n", "#", "START", "SECTORS", "SIZE", "TYPE",
               "FS", "VERSION", "LABEL", "UUID", "ROLE");
        for (unsigned i = 0; i < l->n; i++) {
                const struct disk_part *p = &l->parts[i];
                char type[8];
                if (p->mbr_type)
                        snprintf(type, sizeof(type), "0x%02x", p->mbr_type);
                else
                        snprintf(type, sizeof(type), "-");
                const char *role = role_of(l, i);
                format_size(disk_part_bytes(p), sz);
                printf("%-3u %-10llu %-10llu %-10s %-4s %-6s %-8s %-12s %-36s %s\n", p->number,
                       (unsigned long long)p->start, (unsigned long long)p->sectors, sz, type,
                       p->fs_type[0] ? p->fs_type : "-", p->fs_version[0] ? p->fs_version : "-",
                       p->label[0] ? p->label : "-", p->uuid[0] ? p->uuid : "-", role ? role : "-");
        }
        const char *pretty = rep->have_os ? os_get(&rep->os, "PRETTY_NAME") : NULL;
        if (!pretty && rep->have_os)
                pretty = os_get(&rep->os, "NAME");
        printf("OS: %s\n", pretty                 ? pretty
                            : rep->root_unreadable ? "unknown (root filesystem not readable)"
                            : rep->no_root         ? "unknown (no ext4 root filesystem found)"
                                                   : "unknown (no os-release found)");
        if (rep->manifest) {
                _cleanup_free_ char *role = manifest_field(rep->manifest, "role");
                _cleanup_free_ char *host = manifest_field(rep->manifest, "hostname");
                _cleanup_free_ char *when = manifest_field(rep->manifest, "build_time");
                if (!when)
                        when = manifest_field(rep->manifest, "built");
                for (char *f[] = { role, host, when }, **p = f; p < f + 3; p++)
                        if (*p)
                                str_printable(*p);
                printf("Built by dimimage: role %s, hostname %s, built %s\n", role ? role : "?", host ? host : "?",
                       when ? when : "?");
        } else if (rep->root_unreadable)
                printf("Built by dimimage: unknown (root filesystem not readable)\n");
        else if (rep->no_root)
                printf("Built by dimimage: unknown (no ext4 root filesystem found)\n");
        else if (rep->manifest_bad)
                printf("Built by dimimage: unknown (/etc/dimimage/manifest.json is unreadable)\n");
        else
                printf("Built by dimimage: no (no /etc/dimimage/manifest.json)\n");
}

static bool is_compressed(const char *image, int fd) {
        uint8_t m[6] = { 0 };
        if (pread(fd, m, sizeof(m), 0) == (ssize_t)sizeof(m)) {
                if (!memcmp(m, "\xfd" "7zXZ\0", 6) || !memcmp(m, "\x1f\x8b", 2) ||
                    !memcmp(m, "\x28\xb5\x2f\xfd", 4) || !memcmp(m, "PK\x03\x04", 4))
                        return true;
        }
        return str_has_suffix(image, ".xz") || str_has_suffix(image, ".gz") || str_has_suffix(image, ".zst") ||
               str_has_suffix(image, ".zip");
}

static uint64_t free_bytes(const char *dir) {
        struct statvfs sv;
        if (statvfs(dir, &sv) < 0)
                return 0;
        return (uint64_t)sv.f_bavail * sv.f_frsize;
}

/* $TMPDIR normally; beside the image when $TMPDIR looks too small for it
 * (the raw image is typically 3-5 times its compressed size, less with holes). */
static char *temp_dir_for(const char *image, uint64_t compressed_bytes) {
        const char *t = getenv("TMPDIR");
        if (!t || !*t)
                t = "/tmp";
        _cleanup_free_ char *beside = path_dirname(image);
        uint64_t need = compressed_bytes * 5;
        if (free_bytes(t) < need && free_bytes(beside) > free_bytes(t))
                return xstrdup(beside);
        return xstrdup(t);
}

static int decompress(const char *image, const struct stat *st, char **ret_path) {
        _cleanup_free_ char *dir = temp_dir_for(image, (uint64_t)st->st_size);
        char *tmp = xasprintf("%s/.dimimage-inspect.XXXXXX", dir);
        output_install_signal_handlers();
        int fd = output_mkstemp(tmp);
        if (fd < 0) {
                int r = log_error(-fd, dir, "cannot create a temporary file to decompress %s into: %s", image,
                                  strerror(-fd));
                free(tmp);
                return r;
        }
        struct source_opts o = { .no_cache = true, .quiet = true, .scratch = true };
        struct source_info info;
        int r = source_extract(image, fd, &o, &info);
        close(fd);
        if (r < 0) {
                unlink(tmp);
                output_untrack_temp(tmp);
                free(tmp);
                return r;
        }
        *ret_path = tmp;
        return 0;
}

static void usage(FILE *f) {
        fputs("Usage: dimimage inspect IMAGE [--json]\n"
              "Show an image's partition table, filesystems, OS release and, for an image\n"
              "dimimage built, its manifest.  IMAGE may be .img, .img.xz, .img.gz, .img.zst or .zip.\n"
              "\n"
              "  --json    machine-readable output (a stable contract)\n"
              "  -h, --help\n"
              "\n"
              "example: dimimage inspect 2025-11-24-raspios-trixie-arm64-lite.img.xz --json\n",
              f);
}

/* a is --opt (or an abbreviation, as getopt takes one before the image)
 * given no value */
static bool names_option(const char *a, const char *opt) {
        return !strchr(a, '=') && cli_word_names(a, opt);
}

int cmd_inspect(int argc, char **argv) {
        static const struct option opts[] = {
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        bool as_json = false;
        optind = 0;
        opterr = 0;
        int c;
        while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
                switch (c) {
                case 'j':
                        as_json = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        return cli_getopt_error("inspect", opts, c, argv, true);
                }
        }
        /* Options after the image name are fine too (`inspect x.img --json`),
         * until a "--": after it (getopt's, or one of these) every word is a
         * file name, so `inspect -- -x.img` reads the file "-x.img". */
        const char *image = NULL;
        bool names_only = optind > 1 && strcmp(argv[optind - 1], "--") == 0;
        for (int i = optind; i < argc; i++) {
                const char *a = argv[i];
                if (names_only || a[0] != '-' || !a[1]) {
                        if (image)
                                return cli_usage_error("inspect", "more than one image given: %s, %s", image, a);
                        image = a;
                } else if (strcmp(a, "--") == 0)
                        names_only = true;
                else if (names_option(a, "json"))
                        as_json = true;
                else if (strcmp(a, "-h") == 0 || names_option(a, "help")) {
                        usage(stdout);
                        return 0;
                } else if (cli_word_names(a, "json") || cli_word_names(a, "help"))
                        /* as getopt's "--json=yes" before the image */
                        return cli_usage_error("inspect", "option '%s' takes no value",
                                               cli_word_names(a, "json") ? "--json" : "--help");
                else
                        return cli_unknown_option("inspect", a, true);
        }
        if (!image)
                return cli_usage_error("inspect", "no image given");
        if (!*image || !strcmp(image, "-"))
                return cli_usage_error("inspect", "'%s' is not an image file; standard input is not read", image);

        struct report rep = { .image = image };
        _cleanup_free_ char *tmp = NULL;
        int r;
        {
                struct stat st = {0};
                _cleanup_close_ int fd = disk_open_image(image, image, &st);
                if (fd < 0)
                        return fd;
                if (S_ISREG(st.st_mode) && is_compressed(image, fd)) {
                        r = decompress(image, &st, &tmp);
                        if (r < 0)
                                return r;
                }
        }
        const char *path = tmp ? tmp : image;
        r = disk_probe_any_named(path, image, &rep.l);
        if (r >= 0)
                read_root(path, &rep);
        if (tmp) {
                unlink(tmp);
                output_untrack_temp(tmp);
        }
        if (r < 0) {
                os_release_free(&rep.os);
                free(rep.manifest);
                return r;
        }

        if (as_json) {
                _cleanup_free_ char *text = render_json(&rep);
                fputs(text, stdout);
        } else
                print_human(&rep);
        os_release_free(&rep.os);
        free(rep.manifest);
        if (fflush(stdout) != 0)
                return log_error(errno, "stdout", "cannot write: %m");
        return 0;
}
