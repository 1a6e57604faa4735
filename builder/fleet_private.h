/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A fleet file as fleet_file.c reads it, and the wiring of each host from
 * the others, for fleet.c, which builds them. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "appsource.h"
#include "dotenv.h"
#include "host.h"
#include "profile.h"

/* What the file's top level gives every host and a host entry gives its
 * own host: the same keys, the entry's over the top level's. */
struct fleet_layer {
        struct host_settings hs;        /* user, ssh_keys, wifi, ... */
        char **sets;                    /* env: map as KEY=VALUE */
        size_t nsets;
        unsigned *set_lines;            /* each one's line */
        char **env_files;               /* env_files:, relative to the file */
        size_t nenv_files;
        char *source;                   /* source:, relative to the file */
};

struct fleet_host {
        char *name, *role, *address;
        unsigned line;
        struct fleet_layer own;         /* the entry's keys */
        struct host_settings settings;  /* merged and finalized (settle_host), for its build */
        struct profile profile;
        struct env final_env;
        struct env generated;
        struct env dropped;     /* shared keys its role does not use */
        char *label;
        char *out;
        bool built;
};

struct fleet {
        const char *file;
        char *name;
        unsigned long long prefix;
        char *gateway;
        char *gateway_where, *dns_where; /* "FILE:LINE" of network's keys, or NULL */
        char **dns;
        size_t ndns;
        char *format;           /* "img", "img.xz", "img.zst", "img.gz" */
        struct fleet_layer all;         /* the top level's keys: every host's */
        struct fleet_host *hosts;
        size_t nhosts;
        struct dotenv_text *env_texts; /* every env file's, read once (read_env_files) */
        size_t nenv_texts;
        struct appsource_cache sources; /* --source archives, read once for every host */
};

/* Reads and checks file (or text, len when text is not NULL: the fuzz
 * target's) into f, zeroed by the caller and fleet_free'd by it even on
 * failure: known keys, network, hosts, each name and address used once.
 * Paths in it are taken relative to file's directory; the files they name
 * are not read here.  Logs one error with file and line, -errno. */
int fleet_parse(const char *file, const char *text, size_t len, struct fleet *f);
void fleet_free(struct fleet *f);

/* Every ${role.…} a host's profile refers to names exactly one host of the
 * fleet (the profiles loaded), so that each host's wiring has one source:
 * logs with the host's line, -errno. */
int fleet_check_wiring(const struct fleet *f);

/* Host h's values derived from the other hosts (its profile's fleet:
 * templates) into *derived; -EAGAIN while a host they come from is not
 * built yet. */
int fleet_derive(struct fleet *f, struct fleet_host *h, struct env *derived);

void fleet_push_line(unsigned **lines, size_t n, unsigned line);
