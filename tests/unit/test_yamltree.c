/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The one YAML loader: hostile input is refused with exactly one error
 * naming file:line, the tree carries lines, and the typed accessors refuse
 * what the schema does not say. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "test_util.h"
#include "util.h"
#include "yamltree.h"

/* Ends a tu_capture_begin(): exactly `errors` error lines
 * must have been logged. */
static char *capture_end(struct tu_capture *c, unsigned errors) {
        unsigned got;
        char *text = tu_capture_end(c, &got);
        if (got != errors)
                fail_msg("wanted %u error(s), got %u: \"%s\"", errors, got, text);
        return text;
}

static int load_len(const char *text, size_t len, struct ynode **root, char **err) {
        struct tu_capture c;
        tu_capture_begin(&c);
        int r = yaml_load("f.yml", text, len, root);
        *err = capture_end(&c, r < 0 ? 1 : 0);
        if (r < 0)
                assert_null(*root);
        return r;
}

static struct ynode *load_ok(const char *text) {
        struct ynode *root = NULL;
        _cleanup_free_ char *err = NULL;
        int r = load_len(text, strlen(text), &root, &err);
        if (r < 0)
                fail_msg("refused: %s", err);
        assert_int_equal(root->kind, Y_MAP);
        return root;
}

static void refused_len(const char *text, size_t len, const char *want) {
        struct ynode *root = NULL;
        _cleanup_free_ char *err = NULL;
        int r = load_len(text, len, &root, &err);
        if (r >= 0 || !strstr(err, want))
                fail_msg("rc=%d, wanted an error containing \"%s\", got \"%s\"", r, want, err);
}

static void refused(const char *text, const char *want) {
        refused_len(text, strlen(text), want);
}

static void test_tree_and_lines(void **state) {
        (void)state;
        struct ynode *root = load_ok("# comment\n"
                                     "a: 1\n"
                                     "b: 'quoted'\n"
                                     "list:\n"
                                     "  - x\n"
                                     "  - {k: v}\n"
                                     "empty:\n");
        assert_int_equal(root->n, 4);
        assert_string_equal(root->keys[0], "a");
        assert_int_equal(root->key_lines[0], 2);
        assert_int_equal(root->items[0]->line, 2);
        assert_false(root->items[0]->quoted);
        struct ynode *b = ynode_get(root, "b");
        assert_string_equal(b->scalar, "quoted");
        assert_true(b->quoted);
        struct ynode *list = ynode_get(root, "list");
        assert_int_equal(list->kind, Y_SEQ);
        assert_int_equal(list->n, 2);
        assert_int_equal(list->items[1]->kind, Y_MAP);
        assert_int_equal(list->items[1]->line, 6);
        assert_string_equal(ynode_get(list->items[1], "k")->scalar, "v");
        assert_true(ynode_is_null(ynode_get(root, "empty")));
        assert_int_equal(root->key_lines[3], 7);
        assert_null(ynode_get(root, "nope"));
        assert_null(ynode_get(list, "x"));
        ynode_free(root);

        /* An explicit single document is fine. */
        root = load_ok("---\na: 1\n...\n");
        assert_int_equal(root->n, 1);
        ynode_free(root);

        /* A UTF-8 byte-order mark (Windows editors) is not content. */
        root = load_ok("\xEF\xBB\xBF" "a: 1\nb: 2\n");
        assert_string_equal(root->keys[0], "a");
        assert_int_equal(root->key_lines[1], 2);
        ynode_free(root);

        /* Only a plain << is the merge key; quoted, it is a key like any other. */
        root = load_ok("'<<': 1\n");
        assert_string_equal(root->keys[0], "<<");
        ynode_free(root);
}

static void test_empty_is_empty_map(void **state) {
        (void)state;
        const char *empties[] = {"", "\n\n", "# only a comment\n", "---\n", "~\n", "---\n...\n"};
        for (size_t i = 0; i < ARRAY_SIZE(empties); i++) {
                struct ynode *root = load_ok(empties[i]);
                assert_int_equal(root->n, 0);
                assert_int_equal(root->line, 1);
                ynode_free(root);
        }
}

