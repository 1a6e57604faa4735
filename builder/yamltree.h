/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A YAML document loaded into a small tree with line numbers: the one
 * loader for every user-written YAML file (--host, --fleet, profiles).
 * Hostile or surprising input is refused while loading, each with file:line:
 * aliases/anchors (no "billion laughs"), explicit tags (which would change
 * types), collections nested deeper than 32, scalars over 64 KiB, NUL bytes,
 * more than 100000 nodes, files over 1 MiB, duplicate or non-scalar mapping
 * keys, more than one document.  An empty document is an empty map; any
 * other top level must be a map. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define YAML_MAX_DEPTH 32u
#define YAML_MAX_SCALAR ((size_t)64 * 1024)
#define YAML_MAX_NODES 100000u
#define YAML_MAX_FILE ((size_t)1024 * 1024)

enum ynode_kind { Y_SCALAR, Y_MAP, Y_SEQ };

struct ynode {
        enum ynode_kind kind;
        unsigned line;
        char *scalar;           /* Y_SCALAR, NUL-free */
        bool quoted;            /* scalar was quoted: never a bool/number/null */
        size_t n;               /* Y_MAP: pairs; Y_SEQ: items */
        char **keys;            /* Y_MAP, unique */
        unsigned *key_lines;    /* Y_MAP */
        struct ynode **items;   /* Y_MAP values / Y_SEQ items */
};

/* Load file (or text when non-NULL) into *root.  Logs file:line, -errno. */
int yaml_load(const char *file, const char *text, size_t len, struct ynode **root);
/* Read file whole (at most YAML_MAX_FILE bytes, NUL-terminated) for a caller
 * that needs the bytes too (e.g. to hash them) before yaml_load(file, text).
 * Logs, -errno. */
int yaml_read_file(const char *file, char **text, size_t *len);
void ynode_free(struct ynode *n);

/* Map lookup; NULL when absent or n is not a map. */
struct ynode *ynode_get(const struct ynode *n, const char *key);
/* An unquoted empty, ~ or null scalar: "KEY:" with nothing after it. */
bool ynode_is_null(const struct ynode *n);

/* Typed accessors: log "file:line: WHAT must be ..." and return -errno.
 * Booleans are unquoted true/false (YAML 1.2: "yes"/"on" are refused, not
 * guessed); numbers are unquoted decimal; a null is not a string. */
int ynode_string(const char *file, const char *what, const struct ynode *n, char **out);
int ynode_bool(const char *file, const char *what, const struct ynode *n, bool *out);
int ynode_uint(const char *file, const char *what, const struct ynode *n, unsigned long long max,
               unsigned long long *out);
/* The same within [min, max]; out of range is -ERANGE. */
int ynode_uint_range(const char *file, const char *what, const struct ynode *n, unsigned long long min,
                     unsigned long long max, unsigned long long *out);
/* n must be of kind k: "WHAT must be a mapping (key: value)" / "a list" / "a
 * single value". */
int ynode_expect(const char *file, const char *what, const struct ynode *n, enum ynode_kind k);
/* A scalar or a sequence of scalars, appended to a string list; absent or
 * null adds nothing. */
int ynode_strings(const char *file, const char *what, const struct ynode *n, char ***out, size_t *count);
/* Refuse keys of map n not listed in allowed (NULL-terminated), naming the
 * key, its line and the known keys: typos must not be silently ignored. */
int ynode_check_keys(const char *file, const char *what, const struct ynode *n, const char *const *allowed);
