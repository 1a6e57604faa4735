/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A small JSON writer with stable output (for inspect, the manifest and the
 * Imager os_list), pretty-printed with two-space indents. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "util.h"

struct json {
        struct buf out;
        unsigned depth;
        bool need_comma;
        bool after_key;
};

void json_begin_object(struct json *j);
void json_end_object(struct json *j);
void json_begin_array(struct json *j);
void json_end_array(struct json *j);
void json_key(struct json *j, const char *key);
void json_string(struct json *j, const char *s);
void json_int(struct json *j, long long v);
void json_uint(struct json *j, uint64_t v);
void json_bool(struct json *j, bool v);
void json_null(struct json *j);
/* Insert already-valid JSON text verbatim (re-indentation not attempted). */
void json_raw(struct json *j, const char *text);
/* Whether text[0..n) is exactly one JSON object (RFC 8259), whitespace
 * around it allowed: what json_raw may be given when the text comes from
 * outside (an image's manifest).  Strict: valid UTF-8, no NUL, nesting at
 * most JSON_MAX_DEPTH deep. */
#define JSON_MAX_DEPTH 64
bool json_is_object(const char *text, size_t n);
/* The string or number at keys[0].keys[1]... of the object in text[0..n)
 * (the first member of each name; a string's escapes undone but \uXXXX),
 * or NULL when there is none or the value is of another kind; caller
 * frees.  Reads only as far as it must: whether the rest is valid is
 * json_is_object's to say. */
char *json_lookup(const char *text, size_t n, const char *const *keys, size_t nkeys);
/* Finish and return the text (NUL-terminated, trailing newline); caller frees. */
char *json_finish(struct json *j, size_t *len);
