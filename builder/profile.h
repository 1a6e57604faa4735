/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Role profiles (profiles/<role>.yml, schema in docs/profiles.md), read with
 * libyaml; errors give file and line. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct profile_env {
        char *key;
        char *def;          /* default value, NULL if none */
        bool required;
        bool secret;        /* checked for weakness, never printed */
        bool generate;      /* generated when absent */
        unsigned length;    /* generated length (default 32) */
        char *description;
        /* Fleet builds fill this key from another host: a template of
         * ${ROLE.host} (that host's address) and ${ROLE.env.KEY} (a value of
         * its environment), e.g. "http://${observability.host}:5080".
         * NULL when the key is not wired by fleets. */
        char *fleet;
        /* Printed as a warning when the key ends up without a value: for an
         * optional key whose absence the build can live with but the Pi
         * will feel.  NULL when none. */
        char *warn_unset;
        /* "url": the value must be an http(s) URL with a host, checked
         * before the build (a placeholder such as http://<Pi2-IP>:5080 from
         * the guide's .env would otherwise reach the Pi). */
        bool url;
        unsigned line;
};

struct profile_port {
        unsigned port;
        char *service;
        char *proto;        /* "tcp" */
};

struct profile {
        char *path;
        char *name;         /* role name */
        char sha256[65];    /* of the profile file */
        char *description;
        char **compose;     /* compose files, relative to the overlay: "deploy/docker-compose.app.yml" */
        unsigned *compose_lines; /* each one's line, for the build's messages */
        size_t ncompose;
        char **overlays;    /* overlay directory names under overlays/, in order: "common", "app" */
        unsigned *overlay_lines;
        size_t noverlays;
        struct profile_env *env;
        size_t nenv;
        struct profile_port *ports;
        size_t nports;
        uint64_t memory_min_mb;         /* refuse below */
        uint64_t memory_recommended_mb; /* warn below */
        bool log_shipping;              /* app: ships logs to OpenObserve */
        /* headless tuning, overridable */
        char *journald_max_use;         /* "64M" */
        char *docker_log_max_size;      /* "10m" */
        unsigned docker_log_max_file;   /* 3 */
        unsigned gpu_mem_mb;            /* 16 */
};

/* Read and validate a profile.  Every problem is logged once with
 * file:line; -errno.  out is zeroed first and safe to profile_free() on
 * failure. */
int profile_load(const char *path, struct profile *out);
/* The same from memory; name is used in messages and as out->path. */
int profile_parse(const char *name, const char *text, size_t len, struct profile *out);
/* The profile file role names (profile_path_for), in *path (caller frees),
 * when it is there.  Else one error at where (and line; prefixed by label
 * when not NULL) listing the available roles: -unknown_err for a misspelt
 * role, -ENOENT for a profile file that is missing or no profiles at all. */
int profile_find(const char *role, const char *where, unsigned line, const char *label, int unknown_err,
                 char **path);
void profile_free(struct profile *p);
const struct profile_env *profile_env_find(const struct profile *p, const char *key);

/* Where profiles/ and overlays/ live: $DIMIMAGE_DATADIR, else beside the
 * binary's source tree (build/../), else the installed DATADIR. */
const char *data_dir(void);
/* Whether role names a profile file (a path, or a .yml/.yaml name) rather
 * than a role of data_dir()/profiles. */
bool profile_names_file(const char *role);
/* data_dir()/profiles/<role>.yml, or role itself if it names a file. */
char *profile_path_for(const char *role);
/* Sorted role names found in data_dir()/profiles (*.yml), NULL-terminated;
 * free with profile_roles_free(). */
char **profile_list_roles(size_t *n);
void profile_roles_free(char **roles);
/* Those roles as "app, observability, ..." (caller frees); NULL when there
 * are none. */
char *profile_roles_text(void);
/* Why there are none, for an error: "no profiles in DIR/profiles
 * (DIMIMAGE_DATADIR=DIR): No such file or directory" (caller frees). */
char *profile_none_text(void);
