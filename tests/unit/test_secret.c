/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secret.h"
#include "util.h"

/* libparted's constructor trips ASan's strchr interceptor before main. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "intercept_strchr=0"; }

static void test_generate(void **state) {
        (void)state;
        char *a = NULL, *b = NULL;
        assert_int_equal(secret_generate(32, &a), 0);
        assert_int_equal(secret_generate(32, &b), 0);
        assert_int_equal(strlen(a), 32);
        assert_string_not_equal(a, b);
        for (const char *c = a; *c; c++)
                assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", *c));
        assert_null(secret_weakness(a));
        free(a);
        free(b);
        assert_int_equal(secret_generate(0, &a), 0);
        assert_string_equal(a, "");
        free(a);

        /* Every one of the 62 characters turns up, none much more often
         * than the others (a modulo bias would favour the first 8). */
        unsigned counts[256] = {0};
        assert_int_equal(secret_generate(62 * 1000, &a), 0);
        for (const char *c = a; *c; c++)
                counts[(unsigned char)*c]++;
        free(a);
        unsigned seen = 0;
        for (unsigned i = 0; i < 256; i++)
                if (counts[i]) {
                        seen++;
                        assert_true(counts[i] > 800 && counts[i] < 1200);
                }
        assert_int_equal(seen, 62);
}

static void test_hash_password(void **state) {
        (void)state;
        char *h = NULL;
        assert_int_equal(secret_hash_password("correct horse battery", &h), 0);
        assert_true(str_has_prefix(h, "$y$"));
        assert_true(secret_hash_valid(h));
        /* crypt() with the hash as setting reproduces it for the right password only */
        struct crypt_data cd;
        memset(&cd, 0, sizeof cd);
        const char *again = crypt_r("correct horse battery", h, &cd);
        assert_non_null(again);
        assert_string_equal(again, h);
        memset(&cd, 0, sizeof cd);
        again = crypt_r("wrong horse battery", h, &cd);
        assert_true(!again || strcmp(again, h) != 0);
        char *h2 = NULL;
        assert_int_equal(secret_hash_password("correct horse battery", &h2), 0);
        assert_string_not_equal(h, h2); /* random salt */
        free(h);
        free(h2);
}

static void test_hash_valid(void **state) {
        (void)state;
        struct crypt_data cd;
        memset(&cd, 0, sizeof cd);
        const char *sha512 = crypt_r("pw", "$6$saltsaltsalt$", &cd);
        assert_non_null(sha512);
        assert_true(secret_hash_valid(sha512));
        /* what libxcrypt makes for "$5$" today, which it calls a legacy
         * method: Debian still verifies it, and the docs accept it */
        static const char *const made[] = {"$5$", "$6$", "$y$", "$gy$", "$2b$"};
        for (size_t i = 0; i < ARRAY_SIZE(made); i++) {
                _cleanup_free_ char *salt = crypt_gensalt_ra(made[i], 0, NULL, 0);
                assert_non_null(salt);
                memset(&cd, 0, sizeof cd);
                const char *h = crypt_r("correct horse battery", salt, &cd);
                assert_non_null(h);
                if (!secret_hash_valid(h))
                        fail_msg("refused %s", h);
        }
        static const char *const bad[] = {
                "",
                "plaintext-password",
                "$1$abcdefgh$0123456789012345678901", /* MD5: too weak to accept */
                "_J9..WVSzKO7zsyDLuk0123456789",         /* DES: legacy, and not ours */
                "$6$",
                "$y$j9T$short",
                "$y$j9T$salt:with:colons$0123456789012345678901234567890",
                "$y$j9T$salt\nnewline$01234567890123456789012345678901",
                "$y$ spaces in hash 0123456789012345678901234567890",
                "$zz$unknownmethod0123456789012345678901234567890",
                /* cut short: no password matches, and the Pi is locked */
                "$y$j9T$yAUSPVuaCY8iAvFIZUFrz1$",
                "$6$saltsaltsaltsalt$",
                "$y$j9T$yAUSPVuaCY8iAvFIZUFrz1$Qk0wQRTZTbPQWgkS6RsJUpwGTpW9Dkr",
        };
        /* the same, from hashes libxcrypt made: one character short or long,
         * or one outside crypt's base64 */
        for (size_t i = 0; i < ARRAY_SIZE(made); i++) {
                _cleanup_free_ char *salt = crypt_gensalt_ra(made[i], 0, NULL, 0);
                memset(&cd, 0, sizeof cd);
                _cleanup_free_ char *h = xstrdup(crypt_r("pw", salt, &cd));
                size_t n = strlen(h);
                _cleanup_free_ char *longer = xasprintf("%sA", h);
                if (secret_hash_valid(longer))
                        fail_msg("accepted %s", longer);
                h[n - 1] = '+';
                if (secret_hash_valid(h))
                        fail_msg("accepted %s", h);
                h[n - 1] = 0;
                if (secret_hash_valid(h))
                        fail_msg("accepted %s", h);
        }
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
                if (secret_hash_valid(bad[i]))
                        fail_msg("accepted [%s]", bad[i]);
        assert_false(secret_hash_valid(NULL));
}

