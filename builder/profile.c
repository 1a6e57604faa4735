/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Role profiles: profiles/<role>.yml -> struct profile.
 *
 * The YAML is first read into a small tree (refusing aliases, anchors, tags,
 * deep nesting and huge scalars, which a profile never needs and which make
 * parsers slow or unsafe), then walked against the schema in docs/profiles.md.
 * Unknown keys are errors: a typo such as "requird: true" must not silently
 * turn a required secret into an optional one. */
#include "profile.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "hash.h"
#include "log.h"

#define PROFILE_MAX_BYTES (1024 * 1024)
#define PROFILE_MAX_DEPTH 32
#define PROFILE_MAX_SCALAR (64 * 1024)
#define GENERATE_DEFAULT_LENGTH 32

#ifndef DIMIMAGE_DATADIR
#define DIMIMAGE_DATADIR "/usr/local/share/dimimage"
#endif

enum node_kind { NODE_SCALAR, NODE_MAP, NODE_SEQ };

struct node {
        enum node_kind kind;
        unsigned line;
        bool plain;             /* scalar written without quotes */
        char *value;            /* scalar, NUL-terminated */
        size_t len;
        struct node **items;    /* seq: items; map: key, value, key, value... */
        size_t n;
};

static void node_free(struct node *n) {
        if (!n)
                return;
        for (size_t i = 0; i < n->n; i++)
                node_free(n->items[i]);
        free(n->items);
        free(n->value);
        free(n);
}

static void node_push(struct node *parent, struct node *child) {
        parent->items = xrealloc(parent->items, (parent->n + 1) * sizeof(*parent->items));
        parent->items[parent->n++] = child;
}

/* ---- YAML -> tree ------------------------------------------------------ */

struct reader {
        const char *file;
        yaml_parser_t parser;
};

static int yaml_problem(struct reader *r) {
        yaml_parser_t *p = &r->parser;
        unsigned line = (unsigned)p->problem_mark.line + 1;
        if (p->context)
                return log_error_at(EINVAL, r->file, line, "malformed YAML: %s (%s, line %u)",
                                    p->problem ? p->problem : "parse error", p->context,
                                    (unsigned)p->context_mark.line + 1);
        return log_error_at(EINVAL, r->file, line, "malformed YAML: %s", p->problem ? p->problem : "parse error");
}

static int next_event(struct reader *r, yaml_event_t *ev) {
        if (!yaml_parser_parse(&r->parser, ev))
                return yaml_problem(r);
        return 0;
}

/* Refuse what a profile never needs: anchors/aliases (expansion bombs and
 * action at a distance) and explicit tags (which would change types). */
static int check_event(struct reader *r, const yaml_event_t *ev) {
        unsigned line = (unsigned)ev->start_mark.line + 1;
        const yaml_char_t *anchor = NULL, *tag = NULL;
        switch (ev->type) {
        case YAML_ALIAS_EVENT:
                return log_error_at(EINVAL, r->file, line, "YAML aliases are not allowed in profiles");
        case YAML_SCALAR_EVENT:
                anchor = ev->data.scalar.anchor;
                tag = ev->data.scalar.tag;
                break;
        case YAML_SEQUENCE_START_EVENT:
                anchor = ev->data.sequence_start.anchor;
                tag = ev->data.sequence_start.tag;
                break;
        case YAML_MAPPING_START_EVENT:
                anchor = ev->data.mapping_start.anchor;
                tag = ev->data.mapping_start.tag;
                break;
        default:
                return 0;
        }
        if (anchor)
                return log_error_at(EINVAL, r->file, line, "YAML anchors are not allowed in profiles");
        if (tag)
                return log_error_at(EINVAL, r->file, line, "YAML tags are not allowed in profiles");
        return 0;
}

