/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Names of FAT directory entries: 8.3, LFN, aliases.  Split from fat.c,
 * which does the I/O; see fat_name.h. */
#include "fat_name.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

int fat_name_casecmp(const char *a, const char *b) {
        for (;; a++, b++) {
                unsigned char x = (unsigned char)*a, y = (unsigned char)*b;
                if (x >= 'A' && x <= 'Z')
                        x = (unsigned char)(x + 32);
                if (y >= 'A' && y <= 'Z')
                        y = (unsigned char)(y + 32);
                if (x != y || !x)
                        return x - y;
        }
}

uint8_t fat_lfn_checksum(const uint8_t name[11]) {
        uint8_t sum = 0;
        for (int i = 0; i < 11; i++)
                sum = (uint8_t)(((sum & 1) << 7) + (sum >> 1) + name[i]);
        return sum;
}

void fat_utf16_to_utf8(const uint16_t *in, size_t n, char *out, size_t outsz) {
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
                uint32_t cp = in[i];
                if (cp >= 0xD800 && cp < 0xDC00 && i + 1 < n && in[i + 1] >= 0xDC00 && in[i + 1] < 0xE000) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (in[i + 1] - 0xDC00u);
                        i++;
                } else if (cp >= 0xD800 && cp < 0xE000) {
                        cp = 0xFFFD;
                }
                char tmp[4];
                size_t k;
                if (cp < 0x80) {
                        tmp[0] = (char)cp;
                        k = 1;
                } else if (cp < 0x800) {
                        tmp[0] = (char)(0xC0 | cp >> 6);
                        tmp[1] = (char)(0x80 | (cp & 0x3F));
                        k = 2;
                } else if (cp < 0x10000) {
                        tmp[0] = (char)(0xE0 | cp >> 12);
                        tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
                        tmp[2] = (char)(0x80 | (cp & 0x3F));
                        k = 3;
                } else {
                        tmp[0] = (char)(0xF0 | cp >> 18);
                        tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
                        tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
                        tmp[3] = (char)(0x80 | (cp & 0x3F));
                        k = 4;
                }
                if (o + k + 1 > outsz)
                        break;
                memcpy(out + o, tmp, k);
                o += k;
        }
        out[o] = 0;
}

int fat_utf8_to_utf16(const char *s, uint16_t *out, size_t max, size_t *n) {
        const unsigned char *p = (const unsigned char *)s;
        size_t o = 0;
        while (*p) {
                uint32_t cp;
                int k;
                if (*p < 0x80) {
                        cp = *p;
                        k = 0;
                } else if ((*p & 0xE0) == 0xC0) {
                        cp = *p & 0x1F;
                        k = 1;
                } else if ((*p & 0xF0) == 0xE0) {
                        cp = *p & 0x0F;
                        k = 2;
                } else if ((*p & 0xF8) == 0xF0) {
                        cp = *p & 0x07;
                        k = 3;
                } else {
                        return -EINVAL;
                }
                p++;
                for (int i = 0; i < k; i++, p++) {
                        if ((*p & 0xC0) != 0x80)
                                return -EINVAL;
                        cp = cp << 6 | (*p & 0x3F);
                }
                if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10FFFF ||
                    (cp >= 0xD800 && cp < 0xE000))
                        return -EINVAL;
                if (cp >= 0x10000) {
                        if (o + 2 > max)
                                return -EINVAL;
                        cp -= 0x10000;
                        out[o++] = (uint16_t)(0xD800 + (cp >> 10));
                        out[o++] = (uint16_t)(0xDC00 + (cp & 0x3FF));
                } else {
                        if (o + 1 > max)
                                return -EINVAL;
                        out[o++] = (uint16_t)cp;
                }
        }
        *n = o;
        return 0;
}

static bool short_char_ok(char c) {
        return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("!#$%&'()-@^_`{}~", c) != NULL;
}

