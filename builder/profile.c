/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Role profiles: profiles/<role>.yml -> struct profile.
 *
 * The YAML is loaded by yamltree (which refuses aliases, anchors, tags, deep
 * nesting, huge scalars and duplicate keys, which a profile never needs and
 * which make parsers slow or unsafe), then walked against the schema in
 * docs/profiles.md.  Unknown keys are errors: a typo such as
 * "requird: true" must not silently turn a required secret into an optional
 * one. */
#include "profile.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"
#include "log.h"
#include "yamltree.h"

#define GENERATE_DEFAULT_LENGTH 32

#ifndef DIMIMAGE_DATADIR
#define DIMIMAGE_DATADIR "/usr/local/share/dimimage"
#endif

/* ---- schema helpers ---------------------------------------------------- */

static bool valid_role_name(const char *s) {
        if (!*s || strlen(s) > 64 || !(islower((unsigned char)*s) || isdigit((unsigned char)*s)))
                return false;
        for (; *s; s++)
                if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '-')
                        return false;
        return true;
}

static bool valid_env_key(const char *s) {
        if (!*s || strlen(s) > 128 || !(isalpha((unsigned char)*s) || *s == '_'))
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char)*s) && *s != '_')
                        return false;
        return true;
}

/* A relative path inside the tree: no leading '/', no "." or ".." or empty
 * components, printable, so it can never climb out of its directory. */
static bool valid_rel_path(const char *s) {
        if (!*s || *s == '/' || strlen(s) > 255)
                return false;
        for (const char *p = s; *p; p++)
                if (!isalnum((unsigned char)*p) && !strchr("._-/", *p))
                        return false;
        char *copy = xstrdup(s), *save = NULL;
        bool ok = !str_has_suffix(s, "/") && !strstr(s, "//");
        for (char *t = strtok_r(copy, "/", &save); ok && t; t = strtok_r(NULL, "/", &save))
                if (!strcmp(t, ".") || !strcmp(t, ".."))
                        ok = false;
        free(copy);
        return ok;
}

/* "64M", "1G", "500000": digits then one optional unit from units. */
static bool valid_size(const char *s, const char *units) {
        size_t d = strspn(s, "0123456789");
        if (d == 0 || d > 12)
                return false;
        return s[d] == '\0' || (s[d + 1] == '\0' && strchr(units, s[d]));
}

/* ${ROLE.host} and ${ROLE.env.KEY}, nothing else with a '$'. */
static bool valid_fleet_template(const char *s) {
        while ((s = strchr(s, '$'))) {
                if (s[1] != '{')
                        return false;
                const char *end = strchr(s, '}');
                if (!end)
                        return false;
                _cleanup_free_ char *ref = xstrndup(s + 2, (size_t)(end - s - 2));
                char *dot = strchr(ref, '.');
                if (!dot)
                        return false;
                *dot = '\0';
                const char *rest = dot + 1;
                if (!valid_role_name(ref))
                        return false;
                if (strcmp(rest, "host") != 0 && !(str_has_prefix(rest, "env.") && valid_env_key(rest + 4)))
                        return false;
                s = end + 1;
        }
        return true;
}

static int get_string_list(const char *file, const char *key, const struct ynode *n, bool (*valid)(const char *),
                           const char *what, char ***out, unsigned **lines, size_t *nout) {
        int rc = ynode_expect(file, key, n, Y_SEQ);
        if (rc < 0)
                return rc;
        if (n->n == 0)
                return log_error_at(EINVAL, file, n->line, "%s must list at least one entry", key);
        char **v = xcalloc(n->n, sizeof(*v));
        for (size_t i = 0; i < n->n; i++) {
                _cleanup_free_ char *where = xasprintf("%s[%zu]", key, i);
                rc = ynode_string(file, where, n->items[i], &v[i]);
                if (rc >= 0 && !valid(v[i]))
                        rc = log_error_at(EINVAL, file, n->items[i]->line, "%s: '%s' is not a valid %s", where, v[i],
                                          what);
                for (size_t j = 0; rc >= 0 && j < i; j++)
                        if (!strcmp(v[j], v[i]))
                                rc = log_error_at(EINVAL, file, n->items[i]->line, "%s: '%s' is listed twice", where,
                                                  v[i]);
                if (rc < 0) {
                        for (size_t j = 0; j <= i; j++)
                                free(v[j]);
                        free(v);
                        return rc;
                }
        }
        *lines = xcalloc(n->n, sizeof(**lines));
        for (size_t i = 0; i < n->n; i++)
                (*lines)[i] = n->items[i]->line;
        *out = v;
        *nout = n->n;
        return 0;
}

