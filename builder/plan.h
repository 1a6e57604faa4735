/* SPDX-License-Identifier: GPL-3.0-or-later */
/* plan: inputs (profile, environment, host settings, the base's own files)
 * -> payload.  Pure: no image is opened here, so every rule is unit-tested
 * with golden files (tests/unit/test_plan.c). */
#pragma once

#include <stdbool.h>
#include <time.h>

#include "dotenv.h"
#include "host.h"
#include "payload.h"
#include "profile.h"

struct appsource_cache;

enum os_flavour { OS_UNKNOWN, OS_BOOKWORM, OS_TRIXIE };

/* What a new user's home starts with, as useradd -m copies it: a
 * directory, regular file or symlink of the base's /etc/skel. */
struct skel_entry {
        char *path;     /* below /etc/skel: ".bashrc", ".config/x" */
        uint32_t mode;  /* full st_mode */
        uint8_t *data;  /* a file's */
        size_t len;
        char *target;   /* a symlink's */
};

/* Files read from the base image before planning edits to them (NUL-
 * terminated text, NULL when the base lacks them). */
struct base_files {
        char *os_release;
        char *passwd, *group, *shadow, *gshadow;
        char *subuid, *subgid; /* subordinate ids, as useradd hands them out */
        /* why the first of passwd, group, shadow is NULL: "is missing", "is a
         * symbolic link", ... (static text) */
        const char *accounts_why;
        const char *accounts_path;
        /* a 32-bit userland: arm-linux-gnueabihf libraries and no aarch64 ones */
        bool armhf;
        /* cloud-init-local.service is installed: its local stage reads the
         * NoCloud seed on the boot partition */
        bool cloud_init_local;
        /* pi-gen's `rename-user -f -s` was run on the base: its sshd banner
         * or an enabled userconfig.service is there (every bookworm image;
         * a trixie one may have them too) */
        bool rename_pending;
        char *hosts;
        char *config_txt;   /* boot partition */
        char *cmdline_txt;  /* boot partition */
        /* boot partition: cloud-init's seed, which trixie ships as comments
         * only and dimimage rewrites */
        char *user_data, *network_config;
        /* the first boot-partition file present by which something else
         * sets up the first boot (custom.toml, rpi-preseed.toml, userconf.txt
         * ...), static text; NULL when none is */
        const char *boot_custom;
        char *locale_gen;
        char *locales_supported; /* /usr/share/i18n/SUPPORTED: what locale-gen can compile */
        char *iso3166;           /* /usr/share/zoneinfo/iso3166.tab: the country codes */
        char *xkb_rules;         /* /usr/share/X11/xkb/rules/evdev.lst: the keyboard layouts */
        char *nm_state;     /* /var/lib/NetworkManager/NetworkManager.state */
        struct skel_entry *skel; /* /etc/skel's tree, a directory before its contents */
        size_t nskel;
        char **homes;       /* the names in /home: a new user's home there is left alone */
        size_t nhomes;
        /* PLAN_MANIFEST is there: dimimage built this image already */
        bool built;
        char *manifest; /* its text, when it is a readable text file */
};

struct plan_input {
        const struct profile *profile;
        const struct env *env;               /* merged and validated */
        const struct host_settings *host;    /* finalized */
        const char *data_dir;                /* where overlays/ live */
        const char *source;                  /* --source DIR|ARCHIVE or NULL */
        const char *services;                /* compose_started_services() of the role's files, or NULL */
        struct appsource_cache *source_cache; /* fleet: archives read once for every host, or NULL */
        time_t build_time;
        /* known after the base is extracted; used by plan_base_edits */
        enum os_flavour os;
        const char *base_name;
        const char *base_sha256;
        /* The base's sha256 is still being computed (source_opts.sum_later):
         * the manifest gets PLAN_SUM_PLACEHOLDER, of the same length, at
         * payload.pending_sum_at, for the commit to fill in.  Nothing else
         * may depend on that sum. */
        bool base_sha256_pending;
        const char *disk_id;
        const struct base_files *base;
        const char *fleet_name;              /* NULL for single builds */
        bool allow_built_base;               /* --allow-built-base */
};

#define PLAN_MANIFEST "/etc/dimimage/manifest.json"
#define PLAN_SUM_PLACEHOLDER "0000000000000000000000000000000000000000000000000000000000000000"

#define NM_STATE "/var/lib/NetworkManager/NetworkManager.state"
#define DIMDIM_HOME "/opt/dimdim-health"
#define DIMDIM_ENV DIMDIM_HOME "/.env"

/* Everything that does not depend on the base's own files. */
int plan_payload(const struct plan_input *in, struct payload *out);
/* Edits of the base's files (users, hosts, config.txt, cmdline.txt) and the
 * manifest. */
int plan_base_edits(const struct plan_input *in, struct payload *out);

enum os_flavour plan_detect_os(const char *os_release);
const char *os_flavour_name(enum os_flavour os);
/* Value of KEY in os-release text (unquoted), or NULL; caller frees. */
char *os_release_get(const char *os_release, const char *key);
/* Deterministic RFC 4122-shaped UUID from a seed string. */
void plan_uuid(const char *seed, char out[37]);
