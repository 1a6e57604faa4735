/* SPDX-License-Identifier: GPL-3.0-or-later */
/* libFuzzer target: the profile YAML parser and schema walker.  Any input
 * must either load or fail with exactly one logged error, never crash or
 * leak. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "log.h"
#include "profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        unsigned before = log_error_count();
        struct profile p;
        int rc = profile_parse("fuzz.yml", (const char *)data, size, &p);
        unsigned errors = log_error_count() - before;
        if ((rc < 0 && errors != 1) || (rc >= 0 && errors != 0))
                abort();
        if (rc >= 0 && (!p.name || !p.noverlays || !p.ncompose))
                abort();
        profile_free(&p);
        return 0;
}
