/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "host.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "secret.h"
#include "util.h"

void host_free(struct host_settings *hs) {
        free(hs->hostname);
        free(hs->user);
        free(hs->password_hash);
        free(hs->password_file);
        strv_clear(&hs->ssh_key_files, &hs->nssh_key_files);
        strv_clear(&hs->ssh_keys, &hs->nssh_keys);
        free(hs->ip);
        free(hs->gateway);
        strv_clear(&hs->dns, &hs->ndns);
        free(hs->wifi_ssid);
        free(hs->wifi_psk_file);
        free_secret(hs->wifi_pass);
        free_secret(hs->wifi_psk_hex);
        free(hs->wifi_country);
        free(hs->timezone);
        free(hs->locale);
        free(hs->keymap);
        free(hs->model);
        strv_clear(&hs->extra_hosts, &hs->nextra_hosts);
        free(hs->origin);
        for (int f = 0; f < HF_N; f++)
                free(hs->where[f]);
        *hs = (struct host_settings){0};
}

static const struct {
        const char *key, *option;
} field_names[HF_N] = {
        [HF_HOSTNAME] = {"hostname", "--hostname"},
        [HF_USER] = {"user", "--user"},
        [HF_PASSWORD] = {"password", "--password-file"},
        [HF_IP] = {"ip", "--ip"},
        [HF_GATEWAY] = {"gateway", "--gateway"},
        [HF_DNS] = {"dns", "--dns"},
        [HF_WIFI_SSID] = {"wifi.ssid", "--wifi-ssid"},
        [HF_WIFI_PSK] = {"wifi.psk_file", "--wifi-psk-file"},
        [HF_WIFI_COUNTRY] = {"wifi.country", "--wifi-country"},
        [HF_WIFI_HIDDEN] = {"wifi.hidden", "--wifi-hidden"},
        [HF_TIMEZONE] = {"timezone", "--timezone"},
        [HF_LOCALE] = {"locale", "--locale"},
        [HF_KEYMAP] = {"keymap", "--keymap"},
        [HF_MODEL] = {"model", "--model"},
        [HF_SSH_KEYS] = {"ssh_keys", "--ssh-key"},
};

const char *host_where(const struct host_settings *hs, enum host_field f) {
        if (hs->where[f] || hs->origin)
                return hs->where[f] ? hs->where[f] : hs->origin;
        /* one field, two options */
        if (f == HF_PASSWORD && hs->password_hash && !hs->password_file)
                return "--password-hash";
        return field_names[f].option;
}

/* f's name spelt as field `like` was: "ip" beside a YAML gateway. */
static const char *name_as(const struct host_settings *hs, enum host_field f, enum host_field like) {
        return hs->where[like] ? field_names[f].key : field_names[f].option;
}

static void set_where(struct host_settings *hs, enum host_field f, const char *file, unsigned line) {
        free(hs->where[f]);
        hs->where[f] = xasprintf("%s:%u", file, line);
}

/* A file a YAML key names that cannot be opened is refused at that key's
 * line: the path alone, relative to the YAML file, would leave the reader
 * to find which entry it came from. */
static int check_named_file(const char *file, unsigned line, const char *key, const char *path) {
        /* access, not open: opening a FIFO and closing it again would end
         * the write of whoever feeds it, before the real read */
        if (access(path, R_OK) < 0)
                return log_error_at(input_err(-errno), file, line, "%s: cannot read %s: %s", key, path,
                                    strerror(errno));
        return 0;
}

static const char *const host_keys[] = {
        "hostname", "user", "password_hash", "password_file", "ssh_keys", "ssh_key_files", "ip", "gateway",
        "dns", "wifi", "timezone", "locale", "keymap", "model", NULL,
};
static const char *const wifi_keys[] = {"ssid", "psk_file", "country", "hidden", NULL};


/* What each key type's blob holds in SSH's wire format (RFC 4253 6.6,
 * PROTOCOL.u2f): how many length-prefixed strings, and what can be checked
 * without the crypto — the Ed25519 key's size, the ECDSA curve's name. */
static const struct key_type {
        const char *name;
        unsigned nstrings;
        uint32_t second_len;    /* the second string's size, 0: any */
        const char *curve;      /* the second string, NULL: any */
} key_types[] = {
        {"ssh-ed25519", 2, 32, NULL},
        {"ssh-rsa", 3, 0, NULL},
        {"ecdsa-sha2-nistp256", 3, 0, "nistp256"},
        {"ecdsa-sha2-nistp384", 3, 0, "nistp384"},
        {"ecdsa-sha2-nistp521", 3, 0, "nistp521"},
        {"sk-ssh-ed25519@openssh.com", 3, 32, NULL},
        {"sk-ecdsa-sha2-nistp256@openssh.com", 4, 0, "nistp256"},
};

/* The largest blob worth decoding: a 16384-bit RSA key is about 2.8 KB of
 * base64. */
#define KEY_B64_MAX 8192

static const struct key_type *key_type_find(const char *name, size_t len) {
        for (size_t i = 0; i < ARRAY_SIZE(key_types); i++)
                if (strlen(key_types[i].name) == len && !memcmp(key_types[i].name, name, len))
                        return &key_types[i];
        return NULL;
}

/* authorized_keys options (from="a b",no-pty) before the type: up to the
 * first blank outside quotes, as sshd reads them. */
static const char *skip_key_options(const char *p) {
        bool quoted = false;
        for (; *p; p++) {
                if (quoted && *p == '\\' && p[1])
                        p++;
                else if (*p == '"')
                        quoted = !quoted;
                else if (!quoted && (*p == ' ' || *p == '\t'))
                        break;
        }
        return p + strspn(p, " \t");
}

