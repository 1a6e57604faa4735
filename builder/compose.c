/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Reads a compose file only as far as we must to know, before writing
 * anything, which variables it needs and which host paths its services use.
 * The YAML is loaded from libyaml events into a small tree so hostile input
 * is refused as it streams in: aliases (anchor bombs), deep nesting and huge
 * scalars never reach the analysis. */
#include "compose.h"

#include <errno.h>
#include <string.h>
#include <yaml.h>

#include "dotenv.h"
#include "log.h"
#include "util.h"

#define COMPOSE_MAX_DEPTH 64
#define COMPOSE_MAX_SCALAR (1u << 20)

enum cnode_kind { C_SCALAR, C_MAP, C_SEQ };

/* Map children alternate key, value. */
struct cnode {
        enum cnode_kind kind;
        unsigned line;
        char *s;
        struct cnode **kids;
        size_t n, cap;
};

static void cnode_free(struct cnode *n) {
        if (!n)
                return;
        for (size_t i = 0; i < n->n; i++)
                cnode_free(n->kids[i]);
        free(n->kids);
        free(n->s);
        free(n);
}

static void cnode_add(struct cnode *parent, struct cnode *kid) {
        if (parent->n == parent->cap) {
                parent->cap = parent->cap ? parent->cap * 2 : 8;
                parent->kids = xrealloc(parent->kids, parent->cap * sizeof *parent->kids);
        }
        parent->kids[parent->n++] = kid;
}

static const unsigned char *event_anchor(const yaml_event_t *ev) {
        switch (ev->type) {
        case YAML_SCALAR_EVENT:
                return ev->data.scalar.anchor;
        case YAML_SEQUENCE_START_EVENT:
                return ev->data.sequence_start.anchor;
        case YAML_MAPPING_START_EVENT:
                return ev->data.mapping_start.anchor;
        default:
                return NULL;
        }
}

static int load_tree(const char *file, const char *text, size_t len, struct cnode **root) {
        yaml_parser_t p;
        if (!yaml_parser_initialize(&p))
                abort(); /* only fails on OOM */
        yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
        struct cnode *stack[COMPOSE_MAX_DEPTH];
        size_t depth = 0;
        unsigned docs = 0;
        struct cnode *top = NULL;
        int r = 0;
        for (bool done = false; !done && r == 0;) {
                yaml_event_t ev;
                if (!yaml_parser_parse(&p, &ev)) {
                        r = log_error_at(EINVAL, file, (unsigned)p.problem_mark.line + 1, "invalid YAML: %s%s%s",
                                         p.problem ? p.problem : "syntax error", p.context ? " " : "",
                                         p.context ? p.context : "");
                        break;
                }
                unsigned line = (unsigned)ev.start_mark.line + 1;
                if (event_anchor(&ev)) {
                        r = log_error_at(EINVAL, file, line,
                                         "YAML anchors and aliases are not allowed (they can expand "
                                         "exponentially); write the values out");
                        yaml_event_delete(&ev);
                        break;
                }
                struct cnode *n = NULL;
                switch (ev.type) {
                case YAML_STREAM_END_EVENT:
                        done = true;
                        break;
                case YAML_DOCUMENT_START_EVENT:
                        if (++docs > 1)
                                r = log_error_at(EINVAL, file, line,
                                                 "more than one YAML document; a compose file has one");
                        break;
                case YAML_ALIAS_EVENT:
                        r = log_error_at(EINVAL, file, line,
                                         "YAML aliases are not allowed (they can expand exponentially); write "
                                         "the values out");
                        break;
                case YAML_SCALAR_EVENT:
                        if (ev.data.scalar.length > COMPOSE_MAX_SCALAR) {
                                r = log_error_at(EFBIG, file, line, "a value longer than %u MiB",
                                                 COMPOSE_MAX_SCALAR >> 20);
                                break;
                        }
                        n = xcalloc(1, sizeof *n);
                        n->kind = C_SCALAR;
                        n->s = xstrndup((const char *)ev.data.scalar.value, ev.data.scalar.length);
                        break;
                case YAML_SEQUENCE_START_EVENT:
                case YAML_MAPPING_START_EVENT:
                        if (depth >= COMPOSE_MAX_DEPTH) {
                                r = log_error_at(EINVAL, file, line, "nested deeper than %d levels",
                                                 COMPOSE_MAX_DEPTH);
                                break;
                        }
                        n = xcalloc(1, sizeof *n);
                        n->kind = ev.type == YAML_MAPPING_START_EVENT ? C_MAP : C_SEQ;
                        break;
                case YAML_SEQUENCE_END_EVENT:
                case YAML_MAPPING_END_EVENT:
                        depth--;
                        break;
                default:
                        break;
                }
                if (n) {
                        n->line = line;
                        if (depth > 0)
                                cnode_add(stack[depth - 1], n);
                        else
                                top = n; /* only one document, so only one root */
                        if (n->kind != C_SCALAR)
                                stack[depth++] = n;
                }
                yaml_event_delete(&ev);
        }
        yaml_parser_delete(&p);
        if (r < 0) {
                cnode_free(top);
                return r;
        }
        *root = top;
        return 0;
}

