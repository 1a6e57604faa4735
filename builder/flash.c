/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Writing an image to a disk is the one thing dimimage does that can destroy
 * data the user cares about, so the checks come first and each refusal is
 * one line naming the device and the reason.  A regular file works as the
 * device: it is treated as a disk of its current size. */
#include "flash.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <zstd.h>

#include "bmap.h"
#include "cli.h"
#include "hash.h"
#include "log.h"
#include "output.h"
#include "progress.h"
#include "source.h"
#include "util.h"
#include "xzmt.h"

#define CHUNK (4u << 20)
/* The partition tables: MBR in sector 0, a GPT's header and entries in the
 * first 34 sectors of 512 B or 6 of 4 KiB.  They are written last, so a
 * flash cut short leaves a disk with no table rather than a valid table
 * over half-written filesystems that something would try to mount. */
#define HEAD (64u << 10)

struct flash_opts {
        bool force, no_verify, quiet, yes;
        const char *bmap_path;
};

struct target {
        const char *path;
        int fd;
        bool is_blk;
        uint64_t size;
        dev_t rdev;
};

/* The image as a stream of bytes from offset 0: raw images are read with
 * pread (so unmapped ranges are skipped without reading), compressed ones
 * through source_stream and discarded where unmapped. */
struct reader {
        const char *path;
        int fd;                     /* raw image, else -1 */
        struct source_stream *s;    /* compressed image */
        uint64_t pos, raw_size;
};

static void usage(FILE *f) {
        fputs("Usage: dimimage flash [OPTIONS] IMAGE DEVICE\n"
              "\n"
              "Write IMAGE (.img, .img.xz, .img.zst, .img.gz, .zip) to DEVICE, writing only the\n"
              "blocks its bmap marks as used, then read them back and verify them.\n"
              "The bmap is IMAGE.bmap, or the same name without .xz/.zst/.gz plus .bmap.\n"
              "\n"
              "Options:\n"
              "  -b, --bmap FILE  use this bmap instead of looking beside IMAGE\n"
              "      --no-verify  skip checksum checks while writing and the read-back\n"
              "  -f, --force      write to a non-removable disk or a partition\n"
              "  -y, --yes        do not ask before writing a block device or a file\n"
              "                   that holds data\n"
              "  -q, --quiet      no progress\n"
              "  -h, --help       this text\n"
              "\n"
              "Refuses a mounted device, the disk holding the running system, a device\n"
              "smaller than the image and (without --force) a non-removable disk.  The\n"
              "partition table is written last: a flash cut short leaves none.\n"
              "A regular file works as DEVICE and is treated as a disk of its size\n"
              "(asked about first when it holds data).\n"
              "\n"
              "Examples:\n"
              "  dimimage flash dimdim-app.img.xz /dev/mmcblk0\n"
              "  dimimage flash --yes --quiet dimdim-app.img /dev/sdb\n"
              "  truncate -s 4G disk.raw && dimimage flash dimdim-app.img disk.raw\n",
              f);
}

static bool is_compressed(const char *path, int fd) {
        uint8_t m[6] = { 0 };
        if (pread(fd, m, sizeof(m), 0) < 4)
                return false;
        return memcmp(m, "\xfd" "7zXZ", 6) == 0 || memcmp(m, "\x28\xb5\x2f\xfd", 4) == 0 ||
               (m[0] == 0x1f && m[1] == 0x8b) || memcmp(m, "PK\3\4", 4) == 0;
}

/* Before the device is touched: an empty file, a text file or a download
 * cut short to nothing is refused rather than "written and verified".  A
 * raw image is checked as a build checks its base; a compressed one by its
 * first decoded bytes, and *at_least raised to the size its container
 * states (a .zip's). */
static int check_image_head(const char *image, bool compressed, uint64_t *at_least) {
        if (!compressed)
                return source_probe(image, false);
        /* as far as an ISO 9660's signature, to name one */
        _cleanup_free_ uint8_t *head = xmalloc(SOURCE_ISO9660_HEAD);
        struct source_stream *s = NULL;
        int r = source_stream_open(image, &s);
        if (r < 0)
                return r;
        long long n = source_stream_read(s, head, SOURCE_ISO9660_HEAD);
        *at_least = MAX(*at_least, source_stream_size_hint(s));
        source_stream_close(s);
        if (n < 0)
                return (int)n;
        if (n == 0)
                return log_error(EINVAL, image, "the image is empty: nothing to flash");
        return source_check_head(image, head, (size_t)n, true, false);
}

/* A .zst's first frame header carries its decoded size when the compressor
 * knew it (zstd(1) of a file, our own outputs).  Further frames can only add
 * to it, so it is a lower bound on the image's size. */
