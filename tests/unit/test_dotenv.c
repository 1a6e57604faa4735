/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dotenv.h"
#include "log.h"
#include "test_util.h"
#include "util.h"

#define GOLDEN_DIR "tests/golden/dotenv/"

/* ---- every failure must print exactly one error line (tu_capture_*) ---- */

static unsigned count_lines_with(const char *s, const char *needle) {
        unsigned n = 0;
        for (const char *l = s; *l;) {
                const char *e = strchr(l, '\n');
                size_t len = e ? (size_t)(e - l) : strlen(l);
                char *line = xstrndup(l, len);
                n += strstr(line, needle) != NULL;
                free(line);
                l += len + (e != NULL);
        }
        return n;
}

/* Parse text and expect one error line mentioning want; never the secret. */
static void expect_parse_error(const char *text, size_t len, const char *want, const char *secret) {
        struct env e = {0};
        struct tu_capture c;
        tu_capture_begin(&c);
        int r = dotenv_parse("test.env", text, len, &e, ORIGIN_FILE);
        unsigned errors;
        _cleanup_free_ char *out = tu_capture_end(&c, &errors);
        if (r >= 0 || !strstr(out, want))
                fail_msg("input %s: r=%d, stderr: %s (wanted \"%s\")", text, r, out, want);
        assert_int_equal(errors, 1);
        assert_int_equal(count_lines_with(out, "dimimage: error:"), 1);
        if (secret)
                assert_null(strstr(out, secret));
        env_free(&e);
}

/* A key set twice in one file: the later value, and one warning naming
 * both lines but neither value. */
static void test_repeated_key(void **state) {
        (void)state;
        static const char text[] = "DB_PASS=first-s3cr3t\nB=2\nexport DB_PASS=second-s3cr3t\n"
                                   /* a secret pasted on its own line, twice: its '=' made it a key */
                                   "bXlTM2NyZXRQYXNz=\nbXlTM2NyZXRQYXNz=\n";
        struct env e = {0};
        struct tu_capture c;
        tu_capture_begin(&c);
        int r = dotenv_parse("test.env", text, sizeof(text) - 1, &e, ORIGIN_FILE);
        unsigned errors;
        _cleanup_free_ char *out = tu_capture_end(&c, &errors);
        assert_int_equal(r, 0);
        assert_int_equal(errors, 0);
        assert_string_equal(env_get(&e, "DB_PASS"), "second-s3cr3t");
        assert_non_null(strstr(out, "test.env:3: DB_PASS is set again (first on line 1): the later value is used"));
        assert_non_null(strstr(out, "test.env:5: a key not named here (a pasted secret?) is set again (first on line 4)"));
        assert_int_equal(count_lines_with(out, "warning:"), 2);
        assert_null(strstr(out, "s3cr3t"));
        assert_null(strstr(out, "bXlTM2"));
        env_free(&e);
}

/* ---- parsing ---- */

struct parse_case {
        const char *text;
        const char *key;
        const char *value;
};

