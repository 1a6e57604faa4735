/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Secrets never leave this file in a message: callers get -errno or a fixed
 * reason string and name the key themselves (secret_file_check_mode names
 * only a file and its mode). */
#include "secret.h"

#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

static int random_bytes(void *p, size_t n) {
        uint8_t *b = p;
        while (n > 0) {
                ssize_t r = getrandom(b, n, 0);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                b += r;
                n -= (size_t)r;
        }
        return 0;
}

int secret_generate(size_t len, char **out) {
        char *s = xmalloc(len + 1);
        size_t have = 0;
        uint8_t pool[64];
        /* Rejection sampling: 62 * 4 = 248, so bytes >= 248 are dropped and
         * every character is equally likely. */
        while (have < len) {
                int r = random_bytes(pool, sizeof pool);
                if (r < 0) {
                        explicit_bzero(s, len + 1);
                        free(s);
                        return r;
                }
                for (size_t i = 0; i < sizeof pool && have < len; i++)
                        if (pool[i] < 248)
                                s[have++] = alphabet[pool[i] % 62];
        }
        explicit_bzero(pool, sizeof pool);
        s[len] = '\0';
        *out = s;
        return 0;
}

int secret_hash_password(const char *password, char **hash) {
        _cleanup_free_ char *salt = crypt_gensalt_ra("$y$", 0, NULL, 0);
        if (!salt)
                return errno ? -errno : -EINVAL;
        void *data = NULL;
        int size = 0;
        errno = 0;
        const char *h = crypt_ra(password, salt, &data, &size);
        if (!h || !str_has_prefix(h, "$y$")) {
                int r = errno ? -errno : -EINVAL;
                if (data)
                        explicit_bzero(data, (size_t)size);
                free(data);
                return r;
        }
        *hash = xstrdup(h);
        explicit_bzero(data, (size_t)size);
        free(data);
        return 0;
}

/* The hash proper, after its setting: crypt(3)'s base64, of one length per
 * method.  crypt_checksalt reads the setting alone, so a hash cut short (a
 * paste that lost its end) passed, and no password could ever match it: a
 * Pi without an SSH key would be locked for good. */
static bool hash_part_complete(const char *hash) {
        static const char b64[] = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        if (str_has_prefix(hash, "$2b$")) /* "$2b$NN$", 22 of salt, 31 of hash */
                return strlen(hash) == 60 && strspn(hash + 7, b64) == 53;
        const char *part = strrchr(hash, '$') + 1;
        size_t want = str_has_prefix(hash, "$6$") ? 86 : 43; /* SHA-512; SHA-256 and yescrypt */
        return strlen(part) == want && strspn(part, b64) == want;
}

bool secret_hash_valid(const char *hash) {
        static const char *const prefixes[] = {"$y$", "$gy$", "$6$", "$5$", "$2b$"};
        if (!hash)
                return false;
        bool known = false;
        for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++)
                if (str_has_prefix(hash, prefixes[i]))
                        known = true;
        if (!known)
                return false;
        /* The hash goes into files such as userconf.txt and shadow, where ':'
         * and line breaks separate fields. */
        size_t n = strlen(hash);
        if (n < 20 || n > 512)
                return false;
        for (const char *c = hash; *c; c++)
                if (!isgraph((unsigned char)*c) || *c == ':')
                        return false;
        /* Let libxcrypt itself say whether it can parse the setting.  It
         * calls SHA-256-crypt (and, in some builds, SHA-512-crypt) legacy:
         * not what it would make today, but Debian's PAM still verifies
         * them, and the docs promise both. */
        int cs = crypt_checksalt(hash);
        return (cs == CRYPT_SALT_OK ||
                (cs == CRYPT_SALT_METHOD_LEGACY && (str_has_prefix(hash, "$5$") || str_has_prefix(hash, "$6$")))) &&
               hash_part_complete(hash);
}