/* Reads one node whose first event is ev (consumed by the caller). */
static int read_node(struct reader *r, yaml_event_t *ev, unsigned depth, struct node **out) {
        int rc = check_event(r, ev);
        if (rc < 0)
                return rc;
        unsigned line = (unsigned)ev->start_mark.line + 1;
        struct node *n = xcalloc(1, sizeof(*n));
        n->line = line;

        if (ev->type == YAML_SCALAR_EVENT) {
                if (ev->data.scalar.length > PROFILE_MAX_SCALAR) {
                        free(n);
                        return log_error_at(EFBIG, r->file, line, "scalar of %zu bytes is too large (limit %d)",
                                            ev->data.scalar.length, PROFILE_MAX_SCALAR);
                }
                n->kind = NODE_SCALAR;
                n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                n->len = ev->data.scalar.length;
                n->value = xstrndup((const char *)ev->data.scalar.value, n->len);
                if (strlen(n->value) != n->len) {
                        node_free(n);
                        return log_error_at(EINVAL, r->file, line, "NUL byte in a value");
                }
                *out = n;
                return 0;
        }
        if (ev->type != YAML_SEQUENCE_START_EVENT && ev->type != YAML_MAPPING_START_EVENT) {
                free(n);
                return log_error_at(EINVAL, r->file, line, "malformed YAML: unexpected event");
        }
        if (depth >= PROFILE_MAX_DEPTH) {
                free(n);
                return log_error_at(EINVAL, r->file, line, "nesting deeper than %d levels", PROFILE_MAX_DEPTH);
        }
        n->kind = ev->type == YAML_SEQUENCE_START_EVENT ? NODE_SEQ : NODE_MAP;
        yaml_event_type_t end = n->kind == NODE_SEQ ? YAML_SEQUENCE_END_EVENT : YAML_MAPPING_END_EVENT;
        for (;;) {
                yaml_event_t child;
                rc = next_event(r, &child);
                if (rc < 0)
                        break;
                if (child.type == end) {
                        yaml_event_delete(&child);
                        *out = n;
                        return 0;
                }
                struct node *c = NULL;
                rc = read_node(r, &child, depth + 1, &c);
                yaml_event_delete(&child);
                if (rc < 0)
                        break;
                node_push(n, c);
        }
        node_free(n);
        return rc;
}

static int read_document(const char *file, const char *text, size_t len, struct node **out) {
        struct reader r = {.file = file};
        *out = NULL;
        if (!yaml_parser_initialize(&r.parser))
                return log_error(ENOMEM, file, "cannot initialise the YAML parser");
        yaml_parser_set_input_string(&r.parser, (const unsigned char *)text, len);
        yaml_parser_set_encoding(&r.parser, YAML_UTF8_ENCODING);

        struct node *root = NULL;
        int rc = 0;
        bool done = false;
        while (!done) {
                yaml_event_t ev;
                rc = next_event(&r, &ev);
                if (rc < 0)
                        break;
                switch (ev.type) {
                case YAML_STREAM_START_EVENT:
                case YAML_DOCUMENT_END_EVENT:
                        break;
                case YAML_DOCUMENT_START_EVENT:
                        if (root)
                                rc = log_error_at(EINVAL, file, (unsigned)ev.start_mark.line + 1,
                                                  "a profile is a single YAML document");
                        break;
                case YAML_STREAM_END_EVENT:
                        done = true;
                        break;
                default:
                        rc = read_node(&r, &ev, 0, &root);
                        break;
                }
                yaml_event_delete(&ev);
                if (rc < 0)
                        break;
        }
        yaml_parser_delete(&r.parser);
        if (rc < 0) {
                node_free(root);
                return rc;
        }
        if (!root)
                return log_error(EINVAL, file, "empty profile");
        *out = root;
        return 0;
}

/* ---- schema helpers ---------------------------------------------------- */

struct ctx {
        const char *file;
};

static bool scalar_is_null(const struct node *n) {
        return n->kind == NODE_SCALAR && n->plain &&
               (n->len == 0 || !strcmp(n->value, "~") || !strcmp(n->value, "null") || !strcmp(n->value, "Null") ||
                !strcmp(n->value, "NULL"));
}