/* Why key line k would not let anyone log in, into why; false when it is a
 * well-formed public key.  A truncated or mangled line copied from a
 * terminal would lock the user out of a headless Pi, so the blob is decoded
 * and its framing checked, not just its first characters. */
static bool key_problem(const char *k, char *why, size_t size) {
        if (strpbrk(k, "\r\n")) {
                snprintf(why, size, "spans more than one line");
                return true;
        }
        /* a terminal's colour codes pasted into the comment, or a comment
         * saved as Latin-1: cloud-init's user-data is YAML, which takes
         * UTF-8 only and no control characters, C1 (U+0080-009F) included,
         * nor U+FFFE or U+FFFF.  PyYAML refuses the whole file for one such
         * character, and with it the user, the keys and the hostname. */
        size_t left = strlen(k);
        for (const unsigned char *c = (const unsigned char *)k; *c;) {
                if ((*c < 0x20 && *c != '\t') || *c == 0x7f) {
                        snprintf(why, size, "holds a control character (byte 0x%02x)", *c);
                        return true;
                }
                size_t n = *c < 0x80 ? 1 : utf8_len(c, left);
                if (!n) {
                        snprintf(why, size, "is not UTF-8 text (byte 0x%02x; saved as Latin-1?)", *c);
                        return true;
                }
                if (n == 2 && c[0] == 0xc2 && c[1] < 0xa0) {
                        snprintf(why, size, "holds a control character (U+%04X)", c[1]);
                        return true;
                }
                if (n == 3 && c[0] == 0xef && c[1] == 0xbf && c[2] >= 0xbe) {
                        snprintf(why, size, "holds U+%s, which is no character", c[2] == 0xbe ? "FFFE" : "FFFF");
                        return true;
                }
                c += n;
                left -= n;
        }
        const char *type = k;
        size_t tlen = strcspn(type, " \t");
        const struct key_type *kt = key_type_find(type, tlen);
        if (!kt) {
                type = skip_key_options(k);
                tlen = strcspn(type, " \t");
                kt = key_type_find(type, tlen);
        }
        if (!kt) {
                snprintf(why, size, "does not name a key type this image takes (ssh-ed25519, ssh-rsa, "
                                    "ecdsa-sha2-nistp256/384/521, sk-ssh-ed25519@openssh.com, ...)");
                return true;
        }
        const char *b64 = type + tlen + strspn(type + tlen, " \t");
        size_t n = strcspn(b64, " \t");
        if (n == 0) {
                snprintf(why, size, "has no key data after '%s'", kt->name);
                return true;
        }
        /* OpenSSH always pads; EVP_DecodeBlock decodes '=' as zero bytes
         * and counts them, so the padding is checked and subtracted here. */
        size_t pad = b64[n - 1] == '=' ? (n >= 2 && b64[n - 2] == '=' ? 2 : 1) : 0;
        bool b64ok = n % 4 == 0 && n <= KEY_B64_MAX;
        for (size_t i = 0; i < n - pad && b64ok; i++)
                b64ok = isalnum((unsigned char)b64[i]) || b64[i] == '+' || b64[i] == '/';
        if (!b64ok) {
                snprintf(why, size, "has key data that is not base64 of the right length (cut short or changed "
                                    "when copied?)");
                return true;
        }
        _cleanup_free_ uint8_t *blob = xmalloc(n / 4 * 3);
        int got = EVP_DecodeBlock(blob, (const unsigned char *)b64, (int)n);
        if (got < 0 || (size_t)got < pad) {
                snprintf(why, size, "has key data that is not base64 (cut short or changed when copied?)");
                return true;
        }
        size_t len = (size_t)got - pad, off = 0;
        size_t at[4] = {0}; /* where the first strings start in blob */
        uint32_t slen[4] = {0};
        unsigned count = 0;
        while (off < len) {
                if (len - off < 4 || get_be32(blob + off) > len - off - 4) {
                        snprintf(why, size, "has key data that ends inside a field (cut short when copied?)");
                        return true;
                }
                uint32_t l = get_be32(blob + off);
                if (count < ARRAY_SIZE(at)) {
                        at[count] = off + 4;
                        slen[count] = l;
                }
                count++;
                off += 4 + (size_t)l;
        }
        if (!count || slen[0] != strlen(kt->name) || memcmp(blob + at[0], kt->name, slen[0]) != 0) {
                const struct key_type *inner = count ? key_type_find((const char *)blob + at[0], slen[0]) : NULL;
                if (inner)
                        snprintf(why, size, "says '%s' but holds an %s key", kt->name, inner->name);
                else
                        snprintf(why, size, "says '%s' but its key data is not a %s key", kt->name, kt->name);
                return true;
        }
        if (count != kt->nstrings) {
                snprintf(why, size, "has %u fields in its key data where %s has %u (cut short or joined with "
                                    "another key?)",
                         count, kt->name, kt->nstrings);
                return true;
        }
        if (kt->second_len && slen[1] != kt->second_len) {
                snprintf(why, size, "holds a %" PRIu32 "-byte key where %s has %" PRIu32, slen[1], kt->name,
                         kt->second_len);
                return true;
        }
        if (kt->curve && (slen[1] != strlen(kt->curve) || memcmp(blob + at[1], kt->curve, slen[1]) != 0)) {
                snprintf(why, size, "says '%s' but its key data names another curve", kt->name);
                return true;
        }
        return false;
}

/* One error line naming where key k came from (file and line) and what to
 * do; 0 when the key is fine. */
static int check_key(const char *file, unsigned line, const char *k) {
        char why[256];
        if (!key_problem(k, why, sizeof why))
                return 0;
        return log_error_at(EINVAL, file, line,
                            "this SSH public key %s; copy the whole line from the .pub file again, or print it with: "
                            "ssh-keygen -y -f PRIVATE_KEY",
                            why);
}

