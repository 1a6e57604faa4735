/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Partition discovery: the raw MBR is checked first (libparted must never see
 * a table it could choke on, and it clips or refuses partitions past the end
 * without saying which), then libparted lists the partitions and libblkid
 * names the table and what each partition holds.
 *
 * Decisions: only MBR ("dos") tables are accepted for building; GPT is
 * reported by disk_probe_any but refused by disk_probe, because Raspberry Pi
 * OS uses MBR, its cmdline.txt/fstab name partitions as <disk id>-0N and
 * disk_grow_last only edits MBR entries.  The root filesystem must be ext4:
 * ext2/ext3 are refused with a clear message (RasPiOS never ships them and
 * the firstboot resize expects ext4). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <parted/parted.h>
#include <blkid/blkid.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk.h"
#include "log.h"
#include "source.h"
#include "util.h"

#define SECTOR 512u
#define MBR_DISK_ID_OFF 440
#define MBR_TABLE_OFF 446
#define MBR_SIG_OFF 510
#define MIN_IMAGE_BYTES (1024u * 1024u)

struct mbr_entry {
        uint8_t status;
        uint8_t chs_first[3];
        uint8_t type;
        uint8_t chs_last[3];
        uint8_t lba_start[4];
        uint8_t lba_sectors[4];
} _packed_;
_Static_assert(sizeof(struct mbr_entry) == 16, "MBR partition entry is 16 bytes");

static bool mbr_type_is_extended(uint8_t t) { return t == 0x05 || t == 0x0f || t == 0x85; }

/* libparted reports problems through a global handler without user data, so
 * the last message is kept here, with whether this is inspect's lenient
 * reading (the one piece of state it forces on us). */
static char parted_msg[256];
static bool parted_lenient;

static PedExceptionOption parted_handler(PedException *ex) {
        snprintf(parted_msg, sizeof(parted_msg), "%s", ex->message ? ex->message : "unknown libparted error");
        /* Never prompt: harmless warnings ("opened read-only") are
         * acknowledged, everything else cancels. */
        if (ex->type == PED_EXCEPTION_INFORMATION || ex->type == PED_EXCEPTION_WARNING) {
                if (ex->options & PED_EXCEPTION_IGNORE)
                        return PED_EXCEPTION_IGNORE;
                if (ex->options & PED_EXCEPTION_OK)
                        return PED_EXCEPTION_OK;
        }
        /* "The primary GPT table is corrupt, but the backup appears OK, so
         * that will be used": OK reads the backup, as sfdisk does.  libparted
         * would only write the repair on a commit, which we never make, and
         * it reads a shadow copy anyway (parted_shadow).  A build still
         * refuses such an image: it edits the table. */
        if (parted_lenient && ex->type == PED_EXCEPTION_ERROR && (ex->options & PED_EXCEPTION_OK) &&
            ex->message && strstr(ex->message, "backup appears OK"))
                return PED_EXCEPTION_OK;
        if (ex->options & PED_EXCEPTION_CANCEL)
                return PED_EXCEPTION_CANCEL;
        return PED_EXCEPTION_UNHANDLED;
}

static bool looks_like_text(const uint8_t *p, size_t n) {
        if (n == 0)
                return false;
        for (size_t i = 0; i < n; i++) {
                uint8_t c = p[i];
                if (c == '\n' || c == '\r' || c == '\t' || c == '\f' || (c >= 0x20 && c != 0x7f) )
                        continue;
                return false;
        }
        return true;
}

/* All data extents zero?  Cheap for sparse files; reads everything otherwise
 * (only on the error path). */
static bool file_all_zero(int fd, uint64_t size) {
        _cleanup_free_ uint8_t *b = xmalloc(1 << 20);
        off_t pos = 0;
        while ((uint64_t)pos < size) {
                off_t data = lseek(fd, pos, SEEK_DATA);
                if (data < 0)
                        return errno == ENXIO;
                off_t hole = lseek(fd, data, SEEK_HOLE);
                if (hole < 0)
                        hole = (off_t)size;
                for (off_t o = data; o < hole;) {
                        size_t n = (size_t)MIN((off_t)(1 << 20), hole - o);
                        if (pread_full(fd, b, n, (uint64_t)o) < 0)
                                return false;
                        if (!mem_is_zero(b, n))
                                return false;
                        o += (off_t)n;
                }
                pos = hole;
        }
        return true;
}

