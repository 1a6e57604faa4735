/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A progress line with rate and ETA on a terminal; silent otherwise. */
#pragma once

#include <stdint.h>

struct progress {
        const char *what;
        uint64_t total;   /* 0 when unknown */
        uint64_t done;
        double start, last;
        int enabled;
};

void progress_begin(struct progress *p, const char *what, uint64_t total);
void progress_update(struct progress *p, uint64_t done);
void progress_end(struct progress *p);