void fat_short_format(const uint8_t raw[11], uint8_t nt, char out[13], bool apply_case) {
        size_t o = 0;
        for (int i = 0; i < 8 && raw[i] != ' '; i++) {
                char c = (char)(i == 0 && raw[0] == 0x05 ? 0xE5 : raw[i]);
                if (apply_case && (nt & NT_LOWER_BASE) && c >= 'A' && c <= 'Z')
                        c = (char)(c + 32);
                out[o++] = c;
        }
        if (raw[8] != ' ') {
                out[o++] = '.';
                for (int i = 8; i < 11 && raw[i] != ' '; i++) {
                        char c = (char)raw[i];
                        if (apply_case && (nt & NT_LOWER_EXT) && c >= 'A' && c <= 'Z')
                                c = (char)(c + 32);
                        out[o++] = c;
                }
        }
        out[o] = 0;
}

/* A name that fits 8.3 as is, in one case per part, is stored without LFN
 * entries (as Linux does); raw gets the upper-case form, nt the case flags. */
static bool plain_short_name(const char *name, uint8_t raw[11], uint8_t *nt) {
        const char *dot = strchr(name, '.');
        size_t blen = dot ? (size_t)(dot - name) : strlen(name);
        size_t elen = dot ? strlen(dot + 1) : 0;
        if (blen < 1 || blen > 8 || elen > 3 || (dot && (elen == 0 || strchr(dot + 1, '.'))))
                return false;
        memset(raw, ' ', 11);
        *nt = 0;
        for (int part = 0; part < 2; part++) {
                const char *s = part ? (dot ? dot + 1 : "") : name;
                size_t len = part ? elen : blen;
                bool lower = false, upper = false;
                for (size_t i = 0; i < len; i++) {
                        char c = s[i];
                        if (c >= 'a' && c <= 'z') {
                                lower = true;
                                c = (char)(c - 32);
                        } else if (c >= 'A' && c <= 'Z') {
                                upper = true;
                        }
                        if (!short_char_ok(c))
                                return false;
                        raw[(part ? 8 : 0) + i] = (uint8_t)c;
                }
                if (lower && upper)
                        return false;
                if (lower)
                        *nt |= part ? NT_LOWER_EXT : NT_LOWER_BASE;
        }
        return true;
}

static int validate_name(const char *fsname, const char *path, const char *name, uint16_t *u16, size_t *n) {
        size_t len = strlen(name);
        if (len == 0 || !strcmp(name, ".") || !strcmp(name, ".."))
                return log_error(EINVAL, fsname, "%s: invalid file name", path);
        for (const char *c = name; *c; c++)
                if ((unsigned char)*c < 0x20 || *c == 0x7F || strchr("\"*:<>?\\|", *c))
                        return log_error(EINVAL, fsname, "%s: character 0x%02x is not allowed in FAT names", path,
                                         (unsigned)(unsigned char)*c);
        if (name[len - 1] == '.' || name[len - 1] == ' ')
                return log_error(EINVAL, fsname, "%s: FAT names cannot end with a dot or a space", path);
        if (fat_utf8_to_utf16(name, u16, LFN_MAX, n) < 0)
                return log_error(EINVAL, fsname, "%s: name is not valid UTF-8 or longer than %d characters", path,
                                 LFN_MAX);
        return 0;
}

/* The tail n when the 8.3 entry e is base[0..keep) "~n" ext, keep being
 * what make_alias() keeps of the basis for a tail that long; 0 when it is
 * not one of the basis' aliases.  Tails never start with 0. */
static unsigned alias_tail(const uint8_t *e, const char *base, size_t blen, const uint8_t ext[3]) {
        if (memcmp(e + 8, ext, 3))
                return 0;
        size_t end = 8;
        while (end > 0 && e[end - 1] == ' ')
                end--;
        size_t d = end;
        while (d > 0 && e[d - 1] >= '0' && e[d - 1] <= '9' && end - d < 6)
                d--;
        if (d == end || d == 0 || e[d - 1] != '~' || e[d] == '0')
                return 0;
        size_t keep = MIN(blen, 8 - (end - d + 1));
        if (d - 1 != keep || memcmp(e, base, keep))
                return 0;
        unsigned n = 0;
        for (size_t i = d; i < end; i++)
                n = n * 10 + (unsigned)(e[i] - '0');
        return n;
}

