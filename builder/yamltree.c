/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "yamltree.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "log.h"
#include "util.h"

#define MAX_DEPTH 32
#define MAX_SCALAR (64 * 1024)
#define MAX_NODES 100000
#define MAX_FILE (4 * 1024 * 1024)

struct loader {
        const char *file;
        yaml_parser_t parser;
        unsigned nodes;
};

void ynode_free(struct ynode *n) {
        if (!n)
                return;
        free(n->scalar);
        for (size_t i = 0; i < n->n; i++) {
                if (n->keys)
                        free(n->keys[i]);
                ynode_free(n->items[i]);
        }
        free(n->keys);
        free(n->key_lines);
        free(n->items);
        free(n);
}

static int next_event(struct loader *l, yaml_event_t *ev) {
        if (!yaml_parser_parse(&l->parser, ev)) {
                unsigned line = (unsigned)l->parser.problem_mark.line + 1;
                return log_error_at(EINVAL, l->file, line, "malformed YAML: %s",
                                    l->parser.problem ? l->parser.problem : "parse error");
        }
        unsigned line = (unsigned)ev->start_mark.line + 1;
        if (ev->type == YAML_ALIAS_EVENT) {
                yaml_event_delete(ev);
                return log_error_at(EINVAL, l->file, line, "YAML aliases are not allowed");
        }
        if ((ev->type == YAML_SCALAR_EVENT && ev->data.scalar.anchor) ||
            (ev->type == YAML_MAPPING_START_EVENT && ev->data.mapping_start.anchor) ||
            (ev->type == YAML_SEQUENCE_START_EVENT && ev->data.sequence_start.anchor)) {
                yaml_event_delete(ev);
                return log_error_at(EINVAL, l->file, line, "YAML anchors are not allowed");
        }
        return 0;
}

static int load_node(struct loader *l, yaml_event_t *ev, unsigned depth, struct ynode **out);

static void push(struct ynode *n, char *key, unsigned key_line, struct ynode *item) {
        n->items = xrealloc(n->items, (n->n + 1) * sizeof *n->items);
        if (n->kind == Y_MAP) {
                n->keys = xrealloc(n->keys, (n->n + 1) * sizeof *n->keys);
                n->key_lines = xrealloc(n->key_lines, (n->n + 1) * sizeof *n->key_lines);
                n->keys[n->n] = key;
                n->key_lines[n->n] = key_line;
        }
        n->items[n->n++] = item;
}

static int load_children(struct loader *l, struct ynode *n, unsigned depth) {
        for (;;) {
                yaml_event_t ev;
                int r = next_event(l, &ev);
                if (r < 0)
                        return r;
                if (ev.type == YAML_MAPPING_END_EVENT || ev.type == YAML_SEQUENCE_END_EVENT) {
                        yaml_event_delete(&ev);
                        return 0;
                }
                char *key = NULL;
                unsigned key_line = 0;
                if (n->kind == Y_MAP) {
                        key_line = (unsigned)ev.start_mark.line + 1;
                        if (ev.type != YAML_SCALAR_EVENT) {
                                yaml_event_delete(&ev);
                                return log_error_at(EINVAL, l->file, key_line, "mapping keys must be plain strings");
                        }
                        key = xstrndup((const char *)ev.data.scalar.value, ev.data.scalar.length);
                        yaml_event_delete(&ev);
                        for (size_t i = 0; i < n->n; i++)
                                if (strcmp(n->keys[i], key) == 0) {
                                        r = log_error_at(EINVAL, l->file, key_line, "duplicate key '%s'", key);
                                        free(key);
                                        return r;
                                }
                        r = next_event(l, &ev);
                        if (r < 0) {
                                free(key);
                                return r;
                        }
                }
                struct ynode *child = NULL;
                r = load_node(l, &ev, depth + 1, &child);
                if (r < 0) {
                        free(key);
                        return r;
                }
                push(n, key, key_line, child);
        }
}

/* Takes ownership of ev. */
static int load_node(struct loader *l, yaml_event_t *ev, unsigned depth, struct ynode **out) {
        unsigned line = (unsigned)ev->start_mark.line + 1;
        if (depth > MAX_DEPTH) {
                yaml_event_delete(ev);
                return log_error_at(EINVAL, l->file, line, "YAML nested deeper than %d levels", MAX_DEPTH);
        }
        if (++l->nodes > MAX_NODES) {
                yaml_event_delete(ev);
                return log_error_at(EINVAL, l->file, line, "YAML has more than %d nodes", MAX_NODES);
        }
        struct ynode *n = xcalloc(1, sizeof *n);
        n->line = line;
        int r = 0;
        switch (ev->type) {
        case YAML_SCALAR_EVENT:
                n->kind = Y_SCALAR;
                if (ev->data.scalar.length > MAX_SCALAR)
                        r = log_error_at(EINVAL, l->file, line, "value longer than %d bytes", MAX_SCALAR);
                else {
                        n->scalar = xstrndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
                        if (strlen(n->scalar) != ev->data.scalar.length)
                                r = log_error_at(EINVAL, l->file, line, "value contains a NUL byte");
                        n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
                }
                yaml_event_delete(ev);
                break;
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT:
                n->kind = ev->type == YAML_MAPPING_START_EVENT ? Y_MAP : Y_SEQ;
                yaml_event_delete(ev);
                r = load_children(l, n, depth);
                break;
        default:
                yaml_event_delete(ev);
                r = log_error_at(EINVAL, l->file, line, "unexpected YAML structure");
        }
        if (r < 0) {
                ynode_free(n);
                return r;
        }
        *out = n;
        return 0;
}

