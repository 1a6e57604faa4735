/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Environment files with docker compose's semantics: comments, `export`,
 * single quotes (literal), double quotes (escapes \n \t \" \\ \$, may span
 * lines), unquoted values (trailing " #comment" stripped, whitespace
 * trimmed), ${VAR} / $VAR interpolation from earlier keys, $$ literal.
 * Errors name file and line and never quote a value. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

enum env_origin { ORIGIN_DEFAULT, ORIGIN_FILE, ORIGIN_SET, ORIGIN_GENERATED, ORIGIN_DERIVED };

struct env_var {
        char *key;
        char *value;
        enum env_origin origin;
        char *file;     /* where it came from (file path, "--set", profile path) */
        unsigned line;  /* 0 when not from a file */
        bool unused;    /* named by neither the profile nor a compose file: kept out of the manifest */
        bool shared;    /* a fleet's value for every host: left out where the host's stack does not use it */
};

struct env {
        struct env_var *v;
        size_t n, cap;
};

/* Parse text into env (later keys override earlier ones, as compose does).
 * name is the file name for messages.  Refuses NUL bytes, invalid keys,
 * unterminated quotes, a BOM is skipped, CRLF accepted.  Logs, -errno. */
int dotenv_parse(const char *name, const char *text, size_t len, struct env *env, enum env_origin origin);
int dotenv_parse_file(const char *path, struct env *env);
/* An environment file's text, read once for readers that each parse it (a
 * fleet's hosts: a pipe such as /dev/stdin gives its text to one read
 * only).  dotenv_read_file logs as dotenv_parse_file does, -errno;
 * dotenv_text_free wipes the text (it may hold secrets). */
struct dotenv_text {
        char *path;
        char *text;
        size_t len;
};
int dotenv_read_file(const char *path, char **text, size_t *len);
void dotenv_text_free(struct dotenv_text *t);
/* The text read for path among v's n, or NULL. */
const struct dotenv_text *dotenv_text_find(const struct dotenv_text *v, size_t n, const char *path);
/* "KEY=VALUE" from --set (what "--set", line 0) or a fleet file's env: map
 * (its file and line, for messages); value taken literally. */
int env_set_assignment(struct env *env, const char *assignment, const char *what, unsigned line);

void env_set(struct env *env, const char *key, const char *value, enum env_origin origin, const char *file,
             unsigned line);
const char *env_get(const struct env *env, const char *key);
const struct env_var *env_find(const struct env *env, const char *key);
bool env_key_valid(const char *key);
/* The error for an invalid key (file:line, "what: " before it unless NULL),
 * saying what is wrong by the class and position of its first bad
 * character, never its text: a line that is not KEY=VALUE is likely a
 * pasted secret, whose first '=' made the secret the key.  -EINVAL. */
int env_log_bad_key(const char *file, unsigned line, const char *what, const char *key);
/* Upper case and digits with an underscore: what compose variables look
 * like, and what a pasted base64 or hex secret does not (so one that does
 * not may be named in a message). */
bool env_key_reads_as_name(const char *key);
/* v's key may be named in a message: it reads as a name, or it was typed
 * whole as --set KEY=VALUE (no line), not read from a file where a pasted
 * secret's '=' could have made it a key. */
bool env_var_nameable(const struct env_var *v);
void env_unset(struct env *env, const char *key);
void env_free(struct env *env);
/* Sorted by key; values single-quoted when they need it so that docker
 * compose reads back exactly the same strings. Caller frees. */
char *env_serialize(const struct env *env, size_t *len);
/* The same, in a form that Compose v1 (python-dotenv, which expands ${...}
 * even in quotes and has no escape for '$' in double quotes) reads back the
 * same too when compose_v1; a value no form fits is an error naming its key
 * and where it came from, never the value.  Logs, -errno. */
int env_serialize_for(const struct env *env, bool compose_v1, char **text, size_t *len);
const char *env_origin_name(enum env_origin o);
/* Where v's value came from ("FILE:LINE", "--set", "default"...), for
 * messages that must not quote it. */
void env_var_where(const struct env_var *v, char *out, size_t n);

/* Compose-style interpolation of one string: $VAR, ${VAR}, ${VAR:-def},
 * ${VAR-def}, ${VAR:?msg}, ${VAR?msg}, ${VAR:+alt}, ${VAR+alt}, $$.
 * Missing required variables are an error naming file:line and the key. */
int env_interpolate(const struct env *env, const char *in, char **out, const char *file, unsigned line);

/* One ${...} or $VAR reference found in a string (pointers into it). */
enum env_ref_op { ENV_REF_PLAIN, ENV_REF_DEFAULT, ENV_REF_REQUIRED, ENV_REF_ALT };
struct env_ref {
        const char *name;
        size_t name_len;
        enum env_ref_op op;
        bool colon;             /* ":-", ":?", ":+": an empty value counts as unset */
        const char *arg;        /* default, message or alternative; NULL for PLAIN */
        size_t arg_len;
        unsigned depth;         /* 0, or how many arguments of other references hold this one */
};
/* Call cb for every reference in s, nested ones (inside arguments) too, an
 * outer one before those in its argument (so the enclosing reference of one
 * at depth d is the last one reported at depth d - 1); $$
 * is an escape, not a reference.  Invalid syntax ("${", "${1}") is logged
 * naming file:line; a non-zero return from cb stops the walk and is returned. */
int env_references(const char *s, const char *file, unsigned line, int (*cb)(const struct env_ref *r, void *u),
                   void *u);