static int get_string(struct ctx *c, const char *where, const struct node *n, char **out) {
        if (n->kind != NODE_SCALAR || scalar_is_null(n))
                return log_error_at(EINVAL, c->file, n->line, "%s must be a string", where);
        free(*out);
        *out = xstrdup(n->value);
        return 0;
}

static int get_bool(struct ctx *c, const char *where, const struct node *n, bool *out) {
        if (n->kind == NODE_SCALAR && n->plain) {
                if (!strcmp(n->value, "true") || !strcmp(n->value, "True") || !strcmp(n->value, "TRUE")) {
                        *out = true;
                        return 0;
                }
                if (!strcmp(n->value, "false") || !strcmp(n->value, "False") || !strcmp(n->value, "FALSE")) {
                        *out = false;
                        return 0;
                }
        }
        return log_error_at(EINVAL, c->file, n->line, "%s must be true or false", where);
}

static int get_uint(struct ctx *c, const char *where, const struct node *n, uint64_t min, uint64_t max,
                    uint64_t *out) {
        if (n->kind != NODE_SCALAR || !n->plain || n->len == 0 || n->len > 19)
                goto bad;
        uint64_t v = 0;
        for (size_t i = 0; i < n->len; i++) {
                if (!isdigit((unsigned char)n->value[i]))
                        goto bad;
                v = v * 10 + (uint64_t)(n->value[i] - '0');
        }
        if (v < min || v > max)
                return log_error_at(ERANGE, c->file, n->line, "%s must be between %" PRIu64 " and %" PRIu64, where,
                                    min, max);
        *out = v;
        return 0;
bad:
        return log_error_at(EINVAL, c->file, n->line, "%s must be a whole number", where);
}

static int expect_kind(struct ctx *c, const char *where, const struct node *n, enum node_kind k) {
        if (n->kind == k)
                return 0;
        return log_error_at(EINVAL, c->file, n->line, "%s must be a %s", where,
                            k == NODE_MAP ? "mapping (key: value)" : k == NODE_SEQ ? "list" : "scalar");
}

/* Map keys: strings, unique, and one of the allowed ones (NULL-terminated). */
static int check_map_keys(struct ctx *c, const char *where, const struct node *map, const char *const *allowed) {
        for (size_t i = 0; i < map->n; i += 2) {
                const struct node *k = map->items[i];
                if (k->kind != NODE_SCALAR)
                        return log_error_at(EINVAL, c->file, k->line, "%s: keys must be plain names", where);
                if (allowed) {
                        bool found = false;
                        for (const char *const *a = allowed; *a; a++)
                                if (!strcmp(*a, k->value))
                                        found = true;
                        if (!found) {
                                struct buf b = {0};
                                for (const char *const *a = allowed; *a; a++)
                                        buf_printf(&b, "%s%s", a == allowed ? "" : ", ", *a);
                                int rc = log_error_at(EINVAL, c->file, k->line, "%s: unknown key '%s' (known: %s)",
                                                      where, k->value, (char *)b.data);
                                buf_free(&b);
                                return rc;
                        }
                }
                for (size_t j = 0; j < i; j += 2)
                        if (!strcmp(map->items[j]->value, k->value))
                                return log_error_at(EINVAL, c->file, k->line, "%s: duplicate key '%s'", where,
                                                    k->value);
        }
        return 0;
}

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
                if (strcmp(rest, "host") && !(str_has_prefix(rest, "env.") && valid_env_key(rest + 4)))
                        return false;
                s = end + 1;
        }
        return true;
}