/* Windows-style basis name plus a numeric tail ("LONGFI~1.TXT"): the
 * smallest tail no entry has.  One pass over the directory collects the
 * tails in use (trying tails one by one, each a pass, was quadratic in the
 * directory's size: 3000 long names sharing a basis took 10 s).  n entries
 * use at most n tails, so one of 1..n+1 is free. */
static int make_alias(const char *fsname, const uint8_t *data, size_t len, const char *path, const char *name, uint8_t raw[11]) {
        char base[9] = "";
        uint8_t ext[3] = {' ', ' ', ' '};
        size_t blen = 0, elen = 0;
        const char *last_dot = strrchr(name, '.');
        if (last_dot == name)
                last_dot = NULL; /* ".bashrc": all base */
        for (const char *c = name; *c && c != last_dot && blen < 8; c++) {
                unsigned char u = (unsigned char)*c;
                if (u == '.' || u == ' ')
                        continue;
                if ((u & 0xC0) == 0x80)
                        continue; /* one '_' per non-ASCII character */
                char s = (char)(u >= 'a' && u <= 'z' ? u - 32 : u);
                base[blen++] = short_char_ok(s) ? s : '_';
        }
        if (last_dot)
                for (const char *c = last_dot + 1; *c && elen < 3; c++) {
                        unsigned char u = (unsigned char)*c;
                        if (u == ' ' || (u & 0xC0) == 0x80)
                                continue;
                        char s = (char)(u >= 'a' && u <= 'z' ? u - 32 : u);
                        ext[elen++] = (uint8_t)(short_char_ok(s) ? s : '_');
                }
        if (blen == 0)
                base[blen++] = '_';
        size_t count = len / 32;
        _cleanup_free_ bool *used = xcalloc(count + 2, sizeof *used);
        for (size_t i = 0; i < count; i++) {
                const uint8_t *p = data + i * 32;
                if (p[0] == 0)
                        break;
                if (p[0] == DELETED || (p[11] & 0x3F) == ATTR_LFN)
                        continue;
                unsigned t = alias_tail(p, base, blen, ext);
                if (t && t <= count + 1)
                        used[t] = true;
        }
        for (unsigned n = 1; n <= count + 1 && n < 1000000; n++) {
                if (used[n])
                        continue;
                char tail[9];
                int tl = snprintf(tail, sizeof tail, "~%u", n);
                size_t keep = MIN(blen, 8 - (size_t)tl);
                memset(raw, ' ', 11);
                memcpy(raw, base, keep);
                memcpy(raw + keep, tail, (size_t)tl);
                memcpy(raw + 8, ext, 3);
                return 0;
        }
        return log_error(EINVAL, fsname, "%s: no free 8.3 alias left in its directory", path);
}