/* Numbers in profiles are bounded well below 2^32; the struct keeps them in
 * its own types. */
static int get_uint(const char *file, const char *what, const struct ynode *n, unsigned long long min,
                    unsigned long long max, uint64_t *out) {
        unsigned long long v = 0;
        int rc = ynode_uint_range(file, what, n, min, max, &v);
        if (rc >= 0)
                *out = v;
        return rc;
}

static bool valid_overlay_name(const char *s) {
        return valid_rel_path(s) && !strchr(s, '/');
}

static bool valid_compose_path(const char *s) {
        return valid_rel_path(s) && (str_has_suffix(s, ".yml") || str_has_suffix(s, ".yaml"));
}

/* ---- sections ---------------------------------------------------------- */

static int parse_env_entry(const char *file, const char *key, unsigned key_line, const struct ynode *v,
                           struct profile_env *e) {
        static const char *const keys[] = {"required", "secret", "generate", "length", "default",
                                           "description", "fleet", "warn_unset", "format", NULL};
        e->key = xstrdup(key);
        e->line = key_line;
        e->length = GENERATE_DEFAULT_LENGTH;
        _cleanup_free_ char *where = xasprintf("environment.%s", e->key);
        if (!valid_env_key(e->key))
                return log_error_at(EINVAL, file, key_line, "%s: not a valid variable name (letters, digits, _)",
                                    where);
        if (ynode_is_null(v))
                return 0; /* "KEY:" alone declares an optional key */
        int rc = ynode_expect(file, where, v, Y_MAP);
        if (rc < 0)
                return rc;
        rc = ynode_check_keys(file, where, v, keys);
        if (rc < 0)
                return rc;
        const struct ynode *length_node = NULL;
        for (size_t i = 0; i < v->n; i++) {
                const char *name = v->keys[i];
                const struct ynode *val = v->items[i];
                _cleanup_free_ char *w = xasprintf("%s: '%s'", where, name);
                if (!strcmp(name, "required"))
                        rc = ynode_bool(file, w, val, &e->required);
                else if (!strcmp(name, "secret"))
                        rc = ynode_bool(file, w, val, &e->secret);
                else if (!strcmp(name, "generate"))
                        rc = ynode_bool(file, w, val, &e->generate);
                else if (!strcmp(name, "length")) {
                        uint64_t len = 0;
                        rc = get_uint(file, w, val, 16, 256, &len);
                        e->length = (unsigned)len;
                        length_node = val;
                } else if (!strcmp(name, "default")) {
                        /* Any scalar, even an empty one: "" is a real default. */
                        if (val->kind != Y_SCALAR)
                                rc = log_error_at(EINVAL, file, val->line, "%s must be a string", w);
                        else
                                e->def = xstrdup(ynode_is_null(val) ? "" : val->scalar);
                } else if (!strcmp(name, "description"))
                        rc = ynode_string(file, w, val, &e->description);
                else if (!strcmp(name, "warn_unset"))
                        rc = ynode_string(file, w, val, &e->warn_unset);
                else if (!strcmp(name, "format")) {
                        _cleanup_free_ char *f = NULL;
                        rc = ynode_string(file, w, val, &f);
                        if (rc >= 0 && strcmp(f, "url"))
                                rc = log_error_at(EINVAL, file, val->line, "%s: the only format is 'url'", w);
                        e->url = rc >= 0;
                }
                else if (!strcmp(name, "fleet")) {
                        rc = ynode_string(file, w, val, &e->fleet);
                        if (rc >= 0 && !valid_fleet_template(e->fleet))
                                rc = log_error_at(EINVAL, file, val->line,
                                                  "%s: only ${ROLE.host} and ${ROLE.env.KEY} may be used", w);
                }
                if (rc < 0)
                        return rc;
        }
        if (length_node && !e->generate)
                return log_error_at(EINVAL, file, length_node->line, "%s: 'length' needs 'generate: true'", where);
        if (e->warn_unset && (e->required || e->generate || e->def))
                return log_error_at(EINVAL, file, v->line,
                                    "%s: 'warn_unset' is for an optional key with no default and nothing generated",
                                    where);
        if (e->generate && e->def)
                return log_error_at(EINVAL, file, v->line, "%s: 'generate' and 'default' exclude each other", where);
        /* A default shipped in a profile is public: it cannot be a secret. */
        if (e->secret && e->def && *e->def)
                return log_error_at(EINVAL, file, v->line, "%s: a secret must not have a default", where);
        return 0;
}

