/* SPDX-License-Identifier: GPL-3.0-or-later */
/* What a compose file needs, found before anything is written: the
 * variables it references (and which are required), and the host paths its
 * services use (build contexts, Dockerfiles, bind-mount sources, env_files). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

enum compose_ref_kind { REF_PLAIN, REF_DEFAULT, REF_REQUIRED, REF_ALT };

struct compose_var {
        char *name;
        enum compose_ref_kind kind;
        char *arg;      /* default, message or alternative */
        unsigned line;
        bool colon;     /* ":-", ":?", ":+": an empty value counts as unset */
        bool nested;    /* in the argument of vars[outer]: compose evaluates it only when that is used */
        size_t outer;
};

enum compose_path_kind { PATH_BUILD_CONTEXT, PATH_DOCKERFILE, PATH_BIND_MOUNT, PATH_ENV_FILE };

struct compose_path {
        char *service;
        enum compose_path_kind kind;
        char *path;     /* as written, relative to the compose file's directory */
        char *resolved; /* absolute inside the image, normalised */
        unsigned line;
        bool has_vars;  /* path holds ${...}: resolved only by compose_resolve_paths(), unchecked until then */
};

struct compose_info {
        char *file;     /* host path, for messages */
        char **services;
        /* optional[i]: services[i] has profiles, or scale or deploy.replicas
         * 0: a plain `compose up` does not start it */
        bool *optional;
        size_t nservices;
        struct compose_var *vars;
        size_t nvars;
        struct compose_path *paths;
        size_t npaths;
        bool has_build; /* some service builds from source */
        char *dir;      /* directory of image_path: relative paths start here */
};

/* Parse (yamltree) a compose file that will live at image_path inside the
 * image (e.g. /opt/dimdim-health/deploy/docker-compose.app.yml).  Refuses
 * what yamltree refuses: malformed YAML, anchors and aliases (so the common
 * "x-common: &common" / "<<: *common" idiom must be written out), tags
 * (compose's !reset/!override only matter when merging files), duplicate
 * keys, nesting deeper than YAML_MAX_DEPTH, scalars over YAML_MAX_SCALAR,
 * files over YAML_MAX_FILE; and an empty file or a top level that is not a
 * mapping.  Logs file:line, -errno. */
int compose_scan(const char *file, const char *text, size_t len, const char *image_path, struct compose_info *out);
/* The services a plain `compose up` of all n files starts: the union of
 * their names, less those any file makes optional, sorted, space-separated
 * ("" for none).  Caller frees. */
char *compose_started_services(const struct compose_info *ci, size_t n);
/* Check every path exists, through exists(resolved, u).  The first missing
 * one is an error naming the service and the path. */
int compose_check_paths(const struct compose_info *ci, bool (*exists)(const char *resolved, void *u), void *u);
void compose_info_free(struct compose_info *ci);
struct env;
/* Interpolate the paths that hold ${...} with the final environment (logs
 * file:line on a missing required variable) and resolve them, so that
 * compose_check_paths() checks them too; a short-syntax volume that turns
 * out to be a named volume is dropped. */
int compose_resolve_paths(struct compose_info *ci, const struct env *env);
const char *compose_path_kind_name(enum compose_path_kind k);