int yaml_load(const char *file, const char *text, size_t len, struct ynode **root) {
        _cleanup_free_ uint8_t *data = NULL;
        if (!text) {
                size_t n;
                int r = read_file(file, MAX_FILE, &data, &n);
                if (r == -EFBIG)
                        return log_error(r, file, "larger than %d MiB", MAX_FILE >> 20);
                if (r < 0)
                        return log_error(r, file, "cannot read: %s", strerror(-r));
                text = (const char *)data;
                len = n;
        }
        if (memchr(text, 0, len))
                return log_error(EINVAL, file, "contains a NUL byte");
        struct loader l = {.file = file};
        if (!yaml_parser_initialize(&l.parser)) {
                fputs("dimimage: error: out of memory (yaml)\n", stderr);
                abort();
        }
        yaml_parser_set_input_string(&l.parser, (const unsigned char *)text, len);
        struct ynode *doc = NULL;
        int r = 0;
        bool in_doc = false;
        for (;;) {
                yaml_event_t ev;
                r = next_event(&l, &ev);
                if (r < 0)
                        break;
                yaml_event_type_t t = ev.type;
                if (t == YAML_STREAM_END_EVENT) {
                        yaml_event_delete(&ev);
                        break;
                }
                if (t == YAML_DOCUMENT_START_EVENT) {
                        unsigned line = (unsigned)ev.start_mark.line + 1;
                        yaml_event_delete(&ev);
                        if (doc) {
                                r = log_error_at(EINVAL, file, line, "more than one YAML document");
                                break;
                        }
                        in_doc = true;
                        continue;
                }
                if (t == YAML_DOCUMENT_END_EVENT) {
                        yaml_event_delete(&ev);
                        in_doc = false;
                        continue;
                }
                if (t == YAML_STREAM_START_EVENT || !in_doc) {
                        yaml_event_delete(&ev);
                        continue;
                }
                r = load_node(&l, &ev, 0, &doc);
                if (r < 0)
                        break;
        }
        yaml_parser_delete(&l.parser);
        if (r < 0) {
                ynode_free(doc);
                return r;
        }
        if (!doc || (doc->kind == Y_SCALAR && !*doc->scalar)) {
                ynode_free(doc);
                doc = xcalloc(1, sizeof *doc);
                doc->kind = Y_MAP;
                doc->line = 1;
        }
        if (doc->kind != Y_MAP) {
                unsigned line = doc->line;
                ynode_free(doc);
                return log_error_at(EINVAL, file, line, "expected a mapping at the top level");
        }
        *root = doc;
        return 0;
}

struct ynode *ynode_get(const struct ynode *n, const char *key) {
        if (!n || n->kind != Y_MAP)
                return NULL;
        for (size_t i = 0; i < n->n; i++)
                if (strcmp(n->keys[i], key) == 0)
                        return n->items[i];
        return NULL;
}

int ynode_string(const char *file, const char *what, const struct ynode *n, char **out) {
        if (!n || n->kind != Y_SCALAR)
                return log_error_at(EINVAL, file, n ? n->line : 0, "%s: must be a string", what);
        free(*out);
        *out = xstrdup(n->scalar);
        return 0;
}

int ynode_bool(const char *file, const char *what, const struct ynode *n, bool *out) {
        if (n && n->kind == Y_SCALAR && !n->quoted) {
                static const char *const yes[] = {"true", "True", "TRUE", "yes", "on"};
                static const char *const no[] = {"false", "False", "FALSE", "no", "off"};
                for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
                        if (!strcmp(n->scalar, yes[i])) {
                                *out = true;
                                return 0;
                        }
                        if (!strcmp(n->scalar, no[i])) {
                                *out = false;
                                return 0;
                        }
                }
        }
        return log_error_at(EINVAL, file, n ? n->line : 0, "%s: must be true or false", what);
}

int ynode_uint(const char *file, const char *what, const struct ynode *n, unsigned long long max,
               unsigned long long *out) {
        if (n && n->kind == Y_SCALAR && n->scalar[0] >= '0' && n->scalar[0] <= '9') {
                char *end;
                errno = 0;
                unsigned long long v = strtoull(n->scalar, &end, 10);
                if (!errno && !*end && v <= max) {
                        *out = v;
                        return 0;
                }
        }
        return log_error_at(EINVAL, file, n ? n->line : 0, "%s: must be a whole number up to %llu", what, max);
}

int ynode_strings(const char *file, const char *what, const struct ynode *n, char ***out, size_t *count) {
        if (!n)
                return 0;
        if (n->kind == Y_SCALAR) {
                *out = xrealloc(*out, (*count + 1) * sizeof **out);
                (*out)[(*count)++] = xstrdup(n->scalar);
                return 0;
        }
        if (n->kind != Y_SEQ)
                return log_error_at(EINVAL, file, n->line, "%s: must be a string or a list of strings", what);
        for (size_t i = 0; i < n->n; i++) {
                if (n->items[i]->kind != Y_SCALAR)
                        return log_error_at(EINVAL, file, n->items[i]->line, "%s: list items must be strings",
                                            what);
                *out = xrealloc(*out, (*count + 1) * sizeof **out);
                (*out)[(*count)++] = xstrdup(n->items[i]->scalar);
        }
        return 0;
}

int ynode_check_keys(const char *file, const char *what, const struct ynode *n, const char *const *allowed) {
        if (!n || n->kind != Y_MAP)
                return log_error_at(EINVAL, file, n ? n->line : 0, "%s: must be a mapping", what);
        for (size_t i = 0; i < n->n; i++) {
                bool ok = false;
                for (const char *const *a = allowed; *a; a++)
                        if (strcmp(*a, n->keys[i]) == 0)
                                ok = true;
                if (!ok)
                        return log_error_at(EINVAL, file, n->key_lines[i], "%s: unknown key '%s'", what,
                                            n->keys[i]);
        }
        return 0;
}
