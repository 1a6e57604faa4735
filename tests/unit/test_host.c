/* SPDX-License-Identifier: GPL-3.0-or-later */
/* host: what host_finalize refuses before anything is written (each with
 * one error line naming where the value came from, never a secret), and
 * what it must keep accepting. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "log.h"
#include "test_util.h"
#include "util.h"

static char dir[256];

static int setup(void **state) {
        (void)state;
        return tu_mkdtemp(dir, sizeof dir, "dimimage-test-host");
}

static int teardown(void **state) {
        (void)state;
        tu_rm_rf(dir);
        return 0;
}

/* dir/name holding text; the path (caller frees). */
static char *put(const char *name, const char *text) {
        char *path = xasprintf("%s/%s", dir, name);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        assert_true(fputs(text, f) >= 0);
        assert_int_equal(fclose(f), 0);
        return path;
}

/* host_finalize(hs) with stderr captured into *err (caller frees) and the
 * number of errors it logged into *errors. */
static int finalize(struct host_settings *hs, char **err, unsigned *errors) {
        struct tu_capture c;
        tu_capture_begin(&c);
        int r = host_finalize(hs);
        *err = tu_capture_end(&c, errors);
        return r;
}

/* ---- login password from a file ---- */

static void test_weak_password_refused(void **state) {
        (void)state;
        static const char *const weak[] = {"changeme\n", "Sh0rt!pw\n", "raspberry", "aaaaaaaaaaaaaaaa\n",
                                           "Password2024!-really\n"};
        for (size_t i = 0; i < ARRAY_SIZE(weak); i++) {
                _cleanup_free_ char *pw = put("weak.pass", weak[i]);
                struct host_settings hs = {.user = xstrdup("pi"), .password_file = xstrdup(pw)};
                char *err = NULL;
                unsigned errors = 0;
                assert_int_equal(finalize(&hs, &err, &errors), -EINVAL);
                assert_int_equal(errors, 1);
                assert_non_null(strstr(err, pw));
                assert_non_null(strstr(err, "--allow-weak-secrets"));
                /* the value itself never appears */
                _cleanup_free_ char *value = xstrdup(weak[i]);
                value[strcspn(value, "\n")] = 0;
                if (strstr(err, value))
                        fail_msg("the password is in the message: %s", err);
                assert_null(hs.password_hash);
                free(err);
                host_free(&hs);
        }
}

static void test_weak_password_allowed(void **state) {
        (void)state;
        _cleanup_free_ char *pw = put("weak.pass", "changeme\n");
        /* the flag reaches a host's settings through host_merge, as a
         * build's command-line settings do */
        struct host_settings cli = {.allow_weak_secrets = true};
        struct host_settings hs = {.user = xstrdup("pi"), .password_file = xstrdup(pw)};
        host_merge(&hs, &cli);
        assert_true(hs.allow_weak_secrets);
        char *err = NULL;
        unsigned errors = 0;
        assert_int_equal(finalize(&hs, &err, &errors), 0);
        assert_int_equal(errors, 0);
        assert_non_null(strstr(err, "warning"));
        assert_null(strstr(err, "changeme"));
        assert_true(str_has_prefix(hs.password_hash, "$y$"));
        assert_null(hs.password_file);
        free(err);
        host_free(&hs);
}

static void test_strong_password_accepted(void **state) {
        (void)state;
        _cleanup_free_ char *pw = put("strong.pass", "correct horse battery staple\n");
        struct host_settings hs = {.user = xstrdup("pi"), .password_file = xstrdup(pw)};
        char *err = NULL;
        unsigned errors = 0;
        assert_int_equal(finalize(&hs, &err, &errors), 0);
        assert_int_equal(errors, 0);
        assert_string_equal(err, "");
        assert_true(str_has_prefix(hs.password_hash, "$y$"));
        free(err);
        host_free(&hs);
}

static void test_weak_password_from_host_file(void **state) {
        (void)state;
        _cleanup_free_ char *pw = put("pi.pass", "letmein\n");
        _cleanup_free_ char *yml = put("host.yml", "user: pi\npassword_file: pi.pass\n");
        struct host_settings hs = {0};
        assert_int_equal(host_load_file(yml, &hs), 0);
        char *err = NULL;
        unsigned errors = 0;
        assert_int_equal(finalize(&hs, &err, &errors), -EINVAL);
        assert_int_equal(errors, 1);
        assert_non_null(strstr(err, pw));
        assert_null(strstr(err, "letmein"));
        free(err);
        host_free(&hs);
}

/* ---- a ready-made password hash ---- */

static void test_password_hash_kinds(void **state) {
        (void)state;
        /* SHA-256-crypt, which libxcrypt's crypt_checksalt calls legacy */
        struct host_settings hs = {.user = xstrdup("pi"),
                                   .password_hash = xstrdup("$5$BECTNYIsMUMVZtYQ$EQWkdXCxbDEdYkqOo2jjYEXMrUMcuOE7rpr2V4yGbaD")};
        char *err = NULL;
        unsigned errors = 0;
        assert_int_equal(finalize(&hs, &err, &errors), 0);
        assert_int_equal(errors, 0);
        free(err);
        host_free(&hs);
        /* MD5-crypt: refused, saying what to use instead */
        hs = (struct host_settings){.user = xstrdup("pi"), .password_hash = xstrdup("$1$abcdefgh$0123456789012345678901")};
        assert_int_equal(finalize(&hs, &err, &errors), -EINVAL);
        assert_int_equal(errors, 1);
        assert_non_null(strstr(err, "mkpasswd -m yescrypt"));
        free(err);
        host_free(&hs);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_weak_password_refused),
                cmocka_unit_test(test_weak_password_allowed),
                cmocka_unit_test(test_strong_password_accepted),
                cmocka_unit_test(test_weak_password_from_host_file),
                cmocka_unit_test(test_password_hash_kinds),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