static uint64_t zstd_size_at_least(int fd) {
        uint8_t h[18]; /* a frame header's largest size (ZSTD_FRAMEHEADERSIZE_MAX, not public API) */
        ssize_t n = pread(fd, h, sizeof(h), 0);
        if (n <= 0)
                return 0;
        unsigned long long size = ZSTD_getFrameContentSize(h, (size_t)n);
        return size == ZSTD_CONTENTSIZE_UNKNOWN || size == ZSTD_CONTENTSIZE_ERROR ? 0 : size;
}

/* A .gz's last member ends with ISIZE, that member's decoded size modulo
 * 2^32: no more than the member's size, so no more than the image's. */
static uint64_t gzip_size_at_least(int fd, uint64_t file_size) {
        uint8_t m[2], isize[4];
        if (file_size < 18 || pread(fd, m, sizeof(m), 0) != (ssize_t)sizeof(m) || m[0] != 0x1f || m[1] != 0x8b ||
            pread(fd, isize, sizeof(isize), (off_t)(file_size - 4)) != (ssize_t)sizeof(isize))
                return 0;
        return get_le32(isize);
}

/* What the decoded image holds at least, when its size is not known.
 * *from_gzip: it is what a .gz's last 4 bytes say, and those are whatever
 * bytes a cut-off download happens to end with. */
static uint64_t size_at_least(int fd, uint64_t file_size, bool *from_gzip) {
        uint64_t z = zstd_size_at_least(fd);
        uint64_t g = z ? 0 : gzip_size_at_least(fd, file_size);
        *from_gzip = g != 0;
        return z ? z : g;
}

static char *find_bmap(const char *image) {
        char *p = xasprintf("%s.bmap", image);
        if (access(p, F_OK) == 0)
                return p;
        free(p);
        static const char *const exts[] = { ".xz", ".zst", ".gz", ".zip" };
        for (size_t i = 0; i < ARRAY_SIZE(exts); i++)
                if (str_has_suffix(image, exts[i])) {
                        p = xasprintf("%.*s.bmap", (int)(strlen(image) - strlen(exts[i])), image);
                        if (access(p, F_OK) == 0)
                                return p;
                        free(p);
                }
        return NULL;
}

static long long reader_read(struct reader *r, void *buf, size_t n) {
        if (r->fd >= 0) {
                if (r->pos >= r->raw_size)
                        return 0;
                n = (size_t)MIN((uint64_t)n, r->raw_size - r->pos);
                int e = pread_full(r->fd, buf, n, r->pos);
                if (e < 0)
                        return log_error(e, r->path, "cannot read: %s", strerror(-e));
                r->pos += n;
                return (long long)n;
        }
        long long got = source_stream_read(r->s, buf, n);
        if (got > 0)
                r->pos += (uint64_t)got;
        return got;
}

static int reader_skip_to(struct reader *r, uint64_t off, uint8_t *buf) {
        if (r->fd >= 0) {
                r->pos = off;
                return 0;
        }
        while (r->pos < off) {
                long long got = reader_read(r, buf, (size_t)MIN(off - r->pos, (uint64_t)CHUNK));
                if (got < 0)
                        return (int)got;
                if (got == 0)
                        return log_error(EBADMSG, r->path, "the image ends before the end of its bmap");
        }
        return 0;
}

static int read_sysfs(const char *path, char *buf, size_t n) {
        FILE *f = fopen(path, "re");
        if (!f)
                return -errno;
        bool ok = fgets(buf, (int)n, f) != NULL;
        fclose(f);
        if (!ok)
                return -EIO;
        buf[strcspn(buf, "\n")] = 0;
        return 0;
}

/* The block device rdev's sysfs attribute attr ("size", "device/model"). */
static int read_dev_attr(dev_t rdev, const char *attr, char *buf, size_t n) {
        char path[128];
        snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%s", major(rdev), minor(rdev), attr);
        return read_sysfs(path, buf, n);
}

/* "MAJOR:MINOR" at s (sysfs dev files, mountinfo's third field), digits
 * only: strtoul alone would also take blanks and signs.  *end is left just
 * after MINOR. */
static bool parse_dev(const char *s, dev_t *dev, const char **end) {
        unsigned long v[2];
        for (int i = 0; i < 2; i++) {
                if (*s < '0' || *s > '9')
                        return false;
                char *e;
                errno = 0;
                v[i] = strtoul(s, &e, 10);
                if (errno || v[i] > UINT_MAX || (i == 0 && *e != ':'))
                        return false;
                s = i == 0 ? e + 1 : e;
        }
        *dev = makedev((unsigned)v[0], (unsigned)v[1]);
        *end = s;
        return true;
}