static int parse_environment(const char *file, const struct ynode *n, struct profile *p) {
        int rc = ynode_expect(file, "environment", n, Y_MAP);
        if (rc < 0)
                return rc;
        p->env = xcalloc(n->n + 1, sizeof(*p->env));
        for (size_t i = 0; i < n->n; i++) {
                rc = parse_env_entry(file, n->keys[i], n->key_lines[i], n->items[i], &p->env[p->nenv++]);
                if (rc < 0)
                        return rc;
        }
        return 0;
}

static int parse_ports(const char *file, const struct ynode *n, struct profile *p) {
        static const char *const keys[] = {"port", "service", "proto", NULL};
        int rc = ynode_expect(file, "ports", n, Y_SEQ);
        if (rc < 0)
                return rc;
        p->ports = xcalloc(n->n + 1, sizeof(*p->ports));
        for (size_t i = 0; i < n->n; i++) {
                const struct ynode *item = n->items[i];
                struct profile_port *pp = &p->ports[p->nports++];
                _cleanup_free_ char *where = xasprintf("ports[%zu]", i);
                rc = ynode_check_keys(file, where, item, keys);
                if (rc < 0)
                        return rc;
                bool have_port = false;
                for (size_t j = 0; j < item->n; j++) {
                        const char *name = item->keys[j];
                        const struct ynode *val = item->items[j];
                        _cleanup_free_ char *w = xasprintf("%s.%s", where, name);
                        if (!strcmp(name, "port")) {
                                uint64_t port = 0;
                                rc = get_uint(file, w, val, 1, 65535, &port);
                                pp->port = (unsigned)port;
                                have_port = true;
                        } else if (!strcmp(name, "service"))
                                rc = ynode_string(file, w, val, &pp->service);
                        else {
                                rc = ynode_string(file, w, val, &pp->proto);
                                if (rc >= 0 && strcmp(pp->proto, "tcp") != 0 && strcmp(pp->proto, "udp") != 0)
                                        rc = log_error_at(EINVAL, file, val->line, "%s must be tcp or udp", w);
                        }
                        if (rc < 0)
                                return rc;
                }
                if (!have_port || !pp->service)
                        return log_error_at(EINVAL, file, item->line, "%s needs 'port' and 'service'", where);
                if (!pp->proto)
                        pp->proto = xstrdup("tcp");
                for (size_t j = 0; j + 1 < p->nports; j++)
                        if (p->ports[j].port == pp->port && !strcmp(p->ports[j].proto, pp->proto))
                                return log_error_at(EINVAL, file, item->line, "%s: port %u/%s is listed twice", where,
                                                    pp->port, pp->proto);
        }
        return 0;
}

static int parse_memory(const char *file, const struct ynode *n, struct profile *p) {
        static const char *const keys[] = {"minimum_mb", "recommended_mb", NULL};
        int rc = ynode_check_keys(file, "memory", n, keys);
        if (rc < 0)
                return rc;
        bool have_min = false, have_rec = false;
        for (size_t i = 0; i < n->n; i++) {
                const char *name = n->keys[i];
                _cleanup_free_ char *w = xasprintf("memory.%s", name);
                bool is_min = !strcmp(name, "minimum_mb");
                rc = get_uint(file, w, n->items[i], 64, 1024ULL * 1024,
                              is_min ? &p->memory_min_mb : &p->memory_recommended_mb);
                if (rc < 0)
                        return rc;
                *(is_min ? &have_min : &have_rec) = true;
        }
        if (!have_min || !have_rec)
                return log_error_at(EINVAL, file, n->line, "memory needs 'minimum_mb' and 'recommended_mb'");
        if (p->memory_recommended_mb < p->memory_min_mb)
                return log_error_at(EINVAL, file, n->line, "memory.recommended_mb is below memory.minimum_mb");
        return 0;
}

