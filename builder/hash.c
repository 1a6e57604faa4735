/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "hash.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>

static void oom(void) {
        fputs("dimimage: error: out of memory (sha256)\n", stderr);
        abort();
}

void sha256_init(struct sha256 *h) {
        EVP_MD_CTX *c = EVP_MD_CTX_new();
        if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1)
                oom();
        h->evp = c;
}

void sha256_update(struct sha256 *h, const void *p, size_t n) {
        if (n && EVP_DigestUpdate(h->evp, p, n) != 1)
                oom();
}

void sha256_zeros(struct sha256 *h, uint64_t n) {
        static const uint8_t zero_block[1u << 16];
        while (n > 0) {
                size_t k = n < sizeof(zero_block) ? (size_t)n : sizeof(zero_block);
                sha256_update(h, zero_block, k);
                n -= k;
        }
}

void sha256_final_raw(struct sha256 *h, uint8_t raw[32]) {
        unsigned len = 32;
        if (EVP_DigestFinal_ex(h->evp, raw, &len) != 1)
                oom();
        EVP_MD_CTX_free(h->evp);
        h->evp = NULL;
}

void hex_encode(const uint8_t *raw, size_t n, char *hex) {
        static const char digits[] = "0123456789abcdef";
        for (size_t i = 0; i < n; i++) {
                hex[2 * i] = digits[raw[i] >> 4];
                hex[2 * i + 1] = digits[raw[i] & 15];
        }
        hex[2 * n] = 0;
}

void sha256_final_hex(struct sha256 *h, char hex[65]) {
        uint8_t raw[32];
        sha256_final_raw(h, raw);
        hex_encode(raw, 32, hex);
}

void sha256_hex(const void *p, size_t n, char hex[65]) {
        struct sha256 h;
        sha256_init(&h);
        sha256_update(&h, p, n);
        sha256_final_hex(&h, hex);
}
