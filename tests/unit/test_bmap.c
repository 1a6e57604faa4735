/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bmap.h"
#include "hash.h"
#include "test_util.h"
#include "util.h"

#define GOLDEN "tests/golden/bmap-small.xml"
#define IMG_SIZE TU_GOLDEN_IMG_SIZE

/* The golden image (tu_golden_image); regenerate GOLDEN with
 * BMAP_GOLDEN_IMAGE=path, which leaves the image there. */
static int make_image(char path[PATH_MAX]) {
        int fd = tu_mkstemp(path, PATH_MAX, "test_bmap");
        assert_true(fd >= 0);
        tu_golden_image(fd);
        return fd;
}

static void fill_checksums(int fd, struct bmap *b) {
        for (size_t i = 0; i < b->n; i++) {
                uint64_t s, e;
                bmap_range_bytes(b, &b->v[i], &s, &e);
                uint8_t *buf = xmalloc(e - s);
                assert_int_equal(pread_full(fd, buf, e - s, s), 0);
                sha256_hex(buf, e - s, b->v[i].sha256);
                free(buf);
        }
}

static void test_scan_ranges(void **state) {
        char path[PATH_MAX];
        int fd = make_image(path);
        struct bmap b;
        assert_int_equal(bmap_scan(fd, IMG_SIZE, path, &b), 0);
        assert_int_equal(b.blocks_count, 257);
        assert_int_equal(b.n, 3);
        assert_int_equal(b.v[0].first, 0);
        assert_int_equal(b.v[0].last, 0);
        assert_int_equal(b.v[1].first, 5);
        assert_int_equal(b.v[1].last, 7);
        assert_int_equal(b.v[2].first, 256);
        assert_int_equal(b.v[2].last, 256);
        assert_int_equal(b.mapped_blocks, 5);
        uint64_t s, e;
        bmap_range_bytes(&b, &b.v[2], &s, &e);
        assert_int_equal(s, 1048576);
        assert_int_equal(e, IMG_SIZE);
        bmap_free(&b);
        close(fd);
        unlink(path);
}

static void test_format_matches_golden(void **state) {
        char path[PATH_MAX];
        int fd = make_image(path);
        struct bmap b;
        assert_int_equal(bmap_scan(fd, IMG_SIZE, path, &b), 0);
        fill_checksums(fd, &b);
        size_t len;
        char *xml = bmap_format(&b, &len);
        bmap_free(&b);
        close(fd);
        const char *keep = getenv("BMAP_GOLDEN_IMAGE");
        if (keep)
                rename(path, keep);
        else
                unlink(path);
        uint8_t *golden;
        size_t glen;
        assert_int_equal(read_file(GOLDEN, 1 << 20, &golden, &glen), 0);
        if (len != glen || memcmp(xml, golden, len) != 0) {
                fprintf(stderr, "bmap differs from " GOLDEN ":\n%s", xml);
                fail();
        }
        free(golden);
        free(xml);
}

static void test_parse_golden(void **state) {
        struct bmap b;
        assert_int_equal(bmap_load(GOLDEN, &b), 0);
        assert_int_equal(b.image_size, IMG_SIZE);
        assert_int_equal(b.block_size, 4096);
        assert_int_equal(b.blocks_count, 257);
        assert_int_equal(b.mapped_blocks, 5);
        assert_int_equal(b.n, 3);
        assert_int_equal(b.v[1].first, 5);
        assert_int_equal(b.v[1].last, 7);
        assert_int_equal(strlen(b.v[1].sha256), 64);
        /* format(parse(x)) == x: nothing is lost in the round trip */
        size_t len;
        char *xml = bmap_format(&b, &len);
        uint8_t *golden;
        size_t glen;
        assert_int_equal(read_file(GOLDEN, 1 << 20, &golden, &glen), 0);
        assert_int_equal(len, glen);
        assert_memory_equal(xml, golden, len);
        free(xml);
        free(golden);
        bmap_free(&b);
}