/* The start of the blank-separated field after the one at p. */
static const char *next_field(const char *p) {
        p += strcspn(p, " \t\n");
        return p + strspn(p, " \t");
}

/* The device and all its partitions, as dev_t. */
static size_t disk_devs(dev_t disk, dev_t *out, size_t max) {
        size_t n = 0;
        out[n++] = disk;
        char *sys = xasprintf("/sys/dev/block/%u:%u", major(disk), minor(disk));
        DIR *d = opendir(sys);
        struct dirent *e;
        while (d && (e = readdir(d)) && n < max) {
                if (e->d_name[0] == '.')
                        continue;
                char *pp = xasprintf("%s/%s/partition", sys, e->d_name), *dp = xasprintf("%s/%s/dev", sys, e->d_name);
                char v[32];
                const char *end;
                dev_t dev;
                if (access(pp, F_OK) == 0 && read_sysfs(dp, v, sizeof(v)) == 0 && parse_dev(v, &dev, &end) &&
                    *end == '\0')
                        out[n++] = dev;
                free(pp);
                free(dp);
        }
        if (d)
                closedir(d);
        free(sys);
        return n;
}

/* Where a device (or one of its partitions) is mounted, from mountinfo's
 * major:minor field; caller frees. */
static char *mounted_at(const dev_t *devs, size_t n) {
        FILE *f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return NULL;
        char *line = NULL, *found = NULL;
        size_t cap = 0;
        while (!found && getline(&line, &cap, f) > 0) {
                /* ID PARENT MAJOR:MINOR ROOT MOUNT-POINT ... */
                const char *p = next_field(next_field(line)), *end;
                dev_t dev;
                if (!parse_dev(p, &dev, &end) || (*end != ' ' && *end != '\t'))
                        continue;
                const char *mnt = next_field(next_field(end));
                size_t len = strcspn(mnt, " \t\n");
                if (len == 0)
                        continue;
                for (size_t i = 0; i < n && !found; i++)
                        if (devs[i] == dev)
                                found = xstrndup(mnt, len);
        }
        free(line);
        fclose(f);
        return found;
}

/* A loop device reading through to the target: sysfs lists it under neither
 * holders nor mountinfo, and O_EXCL does not see it, yet its filesystem may
 * be mounted.  Matches a backing block device among devs[n], or a backing
 * regular file that is file (when not NULL).  The loop device's name, or
 * NULL; caller frees. */
static char *loop_over(const dev_t *devs, size_t n, const struct stat *file) {
        DIR *d = opendir("/sys/block");
        if (!d)
                return NULL;
        struct dirent *e;
        char *found = NULL;
        while (!found && (e = readdir(d))) {
                if (strncmp(e->d_name, "loop", 4) != 0)
                        continue;
                char *bf = xasprintf("/sys/block/%s/loop/backing_file", e->d_name);
                char back[PATH_MAX];
                struct stat st;
                if (read_sysfs(bf, back, sizeof(back)) == 0 && stat(back, &st) == 0) {
                        bool hit = file && S_ISREG(st.st_mode) && st.st_dev == file->st_dev &&
                                   st.st_ino == file->st_ino;
                        for (size_t i = 0; !file && S_ISBLK(st.st_mode) && i < n; i++)
                                hit = hit || devs[i] == st.st_rdev;
                        if (hit)
                                found = xasprintf("/dev/%s", e->d_name);
                }
                free(bf);
        }
        closedir(d);
        return found;
}

/* Whether one of devs[n] is a loop device reading the image itself: its
 * write would rewrite the image as it reads it, and a stop or an odd
 * bmap leave both broken. */
static bool loop_of_image(const dev_t *devs, size_t n, const struct stat *image) {
        for (size_t i = 0; image && i < n; i++) {
                char bf[96], back[PATH_MAX];
                struct stat st;
                snprintf(bf, sizeof(bf), "/sys/dev/block/%u:%u/loop/backing_file", major(devs[i]), minor(devs[i]));
                if (read_sysfs(bf, back, sizeof(back)) == 0 && stat(back, &st) == 0 && S_ISREG(st.st_mode) &&
                    st.st_dev == image->st_dev && st.st_ino == image->st_ino)
                        return true;
        }
        return false;
}

static bool dir_has_entries(const char *path) {
        DIR *d = opendir(path);
        if (!d)
                return false;
        struct dirent *e;
        bool any = false;
        while (!any && (e = readdir(d)))
                any = e->d_name[0] != '.';
        closedir(d);
        return any;
}

