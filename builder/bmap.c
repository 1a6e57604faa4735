/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "bmap.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "hash.h"
#include "log.h"
#include "util.h"

/* Largest bmap file we accept: a pathological image with one range per
 * block of a 1 TiB disk would still be far below this. */
#define BMAP_MAX_FILE (256u << 20)

void bmap_range_bytes(const struct bmap *b, const struct bmap_range *r, uint64_t *start, uint64_t *end) {
        *start = r->first * b->block_size;
        *end = MIN((r->last + 1) * b->block_size, b->image_size);
}

/* A range of its own, whatever comes before it. */
static void push_range(struct bmap *b, uint64_t first, uint64_t last) {
        if (b->n == b->cap) {
                b->cap = b->cap ? b->cap * 2 : 64;
                b->v = xrealloc(b->v, b->cap * sizeof(*b->v));
        }
        b->v[b->n++] = (struct bmap_range){ .first = first, .last = last };
        b->mapped_blocks += last - first + 1;
}

void bmap_add_range(struct bmap *b, uint64_t first, uint64_t last) {
        if (b->n > 0 && b->v[b->n - 1].last + 1 >= first) {
                struct bmap_range *prev = &b->v[b->n - 1];
                if (last > prev->last) {
                        b->mapped_blocks += last - prev->last;
                        prev->last = last;
                }
                return;
        }
        push_range(b, first, last);
}

int bmap_scan(int fd, uint64_t size, const char *path, struct bmap *b) {
        *b = (struct bmap){ .image_size = size, .block_size = BMAP_BLOCK_SIZE };
        b->blocks_count = DIV_ROUND_UP(size, BMAP_BLOCK_SIZE);
        off_t pos = 0;
        while ((uint64_t)pos < size) {
                off_t data = lseek(fd, pos, SEEK_DATA);
                if (data < 0) {
                        if (errno == ENXIO)
                                break; /* only a hole remains */
                        return path ? log_error(errno, path, "cannot find data regions (SEEK_DATA): %m") : -errno;
                }
                if ((uint64_t)data >= size)
                        break;
                off_t hole = lseek(fd, data, SEEK_HOLE);
                if (hole < 0)
                        return path ? log_error(errno, path, "cannot find holes (SEEK_HOLE): %m") : -errno;
                uint64_t end = MIN((uint64_t)hole, size);
                /* A block holding any data byte is mapped: round out. */
                bmap_add_range(b, (uint64_t)data / BMAP_BLOCK_SIZE, DIV_ROUND_UP(end, BMAP_BLOCK_SIZE) - 1);
                pos = (off_t)end;
        }
        return 0;
}

/* bmaptool's human_size(): "%.1f KiB" etc. */
static void human_size(uint64_t size, char out[32]) {
        if (size == 1) {
                snprintf(out, 32, "1 byte");
                return;
        }
        if (size < 512) {
                snprintf(out, 32, "%" PRIu64 " bytes", size);
                return;
        }
        static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
        double s = (double)size;
        for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
                s /= 1024.0;
                if (s < 1024) {
                        snprintf(out, 32, "%.1f %s", s, units[i]);
                        return;
                }
        }
        snprintf(out, 32, "%.1f EiB", s / 1024.0);
}

/* bmaptool writes placeholders, then seeks back and overwrites them in
 * place; writing over the reserved spaces reproduces its bytes exactly. */
static void overwrite_at(struct buf *x, size_t pos, const char *s) {
        size_t n = strlen(s);
        if (pos + n > x->len) {
                buf_append(x, "", 0);
                size_t extra = pos + n - x->len;
                for (size_t i = 0; i < extra; i++)
                        buf_append(x, " ", 1);
        }
        memcpy(x->data + pos, s, n);
}