/* The checks that make a file "not a disk image at all": errors in both modes. */
static int check_content(const char *image, int fd, uint64_t size, const uint8_t *s0) {
        if (size == 0)
                return log_error(EINVAL, image, "image is empty (0 bytes)");
        uint8_t head[4096];
        size_t n = (size_t)MIN(size, sizeof(head));
        int r = pread_full(fd, head, n, 0);
        if (r < 0)
                return log_error(r, image, "cannot read: %s", strerror(-r));
        if (looks_like_text(head, n))
                return log_error(EINVAL, image, "is a text file, not a disk image");
        /* a hybrid ISO has an MBR too, whose partitions are the ISO's */
        uint8_t magic[5];
        if (size >= SOURCE_ISO9660_HEAD && pread_full(fd, magic, sizeof(magic), SOURCE_ISO9660_MAGIC_OFF) == 0 &&
            !memcmp(magic, SOURCE_ISO9660_MAGIC, sizeof(magic)))
                return source_refuse_iso9660(image, false);
        if (size < MIN_IMAGE_BYTES)
                return log_error(EINVAL, image, "too small to be a disk image (%llu bytes)",
                                 (unsigned long long)size);
        if (s0[MBR_SIG_OFF] != 0x55 || s0[MBR_SIG_OFF + 1] != 0xaa) {
                if (file_all_zero(fd, size))
                        return log_error(EINVAL, image, "image is empty (all zero)");
                return log_error(EINVAL, image, "no partition table found (is this a Raspberry Pi OS image?)");
        }
        return 0;
}

/* Raw primary entries: the checks libparted would clip, refuse vaguely or
 * choke on.  Returns 0 when sane, 1 when not sane (any mode: the entries are
 * reported as read), -errno (logged) when refusing. */
static int check_mbr(const char *image, const uint8_t *s0, uint64_t total, bool strict, struct disk_layout *raw) {
        const struct mbr_entry *e = (const struct mbr_entry *)(s0 + MBR_TABLE_OFF);
        int insane = 0;

        raw->n = 0;
        for (unsigned i = 0; i < 4; i++) {
                uint64_t start = get_le32(e[i].lba_start), len = get_le32(e[i].lba_sectors);
                if (e[i].type == 0 || len == 0)
                        continue;
                struct disk_part *p = &raw->parts[raw->n++];
                *p = (struct disk_part){ .number = i + 1, .start = start, .sectors = len, .mbr_type = e[i].type };
                if (start == 0) {
                        if (strict)
                                return log_error(EINVAL, image, "partition %u starts at sector 0, over the partition table",
                                                 i + 1);
                        insane = 1;
                }
                if (start + len > total) {
                        if (strict)
                                return log_error(EINVAL, image,
                                                 "partition %u ends at sector %llu, past the end of the image (%llu sectors)",
                                                 i + 1, (unsigned long long)(start + len),
                                                 (unsigned long long)total);
                        insane = 1;
                }
        }
        for (unsigned a = 0; a < raw->n; a++)
                for (unsigned b = a + 1; b < raw->n; b++) {
                        const struct disk_part *pa = &raw->parts[a], *pb = &raw->parts[b];
                        if (pa->start < pb->start + pb->sectors && pb->start < pa->start + pa->sectors) {
                                if (strict)
                                        return log_error(EINVAL, image, "partitions %u and %u overlap", pa->number,
                                                         pb->number);
                                insane = 1;
                        }
                }
        return insane;
}

