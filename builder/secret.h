/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Secrets: random generation, password hashing, Wi-Fi PSK derivation and
 * weak-value detection.  Nothing here logs a value. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* len random characters from [A-Za-z0-9] (getrandom, no modulo bias). */
int secret_generate(size_t len, char **out);
/* yescrypt ($y$) hash via crypt(3)/libxcrypt with a random salt. */
int secret_hash_password(const char *password, char **hash);
/* true if hash looks like a crypt(3) string we accept ($y$, $gy$, $6$, $5$, $2b$)
 * and libxcrypt can parse it. */
bool secret_hash_valid(const char *hash);
/* PBKDF2-HMAC-SHA1(pass, ssid, 4096, 32) as 64 hex digits.  -EINVAL when
 * pass is not 8..63 printable ASCII characters. */
int secret_wifi_psk(const char *ssid, const char *pass, char hex[65]);
/* Keys whose values are secrets: *PASSWORD*, *SECRET*, *TOKEN*, *_KEY, ... */
bool secret_key_is_sensitive(const char *key);
/* Why a secret value is weak (empty, shorter than 12, a known default such as
 * changeme/password/admin/secret, one repeated character), or NULL. */
const char *secret_weakness(const char *value);
/* Warn when file, a regular file this user owns that holds secrets (an
 * --env file, a password or Wi-Fi passphrase file), may be read by its
 * group or by everyone, saying how to fix it (as ssh does for a key).
 * Only a warning: the build goes on.  Silent for what cannot be read, is
 * no regular file (a pipe from a password manager) or is another user's
 * (this user cannot chmod it; made 0600, it would be unreadable here). */
void secret_file_check_mode(const char *file);