char *bmap_format(const struct bmap *b, size_t *len) {
        struct buf x = { 0 };
        char human[32];
        human_size(b->image_size, human);
        buf_printf(&x,
                   "<?xml version=\"1.0\" ?>\n"
                   "<!-- This file contains the block map for an image file, which is basically\n"
                   "     a list of useful (mapped) block numbers in the image file. In other words,\n"
                   "     it lists only those blocks which contain data (boot sector, partition\n"
                   "     table, file-system metadata, files, directories, extents, etc). These\n"
                   "     blocks have to be copied to the target device. The other blocks do not\n"
                   "     contain any useful data and do not have to be copied to the target\n"
                   "     device.\n"
                   "\n"
                   "     The block map an optimization which allows to copy or flash the image to\n"
                   "     the image quicker than copying of flashing the entire image. This is\n"
                   "     because with bmap less data is copied: <MappedBlocksCount> blocks instead\n"
                   "     of <BlocksCount> blocks.\n"
                   "\n"
                   "     Besides the machine-readable data, this file contains useful commentaries\n"
                   "     which contain human-readable information like image size, percentage of\n"
                   "     mapped data, etc.\n"
                   "\n"
                   "     The 'version' attribute is the block map file format version in the\n"
                   "     'major.minor' format. The version major number is increased whenever an\n"
                   "     incompatible block map format change is made. The minor number changes\n"
                   "     in case of minor backward-compatible changes. -->\n"
                   "\n"
                   "<bmap version=\"2.0\">\n"
                   "    <!-- Image size in bytes: %s -->\n"
                   "    <ImageSize> %" PRIu64 " </ImageSize>\n"
                   "\n"
                   "    <!-- Size of a block in bytes -->\n"
                   "    <BlockSize> %u </BlockSize>\n"
                   "\n"
                   "    <!-- Count of blocks in the image file -->\n"
                   "    <BlocksCount> %" PRIu64 " </BlocksCount>\n"
                   "\n"
                   "    <!-- Count of mapped blocks: ",
                   human, b->image_size, b->block_size, b->blocks_count);
        size_t pos1 = x.len;
        buf_printf(&x, "%*s or %*s   -->\n    <MappedBlocksCount> ", (int)strlen(human), "", 6, "");
        size_t pos2 = x.len;
        char count[32];
        int count_len = snprintf(count, sizeof(count), "%" PRIu64, b->blocks_count);
        buf_printf(&x,
                   "%*s </MappedBlocksCount>\n"
                   "\n"
                   "    <!-- Type of checksum used in this file -->\n"
                   "    <ChecksumType> sha256 </ChecksumType>\n"
                   "\n"
                   "    <!-- The checksum of this bmap file. When it is calculated, the value of\n"
                   "         the checksum has be zero (all ASCII \"0\" symbols).  -->\n"
                   "    <BmapFileChecksum> ",
                   count_len, "");
        size_t pos3 = x.len;
        buf_printf(&x,
                   "%064d </BmapFileChecksum>\n"
                   "\n"
                   "    <!-- The block map which consists of elements which may either be a\n"
                   "         range of blocks or a single block. The 'chksum' attribute\n"
                   "         (if present) is the checksum of this blocks range. -->\n"
                   "    <BlockMap>\n",
                   0);
        for (size_t i = 0; i < b->n; i++) {
                const struct bmap_range *r = &b->v[i];
                if (r->first != r->last)
                        buf_printf(&x, "        <Range chksum=\"%s\"> %" PRIu64 "-%" PRIu64 " </Range>\n", r->sha256,
                                   r->first, r->last);
                else
                        buf_printf(&x, "        <Range chksum=\"%s\"> %" PRIu64 " </Range>\n", r->sha256, r->first);
        }
        buf_puts(&x, "    </BlockMap>\n</bmap>\n");

        uint64_t mapped_size = b->mapped_blocks * b->block_size;
        char mapped_human[32], s[96];
        human_size(mapped_size, mapped_human);
        double percent = b->blocks_count ? (double)b->mapped_blocks * 100.0 / (double)b->blocks_count : 0.0;
        snprintf(s, sizeof(s), "%s or %.1f%%", mapped_human, percent);
        overwrite_at(&x, pos1, s);
        snprintf(s, sizeof(s), "%" PRIu64, b->mapped_blocks);
        overwrite_at(&x, pos2, s);
        char hex[65];
        sha256_hex(x.data, x.len, hex);
        memcpy(x.data + pos3, hex, 64);
        return (char *)buf_steal(&x, len);
}