static int get_string_list(struct ctx *c, const char *key, const struct node *n, bool (*valid)(const char *),
                           const char *what, char ***out, size_t *nout) {
        int rc = expect_kind(c, key, n, NODE_SEQ);
        if (rc < 0)
                return rc;
        if (n->n == 0)
                return log_error_at(EINVAL, c->file, n->line, "%s must list at least one entry", key);
        char **v = xcalloc(n->n, sizeof(*v));
        for (size_t i = 0; i < n->n; i++) {
                _cleanup_free_ char *where = xasprintf("%s[%zu]", key, i);
                rc = get_string(c, where, n->items[i], &v[i]);
                if (rc >= 0 && !valid(v[i]))
                        rc = log_error_at(EINVAL, c->file, n->items[i]->line, "%s: '%s' is not a valid %s", where,
                                          v[i], what);
                for (size_t j = 0; rc >= 0 && j < i; j++)
                        if (!strcmp(v[j], v[i]))
                                rc = log_error_at(EINVAL, c->file, n->items[i]->line, "%s: '%s' is listed twice",
                                                  where, v[i]);
                if (rc < 0) {
                        for (size_t j = 0; j <= i; j++)
                                free(v[j]);
                        free(v);
                        return rc;
                }
        }
        *out = v;
        *nout = n->n;
        return 0;
}

static bool valid_overlay_name(const char *s) {
        return valid_rel_path(s) && !strchr(s, '/');
}

static bool valid_compose_path(const char *s) {
        return valid_rel_path(s) && (str_has_suffix(s, ".yml") || str_has_suffix(s, ".yaml"));
}

/* ---- sections ---------------------------------------------------------- */

static int parse_env_entry(struct ctx *c, const struct node *k, const struct node *v, struct profile_env *e) {
        static const char *const keys[] = {"required", "secret", "generate", "length", "default",
                                           "description", "fleet", NULL};
        e->key = xstrdup(k->value);
        e->line = k->line;
        e->length = GENERATE_DEFAULT_LENGTH;
        _cleanup_free_ char *where = xasprintf("environment.%s", e->key);
        if (!valid_env_key(e->key))
                return log_error_at(EINVAL, c->file, k->line, "%s: not a valid variable name (letters, digits, _)",
                                    where);
        if (scalar_is_null(v))
                return 0; /* "KEY:" alone declares an optional key */
        int rc = expect_kind(c, where, v, NODE_MAP);
        if (rc < 0)
                return rc;
        rc = check_map_keys(c, where, v, keys);
        if (rc < 0)
                return rc;
        const struct node *length_node = NULL;
        for (size_t i = 0; i < v->n; i += 2) {
                const char *name = v->items[i]->value;
                const struct node *val = v->items[i + 1];
                _cleanup_free_ char *w = xasprintf("%s: '%s'", where, name);
                if (!strcmp(name, "required"))
                        rc = get_bool(c, w, val, &e->required);
                else if (!strcmp(name, "secret"))
                        rc = get_bool(c, w, val, &e->secret);
                else if (!strcmp(name, "generate"))
                        rc = get_bool(c, w, val, &e->generate);
                else if (!strcmp(name, "length")) {
                        uint64_t len = 0;
                        rc = get_uint(c, w, val, 16, 256, &len);
                        e->length = (unsigned)len;
                        length_node = val;
                } else if (!strcmp(name, "default")) {
                        /* Any scalar, even an empty one: "" is a real default. */
                        if (val->kind != NODE_SCALAR)
                                rc = log_error_at(EINVAL, c->file, val->line, "%s must be a string", w);
                        else
                                e->def = xstrdup(scalar_is_null(val) ? "" : val->value);
                } else if (!strcmp(name, "description"))
                        rc = get_string(c, w, val, &e->description);
                else if (!strcmp(name, "fleet")) {
                        rc = get_string(c, w, val, &e->fleet);
                        if (rc >= 0 && !valid_fleet_template(e->fleet))
                                rc = log_error_at(EINVAL, c->file, val->line,
                                                  "%s: only ${ROLE.host} and ${ROLE.env.KEY} may be used", w);
                }
                if (rc < 0)
                        return rc;
        }
        if (length_node && !e->generate)
                return log_error_at(EINVAL, c->file, length_node->line, "%s: 'length' needs 'generate: true'",
                                    where);
        if (e->generate && e->def)
                return log_error_at(EINVAL, c->file, v->line, "%s: 'generate' and 'default' exclude each other",
                                    where);
        /* A default shipped in a profile is public: it cannot be a secret. */
        if (e->secret && e->def && *e->def)
                return log_error_at(EINVAL, c->file, v->line, "%s: a secret must not have a default", where);
        return 0;
}