static int parse_tuning(const char *file, const struct ynode *n, struct profile *p) {
        static const char *const keys[] = {"journald_max_use", "docker_log_max_size", "docker_log_max_file",
                                           "gpu_mem_mb", NULL};
        int rc = ynode_check_keys(file, "tuning", n, keys);
        if (rc < 0)
                return rc;
        for (size_t i = 0; i < n->n; i++) {
                const char *name = n->keys[i];
                const struct ynode *val = n->items[i];
                _cleanup_free_ char *w = xasprintf("tuning.%s", name);
                uint64_t u = 0;
                if (!strcmp(name, "journald_max_use")) {
                        rc = ynode_string(file, w, val, &p->journald_max_use);
                        if (rc >= 0 && !valid_size(p->journald_max_use, "KMGT"))
                                rc = log_error_at(EINVAL, file, val->line,
                                                  "%s must be a size like 64M (units K, M, G, T)", w);
                } else if (!strcmp(name, "docker_log_max_size")) {
                        rc = ynode_string(file, w, val, &p->docker_log_max_size);
                        if (rc >= 0 && !valid_size(p->docker_log_max_size, "kmg"))
                                rc = log_error_at(EINVAL, file, val->line, "%s must be a size like 10m (units k, m, g)",
                                                  w);
                } else if (!strcmp(name, "docker_log_max_file")) {
                        rc = get_uint(file, w, val, 1, 100, &u);
                        p->docker_log_max_file = (unsigned)u;
                } else {
                        /* 16 MB is the firmware's minimum; more than 512 is
                         * never what a headless server wants. */
                        rc = get_uint(file, w, val, 16, 512, &u);
                        p->gpu_mem_mb = (unsigned)u;
                }
                if (rc < 0)
                        return rc;
        }
        return 0;
}

static int parse_root(const char *file, const struct ynode *root, struct profile *p) {
        static const char *const keys[] = {"name", "description", "overlays", "compose", "environment", "ports",
                                           "memory", "log_shipping", "tuning", NULL};
        if (root->n == 0)
                return log_error(EINVAL, file, "empty profile");
        int rc = ynode_check_keys(file, "profile", root, keys);
        if (rc < 0)
                return rc;
        static const char *const required[] = {"name", "overlays", "compose", "memory"};
        for (size_t i = 0; i < ARRAY_SIZE(required); i++)
                if (!ynode_get(root, required[i]))
                        return log_error_at(EINVAL, file, root->line, "profile: missing '%s'", required[i]);

        const struct ynode *log_shipping = NULL;
        for (size_t i = 0; i < root->n; i++) {
                const char *name = root->keys[i];
                const struct ynode *v = root->items[i];
                if (!strcmp(name, "name")) {
                        rc = ynode_string(file, "name", v, &p->name);
                        if (rc >= 0 && !valid_role_name(p->name))
                                rc = log_error_at(EINVAL, file, v->line,
                                                  "name: '%s' must be lower-case letters, digits and '-'", p->name);
                } else if (!strcmp(name, "description"))
                        rc = ynode_string(file, "description", v, &p->description);
                else if (!strcmp(name, "overlays")) {
                        rc = get_string_list(file, "overlays", v, valid_overlay_name, "overlay directory name",
                                             &p->overlays, &p->overlay_lines, &p->noverlays);
                        /* without it the image enables units it lacks:
                         * nothing would provision the Pi */
                        bool common = false;
                        for (size_t k = 0; k < p->noverlays; k++)
                                common = common || !strcmp(p->overlays[k], "common");
                        if (rc >= 0 && !common)
                                rc = log_error_at(EINVAL, file, v->line,
                                                  "overlays: common is missing; every role needs it (the first-boot "
                                                  "and stack units and scripts): e.g. [common, app]");
                }
                else if (!strcmp(name, "compose"))
                        rc = get_string_list(file, "compose", v, valid_compose_path,
                                             "compose file (relative .yml path without '..')", &p->compose,
                                             &p->compose_lines, &p->ncompose);
                else if (!strcmp(name, "environment"))
                        rc = parse_environment(file, v, p);
                else if (!strcmp(name, "ports"))
                        rc = parse_ports(file, v, p);
                else if (!strcmp(name, "memory"))
                        rc = parse_memory(file, v, p);
                else if (!strcmp(name, "log_shipping")) {
                        rc = ynode_bool(file, "log_shipping", v, &p->log_shipping);
                        log_shipping = v;
                } else
                        rc = parse_tuning(file, v, p);
                if (rc < 0)
                        return rc;
        }
        /* Shipping logs without saying where to is the "dangling URL" the
         * standalone profile exists to avoid; the reverse is harmless. */
        if (p->log_shipping && !profile_env_find(p, "OPENOBSERVE_URL"))
                return log_error_at(EINVAL, file, log_shipping->line,
                                    "log_shipping: true needs environment.OPENOBSERVE_URL");
        return 0;
}