static const struct cnode *map_get(const struct cnode *m, const char *key) {
        if (!m || m->kind != C_MAP)
                return NULL;
        for (size_t i = 0; i + 1 < m->n; i += 2)
                if (m->kids[i]->kind == C_SCALAR && strcmp(m->kids[i]->s, key) == 0)
                        return m->kids[i + 1];
        return NULL;
}

/* The line of key's own "key:", for messages about a value it lacks. */
static unsigned map_key_line(const struct cnode *m, const char *key) {
        for (size_t i = 0; i + 1 < m->n; i += 2)
                if (m->kids[i]->kind == C_SCALAR && strcmp(m->kids[i]->s, key) == 0)
                        return m->kids[i]->line;
        return m->line;
}

static const char *scalar(const struct cnode *n) { return n && n->kind == C_SCALAR ? n->s : NULL; }

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

static void scan_build(struct compose_info *ci, const char *service, const struct cnode *b, unsigned key_line) {
        const struct cnode *ctx = b, *df = NULL;
        if (b->kind == C_MAP) {
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
                add_path(ci, service, PATH_DOCKERFILE, df->s, ctx_dir, ctx_vars, df->line);
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

static void scan_volumes(struct compose_info *ci, const char *service, const struct cnode *v) {
        if (v->kind != C_SEQ)
                return;
        for (size_t i = 0; i < v->n; i++) {
                const struct cnode *it = v->kids[i];
                if (it->kind == C_SCALAR) {
                        /* SRC:DST[:MODE]; without a ':' it is an anonymous volume */
                        const char *colon = spec_colon(it->s);
                        if (!colon || colon == it->s)
                                continue;
                        _cleanup_free_ char *src = xstrndup(it->s, (size_t)(colon - it->s));
                        if (bind_source(src) || strchr(src, '$'))
                                add_path(ci, service, PATH_BIND_MOUNT, src, ci->dir, false, it->line);
                } else if (it->kind == C_MAP) {
                        const char *type = scalar(map_get(it, "type"));
                        const struct cnode *src = map_get(it, "source");
                        if (type && strcmp(type, "bind") == 0 && scalar(src) && src->s[0])
                                add_path(ci, service, PATH_BIND_MOUNT, src->s, ci->dir, false, src->line);
                }
        }
}

static void scan_env_file(struct compose_info *ci, const char *service, const struct cnode *e) {
        if (e->kind == C_SCALAR) {
                if (e->s[0])
                        add_path(ci, service, PATH_ENV_FILE, e->s, ci->dir, false, e->line);
                return;
        }
        if (e->kind != C_SEQ)
                return;
        for (size_t i = 0; i < e->n; i++) {
                const struct cnode *it = e->kids[i];
                if (it->kind == C_SCALAR && it->s[0]) {
                        add_path(ci, service, PATH_ENV_FILE, it->s, ci->dir, false, it->line);
                } else if (it->kind == C_MAP) {
                        /* {path: F, required: false} may be missing on purpose */
                        const struct cnode *p = map_get(it, "path");
                        const char *req = scalar(map_get(it, "required"));
                        if (req && (strcmp(req, "false") == 0 || strcmp(req, "False") == 0))
                                continue;
                        if (scalar(p) && p->s[0])
                                add_path(ci, service, PATH_ENV_FILE, p->s, ci->dir, false, p->line);
                }
        }
}

static int scan_services(struct compose_info *ci, const struct cnode *services) {
        if (services->kind == C_SCALAR && services->s[0] == '\0')
                return 0;
        if (services->kind != C_MAP)
                return log_error_at(EINVAL, ci->file, services->line, "services: must be a mapping");
        for (size_t i = 0; i + 1 < services->n; i += 2) {
                const struct cnode *k = services->kids[i], *svc = services->kids[i + 1];
                if (k->kind != C_SCALAR || !k->s[0])
                        return log_error_at(EINVAL, ci->file, k->line, "a service name must be a string");
                ci->services = xrealloc(ci->services, (ci->nservices + 1) * sizeof *ci->services);
                ci->services[ci->nservices++] = xstrdup(k->s);
                if (svc->kind != C_MAP)
                        continue;
                const struct cnode *n;
                if ((n = map_get(svc, "build"))) {
                        ci->has_build = true;
                        scan_build(ci, k->s, n, map_key_line(svc, "build"));
                }
                if ((n = map_get(svc, "volumes")))
                        scan_volumes(ci, k->s, n);
                if ((n = map_get(svc, "env_file")))
                        scan_env_file(ci, k->s, n);
        }
        return 0;
}

/* ---- variables ------------------------------------------------------------- */

struct var_ctx {
        struct compose_info *ci;
        unsigned line;
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
        ci->vars = xrealloc(ci->vars, (ci->nvars + 1) * sizeof *ci->vars);
        ci->vars[ci->nvars++] = (struct compose_var){
                .name = xstrndup(r->name, r->name_len),
                .kind = kinds[r->op],
                .arg = r->arg ? xstrndup(r->arg, r->arg_len) : NULL,
                .line = c->line,
                .colon = r->colon,
        };
        return 0;
}

/* compose interpolates values, never keys */
static int scan_vars(struct compose_info *ci, const struct cnode *n) {
        if (n->kind == C_SCALAR) {
                if (!strchr(n->s, '$'))
                        return 0;
                struct var_ctx c = {ci, n->line};
                return env_references(n->s, ci->file, n->line, add_var, &c);
        }
        for (size_t i = 0; i < n->n; i++) {
                if (n->kind == C_MAP && i % 2 == 0)
                        continue;
                int r = scan_vars(ci, n->kids[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

int compose_scan(const char *file, const char *text, size_t len, const char *image_path, struct compose_info *out) {
        *out = (struct compose_info){.file = xstrdup(file), .dir = path_dirname(image_path)};
        struct cnode *root = NULL;
        int r = load_tree(file, text, len, &root);
        if (r < 0)
                goto fail;
        if (!root || (root->kind == C_SCALAR && root->s[0] == '\0')) {
                r = log_error(EINVAL, file, "empty compose file");
                goto fail;
        }
        if (root->kind != C_MAP) {
                r = log_error_at(EINVAL, file, root->line, "not a compose file: the top level must be a mapping");
                goto fail;
        }
        r = scan_vars(out, root);
        if (r < 0)
                goto fail;
        const struct cnode *services = map_get(root, "services");
        if (services) {
                r = scan_services(out, services);
                if (r < 0)
                        goto fail;
        }
        cnode_free(root);
        return 0;
fail:
        cnode_free(root);
        compose_info_free(out);
        return r;
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
