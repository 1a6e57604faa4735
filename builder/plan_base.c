/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The base's own files edited: passwd, group, shadow and the user's home,
 * hosts, cmdline.txt and config.txt, cloud-init's seed, locales, the
 * manifest; and the base checked for what the build cannot take (a
 * Wi-Fi country or layout it lacks, a boot partition set up another way). */
#include "plan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "hash.h"
#include "json.h"
#include "log.h"
#include "plan_private.h"
#include "util.h"

/* Groups a Raspberry Pi OS first user belongs to; those the base lacks are
 * skipped. */
static const char *const user_groups[] = {"adm",   "dialout", "cdrom", "sudo",  "audio", "video", "plugdev", "games",
                                          "users", "input",   "render", "netdev", "gpio", "i2c",   "spi",     NULL};

struct ids {
        unsigned uid, gid;
        bool exists;
        char shell[128]; /* an existing user's */
        char home[256];  /* an existing user's */
        char *line;      /* an existing user's passwd line, without its newline */
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

static void ids_free(struct ids *ids) {
        free(ids->line);
        ids->line = NULL;
}

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
                        if (!field_n(l, 5, ids.home, sizeof ids.home))
                                ids.home[0] = 0;
                        free(ids.line);
                        ids.line = xstrndup(l, strcspn(l, "\n"));
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

/* A new user's home starts as useradd -m starts it: a copy of the base's
 * /etc/skel (.bashrc, .profile: the prompt, ~/.local/bin on PATH), the
 * user's own.  Not for a user the base has (its home is its own), nor over
 * a home the base already has; cloud-init, seeing the user there, would
 * not make one either. */
static void add_skel(struct payload *p, const struct base_files *bf, const char *user, const char *home,
                     const struct ids *ids) {
        if (ids->exists)
                return;
        for (size_t i = 0; i < bf->nhomes; i++)
                if (!strcmp(bf->homes[i], user))
                        return;
        for (size_t i = 0; i < bf->nskel; i++) {
                const struct skel_entry *k = &bf->skel[i];
                _cleanup_free_ char *path = xasprintf("%s/%s", home, k->path);
                if (S_ISDIR(k->mode))
                        payload_add_dir(p, PART_ROOT, path, k->mode, ids->uid, ids->gid);
                else if (S_ISREG(k->mode))
                        payload_add_file(p, PART_ROOT, path, k->mode & 07777, ids->uid, ids->gid, k->data, k->len);
                else { /* a symlink: payload_add_symlink makes it root's */
                        struct payload_entry *e = payload_add_symlink(p, PART_ROOT, path, k->target);
                        e->uid = ids->uid;
                        e->gid = ids->gid;
                }
        }
}

/* A new user's subordinate ids, as useradd gives them (SUB_UID_COUNT
 * 65536 from 100000, after the last range handed out): rootless podman
 * or docker needs them.  Only where the base has the file. */
static void add_subids(struct payload *p, const char *path, const char *text, const char *user) {
        if (!text)
                return;
        unsigned long next = 100000;
        FOR_LINES(text, l) {
                char f[32];
                if (line_is(l, user))
                        return;
                if (!field_n(l, 1, f, sizeof f))
                        continue;
                unsigned long start = strtoul(f, NULL, 10);
                if (field_n(l, 2, f, sizeof f) && start + strtoul(f, NULL, 10) > next)
                        next = start + strtoul(f, NULL, 10);
        }
        struct buf b = {0};
        buf_puts(&b, text);
        if (b.len && b.data[b.len - 1] != '\n')
                buf_puts(&b, "\n");
        buf_printf(&b, "%s:%lu:65536\n", user, next);
        plan_add_text(p, PART_ROOT, path, 0644, &b);
        buf_free(&b);
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
        _cleanup_(ids_free) struct ids ids = pick_ids(bf, h->user);
        const char *u = h->user;
        _cleanup_free_ char *home = xasprintf("/home/%s", u);
        /* Only a login account may be taken over (pi on older images): a
         * system one (man, www-data) keeps its nologin shell and its home
         * elsewhere, so neither the SSH key nor a password would let anyone
         * in, and it would get sudo.  But the image's first user (uid 1000,
         * its home in /home) has a nologin shell on trixie images since
         * 2026-04 (pi-gen's adduser --disabled-login when no password is
         * set, its shell made bash when one is): it gets bash, as there. */
        const char *sh_base = strrchr(ids.shell, '/') ? strrchr(ids.shell, '/') + 1 : ids.shell;
        const char *base = in->base_name ? path_basename(in->base_name) : "the base";
        bool no_login = !strcmp(sh_base, "nologin") || !strcmp(sh_base, "false");
        bool first_user = ids.exists && ids.uid == 1000 && !strcmp(ids.home, home);
        if (ids.exists && !first_user && (ids.uid < 1000 || ids.uid >= 60000 || no_login))
                return log_error(EINVAL, host_where(h, HF_USER),
                                 "user '%s' is a system account in %s (uid %u, shell %s); choose another user", u,
                                 base, ids.uid, ids.shell[0] ? ids.shell : "none");
        /* A new user gets a group of its own name: taking over a system
         * group (video, sudo, users) would renumber it, and files with its
         * old id would lose their group.  adduser refuses it too. */
        if (!ids.exists)
                FOR_LINES(bf->group, l) if (line_is(l, u)) {
                        char gid[32] = "?";
                        (void)field_n(l, 2, gid, sizeof gid);
                        return log_error(EINVAL, host_where(h, HF_USER),
                                         "%s has a group named '%s' (gid %s) and no such user; a new user's group "
                                         "would take its place: choose another user",
                                         base, u, gid);
                }
        /* 0 would mean "change the password at the next login", which a
         * key login cannot do: PAM then refuses ssh and sudo alike
         * (SOURCE_DATE_EPOCH=0) */
        long days = MAX((long)(in->build_time / 86400), 1L);
        struct buf b = {0};

        _cleanup_free_ char *pw = NULL;
        if (!ids.exists)
                pw = xasprintf("%s:x:%u:%u:,,,:%s:/bin/bash", u, ids.uid, ids.gid, home);
        else if (no_login)
                pw = xasprintf("%.*s:/bin/bash", (int)(strrchr(ids.line, ':') - ids.line), ids.line);
        put_line(&b, bf->passwd, u, pw);
        plan_add_text(p, PART_ROOT, "/etc/passwd", 0644, &b);
        buf_free(&b);

        _cleanup_free_ char *gr = xasprintf("%s:x:%u:", u, ids.gid);
        struct buf tmp = {0};
        put_line(&tmp, bf->group, u, ids.exists ? NULL : gr);
        add_memberships(&b, (char *)tmp.data, u, 3);
        buf_free(&tmp);
        plan_add_text(p, PART_ROOT, "/etc/group", 0644, &b);
        buf_free(&b);
        b.secret = true; /* /etc/shadow: the password hashes */

        /* "*" has no valid password but, unlike "!", does not lock the
         * account, so key logins still work. */
        _cleanup_free_secret_ char *sh = xasprintf("%s:%s:%ld:0:99999:7:::", u, h->password_hash ? h->password_hash : "*", days);
        put_line(&b, bf->shadow, u, (ids.exists && !h->password_hash) ? NULL : sh);
        struct payload_entry *e = payload_add_file(p, PART_ROOT, "/etc/shadow", 0640, 0, 42, b.data, b.len);
        e->secret = true;
        buf_free_secret(&b);
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

        if (!ids.exists) {
                add_subids(p, "/etc/subuid", bf->subuid, u);
                add_subids(p, "/etc/subgid", bf->subgid, u);
        }

        payload_add_dir(p, PART_ROOT, "/home", 0755, 0, 0);
        payload_add_dir(p, PART_ROOT, home, 0700, ids.uid, ids.gid);
        add_skel(p, bf, u, home, &ids);
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
        plan_add_str(p, PART_ROOT, "/etc/sudoers.d/010_dimimage-nopasswd", 0440, sudo);
        if (in->os == OS_BOOKWORM || bf->rename_pending) {
                /* userconf-pi would otherwise ask for a user name on the
                 * console and wait: mask it, the user exists already.  And
                 * undo what the image's `rename-user -f -s` did for it, as
                 * its cancel-rename does: the console login (what is left
                 * when the network is wrong) and the sshd banner saying
                 * that SSH may not work until a user is set up.  Every
                 * bookworm image has had it done; a trixie one is undone
                 * when it shows the marks (cloud-init's user-data names the
                 * user as well, but would leave the banner and the console). */
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
        plan_add_text(p, PART_ROOT, "/etc/hosts", 0644, &b);
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
                plan_add_text(p, PART_BOOT, "/config.txt", 0755, &b);
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
                plan_add_text(p, PART_BOOT, "/cmdline.txt", 0755, &b);
                buf_free(&b);
        }
        if (in->os == OS_BOOKWORM && h->user && (h->nssh_keys || h->password_hash))
                plan_add_str(p, PART_BOOT, "/ssh", 0755, ""); /* sshswitch.service's switch; empty */
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
                plan_add_text(p, PART_BOOT, "/meta-data", 0755, &b);
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
                plan_add_text(p, PART_BOOT, "/user-data", 0755, &b);
                buf_free(&b);
                plan_add_str(p, PART_BOOT, "/network-config", 0755, NETWORK_CONFIG);
        }
}