static const struct parse_case parse_cases[] = {
        {"A=1", "A", "1"},
        {"A=1\n", "A", "1"},
        {"export A=1", "A", "1"},
        {"export\tA=1", "A", "1"},
        {"A = 1 ", "A", "1"},
        {"  A=1", "A", "1"},
        {"A=", "A", ""},
        {"A=\n", "A", ""},
        {"A=two words # a comment", "A", "two words"},
        {"A=two words\t", "A", "two words"},
        {"A=a#b", "A", "a#b"},
        {"A=a\t#b", "A", "a\t#b"},
        {"A= #x", "A", "#x"},
        {"A=#x", "A", "#x"},
        {"A=a=b=c", "A", "a=b=c"},
        {"A: yaml style", "A", "yaml style"},
        {"a.b-c_d=1", "a.b-c_d", "1"},
        {"_X=1", "_X", "1"},
        {"# comment\n\n   # indented comment\nA=1\n# trailing", "A", "1"},
        {"A=1\nA=2", "A", "2"},
        {"A='literal $B ${C} \\n \" #x'", "A", "literal $B ${C} \\n \" #x"},
        {"A='it\\'s'", "A", "it's"},
        {"A='back\\\\slash'", "A", "back\\\\slash"},
        {"A='multi\nline'", "A", "multi\nline"},
        {"A='x' # comment", "A", "x"},
        {"A=\"x\"#comment", "A", "x"},
        {"A=\"a\\nb\"", "A", "a\nb"},
        {"A=\"multi\nline\"", "A", "multi\nline"},
        {"A=\"tab\\there\"", "A", "tab\there"},
        {"A=\"cr\\r\"", "A", "cr\r"},
        {"A=\"\\a\\b\\f\\v\"", "A", "\a\b\f\v"},
        {"A=\"q\\\"q\"", "A", "q\"q"},
        {"A=\"bs\\\\\"", "A", "bs\\"},
        {"A=\"\\$HOME\"", "A", "$HOME"},
        {"A=\"$$HOME\"", "A", "$HOME"},
        {"A=\"unknown \\q \\x41 \\'\"", "A", "unknown \\q \\x41 \\'"},
        {"A=\"\\0101\\0060\"", "A", "A0"},
        {"A=\"\\0351\"", "A", "\xc3\xa9"},
        {"A=\"\\09\\018\"", "A", "\\09\\018"},
        {"A=\"single ' inside\"", "A", "single ' inside"},
        {"A='double \" inside'", "A", "double \" inside"},
        {"A=\"caf\xc3\xa9 \xe2\x9c\x93\"", "A", "caf\xc3\xa9 \xe2\x9c\x93"},
        {"A=caf\xc3\xa9\xc2\xa0", "A", "caf\xc3\xa9"},
        /* Unicode spaces (Go's unicode.IsSpace) trimmed and skipped as compose-go does */
        {"A=value\xe3\x80\x80", "A", "value"},
        {"A=v\xe2\x80\x83 \xe2\x80\xaf\xe1\x9a\x80", "A", "v"},
        {"\xe2\x80\x83" "C=1", "C", "1"},
        {"K\xe3\x80\x80=2", "K", "2"},
        {"A=in\xe3\x80\x80side", "A", "in\xe3\x80\x80side"},
        {"A=not\xe3\x80\x81", "A", "not\xe3\x80\x81"},
        {"B=1\nA=${B}x", "A", "1x"},
        {"B=1\nA=$B.x", "A", "1.x"},
        {"B=1\nA=\"${B} $B\"", "A", "1 1"},
        {"B=1\nA='${B}'", "A", "${B}"},
        {"A=$NOPE", "A", ""},
        {"A=${NOPE:-d}", "A", "d"},
        {"B=\nA=${B:-d}", "A", "d"},
        {"B=\nA=${B-d}", "A", ""},
        {"B=1\nA=${B:+alt}", "A", "alt"},
        {"A=${B:+alt}", "A", ""},
        {"B=\nA=${B+alt}", "A", "alt"},
        {"A=${X:-${Y:-deep}}", "A", "deep"},
        {"A=$$x", "A", "$x"},
        {"A=cost: 5$", "A", "cost: 5$"},
        {"A=$1", "A", "$1"},
        {"A=1\r\nB=\"x\"\r\nC='y'\r\n", "C", "y"},
        {"A=1\r\nB=\"x\"\r\n", "A", "1"},
        {"\xef\xbb\xbf" "A=bom", "A", "bom"},
};

static void test_parse_table(void **state) {
        (void)state;
        for (size_t i = 0; i < ARRAY_SIZE(parse_cases); i++) {
                const struct parse_case *c = &parse_cases[i];
                struct env e = {0};
                int r = dotenv_parse("test.env", c->text, strlen(c->text), &e, ORIGIN_FILE);
                if (r < 0)
                        fail_msg("case %zu (%s): parse failed %d", i, c->text, r);
                const char *v = env_get(&e, c->key);
                if (!v || strcmp(v, c->value) != 0)
                        fail_msg("case %zu (%s): got [%s], want [%s]", i, c->text, v ? v : "(unset)", c->value);
                env_free(&e);
        }
}

static void test_parse_origin_and_lines(void **state) {
        (void)state;
        const char *t = "# c\nA=1\n\nB=\"x\ny\"\nC=3\n";
        struct env e = {0};
        assert_int_equal(dotenv_parse("f.env", t, strlen(t), &e, ORIGIN_FILE), 0);
        assert_int_equal(e.n, 3);
        const struct env_var *a = env_find(&e, "A"), *b = env_find(&e, "B"), *c = env_find(&e, "C");
        assert_int_equal(a->line, 2);
        assert_int_equal(b->line, 4);
        assert_int_equal(c->line, 6);
        assert_string_equal(c->file, "f.env");
        assert_int_equal(c->origin, ORIGIN_FILE);
        env_free(&e);
}

/* Values from an earlier file (or the profile) are visible to later ones. */
static void test_interpolation_across_files(void **state) {
        (void)state;
        struct env e = {0};
        env_set(&e, "HOST", "pi2", ORIGIN_DEFAULT, "profiles/app.yml", 0);
        const char *t = "URL=http://${HOST}:5080\n";
        assert_int_equal(dotenv_parse("f.env", t, strlen(t), &e, ORIGIN_FILE), 0);
        assert_string_equal(env_get(&e, "URL"), "http://pi2:5080");
        env_free(&e);
}

