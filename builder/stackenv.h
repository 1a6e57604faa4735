/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The stack's environment: profile defaults < --env files in order < --set
 * (< values a fleet derives), then required keys checked, missing secrets
 * generated and weak ones refused. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "compose.h"
#include "dotenv.h"
#include "profile.h"

struct stackenv_input {
        const struct profile *profile;
        char *const *env_files;
        size_t nenv_files;
        const struct dotenv_text *env_texts; /* may be NULL: env files' texts already read (a
                                              * fleet's, once for every host), by path; a file
                                              * not among them is read here */
        size_t nenv_texts;
        char *const *sets;
        size_t nsets;
        const char *sets_file;            /* the fleet file that set_lines refer to */
        const unsigned *set_lines;        /* parallel to sets, may be NULL: the fleet file's
                                           * line of each value, 0 for one from --set */
        const bool *env_file_shared;      /* parallel to env_files, may be NULL: a fleet's file
                                           * for every host (not this host's own) */
        const bool *set_shared;           /* the same, parallel to sets */
        struct env *dropped;              /* may be NULL: receives the keys of shared values
                                           * this role does not use, which are left out of env;
                                           * each one's value is the name the role knows that it
                                           * is likely a typo of, or empty */
        const struct env *derived;        /* fleet wiring, may be NULL */
        const struct env *fixed_secrets;  /* secrets generated earlier (fleet), may be NULL */
        const struct compose_info *compose;
        size_t ncompose;
        bool allow_weak;
};

/* Fills env; keys generated here are also copied to generated.  A shared
 * value (a fleet's, for every host) that the role's stack never names is
 * left out of env: one host's secrets are not written into another's image. */
int stackenv_resolve(const struct stackenv_input *in, struct env *env, struct env *generated);
/* key holds a secret: the profile says so, or its name does (PASSWORD,
 * TOKEN, ...): its value is never printed. */
bool stackenv_is_secret(const struct profile *p, const char *key);
