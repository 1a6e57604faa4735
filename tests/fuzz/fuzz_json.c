/* SPDX-License-Identifier: GPL-3.0-or-later */
/* json_is_object judges an image's manifest before inspect pastes it into
 * its own output: it must never crash on any bytes, and whatever our writer
 * makes of any bytes (json_string replaces invalid UTF-8) must be judged
 * one JSON object, or a manifest we wrote would be thrown away. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        (void)json_is_object((const char *)data, size);

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
        free(text);
        free(s);
        return 0;
}