static void test_parse_errors(void **state) {
        (void)state;
        expect_parse_error("A=\"unterminated\nB=2\n", 20, "test.env:1: unterminated double-quoted value of A", NULL);
        expect_parse_error("X=1\nA='unterminated", 19, "test.env:2: unterminated single-quoted value of A", NULL);
        /* A key is never quoted: a line that is not KEY=VALUE is likely a
         * pasted secret, and the first '=' of a base64 one makes its text the key. */
        expect_parse_error("X=1\n1A=bad\n", 11, "test.env:2: invalid variable name: it starts with a digit", "1A");
        expect_parse_error("X=1\nA/B=v\n", 10,
                           "test.env:2: invalid variable name: its character 2 is punctuation; a variable name must "
                           "match [A-Za-z_][A-Za-z0-9_.-]*",
                           "A/B");
        expect_parse_error("DB_PASSWORD=\nq8X+/k2Lm9zQwR7vT1pYb3Hs0uJc5eNa6dWf4gKi8oM=\n", 58,
                           "test.env:2: invalid variable name: its character 4 is punctuation", "q8X");
        expect_parse_error("A=1\n=q8X+/k2Lm\n", 15, "test.env:2: invalid variable name: it is empty", "q8X");
        expect_parse_error("pass w\xc3\xb6rd=1\n", 13, "invalid variable name: its character 5 is a space", "pass");
        expect_parse_error("wq\xc3\xb6rd=1\n", 9, "invalid variable name: its character 3 is not ASCII", "wq");
        expect_parse_error("qz\001c=1\n", 7, "invalid variable name: its character 3 is a control character", "qz");
        expect_parse_error("B C=hunter2pass\n", 16, "test.env:1: invalid variable name", "hunter2pass");
        expect_parse_error("X=1\nY=2\nA=a\0b\n", 14, "test.env:3: contains a NUL byte; a .env file must be text", NULL);
        /* a value saved as Latin-1 (p\xe4ss): unquoted, quoted, cut short
         * (a lead byte at the end), or an overlong form; never the value */
        expect_parse_error("X=1\nDB_PASSWORD=p\xe4ss-w0rd-x\n", 28,
                           "test.env:2: the value of DB_PASSWORD is not UTF-8 text", "w0rd");
        expect_parse_error("DB_PASSWORD='p\xe4ss w0rd'\n", 24, "test.env:1: the value of DB_PASSWORD is not UTF-8",
                           "w0rd");
        expect_parse_error("DB_PASSWORD=\"w0rd\xc3\"\n", 20, "test.env:1: the value of DB_PASSWORD is not UTF-8",
                           "w0rd");
        expect_parse_error("DB_PASSWORD=w0rd\xc0\xaf\n", 19, "test.env:1: the value of DB_PASSWORD is not UTF-8",
                           "w0rd");
        /* "A=1\n" saved as UTF-16LE with its byte-order mark */
        expect_parse_error("\xff\xfe" "A\0=\0" "1\0\n\0", 10, "test.env:1: contains a NUL byte; a .env file must be "
                           "text (this one is UTF-16: save it as UTF-8)", NULL);
        expect_parse_error("A=1\nhunter2pass\n", 16, "test.env:2: expected KEY=VALUE", "hunter2pass");
        expect_parse_error("A=1\nexport ONLYKEY", 18, "test.env:2: expected KEY=VALUE", NULL);
        expect_parse_error("PASSWORD=\"hunter2pass\" hunter3\n", 31, "unexpected text after the closing quote",
                           "hunter");
        expect_parse_error("PASSWORD=\"s3cr\\0000t\"", 21, "NUL byte", "s3cr");
        expect_parse_error("PASSWORD=ab${cd", 15, "test.env:1: invalid ${...} in the value of PASSWORD", "cd");
        expect_parse_error("PASSWORD=ab${1}", 15, "invalid ${...}", NULL);
        expect_parse_error("PASSWORD=ab${cd:?msgx}", 22, "the value of PASSWORD requires a variable", "msgx");
}

/* A secret with a '$' must not leak through the unset-variable warning. */
static void test_warning_hides_value(void **state) {
        (void)state;
        struct env e = {0};
        struct tu_capture c;
        tu_capture_begin(&c);
        const char *t = "PASSWORD=pa$sword123\n";
        assert_int_equal(dotenv_parse("test.env", t, strlen(t), &e, ORIGIN_FILE), 0);
        unsigned errors;
        _cleanup_free_ char *out = tu_capture_end(&c, &errors);
        assert_int_equal(errors, 0);
        assert_non_null(strstr(out, "the value of PASSWORD refers to an unset variable"));
        assert_null(strstr(out, "sword"));
        assert_string_equal(env_get(&e, "PASSWORD"), "pa");
        env_free(&e);
}