/* The text between <tag> and </tag>, trimmed; NULL when absent. */
static char *tag_text(const char *text, const char *tag) {
        _cleanup_free_ char *open = xasprintf("<%s>", tag), *close = xasprintf("</%s>", tag);
        const char *p = strstr(text, open);
        if (!p)
                return NULL;
        p += strlen(open);
        const char *e = strstr(p, close);
        if (!e)
                return NULL;
        while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
                p++;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
                e--;
        return xstrndup(p, (size_t)(e - p));
}

static int parse_u64(const char *s, uint64_t *v) {
        if (!s || !*s || *s < '0' || *s > '9')
                return -EINVAL;
        char *end;
        errno = 0;
        unsigned long long x = strtoull(s, &end, 10);
        if (errno || *end)
                return -EINVAL;
        *v = x;
        return 0;
}

static unsigned line_of(const char *text, const char *p) {
        unsigned line = 1;
        for (const char *q = text; q < p; q++)
                line += *q == '\n';
        return line;
}

static int parse_ranges(const char *path, const char *text, bool sha256, struct bmap *b) {
        const char *p = strstr(text, "<BlockMap>");
        if (!p)
                return log_error(EBADMSG, path, "not a bmap file: no <BlockMap>");
        for (;;) {
                const char *r = strstr(p, "<Range");
                if (!r)
                        break;
                const char *gt = strchr(r, '>');
                const char *close = gt ? strstr(gt, "</Range>") : NULL;
                if (!close)
                        return log_error_at(EBADMSG, path, line_of(text, r), "unterminated <Range>");
                _cleanup_free_ char *attrs = xstrndup(r + 6, (size_t)(gt - r - 6));
                _cleanup_free_ char *body = xstrndup(gt + 1, (size_t)(close - gt - 1));
                char *s = body;
                while (*s == ' ' || *s == '\n' || *s == '\t')
                        s++;
                char *e = s + strlen(s);
                while (e > s && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\t'))
                        *--e = 0;
                uint64_t first, last;
                char *dash = strchr(s, '-');
                if (dash)
                        *dash = 0;
                if (parse_u64(s, &first) < 0 || parse_u64(dash ? dash + 1 : s, &last) < 0 || last < first ||
                    last >= b->blocks_count || (b->n > 0 && first <= b->v[b->n - 1].last))
                        return log_error_at(EBADMSG, path, line_of(text, r), "bad block range");
                /* not bmap_add_range: ranges that touch (bmaptool writes
                 * none, but reads them) keep their own checksums */
                push_range(b, first, last);
                /* either quote, as an XML reader takes it */
                const char *ck = strstr(attrs, "chksum=");
                if (sha256 && !ck) /* flash would call it verified, having checked nothing */
                        return log_error_at(EBADMSG, path, line_of(text, r), "a range without its checksum");
                if (sha256) {
                        ck += 7;
                        char quote = *ck++;
                        const char *q = quote == '"' || quote == '\'' ? strchr(ck, quote) : NULL;
                        if (!q || q - ck != 64 || strspn(ck, "0123456789abcdefABCDEF") < 64)
                                return log_error_at(EBADMSG, path, line_of(text, r), "bad range checksum");
                        for (int i = 0; i < 64; i++)
                                b->v[b->n - 1].sha256[i] = (char)(ck[i] | 0x20);
                        b->v[b->n - 1].sha256[64] = 0;
                }
                p = close + 8;
        }
        return 0;
}

/* Blank out <!-- comments --> (keeping newlines, so line numbers hold):
 * bmaptool's own comments mention <BlocksCount> and friends. */
static void blank_comments(char *t) {
        for (char *p = strstr(t, "<!--"); p; p = strstr(p, "<!--")) {
                char *e = strstr(p + 4, "-->");
                char *stop = e ? e + 3 : p + strlen(p);
                for (; p < stop; p++)
                        if (*p != '\n')
                                *p = ' ';
        }
}

int bmap_parse(const char *path, const char *text, size_t len, struct bmap *b) {
        *b = (struct bmap){ 0 };
        if (memchr(text, 0, len))
                return log_error(EBADMSG, path, "not a bmap file: contains NUL bytes");
        _cleanup_free_ char *orig = xstrndup(text, len);
        _cleanup_free_ char *t = xstrdup(orig);
        blank_comments(t);
        /* version="MAJOR.MINOR", either quote, as an XML reader takes it */
        const char *v = strstr(t, "<bmap version=");
        if (!v)
                return log_error(EBADMSG, path, "not a bmap file: no <bmap version=...>");
        v += strlen("<bmap version=");
        char quote = *v;
        size_t major = (quote == '"' || quote == '\'') ? strspn(v + 1, "0123456789") : 0;
        size_t minor = major && v[1 + major] == '.' ? strspn(v + 2 + major, "0123456789") : 0;
        if (!minor || v[2 + major + minor] != quote)
                return log_error(EBADMSG, path, "not a bmap file: its version is not MAJOR.MINOR");
        if (major != 1 || (v[1] != '1' && v[1] != '2'))
                return log_error(ENOTSUP, path, "unsupported bmap version (only 1.x and 2.x)");
        _cleanup_free_ char *size = tag_text(t, "ImageSize"), *bs = tag_text(t, "BlockSize"),
                            *count = tag_text(t, "BlocksCount"), *type = tag_text(t, "ChecksumType"),
                            *fsum = tag_text(t, "BmapFileChecksum");
        uint64_t block_size;
        if (parse_u64(size, &b->image_size) < 0 || parse_u64(bs, &block_size) < 0 ||
            parse_u64(count, &b->blocks_count) < 0 || block_size == 0 || block_size > (1u << 30) ||
            b->blocks_count != DIV_ROUND_UP(b->image_size, block_size))
                return log_error(EBADMSG, path, "bad ImageSize, BlockSize or BlocksCount");
        b->block_size = (uint32_t)block_size;
        /* 1.0 to 1.3 name none: their checksums are SHA-1 */
        snprintf(b->checksum_type, sizeof b->checksum_type, "%s", type ? type : "sha1");
        bool sha256 = type && strcmp(type, "sha256") == 0;
        if (sha256 && fsum) {
                char *at = strstr(orig, fsum);
                if (strlen(fsum) != 64 || !at)
                        return log_error(EBADMSG, path, "bad BmapFileChecksum");
                memset(at, '0', 64);
                char hex[65];
                sha256_hex(orig, len, hex);
                const char *want = fsum;
                if (strcasecmp(hex, want) != 0)
                        return log_error(EBADMSG, path, "bmap file checksum mismatch: the file is corrupted");
        }
        int r = parse_ranges(path, t, sha256, b);
        if (r < 0) {
                bmap_free(b);
                return r;
        }
        return 0;
}

int bmap_load(const char *path, struct bmap *b) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t len;
        int r = read_file(path, BMAP_MAX_FILE, &data, &len);
        if (r < 0)
                return log_error(input_err(r), path, "cannot read bmap file: %s", strerror(-r));
        return bmap_parse(path, (const char *)data, len, b);
}

void bmap_free(struct bmap *b) {
        free(b->v);
        *b = (struct bmap){ 0 };
}
