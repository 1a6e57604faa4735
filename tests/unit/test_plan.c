/* SPDX-License-Identifier: GPL-3.0-or-later */
/* plan: inputs -> payload, without any image.  The payload listing and the
 * bytes of every generated text file are compared with golden files in
 * tests/golden/plan/ (DIMIMAGE_UPDATE_GOLDEN=1 rewrites them). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "apply.h"
#include "dotenv.h"
#include "host.h"
#include "log.h"
#include "payload.h"
#include "plan.h"
#include "profile.h"
#include "test_util.h"
#include "util.h"

static const char passwd[] = "root:x:0:0:root:/root:/bin/bash\n"
                             "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
                             "systemd-network:x:998:998:systemd Network Management:/:/usr/sbin/nologin\n";
static const char group[] = "root:x:0:\nadm:x:4:\nsudo:x:27:\nvideo:x:44:\nshadow:x:42:\nusers:x:100:\n"
                            "netdev:x:106:\ngpio:x:997:\n";
static const char shadow[] = "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n";
static const char gshadow[] = "root:*::\nadm:*::\nsudo:*::\nshadow:*::\n";
static const char hosts[] = "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n"
                            "127.0.1.1\t\traspberrypi\n";
static const char config_txt[] = "# For more options and information see\n"
                                 "dtparam=audio=on\ncamera_auto_detect=1\n\n[cm4]\notg_mode=1\n\n[all]\n";
static const char cmdline_txt[] = "console=serial0,115200 console=tty1 root=PARTUUID=2a7c1d5e-02 rootfstype=ext4 "
                                  "fsck.repair=yes rootwait quiet cfg80211.ieee80211_regdom=US\n";
static const char locale_gen[] = "# en_GB.UTF-8 UTF-8\n# en_US.UTF-8 UTF-8\n";

static const char *const golden_files[] = {
        "/etc/passwd", "/etc/group", "/etc/hosts", "/etc/hostname", "/etc/dimimage/stack.conf",
        "/etc/NetworkManager/system-connections/dimdim-eth.nmconnection", "/etc/docker/daemon.json",
        "/etc/systemd/journald.conf.d/dimdim.conf", "/etc/default/locale", "/etc/locale.gen", "/etc/timezone",
        "/etc/ssh/sshd_config.d/10-dimimage.conf", "/etc/sudoers.d/010_dimimage-nopasswd",
        "/home/pi/.ssh/authorized_keys", "/etc/systemd/system/cloud-init-local.service.d/dimimage-seed.conf", NULL,
};
static const char *const golden_boot[] = {"/config.txt", "/cmdline.txt", "/user-data", "/meta-data",
                                          "/network-config", NULL};

struct fixture {
        struct profile profile;
        struct env env;
        struct host_settings host;
        struct base_files base;
        struct payload payload;
};

static void setup_inputs(struct fixture *f, const char *role) {
        setenv("DIMIMAGE_DATADIR", ".", 1);
        _cleanup_free_ char *path = profile_path_for(role);
        assert_int_equal(profile_load(path, &f->profile), 0);
        env_set(&f->env, "DB_PASSWORD", "s3cret-Value-not-in-golden", ORIGIN_SET, "--set", 0);
        env_set(&f->env, "OPENOBSERVE_URL", "http://192.168.1.102:5080", ORIGIN_DEFAULT, "app.yml", 3);
        f->host.hostname = xstrdup("dimdim-app");
        f->host.user = xstrdup("pi");
        f->host.ssh_keys = xcalloc(1, sizeof(char *));
        f->host.ssh_keys[0] = xstrdup("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGolden test@example");
        f->host.nssh_keys = 1;
        f->host.ip = xstrdup("192.168.1.101/24");
        f->host.gateway = xstrdup("192.168.1.1");
        f->host.dns = xcalloc(1, sizeof(char *));
        f->host.dns[0] = xstrdup("192.168.1.1");
        f->host.ndns = 1;
        f->host.timezone = xstrdup("Europe/Berlin");
        f->host.locale = xstrdup("en_GB.UTF-8");
        f->host.extra_hosts = xcalloc(1, sizeof(char *));
        f->host.extra_hosts[0] = xstrdup("192.168.1.102\tdimdim-obs");
        f->host.nextra_hosts = 1;
        f->base = (struct base_files){
                .os_release = xstrdup("ID=debian\nVERSION_CODENAME=bookworm\n"),
                .passwd = xstrdup(passwd),
                .group = xstrdup(group),
                .shadow = xstrdup(shadow),
                .gshadow = xstrdup(gshadow),
                .hosts = xstrdup(hosts),
                .config_txt = xstrdup(config_txt),
                .cmdline_txt = xstrdup(cmdline_txt),
                .locale_gen = xstrdup(locale_gen),
                .cloud_init_local = true,
        };
}

static void teardown_inputs(struct fixture *f) {
        profile_free(&f->profile);
        env_free(&f->env);
        host_free(&f->host);
        base_files_free(&f->base);
        payload_free(&f->payload);
}

static void run_plan(struct fixture *f, enum os_flavour os) {
        struct plan_input in = {
                .profile = &f->profile,
                .env = &f->env,
                .host = &f->host,
                .data_dir = ".",
                .services = "api db redis worker", /* the app role's, as compose_started_services() says */
                .build_time = 1764547200,
                .os = os,
                .base_name = "base.img",
                .base_sha256 = "0000000000000000000000000000000000000000000000000000000000000000",
                .disk_id = "2a7c1d5e",
                .base = &f->base,
        };
        assert_int_equal(plan_payload(&in, &f->payload), 0);
        assert_int_equal(plan_base_edits(&in, &f->payload), 0);
        payload_sort(&f->payload);
}