static void test_refusals(void **state) {
        (void)state;
        refused("a: 1\nb: &x 2\n", "f.yml:2: YAML anchors are not allowed");
        refused("a: &m {x: 1}\n", "f.yml:1: YAML anchors are not allowed");
        refused("a: 1\nb:\n  c: *x\n", "f.yml:3: YAML aliases are not allowed");
        refused("a:\n  - 1\n  - !!str 2\n", "f.yml:3: YAML tags are not allowed");
        refused("a: !custom {x: 1}\n", "f.yml:1: YAML tags are not allowed");
        refused("a: !!seq [1]\n", "f.yml:1: YAML tags are not allowed");
        refused("!!str k: v\n", "f.yml:1: YAML tags are not allowed");
        refused("a: 1\nb: 2\na: 3\n", "f.yml:3: duplicate key 'a'");
        refused("m: {x: 1, 'x': 2}\n", "f.yml:1: duplicate key 'x'");
        /* the repeat met first in the file, whatever the keys' order */
        refused("z: 1\nb: 1\na: 1\nb: 2\nz: 3\na: 2\n", "f.yml:4: duplicate key 'b'");
        refused("m:\n  k: 1\n  k: 2\n  k: 3\n", "f.yml:3: duplicate key 'k'");
        /* a value typed as a key, twice: not repeated in the message */
        refused("env:\n  PW=hunter2SEKRIT:\n  PW=hunter2SEKRIT:\n",
                "f.yml:3: duplicate key, not shown since it does not read as one (written KEY=VALUE");
        /* libyaml gives a reader error its byte's offset only: the line is
         * counted from it */
        refused("a: 1\nb: 2\nc: caf\xe9\n", "f.yml:3: malformed YAML: incomplete UTF-8");
        refused("a: 1\nb: x\001\n", "f.yml:2: malformed YAML: control characters are not allowed");
        refused("s:\n  x: 1\n  <<: {volumes: [/etc:/host]}\n", "f.yml:3: YAML merge keys ('<<') are not allowed");
        refused("<<: {a: 1}\n", "f.yml:1: YAML merge keys ('<<') are not allowed");
        refused("a: 1\n---\nb: 2\n", "f.yml:2: more than one YAML document");
        refused("---\n---\n", "f.yml:2: more than one YAML document");
        refused("- a\n- b\n", "f.yml:1: the top level must be a mapping");
        refused("just text\n", "f.yml:1: the top level must be a mapping");
        refused("? [a, b]\n: c\n", "f.yml:1: mapping keys must be plain strings");
        refused("a: 1\nb: [1, 2\n", "f.yml:3: malformed YAML: did not find expected ',' or ']' "
                                    "(while parsing a flow sequence, line 2)");
        refused("a: 1\n  b: 2\n", "f.yml:2: malformed YAML: mapping values are not allowed");
        /* an editor's tab, which libyaml's message does not name */
        refused("hosts:\n\t- name: a\n", "f.yml:2: malformed YAML: found character that cannot start any token "
                                        "(while scanning for the next token, line 2); a tab indents this line: "
                                        "YAML indents with spaces only");
        refused("\xEF\xBB\xBF\r\n \tuser: pi\r\n", "f.yml:2: malformed YAML: found character that cannot start "
                                                 "any token (while scanning for the next token, line 2); a tab "
                                                 "indents this line");
        /* ...and only when one does */
        {
                static const char text[] = "a: b: c\n\t# x\n";
                struct ynode *root = NULL;
                _cleanup_free_ char *err = NULL;
                assert_true(load_len(text, strlen(text), &root, &err) < 0);
                if (!strstr(err, "f.yml:1: malformed YAML: mapping values") || strstr(err, "tab"))
                        fail_msg("want line 1's error and no tab in: %s", err);
        }
        refused("a: \"\\0\"\n", "f.yml:1: value contains a NUL byte");
        refused("\"k\\0\": 1\n", "f.yml:1: value contains a NUL byte");
        refused_len("a: 1\nb: 2\nc: x\0y\n", 16, "f.yml:3: contains a NUL byte");
}

