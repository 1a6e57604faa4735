/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "stackenv.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "secret.h"
#include "util.h"

bool stackenv_is_secret(const struct profile *p, const char *key) {
        const struct profile_env *pe = profile_env_find(p, key);
        return (pe && pe->secret) || secret_key_is_sensitive(key);
}

/* Why v is not an http(s) URL with a host, or NULL: a placeholder left
 * from the guide (http://<Pi2-IP>:5080), a scheme forgotten. */
static const char *url_problem(const char *v) {
        const char *host = !strncasecmp(v, "http://", 7) ? v + 7 : !strncasecmp(v, "https://", 8) ? v + 8 : NULL;
        if (!host)
                return "does not start with http:// or https://";
        if (strpbrk(v, "<>{}\"' \t\\"))
                return "holds a character no URL has (a placeholder such as <Pi2-IP> left in?)";
        /* user:password@ before the host */
        size_t authority = strcspn(host, "/?#");
        const char *at = memrchr(host, '@', authority);
        if (at)
                host = at + 1;
        size_t n;
        if (*host == '[') { /* an IPv6 literal */
                const char *close = strchr(host, ']');
                if (!close || close - host < 3)
                        return "has an IPv6 address without its closing ']'";
                n = (size_t)(close - host) + 1;
        } else {
                n = strcspn(host, ":/?#");
        }
        if (!n)
                return "names no host";
        if (host[n] == ':') {
                const char *port = host + n + 1;
                size_t np = strspn(port, "0123456789");
                if (!np || np > 5 || (port[np] && !strchr("/?#", port[np])) || strtoul(port, NULL, 10) > 65535)
                        return "has no valid port after the host's ':'";
        } else if (host[n] && !strchr("/?#", host[n])) {
                return "has something after its host that is neither a port nor a path";
        }
        return NULL;
}

/* Whether compose evaluates reference i of a compose file: one nested in a
 * default, an alternative or a message only when its enclosing reference
 * (itself evaluated) uses that argument. */
static bool ref_evaluated(const struct compose_info *ci, size_t i, const struct env *env) {
        for (; ci->vars[i].nested; i = ci->vars[i].outer) {
                const struct compose_var *o = &ci->vars[ci->vars[i].outer];
                const char *v = env_get(env, o->name);
                bool set = v && (!o->colon || *v);
                if (set != (o->kind == REF_ALT))
                        return false;
        }
        return true;
}

static bool named_by_stack(const struct stackenv_input *in, const char *key) {
        /* Compose reads its own settings (COMPOSE_PARALLEL_LIMIT,
         * DOCKER_DEFAULT_PLATFORM...) from the same file */
        if (str_has_prefix(key, "COMPOSE_") || str_has_prefix(key, "DOCKER_"))
                return true;
        if (profile_env_find(in->profile, key))
                return true;
        for (size_t c = 0; c < in->ncompose; c++)
                for (size_t i = 0; i < in->compose[c].nvars; i++)
                        if (!strcmp(in->compose[c].vars[i].name, key))
                                return true;
        return false;
}

/* Levenshtein distance ignoring case, or UINT_MAX for names too long to
 * be worth it (keys are checked to be at most a line of text anyway). */
static unsigned name_distance(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);
        if (la > 64 || lb > 64)
                return UINT_MAX;
        unsigned row[65];
        for (size_t j = 0; j <= lb; j++)
                row[j] = (unsigned)j;
        for (size_t i = 1; i <= la; i++) {
                unsigned diag = row[0];
                row[0] = (unsigned)i;
                for (size_t j = 1; j <= lb; j++) {
                        unsigned up = row[j];
                        unsigned cost = toupper((unsigned char)a[i - 1]) != toupper((unsigned char)b[j - 1]);
                        unsigned best = diag + cost;
                        if (up + 1 < best)
                                best = up + 1;
                        if (row[j - 1] + 1 < best)
                                best = row[j - 1] + 1;
                        row[j] = best;
                        diag = up;
                }
        }
        return row[lb];
}

