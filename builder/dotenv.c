/* SPDX-License-Identifier: GPL-3.0-or-later */
/* .env files read and written the way docker compose (compose-go's dotenv
 * package) reads them, so that what we validate here is what the stack sees
 * on the Pi.  Differences from compose, on purpose: a KEY without '=' is an
 * error (compose would copy it from the environment of whoever runs compose,
 * which for us is the builder machine or nothing), keys are limited to
 * [A-Za-z_][A-Za-z0-9_.-]*, text after a closing quote must be a comment,
 * NUL bytes are refused, and nothing is ever taken from our own environment.
 * No message may quote a value: they are secrets. */
#include "dotenv.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define DOTENV_MAX_SIZE (16u << 20)
/* ${A:-${B:-${C}}} nesting; deeper is hostile and would recurse on our stack. */
#define INTERP_MAX_DEPTH 32
/* No stack has a fraction of this; a file with more is something else, and
 * looking keys up one by one in it would take hours. */
#define DOTENV_MAX_KEYS 10000

/* ---- the variable set ---------------------------------------------------- */

static bool key_start(unsigned char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}
static bool key_char(unsigned char c) {
        return key_start(c) || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

bool env_key_valid(const char *key) {
        if (!key || !key_start((unsigned char)key[0]))
                return false;
        for (const char *c = key + 1; *c; c++)
                if (!key_char((unsigned char)*c))
                        return false;
        return true;
}

static ssize_t env_index(const struct env *env, const char *key) {
        for (size_t i = 0; i < env->n; i++)
                if (strcmp(env->v[i].key, key) == 0)
                        return (ssize_t)i;
        return -1;
}

const struct env_var *env_find(const struct env *env, const char *key) {
        ssize_t i = env_index(env, key);
        return i < 0 ? NULL : &env->v[i];
}

const char *env_get(const struct env *env, const char *key) {
        const struct env_var *v = env_find(env, key);
        return v ? v->value : NULL;
}

void env_set(struct env *env, const char *key, const char *value, enum env_origin origin, const char *file,
             unsigned line) {
        ssize_t i = env_index(env, key);
        struct env_var *v;
        if (i >= 0) {
                v = &env->v[i];
                /* value may point into the old value (env_set(e, k, env_get(e, k))) */
                char *nv = xstrdup(value);
                char *nf = file ? xstrdup(file) : NULL;
                free_secret(v->value);
                free(v->file);
                v->value = nv;
                v->file = nf;
        } else {
                if (env->n == env->cap) {
                        env->cap = env->cap ? env->cap * 2 : 16;
                        env->v = xrealloc(env->v, env->cap * sizeof *env->v);
                }
                v = &env->v[env->n++];
                v->key = xstrdup(key);
                v->value = xstrdup(value);
                v->file = file ? xstrdup(file) : NULL;
        }
        v->origin = origin;
        v->line = line;
        v->unused = false;
        v->shared = false;
}

static void env_var_free(struct env_var *v) {
        free(v->key);
        free_secret(v->value);
        free(v->file);
}

void env_unset(struct env *env, const char *key) {
        ssize_t i = env_index(env, key);
        if (i < 0)
                return;
        env_var_free(&env->v[i]);
        memmove(&env->v[i], &env->v[i + 1], (env->n - (size_t)i - 1) * sizeof *env->v);
        env->n--;
}

void env_free(struct env *env) {
        for (size_t i = 0; i < env->n; i++)
                env_var_free(&env->v[i]);
        free(env->v);
        *env = (struct env){0};
}

const char *env_origin_name(enum env_origin o) {
        switch (o) {
        case ORIGIN_DEFAULT:
                return "default";
        case ORIGIN_FILE:
                return "file";
        case ORIGIN_SET:
                return "set";
        case ORIGIN_GENERATED:
                return "generated";
        case ORIGIN_DERIVED:
                return "derived";
        }
        return "unknown";
}

void env_var_where(const struct env_var *v, char *out, size_t n) {
        if (v->file && v->line)
                snprintf(out, n, "%s:%u", v->file, v->line);
        else if (v->file)
                snprintf(out, n, "%s", v->file);
        else
                snprintf(out, n, "%s", env_origin_name(v->origin));
}

/* ---- ${...} references ---------------------------------------------------- */

enum ref_result { REF_LITERAL, REF_ESCAPE, REF_FOUND };

static bool name_start(unsigned char c) { return key_start(c); }
static bool name_char(unsigned char c) { return key_start(c) || (c >= '0' && c <= '9'); }

/* Recognise what starts at s[i] == '$', as compose-go's template pattern
 * does: "$$", "$NAME", "${NAME}", "${NAME[:]{-,+,?}ARG}".  The closing brace
 * is found by brace counting, falling back to the last '}' on the line (the
 * pattern's greedy ".*}"), so "${A:-{x}" has the default "{x" in both. */
static int ref_at(const char *s, size_t i, struct env_ref *r, size_t *next) {
        const char *p = s + i + 1;
        if (*p == '$') {
                *next = i + 2;
                return REF_ESCAPE;
        }
        if (name_start((unsigned char)*p)) {
                size_t n = 1;
                while (name_char((unsigned char)p[n]))
                        n++;
                *r = (struct env_ref){.name = p, .name_len = n, .op = ENV_REF_PLAIN};
                *next = i + 1 + n;
                return REF_FOUND;
        }
        if (*p != '{')
                return REF_LITERAL;

        const char *close = NULL, *last = NULL;
        int depth = 0;
        for (const char *c = p; *c && *c != '\n'; c++) {
                if (*c == '}') {
                        last = c;
                        if (--depth == 0) {
                                close = c;
                                break;
                        }
                } else if (*c == '{') {
                        depth++;
                        if (c[1] == '\0' || c[1] == '\n')
                                break;
                        c++; /* compose's brace counter skips the next character */
                        if (*c == '}')
                                last = c;
                }
        }
        if (!close) {
                if (!last)
                        return -EINVAL;
                /* the greedy match may only extend to the last brace of the line */
                for (const char *c = last + 1; *c && *c != '\n'; c++)
                        if (*c == '}')
                                last = c;
                close = last;
        }
        const char *in = p + 1, *end = close;
        if (in >= end || !name_start((unsigned char)*in))
                return -EINVAL;
        size_t n = 1;
        while (in + n < end && name_char((unsigned char)in[n]))
                n++;
        *r = (struct env_ref){.name = in, .name_len = n, .op = ENV_REF_PLAIN};
        const char *o = in + n;
        if (o < end) {
                if (*o == ':') {
                        r->colon = true;
                        o++;
                }
                if (o >= end)
                        return -EINVAL;
                switch (*o) {
                case '-':
                        r->op = ENV_REF_DEFAULT;
                        break;
                case '+':
                        r->op = ENV_REF_ALT;
                        break;
                case '?':
                        r->op = ENV_REF_REQUIRED;
                        break;
                default:
                        return -EINVAL;
                }
                r->arg = o + 1;
                r->arg_len = (size_t)(end - (o + 1));
        } else {
                r->arg = NULL;
                r->arg_len = 0;
        }
        *next = (size_t)(close - s) + 1;
        return REF_FOUND;
}

static int log_bad_syntax(const char *file, unsigned line, const char *key) {
        if (key)
                return log_error_at(EINVAL, file, line,
                                    "invalid ${...} in the value of %s: expected ${NAME}, ${NAME:-default}, "
                                    "${NAME:?message} or ${NAME:+alternative} (write $$ for a literal $)",
                                    key);
        return log_error_at(EINVAL, file, line,
                            "invalid ${...}: expected ${NAME}, ${NAME:-default}, ${NAME:?message} or "
                            "${NAME:+alternative} (write $$ for a literal $)");
}

static int log_too_deep(const char *file, unsigned line) {
        return log_error_at(EINVAL, file, line, "${...} nested more than %d levels deep", INTERP_MAX_DEPTH);
}

static int refs_walk(const char *s, const char *file, unsigned line, int (*cb)(const struct env_ref *r, void *u),
                     void *u, unsigned depth) {
        if (depth > INTERP_MAX_DEPTH)
                return log_too_deep(file, line);
        for (size_t i = 0; s[i];) {
                if (s[i] != '$') {
                        i++;
                        continue;
                }
                struct env_ref r;
                size_t next;
                int k = ref_at(s, i, &r, &next);
                if (k < 0)
                        return log_bad_syntax(file, line, NULL);
                if (k == REF_LITERAL) {
                        i++;
                        continue;
                }
                if (k == REF_FOUND) {
                        r.depth = depth;
                        int ret = cb(&r, u);
                        if (ret != 0)
                                return ret;
                        if (r.arg && memchr(r.arg, '$', r.arg_len)) {
                                _cleanup_free_ char *arg = xstrndup(r.arg, r.arg_len);
                                ret = refs_walk(arg, file, line, cb, u, depth + 1);
                                if (ret != 0)
                                        return ret;
                        }
                }
                i = next;
        }
        return 0;
}

int env_references(const char *s, const char *file, unsigned line, int (*cb)(const struct env_ref *r, void *u),
                   void *u) {
        return refs_walk(s, file, line, cb, u, 0);
}

static int interp(const struct env *env, const char *s, struct buf *out, const char *file, unsigned line,
                  const char *key, unsigned depth) {
        if (depth > INTERP_MAX_DEPTH)
                return log_too_deep(file, line);
        size_t lit = 0; /* start of the pending literal run */
        size_t i = 0;
        bool warned = false; /* one line per value, however many unset references it has */
        while (s[i]) {
                if (s[i] != '$') {
                        i++;
                        continue;
                }
                struct env_ref r;
                size_t next;
                int k = ref_at(s, i, &r, &next);
                if (k < 0)
                        return log_bad_syntax(file, line, key);
                if (k == REF_LITERAL) {
                        i++;
                        continue;
                }
                buf_append(out, s + lit, i - lit);
                if (k == REF_ESCAPE) {
                        buf_append(out, "$", 1);
                } else {
                        _cleanup_free_ char *name = xstrndup(r.name, r.name_len);
                        const struct env_var *v = env_find(env, name);
                        bool set = v && (!r.colon || v->value[0]);
                        const char *arg = NULL;
                        switch (r.op) {
                        case ENV_REF_PLAIN:
                                /* In a .env value the "name" may be a piece of a
                                 * password that happens to contain '$': don't show it. */
                                if (!v && !warned && key)
                                        log_warn_at(file, line,
                                                    "the value of %s refers to an unset variable, which becomes "
                                                    "empty (write $$ for a literal $)",
                                                    key);
                                else if (!v && !warned)
                                        log_warn_at(file, line, "variable %s is not set, using an empty string",
                                                    name);
                                warned = warned || !v;
                                break;
                        case ENV_REF_DEFAULT:
                                if (!set)
                                        arg = r.arg;
                                break;
                        case ENV_REF_ALT:
                                if (set)
                                        arg = r.arg;
                                break;
                        case ENV_REF_REQUIRED:
                                if (!set && key)
                                        return log_error_at(EINVAL, file, line,
                                                            "the value of %s requires a variable that is not set "
                                                            "(write $$ for a literal $)",
                                                            key);
                                if (!set) {
                                        /* The message is the compose author's text, shown
                                         * uninterpolated so no other value can leak in. */
                                        if (r.arg_len > 0)
                                                return log_error_at(EINVAL, file, line,
                                                                    "required variable %s is missing a value: %.*s",
                                                                    name, (int)MIN(r.arg_len, 200), r.arg);
                                        return log_error_at(EINVAL, file, line,
                                                            "required variable %s is missing a value", name);
                                }
                                break;
                        }
                        if (arg) {
                                _cleanup_free_ char *a = xstrndup(arg, r.arg_len);
                                int ret = interp(env, a, out, file, line, key, depth + 1);
                                if (ret < 0)
                                        return ret;
                        } else if (v) {
                                buf_puts(out, v->value);
                        }
                }
                i = lit = next;
        }
        buf_append(out, s + lit, i - lit);
        return 0;
}

static int interpolate_value(const struct env *env, const char *in, char **out, const char *file, unsigned line,
                             const char *key) {
        struct buf b = { .secret = true };
        buf_append(&b, "", 0);
        int r = interp(env, in, &b, file, line, key, 0);
        if (r < 0) {
                buf_free(&b);
                return r;
        }
        *out = (char *)buf_steal(&b, NULL);
        return 0;
}

int env_interpolate(const struct env *env, const char *in, char **out, const char *file, unsigned line) {
        return interpolate_value(env, in, out, file, line, NULL);
}

/* ---- parsing ---------------------------------------------------------------- */

/* compose-go's isSpace: blanks that are not line breaks (U+0085 and U+00A0
 * included, as UTF-8). Returns the byte length of the blank at p, or 0. */
static size_t blank_len(const char *p, const char *end) {
        unsigned char c = (unsigned char)*p;
        if (c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r')
                return 1;
        if (c == 0xc2 && p + 1 < end && ((unsigned char)p[1] == 0x85 || (unsigned char)p[1] == 0xa0))
                return 2;
        return 0;
}

/* Go's unicode.IsSpace but for '\n' (the line structure's): what compose-go
 * skips before a statement and trims after a key and an unquoted value.
 * The byte length of the space at [p, end), or 0. */
static size_t uspace_len(const char *p, const char *end) {
        size_t n = blank_len(p, end);
        if (n || end - p < 3)
                return n;
        const unsigned char *u = (const unsigned char *)p;
        unsigned cp = (u[0] & 0x0fu) << 12 | (u[1] & 0x3fu) << 6 | (u[2] & 0x3fu);
        if ((u[0] & 0xf0) != 0xe0 || (u[1] & 0xc0) != 0x80 || (u[2] & 0xc0) != 0x80)
                return 0;
        bool space = cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
                     cp == 0x202f || cp == 0x205f || cp == 0x3000;
        return space ? 3 : 0;
}

/* The same for a space ending at end (s: where the text starts). */
static size_t uspace_len_before(const char *s, const char *end) {
        for (size_t n = 1; n <= 3 && (size_t)(end - s) >= n; n++)
                if (uspace_len(end - n, end) == n)
                        return n;
        return 0;
}

struct parser {
        const char *name;
        const char *p, *end;
        unsigned line;
        struct env *env;
        enum env_origin origin;
};

static void skip_blanks(struct parser *ps) {
        size_t n;
        while (ps->p < ps->end && (n = blank_len(ps->p, ps->end)) > 0)
                ps->p += n;
}

static void skip_to_eol(struct parser *ps) {
        const char *nl = memchr(ps->p, '\n', (size_t)(ps->end - ps->p));
        ps->p = nl ? nl : ps->end;
}

/* Decode the escapes compose-go honours inside double quotes: \a \b \f \n \r
 * \t \v \\ \" \$ and \0NNN (octal, as a Unicode code point); any other
 * backslash stays as it is.  \$ becomes "$$" so interpolation keeps it literal. */
static bool decode_escapes(const char *s, size_t n, struct buf *out) {
        for (size_t i = 0; i < n; i++) {
                if (s[i] != '\\' || i + 1 >= n) {
                        buf_append(out, &s[i], 1);
                        continue;
                }
                char c = s[i + 1], o;
                switch (c) {
                case 'a': o = '\a'; break;
                case 'b': o = '\b'; break;
                case 'f': o = '\f'; break;
                case 'n': o = '\n'; break;
                case 'r': o = '\r'; break;
                case 't': o = '\t'; break;
                case 'v': o = '\v'; break;
                case '\\': o = '\\'; break;
                case '"': o = '"'; break;
                case '$':
                        buf_append(out, "$$", 2);
                        i++;
                        continue;
                case '0': {
                        size_t d = 0;
                        while (d < 3 && i + 2 + d < n && s[i + 2 + d] >= '0' && s[i + 2 + d] <= '9')
                                d++;
                        unsigned v = 0;
                        bool ok = d == 3;
                        for (size_t k = 0; ok && k < 3; k++) {
                                char x = s[i + 2 + k];
                                if (x > '7')
                                        ok = false;
                                v = v * 8 + (unsigned)(x - '0');
                        }
                        if (ok && v == 0)
                                return false; /* a C string cannot carry it, nor can the .env on the Pi */
                        if (ok && v <= 255) {
                                /* Go turns the rune into UTF-8 */
                                if (v < 0x80) {
                                        char b = (char)v;
                                        buf_append(out, &b, 1);
                                } else {
                                        char u[2] = {(char)(0xc0 | (v >> 6)), (char)(0x80 | (v & 0x3f))};
                                        buf_append(out, u, 2);
                                }
                        } else {
                                buf_append(out, s + i, 2 + d);
                        }
                        i += 1 + d;
                        continue;
                }
                default:
                        buf_append(out, "\\", 1);
                        continue;
                }
                buf_append(out, &o, 1);
                i++;
        }
        return true;
}

static int parse_quoted(struct parser *ps, const char *key, unsigned start_line, char **value) {
        char q = *ps->p++;
        struct buf raw = { .secret = true };
        buf_append(&raw, "", 0);
        bool esc = false;
        for (; ps->p < ps->end; ps->p++) {
                char c = *ps->p;
                if (c == '\n')
                        ps->line++;
                if (c != q) {
                        if (!esc && c == '\\') {
                                esc = true;
                                continue;
                        }
                        if (esc) {
                                esc = false;
                                buf_append(&raw, "\\", 1);
                        }
                        buf_append(&raw, &c, 1);
                        continue;
                }
                if (esc) {
                        esc = false;
                        buf_append(&raw, &c, 1);
                        continue;
                }
                ps->p++;
                if (q == '\'') {
                        *value = (char *)buf_steal(&raw, NULL);
                        return 0;
                }
                struct buf dec = { .secret = true };
                buf_append(&dec, "", 0);
                bool ok = decode_escapes((const char *)raw.data, raw.len, &dec);
                buf_free(&raw);
                if (!ok) {
                        buf_free(&dec);
                        return log_error_at(EINVAL, ps->name, start_line,
                                            "the value of %s contains the escape \\0000, a NUL byte", key);
                }
                int r = interpolate_value(ps->env, (const char *)dec.data, value, ps->name, start_line, key);
                buf_free(&dec);
                return r;
        }
        buf_free(&raw);
        return log_error_at(EINVAL, ps->name, start_line, "unterminated %s-quoted value of %s",
                            q == '"' ? "double" : "single", key);
}

static int parse_unquoted(struct parser *ps, const char *key, unsigned line, char **value) {
        const char *s = ps->p;
        skip_to_eol(ps);
        const char *e = ps->p;
        /* an inline comment needs a space before its '#' */
        for (const char *c = s; c + 1 < e; c++)
                if (c[0] == ' ' && c[1] == '#') {
                        e = c;
                        break;
                }
        for (size_t n; e > s && (n = uspace_len_before(s, e)) > 0;)
                e -= n;
        _cleanup_free_secret_ char *raw = xstrndup(s, (size_t)(e - s));
        return interpolate_value(ps->env, raw, value, ps->name, line, key);
}

/* never the key's text: see dotenv.h */
int env_log_bad_key(const char *file, unsigned line, const char *what, const char *k) {
        char why[64];
        if (!*k)
                snprintf(why, sizeof why, "it is empty");
        else if (k[0] >= '0' && k[0] <= '9')
                snprintf(why, sizeof why, "it starts with a digit");
        else {
                size_t i = 0;
                while (k[i] && (i == 0 ? key_start((unsigned char)k[i]) : key_char((unsigned char)k[i])))
                        i++;
                unsigned char c = (unsigned char)k[i];
                snprintf(why, sizeof why, "its character %zu is %s", i + 1,
                         c >= 0x80                ? "not ASCII"
                         : c == ' ' || c == '\t' ? "a space"
                         : c < 0x20 || c == 0x7f  ? "a control character"
                                                  : "punctuation");
        }
        return log_error_at(EINVAL, file, line,
                            "%s%sinvalid variable name: %s; a variable name must match [A-Za-z_][A-Za-z0-9_.-]*",
                            what ? what : "", what ? ": " : "", why);
}

bool env_var_nameable(const struct env_var *v) {
        return env_key_reads_as_name(v->key) || (v->origin == ORIGIN_SET && !v->line);
}

/* Upper case and digits with an underscore: what compose variables look
 * like, and what a pasted base64 or hex secret does not. */
bool env_key_reads_as_name(const char *k) {
        bool underscore = false;
        for (const char *c = k; *c; c++) {
                if (*c == '_')
                        underscore = true;
                else if (!((*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')))
                        return false;
        }
        return underscore && strlen(k) <= 64;
}

/* Every reader of the .env takes it as UTF-8: Compose v1 decodes the
 * whole file first, and the stack's Rust services cannot read a variable
 * that is not (std::env::var).  A file saved as Latin-1 or Windows-1252
 * would build, and the Pi's stack then fail at every start.  Never the
 * value (nor the byte) in the message: a password's, likely. */
static int check_value_utf8(const char *file, unsigned line, const char *key, const char *value) {
        size_t left = strlen(value);
        for (const unsigned char *c = (const unsigned char *)value; *c;) {
                size_t n = *c < 0x80 ? 1 : utf8_len(c, left);
                if (!n)
                        return log_error_at(EINVAL, file, line,
                                            "the value of %s is not UTF-8 text, which docker compose and the stack "
                                            "need; save the file as UTF-8 (not Latin-1 or Windows-1252)",
                                            env_key_reads_as_name(key) ? key : "a key not named here");
                c += n;
                left -= n;
        }
        return 0;
}

static int parse_statement(struct parser *ps) {
        unsigned line = ps->line;
        /* `export KEY=...` as in a shell script */
        if ((size_t)(ps->end - ps->p) > 6 && memcmp(ps->p, "export", 6) == 0 &&
            (ps->p[6] == ' ' || ps->p[6] == '\t')) {
                ps->p += 6;
                skip_blanks(ps);
        }
        const char *ks = ps->p;
        while (ps->p < ps->end && *ps->p != '=' && *ps->p != ':' && *ps->p != '\n')
                ps->p++;
        if (ps->p >= ps->end || *ps->p == '\n')
                /* Don't echo the line: a stray pasted secret is likely. */
                return log_error_at(EINVAL, ps->name, line,
                                    "expected KEY=VALUE (a KEY alone would make docker compose copy it from the "
                                    "environment of the machine running it; write KEY= for an empty value)");
        const char *ke = ps->p++;
        for (size_t n; ke > ks && (n = uspace_len_before(ks, ke)) > 0;)
                ke -= n;
        _cleanup_free_ char *key = xstrndup(ks, (size_t)(ke - ks));
        if (!env_key_valid(key))
                return env_log_bad_key(ps->name, line, NULL, key);
        skip_blanks(ps);
        _cleanup_free_secret_ char *value = NULL;
        int r;
        if (ps->p < ps->end && (*ps->p == '"' || *ps->p == '\'')) {
                r = parse_quoted(ps, key, line, &value);
                if (r < 0)
                        return r;
                skip_blanks(ps);
                if (ps->p < ps->end && *ps->p != '\n' && *ps->p != '#')
                        return log_error_at(EINVAL, ps->name, ps->line,
                                            "unexpected text after the closing quote of %s (only a # comment "
                                            "may follow)",
                                            key);
                skip_to_eol(ps);
        } else {
                r = parse_unquoted(ps, key, line, &value);
                if (r < 0)
                        return r;
        }
        if ((r = check_value_utf8(ps->name, line, key, value)) < 0)
                return r;
        /* Compose takes the later one too, but a repeat is usually a paste
         * gone wrong: say so, without either value. */
        const struct env_var *prev = env_find(ps->env, key);
        if (!prev && ps->env->n >= DOTENV_MAX_KEYS)
                return log_error_at(EINVAL, ps->name, line, "more than %d variables; is this really an environment file?",
                                    DOTENV_MAX_KEYS);
        if (prev && prev->line && prev->file && strcmp(prev->file, ps->name) == 0)
                log_warn_at(ps->name, line, "%s is set again (first on line %u): the later value is used",
                            env_key_reads_as_name(key) ? key : "a key not named here (a pasted secret?)", prev->line);
        env_set(ps->env, key, value, ps->origin, ps->name, line);
        return 0;
}

int dotenv_parse(const char *name, const char *text, size_t len, struct env *env, enum env_origin origin) {
        if (len > DOTENV_MAX_SIZE)
                return log_error(EFBIG, name, "larger than %u MiB; is this really an environment file?",
                                 DOTENV_MAX_SIZE >> 20);
        if (len == 0)
                return 0;
        const char *nul = memchr(text, '\0', len);
        if (nul) {
                unsigned line = 1;
                for (const char *c = text; c < nul; c++)
                        line += *c == '\n';
                /* UTF-16 is what Windows editors save as "Unicode" */
                bool utf16 = len >= 2 && ((uint8_t)text[0] == 0xff || (uint8_t)text[0] == 0xfe) &&
                             ((uint8_t)text[1] == 0xfe || (uint8_t)text[1] == 0xff);
                return log_error_at(EINVAL, name, line, "contains a NUL byte; a .env file must be text%s",
                                    utf16 ? " (this one is UTF-16: save it as UTF-8)" : "");
        }
        struct parser ps = {.name = name, .p = text, .end = text + len, .line = 1, .env = env, .origin = origin};
        if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
                ps.p += 3;
        for (;;) {
                /* blank lines, indentation and comments */
                for (;;) {
                        for (size_t n; ps.p < ps.end && (n = uspace_len(ps.p, ps.end)) > 0;)
                                ps.p += n;
                        if (ps.p < ps.end && *ps.p == '\n') {
                                ps.p++;
                                ps.line++;
                        } else if (ps.p < ps.end && *ps.p == '#') {
                                skip_to_eol(&ps);
                        } else {
                                break;
                        }
                }
                if (ps.p >= ps.end)
                        return 0;
                int r = parse_statement(&ps);
                if (r < 0)
                        return r;
        }
}

int dotenv_read_file(const char *path, char **text, size_t *len) {
        uint8_t *data = NULL;
        *len = 0;
        int r = read_file(path, DOTENV_MAX_SIZE, &data, len);
        if (r == -EFBIG)
                return log_error(r, path, "larger than %u MiB; is this really an environment file?",
                                 DOTENV_MAX_SIZE >> 20);
        if (r < 0)
                return log_error(input_err(r), path, "cannot read environment file: %s", strerror(-r));
        *text = (char *)data;
        return 0;
}

void dotenv_text_free(struct dotenv_text *t) {
        if (t->text)
                explicit_bzero(t->text, t->len);
        free(t->text);
        free(t->path);
        *t = (struct dotenv_text){0};
}

const struct dotenv_text *dotenv_text_find(const struct dotenv_text *v, size_t n, const char *path) {
        for (size_t i = 0; i < n; i++)
                if (!strcmp(v[i].path, path))
                        return &v[i];
        return NULL;
}

int dotenv_parse_file(const char *path, struct env *env) {
        _cleanup_(dotenv_text_free) struct dotenv_text t = {0};
        int r = dotenv_read_file(path, &t.text, &t.len);
        if (r < 0)
                return r;
        return dotenv_parse(path, t.text, t.len, env, ORIGIN_FILE);
}

int env_set_assignment(struct env *env, const char *assignment, const char *what, unsigned line) {
        const char *eq = strchr(assignment, '=');
        if (!eq)
                return log_error_at(EINVAL, what, line, "expected KEY=VALUE");
        _cleanup_free_ char *key = xstrndup(assignment, (size_t)(eq - assignment));
        if (!env_key_valid(key))
                return env_log_bad_key(what, line, NULL, key);
        int r = check_value_utf8(what, line, key, eq + 1);
        if (r < 0)
                return r;
        env_set(env, key, eq + 1, ORIGIN_SET, what, line);
        return 0;
}

/* ---- writing ------------------------------------------------------------------ */

static bool plain_char(unsigned char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               strchr("_-./:@%+,=~^", c) != NULL;
}

/* Compose v1 (docker-compose 1.29 on Bookworm) reads the .env with
 * python-dotenv 0.21 and interpolate=True: unquoted values are taken as they
 * are, single quotes decode only \\ and \', double quotes \\ \' \" \a \b \f
 * \n \r \t \v, and then every value, quoted or not, has ${NAME} and
 * ${NAME:-default} expanded (pattern \$\{[^}:]*(:-[^}]*)?\}) with no way to
 * escape them.  Its quote patterns take \' or \" for an escaped quote even
 * after an escaped backslash, so a value may not end in one inside quotes. */
static bool v1_expands(const char *v) {
        for (const char *p = strstr(v, "${"); p; p = strstr(p + 1, "${")) {
                const char *e = p + 2 + strcspn(p + 2, "}:");
                if (*e == '}' || (e[0] == ':' && e[1] == '-' && strchr(e + 2, '}')))
                        return true;
        }
        return false;
}

enum value_form { FORM_BARE, FORM_SINGLE, FORM_DOUBLE, FORM_NONE };

/* The first form that compose-go (and, with v1, python-dotenv as well) reads
 * back as exactly v.  Single quotes are literal in compose-go except that
 * \' is a quote, so they fit unless the value has a quote, ends in a
 * backslash, or holds a CR (which editors and transfers like to eat); for v1
 * not a \\ either, which python-dotenv makes one.  Double quotes escape
 * \ " $ LF CR; v1 has no escape for $ there. */
static enum value_form value_form(const char *v, bool v1) {
        bool bare = true;
        for (const char *c = v; *c && bare; c++)
                bare = plain_char((unsigned char)*c) || (v1 && *c == '\\');
        if (bare)
                return FORM_BARE;
        if (v1 && v1_expands(v))
                return FORM_NONE;
        size_t n = strlen(v);
        bool ends_bs = v[n - 1] == '\\';
        if (!strchr(v, '\'') && !strchr(v, '\r') && !ends_bs && !(v1 && strstr(v, "\\\\")))
                return FORM_SINGLE;
        if (v1 && (strchr(v, '$') || ends_bs))
                return FORM_NONE;
        return FORM_DOUBLE;
}

static void serialize_value(struct buf *b, const char *v, enum value_form f) {
        if (f == FORM_BARE) {
                buf_puts(b, v);
                return;
        }
        if (f == FORM_SINGLE) {
                buf_puts(b, "'");
                buf_puts(b, v);
                buf_puts(b, "'");
                return;
        }
        buf_puts(b, "\"");
        for (const char *c = v; *c; c++) {
                switch (*c) {
                case '\\': buf_puts(b, "\\\\"); break;
                case '"': buf_puts(b, "\\\""); break;
                case '$': buf_puts(b, "\\$"); break;
                case '\n': buf_puts(b, "\\n"); break;
                case '\r': buf_puts(b, "\\r"); break;
                default: buf_append(b, c, 1);
                }
        }
        buf_puts(b, "\"");
}

static int cmp_var(const void *a, const void *b) {
        return strcmp((*(const struct env_var *const *)a)->key, (*(const struct env_var *const *)b)->key);
}

int env_serialize_for(const struct env *env, bool compose_v1, char **text, size_t *len) {
        const struct env_var **sorted = xcalloc(env->n ? env->n : 1, sizeof *sorted);
        for (size_t i = 0; i < env->n; i++)
                sorted[i] = &env->v[i];
        qsort(sorted, env->n, sizeof *sorted, cmp_var);
        struct buf b = { .secret = true };
        buf_append(&b, "", 0);
        int r = 0;
        for (size_t i = 0; i < env->n && r == 0; i++) {
                const struct env_var *v = sorted[i];
                enum value_form f = value_form(v->value, compose_v1);
                if (f == FORM_NONE) {
                        size_t n = strlen(v->value);
                        const char *why = v1_expands(v->value) ? "it expands ${...} in every value, even quoted"
                                          : v->value[n - 1] == '\\'
                                                  ? "a final backslash would escape the closing quote, and the "
                                                    "value needs quotes"
                                                  : "a '$' needs single quotes, which cannot hold a ', a carriage "
                                                    "return or a double backslash";
                        r = log_error_at(EINVAL, v->file, v->line,
                                         "the value of %s would be read differently by Compose v1 (docker-compose "
                                         "1.29 on Bookworm): %s; change the value",
                                         v->key, why);
                        break;
                }
                buf_puts(&b, v->key);
                buf_puts(&b, "=");
                serialize_value(&b, v->value, f);
                buf_puts(&b, "\n");
        }
        free(sorted);
        if (r < 0) {
                buf_free_secret(&b);
                return r;
        }
        *text = (char *)buf_steal(&b, len);
        return 0;
}

char *env_serialize(const struct env *env, size_t *len) {
        char *text = NULL;
        /* cannot fail for compose-go alone: double quotes fit every value */
        (void)env_serialize_for(env, false, &text, len);
        return text;
}