int secret_wifi_psk(const char *ssid, const char *pass, char hex[65]) {
        size_t n = strlen(pass), sn = strlen(ssid);
        if (sn == 0 || sn > 32)
                return -EINVAL;
        /* 64 hex digits are the PSK itself (wpa_passphrase's output, what
         * a router shows), not a passphrase. */
        if (n == 64 && strspn(pass, "0123456789abcdefABCDEF") == 64) {
                for (size_t i = 0; i < 64; i++)
                        hex[i] = (char)tolower((unsigned char)pass[i]);
                hex[64] = '\0';
                return 0;
        }
        if (n < 8 || n > 63)
                return -EINVAL;
        for (const char *c = pass; *c; c++)
                if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
                        return -EINVAL;
        uint8_t key[32];
        if (PKCS5_PBKDF2_HMAC_SHA1(pass, (int)n, (const unsigned char *)ssid, (int)sn, 4096, sizeof key, key) != 1)
                return -EIO;
        static const char digits[] = "0123456789abcdef";
        for (size_t i = 0; i < sizeof key; i++) {
                hex[2 * i] = digits[key[i] >> 4];
                hex[2 * i + 1] = digits[key[i] & 15];
        }
        hex[64] = '\0';
        explicit_bzero(key, sizeof key);
        return 0;
}

bool secret_key_is_sensitive(const char *key) {
        static const char *const words[] = {"PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "TOKEN",
                                            "PRIVATE",  "API_KEY", "APIKEY",     "CREDENTIAL"};
        for (size_t i = 0; i < ARRAY_SIZE(words); i++)
                if (strcasestr(key, words[i]))
                        return true;
        size_t n = strlen(key);
        return (n >= 4 && strcasecmp(key + n - 4, "_KEY") == 0) || strcasecmp(key, "KEY") == 0 ||
               (n >= 5 && strcasecmp(key + n - 5, "_PASS") == 0) || strcasecmp(key, "PASS") == 0;
}

const char *secret_weakness(const char *value) {
        static const char *const defaults[] = {
                "changeme", "change_me", "change-me", "changeit", "password", "passw0rd", "p@ssw0rd", "p@ssword",
                "admin", "administrator", "secret", "default", "postgres", "root", "toor", "123456", "12345678",
                "1234567890", "123456789012", "qwerty", "qwertyuiop", "letmein", "example", "test", "guest",
                "your_secure_db_password", "your_secure_openobserve_password", "dimdimhealth", "raspberry",
        };
        if (!value || !*value)
                return "is empty";
        for (size_t i = 0; i < ARRAY_SIZE(defaults); i++)
                if (strcasecmp(value, defaults[i]) == 0)
                        return "is a well-known default";
        size_t n = strlen(value);
        bool same = true;
        for (size_t i = 1; i < n; i++)
                if (value[i] != value[0])
                        same = false;
        if (same && n > 1)
                return "is one character repeated";
        if (n < 12)
                return "is shorter than 12 characters";
        /* "changeme123", "Password2024!": a default with decoration is as weak */
        static const char *const stems[] = {"changeme", "change_me", "password", "passw0rd", "letmein", "qwerty",
                                            "your_secure"};
        for (size_t i = 0; i < ARRAY_SIZE(stems); i++)
                if (strcasestr(value, stems[i]))
                        return "is based on a well-known default";
        return NULL;
}

/* file as a command's operand in a shell, so the command said can be
 * pasted: in single quotes (each ' as '\'') unless every character is one
 * a shell takes as it is, and after "./" when it would read as an option */
static char *shell_word(const char *file) {
        const char *dot = file[0] == '-' ? "./" : "";
        if (*file && file[strspn(file, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/._-+,:@%=")] == 0)
                return xasprintf("%s%s", dot, file);
        struct buf b = {0};
        buf_printf(&b, "'%s", dot);
        for (const char *c = file; *c; c++)
                if (*c == '\'')
                        buf_puts(&b, "'\\''");
                else
                        buf_append(&b, c, 1);
        buf_puts(&b, "'");
        return (char *)buf_steal(&b, NULL);
}

void secret_file_check_mode(const char *file) {
        struct stat st;
        if (stat(file, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
            !(st.st_mode & (S_IRGRP | S_IROTH)))
                return;
        _cleanup_free_ char *word = shell_word(file);
        log_warn(file, "holds secrets, yet %s may read it (mode %04o): chmod 600 %s",
                 st.st_mode & S_IROTH ? "every user" : "its group", (unsigned)(st.st_mode & 07777), word);
}