/* The listing plus the text of each generated file, in a stable order.
 * The manifest is left out: it carries the version and profile hash. */
static char *render(const struct payload *p) {
        char *text = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&text, &len);
        struct payload filtered = {0};
        for (size_t i = 0; i < p->n; i++) {
                const struct payload_entry *e = &p->v[i];
                if (!strcmp(e->path, "/etc/dimimage/manifest.json"))
                        continue;
                if (e->type == ENTRY_FILE && e->source) {
                        payload_add_file_from(&filtered, e->part, e->path, e->mode, e->uid, e->gid, e->source);
                        filtered.v[filtered.n - 1].len = 0;
                } else if (e->type == ENTRY_FILE)
                        payload_add_file(&filtered, e->part, e->path, e->mode, e->uid, e->gid, e->data, e->len)
                                ->secret = e->secret;
                else if (e->type == ENTRY_DIR)
                        payload_add_dir(&filtered, e->part, e->path, e->mode, e->uid, e->gid);
                else if (e->type == ENTRY_SYMLINK)
                        payload_add_symlink(&filtered, e->part, e->path, e->target);
                else
                        payload_add_unlink(&filtered, e->part, e->path);
        }
        payload_dump(&filtered, m);
        payload_free(&filtered);
        for (int part = 0; part < 2; part++)
                for (const char *const *g = part ? golden_boot : golden_files; *g; g++) {
                        const struct payload_entry *e = payload_find(p, part ? PART_BOOT : PART_ROOT, *g);
                        if (!e || e->type != ENTRY_FILE || e->source)
                                continue;
                        fprintf(m, "\n==> %s:%s <==\n", part ? "boot" : "root", *g);
                        fwrite(e->data, 1, e->len, m);
                }
        fclose(m);
        return text;
}

static void compare_golden(const char *name, const char *actual) {
        _cleanup_free_ char *path = xasprintf("tests/golden/plan/%s", name);
        if (getenv("DIMIMAGE_UPDATE_GOLDEN")) {
                FILE *f = fopen(path, "w");
                assert_non_null(f);
                fputs(actual, f);
                fclose(f);
                return;
        }
        uint8_t *want = NULL;
        size_t len;
        if (read_file(path, 1 << 24, &want, &len) < 0)
                fail_msg("missing golden file %s (run with DIMIMAGE_UPDATE_GOLDEN=1)", path);
        if (strcmp((char *)want, actual) != 0) {
                _cleanup_free_ char *got = xasprintf("%s.actual", path);
                FILE *f = fopen(got, "w");
                if (f) {
                        fputs(actual, f);
                        fclose(f);
                }
                free(want);
                fail_msg("%s differs from the plan's output (see %s; diff them)", path, got);
        }
        free(want);
}

static void test_app_bookworm_golden(void **state) {
        struct fixture f = {0};
        setup_inputs(&f, "app");
        run_plan(&f, OS_BOOKWORM);
        _cleanup_free_ char *text = render(&f.payload);
        compare_golden("app-bookworm.txt", text);
        assert_null(strstr(text, "s3cret-Value-not-in-golden"));
        teardown_inputs(&f);
}

static void test_app_trixie_golden(void **state) {
        struct fixture f = {0};
        setup_inputs(&f, "app");
        run_plan(&f, OS_TRIXIE);
        _cleanup_free_ char *text = render(&f.payload);
        compare_golden("app-trixie.txt", text);
        teardown_inputs(&f);
}

static void test_env_is_secret_and_root_only(void **state) {
        struct fixture f = {0};
        setup_inputs(&f, "app");
        run_plan(&f, OS_BOOKWORM);
        const struct payload_entry *e = payload_find(&f.payload, PART_ROOT, DIMDIM_ENV);
        assert_non_null(e);
        assert_true(e->secret);
        assert_int_equal(e->mode, 0600);
        assert_int_equal(e->uid, 0);
        assert_int_equal(e->gid, 0);
        assert_non_null(memmem(e->data, e->len, "s3cret-Value-not-in-golden", 26));
        /* nothing secret may reach the boot partition */
        for (size_t i = 0; i < f.payload.n; i++)
                if (f.payload.v[i].part == PART_BOOT && f.payload.v[i].data)
                        assert_null(memmem(f.payload.v[i].data, f.payload.v[i].len, "s3cret", 6));
        const struct payload_entry *sh = payload_find(&f.payload, PART_ROOT, "/etc/shadow");
        assert_non_null(sh);
        assert_int_equal(sh->mode, 0640);
        assert_int_equal(sh->gid, 42);
        teardown_inputs(&f);
}