static int check_block_device(struct target *t, const struct stat *image, const struct flash_opts *o) {
        char sys[64], v[64];
        snprintf(sys, sizeof(sys), "/sys/dev/block/%u:%u", major(t->rdev), minor(t->rdev));
        dev_t devs[256];
        size_t n = disk_devs(t->rdev, devs, ARRAY_SIZE(devs));
        if (loop_of_image(devs, n, image))
                return log_error(EINVAL, t->path, "is a loop device over the image itself; write another device");
        struct stat root;
        if (stat("/", &root) == 0)
                for (size_t i = 0; i < n; i++)
                        if (devs[i] == root.st_dev)
                                return log_error(EBUSY, t->path, "holds the running system (/); refusing to write it");
        _cleanup_free_ char *mnt = mounted_at(devs, n);
        if (mnt)
                return log_error(EBUSY, t->path, "is mounted (at %s); unmount it first", mnt);
        char *holders = xasprintf("%s/holders", sys);
        bool held = dir_has_entries(holders);
        free(holders);
        if (held)
                return log_error(EBUSY, t->path, "is in use (by device-mapper, RAID or LVM); release it first");
        _cleanup_free_ char *loop = loop_over(devs, n, NULL);
        if (loop)
                return log_error(EBUSY, t->path, "is in use by loop device %s; detach it first (losetup -d %s)", loop,
                                 loop);
        char *part = xasprintf("%s/partition", sys);
        bool is_part = access(part, F_OK) == 0;
        free(part);
        if (is_part && !o->force)
                return log_error(EINVAL, t->path, "is a partition; give the whole disk (or --force)");
        bool removable = read_dev_attr(t->rdev, "removable", v, sizeof(v)) == 0 && strcmp(v, "1") == 0;
        char *real = realpath(sys, NULL);
        if (real && strstr(real, "/usb"))
                removable = true;
        else if (real && strstr(path_basename(real), "mmcblk")) {
                /* An SD card, unless the MMC core says eMMC: soldered to the
                 * board (a CM4, a laptop), and maybe what it boots from. */
                removable = removable || read_dev_attr(t->rdev, "device/type", v, sizeof(v)) < 0 ||
                            strcmp(v, "MMC") != 0;
        }
        free(real);
        if (!removable && !o->force) {
                char sz[32];
                format_size(t->size, sz);
                return log_error(EPERM, t->path, "is not a removable disk (%s); use --force if you are sure", sz);
        }
        return 0;
}

/* The checks looked at the path; what was opened must be what they passed
 * (a symlink or udev's node may be replaced between the two). */
static int same_as_checked(const struct target *t, const struct stat *checked) {
        struct stat st;
        if (fstat(t->fd, &st) < 0)
                return log_error(errno, t->path, "cannot stat: %m");
        bool same = S_ISBLK(checked->st_mode) ? S_ISBLK(st.st_mode) && st.st_rdev == checked->st_rdev
                                               : st.st_dev == checked->st_dev && st.st_ino == checked->st_ino;
        if (!same)
                return log_error(EAGAIN, t->path, "changed while it was being checked; nothing written, try again");
        return 0;
}

static int open_target(struct target *t, const char *image, const struct flash_opts *o) {
        struct stat st, ist;
        if (stat(t->path, &st) < 0) {
                /* /dev/sdX copied from the docs: the hint for a file would
                 * have root truncate a regular file into /dev (RAM) */
                if (!strncmp(t->path, "/dev/", 5))
                        return log_error(errno, t->path, "no such device: %m (lsblk lists the disks)");
                return log_error(errno, t->path, "no such device: %m (a regular file must exist: truncate -s SIZE)");
        }
        bool have_image = stat(image, &ist) == 0;
        if (have_image && ist.st_dev == st.st_dev && ist.st_ino == st.st_ino)
                return log_error(EINVAL, t->path, "is the image itself");
        if (S_ISBLK(st.st_mode)) {
                t->is_blk = true;
                t->rdev = st.st_rdev;
                /* Check before opening: the refusals must not depend on
                 * whether we may open the device at all. */
                char v[32];
                if (read_dev_attr(t->rdev, "size", v, sizeof(v)) == 0)
                        t->size = strtoull(v, NULL, 10) * 512;
                int r = check_block_device(t, have_image ? &ist : NULL, o);
                if (r < 0)
                        return r;
                /* O_EXCL on a block device fails with EBUSY while anything has it mounted. */
                t->fd = open(t->path, O_RDWR | O_EXCL | O_CLOEXEC);
                if (t->fd < 0)
                        return log_error(errno, t->path, "cannot open device: %m");
                if ((r = same_as_checked(t, &st)) < 0)
                        return r;
                if (ioctl(t->fd, BLKGETSIZE64, &t->size) < 0)
                        return log_error(errno, t->path, "cannot get the device size: %m");
                return 0;
        }
        if (!S_ISREG(st.st_mode))
                return log_error(EINVAL, t->path, "is neither a block device nor a regular file");
        _cleanup_free_ char *loop = loop_over(NULL, 0, &st);
        if (loop)
                return log_error(EBUSY, t->path, "is in use by loop device %s; detach it first (losetup -d %s)", loop,
                                 loop);
        t->fd = open(t->path, O_RDWR | O_CLOEXEC);
        if (t->fd < 0)
                return log_error(errno, t->path, "cannot open: %m");
        int r = same_as_checked(t, &st);
        if (r < 0)
                return r;
        t->size = (uint64_t)st.st_size;
        return 0;
}

