/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Compose scanning (YAML from the user, through libyaml), interpolation of
 * whatever it finds, and path resolution must never crash; resolved paths
 * must always be absolute and normalised. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compose.h"
#include "dotenv.h"
#include "fuzz_common.h"

static bool exists_some(const char *resolved, void *u) {
        (void)u;
        return strlen(resolved) % 3 != 0;
}

static void check_normalised(const char *p) {
        if (p[0] != '/' || strstr(p, "//") || strstr(p, "/./") || strstr(p, "/../") || str_has_suffix(p, "/.") ||
            str_has_suffix(p, "/..") || (strlen(p) > 1 && str_has_suffix(p, "/")))
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct env env = {0};
        env_set(&env, "A", "./a", ORIGIN_FILE, "fuzz.env", 1);
        env_set(&env, "EMPTY", "", ORIGIN_FILE, "fuzz.env", 2);
        env_set(&env, "DB_PASSWORD", "s3cr$t", ORIGIN_FILE, "fuzz.env", 3);

        struct compose_info ci;
        if (compose_scan("fuzz.yml", (const char *)data, size, "/opt/dimdim-health/deploy/docker-compose.app.yml",
                         &ci) == 0) {
                for (size_t i = 0; i < ci.nvars; i++) {
                        if (!env_key_valid(ci.vars[i].name))
                                abort();
                        if (ci.vars[i].arg) {
                                char *out = NULL;
                                if (env_interpolate(&env, ci.vars[i].arg, &out, "fuzz.yml", ci.vars[i].line) == 0)
                                        free(out);
                        }
                }
                for (size_t i = 0; i < ci.npaths; i++)
                        check_normalised(ci.paths[i].resolved);
                if (compose_resolve_paths(&ci, &env) == 0) {
                        for (size_t i = 0; i < ci.npaths; i++)
                                check_normalised(ci.paths[i].resolved);
                        (void)compose_check_paths(&ci, exists_some, NULL);
                }
                compose_info_free(&ci);
        }
        /* the interpolation engine on raw text too */
        if (size < 65536 && !memchr(data, 0, size)) {
                char *s = strndup((const char *)data, size);
                char *out = NULL;
                if (s && env_interpolate(&env, s, &out, "fuzz.txt", 1) == 0)
                        free(out);
                free(s);
        }
        env_free(&env);
        return 0;
}