static void test_limits(void **state) {
        (void)state;
        struct buf b = {0};

        /* 32 nested collections load, 33 do not (the root map is one). */
        buf_puts(&b, "a: ");
        for (int i = 0; i < 31; i++)
                buf_puts(&b, "[");
        for (int i = 0; i < 31; i++)
                buf_puts(&b, "]");
        buf_puts(&b, "\n");
        ynode_free(load_ok((char *)b.data));
        buf_free(&b);
        buf_puts(&b, "x: 1\na: ");
        for (int i = 0; i < 32; i++)
                buf_puts(&b, "[");
        for (int i = 0; i < 32; i++)
                buf_puts(&b, "]");
        buf_puts(&b, "\n");
        refused((char *)b.data, "f.yml:2: nesting deeper than 32 levels");
        buf_free(&b);
        /* thousands deep: refused, not a stack overflow */
        for (int i = 0; i < 100000; i++)
                buf_puts(&b, "[");
        refused((char *)b.data, "nesting deeper than 32 levels");
        buf_free(&b);

        /* a 64 KiB scalar loads, one byte more does not; keys too */
        buf_puts(&b, "a: ");
        for (size_t i = 0; i < YAML_MAX_SCALAR; i++)
                buf_puts(&b, "x");
        buf_puts(&b, "\n");
        struct ynode *root = load_ok((char *)b.data);
        assert_int_equal(strlen(ynode_get(root, "a")->scalar), YAML_MAX_SCALAR);
        ynode_free(root);
        buf_free(&b);
        buf_puts(&b, "\n\"");
        for (int i = 0; i < 70 * 1024; i++)
                buf_puts(&b, "x");
        buf_puts(&b, "\": 1\n");
        refused((char *)b.data, "f.yml:2: scalar of 71680 bytes is too large (limit 65536)");
        buf_free(&b);

        /* node count: 100001 one-character items */
        buf_puts(&b, "a: [");
        for (unsigned i = 0; i < YAML_MAX_NODES; i++)
                buf_puts(&b, "1,");
        buf_puts(&b, "1]\n");
        refused((char *)b.data, "f.yml:1: YAML has more than 100000 nodes");
        buf_free(&b);

        /* as many keys as the node limit allows, one repeated at the end
         * (the check sorts them: a pairwise one took seconds here) */
        for (unsigned i = 0; i < YAML_MAX_NODES / 2 - 2; i++) {
                char line[32];
                snprintf(line, sizeof line, "k%u: 1\n", i);
                buf_puts(&b, line);
        }
        buf_puts(&b, "k17: 2\n");
        refused((char *)b.data, "f.yml:49999: duplicate key 'k17'");
        buf_free(&b);

        /* over 1 MiB of text, even when it is only a comment */
        buf_puts(&b, "a: 1\n#");
        while (b.len <= YAML_MAX_FILE)
                buf_puts(&b, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        refused((char *)b.data, "f.yml: larger than 1 MiB");
        buf_free(&b);
}

static void test_files(void **state) {
        (void)state;
        char path[PATH_MAX];
        int fd = tu_mkstemp(path, sizeof path, "test_yamltree");
        assert_true(fd >= 0);
        const char *text = "hostname: pi\n";
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);

        struct ynode *root = NULL;
        assert_int_equal(yaml_load(path, NULL, 0, &root), 0);
        assert_string_equal(ynode_get(root, "hostname")->scalar, "pi");
        ynode_free(root);
        char *data = NULL;
        size_t len = 0;
        assert_int_equal(yaml_read_file(path, &data, &len), 0);
        assert_int_equal(len, strlen(text));
        assert_string_equal(data, text);
        free(data);
        unlink(path);

        struct tu_capture c;
        tu_capture_begin(&c);
        root = NULL;
        int r = yaml_load(path, NULL, 0, &root);
        _cleanup_free_ char *err = capture_end(&c, 1);
        assert_true(r < 0);
        assert_null(root);
        assert_non_null(strstr(err, "cannot read: No such file or directory"));
        assert_non_null(strstr(err, path));
}

/* Run one accessor on the value of key k in text; rc, with the error text
 * captured in err. */
