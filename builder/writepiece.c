/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Page-cache write size, chosen per copy by measuring.
 *
 * Linux 6.x gives ext4 a folio as large as the write, and what filling fresh
 * folios costs differs by more than 2x between two VMs of this project's
 * kind, in opposite directions (bench/README.md, "write pieces"): on one,
 * 1.4 GB took 0.33-0.37 s of system time in 32 KiB writes and 1.5-2.0 s in
 * 64 KiB ones; on the next, 1.7 GB took 1.5-1.7 s in 32 KiB writes and
 * 1.0-1.2 s in 256 KiB ones.  No constant is right for both, and what a
 * user's own machine does is a third unknown, so a copy writes its first
 * slots in both sizes in turn, timing each slot's writes on the writing
 * thread's CPU clock (the cost is system time spent in pwrite, not waiting),
 * and keeps the cheaper one for the rest.  The probe covers 2 x
 * WRITE_PROBE_SLOTS slots (64 MiB of 4 MiB slots) of a copy of ~1.7 GB. */
#include "writepiece.h"

#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "util.h"

static const size_t sizes[2] = {WRITE_PIECE, WRITE_PIECE_LARGE};

void write_piece_init(struct write_piece *w, bool whole) {
        *w = (struct write_piece){.whole = whole};
}

bool write_piece_probing(const struct write_piece *w) {
        return !w->whole && !w->chosen;
}

size_t write_piece_next(const struct write_piece *w) {
        if (w->whole)
                return SIZE_MAX;
        if (w->chosen)
                return w->chosen;
        return sizes[w->slots[0] <= w->slots[1] ? 0 : 1];
}

void write_piece_account(struct write_piece *w, size_t piece, uint64_t bytes, uint64_t ns) {
        if (!write_piece_probing(w) || bytes == 0 || (piece != sizes[0] && piece != sizes[1]))
                return;
        unsigned i = piece == sizes[1];
        w->slots[i]++;
        w->bytes[i] += bytes;
        w->ns[i] += ns;
        if (w->slots[0] < WRITE_PROBE_SLOTS || w->slots[1] < WRITE_PROBE_SLOTS)
                return;
        /* ns[0]/bytes[0] <= ns[1]/bytes[1], cross-multiplied in 128 bits */
        w->chosen = (unsigned __int128)w->ns[0] * w->bytes[1] <= (unsigned __int128)w->ns[1] * w->bytes[0]
                            ? sizes[0]
                            : sizes[1];
}

uint64_t thread_cpu_ns(void) {
        struct timespec ts;
        if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) < 0)
                return 0; /* then every slot costs 0 and the small size stays */
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double per_byte(const struct write_piece *w, unsigned i) {
        return w->bytes[i] ? (double)w->ns[i] / (double)w->bytes[i] : 0;
}

void write_piece_describe(const struct write_piece *w, char *buf, size_t n) {
        if (w->whole)
                snprintf(buf, n, "whole slots (to be copied next)");
        else if (!w->chosen)
                snprintf(buf, n, "both sizes in turn (%u and %u slots: too little data to choose)", w->slots[0],
                         w->slots[1]);
        else
                snprintf(buf, n, "%zu KiB (%zu KiB: %.2f ns/B, %zu KiB: %.2f ns/B over %" PRIu64 " and %" PRIu64
                         " KiB)",
                         w->chosen >> 10, sizes[0] >> 10, per_byte(w, 0), sizes[1] >> 10, per_byte(w, 1),
                         w->bytes[0] >> 10, w->bytes[1] >> 10);
}
