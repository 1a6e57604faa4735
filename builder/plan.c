/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "plan.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "appsource.h"
#include "hash.h"
#include "json.h"
#include "log.h"
#include "util.h"

#define WANTS "/etc/systemd/system/multi-user.target.wants/"

/* Groups a Raspberry Pi OS first user belongs to; those the base lacks are
 * skipped. */
static const char *const user_groups[] = {"adm",   "dialout", "cdrom", "sudo",  "audio", "video", "plugdev", "games",
                                          "users", "input",   "render", "netdev", "gpio", "i2c",   "spi",     NULL};

const char *os_flavour_name(enum os_flavour os) {
        switch (os) {
        case OS_BOOKWORM: return "bookworm";
        case OS_TRIXIE: return "trixie";
        default: return "unknown";
        }
}

char *os_release_get(const char *text, const char *key) {
        if (!text)
                return NULL;
        size_t kl = strlen(key);
        for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
                if (strncmp(l, key, kl) != 0 || l[kl] != '=')
                        continue;
                const char *v = l + kl + 1;
                size_t n = strcspn(v, "\n");
                if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
                        v++;
                        n -= 2;
                }
                return xstrndup(v, n);
        }
        return NULL;
}

enum os_flavour plan_detect_os(const char *os_release) {
        _cleanup_free_ char *codename = os_release_get(os_release, "VERSION_CODENAME");
        _cleanup_free_ char *version = os_release_get(os_release, "VERSION_ID");
        if ((codename && !strcmp(codename, "bookworm")) || (version && !strcmp(version, "12")))
                return OS_BOOKWORM;
        if ((codename && !strcmp(codename, "trixie")) || (version && !strcmp(version, "13")))
                return OS_TRIXIE;
        return OS_UNKNOWN;
}