/* The base with one more passwd line (an existing user). */
static void base_with_user(struct fixture *f, const char *line) {
        free(f->base.passwd);
        f->base.passwd = xasprintf("%s%s", passwd, line);
}

static void test_existing_user_is_reused(void **state) {
        struct fixture f = {0};
        setup_inputs(&f, "app");
        base_with_user(&f, "pi:x:1000:1000:,,,:/home/pi:/bin/bash\n");
        free(f.host.user);
        f.host.user = xstrdup("pi");
        run_plan(&f, OS_BOOKWORM);
        const struct payload_entry *e = payload_find(&f.payload, PART_ROOT, "/etc/passwd");
        assert_non_null(e);
        /* exactly one pi line: the existing user is kept, not duplicated */
        const char *first = strstr((char *)e->data, "\npi:");
        assert_non_null(first);
        assert_null(strstr(first + 1, "\npi:"));
        const struct payload_entry *home = payload_find(&f.payload, PART_ROOT, "/home/pi");
        assert_int_equal(home->uid, 1000);
        teardown_inputs(&f);
}

/* A base's /etc/skel, as apply_read_base gives it. */
static void give_skel(struct base_files *bf) {
        static const struct {
                const char *path, *data, *target;
                uint32_t mode;
        } skel[] = {
                {".bashrc", "# ~/.bashrc\n", NULL, S_IFREG | 0644},
                {".config", NULL, NULL, S_IFDIR | 0755},
                {".config/app.conf", "x=1\n", NULL, S_IFREG | 0600},
                {".profile", "# ~/.profile\n", NULL, S_IFREG | 0644},
                {".vimrc", NULL, ".config/app.conf", S_IFLNK | 0777},
        };
        bf->skel = xcalloc(ARRAY_SIZE(skel), sizeof(*bf->skel));
        for (size_t i = 0; i < ARRAY_SIZE(skel); i++) {
                struct skel_entry *e = &bf->skel[bf->nskel++];
                e->path = xstrdup(skel[i].path);
                e->mode = skel[i].mode;
                if (skel[i].data) {
                        e->len = strlen(skel[i].data);
                        e->data = xmemdup(skel[i].data, e->len);
                }
                if (skel[i].target)
                        e->target = xstrdup(skel[i].target);
        }
}

/* A new user's home starts as useradd -m's: the base's /etc/skel, the
 * user's own, modes kept; the SSH key still goes in. */
static void test_new_user_home_from_skel(void **state) {
        struct fixture f = {0};
        setup_inputs(&f, "app");
        give_skel(&f.base);
        run_plan(&f, OS_TRIXIE);
        static const struct {
                const char *path;
                enum entry_type type;
                uint32_t mode;
        } want[] = {
                {"/home/pi/.bashrc", ENTRY_FILE, 0644},     {"/home/pi/.config", ENTRY_DIR, 0755},
                {"/home/pi/.config/app.conf", ENTRY_FILE, 0600}, {"/home/pi/.profile", ENTRY_FILE, 0644},
                {"/home/pi/.vimrc", ENTRY_SYMLINK, 0777},   {"/home/pi/.ssh/authorized_keys", ENTRY_FILE, 0600},
        };
        for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
                const struct payload_entry *e = payload_find(&f.payload, PART_ROOT, want[i].path);
                if (!e || e->type != want[i].type || e->mode != want[i].mode || e->uid != 1000 || e->gid != 1000)
                        fail_msg("%s: %s", want[i].path, e ? "wrong type, mode or owner" : "missing");
        }
        const struct payload_entry *e = payload_find(&f.payload, PART_ROOT, "/home/pi/.bashrc");
        assert_memory_equal(e->data, "# ~/.bashrc\n", e->len);
        assert_string_equal(payload_find(&f.payload, PART_ROOT, "/home/pi/.vimrc")->target, ".config/app.conf");
        teardown_inputs(&f);
}

/* Not over a home the base has, nor for a user it has: that home is theirs. */
static void test_skel_not_over_a_home(void **state) {
        for (int existing = 0; existing < 2; existing++) {
                struct fixture f = {0};
                setup_inputs(&f, "app");
                give_skel(&f.base);
                if (existing)
                        base_with_user(&f, "pi:x:1000:1000:,,,:/home/pi:/bin/bash\n");
                else
                        strv_push(&f.base.homes, &f.base.nhomes, "pi");
                run_plan(&f, OS_BOOKWORM);
                assert_null(payload_find(&f.payload, PART_ROOT, "/home/pi/.bashrc"));
                assert_null(payload_find(&f.payload, PART_ROOT, "/home/pi/.config"));
                assert_non_null(payload_find(&f.payload, PART_ROOT, "/home/pi/.ssh/authorized_keys"));
                teardown_inputs(&f);
        }
}

static void test_detect_os(void **state) {
        assert_int_equal(plan_detect_os("ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n"), OS_BOOKWORM);
        assert_int_equal(plan_detect_os("VERSION_CODENAME=trixie\n"), OS_TRIXIE);
        assert_int_equal(plan_detect_os("VERSION_ID=\"13\"\n"), OS_TRIXIE);
        assert_int_equal(plan_detect_os("ID=ubuntu\nVERSION_ID=\"24.04\"\n"), OS_UNKNOWN);
        assert_int_equal(plan_detect_os(NULL), OS_UNKNOWN);
        char *v = os_release_get("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n", "PRETTY_NAME");
        assert_string_equal(v, "Debian GNU/Linux 12 (bookworm)");
        free(v);
}