static int parse_environment(struct ctx *c, const struct node *n, struct profile *p) {
        int rc = expect_kind(c, "environment", n, NODE_MAP);
        if (rc < 0)
                return rc;
        rc = check_map_keys(c, "environment", n, NULL);
        if (rc < 0)
                return rc;
        p->env = xcalloc(n->n / 2 + 1, sizeof(*p->env));
        for (size_t i = 0; i < n->n; i += 2) {
                rc = parse_env_entry(c, n->items[i], n->items[i + 1], &p->env[p->nenv++]);
                if (rc < 0)
                        return rc;
        }
        return 0;
}

static int parse_ports(struct ctx *c, const struct node *n, struct profile *p) {
        static const char *const keys[] = {"port", "service", "proto", NULL};
        int rc = expect_kind(c, "ports", n, NODE_SEQ);
        if (rc < 0)
                return rc;
        p->ports = xcalloc(n->n + 1, sizeof(*p->ports));
        for (size_t i = 0; i < n->n; i++) {
                const struct node *item = n->items[i];
                struct profile_port *pp = &p->ports[p->nports++];
                _cleanup_free_ char *where = xasprintf("ports[%zu]", i);
                rc = expect_kind(c, where, item, NODE_MAP);
                if (rc < 0)
                        return rc;
                rc = check_map_keys(c, where, item, keys);
                if (rc < 0)
                        return rc;
                bool have_port = false;
                for (size_t j = 0; j < item->n; j += 2) {
                        const char *name = item->items[j]->value;
                        const struct node *val = item->items[j + 1];
                        _cleanup_free_ char *w = xasprintf("%s.%s", where, name);
                        if (!strcmp(name, "port")) {
                                uint64_t port = 0;
                                rc = get_uint(c, w, val, 1, 65535, &port);
                                pp->port = (unsigned)port;
                                have_port = true;
                        } else if (!strcmp(name, "service"))
                                rc = get_string(c, w, val, &pp->service);
                        else {
                                rc = get_string(c, w, val, &pp->proto);
                                if (rc >= 0 && strcmp(pp->proto, "tcp") && strcmp(pp->proto, "udp"))
                                        rc = log_error_at(EINVAL, c->file, val->line, "%s must be tcp or udp", w);
                        }
                        if (rc < 0)
                                return rc;
                }
                if (!have_port || !pp->service)
                        return log_error_at(EINVAL, c->file, item->line, "%s needs 'port' and 'service'", where);
                if (!pp->proto)
                        pp->proto = xstrdup("tcp");
                for (size_t j = 0; j + 1 < p->nports; j++)
                        if (p->ports[j].port == pp->port && !strcmp(p->ports[j].proto, pp->proto))
                                return log_error_at(EINVAL, c->file, item->line, "%s: port %u/%s is listed twice",
                                                    where, pp->port, pp->proto);
        }
        return 0;
}

