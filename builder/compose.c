/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Reads a compose file only as far as we must to know, before writing
 * anything, which variables it needs and which host paths its services use.
 * The YAML goes through yamltree, which refuses hostile input while loading
 * (anchors and aliases, tags, deep nesting, huge scalars or files), so none
 * of it reaches the analysis. */
#include "compose.h"

#include <errno.h>
#include <string.h>

#include "dotenv.h"
#include "log.h"
#include "util.h"
#include "yamltree.h"

/* The value of key in map m, with the line of "key:" (for messages about a
 * value the key lacks); NULL when absent or m is not a map. */
static const struct ynode *map_get_line(const struct ynode *m, const char *key, unsigned *key_line) {
        if (!m || m->kind != Y_MAP)
                return NULL;
        for (size_t i = 0; i < m->n; i++)
                if (strcmp(m->keys[i], key) == 0) {
                        if (key_line)
                                *key_line = m->key_lines[i];
                        return m->items[i];
                }
        return NULL;
}

static const struct ynode *map_get(const struct ynode *m, const char *key) {
        return map_get_line(m, key, NULL);
}

static const char *scalar(const struct ynode *n) { return n && n->kind == Y_SCALAR ? n->scalar : NULL; }

/* ---- paths ---------------------------------------------------------------- */

/* Join p onto the absolute directory base and normalise "." and "..";
 * "~" is root's home: the stack runs as root. */
static char *path_resolve(const char *base, const char *p) {
        struct buf joined = {0};
        if (p[0] == '~' && (p[1] == '/' || p[1] == '\0')) {
                buf_puts(&joined, "/root");
                buf_puts(&joined, p + 1);
        } else if (p[0] == '/') {
                buf_puts(&joined, p);
        } else {
                if (base[0] != '/')
                        buf_puts(&joined, "/");
                buf_puts(&joined, base);
                buf_puts(&joined, "/");
                buf_puts(&joined, p);
        }
        char *s = (char *)joined.data;
        /* normalise in place: out never overtakes in */
        size_t out = 0;
        for (size_t in = 0; s[in];) {
                while (s[in] == '/')
                        in++;
                if (!s[in])
                        break;
                size_t e = in;
                while (s[e] && s[e] != '/')
                        e++;
                size_t seg = e - in;
                if (seg == 1 && s[in] == '.') {
                        /* nothing */
                } else if (seg == 2 && s[in] == '.' && s[in + 1] == '.') {
                        while (out > 0 && s[out - 1] != '/')
                                out--;
                        if (out > 0)
                                out--;
                } else {
                        s[out++] = '/';
                        memmove(s + out, s + in, seg);
                        out += seg;
                }
                in = e;
        }
        if (out == 0)
                s[out++] = '/';
        s[out] = '\0';
        return (char *)buf_steal(&joined, NULL);
}

static bool is_remote_context(const char *s) {
        return strstr(s, "://") || str_has_prefix(s, "git@") || str_has_prefix(s, "github.com/");
}

static struct compose_path *add_path(struct compose_info *ci, const char *service, enum compose_path_kind kind,
                                     const char *path, const char *base, bool base_has_vars, unsigned line) {
        ci->paths = xrealloc(ci->paths, (ci->npaths + 1) * sizeof *ci->paths);
        struct compose_path *p = &ci->paths[ci->npaths++];
        *p = (struct compose_path){
                .service = xstrdup(service),
                .kind = kind,
                .path = xstrdup(path),
                .resolved = path_resolve(base, path),
                .line = line,
                .has_vars = base_has_vars || strchr(path, '$') != NULL,
        };
        return p;
}

static void scan_build(struct compose_info *ci, const char *service, const struct ynode *b, unsigned key_line) {
        const struct ynode *ctx = b, *df = NULL;
        if (b->kind == Y_MAP) {
                ctx = map_get(b, "context");
                df = map_get(b, "dockerfile");
                if (map_get(b, "dockerfile_inline"))
                        df = NULL;
        }
        const char *c = ctx ? scalar(ctx) : ".";
        if (!c || is_remote_context(c))
                return;
        unsigned line = ctx ? ctx->line : key_line;
        struct compose_path *cp = add_path(ci, service, PATH_BUILD_CONTEXT, c, ci->dir, false, line);
        _cleanup_free_ char *ctx_dir = xstrdup(cp->resolved);
        bool ctx_vars = cp->has_vars;
        if (df && scalar(df))
                add_path(ci, service, PATH_DOCKERFILE, df->scalar, ctx_dir, ctx_vars, df->line);
        else if (!map_get(b, "dockerfile_inline"))
                add_path(ci, service, PATH_DOCKERFILE, "Dockerfile", ctx_dir, ctx_vars, line);
}