/* s without its leading and trailing blanks, anything unprintable as '?'. */
static void trim(char *s) {
        size_t a = strspn(s, " \t"), n = strlen(s);
        while (n > a && (s[n - 1] == ' ' || s[n - 1] == '\t'))
                n--;
        memmove(s, s + a, n - a);
        s[n - a] = 0;
        str_printable(s);
}

/* "Vendor Model, " from sysfs, so that the prompt names the card reader or
 * stick a user recognises ("" when sysfs does not say). */
static void describe_disk(const struct target *t, char *out, size_t n) {
        char vendor[32] = "", model[48] = "";
        (void)read_dev_attr(t->rdev, "device/vendor", vendor, sizeof(vendor));
        (void)read_dev_attr(t->rdev, "device/model", model, sizeof(model));
        /* SCSI pads both with blanks; an SD card has a name instead */
        if (!*model)
                (void)read_dev_attr(t->rdev, "device/name", model, sizeof(model));
        trim(vendor);
        trim(model);
        snprintf(out, n, "%s%s%s%s", vendor, *vendor && *model ? " " : "", model, *vendor || *model ? ", " : "");
}

/* A block device is always asked about; a regular file only when it holds
 * data (a file fresh from truncate has none), which a slip of the tab key
 * (another image, the .xz beside this one) would otherwise lose. */
static int confirm(const struct target *t, const struct flash_opts *o) {
        if (o->yes)
                return 0;
        if (!t->is_blk && lseek(t->fd, 0, SEEK_DATA) < 0)
                return 0; /* ENXIO: holes only, nothing to lose */
        const char *what_it_is = t->is_blk ? "erasing this device" : "overwriting this file, which holds data";
        if (!isatty(STDIN_FILENO))
                return log_error(EUSAGE, t->path, "not on a terminal: pass --yes to confirm %s", what_it_is);
        char sz[32], ans[16] = "", what[96]; /* vendor, model and their separators */
        format_size(t->size, sz);
        if (t->is_blk) {
                describe_disk(t, what, sizeof(what));
                fprintf(stderr, "Erase everything on %s (%s%s)? [y/N] ", t->path, what, sz);
        } else {
                fprintf(stderr, "Overwrite %s (a file of %s that holds data)? [y/N] ", t->path, sz);
        }
        if (!fgets(ans, sizeof(ans), stdin) || (ans[0] != 'y' && ans[0] != 'Y'))
                return log_error(ECANCELED, t->path, "not confirmed; nothing written");
        return 0;
}

struct job {
        struct bmap *b;     /* ranges to write (one covering the image without a bmap) */
        bool have_bmap, known_size;
        char (*written)[65]; /* sha256 of each range as written */
        uint8_t *head;       /* the image's first HEAD bytes, held back (zeros where unmapped) */
};