static void test_megabyte_lines(void **state) {
        (void)state;
        const size_t big = 1u << 20;
        struct buf b = {0};
        buf_puts(&b, "A=");
        for (size_t i = 0; i < big; i++)
                buf_append(&b, "x", 1);
        buf_puts(&b, "\nB=\"");
        for (size_t i = 0; i < big; i++)
                buf_append(&b, i % 1000 == 999 ? "\n" : "y", 1);
        buf_puts(&b, "\"\r\nC=end\r\n");
        struct env e = {0};
        assert_int_equal(dotenv_parse("big.env", (const char *)b.data, b.len, &e, ORIGIN_FILE), 0);
        assert_int_equal(strlen(env_get(&e, "A")), big);
        assert_int_equal(strlen(env_get(&e, "B")), big);
        assert_string_equal(env_get(&e, "C"), "end");
        assert_int_equal(env_find(&e, "C")->line, 3 + big / 1000); /* B on line 2 holds big/1000 newlines */
        env_free(&e);
        buf_free(&b);
}

static void test_too_large(void **state) {
        (void)state;
        size_t n = (16u << 20) + 1;
        char *t = xmalloc(n);
        memset(t, '#', n);
        struct env e = {0};
        struct tu_capture c;
        tu_capture_begin(&c);
        assert_int_equal(dotenv_parse("huge.env", t, n, &e, ORIGIN_FILE), -EFBIG);
        unsigned errors;
        _cleanup_free_ char *out = tu_capture_end(&c, &errors);
        assert_int_equal(errors, 1);
        assert_non_null(strstr(out, "huge.env: larger than 16 MiB"));
        free(t);
}

static void test_parse_file(void **state) {
        (void)state;
        char path[PATH_MAX];
        int fd = tu_mkstemp(path, sizeof path, "test_dotenv");
        assert_true(fd >= 0);
        const char *t = "DB_PASSWORD=from-file\n";
        assert_int_equal(write_full(fd, t, strlen(t)), 0);
        close(fd);
        struct env e = {0};
        assert_int_equal(dotenv_parse_file(path, &e), 0);
        assert_string_equal(env_get(&e, "DB_PASSWORD"), "from-file");
        assert_int_equal(env_find(&e, "DB_PASSWORD")->origin, ORIGIN_FILE);
        unlink(path);

        struct tu_capture c;
        tu_capture_begin(&c);
        assert_int_equal(dotenv_parse_file(path, &e), -ENOENT);
        unsigned errors;
        _cleanup_free_ char *out = tu_capture_end(&c, &errors);
        assert_int_equal(errors, 1);
        assert_non_null(strstr(out, path));
        env_free(&e);
}

/* ---- the variable set and --set ---- */