static int parted_list(const char *path, const char *image, struct disk_layout *l, bool strict) {
        static bool handler_set;
        if (!handler_set) {
                ped_exception_set_handler(parted_handler);
                handler_set = true;
        }
        parted_msg[0] = '\0';
        parted_lenient = !strict;

        PedDevice *dev = ped_device_get(path);
        if (!dev)
                return log_error(EIO, image, "libparted cannot open the image: %s",
                                 parted_msg[0] ? parted_msg : "unknown error");
        int r = 0;
        PedDisk *disk = NULL;
        if (!ped_device_open(dev)) {
                r = log_error(EIO, image, "libparted cannot open the image: %s", parted_msg);
                goto out;
        }
        PedDiskType *type = ped_disk_probe(dev);
        /* "loop" is libparted's name for a bare filesystem: no table at all. */
        if (type && strcmp(type->name, "loop") == 0)
                type = NULL;
        if (!type) {
                if (strict)
                        r = log_error(EINVAL, image, "no partition table found (is this a Raspberry Pi OS image?)");
                else
                        r = 1;
                goto out_close;
        }
        disk = ped_disk_new(dev);
        if (!disk) {
                if (strict)
                        r = log_error(EINVAL, image, "cannot read the %s partition table: %s", type->name,
                                      parted_msg[0] ? parted_msg : "unknown libparted error");
                else {
                        /* what follows is the MBR's primary entries: say why */
                        log_warn(image, "libparted cannot read the %s partition table: %s", type->name,
                                 parted_msg[0] ? parted_msg : "unknown libparted error");
                        r = 1;
                }
                goto out_close;
        }
        /* a table libparted read after a complaint (the backup GPT used)
         * is not quite the image's: say what it said */
        if (!strict && parted_msg[0])
                log_warn(image, "libparted: %s", parted_msg);
        snprintf(l->table, sizeof(l->table), "%s", strcmp(type->name, "msdos") == 0 ? "dos" : type->name);
        uint64_t scale = (uint64_t)dev->sector_size / SECTOR;
        if (scale == 0)
                scale = 1;
        l->n = 0;
        for (PedPartition *p = ped_disk_next_partition(disk, NULL); p; p = ped_disk_next_partition(disk, p)) {
                if (p->num <= 0 || (p->type & (PED_PARTITION_FREESPACE | PED_PARTITION_METADATA |
                                               PED_PARTITION_EXTENDED)))
                        continue;
                if (l->n == DISK_MAX_PARTS) {
                        if (strict) {
                                r = log_error(EINVAL, image, "more than %d partitions", DISK_MAX_PARTS);
                                goto out_close;
                        }
                        log_warn(image, "more than %d partitions; only the first %d are shown", DISK_MAX_PARTS,
                                 DISK_MAX_PARTS);
                        break;
                }
                l->parts[l->n++] = (struct disk_part){
                        .number = (unsigned)p->num,
                        .start = (uint64_t)p->geom.start * scale,
                        .sectors = (uint64_t)p->geom.length * scale,
                };
        }
out_close:
        if (disk)
                ped_disk_destroy(disk);
        ped_device_close(dev);
out:
        /* libparted caches devices by path: drop it so a rewritten file is re-read. */
        ped_device_destroy(dev);
        return r;
}

/* libparted opens the device it is given twice and fsync()s it each time,
 * meant for block devices.  On an image dimimage has just written, that
 * blocks until the whole file is on disk, seconds before any of it has to
 * be (the commit syncs it beside its hashing pass).  A table without
 * extended partitions lives in the first sectors (and a GPT's backup in the
 * last ones), so libparted reads a sparse in-memory copy of those, the same
 * size as the image: what it sees is the image's table, and its fsync is
 * free.  Returns the copy's fd with its path in path, or -1 to probe the
 * image itself (an EBR chain can be anywhere in the image; no /proc). */
#define SHADOW_HEAD (1024u * 1024u)
#define SHADOW_TAIL (64u * 1024u)

