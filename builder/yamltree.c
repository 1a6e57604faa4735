/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "yamltree.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "log.h"
#include "util.h"

struct loader {
        const char *file;
        const char *text; /* the input, for what libyaml's message leaves out */
        size_t len;
        yaml_parser_t parser;
        unsigned nodes;
};

/* A scalar may be a secret (a fleet's env: value, a Wi-Fi passphrase):
 * wiped before libyaml frees it, as ynode_free wipes our copy. */
static void event_drop(yaml_event_t *ev) {
        if (ev->type == YAML_SCALAR_EVENT && ev->data.scalar.value)
                explicit_bzero(ev->data.scalar.value, ev->data.scalar.length);
        yaml_event_delete(ev);
}

/* The reader's buffers hold the input's text, decoded and not: fields of
 * the public yaml_parser_t that yaml_parser_delete frees as they are. */
static void parser_drop(yaml_parser_t *p) {
        if (p->buffer.start)
                explicit_bzero(p->buffer.start, (size_t)(p->buffer.end - p->buffer.start));
        if (p->raw_buffer.start)
                explicit_bzero(p->raw_buffer.start, (size_t)(p->raw_buffer.end - p->raw_buffer.start));
        yaml_parser_delete(p);
}

static unsigned ev_line(const yaml_event_t *ev) {
        return (unsigned)ev->start_mark.line + 1;
}

void ynode_free(struct ynode *n) {
        if (!n)
                return;
        /* a fleet's env: values, a host's Wi-Fi passphrase */
        free_secret(n->scalar);
        for (size_t i = 0; i < n->n; i++) {
                if (n->keys)
                        free_secret(n->keys[i]);
                ynode_free(n->items[i]);
        }
        free(n->keys);
        free(n->key_lines);
        free(n->items);
        free(n);
}

/* Whether the indentation of line (0-based) holds a tab. */
static bool tab_indented(const struct loader *l, size_t line) {
        const char *s = l->text, *end = l->text + l->len;
        for (size_t n = 0; n < line && s < end; n++) {
                const char *nl = memchr(s, '\n', (size_t)(end - s));
                s = nl ? nl + 1 : end;
        }
        for (; s < end && (*s == ' ' || *s == '\t'); s++)
                if (*s == '\t')
                        return true;
        return false;
}

/* libyaml's problem, plus the construct it was reading when the problem is
 * far from where that construct started (an unclosed bracket).  An editor's
 * tab in the indentation is the usual cause of its "found character that
 * cannot start any token", which does not say so. */
static int parse_error(struct loader *l) {
        const yaml_parser_t *p = &l->parser;
        size_t line0 = p->problem_mark.line;
        /* a reader error (invalid UTF-8, a control character) sets only
         * the offset of the byte, not the mark: its line is counted here */
        if (p->error == YAML_READER_ERROR) {
                line0 = 0;
                for (size_t i = 0; i < MIN(p->problem_offset, l->len); i++)
                        line0 += l->text[i] == '\n';
        }
        unsigned line = (unsigned)line0 + 1;
        const char *problem = p->problem ? p->problem : "parse error";
        const char *tab = !strstr(problem, "tab") && tab_indented(l, line0)
                                  ? "; a tab indents this line: YAML indents with spaces only"
                                  : "";
        if (p->context)
                return log_error_at(EINVAL, l->file, line, "malformed YAML: %s (%s, line %u)%s", problem, p->context,
                                    (unsigned)p->context_mark.line + 1, tab);
        return log_error_at(EINVAL, l->file, line, "malformed YAML: %s%s", problem, tab);
}

/* Every event passes here, so what a hand-written configuration never needs
 * is refused wherever it appears (keys included): anchors and aliases
 * (expansion bombs, action at a distance) and explicit tags (which would
 * change a value's type behind the schema's back). */