static int write_ranges(struct reader *rd, struct target *t, struct job *j, const struct flash_opts *o,
                        uint8_t *buf) {
        struct progress pg;
        uint64_t total = j->known_size ? j->b->mapped_blocks * j->b->block_size : 0, done = 0;
        progress_begin(&pg, "Writing", total);
        int r = 0;
        for (size_t i = 0; i < j->b->n && r >= 0; i++) {
                struct bmap_range *rg = &j->b->v[i];
                uint64_t start, end;
                bmap_range_bytes(j->b, rg, &start, &end);
                if ((r = reader_skip_to(rd, start, buf)) < 0)
                        break;
                struct sha256 h;
                sha256_init(&h);
                uint64_t off = start;
                while (off < end) {
                        long long got = reader_read(rd, buf, (size_t)MIN(end - off, (uint64_t)CHUNK));
                        if (got < 0) {
                                r = (int)got;
                                break;
                        }
                        if (got == 0) {
                                if (j->known_size)
                                        r = log_error(EBADMSG, rd->path, "the image ends before the end of its bmap");
                                break;
                        }
                        if (off + (uint64_t)got > t->size) {
                                char a[32], b[32];
                                format_size(t->size, a);
                                format_size(off + (uint64_t)got, b);
                                r = log_error(ENOROOM, t->path, "the device is smaller than the image (%s < more than %s)", a,
                                              b);
                                break;
                        }
                        sha256_update(&h, buf, (size_t)got);
                        if (off < HEAD) { /* zeros now, the real bytes in write_head() */
                                size_t k = (size_t)MIN((uint64_t)got, HEAD - off);
                                memcpy(j->head + off, buf, k);
                                memset(buf, 0, k);
                        }
                        if ((r = pwrite_full(t->fd, buf, (size_t)got, off)) < 0) {
                                r = log_error(r, t->path, "write failed at byte %" PRIu64 ": %s", off, strerror(-r));
                                break;
                        }
                        off += (uint64_t)got;
                        done += (uint64_t)got;
                        progress_update(&pg, done);
                }
                sha256_final_hex(&h, j->written[i]);
                if (!j->known_size) { /* stream of unknown length: now we know it */
                        j->b->image_size = off;
                        j->b->blocks_count = DIV_ROUND_UP(off, j->b->block_size);
                        rg->last = j->b->blocks_count ? j->b->blocks_count - 1 : 0;
                        j->b->mapped_blocks = j->b->blocks_count;
                }
                if (r >= 0 && j->have_bmap && !o->no_verify && rg->sha256[0] && strcmp(rg->sha256, j->written[i]) != 0)
                        r = log_error(EBADMSG, rd->path,
                                      "blocks %" PRIu64 "-%" PRIu64 " do not match the bmap's checksum: the image "
                                      "is corrupted or the bmap belongs to another image",
                                      rg->first, rg->last);
        }
        progress_end(&pg);
        return r;
}

/* Everything else is on the medium (the caller synced it): now the first
 * HEAD bytes of each range, which write_ranges() left as zeros. */
static int write_head(struct target *t, const struct job *j) {
        for (size_t i = 0; i < j->b->n; i++) {
                uint64_t start, end;
                bmap_range_bytes(j->b, &j->b->v[i], &start, &end);
                if (start >= HEAD)
                        break;
                end = MIN(end, (uint64_t)HEAD);
                int r = pwrite_full(t->fd, j->head + start, (size_t)(end - start), start);
                if (r < 0)
                        return log_error(r, t->path, "write failed at byte %" PRIu64 ": %s", start, strerror(-r));
        }
        return 0;
}

/* Unmapped ranges of a regular-file target become holes, so the file then
 * equals the image byte for byte (on a disk they are simply not written).
 * Where no hole can be punched they are written as zeros; a failure there
 * fails the flash, since the read-back checks the mapped ranges only. */
static int punch_unmapped(struct target *t, const struct bmap *b) {
        uint64_t pos = 0;
        _cleanup_free_ uint8_t *z = NULL;
        for (size_t i = 0; i <= b->n; i++) {
                uint64_t start = b->image_size, end = b->image_size;
                if (i < b->n)
                        bmap_range_bytes(b, &b->v[i], &start, &end);
                if (start > pos && fallocate(t->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)pos,
                                             (off_t)(start - pos)) < 0) {
                        if (!z)
                                z = xcalloc(1, CHUNK);
                        for (uint64_t o = pos; o < start; o += CHUNK) {
                                int r = pwrite_full(t->fd, z, (size_t)MIN((uint64_t)CHUNK, start - o), o);
                                if (r < 0)
                                        return log_error(r, t->path, "cannot clear the unmapped bytes at %" PRIu64
                                                         ": %s", o, strerror(-r));
                        }
                }
                pos = end;
        }
        return 0;
}

static int verify(struct target *t, struct job *j, uint8_t *buf) {
        struct progress pg;
        progress_begin(&pg, "Verifying", j->b->mapped_blocks * j->b->block_size);
        uint64_t done = 0;
        int r = 0;
        for (size_t i = 0; i < j->b->n && r >= 0; i++) {
                uint64_t start, end;
                bmap_range_bytes(j->b, &j->b->v[i], &start, &end);
                struct sha256 h;
                sha256_init(&h);
                for (uint64_t off = start; off < end && r >= 0;) {
                        size_t k = (size_t)MIN(end - off, (uint64_t)CHUNK);
                        r = pread_full(t->fd, buf, k, off);
                        if (r < 0)
                                r = log_error(r, t->path, "cannot read back at byte %" PRIu64 ": %s", off, strerror(-r));
                        sha256_update(&h, buf, k);
                        off += k;
                        done += k;
                        progress_update(&pg, done);
                }
                char hex[65];
                sha256_final_hex(&h, hex);
                if (r >= 0 && strcmp(hex, j->written[i]) != 0)
                        r = log_error(EIO, t->path,
                                      "read-back verification failed in blocks %" PRIu64 "-%" PRIu64
                                      ": the device did not keep what was written (faulty or fake-capacity card?)",
                                      j->b->v[i].first, j->b->v[i].last);
        }
        progress_end(&pg);
        return r;
}