static int parted_shadow(int fd, uint64_t size, const struct disk_layout *raw, char path[static 64]) {
        for (unsigned i = 0; i < raw->n; i++)
                if (mbr_type_is_extended(raw->parts[i].mbr_type))
                        return -1;
        int m = memfd_create("dimimage-table", MFD_CLOEXEC);
        if (m < 0)
                return -1;
        uint8_t *buf = xmalloc(SHADOW_HEAD);
        uint64_t head = MIN((uint64_t)SHADOW_HEAD, size);
        uint64_t tail_off = size > SHADOW_TAIL ? size - SHADOW_TAIL : 0;
        bool ok = ftruncate(m, (off_t)size) == 0 && pread_full(fd, buf, head, 0) == 0 &&
                  pwrite_full(m, buf, head, 0) == 0;
        if (ok && tail_off >= head)
                ok = pread_full(fd, buf, SHADOW_TAIL, tail_off) == 0 &&
                     pwrite_full(m, buf, SHADOW_TAIL, tail_off) == 0;
        free(buf);
        snprintf(path, 64, "/proc/self/fd/%d", m);
        if (!ok || access(path, R_OK) < 0) {
                close(m);
                return -1;
        }
        return m;
}

static void copy_value(blkid_probe pr, const char *name, char *dst, size_t dst_size) {
        const char *v = NULL;
        if (blkid_probe_lookup_value(pr, name, &v, NULL) == 0 && v)
                snprintf(dst, dst_size, "%s", v);
}

static void blkid_table(int fd, struct disk_layout *l) {
        blkid_probe pr = blkid_new_probe();
        if (!pr)
                return;
        if (blkid_probe_set_device(pr, fd, 0, 0) == 0) {
                blkid_probe_enable_superblocks(pr, 0);
                blkid_probe_enable_partitions(pr, 1);
                blkid_probe_set_partitions_flags(pr, BLKID_PARTS_ENTRY_DETAILS);
                if (blkid_do_safeprobe(pr) == 0) {
                        copy_value(pr, "PTTYPE", l->table, sizeof(l->table));
                        copy_value(pr, "PTUUID", l->disk_id, sizeof(l->disk_id));
                }
                blkid_partlist pl = blkid_probe_get_partitions(pr);
                int n = pl ? blkid_partlist_numof_partitions(pl) : 0;
                for (int i = 0; i < n; i++) {
                        blkid_partition bp = blkid_partlist_get_partition(pl, i);
                        const char *u = bp ? blkid_partition_get_uuid(bp) : NULL;
                        if (!u)
                                continue;
                        int num = blkid_partition_get_partno(bp);
                        for (unsigned k = 0; k < l->n; k++)
                                if (l->parts[k].number == (unsigned)num)
                                        snprintf(l->parts[k].partuuid, sizeof(l->parts[k].partuuid), "%s", u);
                }
        }
        blkid_free_probe(pr);
}

static void blkid_fs(int fd, struct disk_part *p, uint64_t image_bytes) {
        uint64_t off = disk_part_offset(p);
        if (off >= image_bytes)
                return;
        uint64_t size = MIN(disk_part_bytes(p), image_bytes - off);
        blkid_probe pr = blkid_new_probe();
        if (!pr)
                return;
        if (blkid_probe_set_device(pr, fd, (blkid_loff_t)off, (blkid_loff_t)size) == 0) {
                blkid_probe_enable_partitions(pr, 0);
                blkid_probe_enable_superblocks(pr, 1);
                /* BADCSUM: libblkid 2.41 (Debian 13), unlike 2.38, names no
                 * ext4 whose superblock checksum is wrong, and a damaged
                 * root would read as none ("no ext4 root partition", "not
                 * built by dimimage"); named, it reaches libext2fs, whose
                 * refusal says what is wrong. */
                blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_LABEL | BLKID_SUBLKS_UUID | BLKID_SUBLKS_TYPE |
                                                              BLKID_SUBLKS_VERSION | BLKID_SUBLKS_BADCSUM);
                if (blkid_do_safeprobe(pr) == 0) {
                        copy_value(pr, "TYPE", p->fs_type, sizeof(p->fs_type));
                        copy_value(pr, "LABEL", p->label, sizeof(p->label));
                        copy_value(pr, "UUID", p->uuid, sizeof(p->uuid));
                        copy_value(pr, "VERSION", p->fs_version, sizeof(p->fs_version));
                }
        }
        blkid_free_probe(pr);
}

