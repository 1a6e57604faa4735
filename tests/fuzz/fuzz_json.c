/* SPDX-License-Identifier: GPL-3.0-or-later */
/* json_is_object judges an image's manifest before inspect pastes it into
 * its own output: it must never crash on any bytes, and whatever our writer
 * makes of any bytes (json_string replaces invalid UTF-8) must be judged
 * one JSON object, or a manifest we wrote would be thrown away.  json_lookup
 * reads a base's manifest for the build's refusal: no crash on any bytes,
 * and a plain key our writer wrote is found again with its value. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        (void)json_is_object((const char *)data, size);
        free(json_lookup((const char *)data, size, (const char *const[]){"role"}, 1));
        free(json_lookup((const char *)data, size, (const char *const[]){"host", "user"}, 2));

        char *s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = 0; /* a C string: up to the first NUL, as the writer takes it */
        struct json j = {0};
        json_begin_object(&j);
        json_key(&j, s);
        json_string(&j, s);
        json_end_object(&j);
        size_t len;
        char *text = json_finish(&j, &len);
        if (!json_is_object(text, len))
                abort();
        bool plain = true;
        for (const char *c = s; *c; c++)
                plain = plain && *c >= 0x20 && *c < 0x7f && *c != '"' && *c != '\\';
        if (plain) {
                char *got = json_lookup(text, len, (const char *const[]){s}, 1);
                if (!got || strcmp(got, s) != 0)
                        abort();
                free(got);
        }
        free(text);
        free(s);
        return 0;
}