void plan_uuid(const char *seed, char out[37]) {
        uint8_t h[32];
        struct sha256 s;
        sha256_init(&s);
        sha256_update(&s, seed, strlen(seed));
        sha256_final_raw(&s, h);
        h[6] = (uint8_t)((h[6] & 0x0f) | 0x40); /* version 4 shape */
        h[8] = (uint8_t)((h[8] & 0x3f) | 0x80);
        char hex[33];
        hex_encode(h, 16, hex);
        snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

static void add_text(struct payload *p, enum part part, const char *path, uint32_t mode, const struct buf *b) {
        payload_add_file(p, part, path, mode, 0, 0, b->data, b->len);
}

static void add_str(struct payload *p, enum part part, const char *path, uint32_t mode, const char *s) {
        payload_add_file(p, part, path, mode, 0, 0, s, strlen(s));
}

static void plan_tuning(const struct profile *pr, struct payload *p) {
        struct buf b = {0};
        buf_printf(&b,
                   "# Written by dimimage from profile '%s': a headless Pi on an SD card keeps\n"
                   "# its journal small to limit wear and RAM use.\n[Journal]\nSystemMaxUse=%s\nRuntimeMaxUse=%s\n",
                   pr->name, pr->journald_max_use ? pr->journald_max_use : "64M",
                   pr->journald_max_use ? pr->journald_max_use : "64M");
        payload_add_dir(p, PART_ROOT, "/etc/systemd/journald.conf.d", 0755, 0, 0);
        add_text(p, PART_ROOT, "/etc/systemd/journald.conf.d/dimdim.conf", 0644, &b);
        buf_free(&b);
        buf_printf(&b,
                   "{\n  \"log-driver\": \"json-file\",\n  \"log-opts\": {\n    \"max-size\": \"%s\",\n"
                   "    \"max-file\": \"%u\"\n  }\n}\n",
                   pr->docker_log_max_size ? pr->docker_log_max_size : "10m",
                   pr->docker_log_max_file ? pr->docker_log_max_file : 3);
        payload_add_dir(p, PART_ROOT, "/etc/docker", 0755, 0, 0);
        add_text(p, PART_ROOT, "/etc/docker/daemon.json", 0644, &b);
        buf_free(&b);
}

static void plan_stack_conf(const struct plan_input *in, struct payload *p) {
        struct buf b = {0};
        buf_puts(&b, "# Written by dimimage: what dimdim-firstboot and dimdim-stack run. No secrets here;\n"
                     "# they live in " DIMDIM_ENV " (0600 root).\n");
        buf_printf(&b, "DIMDIM_ROLE=%s\n", in->profile->name);
        buf_puts(&b, "DIMDIM_COMPOSE_FILES=");
        for (size_t i = 0; i < in->profile->ncompose; i++)
                buf_printf(&b, "%s%s", i ? ":" : "", in->profile->compose[i]);
        buf_puts(&b, "\nDIMDIM_PROJECT=dimdim-health\n");
        buf_printf(&b, "DIMDIM_USER=%s\n", in->host->user ? in->host->user : "");
        buf_printf(&b, "DIMDIM_LOCALE_GEN=%s\n", in->host->locale ? "1" : "0");
        payload_add_dir(p, PART_ROOT, "/etc/dimimage", 0755, 0, 0)->own_dir = true;
        add_text(p, PART_ROOT, "/etc/dimimage/stack.conf", 0644, &b);
        buf_free(&b);
}

static void nm_ipv4(struct buf *b, const struct host_settings *h) {
        if (!h->ip) {
                buf_puts(b, "\n[ipv4]\nmethod=auto\n");
                return;
        }
        buf_printf(b, "\n[ipv4]\nmethod=manual\naddress1=%s%s%s\n", h->ip, h->gateway ? "," : "",
                   h->gateway ? h->gateway : "");
        if (h->ndns) {
                buf_puts(b, "dns=");
                for (size_t i = 0; i < h->ndns; i++)
                        buf_printf(b, "%s;", h->dns[i]);
                buf_puts(b, "\n");
        }
}

/* NetworkManager ignores keyfiles that are not root-owned 0600.  No
 * interface-name: RasPiOS calls the port eth0, a VM enp0s1; the profile
 * applies to whichever wired device there is. */
static void plan_network(const struct plan_input *in, struct payload *p) {
        const struct host_settings *h = in->host;
        const char *seed = h->hostname ? h->hostname : "raspberrypi";
        char uuid[37];
        const char *dir = "/etc/NetworkManager/system-connections";
        bool wifi = h->wifi_ssid != NULL;
        if (h->ip && !wifi) {
                struct buf b = {0};
                _cleanup_free_ char *s = xasprintf("%s/dimdim-eth", seed);
                plan_uuid(s, uuid);
                buf_printf(&b,
                           "# Written by dimimage: static address for the wired port.\n"
                           "[connection]\nid=dimdim-eth\nuuid=%s\ntype=ethernet\nautoconnect=true\n"
                           "autoconnect-priority=100\n\n[ethernet]\n",
                           uuid);
                nm_ipv4(&b, h);
                buf_puts(&b, "\n[ipv6]\naddr-gen-mode=default\nmethod=auto\n\n[proxy]\n");
                payload_add_dir(p, PART_ROOT, dir, 0755, 0, 0)->own_dir = true;
                struct payload_entry *e = payload_add_file(p, PART_ROOT, "/etc/NetworkManager/system-connections/dimdim-eth.nmconnection",
                                                           0600, 0, 0, b.data, b.len);
                e->secret = false;
                buf_free(&b);
        }
        if (wifi) {
                struct buf b = {0};
                _cleanup_free_ char *s = xasprintf("%s/dimdim-wifi", seed);
                plan_uuid(s, uuid);
                buf_printf(&b,
                           "# Written by dimimage. The key is the PBKDF2 hash of the passphrase, never\n"
                           "# the passphrase itself.\n"
                           "[connection]\nid=dimdim-wifi\nuuid=%s\ntype=wifi\nautoconnect=true\n\n"
                           "[wifi]\nmode=infrastructure\nssid=",
                           uuid);
                /* SSIDs are bytes: a plain string only when keyfile syntax
                 * cannot misread it (GLib drops spaces around a value). */
                size_t sl = strlen(h->wifi_ssid);
                bool plain = h->wifi_ssid[0] != ' ' && h->wifi_ssid[sl - 1] != ' ';
                for (const char *c = h->wifi_ssid; *c; c++)
                        if (*c < 0x20 || *c > 0x7e || *c == ';' || *c == '\\')
                                plain = false;
                if (plain)
                        buf_puts(&b, h->wifi_ssid);
                else
                        for (const unsigned char *c = (const unsigned char *)h->wifi_ssid; *c; c++)
                                buf_printf(&b, "%u;", *c);
                buf_printf(&b, "\n\n[wifi-security]\nkey-mgmt=wpa-psk\npsk=%s\n", h->wifi_psk_hex);
                nm_ipv4(&b, h);
                buf_puts(&b, "\n[ipv6]\naddr-gen-mode=default\nmethod=auto\n\n[proxy]\n");
                payload_add_dir(p, PART_ROOT, dir, 0755, 0, 0)->own_dir = true;
                struct payload_entry *e = payload_add_file(
                        p, PART_ROOT, "/etc/NetworkManager/system-connections/dimdim-wifi.nmconnection", 0600, 0, 0,
                        b.data, b.len);
                e->secret = true;
                explicit_bzero(b.data, b.len);
                buf_free(&b);
                /* RasPiOS keeps Wi-Fi soft-blocked until a country is set. */
                add_str(p, PART_ROOT, "/etc/systemd/system/dimdim-wifi-unblock.service", 0644,
                        "# Written by dimimage: Raspberry Pi OS soft-blocks Wi-Fi until a country is set.\n"
                        "[Unit]\nDescription=Unblock Wi-Fi for dimimage's connection\n"
                        "DefaultDependencies=no\nBefore=NetworkManager.service\nAfter=systemd-rfkill.service\n"
                        "ConditionPathExists=/usr/sbin/rfkill\n\n"
                        "[Service]\nType=oneshot\nExecStart=/usr/sbin/rfkill unblock wifi\n\n"
                        "[Install]\nWantedBy=multi-user.target\n");
                payload_add_symlink(p, PART_ROOT, WANTS "dimdim-wifi-unblock.service",
                                    "/etc/systemd/system/dimdim-wifi-unblock.service");
        }
}

static void plan_locale(const struct host_settings *h, struct payload *p) {
        if (h->timezone) {
                _cleanup_free_ char *t = xasprintf("/usr/share/zoneinfo/%s", h->timezone);
                /* a dangling /etc/localtime is UTC, silently */
                payload_add_symlink(p, PART_ROOT, "/etc/localtime", t)->target_hint =
                        "check the time zone's spelling (timedatectl list-timezones)";
                _cleanup_free_ char *z = xasprintf("%s\n", h->timezone);
                add_str(p, PART_ROOT, "/etc/timezone", 0644, z);
        }
        if (h->locale) {
                _cleanup_free_ char *l = xasprintf("LANG=%s\n", h->locale);
                add_str(p, PART_ROOT, "/etc/default/locale", 0644, l);
        }
        if (h->keymap) {
                _cleanup_free_ char *k = xasprintf("# Written by dimimage\nXKBMODEL=\"pc105\"\nXKBLAYOUT=\"%s\"\n"
                                                   "XKBVARIANT=\"\"\nXKBOPTIONS=\"\"\nBACKSPACE=\"guess\"\n",
                                                   h->keymap);
                add_str(p, PART_ROOT, "/etc/default/keyboard", 0644, k);
                /* keyboard-setup.sh runs this cache whenever it exists and
                 * reads /etc/default/keyboard only without it (as
                 * raspi-config's do_configure_keyboard regenerates it). */
                payload_add_unlink(p, PART_ROOT, "/etc/console-setup/cached_setup_keyboard.sh");
        }
}

static void plan_ssh(const struct plan_input *in, struct payload *p) {
        const struct host_settings *h = in->host;
        if (!h->user || (!h->nssh_keys && !h->password_hash))
                return;
        /* what `systemctl enable ssh` writes */
        payload_add_symlink(p, PART_ROOT, WANTS "ssh.service", "/lib/systemd/system/ssh.service");
        payload_add_symlink(p, PART_ROOT, "/etc/systemd/system/sshd.service", "/lib/systemd/system/ssh.service");
        if (h->nssh_keys && !h->password_hash) {
                payload_add_dir(p, PART_ROOT, "/etc/ssh/sshd_config.d", 0755, 0, 0);
                add_str(p, PART_ROOT, "/etc/ssh/sshd_config.d/10-dimimage.conf", 0644,
                        "# Written by dimimage: key-only login was asked for.\nPasswordAuthentication no\n"
                        "KbdInteractiveAuthentication no\n");
        }
}

/* docker compose sends the whole build context (/opt/dimdim-health: the
 * source, and .env with it) to the builder, and a Dockerfile's `COPY . .`
 * would put the stack's secrets into an image layer, to be pushed with it.
 * The source's own .dockerignore is kept, .env added to it. */
static int add_dockerignore(struct payload *out, const char *path) {
        const struct payload_entry *e = payload_find(out, PART_ROOT, path);
        struct buf b = {0};
        if (e && e->type == ENTRY_FILE) {
                if (e->source) {
                        _cleanup_free_ uint8_t *data = NULL;
                        size_t len;
                        int r = read_file(e->source, 1u << 20, &data, &len);
                        if (r < 0)
                                return log_error(input_err(r), e->source, "cannot read: %s", strerror(-r));
                        buf_append(&b, data, len);
                } else
                        buf_append(&b, e->data, e->len);
                if (b.len && ((const char *)b.data)[b.len - 1] != '\n')
                        buf_puts(&b, "\n");
        }
        buf_puts(&b, "# Added by dimimage: the stack's secrets stay out of every image.\n.env\n");
        payload_add_file(out, PART_ROOT, path, 0644, 0, 0, b.data, b.len);
        buf_free(&b);
        return 0;
}

/* The build context's .dockerignore, and every Dockerfile's own
 * (Dockerfile.api.dockerignore beside it), which BuildKit reads instead
 * when there is one: each keeps .env out. */
static int plan_dockerignore(struct payload *out) {
        int r = add_dockerignore(out, DIMDIM_HOME "/.dockerignore");
        for (size_t i = 0; i < out->n && r >= 0; i++) {
                const struct payload_entry *e = &out->v[i];
                if (e->type == ENTRY_FILE && str_has_prefix(e->path, DIMDIM_HOME "/") &&
                    str_has_suffix(e->path, ".dockerignore") && strcmp(e->path, DIMDIM_HOME "/.dockerignore")) {
                        _cleanup_free_ char *path = xstrdup(e->path); /* the entry is replaced */
                        r = add_dockerignore(out, path);
                }
        }
        return r;
}

/* The source's modes, made safe for a tree root owns: no setuid, setgid
 * or sticky bit, nothing writable by group or others (any account on the
 * Pi could edit what root's Docker builds into the api's image, and it
 * runs with the stack's secrets).  Nothing is opened up either: a file the
 * source keeps private (0600) stays so; a directory stays root's to enter. */
static void tame_source_modes(struct payload *out) {
        for (size_t i = 0; i < out->n; i++) {
                struct payload_entry *e = &out->v[i];
                if (!str_has_prefix(e->path, DIMDIM_HOME "/"))
                        continue;
                if (e->type == ENTRY_DIR)
                        e->mode = (e->mode & 0755) | 0700;
                else if (e->type == ENTRY_FILE)
                        e->mode &= 0755;
        }
}

/* The stack's .env.  Bookworm's docker-compose is Compose v1, which reads it
 * its own way (python-dotenv): written for both there, so written again by
 * plan_base_edits once the base says which it is. */
static int plan_env_file(const struct plan_input *in, struct payload *out) {
        size_t envlen;
        _cleanup_free_ char *envtext = NULL;
        int r = env_serialize_for(in->env, in->os == OS_BOOKWORM, &envtext, &envlen);
        if (r < 0)
                return r;
        struct buf b = {0};
        buf_puts(&b, "# Written by dimimage. Secrets: keep this file root-only (0600).\n");
        buf_append(&b, envtext, envlen);
        explicit_bzero(envtext, envlen);
        struct payload_entry *e = payload_add_file(out, PART_ROOT, DIMDIM_ENV, 0600, 0, 0, b.data, b.len);
        e->secret = true;
        explicit_bzero(b.data, b.len);
        buf_free(&b);
        return 0;
}

/* What the overlays bring only for a source without its own: the
 * application's configuration and its database's first-start script are
 * the application's (the guide mounts the repository's), ours a stand-in. */
static bool source_may_keep(const char *path) {
        static const char *const dirs[] = {DIMDIM_HOME "/config/", DIMDIM_HOME "/deploy/scripts/"};
        for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
                if (str_has_prefix(path, dirs[i]))
                        return true;
        return false;
}

/* An overlay's entry laid over the payload, where the source has put
 * its files.  Its mode is what git keeps, not the checkout's: git records
 * only whether a file is executable, and a clone made under umask 077 has
 * 0600 units and a 0700 dimdim-status that the Pi's user could not run. */
static void overlay_entry(struct payload *out, struct payload_entry *e) {
        if (e->type == ENTRY_DIR)
                e->mode = 0755;
        else if (e->type == ENTRY_FILE)
                e->mode = e->mode & 0100 ? 0755 : 0644;
        const struct payload_entry *had = payload_find(out, e->part, e->path);
        if (had && had->type == ENTRY_FILE && e->type == ENTRY_FILE) {
                if (source_may_keep(e->path)) {
                        log_info("%s: the application source's own, kept", e->path);
                        return;
                }
                log_info("%s: dimimage's replaces the application source's", e->path);
        }
        payload_move(out, e);
}

int plan_payload(const struct plan_input *in, struct payload *out) {
        const struct profile *pr = in->profile;
        int r;
        /* The application source first: our adapted compose files and
         * overlays are laid over it, so the appliance's deploy/ wins. */
        if (in->source) {
                if ((r = appsource_add(out, in->source, DIMDIM_HOME)) < 0 || (r = plan_dockerignore(out)) < 0)
                        return r;
                tame_source_modes(out);
        }
        struct payload ov = {0};
        r = 0;
        for (size_t i = 0; i < pr->noverlays && r >= 0; i++) {
                _cleanup_free_ char *dir = xasprintf("%s/overlays/%s", in->data_dir, pr->overlays[i]);
                r = payload_add_tree(&ov, PART_ROOT, dir, "/", 0, 0);
        }
        for (size_t i = 0; i < ov.n && r >= 0; i++)
                overlay_entry(out, &ov.v[i]);
        payload_free(&ov);
        if (r < 0)
                return r;
        /* Directories the overlay trees imply must not take the checkout's
         * modes: /etc, /usr, /opt keep whatever the base has.  Ours are
         * made ours even where the base has them. */
        for (size_t i = 0; i < out->n; i++) {
                struct payload_entry *e = &out->v[i];
                if (e->type != ENTRY_DIR || e->part != PART_ROOT)
                        continue;
                if (str_has_prefix(e->path, DIMDIM_HOME "/") || str_has_prefix(e->path, "/usr/local/lib/dimdim"))
                        e->own_dir = true;
                else
                        e->mode = 0755;
        }
        payload_add_dir(out, PART_ROOT, DIMDIM_HOME, 0755, 0, 0)->own_dir = true;
        /* the stack by hand (sudo dimdim-stack ps|up|down|pull), as the
         * docs and dimdim-status name it */
        payload_add_symlink(out, PART_ROOT, "/usr/local/bin/dimdim-stack", "/usr/local/lib/dimdim/stack");
        if ((r = plan_env_file(in, out)) < 0)
                return r;

        plan_stack_conf(in, out);
        plan_tuning(pr, out);
        payload_add_symlink(out, PART_ROOT, WANTS "dimdim-firstboot.service",
                            "/etc/systemd/system/dimdim-firstboot.service");
        payload_add_symlink(out, PART_ROOT, WANTS "dimdim-stack.service", "/etc/systemd/system/dimdim-stack.service");

        if (in->host->hostname) {
                _cleanup_free_ char *hn = xasprintf("%s\n", in->host->hostname);
                add_str(out, PART_ROOT, "/etc/hostname", 0644, hn);
        }
        plan_network(in, out);
        plan_locale(in->host, out);
        plan_ssh(in, out);
        return 0;
}

/* ---- edits of the base's own files ---- */

struct ids {
        unsigned uid, gid;
        bool exists;
        char shell[128]; /* an existing user's */
};

static bool field_n(const char *line, unsigned n, char *out, size_t size) {
        for (unsigned i = 0; i < n; i++) {
                line = strchr(line, ':');
                if (!line)
                        return false;
                line++;
        }
        size_t len = strcspn(line, ":\n");
        if (len >= size)
                return false;
        memcpy(out, line, len);
        out[len] = 0;
        return true;
}

static bool line_is(const char *line, const char *name) {
        size_t n = strlen(name);
        return strncmp(line, name, n) == 0 && line[n] == ':';
}

#define FOR_LINES(text, l) for (const char *l = (text); l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)

static struct ids pick_ids(const struct base_files *bf, const char *user) {
        struct ids ids = {0};
        unsigned max_uid = 999, max_gid = 999;
        FOR_LINES(bf->passwd, l) {
                char f[32];
                unsigned uid = field_n(l, 2, f, sizeof f) ? (unsigned)strtoul(f, NULL, 10) : 0;
                if (line_is(l, user)) {
                        ids.exists = true;
                        ids.uid = uid;
                        ids.gid = field_n(l, 3, f, sizeof f) ? (unsigned)strtoul(f, NULL, 10) : uid;
                        if (!field_n(l, 6, ids.shell, sizeof ids.shell))
                                ids.shell[0] = 0;
                }
                if (uid >= 1000 && uid < 60000 && uid > max_uid)
                        max_uid = uid;
        }
        FOR_LINES(bf->group, l) {
                char f[32];
                unsigned gid = field_n(l, 2, f, sizeof f) ? (unsigned)strtoul(f, NULL, 10) : 0;
                if (gid >= 1000 && gid < 60000 && gid > max_gid)
                        max_gid = gid;
        }
        if (!ids.exists) {
                ids.uid = max_uid + 1;
                ids.gid = MAX(max_gid + 1, ids.uid);
                /* uid == gid, as adduser prefers, when that gid is free */
                if (max_gid < ids.uid)
                        ids.gid = ids.uid;
        }
        return ids;
}

/* Copy text, replacing the line for `name` by `repl` (or appending it when
 * absent); NULL repl keeps an existing line. */
static void put_line(struct buf *b, const char *text, const char *name, const char *repl) {
        bool found = false;
        FOR_LINES(text, l) {
                size_t n = strcspn(l, "\n");
                if (line_is(l, name)) {
                        found = true;
                        if (repl) {
                                buf_printf(b, "%s\n", repl);
                                continue;
                        }
                }
                buf_append(b, l, n);
                buf_puts(b, "\n");
        }
        if (!found && repl)
                buf_printf(b, "%s\n", repl);
}

/* Add user to the member list (4th field) of each group in user_groups. */
static void add_memberships(struct buf *b, const char *text, const char *user, unsigned member_field) {
        FOR_LINES(text, l) {
                size_t n = strcspn(l, "\n");
                _cleanup_free_ char *line = xstrndup(l, n);
                bool want = false;
                for (const char *const *g = user_groups; *g; g++)
                        if (line_is(line, *g))
                                want = true;
                if (want) {
                        char members[4096];
                        if (field_n(line, member_field, members, sizeof members)) {
                                bool present = false;
                                char *save = NULL, copy[4096];
                                snprintf(copy, sizeof copy, "%s", members);
                                for (char *m = strtok_r(copy, ",", &save); m; m = strtok_r(NULL, ",", &save))
                                        if (!strcmp(m, user))
                                                present = true;
                                if (!present) {
                                        buf_printf(b, "%s%s%s\n", line, members[0] ? "," : "", user);
                                        continue;
                                }
                        }
                }
                buf_printf(b, "%s\n", line);
        }
}

static int plan_user(const struct plan_input *in, struct payload *p) {
        const struct host_settings *h = in->host;
        const struct base_files *bf = in->base;
        if (!h->user)
                return 0;
        if (!bf->passwd || !bf->group || !bf->shadow)
                return log_error(EINVAL, in->base_name, "the base's %s %s; --user edits it in place and needs a "
                                 "regular text file", bf->accounts_path ? bf->accounts_path : "/etc/passwd",
                                 bf->accounts_why ? bf->accounts_why : "is missing");
        struct ids ids = pick_ids(bf, h->user);
        const char *u = h->user;
        /* Only a login account may be taken over (pi on older images): a
         * system one (man, www-data) keeps its nologin shell and its home
         * elsewhere, so neither the SSH key nor a password would let anyone
         * in, and it would get sudo. */
        const char *sh_base = strrchr(ids.shell, '/') ? strrchr(ids.shell, '/') + 1 : ids.shell;
        if (ids.exists && (ids.uid < 1000 || ids.uid >= 60000 || !strcmp(sh_base, "nologin") || !strcmp(sh_base, "false")))
                return log_error(EINVAL, in->base_name,
                                 "user '%s' is a system account in this base (uid %u, shell %s); choose another --user",
                                 u, ids.uid, ids.shell[0] ? ids.shell : "none");
        /* A new user gets a group of its own name: taking over a system
         * group (video, sudo, users) would renumber it, and files with its
         * old id would lose their group.  adduser refuses it too. */
        if (!ids.exists)
                FOR_LINES(bf->group, l) if (line_is(l, u)) {
                        char gid[32] = "?";
                        (void)field_n(l, 2, gid, sizeof gid);
                        return log_error(EINVAL, in->base_name,
                                         "this base has a group named '%s' (gid %s) and no such user; a new user's "
                                         "group would take its place: choose another --user",
                                         u, gid);
                }
        long days = (long)(in->build_time / 86400);
        struct buf b = {0};

        _cleanup_free_ char *pw = ids.exists ? NULL
                                             : xasprintf("%s:x:%u:%u:,,,:/home/%s:/bin/bash", u, ids.uid, ids.gid, u);
        put_line(&b, bf->passwd, u, pw);
        add_text(p, PART_ROOT, "/etc/passwd", 0644, &b);
        buf_free(&b);

        _cleanup_free_ char *gr = xasprintf("%s:x:%u:", u, ids.gid);
        struct buf tmp = {0};
        put_line(&tmp, bf->group, u, ids.exists ? NULL : gr);
        add_memberships(&b, (char *)tmp.data, u, 3);
        buf_free(&tmp);
        add_text(p, PART_ROOT, "/etc/group", 0644, &b);
        buf_free(&b);

        /* "*" has no valid password but, unlike "!", does not lock the
         * account, so key logins still work. */
        _cleanup_free_ char *sh = xasprintf("%s:%s:%ld:0:99999:7:::", u, h->password_hash ? h->password_hash : "*", days);
        put_line(&b, bf->shadow, u, (ids.exists && !h->password_hash) ? NULL : sh);
        struct payload_entry *e = payload_add_file(p, PART_ROOT, "/etc/shadow", 0640, 0, 42, b.data, b.len);
        e->secret = true;
        explicit_bzero(b.data, b.len);
        buf_free(&b);
        /* keep the base's group for shadow (42 on Debian) when we can tell */
        FOR_LINES(bf->group, l) if (line_is(l, "shadow")) {
                char f[32];
                if (field_n(l, 2, f, sizeof f))
                        e->gid = (uint32_t)strtoul(f, NULL, 10);
        }

        if (bf->gshadow) {
                _cleanup_free_ char *gs = xasprintf("%s:!::", u);
                put_line(&tmp, bf->gshadow, u, ids.exists ? NULL : gs);
                add_memberships(&b, (char *)tmp.data, u, 3);
                buf_free(&tmp);
                e = payload_add_file(p, PART_ROOT, "/etc/gshadow", 0640, 0, 42, b.data, b.len);
                e->gid = payload_find(p, PART_ROOT, "/etc/shadow")->gid;
                buf_free(&b);
        }

        _cleanup_free_ char *home = xasprintf("/home/%s", u);
        payload_add_dir(p, PART_ROOT, "/home", 0755, 0, 0);
        payload_add_dir(p, PART_ROOT, home, 0700, ids.uid, ids.gid);
        if (h->nssh_keys) {
                _cleanup_free_ char *ssh = xasprintf("%s/.ssh", home);
                _cleanup_free_ char *ak = xasprintf("%s/.ssh/authorized_keys", home);
                /* sshd ignores keys under a .ssh others can write */
                payload_add_dir(p, PART_ROOT, ssh, 0700, ids.uid, ids.gid)->own_dir = true;
                for (size_t i = 0; i < h->nssh_keys; i++)
                        buf_printf(&b, "%s\n", h->ssh_keys[i]);
                payload_add_file(p, PART_ROOT, ak, 0600, ids.uid, ids.gid, b.data, b.len);
                buf_free(&b);
        }
        /* As Raspberry Pi OS does for its first user. */
        _cleanup_free_ char *sudo = xasprintf("# Written by dimimage\n%s ALL=(ALL) NOPASSWD: ALL\n", u);
        payload_add_dir(p, PART_ROOT, "/etc/sudoers.d", 0755, 0, 0);
        add_str(p, PART_ROOT, "/etc/sudoers.d/010_dimimage-nopasswd", 0440, sudo);
        if (in->os == OS_BOOKWORM) {
                /* userconf-pi would otherwise ask for a user name on the
                 * console and wait: mask it, the user exists already.  And
                 * undo what the image's `rename-user -f -s` did for it, as
                 * its cancel-rename does: the console login (what is left
                 * when the network is wrong) and the sshd banner saying
                 * that SSH may not work until a user is set up. */
                payload_add_symlink(p, PART_ROOT, "/etc/systemd/system/userconfig.service", "/dev/null");
                payload_add_unlink(p, PART_ROOT, WANTS "userconfig.service");
                payload_add_symlink(p, PART_ROOT, "/etc/systemd/system/getty.target.wants/getty@tty1.service",
                                    "/lib/systemd/system/getty@.service");
                payload_add_unlink(p, PART_ROOT, "/etc/ssh/sshd_config.d/rename_user.conf");
        }
        return 0;
}

static void plan_hosts(const struct plan_input *in, struct payload *p) {
        const struct host_settings *h = in->host;
        if (!h->hostname && !h->nextra_hosts)
                return;
        struct buf b = {0};
        bool done = false;
        FOR_LINES(in->base->hosts, l) {
                size_t n = strcspn(l, "\n");
                if (h->hostname && strncmp(l, "127.0.1.1", 9) == 0 && (l[9] == ' ' || l[9] == '\t')) {
                        if (!done)
                                buf_printf(&b, "127.0.1.1\t%s\n", h->hostname);
                        done = true;
                        continue;
                }
                if (strncmp(l, "# dimimage fleet", 16) == 0)
                        break; /* a rebuild of a built image replaces our block */
                buf_append(&b, l, n);
                buf_puts(&b, "\n");
        }
        if (!in->base->hosts)
                buf_puts(&b, "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n");
        if (h->hostname && !done)
                buf_printf(&b, "127.0.1.1\t%s\n", h->hostname);
        if (h->nextra_hosts) {
                buf_puts(&b, "# dimimage fleet\n");
                for (size_t i = 0; i < h->nextra_hosts; i++)
                        buf_printf(&b, "%s\n", h->extra_hosts[i]);
        }
        add_text(p, PART_ROOT, "/etc/hosts", 0644, &b);
        buf_free(&b);
}

/* A key line may hold anything but a newline: options such as
 * from="10.0.0.0/8" among them.  In YAML single quotes only ' is special. */
static void yaml_single_quoted(struct buf *b, const char *prefix, const char *s) {
        buf_printf(b, "%s'", prefix);
        for (const char *c = s; *c; c++) {
                if (*c == '\'')
                        buf_puts(b, "''");
                else
                        buf_append(b, c, 1);
        }
        buf_puts(b, "'\n");
}

/* How dimimage's user-data begins, and its network-config (plan_check_boot
 * knows them again in a built image). */
#define USER_DATA_HEAD "#cloud-config\n# Written by dimimage."
#define NETWORK_CONFIG "network:\n  config: disabled\n"

static void plan_boot(const struct plan_input *in, struct payload *p) {
        const struct host_settings *h = in->host;
        const struct profile *pr = in->profile;
        if (in->base->config_txt && pr->gpu_mem_mb) {
                struct buf b = {0};
                const char *marker = "# dimimage: headless tuning";
                const char *old = in->base->config_txt;
                const char *cut = strstr(old, marker);
                while (cut && cut != old && cut[-1] != '\n')
                        cut = strstr(cut + 1, marker);
                size_t keep = cut ? (size_t)(cut - old) : strlen(old);
                buf_append(&b, old, keep);
                if (keep && old[keep - 1] != '\n')
                        buf_puts(&b, "\n");
                /* config.txt: the last setting wins, and [all] ends any
                 * model filter left open above. */
                buf_printf(&b, "%s (profile '%s')\n[all]\ngpu_mem=%u\n", marker, pr->name, pr->gpu_mem_mb);
                /* A built image built again: its block is replaced where it
                 * stands, and what was added after it by hand (an overlay,
                 * enable_uart=1) is kept, still after our [all]. */
                if (cut) {
                        const char *rest = cut + strcspn(cut, "\n");
                        rest += *rest == '\n';
                        /* the block's own two lines, when they follow */
                        static const char *const ours[] = {"[all]", "gpu_mem="};
                        for (size_t i = 0; i < ARRAY_SIZE(ours); i++) {
                                size_t n = strcspn(rest, "\r\n");
                                if (!str_has_prefix(rest, ours[i]) || (i == 0 && n != 5))
                                        break;
                                rest += n;
                                rest += *rest == '\r';
                                rest += *rest == '\n';
                        }
                        buf_puts(&b, rest);
                }
                add_text(p, PART_BOOT, "/config.txt", 0755, &b);
                buf_free(&b);
        }
        if (in->base->cmdline_txt && h->wifi_country) {
                const char *old = in->base->cmdline_txt;
                size_t n = strcspn(old, "\r\n");
                struct buf b = {0};
                const char *key = "cfg80211.ieee80211_regdom=";
                /* copy the single line without any earlier regdom setting */
                _cleanup_free_ char *line = xstrndup(old, n);
                char *save = NULL;
                bool first = true;
                for (char *w = strtok_r(line, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
                        if (str_has_prefix(w, key))
                                continue;
                        buf_printf(&b, "%s%s", first ? "" : " ", w);
                        first = false;
                }
                buf_printf(&b, " %s%s\n", key, h->wifi_country);
                add_text(p, PART_BOOT, "/cmdline.txt", 0755, &b);
                buf_free(&b);
        }
        if (in->os == OS_BOOKWORM && h->user && (h->nssh_keys || h->password_hash))
                add_str(p, PART_BOOT, "/ssh", 0755, ""); /* sshswitch.service's switch; empty */
        if (in->os == OS_TRIXIE) {
                /* cloud-init reads these on first boot.  Networking lives in
                 * the NetworkManager keyfiles only, so cloud-init is told to
                 * leave it alone; no password hash or Wi-Fi key goes here. */
                /* Not seeded by the base's sha256: this file sits at the
                 * image's start, and the commit reads the image back while
                 * that sum may still be being computed (plan_input). */
                char id[65];
                _cleanup_free_ char *seed =
                        xasprintf("%s|%s|%s|%lld", h->hostname ? h->hostname : "", in->profile->name,
                                  in->disk_id ? in->disk_id : "", (long long)in->build_time);
                sha256_hex(seed, strlen(seed), id);
                struct buf b = {0};
                buf_printf(&b, "instance-id: dimimage-%.16s\n", id);
                /* quoted: a host named "true", "null" or "0x1f" would
                 * otherwise be read as a boolean, null or number */
                if (h->hostname)
                        yaml_single_quoted(&b, "local-hostname: ", h->hostname);
                add_text(p, PART_BOOT, "/meta-data", 0755, &b);
                buf_free(&b);
                buf_puts(&b, USER_DATA_HEAD " The root filesystem already holds these settings;\n"
                             "# this keeps cloud-init in agreement with them.\n");
                if (h->hostname) {
                        yaml_single_quoted(&b, "hostname: ", h->hostname);
                        buf_puts(&b, "manage_etc_hosts: false\n");
                }
                if (h->timezone)
                        yaml_single_quoted(&b, "timezone: ", h->timezone);
                if (h->user) {
                        buf_puts(&b, "users:\n");
                        yaml_single_quoted(&b, "  - name: ", h->user);
                        buf_puts(&b, "    shell: /bin/bash\n    lock_passwd: false\n");
                        if (h->nssh_keys) {
                                buf_puts(&b, "    ssh_authorized_keys:\n");
                                for (size_t i = 0; i < h->nssh_keys; i++)
                                        yaml_single_quoted(&b, "      - ", h->ssh_keys[i]);
                        }
                        buf_printf(&b, "ssh_pwauth: %s\n", h->password_hash ? "true" : "false");
                }
                add_text(p, PART_BOOT, "/user-data", 0755, &b);
                buf_free(&b);
                add_str(p, PART_BOOT, "/network-config", 0755, NETWORK_CONFIG);
        }
}

/* The name locale.gen and SUPPORTED list the locale under: the codeset
 * spelled UTF-8 (glibc also takes utf8), the rest as given. */
static char *locale_name(const char *loc) {
        const char *dot = strchr(loc, '.');
        size_t cs = dot ? strcspn(dot + 1, "@") : 0;
        bool utf8 = dot && ((cs == 5 && !strncasecmp(dot + 1, "utf-8", 5)) || (cs == 4 && !strncasecmp(dot + 1, "utf8", 4)));
        return utf8 ? xasprintf("%.*s.UTF-8%s", (int)(dot - loc), loc, dot + 1 + cs) : xstrdup(loc);
}

/* Where line l (of SUPPORTED, or of locale.gen, '#'s skipped when
 * commented) names locale `name`, or NULL. */
static const char *locale_line(const char *l, const char *name, bool commented) {
        if (commented)
                l += strspn(l, "# ");
        size_t n = strlen(name);
        return strncmp(l, name, n) == 0 && (l[n] == ' ' || l[n] == '\t') ? l : NULL;
}

static const char *find_locale(const char *text, const char *name) {
        FOR_LINES(text, l)
                if (locale_line(l, name, false))
                        return l;
        return NULL;
}

static bool has_country(const char *iso3166, const char *code) {
        FOR_LINES(iso3166, l)
                if (l[0] == code[0] && l[1] == code[1] && l[2] == '\t')
                        return true;
        return false;
}

/* Whether evdev.lst's "! layout" section lists layout (as "  gb   English (UK)"). */
static bool has_layout(const char *rules, const char *layout) {
        bool in = false;
        size_t n = strlen(layout);
        FOR_LINES(rules, l) {
                if (*l == '!')
                        in = strncmp(l, "! layout", 8) == 0 && (l[8] == '\n' || !l[8]);
                else if (in) {
                        const char *s = l + strspn(l, " ");
                        if (strncmp(s, layout, n) == 0 && (s[n] == ' ' || s[n] == '\t'))
                                return true;
                }
        }
        return false;
}

/* What the base itself can tell of the host settings: a locale, Wi-Fi
 * country or keyboard layout it does not know would be taken silently and
 * fail on the Pi (locale-gen at first boot, the regulatory domain and the
 * console keymap at every boot).  A base without the lists is taken at
 * its word. */
static int plan_check_host(const struct plan_input *in) {
        const struct host_settings *h = in->host;
        if (h->locale && in->base->locales_supported) {
                _cleanup_free_ char *name = locale_name(h->locale);
                if (strcmp(name, "C.UTF-8") != 0 && strcmp(name, "C") != 0 && strcmp(name, "POSIX") != 0 &&
                    !find_locale(in->base->locales_supported, name))
                        return log_error(EINVAL, host_where(h, HF_LOCALE),
                                         "locale '%s' is not one this base can compile (see its "
                                         "/usr/share/i18n/SUPPORTED): e.g. en_GB.UTF-8, en_US.UTF-8, de_DE.UTF-8",
                                         h->locale);
        }
        if (h->wifi_country && in->base->iso3166 && !has_country(in->base->iso3166, h->wifi_country))
                return log_error(EINVAL, host_where(h, HF_WIFI_COUNTRY),
                                 "Wi-Fi country '%s' is not an ISO 3166 code (see the base's "
                                 "/usr/share/zoneinfo/iso3166.tab)",
                                 h->wifi_country);
        if (h->keymap && in->base->xkb_rules && !has_layout(in->base->xkb_rules, h->keymap))
                return log_error(EINVAL, host_where(h, HF_KEYMAP),
                                 "keymap '%s' is not a keyboard layout this base knows (see the \"! layout\" list of "
                                 "its /usr/share/X11/xkb/rules/evdev.lst)%s",
                                 h->keymap,
                                 strcmp(h->keymap, "uk") == 0 ? ": the United Kingdom's is gb" : ": e.g. gb, us, de");
        return 0;
}

/* The value of the first word of cmdline's first line that starts with
 * key ("systemd.run="), or NULL; caller frees. */
static char *cmdline_word(const char *cmdline, const char *key) {
        _cleanup_free_ char *line = xstrndup(cmdline, strcspn(cmdline, "\r\n"));
        char *save = NULL;
        for (char *w = strtok_r(line, " \t", &save); w; w = strtok_r(NULL, " \t", &save))
                if (str_has_prefix(w, key))
                        return xstrdup(w + strlen(key));
        return NULL;
}

/* Whether a cloud-init seed file says anything: a line that is neither
 * blank nor a comment.  Raspberry Pi OS ships user-data and network-config
 * as comments only (pi-gen stage2/04-cloud-init); ours counts as nothing,
 * so that a built image can be built again. */
static bool seed_says_something(const char *text, const char *ours_prefix) {
        if (!text || str_has_prefix(text, ours_prefix))
                return false;
        if (str_has_prefix(text, "\xEF\xBB\xBF"))
                text += 3;
        FOR_LINES(text, l) {
                const char *c = l + strspn(l, " \t\r");
                if (*c && *c != '\n' && *c != '#')
                        return true;
        }
        return false;
}

/* A base whose boot partition already sets up its first boot some other
 * way: Raspberry Pi Imager's customisation (firstrun.sh run by systemd.run=
 * on bookworm, cloud-init's user-data and network-config on trixie,
 * rpi-preseed.toml), raspberrypi-sys-mods' custom.toml, userconf-pi's
 * userconf.txt.  Built over, the two fight: firstrun.sh renames the first
 * user, sets its host name and Wi-Fi over this build's and cuts cmdline.txt
 * from its systemd.run= on (the Wi-Fi country with it); dimimage's
 * user-data and network-config silently replace Imager's user and Wi-Fi;
 * a userconf.txt next to --user is never read, and its password hash stays
 * on the FAT.  Refused, in one line saying which file. */
static int plan_check_boot(const struct plan_input *in) {
        const struct base_files *bf = in->base;
        const char *how = "start from the unmodified Raspberry Pi OS image and give dimimage those settings";
        _cleanup_free_ char *run = bf->cmdline_txt ? cmdline_word(bf->cmdline_txt, "systemd.run=") : NULL;
        if (run)
                return log_error(EINVAL, in->base_name,
                                 "boot partition: cmdline.txt runs %s at first boot (systemd.run=, Raspberry Pi "
                                 "Imager's customisation), which would set the user, host name and Wi-Fi over "
                                 "this build's: %s",
                                 run, how);
        const char *f = bf->boot_custom;
        if (f && !strcmp(f, "rpi-preseed.toml"))
                return log_error(EINVAL, in->base_name,
                                 "boot partition: rpi-preseed.toml (Raspberry Pi Imager's customisation) would be "
                                 "applied at first boot over this build's settings: %s",
                                 how);
        if (f && !strcmp(f, "custom.toml") && in->os == OS_BOOKWORM)
                return log_error(EINVAL, in->base_name,
                                 "boot partition: custom.toml would be applied at first boot over this build's "
                                 "settings: %s",
                                 how);
        if (f && str_has_prefix(f, "userconf") && in->os == OS_BOOKWORM && in->host->user)
                return log_error(EINVAL, in->base_name,
                                 "boot partition: %s would be ignored: with --user, dimimage sets up the user and "
                                 "turns userconf-pi off; remove the file or leave out --user",
                                 f);
        if (in->os == OS_TRIXIE) {
                const char *seed = seed_says_something(bf->user_data, USER_DATA_HEAD) ? "user-data"
                                   : seed_says_something(bf->network_config, NETWORK_CONFIG) ? "network-config"
                                                                                             : NULL;
                if (seed)
                        return log_error(EINVAL, in->base_name,
                                         "boot partition: %s holds cloud-init settings (Raspberry Pi Imager's "
                                         "customisation?), which this build's user-data and network-config would "
                                         "replace: %s",
                                         seed, how);
        }
        return 0;
}

static void plan_locale_gen(const struct plan_input *in, struct payload *p) {
        const char *loc = in->host->locale;
        if (!loc || !in->base->locale_gen)
                return;
        _cleanup_free_ char *name = locale_name(loc);
        /* SUPPORTED knows the charmap; else guess as locale-gen's users do */
        const char *sup = in->base->locales_supported ? find_locale(in->base->locales_supported, name) : NULL;
        _cleanup_free_ char *entry = sup ? xstrndup(sup, strcspn(sup, "\r\n"))
                                     : xasprintf("%s %s", name, strstr(name, ".UTF-8") ? "UTF-8" : "ISO-8859-1");
        struct buf b = {0};
        bool found = false;
        FOR_LINES(in->base->locale_gen, l) {
                size_t n = strcspn(l, "\n");
                if (!found && locale_line(l, name, true)) {
                        buf_printf(&b, "%s\n", entry);
                        found = true;
                        continue;
                }
                buf_append(&b, l, n);
                buf_puts(&b, "\n");
        }
        if (!found)
                buf_printf(&b, "%s\n", entry);
        add_text(p, PART_ROOT, "/etc/locale.gen", 0644, &b);
        buf_free(&b);
}

/* Raspberry Pi OS images made without a Wi-Fi country (all the downloads)
 * ship NetworkManager.state with WirelessEnabled=false, since NetworkManager
 * would otherwise unblock every radio (pi-gen stage2/02-net-tweaks); NM then
 * keeps Wi-Fi off whatever the keyfiles say.  raspi-config's
 * do_wifi_country turns it back on, as this does when a network is asked
 * for; the file's other keys are kept. */
static void plan_nm_state(const struct plan_input *in, struct payload *p) {
        const char *old = in->base->nm_state;
        if (!in->host->wifi_ssid || !old)
                return;
        struct buf b = {0};
        bool done = false, in_main = false;
        FOR_LINES(old, l) {
                size_t n = strcspn(l, "\n");
                if (l[0] == '[') {
                        if (in_main && !done) {
                                buf_puts(&b, "WirelessEnabled=true\n");
                                done = true;
                        }
                        in_main = !strncmp(l, "[main]", 6);
                } else if (in_main && !strncmp(l, "WirelessEnabled=", 16)) {
                        if (!done)
                                buf_puts(&b, "WirelessEnabled=true\n");
                        done = true;
                        continue;
                }
                buf_append(&b, l, n);
                buf_puts(&b, "\n");
        }
        if (!done)
                buf_puts(&b, in_main ? "WirelessEnabled=true\n" : "[main]\nWirelessEnabled=true\n");
        add_text(p, PART_ROOT, NM_STATE, 0644, &b);
        buf_free(&b);
}

static void plan_manifest(const struct plan_input *in, struct payload *p) {
        struct json j = {0};
        char when[32];
        time_t t = in->build_time;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        json_begin_object(&j);
        json_key(&j, "dimimage_version");
        json_string(&j, DIMIMAGE_VERSION);
        json_key(&j, "role");
        json_string(&j, in->profile->name);
        json_key(&j, "profile");
        json_begin_object(&j);
        json_key(&j, "name");
        json_string(&j, path_basename(in->profile->path));
        json_key(&j, "sha256");
        json_string(&j, in->profile->sha256);
        json_end_object(&j);
        json_key(&j, "hostname");
        json_string(&j, in->host->hostname);
        if (in->fleet_name) {
                json_key(&j, "fleet");
                json_string(&j, in->fleet_name);
        }
        json_key(&j, "base");
        json_begin_object(&j);
        json_key(&j, "name");
        json_string(&j, in->base_name ? path_basename(in->base_name) : NULL);
        json_key(&j, "sha256");
        size_t sum_at = 0;
        if (in->base_sha256_pending) {
                sum_at = j.out.len + 1; /* past the opening quote */
                json_string(&j, PLAN_SUM_PLACEHOLDER);
        } else
                json_string(&j, in->base_sha256);
        json_key(&j, "os");
        json_string(&j, os_flavour_name(in->os));
        json_end_object(&j);
        json_key(&j, "build_time");
        json_string(&j, when);
        json_key(&j, "environment");
        json_begin_array(&j);
        /* keys and where each value came from; never a value */
        for (size_t i = 0; i < in->env->n; i++) {
                const struct env_var *v = &in->env->v[i];
                if (v->unused)
                        continue;
                json_begin_object(&j);
                json_key(&j, "key");
                json_string(&j, v->key);
                json_key(&j, "origin");
                json_string(&j, env_origin_name(v->origin));
                if (v->origin == ORIGIN_FILE && v->file) {
                        json_key(&j, "file");
                        json_string(&j, path_basename(v->file));
                }
                json_end_object(&j);
        }
        json_end_array(&j);
        json_key(&j, "host");
        json_begin_object(&j);
        json_key(&j, "user");
        json_string(&j, in->host->user);
        json_key(&j, "ssh_keys");
        json_uint(&j, in->host->nssh_keys);
        json_key(&j, "ip");
        json_string(&j, in->host->ip);
        json_key(&j, "wifi");
        json_bool(&j, in->host->wifi_ssid != NULL);
        json_key(&j, "timezone");
        json_string(&j, in->host->timezone);
        json_key(&j, "model");
        json_string(&j, in->host->model);
        json_end_object(&j);
        json_end_object(&j);
        size_t len;
        _cleanup_free_ char *text = json_finish(&j, &len);
        payload_add_dir(p, PART_ROOT, "/etc/dimimage", 0755, 0, 0)->own_dir = true;
        payload_add_file(p, PART_ROOT, PLAN_MANIFEST, 0644, 0, 0, text, len);
        p->pending_sum_at = sum_at;
}

int plan_base_edits(const struct plan_input *in, struct payload *out) {
        int r = plan_check_host(in);
        if (r >= 0)
                r = plan_check_boot(in);
        if (r < 0)
                return r;
        r = plan_user(in, out);
        if (r < 0)
                return r;
        if (in->os == OS_BOOKWORM && (r = plan_env_file(in, out)) < 0)
                return r;
        plan_hosts(in, out);
        plan_boot(in, out);
        plan_locale_gen(in, out);
        plan_nm_state(in, out);
        plan_manifest(in, out);
        return 0;
}