static void test_env_ops(void **state) {
        (void)state;
        struct env e = {0};
        env_set(&e, "B", "2", ORIGIN_DEFAULT, "profile.yml", 0);
        env_set(&e, "A", "1", ORIGIN_FILE, "a.env", 3);
        env_set(&e, "B", env_get(&e, "B"), ORIGIN_DERIVED, NULL, 0); /* aliasing is fine */
        assert_string_equal(env_get(&e, "B"), "2");
        assert_int_equal(env_find(&e, "B")->origin, ORIGIN_DERIVED);
        assert_null(env_find(&e, "B")->file);
        assert_int_equal(e.n, 2);
        env_unset(&e, "A");
        env_unset(&e, "nope");
        assert_null(env_get(&e, "A"));
        assert_int_equal(e.n, 1);

        assert_int_equal(env_set_assignment(&e, "C=x=y #z $HOME", "--set", 0), 0);
        assert_string_equal(env_get(&e, "C"), "x=y #z $HOME");
        assert_int_equal(env_find(&e, "C")->origin, ORIGIN_SET);
        assert_string_equal(env_find(&e, "C")->file, "--set");
        assert_int_equal(env_set_assignment(&e, "EMPTY=", "--set", 0), 0);
        /* UTF-8, four-byte sequences too */
        assert_int_equal(env_set_assignment(&e, "G=p\xc3\xa4ss \xf0\x9f\x94\x91", "--set", 0), 0);
        assert_string_equal(env_get(&e, "G"), "p\xc3\xa4ss \xf0\x9f\x94\x91");
        assert_string_equal(env_get(&e, "EMPTY"), "");
        /* a fleet file's env: value keeps its file and line for messages */
        assert_int_equal(env_set_assignment(&e, "F=v", "fleet.yml", 7), 0);
        assert_string_equal(env_find(&e, "F")->file, "fleet.yml");
        assert_int_equal(env_find(&e, "F")->line, 7);
        assert_int_equal(env_find(&e, "F")->origin, ORIGIN_SET);

        static const char *const bad[] = {"NOEQUALS", "=x", "1A=x", "A B=x", "A$=x", "DB_PASSWORD=p\xe4ss"};
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                struct tu_capture c;
                tu_capture_begin(&c);
                assert_int_equal(env_set_assignment(&e, bad[i], "--set", 0), -EINVAL);
                unsigned errors;
                _cleanup_free_ char *out = tu_capture_end(&c, &errors);
                assert_int_equal(errors, 1);
                assert_non_null(strstr(out, "dimimage: error: --set: "));
        }
        struct tu_capture c;
        tu_capture_begin(&c);
        assert_int_equal(env_set_assignment(&e, "1A=x", "fleet.yml", 9), -EINVAL);
        _cleanup_free_ char *out = tu_capture_end(&c, NULL);
        assert_non_null(strstr(out, "dimimage: error: fleet.yml:9: invalid variable name: it starts with a digit"));
        assert_null(strstr(out, "1A"));
        env_free(&e);
        assert_int_equal(e.n, 0);

        assert_true(env_key_valid("A"));
        assert_true(env_key_valid("a.b-c_9"));
        assert_false(env_key_valid(""));
        assert_false(env_key_valid("9A"));
        assert_false(env_key_valid("-A"));
        assert_false(env_key_valid("A B"));

        assert_string_equal(env_origin_name(ORIGIN_DEFAULT), "default");
        assert_string_equal(env_origin_name(ORIGIN_FILE), "file");
        assert_string_equal(env_origin_name(ORIGIN_SET), "set");
        assert_string_equal(env_origin_name(ORIGIN_GENERATED), "generated");
        assert_string_equal(env_origin_name(ORIGIN_DERIVED), "derived");
}

/* ---- interpolation ---- */

struct interp_case {
        const char *in;
        const char *out;
};

static const struct interp_case interp_cases[] = {
        {"plain", "plain"},
        {"$A", "1"},
        {"${A}", "1"},
        {"${A}${A}$A", "111"},
        {"x$A.y", "x1.y"},
        {"$$A", "$A"},
        {"$$$A", "$1"},
        {"$", "$"},
        {"a$ b", "a$ b"},
        {"$1", "$1"},
        {"${UNSET}", ""},
        {"${UNSET:-d}", "d"},
        {"${UNSET-d}", "d"},
        {"${EMPTY:-d}", "d"},
        {"${EMPTY-d}", ""},
        {"${A:-d}", "1"},
        {"${A:+x}", "x"},
        {"${A+x}", "x"},
        {"${EMPTY:+x}", ""},
        {"${EMPTY+x}", "x"},
        {"${UNSET+x}", ""},
        {"${UNSET:-${A}}", "1"},
        {"${UNSET:-${UNSET2:-two}}", "two"},
        {"${UNSET:-a}b}", "ab}"},
        {"${UNSET:-{x}", "{x"},
        {"${UNSET:-$$}", "$"},
        {"${UNSET:-a:b-c?d}", "a:b-c?d"},
        {"${EMPTY?}", ""},
        {"${A:?m}", "1"},
        {"${P}/sub", "./p/sub"},
        {"http://${HOST:-192.168.1.102}:5080", "http://192.168.1.102:5080"},
};

static struct env test_env(void) {
        struct env e = {0};
        env_set(&e, "A", "1", ORIGIN_FILE, "t.env", 1);
        env_set(&e, "EMPTY", "", ORIGIN_FILE, "t.env", 2);
        env_set(&e, "P", "./p", ORIGIN_FILE, "t.env", 3);
        return e;
}

static void test_interpolate_table(void **state) {
        (void)state;
        struct env e = test_env();
        for (size_t i = 0; i < ARRAY_SIZE(interp_cases); i++) {
                char *out = NULL;
                int r = env_interpolate(&e, interp_cases[i].in, &out, "c.yml", 1);
                if (r < 0 || strcmp(out, interp_cases[i].out) != 0)
                        fail_msg("case %zu [%s]: r=%d got [%s] want [%s]", i, interp_cases[i].in, r,
                                 out ? out : "", interp_cases[i].out);
                free(out);
        }
        env_free(&e);
}