/* map's key, a string, into *dst (a path: relative to file), with its
 * line kept as field f's place; 0 when the key is absent too. */
static int take_string(const char *file, const struct ynode *map, const char *key, const char *name, char **dst,
                       bool path, struct host_settings *hs, enum host_field f) {
        const struct ynode *v = ynode_get(map, key);
        if (!v)
                return 0;
        int r = ynode_string(file, name, v, dst);
        if (r < 0)
                return r;
        if (path) {
                char *rel = path_relative_to(file, *dst);
                free(*dst);
                *dst = rel;
        }
        set_where(hs, f, file, v->line);
        return 0;
}

int host_from_yaml(const char *file, const struct ynode *n, struct host_settings *hs) {
        int r = ynode_check_keys(file, "host", n, host_keys);
        if (r < 0)
                return r;
        struct {
                const char *key;
                char **dst;
                enum host_field f;
        } strs[] = {
                {"hostname", &hs->hostname, HF_HOSTNAME}, {"user", &hs->user, HF_USER},
                {"password_hash", &hs->password_hash, HF_PASSWORD}, {"ip", &hs->ip, HF_IP},
                {"gateway", &hs->gateway, HF_GATEWAY}, {"timezone", &hs->timezone, HF_TIMEZONE},
                {"locale", &hs->locale, HF_LOCALE}, {"keymap", &hs->keymap, HF_KEYMAP},
                {"model", &hs->model, HF_MODEL},
        };
        for (size_t i = 0; i < ARRAY_SIZE(strs); i++)
                if ((r = take_string(file, n, strs[i].key, strs[i].key, strs[i].dst, false, hs, strs[i].f)) < 0)
                        return r;
        if (ynode_get(n, "password_hash") && ynode_get(n, "password_file"))
                return log_error_at(EINVAL, file, ynode_get(n, "password_file")->line,
                                    "password_hash and password_file both give the password: keep one");
        if ((r = take_string(file, n, "password_file", "password_file", &hs->password_file, true, hs,
                             HF_PASSWORD)) < 0)
                return r;
        /* checked here, where each key's line is known */
        const struct ynode *keys = ynode_get(n, "ssh_keys");
        size_t nkeys = hs->nssh_keys;
        if ((r = ynode_strings(file, "ssh_keys", keys, &hs->ssh_keys, &hs->nssh_keys)) < 0)
                return r;
        const struct ynode *kf = ynode_get(n, "ssh_key_files");
        if ((keys || kf) && !hs->where[HF_SSH_KEYS])
                set_where(hs, HF_SSH_KEYS, file, (keys ? keys : kf)->line);
        for (size_t i = nkeys; i < hs->nssh_keys; i++) {
                unsigned line = keys->kind == Y_SEQ ? keys->items[i - nkeys]->line : keys->line;
                if ((r = check_key(file, line, hs->ssh_keys[i])) < 0)
                        return r;
        }
        char **files = NULL;
        size_t nfiles = 0, nkey_files = hs->nssh_key_files;
        r = ynode_strings(file, "ssh_key_files", kf, &files, &nfiles);
        for (size_t i = 0; i < nfiles; i++) {
                if (r >= 0) {
                        _cleanup_free_ char *p = path_relative_to(file, files[i]);
                        strv_push(&hs->ssh_key_files, &hs->nssh_key_files, p);
                }
                free(files[i]);
        }
        free(files);
        if (r < 0)
                return r;
        const struct ynode *dns = ynode_get(n, "dns");
        if (dns) {
                if ((r = ynode_strings(file, "dns", dns, &hs->dns, &hs->ndns)) < 0)
                        return r;
                set_where(hs, HF_DNS, file, dns->line);
        }
        struct ynode *w = ynode_get(n, "wifi");
        if (w) {
                if ((r = ynode_check_keys(file, "wifi", w, wifi_keys)) < 0)
                        return r;
                if ((r = take_string(file, w, "ssid", "wifi.ssid", &hs->wifi_ssid, false, hs, HF_WIFI_SSID)) < 0 ||
                    (r = take_string(file, w, "country", "wifi.country", &hs->wifi_country, false, hs,
                                     HF_WIFI_COUNTRY)) < 0 ||
                    (r = take_string(file, w, "psk_file", "wifi.psk_file", &hs->wifi_psk_file, true, hs,
                                     HF_WIFI_PSK)) < 0)
                        return r;
                struct ynode *hidden = ynode_get(w, "hidden");
                bool yes;
                if (hidden && (r = ynode_bool(file, "wifi.hidden", hidden, &yes)) < 0)
                        return r;
                if (hidden) {
                        hs->wifi_hidden = yes ? 1 : -1;
                        set_where(hs, HF_WIFI_HIDDEN, file, hidden->line);
                }
        }
        /* the files this one names, once it is good: a missing one is
         * named here, where the line that names it is known */
        for (size_t i = nkey_files; i < hs->nssh_key_files; i++)
                if ((r = check_named_file(file, kf->kind == Y_SEQ ? kf->items[i - nkey_files]->line : kf->line,
                                          "ssh_key_files", hs->ssh_key_files[i])) < 0)
                        return r;
        /* password_file and wifi.psk_file are checked where they are read
         * (read_secret_line): an option may replace them before that */
        const struct ynode *pf = ynode_get(n, "password_file"), *wf = w ? ynode_get(w, "psk_file") : NULL;
        if (pf)
                secret_file_check_mode(hs->password_file);
        if (wf)
                secret_file_check_mode(hs->wifi_psk_file);
        /* no origin: each value read knows its line, and one from the
         * command line merged in later must not be blamed on this file */
        return 0;
}