static void test_wifi_psk(void **state) {
        (void)state;
        char hex[65];
        /* IEEE 802.11i-2004 Annex H.4.3 vectors; the last one checked against Python hashlib */
        assert_int_equal(secret_wifi_psk("IEEE", "password", hex), 0);
        assert_string_equal(hex, "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e");
        assert_int_equal(secret_wifi_psk("ThisIsASSID", "ThisIsAPassword", hex), 0);
        assert_string_equal(hex, "0dc0d6eb90555ed6419756b9a15ec3e3209b63df707dd508d14581f8982721af");
        assert_int_equal(secret_wifi_psk("ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ",
                                         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", hex),
                         0);
        assert_string_equal(hex, "2d43d0dabfdd635377172efa1fc4b4b87dbfc4219193909ded9a7cfb89a3097b");

        static const char *const bad[] = {
                "1234567",                                                          /* 7 */
                "0123456789012345678901234567890123456789012345678901234567890123x", /* 65 */
                "0123456789012345678901234567890123456789012345678901234567890g23", /* 64, not hex */
                "tab\tinside pass",
                "caf\xc3\xa9 is not ASCII",
                "",
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
                assert_int_equal(secret_wifi_psk("net", bad[i], hex), -EINVAL);
        assert_int_equal(secret_wifi_psk("", "password", hex), -EINVAL);
        assert_int_equal(secret_wifi_psk("0123456789012345678901234567890123", "password", hex), -EINVAL);
        /* 64 hex digits are the key itself, taken as it is */
        assert_int_equal(secret_wifi_psk("net", "F42C6FC52DF0EBEF9EBB4B90B38A5F902E83FE1B135A70E23AED762E9710A12E", hex), 0);
        assert_string_equal(hex, "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e");
        /* 8 and 63 characters are the limits */
        assert_int_equal(secret_wifi_psk("net", "12345678", hex), 0);
        assert_int_equal(secret_wifi_psk("net", "012345678901234567890123456789012345678901234567890123456789012",
                                         hex),
                         0);
}

static void test_sensitive_keys(void **state) {
        (void)state;
        static const char *const yes[] = {"DB_PASSWORD",  "OPENOBSERVE_PASSWORD", "ZO_ROOT_USER_PASSWORD",
                                          "db_password",  "MYSQL_PASSWD",         "JWT_SECRET",
                                          "SECRET_KEY_BASE", "GITHUB_TOKEN",      "SSH_PRIVATE_KEY",
                                          "API_KEY",      "STRIPE_API_KEY",       "aws_access_key",
                                          "SMTP_PASS",    "WIFI_PASSPHRASE"};
        static const char *const no[] = {"DB_USER",  "OPENOBSERVE_URL", "OPENOBSERVE_EMAIL", "RUST_LOG",
                                         "APP_ENV",  "KEYMAP",          "MONKEY",            "KEYBOARD_LAYOUT",
                                         "PASSAGE", "POSTGRES_DB"};
        for (size_t i = 0; i < ARRAY_SIZE(yes); i++)
                if (!secret_key_is_sensitive(yes[i]))
                        fail_msg("%s should be sensitive", yes[i]);
        for (size_t i = 0; i < ARRAY_SIZE(no); i++)
                if (secret_key_is_sensitive(no[i]))
                        fail_msg("%s should not be sensitive", no[i]);
}

static void test_weakness(void **state) {
        (void)state;
        static const struct {
                const char *value, *reason;
        } cases[] = {
                {"", "is empty"},
                {"changeme", "is a well-known default"},
                {"ChangeMe", "is a well-known default"},
                {"CHANGE_ME", "is a well-known default"},
                {"password", "is a well-known default"},
                {"Passw0rd", "is a well-known default"},
                {"admin", "is a well-known default"},
                {"secret", "is a well-known default"},
                {"postgres", "is a well-known default"},
                {"root", "is a well-known default"},
                {"123456", "is a well-known default"},
                {"qwerty", "is a well-known default"},
                {"letmein", "is a well-known default"},
                {"example", "is a well-known default"},
                {"default", "is a well-known default"},
                {"your_secure_db_password", "is a well-known default"},
                {"aaaaaaaaaaaaaaaaaaaa", "is one character repeated"},
                {"xx", "is one character repeated"},
                {"short", "is shorter than 12 characters"},
                {"Xk3v9QpL2mZ", "is shorter than 12 characters"},
                {"changeme12345", "is based on a well-known default"},
                {"MyPassword2024!", "is based on a well-known default"},
                {"Xk3v9QpL2mZ7", NULL},
                {"correct horse battery staple", NULL},
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                const char *r = secret_weakness(cases[i].value);
                if (!cases[i].reason ? r != NULL : !r || strcmp(r, cases[i].reason) != 0)
                        fail_msg("[%s]: got %s, want %s", cases[i].value, r ? r : "NULL",
                                 cases[i].reason ? cases[i].reason : "NULL");
                /* a reason never quotes the value */
                if (r && strlen(cases[i].value) >= 8)
                        assert_null(strstr(r, cases[i].value));
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_generate),     cmocka_unit_test(test_hash_password),
                cmocka_unit_test(test_hash_valid),   cmocka_unit_test(test_wifi_psk),
                cmocka_unit_test(test_sensitive_keys), cmocka_unit_test(test_weakness),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