/* ---- public ------------------------------------------------------------ */

int profile_parse(const char *name, const char *text, size_t len, struct profile *out) {
        memset(out, 0, sizeof(*out));
        out->path = xstrdup(name);
        out->journald_max_use = xstrdup("64M");
        out->docker_log_max_size = xstrdup("10m");
        out->docker_log_max_file = 3;
        out->gpu_mem_mb = 16;
        sha256_hex(text, len, out->sha256);

        struct ynode *root = NULL;
        int rc = yaml_load(name, text, len, &root);
        if (rc < 0)
                return rc;
        rc = parse_root(name, root, out);
        ynode_free(root);
        return rc;
}

int profile_load(const char *path, struct profile *out) {
        memset(out, 0, sizeof(*out));
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int rc = yaml_read_file(path, &text, &len);
        if (rc < 0)
                return rc;
        return profile_parse(path, text, len, out);
}

void profile_free(struct profile *p) {
        if (!p)
                return;
        free(p->path);
        free(p->name);
        free(p->description);
        for (size_t i = 0; i < p->ncompose; i++)
                free(p->compose[i]);
        free(p->compose);
        free(p->compose_lines);
        for (size_t i = 0; i < p->noverlays; i++)
                free(p->overlays[i]);
        free(p->overlays);
        free(p->overlay_lines);
        for (size_t i = 0; i < p->nenv; i++) {
                free(p->env[i].key);
                free(p->env[i].def);
                free(p->env[i].description);
                free(p->env[i].fleet);
                free(p->env[i].warn_unset);
        }
        free(p->env);
        for (size_t i = 0; i < p->nports; i++) {
                free(p->ports[i].service);
                free(p->ports[i].proto);
        }
        free(p->ports);
        free(p->journald_max_use);
        free(p->docker_log_max_size);
        memset(p, 0, sizeof(*p));
}

const struct profile_env *profile_env_find(const struct profile *p, const char *key) {
        for (size_t i = 0; i < p->nenv; i++)
                if (p->env[i].key && !strcmp(p->env[i].key, key))
                        return &p->env[i];
        return NULL;
}