#define ACCESS(text, k, call)                                                                                        \
        ({                                                                                                           \
                struct ynode *root_ = load_ok(text);                                                                 \
                const struct ynode *n = ynode_get(root_, k);                                                         \
                struct tu_capture c_;                                                                                   \
                tu_capture_begin(&c_);                                                                                  \
                int r_ = (call);                                                                                     \
                free(err);                                                                                           \
                err = capture_end(&c_, r_ < 0 ? 1 : 0);                                                              \
                ynode_free(root_);                                                                                   \
                r_;                                                                                                  \
        })

static void test_accessors(void **state) {
        (void)state;
        char *err = NULL;
        char *s = NULL;
        assert_int_equal(ACCESS("k: hello\n", "k", ynode_string("f.yml", "k", n, &s)), 0);
        assert_string_equal(s, "hello");
        assert_int_equal(ACCESS("k: ''\n", "k", ynode_string("f.yml", "k", n, &s)), 0);
        assert_string_equal(s, "");
        assert_int_equal(ACCESS("k: 'null'\n", "k", ynode_string("f.yml", "k", n, &s)), 0);
        assert_string_equal(s, "null");
        free(s);
        s = NULL;
        assert_true(ACCESS("a: 1\nk: [x]\n", "k", ynode_string("f.yml", "k", n, &s)) < 0);
        assert_non_null(strstr(err, "f.yml:2: k must be a string"));
        assert_true(ACCESS("a: 1\nk:\n", "k", ynode_string("f.yml", "k", n, &s)) < 0);
        assert_non_null(strstr(err, "f.yml:2: k must be a string"));
        assert_true(ACCESS("k: ~\n", "k", ynode_string("f.yml", "k", n, &s)) < 0);
        assert_null(s);

        bool b = false;
        assert_int_equal(ACCESS("k: true\n", "k", ynode_bool("f.yml", "k", n, &b)), 0);
        assert_true(b);
        assert_int_equal(ACCESS("k: FALSE\n", "k", ynode_bool("f.yml", "k", n, &b)), 0);
        assert_false(b);
        const char *bad_bools[] = {"k: yes\n", "k: on\n", "k: 'true'\n", "k: 1\n", "k: [true]\n", "k:\n"};
        for (size_t i = 0; i < ARRAY_SIZE(bad_bools); i++) {
                assert_true(ACCESS(bad_bools[i], "k", ynode_bool("f.yml", "k.b", n, &b)) < 0);
                assert_non_null(strstr(err, "f.yml:1: k.b must be true or false"));
        }

        unsigned long long u = 0;
        assert_int_equal(ACCESS("k: 24\n", "k", ynode_uint("f.yml", "k", n, 32, &u)), 0);
        assert_int_equal(u, 24);
        assert_int_equal(ACCESS("k: 0\n", "k", ynode_uint("f.yml", "k", n, 32, &u)), 0);
        assert_int_equal(u, 0);
        assert_int_equal(ACCESS("k: 18446744073709551615\n", "k", ynode_uint("f.yml", "k", n, 32, &u)), -EINVAL);
        assert_non_null(strstr(err, "k must be a whole number"));
        const char *bad_uints[] = {"k: -1\n", "k: +1\n", "k: 1x\n", "k: '5'\n", "k: 0x10\n", "k: 1.5\n", "k:\n",
                                   "k: {a: 1}\n"};
        for (size_t i = 0; i < ARRAY_SIZE(bad_uints); i++) {
                assert_int_equal(ACCESS(bad_uints[i], "k", ynode_uint("f.yml", "k", n, 32, &u)), -EINVAL);
                assert_non_null(strstr(err, "f.yml:1: k must be a whole number"));
        }
        assert_int_equal(ACCESS("k: 33\n", "k", ynode_uint("f.yml", "net.prefix", n, 32, &u)), -ERANGE);
        assert_non_null(strstr(err, "f.yml:1: net.prefix must be at most 32"));
        assert_int_equal(ACCESS("k: 8\n", "k", ynode_uint_range("f.yml", "k", n, 16, 512, &u)), -ERANGE);
        assert_non_null(strstr(err, "f.yml:1: k must be between 16 and 512"));
        assert_int_equal(ACCESS("k: 16\n", "k", ynode_uint_range("f.yml", "k", n, 16, 512, &u)), 0);
        assert_int_equal(u, 16);

        assert_true(ACCESS("k: x\n", "k", ynode_expect("f.yml", "k", n, Y_MAP)) < 0);
        assert_non_null(strstr(err, "f.yml:1: k must be a mapping (key: value)"));
        assert_true(ACCESS("k: x\n", "k", ynode_expect("f.yml", "k", n, Y_SEQ)) < 0);
        assert_non_null(strstr(err, "f.yml:1: k must be a list"));
        assert_int_equal(ACCESS("k: [x]\n", "k", ynode_expect("f.yml", "k", n, Y_SEQ)), 0);

        char **v = NULL;
        size_t nv = 0;
        assert_int_equal(ACCESS("k: one\n", "k", ynode_strings("f.yml", "k", n, &v, &nv)), 0);
        assert_int_equal(ACCESS("k: [two, 'three']\n", "k", ynode_strings("f.yml", "k", n, &v, &nv)), 0);
        assert_int_equal(ACCESS("k:\n", "k", ynode_strings("f.yml", "k", n, &v, &nv)), 0);
        assert_int_equal(ACCESS("a: 1\n", "k", ynode_strings("f.yml", "k", n, &v, &nv)), 0);
        assert_int_equal(nv, 3);
        assert_string_equal(v[0], "one");
        assert_string_equal(v[2], "three");
        assert_true(ACCESS("k: {a: b}\n", "k", ynode_strings("f.yml", "dns", n, &v, &nv)) < 0);
        assert_non_null(strstr(err, "f.yml:1: dns must be a string or a list of strings"));
        assert_true(ACCESS("k:\n  - a\n  - [b]\n", "k", ynode_strings("f.yml", "dns", n, &v, &nv)) < 0);
        assert_non_null(strstr(err, "f.yml:3: dns[1] must be a string"));
        for (size_t i = 0; i < nv; i++)
                free(v[i]);
        free(v);
        free(err);
}