/* The name the stack knows that key most likely meant: the same but for
 * case, or at most two edits away (one for short names); NULL if none. */
static void closer(const char *key, const char *name, const char **best, unsigned *best_d) {
        unsigned d = name_distance(key, name);
        if (d < *best_d) {
                *best = name;
                *best_d = d;
        }
}

static const char *likely_meant(const struct stackenv_input *in, const char *key) {
        const char *best = NULL;
        unsigned best_d = strlen(key) < 6 ? 2 : 3;
        const struct profile *p = in->profile;
        for (size_t i = 0; i < p->nenv; i++)
                closer(key, p->env[i].key, &best, &best_d);
        for (size_t c = 0; c < in->ncompose; c++)
                for (size_t i = 0; i < in->compose[c].nvars; i++)
                        closer(key, in->compose[c].vars[i].name, &best, &best_d);
        return best;
}

/* A key the stack never names reaches no container: a typo (then the real
 * key silently keeps its default or is generated), or a secret pasted on a
 * line of its own whose '=' made it a key. */
static bool unused_key(const struct stackenv_input *in, const struct env_var *v) {
        return (v->origin == ORIGIN_FILE || v->origin == ORIGIN_SET) && !named_by_stack(in, v->key);
}

/* A fleet's shared value is meant for the hosts whose stack uses it (the
 * app's database password is not the OpenObserve Pi's business): left out
 * of this host's, before its secrets are judged, and whether any host used
 * it is the fleet's to say (in->dropped). */
static void drop_shared_unused(const struct stackenv_input *in, struct env *env) {
        for (size_t i = env->n; i-- > 0;) {
                const struct env_var *v = &env->v[i];
                if (!v->shared || !unused_key(in, v))
                        continue;
                char where[512];
                env_var_where(v, where, sizeof where);
                /* another host may use it: a typo only if none does, said
                 * once by the fleet, with the name this role knows close to it */
                const char *meant = likely_meant(in, v->key);
                if (in->dropped)
                        env_set(in->dropped, v->key, meant ? meant : "", v->origin, v->file, v->line);
                log_debug("%s: a shared value role '%s' does not use, left out of this host's .env", where,
                          in->profile->name);
                env_unset(env, env->v[i].key);
        }
}

/* Warned about, named only when it reads as a variable name, and kept out
 * of the world-readable manifest; it stays in .env, as compose would read
 * it. */
static void flag_unused(const struct stackenv_input *in, struct env *env) {
        for (size_t i = 0; i < env->n; i++) {
                struct env_var *v = &env->v[i];
                if (!unused_key(in, v))
                        continue;
                v->unused = true;
                char where[512];
                env_var_where(v, where, sizeof where);
                /* a key this close to a known name is that name mistyped,
                 * not a pasted secret: it can be named */
                const char *meant = likely_meant(in, v->key);
                if (meant)
                        log_warn(where, "%s is not used by role '%s'; did you mean %s?%s", v->key, in->profile->name,
                                 meant, strcasecmp(meant, v->key) ? "" : " (names are case-sensitive)");
                else if (env_var_nameable(v))
                        log_warn(where, "%s is not used by role '%s' (neither its profile nor its compose files name it); "
                                 "a typo?", v->key, in->profile->name);
                else
                        log_warn(where, "a variable role '%s' does not use, not named here since it does not read as "
                                 "a variable name (a pasted secret?); it is left out of the manifest",
                                 in->profile->name);
        }
}

/* An explicit value of a key the fleet wires that is not the wired one.
 * Given for one host it is meant (an OpenObserve outside the fleet, say);
 * given for every host it is a slip, the guide's OPENOBSERVE_URL or an
 * old password in a shared .env, and the Pi could not reach its peer's
 * service with it.  Values are never shown: they may be secrets. */
