/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "json.h"

#include <inttypes.h>
#include <stdio.h>

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
        for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
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