int host_load_file(const char *file, struct host_settings *hs) {
        struct ynode *root = NULL;
        int r = yaml_load(file, NULL, 0, &root);
        if (r < 0)
                return r;
        r = host_from_yaml(file, root, hs);
        ynode_free(root);
        return r;
}

/* A value set in o replaces hs's, and carries o's place for it (none: an
 * option's). */
static void over_where(struct host_settings *hs, const struct host_settings *o, enum host_field f) {
        free(hs->where[f]);
        hs->where[f] = o->where[f] ? xstrdup(o->where[f]) : NULL;
}

static void over(struct host_settings *hs, const struct host_settings *o, enum host_field f, char **dst,
                 const char *src) {
        if (!src)
                return;
        over_where(hs, o, f);
        free(*dst);
        *dst = xstrdup(src);
}

void host_merge(struct host_settings *hs, const struct host_settings *o) {
        over(hs, o, HF_HOSTNAME, &hs->hostname, o->hostname);
        over(hs, o, HF_USER, &hs->user, o->user);
        if (o->password_hash || o->password_file) {
                /* a password given on the command line replaces the file's, whatever its form */
                free(hs->password_hash);
                free(hs->password_file);
                hs->password_hash = o->password_hash ? xstrdup(o->password_hash) : NULL;
                hs->password_file = o->password_file ? xstrdup(o->password_file) : NULL;
                over_where(hs, o, HF_PASSWORD);
        }
        /* keys add up: the first to give any is where they are named */
        if ((o->nssh_key_files || o->nssh_keys) && !hs->nssh_key_files && !hs->nssh_keys)
                over_where(hs, o, HF_SSH_KEYS);
        for (size_t i = 0; i < o->nssh_key_files; i++)
                strv_push(&hs->ssh_key_files, &hs->nssh_key_files, o->ssh_key_files[i]);
        for (size_t i = 0; i < o->nssh_keys; i++)
                strv_push(&hs->ssh_keys, &hs->nssh_keys, o->ssh_keys[i]);
        over(hs, o, HF_IP, &hs->ip, o->ip);
        over(hs, o, HF_GATEWAY, &hs->gateway, o->gateway);
        if (o->ndns) {
                over_where(hs, o, HF_DNS);
                strv_clear(&hs->dns, &hs->ndns);
                for (size_t i = 0; i < o->ndns; i++)
                        strv_push(&hs->dns, &hs->ndns, o->dns[i]);
        }
        over(hs, o, HF_WIFI_SSID, &hs->wifi_ssid, o->wifi_ssid);
        if (o->wifi_psk_file) {
                /* the file and, once read, its passphrase go together */
                free_secret(hs->wifi_pass);
                hs->wifi_pass = o->wifi_pass ? xstrdup(o->wifi_pass) : NULL;
        }
        over(hs, o, HF_WIFI_PSK, &hs->wifi_psk_file, o->wifi_psk_file);
        over(hs, o, HF_WIFI_COUNTRY, &hs->wifi_country, o->wifi_country);
        if (o->wifi_hidden) {
                hs->wifi_hidden = o->wifi_hidden;
                over_where(hs, o, HF_WIFI_HIDDEN);
        }
        over(hs, o, HF_TIMEZONE, &hs->timezone, o->timezone);
        over(hs, o, HF_LOCALE, &hs->locale, o->locale);
        over(hs, o, HF_KEYMAP, &hs->keymap, o->keymap);
        over(hs, o, HF_MODEL, &hs->model, o->model);
        for (size_t i = 0; i < o->nextra_hosts; i++)
                strv_push(&hs->extra_hosts, &hs->nextra_hosts, o->extra_hosts[i]);
}

bool host_valid_hostname(const char *s) {
        /* RFC 1123 label: what avahi, DHCP and /etc/hosts all accept */
        size_t n = strlen(s);
        if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
                return false;
        for (const char *c = s; *c; c++)
                if (!isascii((unsigned char)*c) || !(isalnum((unsigned char)*c) || *c == '-'))
                        return false;
        return true;
}

