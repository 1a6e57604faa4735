/* SPDX-License-Identifier: GPL-3.0-or-later */
/* .env parsing must never crash, and whatever parses must survive
 * env_serialize() and a second parse unchanged: that is the promise that
 * the .env we install reads back as the values we validated. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dotenv.h"
#include "fuzz_common.h"

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
