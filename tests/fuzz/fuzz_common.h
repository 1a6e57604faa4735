/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Setup every libFuzzer target shares.  Each target is one translation unit
 * (tests/fuzz/fuzz_X.c plus the library sources), so this header defines the
 * hooks libFuzzer and ASan look up by name: include it exactly once, from the
 * target's .c file. */
#ifndef DIMIMAGE_FUZZ_COMMON_H
#define DIMIMAGE_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__asan_default_options(void);

/* libparted (linked in through the library) runs strchr on an unterminated
 * buffer in its constructor (ped_disk_gpt_init); ASan's strchr interceptor
 * would abort before main.  Not our bug, and not in code under test. */
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

/* rc and the number of errors logged since before must agree: a failure
 * logs exactly one error, a success none. */
static inline void fuzz_one_error_iff_failed(int rc, unsigned before) {
        unsigned errors = log_error_count() - before;
        if ((rc < 0 && errors != 1) || (rc >= 0 && errors != 0))
                abort();
}

#endif
