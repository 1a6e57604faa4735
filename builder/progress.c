/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void progress_begin(struct progress *p, const char *what, uint64_t total) {
        *p = (struct progress){
                .what = what,
                .total = total,
                .enabled = log_level >= LOG_NORMAL && isatty(STDERR_FILENO),
        };
        p->start = p->last = now();
}

static void draw(struct progress *p, double t) {
        double elapsed = t - p->start;
        double rate = elapsed > 0 ? (double)p->done / elapsed : 0;
        double shown_rate = elapsed > 0 && p->bytes ? (double)p->bytes / elapsed : rate;
        char line[160];
        int n = snprintf(line, sizeof(line), "\r%s", p->what ? p->what : "");
        if (p->total) {
                double frac = (double)p->done / (double)p->total;
                if (frac > 1)
                        frac = 1;
                n += snprintf(line + n, sizeof(line) - (size_t)n, "  %3d%%", (int)(frac * 100));
        } else {
                char sz[32];
                format_size(p->bytes ? p->bytes : p->done, sz);
                n += snprintf(line + n, sizeof(line) - (size_t)n, "  %s", sz);
        }
        n += snprintf(line + n, sizeof(line) - (size_t)n, "  %.1f MB/s", shown_rate / 1e6);
        if (p->total && rate > 0 && p->done < p->total) {
                unsigned eta = (unsigned)((double)(p->total - p->done) / rate + 0.5);
                n += snprintf(line + n, sizeof(line) - (size_t)n, "  ETA %u:%02u", eta / 60, eta % 60);
        }
        /* Clear the rest of the line: a shorter redraw must not leave debris. */
        snprintf(line + n, sizeof(line) - (size_t)n, "\033[K");
        fputs(line, stderr);
        fflush(stderr);
        p->shown = 1;
}

void progress_update(struct progress *p, uint64_t done) {
        p->done = done;
        if (!p->enabled)
                return;
        double t = now();
        if (t - p->last < 0.25)
                return;
        p->last = t;
        draw(p, t);
}

void progress_update_bytes(struct progress *p, uint64_t done, uint64_t bytes) {
        p->bytes = bytes;
        progress_update(p, done);
}

void progress_end(struct progress *p) {
        if (p->enabled && p->shown) {
                fputs("\r\033[K", stderr);
                fflush(stderr);
        }
        p->shown = 0;
        p->enabled = 0;
}