static void test_uuid_deterministic(void **state) {
        char a[37], b[37], c[37];
        plan_uuid("x", a);
        plan_uuid("x", b);
        plan_uuid("y", c);
        assert_string_equal(a, b);
        assert_string_not_equal(a, c);
        assert_int_equal(a[14], '4');
}

/* plan_payload, then plan_base_edits with its log captured: its result in
 * *r, its error lines in *errors; returns what it logged. */
static char *edits_captured(struct fixture *f, enum os_flavour os, int *r, unsigned *errors) {
        struct plan_input in = {.profile = &f->profile, .env = &f->env, .host = &f->host, .data_dir = ".",
                                .build_time = 1764547200, .os = os, .base_name = "base.img",
                                .base_sha256 = PLAN_SUM_PLACEHOLDER, .disk_id = "2a7c1d5e", .base = &f->base};
        assert_int_equal(plan_payload(&in, &f->payload), 0);
        struct tu_capture c;
        tu_capture_begin(&c);
        *r = plan_base_edits(&in, &f->payload);
        return tu_capture_end(&c, errors);
}

static const struct payload_entry *entry(const struct fixture *f, enum part part, const char *path,
                                         enum entry_type type) {
        const struct payload_entry *e = payload_find(&f->payload, part, path);
        assert_non_null(e);
        assert_int_equal(e->type, type);
        return e;
}

static const char *file_text(const struct fixture *f, enum part part, const char *path) {
        return (const char *)entry(f, part, path, ENTRY_FILE)->data;
}

#define WIFI_KEYFILE "/etc/NetworkManager/system-connections/dimdim-wifi.nmconnection"

/* The app inputs with a Wi-Fi network (ssid NULL: none) and the base's
 * NetworkManager.state. */
static void wifi_inputs(struct fixture *f, const char *ssid, const char *nm_state) {
        setup_inputs(f, "app");
        if (ssid) {
                f->host.wifi_ssid = xstrdup(ssid);
                f->host.wifi_psk_hex = xstrdup("f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e");
                f->host.wifi_country = xstrdup("GB");
        }
        f->base.nm_state = xstrdup(nm_state);
}

/* Raspberry Pi OS ships NetworkManager.state with WirelessEnabled=false
 * (pi-gen, no WPA_COUNTRY): a Wi-Fi connection needs it turned on, its
 * other keys kept; an SSID with an edge space is written as bytes. */
static void test_wifi_turns_the_radio_on(void **state) {
        struct fixture f = {0};
        wifi_inputs(&f, " Cafe", "[main]\nNetworkingEnabled=true\nWirelessEnabled=false\nWWANEnabled=true\n");
        run_plan(&f, OS_BOOKWORM);
        assert_string_equal(file_text(&f, PART_ROOT, NM_STATE),
                            "[main]\nNetworkingEnabled=true\nWirelessEnabled=true\nWWANEnabled=true\n");
        assert_non_null(strstr(file_text(&f, PART_ROOT, WIFI_KEYFILE), "\nssid=32;67;97;102;101;\n"));
        teardown_inputs(&f);

        /* the key missing, and [main] not the last group */
        memset(&f, 0, sizeof f);
        wifi_inputs(&f, "Cafe", "[main]\nNetworkingEnabled=true\n[other]\nWirelessEnabled=false\n");
        run_plan(&f, OS_TRIXIE);
        assert_string_equal(file_text(&f, PART_ROOT, NM_STATE),
                            "[main]\nNetworkingEnabled=true\nWirelessEnabled=true\n[other]\nWirelessEnabled=false\n");
        assert_non_null(strstr(file_text(&f, PART_ROOT, WIFI_KEYFILE), "\nssid=Cafe\n\n[wifi-security]\n"));
        teardown_inputs(&f);

        /* a hidden network: NetworkManager probes for it by name */
        memset(&f, 0, sizeof f);
        wifi_inputs(&f, "Cafe", "[main]\nWirelessEnabled=false\n");
        f.host.wifi_hidden = 1;
        run_plan(&f, OS_TRIXIE);
        assert_non_null(strstr(file_text(&f, PART_ROOT, WIFI_KEYFILE), "\nssid=Cafe\nhidden=true\n\n[wifi-security]\n"));
        teardown_inputs(&f);

        /* a country alone turns the radio on too, as raspi-config's
         * do_wifi_country does: a network added later just works */
        memset(&f, 0, sizeof f);
        wifi_inputs(&f, NULL, "[main]\nWirelessEnabled=false\n");
        f.host.wifi_country = xstrdup("DE");
        run_plan(&f, OS_BOOKWORM);
        assert_string_equal(file_text(&f, PART_ROOT, NM_STATE), "[main]\nWirelessEnabled=true\n");
        assert_non_null(payload_find(&f.payload, PART_ROOT, "/etc/systemd/system/dimdim-wifi-unblock.service"));
        assert_null(payload_find(&f.payload, PART_ROOT, WIFI_KEYFILE));
        teardown_inputs(&f);

        /* no Wi-Fi asked for: the radio stays as the image has it */
        memset(&f, 0, sizeof f);
        wifi_inputs(&f, NULL, "[main]\nWirelessEnabled=false\n");
        run_plan(&f, OS_BOOKWORM);
        assert_null(payload_find(&f.payload, PART_ROOT, NM_STATE));
        assert_null(payload_find(&f.payload, PART_ROOT, "/etc/systemd/system/dimdim-wifi-unblock.service"));
        teardown_inputs(&f);
}