static void test_parse_rejects(void **state) {
        uint8_t *golden;
        size_t glen;
        assert_int_equal(read_file(GOLDEN, 1 << 20, &golden, &glen), 0);
        struct bmap b;
        /* a flipped range digit breaks the file checksum */
        char *t = xmemdup(golden, glen);
        char *r = strstr(t, "> 5-7 <");
        assert_non_null(r);
        r[2] = '4';
        assert_true(bmap_parse("x.bmap", t, glen, &b) < 0);
        free(t);
        assert_true(bmap_parse("x.bmap", "hello", 5, &b) < 0);
        const char *bad = "<bmap version=\"2.0\"><ImageSize>100</ImageSize><BlockSize>4096</BlockSize>"
                          "<BlocksCount>1</BlocksCount><BlockMap><Range> 0-3 </Range></BlockMap></bmap>";
        assert_true(bmap_parse("x.bmap", bad, strlen(bad), &b) < 0);
        const char *v3 = "<bmap version=\"3.0\"></bmap>";
        assert_true(bmap_parse("x.bmap", v3, strlen(v3), &b) < 0);
        const char *ok = "<bmap version=\"1.4\"><ImageSize>8192</ImageSize><BlockSize>4096</BlockSize>"
                         "<BlocksCount>2</BlocksCount><BlockMap><Range sha1=\"ab\"> 1 </Range></BlockMap></bmap>";
        assert_int_equal(bmap_parse("x.bmap", ok, strlen(ok), &b), 0);
        assert_int_equal(b.n, 1);
        assert_string_equal(b.v[0].sha256, "");
        /* a 1.x file naming no ChecksumType has SHA-1 ones, which flash
         * must know it cannot check */
        assert_string_equal(b.checksum_type, "sha1");
        bmap_free(&b);
        /* only MAJOR.MINOR, 1 or 2: "10.0" is not 1.x */
        const char *v10 = "<bmap version=\"10.0\"><ImageSize>8192</ImageSize><BlockSize>4096</BlockSize>"
                          "<BlocksCount>2</BlocksCount><BlockMap><Range> 1 </Range></BlockMap></bmap>";
        assert_int_equal(bmap_parse("x.bmap", v10, strlen(v10), &b), -ENOTSUP);
        const char *v2 = "<bmap version=\"2\"><ImageSize>8192</ImageSize></bmap>";
        assert_int_equal(bmap_parse("x.bmap", v2, strlen(v2), &b), -EBADMSG);
        free(golden);
}

/* What bmaptool reads, this reads: single-quoted attributes, ranges that
 * touch (each with its own checksum), any ChecksumType named. */
static void test_parse_like_bmaptool(void **state) {
        (void)state;
        struct bmap b;
        const char *t = "<?xml version='1.0'?><bmap version='2.0'><ImageSize>40960</ImageSize>"
                        "<BlockSize>4096</BlockSize><BlocksCount>10</BlocksCount><ChecksumType>md5</ChecksumType>"
                        "<BlockMap><Range chksum=\"00\"> 0-1 </Range><Range chksum=\"01\"> 2-3 </Range>"
                        "<Range chksum=\"02\"> 4 </Range></BlockMap></bmap>";
        assert_int_equal(bmap_parse("x.bmap", t, strlen(t), &b), 0);
        assert_int_equal(b.n, 3);
        assert_int_equal(b.v[1].first, 2);
        assert_int_equal(b.v[1].last, 3);
        assert_int_equal(b.mapped_blocks, 5);
        assert_string_equal(b.checksum_type, "md5");
        bmap_free(&b);
        /* sha256: a checksum in single quotes is read; a range without one
         * is refused (flash would say verified, having checked nothing) */
        char sq[1024];
        snprintf(sq, sizeof sq,
                 "<bmap version='2.0'><ImageSize>40960</ImageSize><BlockSize>4096</BlockSize>"
                 "<BlocksCount>10</BlocksCount><ChecksumType>sha256</ChecksumType><BlockMap>"
                 "<Range chksum='%064d'> 0-1 </Range></BlockMap></bmap>", 7);
        assert_int_equal(bmap_parse("x.bmap", sq, strlen(sq), &b), 0);
        assert_int_equal(b.v[0].sha256[63], '7');
        bmap_free(&b);
        const char *none = "<bmap version=\"2.0\"><ImageSize>40960</ImageSize><BlockSize>4096</BlockSize>"
                           "<BlocksCount>10</BlocksCount><ChecksumType>sha256</ChecksumType><BlockMap>"
                           "<Range> 0-1 </Range></BlockMap></bmap>";
        assert_int_equal(bmap_parse("x.bmap", none, strlen(none), &b), -EBADMSG);
        /* overlapping or out of order stays refused */
        const char *o = "<bmap version=\"2.0\"><ImageSize>40960</ImageSize><BlockSize>4096</BlockSize>"
                        "<BlocksCount>10</BlocksCount><BlockMap><Range> 0-2 </Range><Range> 2-3 </Range>"
                        "</BlockMap></bmap>";
        assert_int_equal(bmap_parse("x.bmap", o, strlen(o), &b), -EBADMSG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_scan_ranges),
                cmocka_unit_test(test_format_matches_golden),
                cmocka_unit_test(test_parse_golden),
                cmocka_unit_test(test_parse_rejects),
                cmocka_unit_test(test_parse_like_bmaptool),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