static int assign_roles(const char *image, struct disk_layout *l, bool strict) {
        l->boot = l->root = -1;
        int other_ext = -1;
        for (unsigned i = 0; i < l->n; i++) {
                const char *t = l->parts[i].fs_type;
                if (l->boot < 0 && strcmp(t, "vfat") == 0)
                        l->boot = (int)i;
                if (strcmp(t, "ext4") == 0)
                        l->root = (int)i;
                else if (strcmp(t, "ext2") == 0 || strcmp(t, "ext3") == 0)
                        other_ext = (int)i;
        }
        if (!strict)
                return 0;
        if (l->boot < 0)
                return log_error(EINVAL, image, "no FAT boot partition (is this a Raspberry Pi OS image?)");
        if (l->root < 0) {
                if (other_ext >= 0)
                        return log_error(EINVAL, image,
                                         "partition %u holds %s; only an ext4 root filesystem is supported",
                                         l->parts[other_ext].number, l->parts[other_ext].fs_type);
                return log_error(EINVAL, image, "no ext4 root partition (is this a Raspberry Pi OS image?)");
        }
        return 0;
}

int disk_open_image(const char *path, const char *name, struct stat *st) {
        /* O_NONBLOCK so a FIFO cannot hang us before we refuse it */
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return log_error(input_err(-errno), name, "cannot open: %m");
        int r = 0;
        if (fstat(fd, st) < 0)
                r = log_error(errno, name, "cannot stat: %m");
        else if (S_ISDIR(st->st_mode))
                r = log_error(EISDIR, name, "is a directory, not a disk image");
        /* a pipe, a socket, a character device such as /dev/zero: their
         * "size" is not an image's, and reading one may never end */
        else if (!S_ISREG(st->st_mode) && !S_ISBLK(st->st_mode))
                r = log_error(EINVAL, name, "not a regular file or block device");
        else if (fcntl(fd, F_SETFL, 0) < 0)
                r = log_error(input_err(-errno), name, "cannot open: %m");
        if (r < 0) {
                close(fd);
                return r;
        }
        return fd;
}

