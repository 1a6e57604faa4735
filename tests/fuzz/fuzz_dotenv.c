/* SPDX-License-Identifier: GPL-3.0-or-later */
/* .env parsing must never crash, and whatever parses must survive
 * env_serialize() and a second parse unchanged: that is the promise that
 * the .env we install reads back as the values we validated. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct env e = {0};
        /* a value defined before the file, for ${...} to find */
        env_set(&e, "BASE", "b a$e", ORIGIN_DEFAULT, "profile", 0);
        if (dotenv_parse("fuzz.env", (const char *)data, size, &e, ORIGIN_FILE) == 0) {
                size_t len = 0;
                char *text = env_serialize(&e, &len);
                if (strlen(text) != len)
                        abort();
                struct env back = {0};
                if (dotenv_parse("serialized.env", text, len, &back, ORIGIN_FILE) != 0)
                        abort();
                if (back.n != e.n)
                        abort();
                for (size_t i = 0; i < e.n; i++) {
                        const char *v = env_get(&back, e.v[i].key);
                        if (!v || strcmp(v, e.v[i].value) != 0)
                                abort();
                }
                env_free(&back);
                free(text);
        }
        env_free(&e);
        return 0;
}