static bool is_data_dir(const char *dir) {
        _cleanup_free_ char *prof = xasprintf("%s/profiles/app.yml", dir);
        _cleanup_free_ char *ov = xasprintf("%s/overlays/common", dir);
        struct stat st;
        return stat(prof, &st) == 0 && S_ISREG(st.st_mode) && stat(ov, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A binary run from its build tree (build/dimimage, build/asan/tests/x)
 * uses the profiles beside it, so tests and development never pick up an
 * older installed copy. */
static char *source_tree_dir(void) {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n <= 0)
                return NULL;
        exe[n] = '\0';
        char *dir = path_dirname(exe);
        for (int up = 0; up <= 3; up++) {
                if (is_data_dir(dir))
                        return dir;
                /* an installed tree, wherever it was installed (DESTDIR, PREFIX) */
                char *share = xasprintf("%s/share/dimimage", dir);
                if (up == 1 && is_data_dir(share)) {
                        free(dir);
                        return share;
                }
                free(share);
                if (!strcmp(dir, "/"))
                        break;
                char *parent = path_dirname(dir);
                free(dir);
                dir = parent;
        }
        free(dir);
        return NULL;
}

const char *data_dir(void) {
        const char *env = getenv("DIMIMAGE_DATADIR");
        if (env && *env)
                return env;
        /* Computed once: the executable does not move while it runs. */
        static char *tree;
        static bool looked;
        if (!looked) {
                tree = source_tree_dir();
                looked = true;
        }
        return tree ? tree : DIMIMAGE_DATADIR;
}

bool profile_names_file(const char *role) {
        return strchr(role, '/') || str_has_suffix(role, ".yml") || str_has_suffix(role, ".yaml");
}

char *profile_path_for(const char *role) {
        if (profile_names_file(role))
                return xstrdup(role);
        return xasprintf("%s/profiles/%s.yml", data_dir(), role);
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

char **profile_list_roles(size_t *n) {
        _cleanup_free_ char *dir = xasprintf("%s/profiles", data_dir());
        char **v = xcalloc(1, sizeof(*v));
        size_t count = 0;
        DIR *d = opendir(dir);
        if (d) {
                struct dirent *de;
                while ((de = readdir(d))) {
                        if (de->d_name[0] == '.' || !str_has_suffix(de->d_name, ".yml"))
                                continue;
                        v = xrealloc(v, (count + 2) * sizeof(*v));
                        v[count++] = xstrndup(de->d_name, strlen(de->d_name) - 4);
                }
                closedir(d);
        }
        v[count] = NULL;
        qsort(v, count, sizeof(*v), cmp_str);
        if (n)
                *n = count;
        return v;
}

void profile_roles_free(char **roles) {
        if (!roles)
                return;
        for (char **r = roles; *r; r++)
                free(*r);
        free(roles);
}

char *profile_roles_text(void) {
        size_t n = 0;
        char **roles = profile_list_roles(&n);
        struct buf b = {0};
        for (size_t i = 0; i < n; i++)
                buf_printf(&b, "%s%s", i ? ", " : "", roles[i]);
        profile_roles_free(roles);
        return (char *)b.data;
}

char *profile_none_text(void) {
        _cleanup_free_ char *dir = xasprintf("%s/profiles", data_dir());
        const char *env = getenv("DIMIMAGE_DATADIR");
        /* the commonest cause: a DIMIMAGE_DATADIR left pointing elsewhere
         * (a moved checkout), so it is named either way */
        _cleanup_free_ char *from = env && *env ? xasprintf("DIMIMAGE_DATADIR=%s", env)
                                                : xstrdup("DIMIMAGE_DATADIR is unset");
        DIR *d = opendir(dir);
        if (!d)
                return xasprintf("no profiles in %s (%s): %s", dir, from, strerror(errno));
        closedir(d);
        return xasprintf("no profiles in %s (%s): no .yml file there", dir, from);
}

int profile_find(const char *role, const char *where, unsigned line, const char *label, int unknown_err,
                 char **path) {
        *path = profile_path_for(role);
        if (access(*path, R_OK) == 0)
                return 0;
        int err = errno;
        free(*path);
        *path = NULL;
        _cleanup_free_ char *roles = profile_roles_text();
        _cleanup_free_ char *none = roles ? NULL : profile_none_text();
        const char *lab = label ? label : "", *sep = label ? ": " : "";
        if (profile_names_file(role))
                return roles ? log_error_at(input_err(-err), where, line,
                                            "%s%sprofile %s: %s; a role is a profile file or one of: %s", lab, sep,
                                            role, strerror(err), roles)
                             : log_error_at(input_err(-err), where, line,
                                            "%s%sprofile %s: %s (and there are no roles either: %s)", lab, sep, role,
                                            strerror(err), none);
        return roles ? log_error_at(unknown_err, where, line, "%s%sunknown role '%s'; available roles: %s", lab, sep,
                                    role, roles)
                     : log_error_at(ENOENT, where, line, "%s%sunknown role '%s': %s", lab, sep, role, none);
}