/* cloud-init's local stage runs before local-fs.target (DefaultDependencies=no),
 * so on a slow boot it can look for the NoCloud seed before the boot
 * partition is mounted, find none and fall back to DataSourceNone: the first
 * boot then ignores the image's user-data, and the next one takes it as a new
 * instance (canonical/cloud-init#6614, on Raspberry Pi OS trixie).  Ordering
 * the stage after the mount closes that race; the base's own units are
 * left as they are. */
#define CLOUD_INIT_DROPIN_DIR "/etc/systemd/system/cloud-init-local.service.d"

static void plan_cloud_init(const struct plan_input *in, struct payload *p) {
        if (in->os != OS_TRIXIE || !in->base->cloud_init_local)
                return;
        payload_add_dir(p, PART_ROOT, CLOUD_INIT_DROPIN_DIR, 0755, 0, 0);
        plan_add_str(p, PART_ROOT, CLOUD_INIT_DROPIN_DIR "/dimimage-seed.conf", 0644,
                     "# Written by dimimage: the NoCloud seed (user-data, meta-data, network-config)\n"
                     "# is on the boot partition, so cloud-init's local stage waits for its mount.\n"
                     "[Unit]\nRequiresMountsFor=/boot/firmware\n");
}

char *locale_name(const char *loc) {
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

/* A base dimimage built already.  Built over, what that build set and this
 * one does not replace stays: its first user, with their SSH keys and sudo,
 * when this build names another user or none; a Wi-Fi network, an address
 * or a time zone this one does not set; its role's compose files.  A user
 * rebuilding (a changed secret, the next host) nearly always wants a fresh
 * build from the Raspberry Pi OS image, and handing a build its own output
 * by mistake is easy: so it is refused unless asked for, as sdm asks before
 * customising an image a second time. */
static int plan_check_built(const struct plan_input *in) {
        const struct base_files *bf = in->base;
        if (!bf->built)
                return 0;
        const char *m = bf->manifest ? bf->manifest : "";
        size_t n = strlen(m);
        _cleanup_free_ char *role = json_lookup(m, n, (const char *const[]){"role"}, 1);
        _cleanup_free_ char *host = json_lookup(m, n, (const char *const[]){"hostname"}, 1);
        _cleanup_free_ char *user = json_lookup(m, n, (const char *const[]){"host", "user"}, 2);
        _cleanup_free_ char *from = json_lookup(m, n, (const char *const[]){"base", "name"}, 2);
        struct buf what = {0};
        const char *sep = "";
        if (role)
                buf_printf(&what, "%srole %s", sep, role), sep = ", ";
        if (host)
                buf_printf(&what, "%shost %s", sep, host), sep = ", ";
        if (user)
                buf_printf(&what, "%suser %s", sep, user), sep = ", ";
        if (from)
                buf_printf(&what, "%sfrom %s", sep, from), sep = ", ";
        if (!*sep)
                buf_printf(&what, "%s says no more", PLAN_MANIFEST);
        _cleanup_free_ char *desc = (char *)buf_steal(&what, NULL);
        _cleanup_free_ char *old_user = user && (!in->host->user || strcmp(user, in->host->user) != 0)
                                                ? xasprintf("user %s with their SSH keys and sudo, ", user)
                                                : xstrdup("");
        if (!in->allow_built_base)
                return log_error(EINVAL, in->base_name,
                                 "built by dimimage already (%s): a build over it keeps what that build set and "
                                 "this one does not replace (%sa Wi-Fi network or address this one does not set, "
                                 "compose files this one does not write); build from the Raspberry Pi OS image "
                                 "instead, or pass --allow-built-base",
                                 desc, old_user);
        log_warn(in->base_name,
                 "built by dimimage already (%s): what that build set and this one does not replace stays "
                 "(%sa Wi-Fi network or address this one does not set, compose files this one does not write)",
                 desc, old_user);
        return 0;
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
        plan_add_text(p, PART_ROOT, "/etc/locale.gen", 0644, &b);
        buf_free(&b);
}

/* Raspberry Pi OS images made without a Wi-Fi country (all the downloads)
 * ship NetworkManager.state with WirelessEnabled=false, since NetworkManager
 * would otherwise unblock every radio (pi-gen stage2/02-net-tweaks); NM then
 * keeps Wi-Fi off whatever the keyfiles say.  raspi-config's
 * do_wifi_country turns it back on, as this does when a country is set
 * (with a network or without); the file's other keys are kept. */
static void plan_nm_state(const struct plan_input *in, struct payload *p) {
        const char *old = in->base->nm_state;
        if (!in->host->wifi_country || !old)
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
        plan_add_text(p, PART_ROOT, NM_STATE, 0644, &b);
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
                /* a fleet file's env: is a --set with a file and line: it
                 * names the file too, as an --env file does */
                if (v->file && (v->origin == ORIGIN_FILE || (v->origin == ORIGIN_SET && v->line))) {
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
        int r = plan_check_built(in);
        if (r >= 0)
                r = plan_check_host(in);
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
        plan_cloud_init(in, out);
        plan_locale_gen(in, out);
        plan_nm_state(in, out);
        plan_manifest(in, out);
        return 0;
}
