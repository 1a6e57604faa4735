/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A YAML document loaded into a small tree with line numbers, for the
 * user-written host and fleet files.  Hostile input is refused while
 * loading: aliases/anchors (no "billion laughs"), nesting deeper than 32,
 * scalars over 64 KiB, more than 100000 nodes, more than one document. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

enum ynode_kind { Y_SCALAR, Y_MAP, Y_SEQ };

struct ynode {
        enum ynode_kind kind;
        unsigned line;
        char *scalar;           /* Y_SCALAR */
        bool quoted;            /* scalar was quoted: never a bool/null */
        size_t n;               /* Y_MAP: pairs; Y_SEQ: items */
        char **keys;            /* Y_MAP */
        unsigned *key_lines;    /* Y_MAP */
        struct ynode **items;   /* Y_MAP values / Y_SEQ items */
};

/* Load file (or text when non-NULL) into *root.  Logs file:line, -errno. */
int yaml_load(const char *file, const char *text, size_t len, struct ynode **root);
void ynode_free(struct ynode *n);

/* Map lookup; NULL when absent or n is not a map. */
struct ynode *ynode_get(const struct ynode *n, const char *key);

/* Typed accessors: log "file:line: KEY: must be ..." and return -EINVAL. */
int ynode_string(const char *file, const char *what, const struct ynode *n, char **out);
int ynode_bool(const char *file, const char *what, const struct ynode *n, bool *out);
int ynode_uint(const char *file, const char *what, const struct ynode *n, unsigned long long max,
               unsigned long long *out);
/* A scalar or a sequence of scalars, as a string list. */
int ynode_strings(const char *file, const char *what, const struct ynode *n, char ***out, size_t *count);
/* Refuse keys of map n not listed in allowed (NULL-terminated): typos must
 * not be silently ignored. */
int ynode_check_keys(const char *file, const char *what, const struct ynode *n, const char *const *allowed);