static bool bind_source(const char *s) {
        return s[0] == '.' || s[0] == '/' || s[0] == '~';
}

/* The ':' ending SRC in SRC:DST[:MODE], not one inside ${VAR:-x}. */
static const char *spec_colon(const char *s) {
        unsigned depth = 0;
        for (const char *c = s; *c; c++) {
                if (c[0] == '$' && c[1] == '$')
                        c++;
                else if (c[0] == '$' && c[1] == '{') {
                        depth++;
                        c++;
                } else if (*c == '}' && depth > 0)
                        depth--;
                else if (*c == ':' && depth == 0)
                        return c;
        }
        return NULL;
}

static void scan_volumes(struct compose_info *ci, const char *service, const struct ynode *v) {
        if (v->kind != Y_SEQ)
                return;
        for (size_t i = 0; i < v->n; i++) {
                const struct ynode *it = v->items[i];
                if (it->kind == Y_SCALAR) {
                        /* SRC:DST[:MODE]; without a ':' it is an anonymous volume */
                        const char *colon = spec_colon(it->scalar);
                        if (!colon || colon == it->scalar)
                                continue;
                        _cleanup_free_ char *src = xstrndup(it->scalar, (size_t)(colon - it->scalar));
                        if (bind_source(src) || strchr(src, '$'))
                                add_path(ci, service, PATH_BIND_MOUNT, src, ci->dir, false, it->line);
                } else if (it->kind == Y_MAP) {
                        const char *type = scalar(map_get(it, "type"));
                        const struct ynode *src = map_get(it, "source");
                        if (type && strcmp(type, "bind") == 0 && scalar(src) && src->scalar[0])
                                add_path(ci, service, PATH_BIND_MOUNT, src->scalar, ci->dir, false, src->line);
                }
        }
}

static void scan_env_file(struct compose_info *ci, const char *service, const struct ynode *e) {
        if (e->kind == Y_SCALAR) {
                if (e->scalar[0])
                        add_path(ci, service, PATH_ENV_FILE, e->scalar, ci->dir, false, e->line);
                return;
        }
        if (e->kind != Y_SEQ)
                return;
        for (size_t i = 0; i < e->n; i++) {
                const struct ynode *it = e->items[i];
                if (it->kind == Y_SCALAR && it->scalar[0]) {
                        add_path(ci, service, PATH_ENV_FILE, it->scalar, ci->dir, false, it->line);
                } else if (it->kind == Y_MAP) {
                        /* {path: F, required: false} may be missing on purpose */
                        const struct ynode *p = map_get(it, "path");
                        const char *req = scalar(map_get(it, "required"));
                        if (req && (strcmp(req, "false") == 0 || strcmp(req, "False") == 0))
                                continue;
                        if (scalar(p) && p->scalar[0])
                                add_path(ci, service, PATH_ENV_FILE, p->scalar, ci->dir, false, p->line);
                }
        }
}

static bool is_zero(const struct ynode *n) {
        const char *v = scalar(n);
        return v && strcmp(v, "0") == 0;
}

/* Started by `compose up` only when asked for: a service with profiles (none
 * are activated), or scaled to nothing. */
static bool optional_service(const struct ynode *svc) {
        const struct ynode *p = map_get(svc, "profiles");
        if (p && !ynode_is_null(p) && !(p->kind == Y_SEQ && p->n == 0))
                return true;
        return is_zero(map_get(svc, "scale")) || is_zero(map_get(map_get(svc, "deploy"), "replicas"));
}

