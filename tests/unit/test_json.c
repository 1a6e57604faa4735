/* SPDX-License-Identifier: GPL-3.0-or-later */
/* json.c: strings written as valid UTF-8 whatever bytes they are given, and
 * the validator inspect checks an image's manifest with
 * (json_is_object), each verdict compared with Python's json module where
 * that module is strict enough to be the reference. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "json.h"
#include "test_util.h"
#include "util.h"

struct vcase {
        const char *text;
        size_t len; /* 0: strlen */
        bool valid;
        /* Python accepts more than RFC 8259 here (lone surrogates through
         * surrogatepass, nesting past our limit): our verdict stands alone */
        bool ours_only;
};

static const struct vcase cases[] = {
        { "{}", 0, true, false },
        { " \r\n\t{ }\n", 0, true, false },
        { "{\"role\": \"app\", \"n\": -12.5e+3, \"a\": [true, false, null, {}, []], \"z\": 0}", 0, true, false },
        { "{\"s\": \"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uD83D\\uDE00\"}", 0, true, false },
        { "{\"utf8\": \"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}", 0, true, false },
        { "{\"d\": 0.5, \"e\": 1E9, \"f\": -0}", 0, true, false },
        /* the review's: keys injected into inspect's own object */
        { "{\"x\": 1}, \"table\": \"gpt\", \"partitions\": [], \"y\": {}", 0, false, false },
        { "{ \"role\": \"app\", oops }", 0, false, false },
        { "", 0, false, false },
        { "[]", 0, false, false },
        { "\"text\"", 0, false, false },
        { "{} {}", 0, false, false },
        { "{", 0, false, false },
        { "{\"a\": 1,}", 0, false, false },
        { "{\"a\" 1}", 0, false, false },
        { "{a: 1}", 0, false, false },
        { "{'a': 1}", 0, false, false },
        { "{\"a\": 01}", 0, false, false },
        { "{\"a\": 1.}", 0, false, false },
        { "{\"a\": .5}", 0, false, false },
        { "{\"a\": 1e}", 0, false, false },
        { "{\"a\": +1}", 0, false, false },
        { "{\"a\": tru}", 0, false, false },
        { "{\"a\": nulll}", 0, false, false },
        { "{\"a\": [1 2]}", 0, false, false },
        { "{\"a\": \"\\x41\"}", 0, false, false },
        { "{\"a\": \"\\u12g4\"}", 0, false, false },
        { "{\"a\": \"\\u12\"}", 0, false, false },
        { "{\"a\": \"tab\there\"}", 0, false, false },
        { "{\"a\": \"unterminated}", 0, false, false },
        { "{\"a\": 1}\x00", 9, false, false },
        { "{\"a\": \"\x00\"}", 9, false, false },
        { "{\"a\": \"\xff\"}", 0, false, false },
        { "{\"a\": \"\xc0\xaf\"}", 0, false, false },         /* overlong '/' */
        { "{\"a\": \"\xe0\x80\xaf\"}", 0, false, false },     /* overlong, 3 bytes */
        { "{\"a\": \"\xf4\x90\x80\x80\"}", 0, false, false }, /* past U+10FFFF */
        { "{\"a\": \"\xc3\"}", 0, false, false },             /* cut short */
        { "{\"a\": \"\xed\xa0\x80\"}", 0, false, true },      /* U+D800 encoded */
        { "{\"a\": NaN}", 0, false, true },
        { "{\"a\": Infinity}", 0, false, true },
};

static void write_bytes(const char *path, const char *text, size_t len) {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(text, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
}

/* Python's verdict: 0 when json.loads takes the bytes as one object. */
static int python_verdict(const char *dir, const char *text, size_t len) {
        _cleanup_free_ char *path = xasprintf("%s/case.json", dir);
        write_bytes(path, text, len);
        const char *argv[] = { "python3", "-c",
                               "import json,sys\n"
                               "d = json.loads(open(sys.argv[1], 'rb').read())\n"
                               "sys.exit(0 if isinstance(d, dict) else 1)\n",
                               path, NULL };
        return tu_run(argv, NULL, TU_STDERR_NULL);
}

static void test_is_object(void **state) {
        (void)state;
        char dir[4096];
        assert_int_equal(tu_mkdtemp(dir, sizeof(dir), "test_json"), 0);
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                const struct vcase *c = &cases[i];
                size_t len = c->len ? c->len : strlen(c->text);
                bool got = json_is_object(c->text, len);
                if (got != c->valid)
                        fail_msg("case %zu (%s): json_is_object says %d", i, c->text, got);
                if (!c->ours_only) {
                        int py = python_verdict(dir, c->text, len);
                        if ((py == 0) != c->valid)
                                fail_msg("case %zu (%s): python3 exits %d", i, c->text, py);
                }
        }
        tu_rm_rf(dir);
}

/* As deep as the limit is fine, one more is refused (not a stack overflow
 * for a manifest of a million brackets either). */
/* An object holding depth - 1 nested arrays: depth levels in all. */
static bool nested_is_object(int depth) {
        struct buf b = { 0 };
        buf_puts(&b, "{\"a\": ");
        for (int i = 1; i < depth; i++)
                buf_puts(&b, "[");
        for (int i = 1; i < depth; i++)
                buf_puts(&b, "]");
        buf_puts(&b, "}");
        bool ok = json_is_object((const char *)b.data, b.len);
        buf_free(&b);
        return ok;
}