static void expect_interp_error(const struct env *e, const char *in, const char *want) {
        char *out = NULL;
        struct tu_capture c;
        tu_capture_begin(&c);
        int r = env_interpolate(e, in, &out, "c.yml", 7);
        unsigned errors;
        _cleanup_free_ char *err = tu_capture_end(&c, &errors);
        if (r != -EINVAL || !strstr(err, want))
                fail_msg("[%s]: r=%d stderr [%s] want [%s]", in, r, err, want);
        assert_null(out);
        assert_int_equal(errors, 1);
        assert_int_equal(count_lines_with(err, "dimimage: error:"), 1);
}

static void test_interpolate_errors(void **state) {
        (void)state;
        struct env e = test_env();
        expect_interp_error(&e, "${OPENOBSERVE_PASSWORD:?OpenObserve password is required}",
                            "c.yml:7: required variable OPENOBSERVE_PASSWORD is missing a value: OpenObserve "
                            "password is required");
        expect_interp_error(&e, "${EMPTY:?}", "c.yml:7: required variable EMPTY is missing a value");
        expect_interp_error(&e, "${UNSET?x}", "required variable UNSET is missing a value: x");
        expect_interp_error(&e, "${UNSET:-${NEED:?inner}}", "required variable NEED is missing a value: inner");
        static const char *const bad[] = {"${", "${A", "${}", "${1}", "${A B}", "${A:x}", "${A:}", "x${-y}",
                                          "${A:-\n}"};
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
                expect_interp_error(&e, bad[i], "c.yml:7: invalid ${...}");
        struct buf deep = {0};
        for (int i = 0; i < 40; i++)
                buf_puts(&deep, "${U:-");
        for (int i = 0; i < 40; i++)
                buf_puts(&deep, "}");
        expect_interp_error(&e, (const char *)deep.data, "nested more than");
        buf_free(&deep);
        env_free(&e);
}

struct refs {
        char names[8][16];
        enum env_ref_op ops[8];
        char args[8][16];
        bool colon[8];
        size_t n;
};

static int collect(const struct env_ref *r, void *u) {
        struct refs *c = u;
        assert_true(c->n < 8);
        snprintf(c->names[c->n], sizeof c->names[0], "%.*s", (int)r->name_len, r->name);
        snprintf(c->args[c->n], sizeof c->args[0], "%.*s", (int)r->arg_len, r->arg ? r->arg : "");
        c->ops[c->n] = r->op;
        c->colon[c->n] = r->colon;
        c->n++;
        return 0;
}

static void test_references(void **state) {
        (void)state;
        struct refs c = {0};
        assert_int_equal(env_references("${A:-${B}} $C $$D ${E:?m} ${F+x} $", "f", 1, collect, &c), 0);
        assert_int_equal(c.n, 5);
        assert_string_equal(c.names[0], "A");
        assert_int_equal(c.ops[0], ENV_REF_DEFAULT);
        assert_true(c.colon[0]);
        assert_string_equal(c.args[0], "${B}");
        assert_string_equal(c.names[1], "B");
        assert_int_equal(c.ops[1], ENV_REF_PLAIN);
        assert_string_equal(c.names[2], "C");
        assert_string_equal(c.names[3], "E");
        assert_int_equal(c.ops[3], ENV_REF_REQUIRED);
        assert_string_equal(c.args[3], "m");
        assert_string_equal(c.names[4], "F");
        assert_int_equal(c.ops[4], ENV_REF_ALT);
        assert_false(c.colon[4]);
}

/* ---- writing ---- */

static const char *const nasty[] = {
        "",
        "simple",
        "with space",
        " leading and trailing ",
        "hash # inside",
        "#start",
        "single ' quote",
        "'",
        "double \" quote",
        "both ' and \"",
        "dollar $HOME ${X} $$",
        "$",
        "back\\slash",
        "ends with backslash\\",
        "\\",
        "\\\\",
        "quote and backslash '\\",
        "\\n literal",
        "\\0101 literal",
        "line one\nline two\n",
        "\n",
        "cr\r\nlf",
        "tab\there",
        "unicode caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x94\x91",
        "nbsp\xc2\xa0",
        "equals=sign==",
        "KEY=VALUE",
        "${A:-${B}}'\"\\$\n#",
        "\"",
        "\\\"",
        "\\'",
        "\\$",
        "a\\$b",
        "ctrl \a\b\f\v\x01\x7f",
        "export X=1",
        "  ",
        ":",
        "a:b",
};