static int next_event(struct loader *l, yaml_event_t *ev) {
        if (!yaml_parser_parse(&l->parser, ev))
                return parse_error(l);
        unsigned line = ev_line(ev); /* event_drop() clears ev */
        const yaml_char_t *anchor = NULL, *tag = NULL;
        switch (ev->type) {
        case YAML_ALIAS_EVENT:
                event_drop(ev);
                return log_error_at(EINVAL, l->file, line, "YAML aliases are not allowed");
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
        const char *what = anchor ? "anchors" : tag ? "tags" : NULL;
        if (what) {
                event_drop(ev);
                return log_error_at(EINVAL, l->file, line, "YAML %s are not allowed", what);
        }
        return 0;
}

static int count_node(struct loader *l, unsigned line) {
        if (++l->nodes > YAML_MAX_NODES)
                return log_error_at(EINVAL, l->file, line, "YAML has more than %u nodes", YAML_MAX_NODES);
        return 0;
}

/* The value of a scalar event (a key or a value) as a C string. */
static int scalar_value(struct loader *l, const yaml_event_t *ev, char **out) {
        unsigned line = ev_line(ev);
        size_t len = ev->data.scalar.length;
        if (len > YAML_MAX_SCALAR)
                return log_error_at(EFBIG, l->file, line, "scalar of %zu bytes is too large (limit %zu)", len,
                                    YAML_MAX_SCALAR);
        /* A raw NUL is refused up front; this is a "\0" escape, which C
         * strings would silently cut short. */
        if (memchr(ev->data.scalar.value, 0, len))
                return log_error_at(EINVAL, l->file, line, "value contains a NUL byte");
        *out = xstrndup((const char *)ev->data.scalar.value, len);
        return 0;
}

static int load_node(struct loader *l, yaml_event_t *ev, unsigned depth, struct ynode **out);

/* Capacity doubles at each power of two, so a long map or list costs
 * amortised constant time per item. */
static void push(struct ynode *n, char *key, unsigned key_line, struct ynode *item) {
        if ((n->n & (n->n - 1)) == 0) {
                size_t cap = n->n < 4 ? 4 : 2 * n->n;
                n->items = xrealloc(n->items, cap * sizeof *n->items);
                if (n->kind == Y_MAP) {
                        n->keys = xrealloc(n->keys, cap * sizeof *n->keys);
                        n->key_lines = xrealloc(n->key_lines, cap * sizeof *n->key_lines);
                }
        }
        if (n->kind == Y_MAP) {
                n->keys[n->n] = key;
                n->key_lines[n->n] = key_line;
        }
        n->items[n->n++] = item;
}

/* Takes ownership of ev (a mapping key). */
static int load_key(struct loader *l, yaml_event_t *ev, char **out) {
        unsigned line = ev_line(ev);
        int r = ev->type == YAML_SCALAR_EVENT
                        ? count_node(l, line)
                        : log_error_at(EINVAL, l->file, line, "mapping keys must be plain strings");
        /* A plain "<<" is YAML 1.1's merge key: compose would fold another
         * map in here, one that nothing here would look at. */
        if (r >= 0 && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && ev->data.scalar.length == 2 &&
            memcmp(ev->data.scalar.value, "<<", 2) == 0)
                r = log_error_at(EINVAL, l->file, line, "YAML merge keys ('<<') are not allowed");
        if (r >= 0)
                r = scalar_value(l, ev, out);
        event_drop(ev);
        return r;
}

struct key_ref {
        const char *key;
        unsigned line;
};

static int key_ref_cmp(const void *a, const void *b) {
        const struct key_ref *x = a, *y = b;
        int c = strcmp(x->key, y->key);
        if (c)
                return c;
        return (x->line > y->line) - (x->line < y->line);
}

/* Two values for one key: which one wins is a guess no reader of the file
 * should have to make.  Sorted, so a map of many keys costs n log n; the
 * repeat reported is the one met first in the file. */
/* A key as one is written (letters, digits, '_' and '-', at most 64): what
 * else stands where a key goes is a value typed as KEY=VALUE or KEY VALUE,
 * or a pasted secret, and is not repeated in the message. */
static bool reads_as_key(const char *k) {
        size_t n = strspn(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");
        return n && n <= 64 && !k[n];
}

/* What a key that does not read as one likely is, for the message. */
static const char *unread_key_hint(const char *k) {
        return strpbrk(k, "= \t") ? "written KEY=VALUE rather than KEY: VALUE?" : "a pasted secret?";
}

static int check_duplicates(struct loader *l, const struct ynode *map) {
        if (map->n < 2)
                return 0;
        struct key_ref *refs = xmalloc(map->n * sizeof *refs);
        for (size_t i = 0; i < map->n; i++)
                refs[i] = (struct key_ref){map->keys[i], map->key_lines[i]};
        qsort(refs, map->n, sizeof *refs, key_ref_cmp);
        const struct key_ref *first = NULL;
        /* each run of one key, sorted by line: its second is the repeat */
        for (size_t i = 0, j; i < map->n; i = j) {
                for (j = i + 1; j < map->n && strcmp(refs[i].key, refs[j].key) == 0; j++)
                        ;
                if (j - i > 1 && (!first || refs[i + 1].line < first->line))
                        first = &refs[i + 1];
        }
        /* as ynode_check_keys: what does not read as a key (a KEY=VALUE,
         * a pasted secret) is not repeated */
        int r = !first                   ? 0
                : reads_as_key(first->key) ? log_error_at(EINVAL, l->file, first->line, "duplicate key '%s'", first->key)
                                           : log_error_at(EINVAL, l->file, first->line,
                                                          "duplicate key, not shown since it does not read as one "
                                                          "(%s)",
                                                          unread_key_hint(first->key));
        free(refs);
        return r;
}

static int load_children(struct loader *l, struct ynode *n, unsigned depth) {
        for (;;) {
                yaml_event_t ev;
                int r = next_event(l, &ev);
                if (r < 0)
                        return r;
                if (ev.type == YAML_MAPPING_END_EVENT || ev.type == YAML_SEQUENCE_END_EVENT) {
                        event_drop(&ev);
                        return n->kind == Y_MAP ? check_duplicates(l, n) : 0;
                }
                char *key = NULL;
                unsigned key_line = 0;
                if (n->kind == Y_MAP) {
                        key_line = ev_line(&ev);
                        r = load_key(l, &ev, &key);
                        if (r < 0)
                                return r;
                        r = next_event(l, &ev);
                        if (r < 0) {
                                free(key);
                                return r;
                        }
                }
                struct ynode *child = NULL;
                r = load_node(l, &ev, depth, &child);
                if (r < 0) {
                        free(key);
                        return r;
                }
                push(n, key, key_line, child);
        }
}

/* Takes ownership of ev; depth counts the collections around it. */
static int load_node(struct loader *l, yaml_event_t *ev, unsigned depth, struct ynode **out) {
        unsigned line = ev_line(ev);
        int r = count_node(l, line);
        if (r < 0) {
                event_drop(ev);
                return r;
        }
        struct ynode *n = xcalloc(1, sizeof *n);
        n->line = line;
        switch (ev->type) {
        case YAML_SCALAR_EVENT:
                n->kind = Y_SCALAR;
                n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
                r = scalar_value(l, ev, &n->scalar);
                event_drop(ev);
                break;
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT:
                n->kind = ev->type == YAML_MAPPING_START_EVENT ? Y_MAP : Y_SEQ;
                event_drop(ev);
                if (depth >= YAML_MAX_DEPTH)
                        r = log_error_at(EINVAL, l->file, line, "nesting deeper than %u levels", YAML_MAX_DEPTH);
                else
                        r = load_children(l, n, depth + 1);
                break;
        default:
                event_drop(ev);
                r = log_error_at(EINVAL, l->file, line, "unexpected YAML structure");
        }
        if (r < 0) {
                ynode_free(n);
                return r;
        }
        *out = n;
        return 0;
}

static int too_large(const char *file) {
        return log_error(EFBIG, file, "larger than %zu MiB; not a hand-written YAML file", YAML_MAX_FILE >> 20);
}

int yaml_read_file(const char *file, char **text, size_t *len) {
        uint8_t *data = NULL;
        int r = read_file(file, YAML_MAX_FILE, &data, len);
        if (r == -EFBIG)
                return too_large(file);
        if (r < 0)
                return log_error(input_err(r), file, "cannot read: %s", strerror(-r));
        *text = (char *)data;
        return 0;
}

static int load_document(struct loader *l, struct ynode **out) {
        struct ynode *doc = NULL;
        bool in_doc = false;
        for (;;) {
                yaml_event_t ev;
                int r = next_event(l, &ev);
                if (r < 0) {
                        ynode_free(doc);
                        return r;
                }
                yaml_event_type_t t = ev.type;
                unsigned line = ev_line(&ev);
                if (t == YAML_STREAM_END_EVENT) {
                        event_drop(&ev);
                        *out = doc;
                        return 0;
                }
                if (t == YAML_MAPPING_START_EVENT || t == YAML_SEQUENCE_START_EVENT || t == YAML_SCALAR_EVENT) {
                        if (in_doc) {
                                r = load_node(l, &ev, 0, &doc);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                } else if (t == YAML_DOCUMENT_START_EVENT) {
                        if (doc) {
                                event_drop(&ev);
                                ynode_free(doc);
                                return log_error_at(EINVAL, l->file, line,
                                                    "more than one YAML document (a file holds one)");
                        }
                        in_doc = true;
                } else if (t == YAML_DOCUMENT_END_EVENT)
                        in_doc = false;
                event_drop(&ev);
        }
}

int yaml_load(const char *file, const char *text, size_t len, struct ynode **root) {
        /* wiped: a fleet file may hold env: secrets */
        _cleanup_(buf_free_secret) struct buf data = {0};
        *root = NULL;
        if (!text) {
                int r = yaml_read_file(file, (char **)&data.data, &data.len);
                if (r < 0)
                        return r;
                data.cap = data.data ? data.len + 1 : 0;
                text = data.data ? (const char *)data.data : "";
                len = data.len;
        }
        if (len > YAML_MAX_FILE)
                return too_large(file);
        const char *nul = memchr(text, 0, len);
        if (nul) {
                unsigned line = 1;
                for (const char *p = text; p < nul; p++)
                        line += *p == '\n';
                return log_error_at(EINVAL, file, line, "contains a NUL byte; a YAML file must be text");
        }

        struct loader l = {.file = file};
        if (!yaml_parser_initialize(&l.parser)) {
                (void)fputs("dimimage: error: out of memory (yaml)\n", stderr);
                abort();
        }
        /* Windows editors save UTF-8 with a byte-order mark; with the
         * encoding fixed, libyaml would read it as content. */
        if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
                text += 3;
                len -= 3;
        }
        l.text = text;
        l.len = len;
        yaml_parser_set_input_string(&l.parser, (const unsigned char *)text, len);
        yaml_parser_set_encoding(&l.parser, YAML_UTF8_ENCODING);
        struct ynode *doc = NULL;
        int r = load_document(&l, &doc);
        parser_drop(&l.parser);
        if (r < 0)
                return r;
        /* No document, or one holding nothing, is a file with nothing set. */
        if (!doc || ynode_is_null(doc)) {
                ynode_free(doc);
                doc = xcalloc(1, sizeof *doc);
                doc->kind = Y_MAP;
                doc->line = 1;
        }
        if (doc->kind != Y_MAP) {
                unsigned line = doc->line;
                ynode_free(doc);
                return log_error_at(EINVAL, file, line, "the top level must be a mapping (key: value)");
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

bool ynode_is_null(const struct ynode *n) {
        if (!n || n->kind != Y_SCALAR || n->quoted)
                return false;
        static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
        for (size_t i = 0; i < ARRAY_SIZE(nulls); i++)
                if (!strcmp(n->scalar, nulls[i]))
                        return true;
        return false;
}

static unsigned line_of(const struct ynode *n) {
        return n ? n->line : 0;
}

int ynode_string(const char *file, const char *what, const struct ynode *n, char **out) {
        if (!n || n->kind != Y_SCALAR || ynode_is_null(n))
                return log_error_at(EINVAL, file, line_of(n), "%s must be a string", what);
        free(*out);
        *out = xstrdup(n->scalar);
        return 0;
}

int ynode_bool(const char *file, const char *what, const struct ynode *n, bool *out) {
        if (n && n->kind == Y_SCALAR && !n->quoted) {
                static const char *const yes[] = {"true", "True", "TRUE"};
                static const char *const no[] = {"false", "False", "FALSE"};
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
        return log_error_at(EINVAL, file, line_of(n), "%s must be true or false", what);
}

int ynode_uint_range(const char *file, const char *what, const struct ynode *n, unsigned long long min,
                     unsigned long long max, unsigned long long *out) {
        /* Digits only: strtoull would take "-1", " 1" and "+1". */
        size_t len = n && n->kind == Y_SCALAR && !n->quoted ? strlen(n->scalar) : 0;
        if (len == 0 || len > 19 || strspn(n->scalar, "0123456789") != len)
                return log_error_at(EINVAL, file, line_of(n), "%s must be a whole number", what);
        unsigned long long v = strtoull(n->scalar, NULL, 10);
        if (v < min || v > max) {
                if (min == 0)
                        return log_error_at(ERANGE, file, n->line, "%s must be at most %llu", what, max);
                return log_error_at(ERANGE, file, n->line, "%s must be between %llu and %llu", what, min, max);
        }
        *out = v;
        return 0;
}

int ynode_uint(const char *file, const char *what, const struct ynode *n, unsigned long long max,
               unsigned long long *out) {
        return ynode_uint_range(file, what, n, 0, max, out);
}

int ynode_expect(const char *file, const char *what, const struct ynode *n, enum ynode_kind k) {
        if (n && n->kind == k)
                return 0;
        return log_error_at(EINVAL, file, line_of(n), "%s must be %s", what,
                            k == Y_MAP ? "a mapping (key: value)" : k == Y_SEQ ? "a list" : "a single value");
}

int ynode_strings(const char *file, const char *what, const struct ynode *n, char ***out, size_t *count) {
        if (!n || ynode_is_null(n))
                return 0;
        if (n->kind == Y_SCALAR) {
                *out = xrealloc(*out, (*count + 1) * sizeof **out);
                (*out)[(*count)++] = xstrdup(n->scalar);
                return 0;
        }
        if (n->kind != Y_SEQ)
                return log_error_at(EINVAL, file, n->line, "%s must be a string or a list of strings", what);
        for (size_t i = 0; i < n->n; i++) {
                const struct ynode *item = n->items[i];
                if (item->kind != Y_SCALAR || ynode_is_null(item))
                        return log_error_at(EINVAL, file, item->line, "%s[%zu] must be a string", what, i);
                *out = xrealloc(*out, (*count + 1) * sizeof **out);
                (*out)[(*count)++] = xstrdup(item->scalar);
        }
        return 0;
}

int ynode_check_keys(const char *file, const char *what, const struct ynode *n, const char *const *allowed) {
        int r = ynode_expect(file, what, n, Y_MAP);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n->n; i++) {
                bool ok = false;
                for (const char *const *a = allowed; *a && !ok; a++)
                        ok = strcmp(*a, n->keys[i]) == 0;
                if (ok)
                        continue;
                struct buf known = {0};
                for (const char *const *a = allowed; *a; a++)
                        buf_printf(&known, "%s%s", a == allowed ? "" : ", ", *a);
                const char *k = n->keys[i], *list = known.data ? (char *)known.data : "none";
                if (reads_as_key(k))
                        r = log_error_at(EINVAL, file, n->key_lines[i], "%s: unknown key '%s' (known: %s)", what, k,
                                         list);
                else
                        r = log_error_at(EINVAL, file, n->key_lines[i],
                                         "%s: an unknown key, not shown since it does not read as one (%s); known: %s",
                                         what, unread_key_hint(k), list);
                buf_free(&known);
                return r;
        }
        return 0;
}
