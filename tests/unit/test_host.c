/* SPDX-License-Identifier: GPL-3.0-or-later */
/* host: what host_finalize refuses before anything is written (each with
 * one error line naming where the value came from, never a secret), and
 * what it must keep accepting. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* host_finalize(hs, allow_weak) with stderr captured into *err (caller
 * frees) and the number of errors it logged into *errors. */
static int finalize_as(struct host_settings *hs, bool allow_weak, char **err, unsigned *errors) {
        struct tu_capture c;
        tu_capture_begin(&c);
        int r = host_finalize(hs, allow_weak);
        *err = tu_capture_end(&c, errors);
        return r;
}

static int finalize(struct host_settings *hs, char **err, unsigned *errors) {
        return finalize_as(hs, false, err, errors);
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
        struct host_settings hs = {.user = xstrdup("pi"), .password_file = xstrdup(pw)};
        char *err = NULL;
        unsigned errors = 0;
        assert_int_equal(finalize_as(&hs, true, &err, &errors), 0);
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

/* ---- SSH public keys ---- */

#define ED25519 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDvvwoLps4ERlT3dQinyOoYg5FW/gizqbtdeL5CRNM+7"
#define ED25519_AS_RSA "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIDvvwoLps4ERlT3dQinyOoYg5FW/gizqbtdeL5CRNM+7"
#define RSA                                                                                                  \
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCx4hOPE8OQiVq6yxe6rZ0sPhSx6QYS8FjRODWBlxYHk9cHBYPTOmkmg6W58NoCTvG36e" \
        "mRyLDZRRZ5pal9nx9mUrVHDRTlK0pbF0dd3FPlMf0B8P7+RrgSXmZVDcqJSecyWaWzoq22jTU/oeb8E06nNXjIIHtUjQrQmYWTZd8tLE6" \
        "vLZRp5V1/4XUc+CaBoOEk/unydCNqvwDrvfpRDsCJRHWsDmIakgQFnpcVAUiQiqI5t8cEpg5kwNNDT83AX44aUBjs0eHyFlTOyAopSlRbo" \
        "Rrru3YzCNJ1wurhRXI9p73ndOErFjhC41Pg6HWdgRJQh8Sm43cH62+F2hl7uIWl"
#define ECDSA                                                                                                \
        "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBFViXqVod+/zdaOvAWptgMjo2MNIx1wM5G" \
        "Rqy/4j2vQS+xXPNUS035qHrxufIOFFaXFMA0lyp1wNXn7jbk93RHo="
#define SK_ED25519                                                                                           \
        "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZ" \
        "GhscHR4fAAAABHNzaDo="

/* host_finalize on a key file holding text. */
static int finalize_keys(const char *text, char **path, char **err, unsigned *errors, size_t *nkeys) {
        *path = put("key.pub", text);
        struct host_settings hs = {.user = xstrdup("pi")};
        hs.ssh_key_files = xcalloc(1, sizeof(char *));
        hs.ssh_key_files[0] = xstrdup(*path);
        hs.nssh_key_files = 1;
        int r = finalize(&hs, err, errors);
        *nkeys = hs.nssh_keys;
        host_free(&hs);
        return r;
}

static void test_keys_accepted(void **state) {
        (void)state;
        static const char *const good[] = {
                ED25519 " me@laptop\n",
                RSA "\n",
                ECDSA " ecdsa key\r\n",
                SK_ED25519 "\n",
                "# the desk's keys\n\n" ED25519 "\n" RSA " other\n",
                "from=\"10.0.0.0/8\",command=\"echo a b\",no-pty " ED25519 " restricted\n",
        };
        for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
                char *path = NULL, *err = NULL;
                unsigned errors = 0;
                size_t n = 0;
                if (finalize_keys(good[i], &path, &err, &errors, &n) != 0)
                        fail_msg("refused key %zu: %s", i, err);
                assert_int_equal(errors, 0);
                assert_true(n >= 1);
                free(path);
                free(err);
        }
}

