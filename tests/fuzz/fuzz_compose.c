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
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

const char *__asan_default_options(void);

/* libparted's constructor (ped_disk_gpt_init) trips ASan's strchr
 * interceptor before main: not our code, and not reachable from here. */
const char *__asan_default_options(void) { return "intercept_strchr=0"; }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        log_level = LOG_QUIET;
        /* Each refused input logs one error line; millions of them would
         * swamp the log.  Point our stderr at /dev/null without freopen():
         * libFuzzer keeps its own copy of the old FILE * and ASan writes to
         * fd 2, so their reports and stats still show. */
        FILE *null = fopen("/dev/null", "w");
        if (!null)
                abort();
        stderr = null;
        return 0;
}

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