static int parse_memory(struct ctx *c, const struct node *n, struct profile *p) {
        static const char *const keys[] = {"minimum_mb", "recommended_mb", NULL};
        int rc = expect_kind(c, "memory", n, NODE_MAP);
        if (rc < 0)
                return rc;
        rc = check_map_keys(c, "memory", n, keys);
        if (rc < 0)
                return rc;
        bool have_min = false, have_rec = false;
        for (size_t i = 0; i < n->n; i += 2) {
                const char *name = n->items[i]->value;
                _cleanup_free_ char *w = xasprintf("memory.%s", name);
                bool is_min = !strcmp(name, "minimum_mb");
                rc = get_uint(c, w, n->items[i + 1], 64, 1024 * 1024,
                              is_min ? &p->memory_min_mb : &p->memory_recommended_mb);
                if (rc < 0)
                        return rc;
                *(is_min ? &have_min : &have_rec) = true;
        }
        if (!have_min || !have_rec)
                return log_error_at(EINVAL, c->file, n->line, "memory needs 'minimum_mb' and 'recommended_mb'");
        if (p->memory_recommended_mb < p->memory_min_mb)
                return log_error_at(EINVAL, c->file, n->line, "memory.recommended_mb is below memory.minimum_mb");
        return 0;
}

static int parse_tuning(struct ctx *c, const struct node *n, struct profile *p) {
        static const char *const keys[] = {"journald_max_use", "docker_log_max_size", "docker_log_max_file",
                                           "gpu_mem_mb", NULL};
        int rc = expect_kind(c, "tuning", n, NODE_MAP);
        if (rc < 0)
                return rc;
        rc = check_map_keys(c, "tuning", n, keys);
        if (rc < 0)
                return rc;
        for (size_t i = 0; i < n->n; i += 2) {
                const char *name = n->items[i]->value;
                const struct node *val = n->items[i + 1];
                _cleanup_free_ char *w = xasprintf("tuning.%s", name);
                uint64_t u = 0;
                if (!strcmp(name, "journald_max_use")) {
                        rc = get_string(c, w, val, &p->journald_max_use);
                        if (rc >= 0 && !valid_size(p->journald_max_use, "KMGT"))
                                rc = log_error_at(EINVAL, c->file, val->line,
                                                  "%s must be a size like 64M (units K, M, G, T)", w);
                } else if (!strcmp(name, "docker_log_max_size")) {
                        rc = get_string(c, w, val, &p->docker_log_max_size);
                        if (rc >= 0 && !valid_size(p->docker_log_max_size, "kmg"))
                                rc = log_error_at(EINVAL, c->file, val->line,
                                                  "%s must be a size like 10m (units k, m, g)", w);
                } else if (!strcmp(name, "docker_log_max_file")) {
                        rc = get_uint(c, w, val, 1, 100, &u);
                        p->docker_log_max_file = (unsigned)u;
                } else {
                        /* 16 MB is the firmware's minimum; more than 512 is
                         * never what a headless server wants. */
                        rc = get_uint(c, w, val, 16, 512, &u);
                        p->gpu_mem_mb = (unsigned)u;
                }
                if (rc < 0)
                        return rc;
        }
        return 0;
}

static const struct node *map_get(const struct node *map, const char *key) {
        for (size_t i = 0; i + 1 < map->n; i += 2)
                if (!strcmp(map->items[i]->value, key))
                        return map->items[i + 1];
        return NULL;
}

