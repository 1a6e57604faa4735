/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A progress line with rate and ETA on a terminal; silent otherwise. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct progress {
        const char *verb; /* "Compressing": never cut; or NULL */
        const char *what; /* a file name: its start gives way on a narrow terminal */
        uint64_t total;   /* 0 when unknown */
        uint64_t done;
        double start, last;
        int enabled;
        int shown;        /* a line is on screen and needs clearing */
        uint64_t bytes;   /* for the rate when it differs from done (0: use done) */
        int dumb;         /* TERM unset or "dumb": no escape sequences, spaces clear */
        size_t drawn;     /* columns of the line on screen */
};

/* Whether the terminal may not read escape sequences (no TERM, or dumb):
 * a line is then cleared with spaces, or left for the next one. */
bool progress_term_is_dumb(void);
/* Enabled only when stderr is a terminal and log_level >= LOG_NORMAL.  A
 * terminal that TERM does not name, or names "dumb" (Emacs' shell, a CI
 * log's pty), gets no escape sequence: the line is cleared with spaces. */
void progress_begin(struct progress *p, const char *what, uint64_t total);
/* "VERB NAME  12%  ...": on a terminal narrower than that, NAME is cut to
 * its end ("...ng-name.img.xz"); VERB and the figures only on one too
 * narrow for them, where the line is cut at the width. */
void progress_begin_named(struct progress *p, const char *verb, const char *name, uint64_t total);
/* Cheap to call often: redraws at most ~4 times a second. */
void progress_update(struct progress *p, uint64_t done);
/* For compressed input: percentage and ETA from done (compressed bytes
 * consumed) of total, the rate shown from bytes (uncompressed, written). */
void progress_update_bytes(struct progress *p, uint64_t done, uint64_t bytes);
/* Clears the line. */
void progress_end(struct progress *p);