/* The first user of a trixie image since 2026-04 (pi-gen's adduser
 * --disabled-login: nologin, password "!") is taken over and gets bash,
 * as pi-gen gives it when a password is set; the rest of its line stays. */
static void test_first_user_without_login_is_reused(void **state) {
        struct fixture f = {0};
        setup_inputs(&f, "app");
        base_with_user(&f, "pi:x:1000:1000:,,,:/home/pi:/usr/sbin/nologin\n");
        free(f.base.shadow);
        f.base.shadow = xasprintf("%spi:!:20556:0:99999:7:::\n", shadow);
        free(f.host.user);
        f.host.user = xstrdup("pi");
        run_plan(&f, OS_TRIXIE);
        const char *pw = file_text(&f, PART_ROOT, "/etc/passwd");
        if (!strstr(pw, "\npi:x:1000:1000:,,,:/home/pi:/bin/bash\n") || strstr(pw, "/home/pi:/usr/sbin/nologin") ||
            strstr(strstr(pw, "\npi:") + 1, "\npi:"))
                fail_msg("passwd:\n%s", pw);
        /* its password stays as the base has it: no hash was given */
        assert_non_null(strstr(file_text(&f, PART_ROOT, "/etc/shadow"), "\npi:!:20556:"));
        teardown_inputs(&f);
}

/* A new user gets subordinate ids after the last range, as useradd gives
 * them; a base without the files gets none, and an existing user keeps
 * what it has. */
static void test_new_user_subids(void **state) {
        struct fixture f = {0};
        setup_inputs(&f, "app");
        f.base.subuid = xstrdup("other:100000:65536\nsvc:165536:65536");
        f.base.subgid = xstrdup("other:100000:65536\n");
        run_plan(&f, OS_TRIXIE);
        assert_string_equal(file_text(&f, PART_ROOT, "/etc/subuid"),
                            "other:100000:65536\nsvc:165536:65536\npi:231072:65536\n");
        assert_string_equal(file_text(&f, PART_ROOT, "/etc/subgid"), "other:100000:65536\npi:165536:65536\n");
        teardown_inputs(&f);

        memset(&f, 0, sizeof f);
        setup_inputs(&f, "app");
        run_plan(&f, OS_TRIXIE);
        assert_null(payload_find(&f.payload, PART_ROOT, "/etc/subuid"));
        teardown_inputs(&f);

        memset(&f, 0, sizeof f);
        setup_inputs(&f, "app");
        base_with_user(&f, "pi:x:1000:1000:,,,:/home/pi:/bin/bash\n");
        f.base.subuid = xstrdup("pi:100000:65536\n");
        run_plan(&f, OS_TRIXIE);
        assert_null(payload_find(&f.payload, PART_ROOT, "/etc/subuid"));
        teardown_inputs(&f);
}

/* A build at SOURCE_DATE_EPOCH=0 gives the password's last change as day
 * 1, not 0, which says "change it at the next login": PAM would refuse a
 * key login and sudo. */
static void test_password_change_day_not_zero(void **state) {
        struct fixture f = {0};
        setup_inputs(&f, "app");
        struct plan_input in = {.profile = &f.profile, .env = &f.env, .host = &f.host, .data_dir = ".",
                                .build_time = 0, .os = OS_BOOKWORM, .base_name = "base.img",
                                .base_sha256 = PLAN_SUM_PLACEHOLDER, .disk_id = "2a7c1d5e", .base = &f.base};
        assert_int_equal(plan_payload(&in, &f.payload), 0);
        assert_int_equal(plan_base_edits(&in, &f.payload), 0);
        _cleanup_free_ char *want = xasprintf("\n%s:*:1:0:99999:7:::\n", f.host.user);
        const char *sh = file_text(&f, PART_ROOT, "/etc/shadow");
        if (!strstr(sh, want))
                fail_msg("want %s in:\n%s", want, sh);
        teardown_inputs(&f);
}

/* A system account keeps its nologin shell and a home elsewhere: taking it
 * over would lock everyone out and hand it sudo. */