static void test_depth(void **state) {
        (void)state;
        assert_true(nested_is_object(JSON_MAX_DEPTH));
        assert_false(nested_is_object(JSON_MAX_DEPTH + 1));

        size_t n = 1000000;
        char *deep = xmalloc(n);
        memset(deep, '[', n);
        memcpy(deep, "{\"a\":", 5);
        assert_false(json_is_object(deep, n));
        free(deep);
}

/* What json_string writes for bytes that are not UTF-8: each byte that
 * starts no valid sequence is one U+FFFD; valid sequences pass as they are. */
static const struct {
        const char *in, *out;
} strings[] = {
        { "plain", "\"plain\"" },
        { "caf\xc3\xa9 \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"" },
        { "base\xff.img", "\"base\\ufffd.img\"" },
        { "\xc0\xaf", "\"\\ufffd\\ufffd\"" },                 /* overlong '/' */
        { "\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"" },       /* overlong, 3 bytes */
        { "\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"" },       /* U+D800 */
        { "\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"" }, /* past U+10FFFF */
        { "a\xe2\x82", "\"a\\ufffd\\ufffd\"" },                /* cut short at the end */
        { "a\xe2\x82" "b", "\"a\\ufffd\\ufffdb\"" },
        { "\x80x", "\"\\ufffdx\"" },                           /* a stray continuation */
        { "tab\tesc\x1b", "\"tab\\tesc\\u001b\"" },
};

static void test_string_utf8(void **state) {
        (void)state;
        char dir[4096];
        assert_int_equal(tu_mkdtemp(dir, sizeof(dir), "test_json"), 0);
        _cleanup_free_ char *path = xasprintf("%s/strings.json", dir);
        struct json all = { 0 };
        json_begin_array(&all);
        for (size_t i = 0; i < ARRAY_SIZE(strings); i++) {
                struct json j = { 0 };
                json_string(&j, strings[i].in);
                _cleanup_free_ char *got = json_finish(&j, NULL);
                _cleanup_free_ char *want = xasprintf("%s\n", strings[i].out);
                assert_string_equal(got, want);
                json_string(&all, strings[i].in);
        }
        json_end_array(&all);
        size_t len;
        _cleanup_free_ char *text = json_finish(&all, &len);
        write_bytes(path, text, len);
        /* strict UTF-8 (no surrogatepass) and a strict parser */
        const char *argv[] = { "python3", "-c",
                               "import json,sys\n"
                               "json.loads(open(sys.argv[1], 'rb').read().decode('utf-8', 'strict'))\n",
                               path, NULL };
        assert_int_equal(tu_run(argv, NULL, TU_STDERR_KEEP), 0);
        tu_rm_rf(dir);
}

/* json_lookup: the member at a path, not the first text that looks like
 * its key (inside a string, or a deeper object's member of the same name). */
static const struct {
        const char *text;
        const char *keys[3];
        size_t nkeys;
        const char *want; /* NULL: none */
} lookups[] = {
        { "{\"role\": \"app\"}", { "role" }, 1, "app" },
        { "{\"profile\": {\"name\": \"p.yml\"}, \"base\": {\"name\": \"b.img\"}}", { "base", "name" }, 2, "b.img" },
        { "{\"profile\": {\"name\": \"p.yml\"}, \"name\": \"top\"}", { "name" }, 1, "top" },
        { "{\"note\": \"\\\"role\\\": x\", \"role\": \"obs\"}", { "role" }, 1, "obs" },
        { "{\"a\": [1, {\"role\": \"no\"}], \"role\": \"yes\"}", { "role" }, 1, "yes" },
        { "{\"host\": {\"user\": \"al\\\"ice\\n\"}}", { "host", "user" }, 2, "al\"ice\n" },
        { "{\"host\": {\"user\": null}}", { "host", "user" }, 2, NULL },
        { "{\"host\": {\"ssh_keys\": -12.5e3}}", { "host", "ssh_keys" }, 2, "-12.5e3" },
        { "{\"host\": \"pi\"}", { "host", "user" }, 2, NULL },
        { "{\"role\": \"app\"}", { "hostname" }, 1, NULL },
        { "{\"role\": \"app\"", { "hostname" }, 1, NULL },
        { "{\"role\": \"ap", { "role" }, 1, NULL },
        { "[\"role\", \"app\"]", { "role" }, 1, NULL },
        { "", { "role" }, 1, NULL },
        { "{\"u\": \"\\u00e9\"}", { "u" }, 1, "\\u00e9" },
};

static void test_lookup(void **state) {
        (void)state;
        for (size_t i = 0; i < ARRAY_SIZE(lookups); i++) {
                const char *t = lookups[i].text;
                _cleanup_free_ char *got = json_lookup(t, strlen(t), lookups[i].keys, lookups[i].nkeys);
                if (!lookups[i].want != !got || (got && strcmp(got, lookups[i].want) != 0))
                        fail_msg("lookup %zu (%s): got %s", i, t, got ? got : "(none)");
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_is_object),
                cmocka_unit_test(test_depth),
                cmocka_unit_test(test_string_utf8),
                cmocka_unit_test(test_lookup),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
