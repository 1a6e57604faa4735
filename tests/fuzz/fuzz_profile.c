/* SPDX-License-Identifier: GPL-3.0-or-later */
/* libFuzzer target: the profile schema walker on top of the YAML loader
 * (yamltree; fuzz_yaml covers the loader alone).  Any input must either load
 * or fail with exactly one logged error, never crash or leak. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "profile.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__asan_default_options(void);

/* libparted's constructor trips ASan's strchr interceptor before main. */
const char *__asan_default_options(void) { return "intercept_strchr=0"; }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        log_level = LOG_QUIET;
        /* Refused inputs each log a line; keep fd 2 for libFuzzer and ASan. */
        FILE *null = fopen("/dev/null", "w");
        if (!null)
                abort();
        stderr = null;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        unsigned before = log_error_count();
        struct profile p;
        int rc = profile_parse("fuzz.yml", (const char *)data, size, &p);
        unsigned errors = log_error_count() - before;
        if ((rc < 0 && errors != 1) || (rc >= 0 && errors != 0))
                abort();
        if (rc >= 0 && (!p.name || !p.noverlays || !p.ncompose || !p.memory_min_mb))
                abort();
        profile_free(&p);
        return 0;
}
