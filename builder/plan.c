/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The payload a build adds: the role's overlays and stack, the network,
 * locale and SSH settings, the .env and the application's source (its
 * modes tamed, its build contexts' .dockerignore).  The base's own files
 * are edited in plan_base.c. */
#include "plan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appsource.h"
#include "hash.h"
#include "log.h"
#include "plan_private.h"
#include "util.h"

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

void plan_add_text(struct payload *p, enum part part, const char *path, uint32_t mode, const struct buf *b) {
        payload_add_file(p, part, path, mode, 0, 0, b->data, b->len);
}

void plan_add_str(struct payload *p, enum part part, const char *path, uint32_t mode, const char *s) {
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
        plan_add_text(p, PART_ROOT, "/etc/systemd/journald.conf.d/dimdim.conf", 0644, &b);
        buf_free(&b);
        buf_printf(&b,
                   "{\n  \"log-driver\": \"json-file\",\n  \"log-opts\": {\n    \"max-size\": \"%s\",\n"
                   "    \"max-file\": \"%u\"\n  }\n}\n",
                   pr->docker_log_max_size ? pr->docker_log_max_size : "10m",
                   pr->docker_log_max_file ? pr->docker_log_max_file : 3);
        payload_add_dir(p, PART_ROOT, "/etc/docker", 0755, 0, 0);
        plan_add_text(p, PART_ROOT, "/etc/docker/daemon.json", 0644, &b);
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
        /* what dimdim-status expects a container of: edited along with the
         * compose files, should they be changed on the Pi */
        buf_printf(&b, "DIMDIM_SERVICES=%s\n", in->services ? in->services : "");
        buf_printf(&b, "DIMDIM_USER=%s\n", in->host->user ? in->host->user : "");
        buf_printf(&b, "DIMDIM_LOCALE_GEN=%s\n", in->host->locale ? "1" : "0");
        payload_add_dir(p, PART_ROOT, "/etc/dimimage", 0755, 0, 0)->own_dir = true;
        plan_add_text(p, PART_ROOT, "/etc/dimimage/stack.conf", 0644, &b);
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
                struct buf b = { .secret = true };
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
                /* a network that does not broadcast its SSID is only found
                 * by asking for it by name (a probe), which NetworkManager
                 * does only when told */
                buf_puts(&b, h->wifi_hidden > 0 ? "\nhidden=true\n" : "\n");
                buf_printf(&b, "\n[wifi-security]\nkey-mgmt=wpa-psk\npsk=%s\n", h->wifi_psk_hex);
                nm_ipv4(&b, h);
                buf_puts(&b, "\n[ipv6]\naddr-gen-mode=default\nmethod=auto\n\n[proxy]\n");
                payload_add_dir(p, PART_ROOT, dir, 0755, 0, 0)->own_dir = true;
                struct payload_entry *e = payload_add_file(
                        p, PART_ROOT, "/etc/NetworkManager/system-connections/dimdim-wifi.nmconnection", 0600, 0, 0,
                        b.data, b.len);
                e->secret = true;
                buf_free_secret(&b);
        }
        /* RasPiOS keeps Wi-Fi soft-blocked until a country is set; setting
         * one unblocks it, as raspi-config's do_wifi_country does, with a
         * network or without (one added later with nmcli then just works).
         * A network always comes with its country (host_finalize). */
        if (h->wifi_country) {
                plan_add_str(p, PART_ROOT, "/etc/systemd/system/dimdim-wifi-unblock.service", 0644,
                        "# Written by dimimage: Raspberry Pi OS soft-blocks Wi-Fi until a country is set.\n"
                        "[Unit]\nDescription=Unblock Wi-Fi, its country being set\n"
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
                struct payload_entry *e = payload_add_symlink(p, PART_ROOT, "/etc/localtime", t);
                e->target_hint = "check the time zone's spelling (timedatectl list-timezones)";
                e->target_where = xstrdup(host_where(h, HF_TIMEZONE));
                _cleanup_free_ char *z = xasprintf("%s\n", h->timezone);
                plan_add_str(p, PART_ROOT, "/etc/timezone", 0644, z);
        }
        if (h->locale) {
                /* as locale.gen has it: cloud-init on trixie hands LANG to
                 * raspi-config, which looks it up in SUPPORTED, and fails
                 * (cloud-init status: error) for en_US.utf8 */
                _cleanup_free_ char *name = locale_name(h->locale);
                _cleanup_free_ char *l = xasprintf("LANG=%s\n", name);
                plan_add_str(p, PART_ROOT, "/etc/default/locale", 0644, l);
        }
        if (h->keymap) {
                _cleanup_free_ char *k = xasprintf("# Written by dimimage\nXKBMODEL=\"pc105\"\nXKBLAYOUT=\"%s\"\n"
                                                   "XKBVARIANT=\"\"\nXKBOPTIONS=\"\"\nBACKSPACE=\"guess\"\n",
                                                   h->keymap);
                plan_add_str(p, PART_ROOT, "/etc/default/keyboard", 0644, k);
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
                plan_add_str(p, PART_ROOT, "/etc/ssh/sshd_config.d/10-dimimage.conf", 0644,
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
int plan_env_file(const struct plan_input *in, struct payload *out) {
        size_t envlen;
        _cleanup_free_ char *envtext = NULL;
        int r = env_serialize_for(in->env, in->os == OS_BOOKWORM, &envtext, &envlen);
        if (r < 0)
                return r;
        struct buf b = { .secret = true };
        buf_puts(&b, "# Written by dimimage. Secrets: keep this file root-only (0600).\n");
        buf_append(&b, envtext, envlen);
        explicit_bzero(envtext, envlen);
        struct payload_entry *e = payload_add_file(out, PART_ROOT, DIMDIM_ENV, 0600, 0, 0, b.data, b.len);
        e->secret = true;
        buf_free_secret(&b);
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
                if ((r = appsource_add(out, in->source, DIMDIM_HOME, in->source_cache)) < 0 || (r = plan_dockerignore(out)) < 0)
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
                plan_add_str(out, PART_ROOT, "/etc/hostname", 0644, hn);
        }
        plan_network(in, out);
        plan_locale(in->host, out);
        plan_ssh(in, out);
        return 0;
}
