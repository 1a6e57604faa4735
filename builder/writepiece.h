/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The size of the pieces a large copy is written to the page cache in,
 * chosen by measuring the first of them (see writepiece.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* the two sizes tried: WRITE_PIECE (util.h) and this */
#define WRITE_PIECE_LARGE (256u << 10)
/* slots written with each before one is chosen */
#define WRITE_PROBE_SLOTS 8u

struct write_piece {
        bool whole;    /* always whole slots, nothing measured */
        size_t chosen; /* 0 while probing */
        unsigned slots[2];
        uint64_t bytes[2], ns[2];
};

/* whole: every write takes a whole slot (SIZE_MAX), for an output copied
 * next (source_opts.cloned); else probe */
void write_piece_init(struct write_piece *w, bool whole);
/* The piece for the next slot's writes: while probing, the two sizes in
 * turn. */
size_t write_piece_next(const struct write_piece *w);
/* still measuring: only then is a slot's cost worth timing */
bool write_piece_probing(const struct write_piece *w);
/* What writing a slot in `piece`s cost: bytes actually written (a slot of
 * holes counts for nothing) and the writing thread's CPU time.  Once both
 * sizes have WRITE_PROBE_SLOTS slots, the cheaper per byte is chosen. */
void write_piece_account(struct write_piece *w, size_t piece, uint64_t bytes, uint64_t ns);
/* the calling thread's CPU time, user and system, in ns */
uint64_t thread_cpu_ns(void);
/* For the debug log once the copy is done: "256 KiB (32 KiB: 1.52 ns/B,
 * 256 KiB: 0.61 ns/B over ... KiB)", or why nothing was chosen. */
void write_piece_describe(const struct write_piece *w, char *buf, size_t n);