/* what a flash stopped while writing leaves: its warning, and a signal's */
#define HEADLESS "left without a partition table (its first 64 KiB stay zero until a flash completes); flash it again"

static int flash(const char *image, const char *device, const struct flash_opts *o) {
        struct reader rd = { .path = image, .fd = -1 };
        struct target t = { .path = device, .fd = -1 };
        struct bmap b = { 0 };
        struct job j = { .b = &b };
        _cleanup_free_ char *bmap_path = NULL;
        uint8_t *buf = NULL;
        uint64_t at_least = 0; /* the image's size, or a lower bound on it */
        int r;
        bool headless = false; /* the device holds zeros where its partition table goes */
        bool from_gzip = false; /* at_least is a gzip trailer's ISIZE */

        /* a stop says what it leaves on the device, as an error does */
        output_install_signal_handlers();
        output_on_interrupt(device, "nothing written");

        /* the arguments swapped: said before an open that only root may make */
        struct stat ist;
        if (stat(image, &ist) == 0 && S_ISBLK(ist.st_mode))
                return log_error(EUSAGE, image,
                                 "is a block device, not an image file: the image comes first, then the device "
                                 "(dimimage flash IMAGE DEVICE)");
        /* O_NONBLOCK so a FIFO cannot hang us before we refuse it */
        _cleanup_close_ int ifd = open(image, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (ifd < 0)
                return log_error(input_err(-errno), image, "cannot open image: %m");
        if (fstat(ifd, &ist) < 0)
                return log_error(errno, image, "cannot stat: %m");
        if (!S_ISREG(ist.st_mode))
                return log_error(EINVAL, image, "not a regular file or block device");
        if (fcntl(ifd, F_SETFL, 0) < 0)
                return log_error(input_err(-errno), image, "cannot open image: %m");
        bool compressed = is_compressed(image, ifd);

        bmap_path = o->bmap_path ? xstrdup(o->bmap_path) : find_bmap(image);
        if (bmap_path) {
                if ((r = bmap_load(bmap_path, &b)) < 0)
                        return r;
                /* nothing of it would be checked while "verified" is said */
                if (strcmp(b.checksum_type, "sha256") && !o->no_verify) {
                        r = log_error(ENOTSUP, bmap_path,
                                      "its checksums are %s, which flash does not verify: make a bmap with sha256 "
                                      "(bmaptool create -o IMAGE.bmap IMAGE), or pass --no-verify",
                                      b.checksum_type);
                        goto out;
                }
                j.have_bmap = j.known_size = true;
                at_least = b.image_size;
                if (!compressed && b.image_size != (uint64_t)ist.st_size) {
                        r = log_error(EINVAL, bmap_path, "describes a %" PRIu64 "-byte image, but %s has %" PRIu64
                                      " bytes; pass the right --bmap, or the image is truncated", b.image_size,
                              image, (uint64_t)ist.st_size);
                        goto out;
                }
        } else {
                /* No bmap: every byte is written; the image's size is known
                 * up front when it is raw or an .xz (its index says: what is
                 * not an .xz fails that), and bounded below for most .zst
                 * and every .gz. */
                uint64_t size = (uint64_t)ist.st_size;
                j.known_size = !compressed || xz_decoded_size(ifd, (uint64_t)ist.st_size, &size) == 0;
                at_least = j.known_size ? size : size_at_least(ifd, (uint64_t)ist.st_size, &from_gzip);
                b.block_size = BMAP_BLOCK_SIZE;
                b.image_size = j.known_size ? size : UINT64_MAX / 2;
                b.blocks_count = DIV_ROUND_UP(b.image_size, b.block_size);
                if (b.blocks_count)
                        bmap_add_range(&b, 0, b.blocks_count - 1);
        }

        if ((r = check_image_head(image, compressed, &at_least)) < 0)
                goto out;
        if ((r = open_target(&t, image, o)) < 0)
                goto out;
        if (at_least > t.size) {
                char a[32], c[32];
                format_size(t.size, a);
                format_size(at_least, c);
                if (from_gzip)
                        r = log_error(ENOROOM, device,
                                      "the device is smaller than the image (%s < %s, the size %s's gzip trailer "
                                      "states; a truncated download ends in bytes that look the same: check it "
                                      "with gzip -t %s)",
                                      a, c, image, image);
                else
                        r = log_error(ENOROOM, device, "the device is smaller than the image (%s < %s)", a, c);
                goto out;
        }
        /* said once the device is known good, so an error stays alone */
        if (!j.have_bmap)
                log_info("%s: no bmap found; writing every block", image);
        if ((r = confirm(&t, o)) < 0)
                goto out;

        if (compressed) {
                if ((r = source_stream_open(image, &rd.s)) < 0)
                        goto out;
        } else {
                rd.fd = ifd;
                rd.raw_size = (uint64_t)ist.st_size;
                posix_fadvise(ifd, 0, 0, POSIX_FADV_SEQUENTIAL);
        }
        buf = xmalloc(CHUNK);
        j.written = xcalloc(b.n ? b.n : 1, sizeof(*j.written));
        j.head = xcalloc(1, HEAD);
        headless = true;
        output_on_interrupt(device, HEADLESS);
        if ((r = write_ranges(&rd, &t, &j, o, buf)) < 0)
                goto out;
        if (!t.is_blk && j.have_bmap && (r = punch_unmapped(&t, &b)) < 0)
                goto out;
        if (fsync(t.fd) < 0) {
                r = log_error(errno, device, "cannot flush the device: %m");
                goto out;
        }
        if ((r = write_head(&t, &j)) < 0)
                goto out;
        /* the table is written: a flush that fails leaves the device's
         * contents unknown, not without a table */
        headless = false;
        output_on_interrupt(device, o->no_verify ? "written" : "written, not verified");
        if (fsync(t.fd) < 0) {
                r = log_error(errno, device,
                              "cannot flush the device after writing its partition table: %m; what it holds is "
                              "unknown: flash it again");
                goto out;
        }
        /* Drop cached pages so the read-back comes from the medium. */
        if (t.is_blk)
                (void)ioctl(t.fd, BLKFLSBUF, 0);
        posix_fadvise(t.fd, 0, 0, POSIX_FADV_DONTNEED);
        if (!o->no_verify && (r = verify(&t, &j, buf)) < 0)
                goto out;
        char mapped[32], total[32];
        format_size(b.mapped_blocks * b.block_size, mapped);
        format_size(b.image_size, total);
        log_info("%s: wrote %s of %s%s", device, mapped, total, o->no_verify ? "" : ", verified");
        output_finished(); /* a stop now changes nothing */
        r = 0;
out:
        /* what the error leaves on the device, so nobody boots it wondering */
        if (r < 0 && headless)
                log_warn(device, HEADLESS);
        if (rd.s)
                source_stream_close(rd.s);
        if (t.fd >= 0)
                close(t.fd);
        free(j.written);
        free(j.head);
        free(buf);
        bmap_free(&b);
        return r;
}

int cmd_flash(int argc, char **argv) {
        /* not a letter: getopt's optopt then tells "-n" (unknown) from "--no-verify=x" */
        enum { OPT_NO_VERIFY = 1000 };
        static const struct option longopts[] = {
                { "force", no_argument, NULL, 'f' },   { "no-verify", no_argument, NULL, OPT_NO_VERIFY },
                { "bmap", required_argument, NULL, 'b' }, { "quiet", no_argument, NULL, 'q' },
                { "yes", no_argument, NULL, 'y' },     { "help", no_argument, NULL, 'h' },
                { NULL, 0, NULL, 0 },
        };
        struct flash_opts o = { 0 };
        int c;
        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":fb:qyh", longopts, NULL)) != -1) {
                switch (c) {
                case 'f':
                        o.force = true;
                        break;
                case OPT_NO_VERIFY:
                        o.no_verify = true;
                        break;
                case 'b': {
                        /* as build's options that take one value: a second
                         * one is a guess at which was meant */
                        if (o.bmap_path)
                                return cli_usage_error("flash", "--bmap given twice; give it once");
                        /* as build's file options */
                        int r = cli_check_file_arg("flash", "--bmap", optarg, "");
                        if (r < 0)
                                return r;
                        o.bmap_path = optarg;
                        break;
                }
                case 'q':
                        o.quiet = true;
                        break;
                case 'y':
                        o.yes = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                case ':':
                default:
                        return cli_getopt_error("flash", longopts, c, argv, true);
                }
        }
        if (argc - optind != 2)
                return cli_usage_error("flash", "need IMAGE and DEVICE");
        /* The image is read twice (write, then verify), so "-" cannot be a pipe. */
        for (int i = 0; i < 2; i++) {
                const char *what = i ? "DEVICE" : "IMAGE", *v = argv[optind + i];
                if (!*v || !strcmp(v, "-"))
                        return cli_usage_error("flash", "%s '%s' is not a file or device; standard input and output "
                                               "are not used",
                                               what, v);
        }
        if (o.quiet)
                log_level = LOG_QUIET;
        return flash(argv[optind], argv[optind + 1], &o);
}