static void test_roundtrip(void **state) {
        (void)state;
        struct env e = {0};
        for (size_t i = 0; i < ARRAY_SIZE(nasty); i++) {
                char key[16];
                snprintf(key, sizeof key, "K%02zu", i);
                env_set(&e, key, nasty[i], ORIGIN_GENERATED, NULL, 0);
        }
        size_t len;
        _cleanup_free_ char *text = env_serialize(&e, &len);
        assert_int_equal(strlen(text), len);
        struct env back = {0};
        assert_int_equal(dotenv_parse("ser.env", text, len, &back, ORIGIN_FILE), 0);
        assert_int_equal(back.n, e.n);
        for (size_t i = 0; i < e.n; i++) {
                const char *v = env_get(&back, e.v[i].key);
                if (!v || strcmp(v, e.v[i].value) != 0)
                        fail_msg("%s: [%s] came back as [%s]", e.v[i].key, e.v[i].value, v ? v : "(unset)");
        }
        env_free(&back);
        env_free(&e);
}

/* For Compose v1 every value either has a form that compose-go (our parser)
 * reads back the same, or is refused naming its key, never the value.
 * (python-dotenv reads them back in tests/integration/70-hostile.sh.) */
static void test_roundtrip_v1(void **state) {
        (void)state;
        static const char *const refused[] = {"a${B}c", "x${A:-b}", "it's $5", "x$y\\\\z", "x$y\\", "$\r"};
        for (size_t i = 0; i < ARRAY_SIZE(refused); i++) {
                struct env e = {0};
                env_set(&e, "OK", "fine", ORIGIN_FILE, "a.env", 1);
                env_set(&e, "SECRET", refused[i], ORIGIN_FILE, "a.env", 7);
                char *text = NULL;
                struct tu_capture c;
                tu_capture_begin(&c);
                assert_int_equal(env_serialize_for(&e, true, &text, NULL), -EINVAL);
                unsigned errors;
                _cleanup_free_ char *out = tu_capture_end(&c, &errors);
                assert_null(text);
                assert_int_equal(errors, 1);
                if (!strstr(out, "a.env:7: the value of SECRET would be read differently by Compose v1") ||
                    strstr(out, refused[i]))
                        fail_msg("[%s]: %s", refused[i], out);
                env_free(&e);
        }
        struct env e = {0}, back = {0};
        size_t n = 0;
        for (size_t i = 0; i < ARRAY_SIZE(nasty); i++) {
                struct env one = {0};
                env_set(&one, "K", nasty[i], ORIGIN_SET, "--set", 0);
                char *text = NULL;
                struct tu_capture c;
                tu_capture_begin(&c);
                int r = env_serialize_for(&one, true, &text, NULL);
                _cleanup_free_ char *out = tu_capture_end(&c, NULL);
                free(text);
                env_free(&one);
                if (r < 0)
                        continue;
                char key[16];
                snprintf(key, sizeof key, "K%02zu", i);
                env_set(&e, key, nasty[i], ORIGIN_SET, "--set", 0);
                n++;
        }
        assert_true(n > ARRAY_SIZE(nasty) / 2);
        env_set(&e, "WIN", "C:\\dir\\", ORIGIN_SET, "--set", 0);
        char *text = NULL;
        size_t len;
        assert_int_equal(env_serialize_for(&e, true, &text, &len), 0);
        assert_int_equal(dotenv_parse("v1.env", text, len, &back, ORIGIN_FILE), 0);
        for (size_t i = 0; i < e.n; i++) {
                const char *v = env_get(&back, e.v[i].key);
                if (!v || strcmp(v, e.v[i].value) != 0)
                        fail_msg("%s: [%s] came back as [%s]", e.v[i].key, e.v[i].value, v ? v : "(unset)");
        }
        /* a final backslash fits bare for v1, where quotes would lose it */
        assert_non_null(strstr(text, "\nWIN=C:\\dir\\\n"));
        free(text);
        env_free(&back);
        env_free(&e);
}

static char *golden_read(const char *name) {
        _cleanup_free_ char *path = xasprintf(GOLDEN_DIR "%s", name);
        uint8_t *data = NULL;
        size_t len;
        if (read_file(path, 1 << 20, &data, &len) < 0)
                fail_msg("cannot read %s (run from the top directory)", path);
        return (char *)data;
}