static int parse_root(struct ctx *c, const struct node *root, struct profile *p) {
        static const char *const keys[] = {"name", "description", "overlays", "compose", "environment", "ports",
                                           "memory", "log_shipping", "tuning", NULL};
        int rc = expect_kind(c, "a profile", root, NODE_MAP);
        if (rc < 0)
                return rc;
        rc = check_map_keys(c, "profile", root, keys);
        if (rc < 0)
                return rc;
        static const char *const required[] = {"name", "overlays", "compose", "memory"};
        for (size_t i = 0; i < ARRAY_SIZE(required); i++)
                if (!map_get(root, required[i]))
                        return log_error_at(EINVAL, c->file, root->line, "profile: missing '%s'", required[i]);

        const struct node *log_shipping = NULL;
        for (size_t i = 0; i < root->n; i += 2) {
                const char *name = root->items[i]->value;
                const struct node *v = root->items[i + 1];
                if (!strcmp(name, "name")) {
                        rc = get_string(c, "name", v, &p->name);
                        if (rc >= 0 && !valid_role_name(p->name))
                                rc = log_error_at(EINVAL, c->file, v->line,
                                                  "name: '%s' must be lower-case letters, digits and '-'", p->name);
                } else if (!strcmp(name, "description"))
                        rc = get_string(c, "description", v, &p->description);
                else if (!strcmp(name, "overlays"))
                        rc = get_string_list(c, "overlays", v, valid_overlay_name, "overlay directory name",
                                             &p->overlays, &p->noverlays);
                else if (!strcmp(name, "compose"))
                        rc = get_string_list(c, "compose", v, valid_compose_path,
                                             "compose file (relative .yml path without '..')", &p->compose,
                                             &p->ncompose);
                else if (!strcmp(name, "environment"))
                        rc = parse_environment(c, v, p);
                else if (!strcmp(name, "ports"))
                        rc = parse_ports(c, v, p);
                else if (!strcmp(name, "memory"))
                        rc = parse_memory(c, v, p);
                else if (!strcmp(name, "log_shipping")) {
                        rc = get_bool(c, "log_shipping", v, &p->log_shipping);
                        log_shipping = v;
                } else
                        rc = parse_tuning(c, v, p);
                if (rc < 0)
                        return rc;
        }
        /* Shipping logs without saying where to is the "dangling URL" the
         * standalone profile exists to avoid; the reverse is harmless. */
        if (p->log_shipping && !profile_env_find(p, "OPENOBSERVE_URL"))
                return log_error_at(EINVAL, c->file, log_shipping->line,
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
        if (len > PROFILE_MAX_BYTES)
                return log_error(EFBIG, name, "profile larger than %d bytes", PROFILE_MAX_BYTES);

        struct node *root = NULL;
        int rc = read_document(name, text, len, &root);
        if (rc < 0)
                return rc;
        struct ctx c = {.file = name};
        rc = parse_root(&c, root, out);
        node_free(root);
        return rc;
}

int profile_load(const char *path, struct profile *out) {
        memset(out, 0, sizeof(*out));
        _cleanup_free_ uint8_t *data = NULL;
        size_t len = 0;
        int rc = read_file(path, PROFILE_MAX_BYTES, &data, &len);
        if (rc == -EFBIG)
                return log_error(rc, path, "profile larger than %d bytes", PROFILE_MAX_BYTES);
        if (rc < 0)
                return log_error(rc, path, "cannot read profile: %s", strerror(-rc));
        return profile_parse(path, (const char *)data, len, out);
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
        for (size_t i = 0; i < p->noverlays; i++)
                free(p->overlays[i]);
        free(p->overlays);
        for (size_t i = 0; i < p->nenv; i++) {
                free(p->env[i].key);
                free(p->env[i].def);
                free(p->env[i].description);
                free(p->env[i].fleet);
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

char *profile_path_for(const char *role) {
        if (strchr(role, '/') || str_has_suffix(role, ".yml") || str_has_suffix(role, ".yaml"))
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

int profile_load_role(const char *role, struct profile *out) {
        memset(out, 0, sizeof(*out));
        _cleanup_free_ char *path = profile_path_for(role);
        bool is_path = strchr(role, '/') || str_has_suffix(role, ".yml") || str_has_suffix(role, ".yaml");
        if (!is_path && (!valid_role_name(role) || access(path, F_OK) < 0)) {
                size_t n = 0;
                char **roles = profile_list_roles(&n);
                struct buf b = {0};
                for (size_t i = 0; i < n; i++)
                        buf_printf(&b, "%s%s", i ? ", " : "", roles[i]);
                int rc = log_error(ENOENT, NULL, "unknown role '%s' (no %s); available roles: %s", role,
                                   valid_role_name(role) ? path : "such profile", n ? (char *)b.data : "none");
                buf_free(&b);
                profile_roles_free(roles);
                return rc;
        }
        return profile_load(path, out);
}