static int check_wiring_kept(const struct profile *p, const struct env_var *have) {
        const struct profile_env *pe = profile_env_find(p, have->key);
        const char *tpl = pe && pe->fleet ? pe->fleet : "a peer's value";
        char where[512];
        env_var_where(have, where, sizeof where);
        if (!have->shared) {
                log_warn(where, "%s given for this host is kept over what the fleet wires in (%s)", have->key, tpl);
                return 0;
        }
        return log_error(EINVAL, where,
                         "%s, given here for every host, differs from what the fleet wires into role '%s' (%s): its "
                         "stack could not reach that host's service with it; remove it here (the fleet fills it in), "
                         "or give it in that host's env: to override the wiring",
                         have->key, p->name, tpl);
}

static int parse_env_file(const struct stackenv_input *in, const char *path, struct env *env) {
        const struct dotenv_text *t = dotenv_text_find(in->env_texts, in->nenv_texts, path);
        return t ? dotenv_parse(path, t->text, t->len, env, ORIGIN_FILE) : dotenv_parse_file(path, env);
}

int stackenv_resolve(const struct stackenv_input *in, struct env *env, struct env *generated) {
        const struct profile *p = in->profile;
        int r;
        for (size_t i = 0; i < p->nenv; i++)
                if (p->env[i].def)
                        env_set(env, p->env[i].key, p->env[i].def, ORIGIN_DEFAULT, p->path, p->env[i].line);
        for (size_t i = 0; i < in->nenv_files; i++) {
                if ((r = parse_env_file(in, in->env_files[i], env)) < 0)
                        return r;
                /* what this file set, and no later one has yet */
                for (size_t k = 0; in->env_file_shared && in->env_file_shared[i] && k < env->n; k++)
                        if (env->v[k].origin == ORIGIN_FILE && env->v[k].file &&
                            !strcmp(env->v[k].file, in->env_files[i]))
                                env->v[k].shared = true;
        }
        for (size_t i = 0; i < in->nsets; i++) {
                unsigned line = in->set_lines ? in->set_lines[i] : 0;
                if ((r = env_set_assignment(env, in->sets[i], line ? in->sets_file : "--set", line)) < 0)
                        return r;
                if (in->set_shared && in->set_shared[i]) {
                        _cleanup_free_ char *key = xstrndup(in->sets[i], strcspn(in->sets[i], "="));
                        for (size_t k = 0; k < env->n; k++)
                                if (!strcmp(env->v[k].key, key))
                                        env->v[k].shared = true;
                }
        }
        if (in->derived)
                for (size_t i = 0; i < in->derived->n; i++) {
                        const struct env_var *v = &in->derived->v[i];
                        /* the user's explicit value beats a derived one */
                        const struct env_var *have = env_find(env, v->key);
                        if (!have || have->origin == ORIGIN_DEFAULT)
                                env_set(env, v->key, v->value, v->origin, v->file, v->line);
                        else if (strcmp(have->value, v->value) && (r = check_wiring_kept(p, have)) < 0)
                                return r;
                }

        /* Generate what the profile marks as generated and nobody gave. */
        for (size_t i = 0; i < p->nenv; i++) {
                const struct profile_env *pe = &p->env[i];
                const char *have = env_get(env, pe->key);
                if (!pe->generate || (have && *have))
                        continue;
                const char *fixed = in->fixed_secrets ? env_get(in->fixed_secrets, pe->key) : NULL;
                if (fixed) {
                        env_set(env, pe->key, fixed, ORIGIN_GENERATED, NULL, 0);
                        continue;
                }
                _cleanup_free_ char *val = NULL;
                if ((r = secret_generate(pe->length ? pe->length : 32, &val)) < 0)
                        return log_error(r, p->path, "cannot generate %s: no randomness", pe->key);
                env_set(env, pe->key, val, ORIGIN_GENERATED, NULL, 0);
                env_set(generated, pe->key, val, ORIGIN_GENERATED, NULL, 0);
                explicit_bzero(val, strlen(val));
        }

        /* Required: by the profile, and by ${VAR:?msg} in a compose file. */
        for (size_t i = 0; i < p->nenv; i++) {
                const struct profile_env *pe = &p->env[i];
                const struct env_var *given = env_find(env, pe->key);
                if (pe->required && given && !*given->value && given->origin != ORIGIN_DEFAULT) {
                        char where[512];
                        env_var_where(given, where, sizeof where);
                        return log_error(EINVAL, where, "%s is empty, and role '%s' needs a value", pe->key, p->name);
                }
                if (pe->required && (!given || !*given->value))
                        return log_error_at(EINVAL, p->path, pe->line,
                                            "%s is required for role '%s' but not set: add it to an --env file or "
                                            "use --set %s=...",
                                            pe->key, p->name, pe->key);
        }
        for (size_t i = 0; i < p->nenv; i++) {
                const struct profile_env *pe = &p->env[i];
                const struct env_var *v = env_find(env, pe->key);
                const char *why = pe->url && v && *v->value ? url_problem(v->value) : NULL;
                if (!why)
                        continue;
                char where[512];
                env_var_where(v, where, sizeof where);
                return log_error(EINVAL, where, "%s %s; e.g. http://192.168.1.102:5080", pe->key, why);
        }
        for (size_t c = 0; c < in->ncompose; c++) {
                const struct compose_info *ci = &in->compose[c];
                for (size_t i = 0; i < ci->nvars; i++) {
                        const struct compose_var *cv = &ci->vars[i];
                        const char *v = env_get(env, cv->name);
                        /* ${V?msg} takes an empty V, as compose does; ${V:?msg} does not */
                        if (cv->kind == REF_REQUIRED && (!v || (cv->colon && !*v)) && ref_evaluated(ci, i, env))
                                return log_error_at(EINVAL, ci->file, cv->line,
                                                    "%s is required (%s) but %s: add it to an --env file or use "
                                                    "--set %s=...",
                                                    cv->name, cv->arg && *cv->arg ? cv->arg : "no default",
                                                    v ? "empty" : "not set", cv->name);
                }
        }

        drop_shared_unused(in, env);
        for (size_t i = 0; i < env->n; i++) {
                const struct env_var *v = &env->v[i];
                if (!stackenv_is_secret(p, v->key))
                        continue;
                /* an empty optional secret is "not configured", not weak */
                const struct profile_env *pe = profile_env_find(p, v->key);
                if (!*v->value && pe && !pe->required && !pe->generate)
                        continue;
                const char *why = secret_weakness(v->value);
                if (!why)
                        continue;
                char where[512];
                env_var_where(v, where, sizeof where);
                /* named as flag_unused names one: a key the profile does not
                 * know may be a pasted secret whose '=' made it one */
                const char *key = pe || env_var_nameable(v) ? v->key
                                                            : "the variable here (not named: it does not read as a "
                                                              "variable name, a pasted secret?)";
                if (!in->allow_weak)
                        return log_error(EINVAL, where, "%s %s; use a strong value%s, or pass --allow-weak-secrets",
                                         key, why, pe && pe->generate ? " (or omit it to have one generated)" : "");
                log_warn(where, "%s %s; kept because of --allow-weak-secrets", key, why);
        }
        flag_unused(in, env);
        /* last, so a refused environment's error is not preceded by it */
        for (size_t i = 0; i < p->nenv; i++) {
                const struct profile_env *pe = &p->env[i];
                const char *v = env_get(env, pe->key);
                if (pe->warn_unset && (!v || !*v))
                        log_warn_at(p->path, pe->line, "%s is not set: %s; add it to an --env file or use --set %s=...",
                                    pe->key, pe->warn_unset, pe->key);
        }
        return 0;
}