static int scan_services(struct compose_info *ci, const struct ynode *services) {
        /* "services:" with nothing after it: a file of networks or volumes only */
        if (ynode_is_null(services))
                return 0;
        if (services->kind != Y_MAP)
                return log_error_at(EINVAL, ci->file, services->line, "services: must be a mapping");
        for (size_t i = 0; i < services->n; i++) {
                const char *name = services->keys[i];
                const struct ynode *svc = services->items[i];
                if (!name[0])
                        return log_error_at(EINVAL, ci->file, services->key_lines[i],
                                            "a service name must be a string");
                /* compose's own schema allows no more, and stack.conf lists
                 * the names space-separated */
                if (strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != strlen(name))
                        return log_error_at(EINVAL, ci->file, services->key_lines[i],
                                            "service name '%s': only letters, digits, '.', '_' and '-' are allowed",
                                            name);
                ci->services = xrealloc(ci->services, (ci->nservices + 1) * sizeof *ci->services);
                ci->optional = xrealloc(ci->optional, (ci->nservices + 1) * sizeof *ci->optional);
                ci->optional[ci->nservices] = optional_service(svc);
                ci->services[ci->nservices++] = xstrdup(name);
                if (svc->kind != Y_MAP)
                        continue;
                const struct ynode *n;
                unsigned build_line = 0;
                if ((n = map_get_line(svc, "build", &build_line))) {
                        ci->has_build = true;
                        scan_build(ci, name, n, build_line);
                }
                if ((n = map_get(svc, "volumes")))
                        scan_volumes(ci, name, n);
                if ((n = map_get(svc, "env_file")))
                        scan_env_file(ci, name, n);
        }
        return 0;
}

/* ---- variables ------------------------------------------------------------- */

struct var_ctx {
        struct compose_info *ci;
        unsigned line;
        unsigned prev_depth;    /* of the last reference added from this scalar */
};

static int add_var(const struct env_ref *r, void *u) {
        struct var_ctx *c = u;
        struct compose_info *ci = c->ci;
        static const enum compose_ref_kind kinds[] = {
                [ENV_REF_PLAIN] = REF_PLAIN,
                [ENV_REF_DEFAULT] = REF_DEFAULT,
                [ENV_REF_REQUIRED] = REF_REQUIRED,
                [ENV_REF_ALT] = REF_ALT,
        };
        /* References come outer first, so the enclosing one of a reference at
         * depth d is the last one added at depth d - 1: climb to it from the
         * previous reference, each outer step one level up. */
        size_t outer = 0;
        if (r->depth > 0) {
                outer = ci->nvars - 1;
                unsigned d = c->prev_depth;
                for (; d >= r->depth; d--)
                        outer = ci->vars[outer].outer;
        }
        ci->vars = xrealloc(ci->vars, (ci->nvars + 1) * sizeof *ci->vars);
        ci->vars[ci->nvars++] = (struct compose_var){
                .name = xstrndup(r->name, r->name_len),
                .kind = kinds[r->op],
                .arg = r->arg ? xstrndup(r->arg, r->arg_len) : NULL,
                .line = c->line,
                .colon = r->colon,
                .nested = r->depth > 0,
                .outer = outer,
        };
        c->prev_depth = r->depth;
        return 0;
}

