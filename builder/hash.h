/* SPDX-License-Identifier: GPL-3.0-or-later */
/* SHA-256 through libcrypto's EVP, which uses the CPU's SHA extensions. */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct sha256 {
        void *evp; /* EVP_MD_CTX */
};

void sha256_init(struct sha256 *h);
void sha256_update(struct sha256 *h, const void *p, size_t n);
/* n zero bytes: a hole of a sparse image */
void sha256_zeros(struct sha256 *h, uint64_t n);
/* Writes 64 lowercase hex digits and a NUL; frees the context. */
void sha256_final_hex(struct sha256 *h, char hex[65]);
void sha256_final_raw(struct sha256 *h, uint8_t raw[32]);
void sha256_hex(const void *p, size_t n, char hex[65]);
void hex_encode(const uint8_t *raw, size_t n, char *hex);