static void test_system_account_refused(void **state) {
        static const char *const lines[] = {
                "man:x:6:12:man:/var/cache/man:/usr/sbin/nologin\n",
                "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
                "svc:x:1001:1001::/home/svc:/bin/false\n",
                /* uid 1000, but not a first user's home */
                "pi:x:1000:1000::/var/lib/pi:/usr/sbin/nologin\n",
        };
        static const char *const names[] = {"man", "nobody", "svc", "pi"};
        for (size_t i = 0; i < ARRAY_SIZE(lines); i++) {
                struct fixture f = {0};
                setup_inputs(&f, "app");
                base_with_user(&f, lines[i]);
                free(f.host.user);
                f.host.user = xstrdup(names[i]);
                struct plan_input in = {.profile = &f.profile, .env = &f.env, .host = &f.host, .data_dir = ".",
                                        .build_time = 1764547200, .os = OS_BOOKWORM, .base_name = "base.img",
                                        .base_sha256 = PLAN_SUM_PLACEHOLDER, .disk_id = "2a7c1d5e", .base = &f.base};
                assert_int_equal(plan_payload(&in, &f.payload), 0);
                assert_int_equal(plan_base_edits(&in, &f.payload), -EINVAL);
                teardown_inputs(&f);
        }
}

/* locale.gen and /etc/default/locale spell the codeset UTF-8 whatever the
 * user wrote. */
static void test_locale_utf8_spellings(void **state) {
        static const char *const given[] = {"en_US.utf8", "en_US.UTF-8", "de_DE.utf-8@euro", "en_GB"};
        static const char *const want[] = {"en_US.UTF-8 UTF-8\n", "en_US.UTF-8 UTF-8\n", "de_DE.UTF-8@euro UTF-8\n",
                                           "en_GB ISO-8859-1\n"};
        for (size_t i = 0; i < ARRAY_SIZE(given); i++) {
                struct fixture f = {0};
                setup_inputs(&f, "app");
                free(f.host.locale);
                f.host.locale = xstrdup(given[i]);
                run_plan(&f, OS_BOOKWORM);
                const char *t = file_text(&f, PART_ROOT, "/etc/locale.gen");
                if (!strstr(t, want[i]))
                        fail_msg("%s: locale.gen is\n%s", given[i], t);
                /* LANG the same: raspi-config (cloud-init's locale module
                 * on trixie) finds only that spelling in SUPPORTED */
                _cleanup_free_ char *lang = xasprintf("LANG=%.*s\n", (int)strcspn(want[i], " "), want[i]);
                assert_string_equal(file_text(&f, PART_ROOT, "/etc/default/locale"), lang);
                teardown_inputs(&f);
        }
}

/* With the base's lists at hand, a locale, Wi-Fi country or keymap it does
 * not know is refused before anything is written, in one line naming it; the
 * locale.gen entry takes SUPPORTED's charmap. */
static void test_host_checked_against_base(void **state) {
        static const struct {
                const char *locale, *country, *want;
        } cases[] = {
                {"en_UK.UTF-8", NULL, "--locale: locale 'en_UK.UTF-8' is not one this base can compile"},
                {"en_GB.utf8", "FR", "--wifi-country: Wi-Fi country 'FR' is not an ISO 3166 code (see the base's "
                                     "/usr/share/zoneinfo/iso3166.tab)"},
                {"de_DE@euro", "DE", NULL},
                {"C.UTF-8", "GB", NULL},
                {"en_GB.UTF-8", "GB", "--keymap: keymap 'uk' is not a keyboard layout this base knows"},
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct fixture f = {0};
                setup_inputs(&f, "app");
                f.base.locales_supported = xstrdup("C.UTF-8 UTF-8\nde_DE@euro ISO-8859-15\nen_GB.UTF-8 UTF-8\n");
                f.base.iso3166 = xstrdup("# comment\nDE\tGermany\nGB\tBritain (UK)\n");
                /* "uk" only as a model and a variant: not a layout */
                f.base.xkb_rules = xstrdup("! model\n  uk              UK model\n\n! layout\n  us              English (US)\n"
                                           "  gb              English (UK)\n\n! variant\n  uk              gb: UK\n");
                free(f.host.keymap);
                f.host.keymap = xstrdup(i == 4 ? "uk" : "gb");
                free(f.host.locale);
                f.host.locale = xstrdup(cases[i].locale);
                f.host.wifi_country = cases[i].country ? xstrdup(cases[i].country) : NULL;
                int r;
                unsigned errors;
                _cleanup_free_ char *out = edits_captured(&f, OS_BOOKWORM, &r, &errors);
                if (cases[i].want) {
                        assert_int_equal(r, -EINVAL);
                        assert_int_equal(errors, 1);
                        if (!strstr(out, cases[i].want))
                                fail_msg("case %zu: %s", i, out);
                } else {
                        assert_int_equal(r, 0);
                        assert_int_equal(errors, 0);
                        if (i == 2)
                                assert_non_null(strstr(file_text(&f, PART_ROOT, "/etc/locale.gen"),
                                                       "de_DE@euro ISO-8859-15\n"));
                }
                teardown_inputs(&f);
        }
}

/* Key options hold double quotes; cloud-init drops all of user-data when
 * it does not parse. */
static void test_key_options_quoted_in_user_data(void **state) {
        struct fixture f = {0};
        setup_inputs(&f, "app");
        free(f.host.ssh_keys[0]);
        f.host.ssh_keys[0] = xstrdup("from=\"10.0.0.0/8\",no-pty ssh-ed25519 AAAAC3Nza it's-me");
        run_plan(&f, OS_TRIXIE);
        const char *t = file_text(&f, PART_BOOT, "/user-data");
        assert_non_null(strstr(t, "      - 'from=\"10.0.0.0/8\",no-pty ssh-ed25519 AAAAC3Nza it''s-me'\n"));
        teardown_inputs(&f);
}