int fat_dent_next(const uint8_t *data, size_t len, size_t *pos, struct fat_dent *e) {
        size_t n = len / 32;
        uint16_t lfn[LFN_MAX_ENTRIES * 13];
        int expect = -1; /* next LFN ordinal expected; -1: none in progress */
        int count = 0;
        uint8_t sum = 0;
        size_t lfn_start = 0;
        for (size_t i = *pos; i < n; i++) {
                const uint8_t *raw = data + i * 32;
                if (raw[0] == 0)
                        return 0;
                if (raw[0] == DELETED) {
                        expect = -1;
                        continue;
                }
                const struct fat_lfn *l = (const void *)raw;
                if ((l->attr & 0x3F) == ATTR_LFN) {
                        int ord = l->ord & 0x1F;
                        if (l->ord & LFN_LAST) {
                                if (ord < 1 || ord > LFN_MAX_ENTRIES) {
                                        expect = -1;
                                        continue;
                                }
                                count = ord;
                                sum = l->checksum;
                                lfn_start = i;
                                for (int k = 0; k < count * 13; k++)
                                        lfn[k] = 0xFFFF;
                        } else if (expect < 1 || ord != expect || l->checksum != sum) {
                                expect = -1;
                                continue;
                        }
                        uint16_t *dst = lfn + (ord - 1) * 13;
                        for (int k = 0; k < 5; k++)
                                dst[k] = get_le16(l->name1 + 2 * k);
                        for (int k = 0; k < 6; k++)
                                dst[5 + k] = get_le16(l->name2 + 2 * k);
                        for (int k = 0; k < 2; k++)
                                dst[11 + k] = get_le16(l->name3 + 2 * k);
                        expect = ord - 1;
                        continue;
                }
                const struct fat_dirent *de = (const void *)raw;
                if (de->attr & ATTR_VOLUME) {
                        expect = -1;
                        continue;
                }
                e->idx = i;
                e->lfn_idx = i;
                e->long_name[0] = 0;
                if (expect == 0 && fat_lfn_checksum(de->name) == sum) {
                        size_t ulen = 0;
                        while (ulen < (size_t)count * 13 && lfn[ulen] != 0)
                                ulen++;
                        fat_utf16_to_utf8(lfn, ulen, e->long_name, sizeof e->long_name);
                        if (e->long_name[0])
                                e->lfn_idx = lfn_start;
                }
                fat_short_format(de->name, de->nt_flags, e->short_name, false);
                fat_short_format(de->name, de->nt_flags, e->display, true);
                e->attr = de->attr;
                e->cluster = get_le16(de->cluster_lo) | (uint32_t)get_le16(de->cluster_hi) << 16;
                e->size = get_le32(de->size);
                *pos = i + 1;
                return 1;
        }
        return 0;
}

bool fat_dent_is_dot(const struct fat_dent *e) { return !strcmp(e->short_name, ".") || !strcmp(e->short_name, ".."); }

bool fat_dent_matches(const struct fat_dent *e, const char *name) {
        return (e->long_name[0] && !fat_name_casecmp(e->long_name, name)) || !fat_name_casecmp(e->short_name, name);
}

/* Fills the LFN entries for u16, last piece first as stored on disk. */
static void lfn_fill(struct fat_lfn *lfn, size_t nlfn, const uint16_t *u16, size_t ulen, const uint8_t raw[11]) {
        uint8_t sum = fat_lfn_checksum(raw);
        for (size_t k = 0; k < nlfn; k++) {
                size_t ord = nlfn - k;
                struct fat_lfn *l = &lfn[k];
                memset(l, 0, sizeof *l);
                l->ord = (uint8_t)(ord | (k == 0 ? LFN_LAST : 0));
                l->attr = ATTR_LFN;
                l->checksum = sum;
                uint16_t part[13];
                for (size_t j = 0; j < 13; j++) {
                        size_t at = (ord - 1) * 13 + j;
                        part[j] = at < ulen ? u16[at] : at == ulen ? 0 : 0xFFFF;
                }
                for (int j = 0; j < 5; j++)
                        put_le16(l->name1 + 2 * j, part[j]);
                for (int j = 0; j < 6; j++)
                        put_le16(l->name2 + 2 * j, part[5 + j]);
                for (int j = 0; j < 2; j++)
                        put_le16(l->name3 + 2 * j, part[11 + j]);
        }
}

int fat_name_encode(const char *fsname, const char *path, const char *name, const uint8_t *data, size_t len,
                    uint8_t raw[11], uint8_t *nt, struct fat_lfn lfn[LFN_MAX_ENTRIES], size_t *nlfn) {
        uint16_t u16[LFN_MAX];
        size_t ulen;
        int r = validate_name(fsname, path, name, u16, &ulen);
        if (r < 0)
                return r;
        *nt = 0;
        *nlfn = 0;
        if (plain_short_name(name, raw, nt))
                return 0;
        r = make_alias(fsname, data, len, path, name, raw);
        if (r < 0)
                return r;
        *nt = 0;
        *nlfn = DIV_ROUND_UP(ulen, 13);
        lfn_fill(lfn, *nlfn, u16, ulen, raw);
        return 0;
}

int fat_name_validate(const char *fsname, const char *path, const char *name) {
        uint16_t u16[LFN_MAX];
        size_t ulen;
        return validate_name(fsname, path, name, u16, &ulen);
}