static int probe(const char *path, const char *image, struct disk_layout *ret, bool strict) {
        *ret = (struct disk_layout){ .boot = -1, .root = -1 };
        struct stat st = {0};
        _cleanup_close_ int fd = disk_open_image(path, image, &st);
        if (fd < 0)
                return fd;
        uint64_t size;
        if (S_ISREG(st.st_mode))
                size = (uint64_t)st.st_size;
        else {
                off_t end = lseek(fd, 0, SEEK_END);
                if (end < 0)
                        return log_error(errno, image, "cannot determine the size: %m");
                size = (uint64_t)end;
        }
        ret->image_bytes = size;

        uint8_t s0[SECTOR] = { 0 };
        if (size >= SECTOR) {
                int r = pread_full(fd, s0, SECTOR, 0);
                if (r < 0)
                        return log_error(r, image, "cannot read the partition table: %s", strerror(-r));
        }
        int r = check_content(image, fd, size, s0);
        if (r < 0)
                return r;

        uint64_t total = size / SECTOR;
        const struct mbr_entry *e = (const struct mbr_entry *)(s0 + MBR_TABLE_OFF);
        bool protective = false;
        for (unsigned i = 0; i < 4; i++)
                if (e[i].type == 0xee)
                        protective = true;
        if (protective && strict)
                return log_error(EINVAL, image,
                                 "GPT partition tables are not supported: Raspberry Pi OS uses MBR");

        struct disk_layout raw = { 0 };
        int insane = 0;
        if (!protective) {
                insane = check_mbr(image, s0, total, strict, &raw);
                if (insane < 0)
                        return insane;
        }

        int parted = 1;
        if (!insane) {
                char shadow_path[64];
                _cleanup_close_ int shadow = parted_shadow(fd, size, &raw, shadow_path);
                parted = parted_list(shadow >= 0 ? shadow_path : path, image, ret, strict);
                if (parted < 0)
                        return parted;
        }
        if (parted > 0) {
                /* any mode, libparted could not make sense of it: report the raw
                 * primary entries as they are. */
                ret->n = 0;
                for (unsigned i = 0; i < raw.n; i++)
                        if (!mbr_type_is_extended(raw.parts[i].mbr_type))
                                ret->parts[ret->n++] = raw.parts[i];
        }
        for (unsigned i = 0; i < ret->n; i++)
                if (ret->parts[i].number >= 1 && ret->parts[i].number <= 4 && !protective)
                        ret->parts[i].mbr_type = e[ret->parts[i].number - 1].type;

        /* blkid names the table when it can; else libparted's name, else
         * the raw MBR we checked. */
        char parted_table[sizeof(ret->table)];
        snprintf(parted_table, sizeof(parted_table), "%s", ret->table);
        ret->table[0] = '\0';
        blkid_table(fd, ret);
        if (ret->table[0] == '\0')
                snprintf(ret->table, sizeof(ret->table), "%s", parted_table);
        if (ret->table[0] == '\0' && !protective && raw.n > 0)
                snprintf(ret->table, sizeof(ret->table), "dos");
        if (ret->table[0] == '\0')
                return log_error(EINVAL, image, "no partition table found (is this a Raspberry Pi OS image?)");
        if (strcmp(ret->table, "dos") == 0) {
                /* blkid does not report a zero disk id; the MBR bytes are the truth. */
                snprintf(ret->disk_id, sizeof(ret->disk_id), "%08x", get_le32(s0 + MBR_DISK_ID_OFF));
                for (unsigned i = 0; i < ret->n; i++)
                        if (ret->parts[i].partuuid[0] == '\0')
                                snprintf(ret->parts[i].partuuid, sizeof(ret->parts[i].partuuid), "%s-%02x",
                                         ret->disk_id, ret->parts[i].number);
        } else if (strict)
                return log_error(EINVAL, image, "%s partition tables are not supported: Raspberry Pi OS uses MBR",
                                 ret->table[0] ? ret->table : "this kind of");

        for (unsigned i = 0; i < ret->n; i++) {
                const struct disk_part *p = &ret->parts[i];
                /* a build refuses this (check_mbr); inspect shows it, but
                 * says so: it is how a truncated download looks */
                if (!strict && disk_part_offset(p) + disk_part_bytes(p) > size)
                        log_warn(image, "partition %u ends past the end of the image (%" PRIu64 " > %" PRIu64
                                        " bytes): the image looks truncated",
                                 p->number, disk_part_offset(p) + disk_part_bytes(p), size);
                blkid_fs(fd, &ret->parts[i], size);
        }
        return assign_roles(image, ret, strict);
}

int disk_probe(const char *image, struct disk_layout *ret) { return probe(image, image, ret, true); }

int disk_probe_any(const char *image, struct disk_layout *ret) { return probe(image, image, ret, false); }

int disk_probe_named(const char *path, const char *name, struct disk_layout *ret) {
        return probe(path, name, ret, true);
}

int disk_probe_any_named(const char *path, const char *name, struct disk_layout *ret) {
        return probe(path, name, ret, false);
}

/* CHS as libfdisk writes it for a 255-head, 63-sector geometry; past the CHS
 * range the conventional 1023/254/63 marker (FE FF FF). */
static void lba_to_chs(uint64_t lba, uint8_t chs[3]) {
        if (lba >= 1024ull * 255 * 63) {
                chs[0] = 0xfe;
                chs[1] = 0xff;
                chs[2] = 0xff;
                return;
        }
        unsigned c = (unsigned)(lba / (255 * 63)), h = (unsigned)((lba / 63) % 255), s = (unsigned)(lba % 63 + 1);
        chs[0] = (uint8_t)h;
        chs[1] = (uint8_t)(s | ((c >> 2) & 0xc0));
        chs[2] = (uint8_t)(c & 0xff);
}

