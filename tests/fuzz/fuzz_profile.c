/* SPDX-License-Identifier: GPL-3.0-or-later */
/* libFuzzer target: the profile schema walker on top of the YAML loader
 * (yamltree; fuzz_yaml covers the loader alone).  Any input must either load
 * or fail with exactly one logged error, never crash or leak. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_common.h"
#include "profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        unsigned before = log_error_count();
        struct profile p;
        int rc = profile_parse("fuzz.yml", (const char *)data, size, &p);
        fuzz_one_error_iff_failed(rc, before);
        if (rc >= 0 && (!p.name || !p.noverlays || !p.ncompose || !p.memory_min_mb))
                abort();
        profile_free(&p);
        return 0;
}
