/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "json.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static void indent(struct json *j) {
        buf_puts(&j->out, "\n");
        for (unsigned i = 0; i < j->depth; i++)
                buf_puts(&j->out, "  ");
}

static void value_prefix(struct json *j) {
        if (j->after_key) {
                j->after_key = false;
                return;
        }
        if (j->need_comma)
                buf_puts(&j->out, ",");
        if (j->depth)
                indent(j);
}

static void open(struct json *j, const char *c) {
        value_prefix(j);
        buf_puts(&j->out, c);
        j->depth++;
        j->need_comma = false;
}

static void close_(struct json *j, const char *c) {
        j->depth--;
        if (j->need_comma)
                indent(j);
        buf_puts(&j->out, c);
        j->need_comma = true;
}

void json_begin_object(struct json *j) { open(j, "{"); }
void json_end_object(struct json *j) { close_(j, "}"); }
void json_begin_array(struct json *j) { open(j, "["); }
void json_end_array(struct json *j) { close_(j, "]"); }

static void put_string(struct json *j, const char *s) {
        buf_puts(&j->out, "\"");
        size_t left = strlen(s);
        for (const unsigned char *c = (const unsigned char *)s; *c; c++, left--) {
                /* JSON is UTF-8: a byte that starts no valid sequence (a
                 * Latin-1 file name, an overlong or surrogate form) becomes
                 * U+FFFD, as a decoder that replaces would make it */
                if (*c >= 0x80) {
                        size_t n = utf8_len(c, left);
                        if (n) {
                                buf_append(&j->out, c, n);
                                c += n - 1;
                                left -= n - 1;
                        } else
                                buf_puts(&j->out, "\\ufffd");
                        continue;
                }
                switch (*c) {
                case '"': buf_puts(&j->out, "\\\""); break;
                case '\\': buf_puts(&j->out, "\\\\"); break;
                case '\n': buf_puts(&j->out, "\\n"); break;
                case '\r': buf_puts(&j->out, "\\r"); break;
                case '\t': buf_puts(&j->out, "\\t"); break;
                default:
                        if (*c < 0x20)
                                buf_printf(&j->out, "\\u%04x", *c);
                        else
                                buf_append(&j->out, c, 1);
                }
        }
        buf_puts(&j->out, "\"");
}

void json_key(struct json *j, const char *key) {
        value_prefix(j);
        put_string(j, key);
        buf_puts(&j->out, ": ");
        j->after_key = true;
        j->need_comma = true;
}

void json_string(struct json *j, const char *s) {
        if (!s) {
                json_null(j);
                return;
        }
        value_prefix(j);
        put_string(j, s);
        j->need_comma = true;
}

void json_int(struct json *j, long long v) {
        value_prefix(j);
        buf_printf(&j->out, "%lld", v);
        j->need_comma = true;
}

void json_uint(struct json *j, uint64_t v) {
        value_prefix(j);
        buf_printf(&j->out, "%" PRIu64, v);
        j->need_comma = true;
}

void json_bool(struct json *j, bool v) {
        value_prefix(j);
        buf_puts(&j->out, v ? "true" : "false");
        j->need_comma = true;
}

void json_null(struct json *j) {
        value_prefix(j);
        buf_puts(&j->out, "null");
        j->need_comma = true;
}

void json_raw(struct json *j, const char *text) {
        value_prefix(j);
        size_t n = strlen(text);
        while (n && (text[n - 1] == '\n' || text[n - 1] == ' '))
                n--;
        buf_append(&j->out, text, n);
        j->need_comma = true;
}

char *json_finish(struct json *j, size_t *len) {
        buf_puts(&j->out, "\n");
        return (char *)buf_steal(&j->out, len);
}

/* ---- validation: a recursive-descent reader that only says yes or no ----
 * No library we link parses JSON (libyaml takes much that is not JSON), and
 * what inspect pastes into its own output must be exactly one value. */

struct reader {
        const unsigned char *p, *end;
        unsigned depth;
};

static void skip_ws(struct reader *r) {
        while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
                r->p++;
}

static bool eat(struct reader *r, char c) {
        if (r->p < r->end && *r->p == (unsigned char)c) {
                r->p++;
                return true;
        }
        return false;
}

static bool is_digit(const struct reader *r) { return r->p < r->end && *r->p >= '0' && *r->p <= '9'; }

static bool read_string(struct reader *r) {
        if (!eat(r, '"'))
                return false;
        while (r->p < r->end) {
                unsigned char c = *r->p;
                if (c == '"') {
                        r->p++;
                        return true;
                }
                if (c < 0x20)
                        return false;
                if (c == '\\') {
                        r->p++;
                        if (r->p >= r->end)
                                return false;
                        c = *r->p++;
                        if (c == 'u') {
                                for (int i = 0; i < 4; i++, r->p++)
                                        if (r->p >= r->end || !*r->p || !strchr("0123456789abcdefABCDEF", *r->p))
                                                return false;
                        } else if (!c || !strchr("\"\\/bfnrt", c))
                                return false;
                        continue;
                }
                size_t n = utf8_len(r->p, (size_t)(r->end - r->p));
                if (!n)
                        return false;
                r->p += n;
        }
        return false;
}