int disk_grow_check(const char *image, const struct disk_layout *l, uint64_t new_image_bytes) {
        if (strcmp(l->table, "dos") != 0)
                return log_error(EINVAL, image, "can only grow partitions in an MBR (dos) partition table, not %s",
                                 l->table[0] ? l->table : "none");
        if (l->root < 0 || (unsigned)l->root >= l->n)
                return log_error(EINVAL, image, "no ext4 root partition to grow");
        const struct disk_part *root = &l->parts[l->root];
        for (unsigned i = 0; i < l->n; i++)
                if (l->parts[i].start + l->parts[i].sectors > root->start + root->sectors)
                        return log_error(EINVAL, image,
                                         "cannot grow: the root partition %u is not the last one (partition %u ends after it)",
                                         root->number, l->parts[i].number);
        if (root->number < 1 || root->number > 4)
                return log_error(EINVAL, image,
                                 "cannot grow: the root partition %u is a logical partition; only a primary MBR partition can be grown",
                                 root->number);
        if (new_image_bytes % SECTOR)
                return log_error(EINVAL, image, "new image size %llu is not a multiple of %u bytes",
                                 (unsigned long long)new_image_bytes, SECTOR);
        if (new_image_bytes < l->image_bytes)
                return log_error(EINVAL, image, "cannot shrink the image from %llu to %llu bytes",
                                 (unsigned long long)l->image_bytes, (unsigned long long)new_image_bytes);
        uint64_t new_sectors = new_image_bytes / SECTOR - root->start;
        if (new_sectors < root->sectors)
                return log_error(EINVAL, image, "cannot shrink partition %u", root->number);
        if (root->start + new_sectors > UINT32_MAX)
                return log_error(EFBIG, image, "an MBR partition cannot end beyond 2 TiB (sector %llu)",
                                 (unsigned long long)(root->start + new_sectors));
        return 0;
}

int disk_grow_last(const char *image, const char *name, struct disk_layout *l, uint64_t new_image_bytes) {
        int r = disk_grow_check(name, l, new_image_bytes);
        if (r < 0)
                return r;
        struct disk_part *root = &l->parts[l->root];
        uint64_t new_sectors = new_image_bytes / SECTOR - root->start;
        _cleanup_close_ int fd = open(image, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return log_error(errno, name, "cannot open for writing: %m");
        uint8_t s0[SECTOR];
        r = pread_full(fd, s0, SECTOR, 0);
        if (r < 0)
                return log_error(r, name, "cannot read the partition table: %s", strerror(-r));
        struct mbr_entry *e = (struct mbr_entry *)(s0 + MBR_TABLE_OFF) + (root->number - 1);
        if (s0[MBR_SIG_OFF] != 0x55 || s0[MBR_SIG_OFF + 1] != 0xaa || get_le32(e->lba_start) != root->start ||
            get_le32(e->lba_sectors) != root->sectors)
                return log_error(EINVAL, name, "the partition table changed since it was read (partition %u)",
                                 root->number);
        /* The layout lists partitions we can use; an extended container or
         * an entry of type 0 with sectors is not among them, and the kernel
         * still maps it: root may not grow over one. */
        for (unsigned i = 0; i < 4; i++) {
                const struct mbr_entry *o = (const struct mbr_entry *)(s0 + MBR_TABLE_OFF) + i;
                uint64_t start = get_le32(o->lba_start), n = get_le32(o->lba_sectors);
                if (i + 1 == root->number || !n)
                        continue;
                if (start + n > root->start && start < root->start + new_sectors)
                        return log_error(EINVAL, name,
                                         "cannot grow: partition %u (type 0x%02x, sectors %llu-%llu) lies after the "
                                         "root partition %u",
                                         i + 1, o->type, (unsigned long long)start,
                                         (unsigned long long)(start + n - 1), root->number);
        }
        struct stat st;
        if (fstat(fd, &st) < 0)
                return log_error(errno, name, "cannot stat: %m");
        /* the output's own limit (FAT32's 4 GiB, ulimit -f): named as the
         * output, where a write past it would be */
        if (S_ISREG(st.st_mode) && (uint64_t)st.st_size < new_image_bytes &&
            ftruncate(fd, (off_t)new_image_bytes) < 0)
                return log_output_error(errno, image, "enlarge the image for the larger root partition");
        put_le32(e->lba_sectors, (uint32_t)new_sectors);
        lba_to_chs(root->start + new_sectors - 1, e->chs_last);
        r = pwrite_full(fd, s0, SECTOR, 0);
        if (r < 0)
                return log_error(r, name, "cannot write the partition table: %s", strerror(-r));
        root->sectors = new_sectors;
        l->image_bytes = new_image_bytes;
        return 0;
}
