/* SPDX-License-Identifier: GPL-3.0-or-later */
/* libFuzzer target: the YAML loader behind --host, --fleet and profiles,
 * and the host-settings walker on top of it.  Any input must load into a
 * well-formed tree or fail with exactly one logged error; every accessor
 * must either succeed silently or log exactly one error; never crash or
 * leak. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "host.h"
#include "yamltree.h"

static void walk(const struct ynode *n, unsigned depth) {
        if (depth > YAML_MAX_DEPTH + 1 || n->line == 0)
                abort();
        static const char *const allowed[] = {"hostname", "ssid", "a", NULL};
        unsigned before = log_error_count();
        _cleanup_free_ char *s = NULL;
        fuzz_one_error_iff_failed(ynode_string("f", "k", n, &s), before);
        bool b;
        before = log_error_count();
        fuzz_one_error_iff_failed(ynode_bool("f", "k", n, &b), before);
        unsigned long long u;
        before = log_error_count();
        fuzz_one_error_iff_failed(ynode_uint_range("f", "k", n, 1, 65535, &u), before);
        before = log_error_count();
        fuzz_one_error_iff_failed(ynode_check_keys("f", "k", n, allowed), before);
        char **v = NULL;
        size_t nv = 0;
        before = log_error_count();
        fuzz_one_error_iff_failed(ynode_strings("f", "k", n, &v, &nv), before);
        for (size_t i = 0; i < nv; i++)
                free(v[i]);
        free(v);

        switch (n->kind) {
        case Y_SCALAR:
                if (!n->scalar || strlen(n->scalar) > YAML_MAX_SCALAR || n->n)
                        abort();
                break;
        case Y_MAP:
                for (size_t i = 0; i < n->n; i++)
                        /* keys are unique, so lookup finds this very pair */
                        if (!n->keys[i] || ynode_get(n, n->keys[i]) != n->items[i] || !n->key_lines[i])
                                abort();
                /* fall through */
        case Y_SEQ:
                if (n->scalar)
                        abort();
                for (size_t i = 0; i < n->n; i++)
                        walk(n->items[i], depth + 1);
                break;
        default:
                abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        unsigned before = log_error_count();
        struct ynode *root = NULL;
        int rc = yaml_load("fuzz.yml", (const char *)data, size, &root);
        fuzz_one_error_iff_failed(rc, before);
        if (rc < 0) {
                if (root)
                        abort();
                return 0;
        }
        if (!root || root->kind != Y_MAP)
                abort();
        walk(root, 0);

        /* as a --host file, and each mapping in it as a fleet host */
        struct host_settings hs = {0};
        before = log_error_count();
        fuzz_one_error_iff_failed(host_from_yaml("fuzz.yml", root, &hs), before);
        host_free(&hs);
        for (size_t i = 0; i < root->n; i++) {
                if (root->items[i]->kind != Y_MAP)
                        continue;
                hs = (struct host_settings){0};
                before = log_error_count();
                fuzz_one_error_iff_failed(host_from_yaml("dir/fuzz.yml", root->items[i], &hs), before);
                host_free(&hs);
        }
        ynode_free(root);
        return 0;
}
