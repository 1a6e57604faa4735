/* SPDX-License-Identifier: GPL-3.0-or-later */
/* libFuzzer target: the fleet file's walker (fleet_file.c) on top of the
 * YAML loader (fuzz_yaml covers the loader and the host keys alone).  Any
 * input must either parse into a fleet that keeps the file's promises or
 * fail with exactly one logged error; never crash or leak. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fleet_private.h"
#include "fuzz_common.h"

/* What fleet_build relies on once the file has parsed. */
static void check_fleet(const struct fleet *f) {
        if (!f->nhosts || !f->hosts || f->prefix < 1 || f->prefix > 32)
                abort();
        if (f->format && strcmp(f->format, "img") && strcmp(f->format, "img.xz") && strcmp(f->format, "img.zst") &&
            strcmp(f->format, "img.gz"))
                abort();
        for (size_t i = 0; i < f->nhosts; i++) {
                const struct fleet_host *h = &f->hosts[i];
                if (!h->name || !h->role || !h->address || !h->label || !h->line || strchr(h->address, '/'))
                        abort();
                for (size_t k = 0; k < i; k++)
                        if (!strcasecmp(f->hosts[k].name, h->name) || !strcmp(f->hosts[k].address, h->address))
                                abort();
                for (size_t k = 0; k < h->own.nsets; k++)
                        if (!strchr(h->own.sets[k], '=') || !h->own.set_lines[k])
                                abort();
        }
        for (size_t k = 0; k < f->all.nsets; k++)
                if (!strchr(f->all.sets[k], '=') || !f->all.set_lines[k])
                        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        unsigned before = log_error_count();
        struct fleet f = {0};
        /* a directory in the name: paths in the file are taken relative to it */
        int rc = fleet_parse("dir/fuzz.yml", (const char *)data, size, &f);
        fuzz_one_error_iff_failed(rc, before);
        if (rc >= 0)
                check_fleet(&f);
        fleet_free(&f);
        return 0;
}