static void test_keys_refused(void **state) {
        (void)state;
        static const struct {
                const char *key, *why;
        } bad[] = {
                /* `cut -c1-50 id_ed25519.pub` */
                {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDvvwoLps4ERlT3dQi", "not base64"},
                /* cut at a multiple of four: still base64, but a field ends early */
                {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDvvwoLps4ERlT3d", "ends inside a field"},
                {ED25519_AS_RSA " me@laptop", "says 'ssh-rsa' but holds an ssh-ed25519 key"},
                {"ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQCx4hOPE8OQiVq6yxe6rZ0s", "ends inside a field"},
                {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAHwABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4=", "31-byte"},
                {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fAAAAAXg=",
                 "3 fields"},
                /* two bytes after the last field: too short for a length */
                {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fAAA=",
                 "ends inside a field"},
                {"ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAzODQAAABBBAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                 "another curve"},
                {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDvvwoLps4ERlT3dQinyOoYg5FW/gizqbtdeL5CRNM*7", "not base64"},
                {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDvvwoLps4ERlT3dQinyOoYg5FW/gizqbtdeL5CRN=+7", "not base64"},
                {"ssh-ed25519", "no key data"},
                {"ssh-dss AAAAB3NzaC1kc3MAAACBAP", "key type"},
                {"AAAAC3NzaC1lZDI1NTE5AAAAIDvvwoLps4ERlT3dQinyOoYg5FW/gizqbtdeL5CRNM+7", "key type"},
                /* colour codes pasted with the comment: cloud-init's YAML takes none */
                {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDvvwoLps4ERlT3dQinyOoYg5FW/gizqbtdeL5CRNM+7 me\x1b[31m@x",
                 "control character (byte 0x1b)"},
                {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDvvwoLps4ERlT3dQinyOoYg5FW/gizqbtdeL5CRNM+7 me\x7f", "byte 0x7f"},
                /* a comment saved as Latin-1, a C1 control, a noncharacter:
                 * PyYAML refuses user-data for any of them */
                {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDvvwoLps4ERlT3dQinyOoYg5FW/gizqbtdeL5CRNM+7 caf\xe9@x",
                 "not UTF-8 text (byte 0xe9"},
                {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDvvwoLps4ERlT3dQinyOoYg5FW/gizqbtdeL5CRNM+7 caf\xc3",
                 "not UTF-8 text (byte 0xc3"},
                {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDvvwoLps4ERlT3dQinyOoYg5FW/gizqbtdeL5CRNM+7 a\xc2\x86" "b",
                 "control character (U+0086)"},
                {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDvvwoLps4ERlT3dQinyOoYg5FW/gizqbtdeL5CRNM+7 a\xc2\x85" "b",
                 "control character (U+0085)"},
                {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDvvwoLps4ERlT3dQinyOoYg5FW/gizqbtdeL5CRNM+7 a\xef\xbf\xbf",
                 "U+FFFF, which is no character"},
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                _cleanup_free_ char *text = xasprintf("# first a comment\n%s\n", bad[i].key);
                char *path = NULL, *err = NULL;
                unsigned errors = 0;
                size_t n = 0;
                if (finalize_keys(text, &path, &err, &errors, &n) != -EINVAL)
                        fail_msg("accepted key %zu: %s", i, bad[i].key);
                assert_int_equal(errors, 1);
                /* names the file and the key's line */
                _cleanup_free_ char *where = xasprintf("%s:2: ", path);
                if (!strstr(err, where) || !strstr(err, bad[i].why))
                        fail_msg("key %zu: want '%s' and '%s' in: %s", i, where, bad[i].why, err);
                free(path);
                free(err);
        }
}

/* An empty .pub (`> id.pub` by mistake, a failed copy) has no key to name.
 * M_PERTURB fills fresh allocations with non-zero bytes, as ASan does, so a
 * read buffer left unterminated shows up as garbage instead of passing by
 * luck on zeroed memory. */
static void test_key_file_empty(void **state) {
        (void)state;
        mallopt(M_PERTURB, 0x55);
        char *path = NULL, *err = NULL;
        unsigned errors = 0;
        size_t n = 0;
        int r = finalize_keys("", &path, &err, &errors, &n);
        mallopt(M_PERTURB, 0);
        assert_int_equal(r, -EINVAL);
        assert_int_equal(errors, 1);
        _cleanup_free_ char *want = xasprintf("%s: no SSH public key in file", path);
        if (!strstr(err, want))
                fail_msg("want '%s' in: %s", want, err);
        free(path);
        free(err);
}

static void test_key_other_formats(void **state) {
        (void)state;
        static const struct {
                const char *text, *hint;
        } other[] = {
                {"---- BEGIN SSH2 PUBLIC KEY ----\n"
                 "Comment: \"256-bit ED25519, converted by root@vm from OpenSSH\"\n"
                 "AAAAC3NzaC1lZDI1NTE5AAAAIDvvwoLps4ERlT3dQinyOoYg5FW/gizqbtdeL5CRNM+7\n"
                 "---- END SSH2 PUBLIC KEY ----\n",
                 "ssh-keygen -i -f "},
                {"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n"
                 "-----END PUBLIC KEY-----\n",
                 "ssh-keygen -i -m PKCS8 -f "},
        };
        for (size_t i = 0; i < ARRAY_SIZE(other); i++) {
                char *path = NULL, *err = NULL;
                unsigned errors = 0;
                size_t n = 0;
                assert_int_equal(finalize_keys(other[i].text, &path, &err, &errors, &n), -EINVAL);
                assert_int_equal(errors, 1);
                _cleanup_free_ char *hint = xasprintf("%s%s", other[i].hint, path);
                if (!strstr(err, path) || !strstr(err, hint))
                        fail_msg("want the file and '%s' in: %s", hint, err);
                assert_null(strstr(err, "--ssh-key"));
                free(path);
                free(err);
        }
}

static void test_key_in_host_yaml(void **state) {
        (void)state;
        _cleanup_free_ char *yml = put("keys.yml", "user: pi\n"
                                                   "ssh_keys:\n"
                                                   "  - " ED25519 " good\n"
                                                   "  - " ED25519_AS_RSA " pasted wrong\n");
        struct host_settings hs = {0};
        struct tu_capture c;
        tu_capture_begin(&c);
        int r = host_load_file(yml, &hs);
        unsigned errors = 0;
        _cleanup_free_ char *err = tu_capture_end(&c, &errors);
        assert_int_equal(r, -EINVAL);
        assert_int_equal(errors, 1);
        _cleanup_free_ char *where = xasprintf("%s:4: ", yml);
        if (!strstr(err, where) || !strstr(err, "holds an ssh-ed25519 key"))
                fail_msg("want '%s' in: %s", where, err);
        host_free(&hs);

        /* one key as a plain string, and a good list */
        _cleanup_free_ char *one = put("one.yml", "user: pi\nssh_keys: " ECDSA "\n");
        hs = (struct host_settings){0};
        assert_int_equal(host_load_file(one, &hs), 0);
        assert_int_equal(hs.nssh_keys, 1);
        host_free(&hs);
}

/* ---- static address and gateway ---- */

static void test_network(void **state) {
        (void)state;
        static const struct {
                const char *ip, *gateway, *why; /* why NULL: accepted */
        } cases[] = {
                {"192.168.1.101/24", "192.168.1.1", NULL},
                {"192.168.1.101/24", NULL, NULL},
                {"10.255.255.254/8", "10.0.0.1", NULL},
                {"192.168.1.101/24", "10.0.0.1", "gateway 10.0.0.1 is outside the Pi's subnet 192.168.1.0/24"},
                {"192.168.1.101/25", "192.168.1.129", "outside the Pi's subnet 192.168.1.0/25"},
                {"192.168.1.101/24", "192.168.1.101", "the Pi's own address"},
                {"192.168.1.0/24", "192.168.1.1", "network address"},
                {"192.168.1.0/24", NULL, "use one from 192.168.1.1 to 192.168.1.254"},
                {"192.168.1.255/24", "192.168.1.1", "broadcast address"},
                {"192.168.1.101/24", "192.168.1.255", "gateway 192.168.1.255 is the broadcast address"},
                {"192.168.1.101/24", "192.168.1.0", "gateway 192.168.1.0 is the network address"},
                {"10.0.0.1/30", "10.0.0.2", NULL},
                {"10.0.0.3/30", "10.0.0.2", "broadcast address"},
                /* RFC 3021: both addresses of a /31 are hosts */
                {"10.0.0.0/31", "10.0.0.1", NULL},
                {"10.0.0.1/31", "10.0.0.0", NULL},
                {"10.0.0.5/31", "10.1.1.1", "outside"},
                /* no host has these, whatever the prefix */
                {"127.0.0.5/8", "127.0.0.1", "is a loopback (127.0.0.0/8) address"},
                {"224.0.0.5/24", "224.0.0.1", "is a multicast (224.0.0.0/4) address"},
                {"255.255.255.254/24", "255.255.255.1", "is a reserved (240.0.0.0/4) address"},
                {"0.1.2.3/8", NULL, "is an unspecified (0.0.0.0/8) address"},
                {"10.0.0.5/32", "0.0.0.0", "gateway 0.0.0.0 is an unspecified (0.0.0.0/8) address, not a router's"},
                {"10.0.0.5/32", "239.1.1.1", "gateway 239.1.1.1 is a multicast"},
                {"169.254.10.5/16", "169.254.0.1", NULL}, /* link-local: unusual, not wrong */
                /* a /32's gateway can only be outside it */
                {"10.0.0.5/32", "10.1.1.1", NULL},
                {"10.0.0.5/32", NULL, NULL},
                {"10.0.0.5/32", "10.0.0.5", "the Pi's own address"},
                /* the prefix as NetworkManager's keyfile reads it: digits only */
                {"10.0.0.5/ 24", "10.0.0.1", "ADDRESS/PREFIX"},
                {"10.0.0.5/+24", "10.0.0.1", "ADDRESS/PREFIX"},
                {"10.0.0.5/\t24", "10.0.0.1", "ADDRESS/PREFIX"},
                {"10.0.0.5/024", "10.0.0.1", "the prefix length is 1 to 32"},
                {"10.0.0.5/33", "10.0.0.1", "the prefix length is 1 to 32"},
                {"10.0.0.5/0", "10.0.0.1", "the prefix length is 1 to 32"},
                {"10.0.0.5/4294967320", "10.0.0.1", "the prefix length is 1 to 32"},
                /* IPv6 is said to be so, not taken for a typo */
                {"2001:db8::5/64", "2001:db8::1", "'2001:db8::5/64': only IPv4 is set here"},
                {"10.0.0.5/24", "2001:db8::1", "invalid gateway '2001:db8::1': only IPv4 is set here"},
                {"10.0.0.5/", "10.0.0.1", "ADDRESS/PREFIX"},
                /* a netmask where the prefix goes: the prefix it stands for */
                {"10.0.0.5/255.255.255.0", "10.0.0.1", "not the netmask: 10.0.0.5/24 (255.255.255.0 is /24)"},
                {"10.0.0.5/255.255.255.255", "10.0.0.1", "not the netmask: 10.0.0.5/32 "},
                {"10.0.0.5/128.0.0.0", "10.0.0.1", "not the netmask: 10.0.0.5/1 "},
                {"10.0.0.5/255.255.0.255", "10.0.0.1", "e.g. 10.0.0.5/24 for netmask 255.255.255.0 (255.255.0.255 is no netmask"},
                {"10.0.0.5/0.0.0.0", "10.0.0.1", "(0.0.0.0 would be /0"},
                {"10.0.0.500/255.255.255.0", "10.0.0.1", "expected ADDRESS/PREFIX"},
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct host_settings hs = {.ip = xstrdup(cases[i].ip)};
                if (cases[i].gateway)
                        hs.gateway = xstrdup(cases[i].gateway);
                char *err = NULL;
                unsigned errors = 0;
                int r = finalize(&hs, &err, &errors);
                if (!cases[i].why && r != 0)
                        fail_msg("%s via %s refused: %s", cases[i].ip, cases[i].gateway, err);
                if (cases[i].why && (r != -EINVAL || errors != 1 || !strstr(err, cases[i].why)))
                        fail_msg("%s via %s: want one error with '%s', got %d: %s", cases[i].ip, cases[i].gateway,
                                 cases[i].why, r, err);
                free(err);
                host_free(&hs);
        }
}

/* A DNS server beside a static address: a resolver's address, which may
 * be on the Pi itself. */
static void test_dns_addresses(void **state) {
        (void)state;
        static const struct {
                const char *dns, *want; /* want NULL: accepted */
        } cases[] = {
                {"127.0.0.1", NULL},
                {"1.1.1.1", NULL},
                {"2001:4860:4860::8888", "--dns: invalid DNS server '2001:4860:4860::8888': only IPv4 is set here"},
                {"0.0.0.0", "--dns: DNS server 0.0.0.0 is an unspecified (0.0.0.0/8) address, not a resolver's\n"},
                {"224.0.0.251", "--dns: DNS server 224.0.0.251 is a multicast (224.0.0.0/4) address"},
                {"255.255.255.255", "--dns: DNS server 255.255.255.255 is a reserved"},
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct host_settings hs = {.ip = xstrdup("192.168.1.5/24"), .gateway = xstrdup("192.168.1.1")};
                strv_push(&hs.dns, &hs.ndns, cases[i].dns);
                char *err = NULL;
                unsigned errors = 0;
                int r = finalize(&hs, &err, &errors);
                if (!cases[i].want && r != 0)
                        fail_msg("DNS %s refused: %s", cases[i].dns, err);
                if (cases[i].want && (r != -EINVAL || errors != 1 || !strstr(err, cases[i].want)))
                        fail_msg("DNS %s: want one error with \"%s\", got %d: %s", cases[i].dns, cases[i].want, r, err);
                free(err);
                host_free(&hs);
        }
}

/* A system account's name is spelt right: what is wrong is that it is taken. */
static void test_user_names(void **state) {
        (void)state;
        static const struct {
                const char *user, *want;
        } cases[] = {
                {"root", "--user: user name 'root' is reserved for the system; choose another, such as pi\n"},
                {"docker", "--user: user name 'docker' is reserved for the system"},
                {"Pi", "--user: invalid user name 'Pi': use lower-case letters, digits, '_' and '-'\n"},
                {"p i", "--user: invalid user name 'p i'"},
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct host_settings hs = {.user = xstrdup(cases[i].user)};
                char *err = NULL;
                unsigned errors = 0;
                int r = finalize(&hs, &err, &errors);
                if (r != -EINVAL || errors != 1 || !strstr(err, cases[i].want))
                        fail_msg("want one error with \"%s\", got %d: %s", cases[i].want, r, err);
                free(err);
                host_free(&hs);
        }
}

/* Several servers in one value, as NetworkManager's dns= takes them: the
 * error says how to give them, in the spelling of where they came from. */
static void test_dns_several(void **state) {
        (void)state;
        _cleanup_free_ char *yml = put("dns.yml", "user: pi\ndns: 192.168.1.1, 8.8.8.8\n");
        static const struct {
                const char *cli, *want; /* cli NULL: dns.yml's */
        } cases[] = {
                {NULL, "dns.yml:2: invalid DNS server '192.168.1.1, 8.8.8.8': one address per item; list several "
                       "as [A, B]"},
                {"1.1.1.1,8.8.8.8", "--dns: invalid DNS server '1.1.1.1,8.8.8.8': one address per --dns; give it "
                                    "once for each"},
                {"8.8.8", "--dns: invalid DNS server '8.8.8'\n"},
                /* one address with a blank is not several */
                {"10.0.0.1 ", "--dns: invalid DNS server '10.0.0.1 ': remove the blanks around it\n"},
                {" 10.0.0.1", "--dns: invalid DNS server ' 10.0.0.1': remove the blanks around it\n"},
                {" 10.0.0.1 8.8.8.8", "' 10.0.0.1 8.8.8.8': one address per --dns"},
                /* with DHCP the network's servers are used: never written */
                {"1.1.1.1", "--dns: a DNS server is set with a static address: add --ip ADDRESS/PREFIX"},
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct host_settings hs = {0};
                if (cases[i].cli) {
                        hs.dns = xcalloc(1, sizeof(char *));
                        hs.dns[0] = xstrdup(cases[i].cli);
                        hs.ndns = 1;
                } else
                        assert_int_equal(host_load_file(yml, &hs), 0);
                char *err = NULL;
                unsigned errors = 0;
                int r = finalize(&hs, &err, &errors);
                if (r != -EINVAL || errors != 1 || !strstr(err, cases[i].want))
                        fail_msg("case %zu: want one error with \"%s\", got %d: %s", i, cases[i].want, r, err);
                free(err);
                host_free(&hs);
        }
}

/* ---- where a refused value is named ---- */

/* A --host file's value at its line and in its own spelling; the same
 * setting from the command line over it is named as an option, and not
 * blamed on the file. */
static void test_value_named_at_its_line(void **state) {
        (void)state;
        _cleanup_free_ char *net = put("net.yml", "user: pi\n"
                                                  "# the address is per host\n"
                                                  "gateway: 192.168.1.1\n"
                                                  "wifi:\n"
                                                  "  ssid: Cafe\n"
                                                  "  country: GB\n");
        _cleanup_free_ char *tz = put("tz.yml", "user: pi\ntimezone: Mars Base\n");
        _cleanup_free_ char *nouser = put("nouser.yml", "# no user\nssh_keys: [\"" ED25519 " me\"]\n");
        _cleanup_free_ char *hidden = put("hidden.yml", "user: pi\nwifi:\n  country: GB\n  hidden: true\n");
        static const struct {
                int file; /* 0 net.yml, 1 tz.yml, 2 nouser.yml, 3 hidden.yml */
                const char *ip, *timezone; /* from the command line */
                const char *want;          /* after "FILE:" when in_file */
                bool in_file;
        } cases[] = {
                {0, NULL, NULL, "3: a gateway needs a static address: add ip: ADDRESS/PREFIX", true},
                {0, "192.168.1.10/24", NULL, "5: Wi-Fi needs both wifi.ssid and wifi.psk_file", true},
                {1, NULL, NULL, "2: invalid time zone 'Mars Base'", true},
                {1, NULL, "Mars/Olympus Mons", "--timezone: invalid time zone 'Mars/Olympus Mons'", false},
                {2, NULL, NULL, "2: a password or SSH key needs a user: add user: NAME", true},
                {3, NULL, NULL, "4: a hidden Wi-Fi network needs its wifi.ssid", true},
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                const char *const ymls[] = {net, tz, nouser, hidden};
                const char *yml = ymls[cases[i].file];
                struct host_settings hs = {0}, cli = {0};
                assert_int_equal(host_load_file(yml, &hs), 0);
                cli.ip = cases[i].ip ? xstrdup(cases[i].ip) : NULL;
                cli.timezone = cases[i].timezone ? xstrdup(cases[i].timezone) : NULL;
                host_merge(&hs, &cli);
                char *err = NULL;
                unsigned errors = 0;
                int r = finalize(&hs, &err, &errors);
                _cleanup_free_ char *want = cases[i].in_file ? xasprintf("%s:%s", yml, cases[i].want)
                                                             : xstrdup(cases[i].want);
                if (r != -EINVAL || errors != 1 || !strstr(err, want))
                        fail_msg("case %zu: want one error with '%s', got %d: %s", i, want, r, err);
                free(err);
                host_free(&cli);
                host_free(&hs);
        }
}

/* A file a --host file names that is not there is refused at the line
 * naming it: a list of key files gives no other clue which entry it was. */
static void test_missing_named_file_at_its_line(void **state) {
        (void)state;
        _cleanup_free_ char *key = put("here.pub", ED25519 " me\n");
        static const struct {
                const char *yml, *want;
        } cases[] = {
                {"user: pi\nssh_key_files:\n  - here.pub\n  - gone.pub\n", ":4: ssh_key_files: cannot read "},
                {"user: pi\nssh_key_files: gone.pub\n", ":2: ssh_key_files: cannot read "},
                {"user: pi\n\npassword_file: gone.pass\n", ":3: password_file: cannot read "},
                {"wifi:\n  ssid: Cafe\n  country: GB\n  psk_file: gone.psk\n", ":4: wifi.psk_file: cannot read "},
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                _cleanup_free_ char *yml = put("named.yml", cases[i].yml);
                struct host_settings hs = {0};
                struct tu_capture c;
                tu_capture_begin(&c);
                /* key files when the file is read, the secret files when
                 * they are (an option may replace them in between) */
                int r = host_load_file(yml, &hs);
                if (r == 0)
                        r = host_read_files(&hs, false);
                unsigned errors = 0;
                _cleanup_free_ char *err = tu_capture_end(&c, &errors);
                _cleanup_free_ char *want = xasprintf("%s%s%s/gone.", yml, cases[i].want, dir);
                if (r != -ENOENT || errors != 1 || !strstr(err, want) || !strstr(err, "No such file"))
                        fail_msg("case %zu: want one error with '%s', got %d: %s", i, want, r, err);
                host_free(&hs);
        }
}

/* A --host file's password_file or wifi.psk_file that an option replaces
 * is never read, nor refused: the option beats it. */
static void test_named_file_replaced_by_option(void **state) {
        (void)state;
        _cleanup_free_ char *pw = put("cli.pass", "Correct-Horse-Battery-9\n");
        _cleanup_free_ char *psk = put("cli.psk", "a passphrase for the cafe\n");
        _cleanup_free_ char *yml = put("over.yml", "user: pi\npassword_file: gone.pass\n"
                                                   "wifi:\n  ssid: Cafe\n  country: GB\n  psk_file: gone.psk\n");
        struct host_settings hs = {0}, cli = {.password_file = xstrdup(pw), .wifi_psk_file = xstrdup(psk)};
        assert_int_equal(host_load_file(yml, &hs), 0);
        host_merge(&hs, &cli);
        char *err = NULL;
        unsigned errors = 0;
        struct tu_capture c;
        tu_capture_begin(&c);
        int r = host_read_files(&hs, false);
        err = tu_capture_end(&c, &errors);
        if (r != 0 || errors)
                fail_msg("options over a --host file's missing files: %d: %s", r, err);
        free(err);
        host_free(&cli);
        host_free(&hs);
}

/* A Wi-Fi country and a keymap in the other case are taken as meant. */
static void test_case_normalized(void **state) {
        (void)state;
        struct host_settings hs = {.wifi_country = xstrdup("gb"), .keymap = xstrdup("DE")};
        char *err = NULL;
        unsigned errors = 0;
        assert_int_equal(finalize(&hs, &err, &errors), 0);
        assert_string_equal(hs.wifi_country, "GB");
        assert_string_equal(hs.keymap, "de");
        free(err);
        host_free(&hs);
}

/* ---- read_file, which the secret files go through ---- */

/* Sized up front from the file's size: exactly max is read, one byte more
 * refused, a file of several read chunks comes back whole, and a pipe
 * (no size to go by) still reads. */
static void test_read_file_bounds(void **state) {
        (void)state;
        size_t big = 200000;
        char *text = xmalloc(big + 1);
        for (size_t i = 0; i < big; i++)
                text[i] = (char)('a' + i % 26);
        text[big] = 0;
        char *path = put("big", text);
        uint8_t *d = NULL;
        size_t n = 0;
        assert_int_equal(read_file(path, big, &d, &n), 0);
        assert_int_equal(n, big);
        assert_memory_equal(d, text, big);
        assert_int_equal(d[n], 0);
        free(d);
        d = NULL;
        assert_int_equal(read_file(path, big - 1, &d, &n), -EFBIG);
        assert_null(d);
        free(path);

        int fds[2];
        assert_int_equal(pipe(fds), 0);
        assert_int_equal(write(fds[1], "pw-from-a-pipe\n", 15), 15);
        close(fds[1]);
        char *fdpath = xasprintf("/proc/self/fd/%d", fds[0]);
        assert_int_equal(read_file(fdpath, 4096, &d, &n), 0);
        assert_int_equal(n, 15);
        assert_memory_equal(d, "pw-from-a-pipe\n", 15);
        free(d);
        free(fdpath);
        close(fds[0]);
        free(text);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_weak_password_refused),
                cmocka_unit_test(test_weak_password_allowed),
                cmocka_unit_test(test_strong_password_accepted),
                cmocka_unit_test(test_weak_password_from_host_file),
                cmocka_unit_test(test_password_hash_kinds),
                cmocka_unit_test(test_keys_accepted),
                cmocka_unit_test(test_keys_refused),
                cmocka_unit_test(test_key_file_empty),
                cmocka_unit_test(test_key_other_formats),
                cmocka_unit_test(test_key_in_host_yaml),
                cmocka_unit_test(test_network),
                cmocka_unit_test(test_dns_several),
                cmocka_unit_test(test_dns_addresses),
                cmocka_unit_test(test_user_names),
                cmocka_unit_test(test_value_named_at_its_line),
                cmocka_unit_test(test_missing_named_file_at_its_line),
                cmocka_unit_test(test_named_file_replaced_by_option),
                cmocka_unit_test(test_case_normalized),
                cmocka_unit_test(test_read_file_bounds),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