/* The drop-in that orders cloud-init's local stage after the boot
 * partition's mount: trixie with cloud-init only. */
static void test_cloud_init_waits_for_boot_partition(void **state) {
        static const char dropin[] = "/etc/systemd/system/cloud-init-local.service.d/dimimage-seed.conf";
        static const struct {
                enum os_flavour os;
                bool cloud_init, want;
        } cases[] = {{OS_TRIXIE, true, true}, {OS_TRIXIE, false, false}, {OS_BOOKWORM, true, false}};
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct fixture f = {0};
                setup_inputs(&f, "app");
                f.base.cloud_init_local = cases[i].cloud_init;
                run_plan(&f, cases[i].os);
                const struct payload_entry *e = payload_find(&f.payload, PART_ROOT, dropin);
                if (!cases[i].want) {
                        assert_null(e);
                } else {
                        assert_non_null(strstr(file_text(&f, PART_ROOT, dropin), "\n[Unit]\nRequiresMountsFor=/boot/firmware\n"));
                        assert_int_equal(e->mode, 0644);
                }
                teardown_inputs(&f);
        }
}

/* Bookworm: what the image's rename-user -f -s did is undone, as
 * userconf-pi's cancel-rename does. */
static void test_bookworm_console_login_back(void **state) {
        struct fixture f = {0};
        setup_inputs(&f, "app");
        run_plan(&f, OS_BOOKWORM);
        assert_string_equal(
                entry(&f, PART_ROOT, "/etc/systemd/system/getty.target.wants/getty@tty1.service", ENTRY_SYMLINK)->target,
                "/lib/systemd/system/getty@.service");
        entry(&f, PART_ROOT, "/etc/ssh/sshd_config.d/rename_user.conf", ENTRY_UNLINK);
        teardown_inputs(&f);
}

/* Trixie: the same, only when the base shows rename-user's marks. */
static void test_trixie_rename_undone_when_done(void **state) {
        for (int pending = 0; pending < 2; pending++) {
                struct fixture f = {0};
                setup_inputs(&f, "app");
                f.base.rename_pending = pending;
                run_plan(&f, OS_TRIXIE);
                const struct payload_entry *mask = payload_find(&f.payload, PART_ROOT, "/etc/systemd/system/userconfig.service");
                const struct payload_entry *banner = payload_find(&f.payload, PART_ROOT, "/etc/ssh/sshd_config.d/rename_user.conf");
                if (pending) {
                        assert_non_null(mask);
                        assert_string_equal(mask->target, "/dev/null");
                        assert_non_null(banner);
                        assert_int_equal(banner->type, ENTRY_UNLINK);
                } else {
                        assert_null(mask);
                        assert_null(banner);
                }
                teardown_inputs(&f);
        }
}

/* keyboard-setup.sh prefers console-setup's cache to /etc/default/keyboard */
static void test_keymap_drops_the_cache(void **state) {
        struct fixture f = {0};
        setup_inputs(&f, "app");
        f.host.keymap = xstrdup("de");
        run_plan(&f, OS_BOOKWORM);
        assert_non_null(strstr(file_text(&f, PART_ROOT, "/etc/default/keyboard"), "XKBLAYOUT=\"de\""));
        entry(&f, PART_ROOT, "/etc/console-setup/cached_setup_keyboard.sh", ENTRY_UNLINK);
        teardown_inputs(&f);
}

/* A boot partition that sets up its first boot some other way (Raspberry
 * Pi Imager, custom.toml, userconf.txt) is refused in one line naming the
 * file: built over, the two would fight at first boot, or dimimage's files
 * would silently drop the other's user and Wi-Fi.  Raspberry Pi OS's own
 * comment-only seed files and a built image's own are not. */