/* The serializer's exact output: sorted keys, minimal quoting. */
static void test_serialize_golden(void **state) {
        (void)state;
        struct env e = {0};
        env_set(&e, "OPENOBSERVE_URL", "http://192.168.1.102:5080", ORIGIN_DEFAULT, NULL, 0);
        env_set(&e, "DB_PASSWORD", "Xk3v9QpL2mZ7aB4c", ORIGIN_GENERATED, NULL, 0);
        env_set(&e, "APP_ENV", "prod", ORIGIN_DEFAULT, NULL, 0);
        env_set(&e, "GREETING", "hello world # not a comment", ORIGIN_FILE, "a.env", 1);
        env_set(&e, "PRICE", "5$ or ${X}", ORIGIN_FILE, "a.env", 2);
        env_set(&e, "QUOTE", "it's \"quoted\"", ORIGIN_FILE, "a.env", 3);
        env_set(&e, "MULTI", "line 1\nline 2", ORIGIN_FILE, "a.env", 4);
        env_set(&e, "EMPTY", "", ORIGIN_SET, "--set", 0);
        env_set(&e, "WIN_PATH", "C:\\dir\\", ORIGIN_SET, "--set", 0);
        env_set(&e, "CRLF", "a\r\nb", ORIGIN_SET, "--set", 0);
        _cleanup_free_ char *text = env_serialize(&e, NULL);
        _cleanup_free_ char *want = golden_read("serialize.env");
        if (strcmp(text, want) != 0)
                fail_msg("serializer output differs from " GOLDEN_DIR "serialize.env:\n%s", text);
        /* and the golden file reads back as the same values */
        struct env back = {0};
        assert_int_equal(dotenv_parse("serialize.env", want, strlen(want), &back, ORIGIN_FILE), 0);
        for (size_t i = 0; i < e.n; i++)
                assert_string_equal(env_get(&back, e.v[i].key), e.v[i].value);
        env_free(&back);
        env_free(&e);
}

/* The compose-style sample in the golden directory parses to the values
 * listed in its twin *.expected (KEY=VALUE with C escapes). */
static void test_golden_compose_sample(void **state) {
        (void)state;
        _cleanup_free_ char *text = golden_read("compose-sample.env");
        _cleanup_free_ char *want = golden_read("compose-sample.expected");
        struct env e = {0};
        assert_int_equal(dotenv_parse("compose-sample.env", text, strlen(text), &e, ORIGIN_FILE), 0);
        struct env exp = {0};
        assert_int_equal(dotenv_parse("compose-sample.expected", want, strlen(want), &exp, ORIGIN_FILE), 0);
        assert_int_equal(e.n, exp.n);
        for (size_t i = 0; i < exp.n; i++) {
                const char *v = env_get(&e, exp.v[i].key);
                if (!v || strcmp(v, exp.v[i].value) != 0)
                        fail_msg("%s: got [%s] want [%s]", exp.v[i].key, v ? v : "(unset)", exp.v[i].value);
        }
        env_free(&exp);
        env_free(&e);
}

/* Hostile sizes: past 10000 keys the file is refused at the key's line
 * (looking each one up would take hours for the 16 MiB allowed), and a
 * value with many unset references warns once, not once per reference. */
static void test_hostile_counts(void **state) {
        (void)state;
        struct buf b = {0};
        for (int i = 0; i <= 10000; i++)
                buf_printf(&b, "K%d=v\n", i);
        struct env e = {0};
        struct tu_capture c;
        tu_capture_begin(&c);
        int r = dotenv_parse("many.env", (const char *)b.data, b.len, &e, ORIGIN_FILE);
        unsigned errors;
        _cleanup_free_ char *out = tu_capture_end(&c, &errors);
        assert_int_equal(r, -EINVAL);
        assert_int_equal(errors, 1);
        assert_non_null(strstr(out, "many.env:10001: more than 10000 variables"));
        env_free(&e);
        buf_free(&b);

        buf_puts(&b, "A=");
        for (int i = 0; i < 1000; i++)
                buf_puts(&b, "x${NOPE}");
        buf_puts(&b, "\n");
        tu_capture_begin(&c);
        r = dotenv_parse("refs.env", (const char *)b.data, b.len, &e, ORIGIN_FILE);
        _cleanup_free_ char *out2 = tu_capture_end(&c, &errors);
        assert_int_equal(r, 0);
        assert_int_equal(count_lines_with(out2, "warning:"), 1);
        assert_int_equal(strlen(env_get(&e, "A")), 1000);
        env_free(&e);
        buf_free(&b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_table),
                cmocka_unit_test(test_parse_origin_and_lines),
                cmocka_unit_test(test_interpolation_across_files),
                cmocka_unit_test(test_parse_errors),
                cmocka_unit_test(test_warning_hides_value),
                cmocka_unit_test(test_megabyte_lines),
                cmocka_unit_test(test_too_large),
                cmocka_unit_test(test_parse_file),
                cmocka_unit_test(test_env_ops),
                cmocka_unit_test(test_interpolate_table),
                cmocka_unit_test(test_interpolate_errors),
                cmocka_unit_test(test_references),
                cmocka_unit_test(test_repeated_key),
                cmocka_unit_test(test_roundtrip),
                cmocka_unit_test(test_roundtrip_v1),
                cmocka_unit_test(test_serialize_golden),
                cmocka_unit_test(test_golden_compose_sample),
                cmocka_unit_test(test_hostile_counts),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
