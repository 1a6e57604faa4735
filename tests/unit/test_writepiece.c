/* SPDX-License-Identifier: GPL-3.0-or-later */
/* writepiece.c: the probe that picks the page-cache write size, fed the
 * costs a machine of either kind showed (bench/README.md).  The copies that
 * use it are checked byte for byte by test_source and the integration
 * tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util.h"
#include "writepiece.h"

/* Feed `slots` slots of 4 MiB (all written) at these costs per byte, each
 * slot in the size the probe asks for. */
static void feed(struct write_piece *w, unsigned slots, double small_ns_per_b, double large_ns_per_b) {
        for (unsigned i = 0; i < slots; i++) {
                size_t piece = write_piece_next(w);
                uint64_t bytes = 4u << 20;
                double cost = piece == WRITE_PIECE ? small_ns_per_b : large_ns_per_b;
                write_piece_account(w, piece, bytes, (uint64_t)(cost * (double)bytes));
        }
}

static void test_alternates_while_probing(void **state) {
        (void)state;
        struct write_piece w;
        write_piece_init(&w, false);
        for (unsigned i = 0; i < 2 * WRITE_PROBE_SLOTS - 1; i++) {
                size_t want = i % 2 ? WRITE_PIECE_LARGE : WRITE_PIECE;
                assert_int_equal(write_piece_next(&w), want);
                write_piece_account(&w, want, 4096, 1000);
        }
        assert_int_equal(w.chosen, 0);
        char how[160];
        write_piece_describe(&w, how, sizeof(how));
        assert_non_null(strstr(how, "too little data"));
}

/* the VM where 32 KiB writes cost 0.35 s and 64 KiB ones 1.5 s per 1.4 GB */
static void test_small_cheaper(void **state) {
        (void)state;
        struct write_piece w;
        write_piece_init(&w, false);
        feed(&w, 2 * WRITE_PROBE_SLOTS, 0.25, 1.2);
        assert_int_equal(w.chosen, WRITE_PIECE);
        /* chosen once: later slots, however costly, change nothing */
        feed(&w, 40, 9.0, 0.1);
        assert_int_equal(write_piece_next(&w), WRITE_PIECE);
        assert_int_equal(w.slots[0], WRITE_PROBE_SLOTS);
        assert_int_equal(w.slots[1], WRITE_PROBE_SLOTS);
}

/* this session's VM: 0.82 against 0.54 ns/B */
static void test_large_cheaper(void **state) {
        (void)state;
        struct write_piece w;
        write_piece_init(&w, false);
        feed(&w, 2 * WRITE_PROBE_SLOTS, 0.82, 0.54);
        assert_int_equal(write_piece_next(&w), WRITE_PIECE_LARGE);
        char how[160];
        write_piece_describe(&w, how, sizeof(how));
        assert_string_equal(how, "256 KiB (32 KiB: 0.82 ns/B, 256 KiB: 0.54 ns/B over 32768 and 32768 KiB)");
}

/* per byte, not per slot: mostly-hole slots write little and cost little */
static void test_per_byte(void **state) {
        (void)state;
        struct write_piece w;
        write_piece_init(&w, false);
        for (unsigned i = 0; i < 2 * WRITE_PROBE_SLOTS; i++) {
                size_t piece = write_piece_next(&w);
                /* the small size's slots write 1/8 of the bytes at 1/4 of
                 * the time: twice the cost per byte */
                if (piece == WRITE_PIECE)
                        write_piece_account(&w, piece, 512u << 10, 1000000);
                else
                        write_piece_account(&w, piece, 4u << 20, 4000000);
        }
        assert_int_equal(w.chosen, WRITE_PIECE_LARGE);
}

/* a slot of holes writes nothing: it neither counts nor moves the turn */
static void test_holes_not_counted(void **state) {
        (void)state;
        struct write_piece w;
        write_piece_init(&w, false);
        for (int i = 0; i < 100; i++)
                write_piece_account(&w, write_piece_next(&w), 0, 5000);
        assert_int_equal(w.slots[0] + w.slots[1], 0);
        assert_int_equal(write_piece_next(&w), WRITE_PIECE);
        /* nor does a size the probe never handed out */
        write_piece_account(&w, 4u << 20, 4u << 20, 1);
        assert_int_equal(w.slots[0] + w.slots[1], 0);
}

static void test_fixed(void **state) {
        (void)state;
        struct write_piece w;
        write_piece_init(&w, true);
        feed(&w, 4 * WRITE_PROBE_SLOTS, 0.1, 9.0);
        assert_true(write_piece_next(&w) == SIZE_MAX);
        assert_int_equal(w.chosen, 0);
        char how[160];
        write_piece_describe(&w, how, sizeof(how));
        assert_string_equal(how, "whole slots (to be copied next)");
}

static void test_thread_clock(void **state) {
        (void)state;
        uint64_t a = thread_cpu_ns();
        volatile uint64_t x = 0;
        for (uint64_t i = 0; i < 20000000; i++)
                x += i;
        uint64_t b = thread_cpu_ns();
        assert_true(a > 0);
        assert_true(b > a);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_alternates_while_probing),
                cmocka_unit_test(test_small_cheaper),
                cmocka_unit_test(test_large_cheaper),
                cmocka_unit_test(test_per_byte),
                cmocka_unit_test(test_holes_not_counted),
                cmocka_unit_test(test_fixed),
                cmocka_unit_test(test_thread_clock),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