/* Debian's adduser default NAME_REGEX */
static bool username_shape_ok(const char *s) {
        size_t n = strlen(s);
        if (n == 0 || n > 32 || !(islower((unsigned char)s[0]) || s[0] == '_'))
                return false;
        for (const char *c = s; *c; c++)
                if (!(islower((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '_' || *c == '-'))
                        return false;
        return true;
}

static bool username_reserved(const char *s) {
        static const char *const reserved[] = {"root", "daemon", "bin", "sys", "sync", "nobody", "sshd",
                                               "messagebus", "systemd-network", "docker", NULL};
        for (const char *const *r = reserved; *r; r++)
                if (!strcmp(*r, s))
                        return true;
        return false;
}

bool host_valid_ipv4(const char *s) {
        struct in_addr a;
        return inet_pton(AF_INET, s, &a) == 1;
}

bool host_parse_cidr(const char *s, char addr[16], unsigned *prefix) {
        const char *slash = strchr(s, '/');
        if (!slash || (size_t)(slash - s) >= 16)
                return false;
        memcpy(addr, s, (size_t)(slash - s));
        addr[slash - s] = 0;
        /* digits only: strtoul would take " 24" or "+24", which the line
         * written into NetworkManager's keyfile then carries, and NM
         * refuses the address (the Pi comes up unreachable) */
        const char *d = slash + 1;
        size_t nd = strspn(d, "0123456789");
        if (nd < 1 || nd > 2 || d[nd] || (nd == 2 && d[0] == '0'))
                return false;
        unsigned p = (unsigned)(d[0] - '0');
        if (nd == 2)
                p = p * 10 + (unsigned)(d[1] - '0');
        if (p < 1 || p > 32)
                return false;
        *prefix = p;
        return host_valid_ipv4(addr);
}

int host_netmask_prefix(const char *s) {
        struct in_addr a;
        if (inet_pton(AF_INET, s, &a) != 1)
                return -ENOENT;
        uint32_t m = ntohl(a.s_addr);
        /* contiguous: what follows the 1 bits is all 0, so ~m + 1 is a power of two */
        if ((~m & (~m + 1)) != 0)
                return -EINVAL;
        return __builtin_popcount(m);
}

/* The error for an --ip (or ip:) host_parse_cidr refused. */
/* An IPv6 address where IPv4 is taken: said so, not as a typo. */
static bool is_ipv6(const char *s) {
        struct in6_addr a;
        return s && inet_pton(AF_INET6, s, &a) == 1;
}

#define IPV4_ONLY                                                                                                      \
        "only IPv4 is set here (the Pi takes its IPv6 addresses from the router's advertisements, as "               \
        "NetworkManager does by default)"

static int log_bad_cidr(const struct host_settings *hs) {
        const char *ip = hs->ip, *slash = strchr(ip, '/');
        _cleanup_free_ char *addr = slash ? xstrndup(ip, (size_t)(slash - ip)) : xstrdup(ip);
        if (is_ipv6(addr))
                return log_error(EINVAL, host_where(hs, HF_IP), "invalid static address '%s': %s", ip, IPV4_ONLY);
        const char *len = slash ? slash + 1 : "";
        if (slash && host_valid_ipv4(addr) && *len && strspn(len, "0123456789") == strlen(len) &&
            (strlen(len) > 2 || len[0] == '0' || strtoul(len, NULL, 10) > 32))
                return log_error(EINVAL, host_where(hs, HF_IP),
                                 "invalid static address '%s': the prefix length is 1 to 32 (24 for a home "
                                 "network's 255.255.255.0)",
                                 ip);
        if (!slash) {
                free(addr);
                addr = NULL;
        }
        /* "192.168.1.10/255.255.255.0", as ifconfig and Windows take it */
        int p = slash && host_valid_ipv4(addr) ? host_netmask_prefix(slash + 1) : -ENOENT;
        if (p >= 1)
                return log_error(EINVAL, host_where(hs, HF_IP),
                                 "invalid static address '%s': give the prefix length, not the netmask: %s/%d "
                                 "(%s is /%d)",
                                 ip, addr, p, slash + 1, p);
        if (p != -ENOENT)
                return log_error(EINVAL, host_where(hs, HF_IP),
                                 "invalid static address '%s': give the prefix length after the '/', e.g. %s/24 for "
                                 "netmask 255.255.255.0 (%s %s)",
                                 ip, addr, slash + 1,
                                 p == 0 ? "would be /0, which no static address can have"
                                        : "is no netmask: its 1 bits must all come first");
        return log_error(EINVAL, host_where(hs, HF_IP),
                         "invalid static address '%s': expected ADDRESS/PREFIX, e.g. 192.168.1.101/24", ip);
}

/* One public key per line; comments and blank lines skipped; private keys
 * refused loudly, since copying one into an image would leak it. */
static int read_keys(const char *file, struct host_settings *hs) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t len;
        int r = read_file(file, 1 << 20, &data, &len);
        if (r < 0)
                return log_error(input_err(r), file, "cannot read SSH key: %s", strerror(-r));
        if (memchr(data, 0, len))
                return log_error(EINVAL, file, "not an SSH public key file (binary data)");
        if (strstr((char *)data, "PRIVATE KEY"))
                return log_error(EINVAL, file, "this is a private key; pass the public key (.pub) instead");
        /* Other tools' public key formats, which authorized_keys does not
         * read: ssh-keygen converts them. */
        static const struct {
                const char *marker, *what, *opt;
        } foreign[] = {
                {"---- BEGIN SSH2 PUBLIC KEY ----", "an RFC 4716 (SSH2)", ""},
                {"-----BEGIN PUBLIC KEY-----", "a PEM (PKCS#8)", " -m PKCS8"},
                {"-----BEGIN RSA PUBLIC KEY-----", "a PEM (PKCS#1)", " -m PEM"},
        };
        for (size_t i = 0; i < ARRAY_SIZE(foreign); i++)
                if (strstr((char *)data, foreign[i].marker))
                        return log_error(EINVAL, file,
                                         "%s public key, not OpenSSH's one-line form; convert it with: "
                                         "ssh-keygen -i%s -f %s",
                                         foreign[i].what, foreign[i].opt, file);
        size_t before = hs->nssh_keys;
        unsigned line = 0;
        /* strsep, not strtok: blank lines count, so line numbers are right */
        for (char *rest = (char *)data, *l; (l = strsep(&rest, "\n"));) {
                line++;
                l[strcspn(l, "\r")] = 0;
                while (*l == ' ' || *l == '\t')
                        l++;
                if (!*l || *l == '#')
                        continue;
                if ((r = check_key(file, line, l)) < 0)
                        return r;
                strv_push(&hs->ssh_keys, &hs->nssh_keys, l);
        }
        if (hs->nssh_keys == before)
                return log_error(EINVAL, file, "no SSH public key in file");
        return 0;
}

/* What an IPv4 address (host order) cannot be on a Pi's LAN, whatever the
 * prefix: NetworkManager takes these in a keyfile, and the Pi then reaches
 * nothing through them.  NULL: usable.  loopback: whether 127/8 is (a
 * resolver on the Pi itself, for a DNS server). */
static const char *unusable_ipv4(uint32_t a, bool loopback) {
        if (a >> 24 == 0)
                return "an unspecified (0.0.0.0/8) address";
        if (a >> 24 == 127 && !loopback)
                return "a loopback (127.0.0.0/8) address";
        if (a >> 28 == 14)
                return "a multicast (224.0.0.0/4) address";
        if (a >> 28 == 15)
                return "a reserved (240.0.0.0/4) address";
        return NULL;
}

static void ipv4_str(uint32_t a, char out[INET_ADDRSTRLEN]) {
        struct in_addr ia = {.s_addr = htonl(a)};
        inet_ntop(AF_INET, &ia, out, INET_ADDRSTRLEN);
}

/* Settings NetworkManager takes but the Pi cannot use: its subnet's own
 * network or broadcast address as its address, or a gateway it cannot reach
 * on the link.  A /31 (RFC 3021) has neither of those addresses, both are
 * hosts; a /32 has no subnet to share, so its gateway is outside by
 * necessity and NetworkManager routes to it on-link. */
/* hs->ip as given, a and p as host_parse_cidr read it; hs->gateway, if any,
 * valid IPv4. */
static int check_subnet(const struct host_settings *hs, const char *a, unsigned p) {
        const char *cidr = hs->ip, *gateway = hs->gateway;
        const char *wi = host_where(hs, HF_IP), *wg = host_where(hs, HF_GATEWAY);
        struct in_addr ia;
        (void)inet_pton(AF_INET, a, &ia); /* host_parse_cidr found it valid */
        uint32_t addr = ntohl(ia.s_addr);
        uint32_t mask = (uint32_t)(0xffffffffULL << (32 - p));
        uint32_t net = addr & mask, bcast = net | ~mask;
        char snet[INET_ADDRSTRLEN], sbcast[INET_ADDRSTRLEN], first[INET_ADDRSTRLEN], last[INET_ADDRSTRLEN];
        ipv4_str(net, snet);
        ipv4_str(bcast, sbcast);
        ipv4_str(net + 1, first);
        ipv4_str(bcast - 1, last);
        const char *bad = unusable_ipv4(addr, false);
        if (bad)
                return log_error(EINVAL, wi, "static address %s is %s, which no host on a network may have", cidr, bad);
        if (p <= 30 && (addr == net || addr == bcast))
                return log_error(EINVAL, wi,
                                 "static address %s is its subnet's %s address, which no host may have: use one "
                                 "from %s to %s",
                                 cidr, addr == net ? "network" : "broadcast", first, last);
        if (!gateway)
                return 0;
        struct in_addr ig;
        (void)inet_pton(AF_INET, gateway, &ig); /* host_valid_ipv4 found it valid */
        uint32_t gw = ntohl(ig.s_addr);
        if ((bad = unusable_ipv4(gw, false)))
                return log_error(EINVAL, wg, "gateway %s is %s, not a router's", gateway, bad);
        if (gw == addr)
                return log_error(EINVAL, wg,
                                 "gateway %s is the Pi's own address (%s): give the router's address on that subnet",
                                 gateway, cidr);
        if (p < 32 && (gw & mask) != net)
                return log_error(EINVAL, wg,
                                 "gateway %s is outside the Pi's subnet %s/%u (%s to %s), so the Pi cannot reach it: "
                                 "give the router's address on that subnet, or correct the prefix of %s",
                                 gateway, snet, p, snet, sbcast, cidr);
        if (p <= 30 && (gw == net || gw == bcast))
                return log_error(EINVAL, wg,
                                 "gateway %s is the %s address of subnet %s/%u, not a router's: give the router's "
                                 "address (%s to %s)",
                                 gateway, gw == net ? "network" : "broadcast", snet, p, first, last);
        return 0;
}

/* where: "FILE:LINE" of the YAML key (key) that named file, or NULL for
 * an option's: a file that cannot be read is named there. */
static int read_secret_line(const char *file, const char *what, const char *where, const char *key, char **out) {
        /* wiped whatever stops the reading: the errors below refuse a file
         * whose content may be the secret all the same */
        _cleanup_(buf_free_secret) struct buf raw = {0};
        int r = read_file(file, 4096, &raw.data, &raw.len);
        if (r < 0 && where)
                return log_error(input_err(r), where, "%s: cannot read %s: %s", key, file, strerror(-r));
        if (r < 0)
                return log_error(input_err(r), file, "cannot read %s: %s", what, strerror(-r));
        raw.cap = raw.len + 1; /* the bytes read and their NUL */
        uint8_t *data = raw.data;
        size_t len = raw.len;
        if (memchr(data, 0, len))
                return log_error(EINVAL, file, "%s file contains a NUL byte", what);
        /* Notepad's UTF-8 byte order mark is no part of it either: hashed
         * with it, the password could never be typed */
        if (len >= 3 && !memcmp(data, "\xef\xbb\xbf", 3)) {
                memmove(data, data + 3, len - 3 + 1);
                len -= 3;
        }
        /* one line; the trailing newline an editor adds is not part of it */
        while (len && (data[len - 1] == '\n' || data[len - 1] == '\r'))
                data[--len] = 0;
        if (memchr(data, '\n', len))
                return log_error(EINVAL, file, "%s file must hold a single line", what);
        if (!len)
                return log_error(EINVAL, file, "%s file is empty", what);
        *out = (char *)data;
        raw.data = NULL;
        return 0;
}

static int read_password_and_keys(struct host_settings *hs, bool allow_weak) {
        int r;
        if (hs->password_file) {
                _cleanup_free_ char *pw = NULL;
                if ((r = read_secret_line(hs->password_file, "password", hs->where[HF_PASSWORD], "password_file", &pw)) < 0)
                        return r;
                /* The same rule as the stack's secrets: this password opens
                 * SSH and sudo on a Pi that is usually on a shared network. */
                const char *why = secret_weakness(pw);
                if (why && !allow_weak) {
                        explicit_bzero(pw, strlen(pw));
                        return log_error(EINVAL, hs->password_file,
                                         "the password %s; put a strong one in this file (or use --password-hash), "
                                         "or pass --allow-weak-secrets",
                                         why);
                }
                if (why)
                        log_warn(hs->password_file, "the password %s; kept because of --allow-weak-secrets", why);
                free(hs->password_hash);
                hs->password_hash = NULL;
                r = secret_hash_password(pw, &hs->password_hash);
                explicit_bzero(pw, strlen(pw));
                if (r < 0)
                        return log_error(r, hs->password_file, "cannot hash the password");
                free(hs->password_file);
                hs->password_file = NULL;
        }
        for (size_t i = 0; i < hs->nssh_key_files; i++)
                if ((r = read_keys(hs->ssh_key_files[i], hs)) < 0)
                        return r;
        strv_clear(&hs->ssh_key_files, &hs->nssh_key_files);
        return 0;
}

static int read_wifi_pass(struct host_settings *hs) {
        if (!hs->wifi_psk_file || hs->wifi_pass)
                return 0;
        return read_secret_line(hs->wifi_psk_file, "Wi-Fi passphrase", hs->where[HF_WIFI_PSK], "wifi.psk_file",
                                &hs->wifi_pass);
}

int host_read_files(struct host_settings *hs, bool allow_weak) {
        int r = read_password_and_keys(hs, allow_weak);
        return r < 0 ? r : read_wifi_pass(hs);
}

int host_finalize(struct host_settings *hs, bool allow_weak) {
        int r;
        if (hs->hostname && !host_valid_hostname(hs->hostname))
                return log_error(EINVAL, host_where(hs, HF_HOSTNAME),
                                 "invalid hostname '%s': use 1-63 letters, digits and '-'", hs->hostname);
        /* 'root' has the right letters: saying which letters to use
         * would not tell what is wrong with it */
        if (hs->user && !username_shape_ok(hs->user))
                return log_error(EINVAL, host_where(hs, HF_USER),
                                 "invalid user name '%s': use lower-case letters, digits, '_' and '-'", hs->user);
        if (hs->user && username_reserved(hs->user))
                return log_error(EINVAL, host_where(hs, HF_USER),
                                 "user name '%s' is reserved for the system; choose another, such as pi", hs->user);
        if ((hs->password_hash || hs->password_file || hs->nssh_keys || hs->nssh_key_files) && !hs->user) {
                enum host_field f = hs->password_hash || hs->password_file ? HF_PASSWORD : HF_SSH_KEYS;
                return log_error(EINVAL, host_where(hs, f), "a password or SSH key needs a user: add %s",
                                 hs->where[f] ? "user: NAME" : "--user NAME");
        }
        if (hs->password_hash && !secret_hash_valid(hs->password_hash))
                return log_error(EINVAL, host_where(hs, HF_PASSWORD),
                                 "the password hash is not a whole crypt(3) hash of a kind accepted here (yescrypt "
                                 "$y$, $gy$, SHA-512 $6$, SHA-256 $5$ or bcrypt $2b$), or it was cut short; make one "
                                 "with: mkpasswd -m yescrypt");
        if ((r = read_password_and_keys(hs, allow_weak)) < 0)
                return r;
        char ip_addr[16] = "";
        unsigned ip_prefix = 0;
        if (hs->ip && !host_parse_cidr(hs->ip, ip_addr, &ip_prefix))
                return log_bad_cidr(hs);
        if (hs->gateway && !hs->ip)
                return log_error(EINVAL, host_where(hs, HF_GATEWAY),
                                 "a gateway needs a static address: add %s ADDRESS/PREFIX",
                                 hs->where[HF_GATEWAY] ? "ip:" : "--ip");
        /* First boot installs Docker and pulls images: a static address
         * without a route out, or without a resolver, never gets there
         * (the Pi stays reachable on its own subnet, so only a warning). */
        if (hs->ip && !hs->gateway)
                log_warn(host_where(hs, HF_IP),
                         "static address %s without a gateway: the Pi reaches only its own subnet, "
                         "and first boot cannot install Docker or pull images unless they are there",
                         hs->ip);
        if (hs->gateway && !host_valid_ipv4(hs->gateway))
                return log_error(EINVAL, host_where(hs, HF_GATEWAY), "invalid gateway '%s'%s%s", hs->gateway,
                                 is_ipv6(hs->gateway) ? ": " : "", is_ipv6(hs->gateway) ? IPV4_ONLY : "");
        if (hs->ip && (r = check_subnet(hs, ip_addr, ip_prefix)) < 0)
                return r;
        for (size_t i = 0; i < hs->ndns; i++) {
                struct in_addr in;
                if (host_valid_ipv4(hs->dns[i]) && inet_pton(AF_INET, hs->dns[i], &in) == 1) {
                        const char *bad = unusable_ipv4(ntohl(in.s_addr), true);
                        if (bad)
                                return log_error(EINVAL, host_where(hs, HF_DNS),
                                                 "DNS server %s is %s, not a resolver's", hs->dns[i], bad);
                        continue;
                }
                /* "1.1.1.1,8.8.8.8", as NetworkManager's dns= takes them;
                 * but "1.1.1.1 " is one address with a blank */
                const char *d = hs->dns[i];
                size_t lead = strspn(d, " \t"), end = strlen(d);
                bool blanks = lead > 0 || (end > 0 && (d[end - 1] == ' ' || d[end - 1] == '\t'));
                while (end > lead && (d[end - 1] == ' ' || d[end - 1] == '\t'))
                        end--;
                bool several = strcspn(d + lead, ", ;\t") < end - lead;
                const char *hint = several            ? hs->where[HF_DNS] ? ": one address per item; list several as [A, B]"
                                                                          : ": one address per --dns; give it once for each"
                                   : blanks           ? ": remove the blanks around it"
                                   : is_ipv6(d)       ? ": " IPV4_ONLY
                                                      : "";
                return log_error(EINVAL, host_where(hs, HF_DNS), "invalid DNS server '%s'%s", d, hint);
        }
        /* With DHCP the network's DNS servers are the Pi's: the keyfile
         * names servers only beside a static address (as gateway). */
        if (hs->ndns && !hs->ip)
                return log_error(EINVAL, host_where(hs, HF_DNS),
                                 "a DNS server is set with a static address: add %s ADDRESS/PREFIX (with DHCP, the "
                                 "network's own DNS servers are used)",
                                 hs->where[HF_DNS] ? "ip:" : "--ip");
        if (hs->ip && hs->gateway && !hs->ndns) {
                /* NetworkManager asks no one when a manual address lists no
                 * DNS server; home routers answer DNS on their own address. */
                log_info("no DNS server given%s%s: the gateway %s will be the DNS server", hs->origin ? " for " : "",
                         hs->origin ? hs->origin : "", hs->gateway);
                strv_push(&hs->dns, &hs->ndns, hs->gateway);
        }
        if (hs->wifi_hidden > 0 && !hs->wifi_ssid)
                return log_error(EINVAL, host_where(hs, HF_WIFI_HIDDEN), "a hidden Wi-Fi network needs its %s",
                                 name_as(hs, HF_WIFI_SSID, HF_WIFI_HIDDEN));
        if (hs->wifi_ssid || hs->wifi_psk_file) {
                if (!hs->wifi_ssid || !hs->wifi_psk_file) {
                        enum host_field given = hs->wifi_ssid ? HF_WIFI_SSID : HF_WIFI_PSK;
                        return log_error(EINVAL, host_where(hs, given), "Wi-Fi needs both %s and %s",
                                         name_as(hs, HF_WIFI_SSID, given), name_as(hs, HF_WIFI_PSK, given));
                }
                size_t sl = strlen(hs->wifi_ssid);
                if (sl == 0 || sl > 32)
                        return log_error(EINVAL, host_where(hs, HF_WIFI_SSID), "Wi-Fi SSID must be 1 to 32 bytes");
                if (!hs->wifi_country)
                        return log_error(EINVAL, host_where(hs, HF_WIFI_SSID),
                                         "Wi-Fi needs %s (e.g. GB): the radio stays off without it",
                                         name_as(hs, HF_WIFI_COUNTRY, HF_WIFI_SSID));
                if ((r = read_wifi_pass(hs)) < 0)
                        return r;
                char hex[65];
                r = secret_wifi_psk(hs->wifi_ssid, hs->wifi_pass, hex);
                free_secret(hs->wifi_pass);
                hs->wifi_pass = NULL;
                if (r < 0)
                        return log_error(r, hs->wifi_psk_file,
                                         "Wi-Fi passphrase must be 8 to 63 printable ASCII characters (or the 64-hex-digit key)");
                free_secret(hs->wifi_psk_hex);
                hs->wifi_psk_hex = xstrdup(hex);
                explicit_bzero(hex, sizeof hex);
                free(hs->wifi_psk_file);
                hs->wifi_psk_file = NULL;
        }
        /* ISO codes are upper case and XKB layouts lower case wherever
         * they are used; either spelling means the same to a user */
        for (char *c = hs->wifi_country; c && *c; c++)
                *c = (char)toupper((unsigned char)*c);
        for (char *c = hs->keymap; c && *c; c++)
                *c = (char)tolower((unsigned char)*c);
        if (hs->wifi_country) {
                const char *c = hs->wifi_country;
                if (strlen(c) != 2 || !isupper((unsigned char)c[0]) || !isupper((unsigned char)c[1]))
                        return log_error(EINVAL, host_where(hs, HF_WIFI_COUNTRY),
                                         "Wi-Fi country must be a two-letter ISO 3166 code, e.g. GB");
                /* the usual slips (the EU's codes), refused even where the
                 * base has no iso3166.tab to look them up in */
                static const struct {
                        const char *code, *right;
                } slips[] = {{"UK", "the United Kingdom's is GB"}, {"EL", "Greece's is GR"}};
                for (size_t i = 0; i < ARRAY_SIZE(slips); i++)
                        if (!strcmp(c, slips[i].code))
                                return log_error(EINVAL, host_where(hs, HF_WIFI_COUNTRY),
                                                 "Wi-Fi country '%s' is not an ISO 3166 code (the EU's own): %s", c,
                                                 slips[i].right);
        }
        if (hs->timezone) {
                const char *t = hs->timezone;
                size_t n = strlen(t);
                bool ok = n && n < 64 && *t != '/' && t[n - 1] != '/' && !strstr(t, "..") && !strstr(t, "//");
                for (const char *c = t; *c && ok; c++)
                        ok = isalnum((unsigned char)*c) || strchr("/_-+", *c);
                if (!ok)
                        return log_error(EINVAL, host_where(hs, HF_TIMEZONE),
                                         "invalid time zone '%s': use an IANA name such as Europe/Berlin", t);
        }
        if (hs->locale) {
                bool ok = strlen(hs->locale) < 64;
                for (const char *c = hs->locale; *c && ok; c++)
                        ok = isalnum((unsigned char)*c) || strchr("_.-@", *c);
                if (!ok || !*hs->locale)
                        return log_error(EINVAL, host_where(hs, HF_LOCALE),
                                         "invalid locale '%s': e.g. en_GB.UTF-8", hs->locale);
        }
        if (hs->keymap) {
                bool ok = strlen(hs->keymap) < 32;
                for (const char *c = hs->keymap; *c && ok; c++)
                        ok = isalnum((unsigned char)*c) || strchr("_-", *c);
                if (!ok || !*hs->keymap)
                        return log_error(EINVAL, host_where(hs, HF_KEYMAP),
                                         "invalid keymap '%s': e.g. gb, de, us", hs->keymap);
        }
        return 0;
}