static void test_customised_boot_refused(void **state) {
        static const char stock_user_data[] = "#cloud-config\n\n# This is the user-data configuration file\n"
                                              "#hostname: raspberrypi\n#users:\n#- default\n";
        static const char stock_network[] = "# netplan-compatible configuration\n\n#network:\n#  version: 2\n";
        static const struct {
                enum os_flavour os;
                bool user;
                const char *cmdline_extra, *user_data, *network_config, *custom, *want;
        } cases[] = {
                {OS_BOOKWORM, true, " systemd.run=/boot/firstrun.sh systemd.run_success_action=reboot", NULL, NULL, NULL,
                 "boot partition: cmdline.txt runs /boot/firstrun.sh at first boot (systemd.run="},
                {OS_BOOKWORM, false, " systemd.run=/boot/firstrun.sh", NULL, NULL, NULL, "runs /boot/firstrun.sh"},
                {OS_TRIXIE, true, NULL, NULL, NULL, "rpi-preseed.toml", "boot partition: rpi-preseed.toml"},
                {OS_BOOKWORM, true, NULL, NULL, NULL, "custom.toml", "boot partition: custom.toml would be applied"},
                {OS_TRIXIE, true, NULL, NULL, NULL, "custom.toml", NULL},
                {OS_BOOKWORM, true, NULL, NULL, NULL, "userconf.txt", "boot partition: userconf.txt would be ignored"},
                {OS_BOOKWORM, false, NULL, NULL, NULL, "userconf.txt", NULL},
                {OS_TRIXIE, true, " ds=nocloud;i=rpi-imager-1", "#cloud-config\nusers:\n- name: bob\n", NULL, NULL,
                 "boot partition: user-data holds cloud-init settings"},
                {OS_TRIXIE, false, NULL, "\xEF\xBB\xBF#cloud-config\r\n  hostname: x\r\n", NULL, NULL,
                 "user-data holds cloud-init settings"},
                {OS_TRIXIE, true, NULL, stock_user_data, "network:\n  version: 2\n", NULL,
                 "boot partition: network-config holds cloud-init settings"},
                {OS_TRIXIE, true, NULL, stock_user_data, stock_network, NULL, NULL},
                {OS_TRIXIE, true, NULL, "#cloud-config\n# Written by dimimage. The root filesystem ...\nhostname: 'a'\n",
                 "network:\n  config: disabled\n", NULL, NULL},
                {OS_BOOKWORM, true, NULL, "#cloud-config\nhostname: x\n", NULL, NULL, NULL},
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct fixture f = {0};
                setup_inputs(&f, "app");
                if (!cases[i].user) {
                        free(f.host.user);
                        f.host.user = NULL;
                }
                if (cases[i].cmdline_extra) {
                        free(f.base.cmdline_txt);
                        f.base.cmdline_txt = xasprintf("%.*s%s\n", (int)strcspn(cmdline_txt, "\n"), cmdline_txt,
                                                       cases[i].cmdline_extra);
                }
                f.base.user_data = cases[i].user_data ? xstrdup(cases[i].user_data) : NULL;
                f.base.network_config = cases[i].network_config ? xstrdup(cases[i].network_config) : NULL;
                f.base.boot_custom = cases[i].custom;
                int r;
                unsigned errors;
                _cleanup_free_ char *out = edits_captured(&f, cases[i].os, &r, &errors);
                if (cases[i].want) {
                        assert_int_equal(r, -EINVAL);
                        assert_int_equal(errors, 1);
                        if (!strstr(out, cases[i].want) || !strstr(out, "base.img: "))
                                fail_msg("case %zu: %s", i, out);
                } else if (r != 0 || errors) {
                        fail_msg("case %zu refused: %s", i, out);
                }
                teardown_inputs(&f);
        }
}

/* A built image built again: dimimage's config.txt block is replaced where
 * it stands; what was added after it by hand is kept, after its [all]. */
static void test_config_txt_rebuilt_keeps_additions(void **state) {
        static const char *const tails[] = {"", "dtoverlay=i2c-rtc,ds3231\n[pi4]\narm_boost=0\n"};
        for (size_t i = 0; i < ARRAY_SIZE(tails); i++) {
                struct fixture f = {0};
                setup_inputs(&f, "app");
                free(f.base.config_txt);
                f.base.config_txt = xasprintf("dtparam=audio=on\n[cm4]\notg_mode=1\n# dimimage: headless tuning "
                                              "(profile 'observability')\r\n[all]\r\ngpu_mem=64\r\n%s",
                                              tails[i]);
                run_plan(&f, OS_BOOKWORM);
                _cleanup_free_ char *want =
                        xasprintf("dtparam=audio=on\n[cm4]\notg_mode=1\n# dimimage: headless tuning (profile 'app')\n"
                                  "[all]\ngpu_mem=%u\n%s",
                                  f.profile.gpu_mem_mb, tails[i]);
                assert_string_equal(file_text(&f, PART_BOOT, "/config.txt"), want);
                teardown_inputs(&f);
        }
}

int main(void) {
        log_level = LOG_QUIET;
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_app_bookworm_golden), cmocka_unit_test(test_app_trixie_golden),
                cmocka_unit_test(test_env_is_secret_and_root_only), cmocka_unit_test(test_existing_user_is_reused),
                cmocka_unit_test(test_trixie_rename_undone_when_done),
                cmocka_unit_test(test_new_user_home_from_skel),
                cmocka_unit_test(test_skel_not_over_a_home),
                cmocka_unit_test(test_detect_os), cmocka_unit_test(test_uuid_deterministic),
                cmocka_unit_test(test_wifi_turns_the_radio_on), cmocka_unit_test(test_system_account_refused),
                cmocka_unit_test(test_first_user_without_login_is_reused),
                cmocka_unit_test(test_password_change_day_not_zero),
                cmocka_unit_test(test_new_user_subids),
                cmocka_unit_test(test_locale_utf8_spellings), cmocka_unit_test(test_host_checked_against_base),
                cmocka_unit_test(test_key_options_quoted_in_user_data),
                cmocka_unit_test(test_cloud_init_waits_for_boot_partition),
                cmocka_unit_test(test_bookworm_console_login_back), cmocka_unit_test(test_keymap_drops_the_cache),
                cmocka_unit_test(test_customised_boot_refused), cmocka_unit_test(test_config_txt_rebuilt_keeps_additions),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