/* compose interpolates values, never keys */
static int scan_vars(struct compose_info *ci, const struct ynode *n) {
        if (n->kind == Y_SCALAR) {
                if (!strchr(n->scalar, '$'))
                        return 0;
                struct var_ctx c = {.ci = ci, .line = n->line};
                return env_references(n->scalar, ci->file, n->line, add_var, &c);
        }
        for (size_t i = 0; i < n->n; i++) {
                int r = scan_vars(ci, n->items[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

int compose_scan(const char *file, const char *text, size_t len, const char *image_path, struct compose_info *out) {
        *out = (struct compose_info){.file = xstrdup(file), .dir = path_dirname(image_path)};
        struct ynode *root = NULL;
        int r = yaml_load(file, text, len, &root);
        if (r < 0)
                goto fail;
        /* yamltree makes an empty document (or only comments, or "~") an
         * empty map; "{}" is one too, and just as empty a compose file. */
        if (root->n == 0) {
                r = log_error(EINVAL, file, "empty compose file");
                goto fail;
        }
        r = scan_vars(out, root);
        if (r < 0)
                goto fail;
        const struct ynode *services = map_get(root, "services");
        if (services) {
                r = scan_services(out, services);
                if (r < 0)
                        goto fail;
        }
        ynode_free(root);
        return 0;
fail:
        ynode_free(root);
        compose_info_free(out);
        return r;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool made_optional(const struct compose_info *ci, size_t n, const char *name) {
        for (size_t f = 0; f < n; f++)
                for (size_t i = 0; i < ci[f].nservices; i++)
                        if (ci[f].optional[i] && strcmp(ci[f].services[i], name) == 0)
                                return true;
        return false;
}

char *compose_started_services(const struct compose_info *ci, size_t n) {
        size_t total = 0, k = 0;
        for (size_t f = 0; f < n; f++)
                total += ci[f].nservices;
        const char **names = xcalloc(total ? total : 1, sizeof *names);
        for (size_t f = 0; f < n; f++)
                for (size_t i = 0; i < ci[f].nservices; i++)
                        if (!made_optional(ci, n, ci[f].services[i]))
                                names[k++] = ci[f].services[i];
        qsort(names, k, sizeof *names, cmp_str);
        struct buf b = {0};
        for (size_t i = 0; i < k; i++)
                if (i == 0 || strcmp(names[i], names[i - 1]) != 0)
                        buf_printf(&b, "%s%s", b.len ? " " : "", names[i]);
        free(names);
        return (char *)buf_steal(&b, NULL);
}

const char *compose_path_kind_name(enum compose_path_kind k) {
        switch (k) {
        case PATH_BUILD_CONTEXT:
                return "build context";
        case PATH_DOCKERFILE:
                return "Dockerfile";
        case PATH_BIND_MOUNT:
                return "bind-mount source";
        case PATH_ENV_FILE:
                return "env_file";
        }
        return "path";
}

int compose_resolve_paths(struct compose_info *ci, const struct env *env) {
        const char *ctx_dir = ci->dir;
        _cleanup_free_ char *ctx_buf = NULL;
        size_t out = 0;
        for (size_t i = 0; i < ci->npaths; i++) {
                struct compose_path *p = &ci->paths[i];
                bool keep = true;
                if (p->has_vars) {
                        char *v = NULL;
                        int r = env_interpolate(env, p->path, &v, ci->file, p->line);
                        if (r < 0) {
                                /* keep the array dense for compose_info_free() */
                                for (size_t j = i; j < ci->npaths; j++)
                                        ci->paths[out++] = ci->paths[j];
                                ci->npaths = out;
                                return r;
                        }
                        const char *base = p->kind == PATH_DOCKERFILE ? ctx_dir : ci->dir;
                        if (p->kind == PATH_BIND_MOUNT && !bind_source(v)) {
                                keep = false; /* it was a named volume all along */
                        } else {
                                free(p->resolved);
                                p->resolved = path_resolve(base, v);
                                p->has_vars = false;
                        }
                        free(v);
                }
                if (keep && p->kind == PATH_BUILD_CONTEXT) {
                        free(ctx_buf);
                        ctx_buf = xstrdup(p->resolved);
                        ctx_dir = ctx_buf;
                }
                if (keep) {
                        ci->paths[out++] = *p;
                } else {
                        free(p->service);
                        free(p->path);
                        free(p->resolved);
                }
        }
        ci->npaths = out;
        return 0;
}

int compose_check_paths(const struct compose_info *ci, bool (*exists)(const char *resolved, void *u), void *u) {
        for (size_t i = 0; i < ci->npaths; i++) {
                const struct compose_path *p = &ci->paths[i];
                if (p->has_vars || exists(p->resolved, u))
                        continue;
                const char *hint = p->kind == PATH_BUILD_CONTEXT || p->kind == PATH_DOCKERFILE
                                           ? "; pass --source with the application source, or use a prebuilt image"
                                           : "; add it to the overlay";
                return log_error_at(EINVAL, ci->file, p->line, "service '%s': %s %s (%s) will not exist in the image%s",
                                    p->service, compose_path_kind_name(p->kind), p->path, p->resolved, hint);
        }
        return 0;
}

void compose_info_free(struct compose_info *ci) {
        free(ci->file);
        free(ci->dir);
        for (size_t i = 0; i < ci->nservices; i++)
                free(ci->services[i]);
        free(ci->services);
        free(ci->optional);
        for (size_t i = 0; i < ci->nvars; i++) {
                free(ci->vars[i].name);
                free(ci->vars[i].arg);
        }
        free(ci->vars);
        for (size_t i = 0; i < ci->npaths; i++) {
                free(ci->paths[i].service);
                free(ci->paths[i].path);
                free(ci->paths[i].resolved);
        }
        free(ci->paths);
        *ci = (struct compose_info){0};
}