static bool read_number(struct reader *r) {
        eat(r, '-');
        if (eat(r, '0')) {
                /* no leading zeros */
        } else if (is_digit(r)) {
                while (is_digit(r))
                        r->p++;
        } else
                return false;
        if (eat(r, '.')) {
                if (!is_digit(r))
                        return false;
                while (is_digit(r))
                        r->p++;
        }
        if (eat(r, 'e') || eat(r, 'E')) {
                if (!eat(r, '+'))
                        eat(r, '-');
                if (!is_digit(r))
                        return false;
                while (is_digit(r))
                        r->p++;
        }
        return true;
}

static bool read_literal(struct reader *r, const char *word) {
        size_t n = strlen(word);
        if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
                return false;
        r->p += n;
        return true;
}

static bool read_value(struct reader *r);

/* '{' or '[' already seen: members or elements up to the closing one. */
static bool read_container(struct reader *r, bool object) {
        if (++r->depth > JSON_MAX_DEPTH)
                return false;
        char last = object ? '}' : ']';
        skip_ws(r);
        if (!eat(r, last)) {
                do {
                        skip_ws(r);
                        if (object) {
                                if (!read_string(r))
                                        return false;
                                skip_ws(r);
                                if (!eat(r, ':'))
                                        return false;
                                skip_ws(r);
                        }
                        if (!read_value(r))
                                return false;
                        skip_ws(r);
                } while (eat(r, ','));
                if (!eat(r, last))
                        return false;
        }
        r->depth--;
        return true;
}

static bool read_value(struct reader *r) {
        if (r->p >= r->end)
                return false;
        switch (*r->p) {
        case '{': r->p++; return read_container(r, true);
        case '[': r->p++; return read_container(r, false);
        case '"': return read_string(r);
        case 't': return read_literal(r, "true");
        case 'f': return read_literal(r, "false");
        case 'n': return read_literal(r, "null");
        default: return read_number(r);
        }
}

bool json_is_object(const char *text, size_t n) {
        struct reader r = { .p = (const unsigned char *)text, .end = (const unsigned char *)text + n };
        skip_ws(&r);
        if (r.p >= r.end || *r.p != '{' || !read_value(&r))
                return false;
        skip_ws(&r);
        return r.p == r.end;
}

/* ---- lookup: one scalar by its keys, for messages about a manifest ---- */

/* The string at r (its quotes included), escapes undone but for \u, which
 * stays as written: what it is for is a message, made printable anyway. */
static char *take_string(struct reader *r) {
        const unsigned char *start = r->p;
        if (!read_string(r))
                return NULL;
        struct buf b = {0};
        for (const unsigned char *s = start + 1; s < r->p - 1; s++) {
                if (*s == '\\' && s[1] != 'u') {
                        s++;
                        const char *from = "bfnrt", *to = "\b\f\n\r\t", *at = strchr(from, *s);
                        buf_append(&b, at ? &to[at - from] : (const char *)s, 1);
                } else
                        buf_append(&b, s, 1);
        }
        buf_append(&b, "", 1);
        return (char *)buf_steal(&b, NULL);
}

char *json_lookup(const char *text, size_t n, const char *const *keys, size_t nkeys) {
        struct reader r = {.p = (const unsigned char *)text, .end = (const unsigned char *)text + n};
        for (size_t level = 0; level < nkeys; level++) {
                skip_ws(&r);
                if (!eat(&r, '{'))
                        return NULL;
                for (bool found = false; !found;) {
                        skip_ws(&r);
                        const unsigned char *key = r.p + 1;
                        if (!read_string(&r))
                                return NULL;
                        size_t klen = (size_t)(r.p - 1 - key);
                        found = klen == strlen(keys[level]) && memcmp(key, keys[level], klen) == 0;
                        skip_ws(&r);
                        if (!eat(&r, ':'))
                                return NULL;
                        skip_ws(&r);
                        if (found)
                                break;
                        if (!read_value(&r))
                                return NULL;
                        skip_ws(&r);
                        if (!eat(&r, ','))
                                return NULL; /* the object ended without the key */
                }
        }
        if (r.p < r.end && *r.p == '"')
                return take_string(&r);
        const unsigned char *start = r.p;
        if (r.p < r.end && (*r.p == '-' || (*r.p >= '0' && *r.p <= '9')) && read_number(&r))
                return xstrndup((const char *)start, (size_t)(r.p - start));
        return NULL;
}