static void test_check_keys(void **state) {
        (void)state;
        static const char *const allowed[] = {"ssid", "country", NULL};
        char *err = NULL;
        assert_int_equal(ACCESS("wifi: {ssid: x, country: DE}\n", "wifi", ynode_check_keys("f.yml", "wifi", n, allowed)),
                         0);
        assert_true(ACCESS("wifi:\n  ssid: x\n\n  contry: DE\n", "wifi",
                           ynode_check_keys("f.yml", "wifi", n, allowed)) < 0);
        assert_non_null(strstr(err, "f.yml:4: wifi: unknown key 'contry' (known: ssid, country)"));
        assert_true(ACCESS("wifi: [ssid]\n", "wifi", ynode_check_keys("f.yml", "wifi", n, allowed)) < 0);
        assert_non_null(strstr(err, "f.yml:1: wifi must be a mapping"));
        static const char *const none[] = {NULL};
        assert_true(ACCESS("m: {a: 1}\n", "m", ynode_check_keys("f.yml", "m", n, none)) < 0);
        assert_non_null(strstr(err, "m: unknown key 'a' (known: none)"));
        /* a key that does not read as one is a value typed KEY=VALUE or a
         * pasted secret: not repeated */
        assert_true(ACCESS("wifi:\n  psk=Zx9-SECRETMARK-psk:\n", "wifi", ynode_check_keys("f.yml", "wifi", n, allowed)) <
                    0);
        assert_non_null(strstr(err, "f.yml:2: wifi: an unknown key, not shown since it does not read as one (written "
                                    "KEY=VALUE rather than KEY: VALUE?); known: ssid, country"));
        assert_null(strstr(err, "SECRETMARK"));
        assert_true(ACCESS("wifi: {Zx9/SECRETMARK+k: 1}\n", "wifi", ynode_check_keys("f.yml", "wifi", n, allowed)) < 0);
        assert_non_null(strstr(err, "f.yml:1: wifi: an unknown key, not shown since it does not read as one (a pasted "
                                    "secret?)"));
        assert_null(strstr(err, "SECRETMARK"));
        free(err);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_tree_and_lines), cmocka_unit_test(test_empty_is_empty_map),
                cmocka_unit_test(test_refusals),       cmocka_unit_test(test_limits),
                cmocka_unit_test(test_files),          cmocka_unit_test(test_accessors),
                cmocka_unit_test(test_check_keys),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
