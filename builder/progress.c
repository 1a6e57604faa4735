/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "progress.h"

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <wchar.h>

#include "log.h"

/* As git and most progress-drawing tools take it: without TERM, or with
 * TERM=dumb, nothing says the terminal reads an escape sequence, and one
 * that does not shows "^[[K" after every redraw. */
bool progress_term_is_dumb(void) {
        const char *t = getenv("TERM");
        return !t || !*t || strcmp(t, "dumb") == 0;
}

void progress_begin_named(struct progress *p, const char *verb, const char *name, uint64_t total) {
        *p = (struct progress){
                .verb = verb,
                .what = name,
                .total = total,
                .enabled = log_level >= LOG_NORMAL && isatty(STDERR_FILENO),
                .dumb = progress_term_is_dumb(),
        };
        p->start = p->last = monotonic_s();
}

void progress_begin(struct progress *p, const char *what, uint64_t total) {
        progress_begin_named(p, NULL, what, total);
}

/* The terminal's width in columns; 0 when it cannot say (then the line is
 * drawn whole). */
static size_t term_columns(void) {
        struct winsize ws;
        if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) < 0)
                return 0;
        return ws.ws_col;
}

/* The columns of the character at *s, valid UTF-8, stepping past it: what
 * wcwidth says under the calling thread's locale (draw sets C.UTF-8: two
 * for a wide East Asian character, none for a combining one), else one. */
static size_t char_columns(const char **s) {
        const unsigned char *c = (const unsigned char *)*s;
        size_t len = 1;
        while ((c[len] & 0xc0) == 0x80)
                len++;
        size_t w = 1;
        wchar_t wc;
        mbstate_t st = {0};
        if (*c >= 0x80 && mbrtowc(&wc, *s, len, &st) == len) {
                int x = wcwidth(wc);
                w = x < 0 ? 1 : (size_t)x;
        }
        *s += len;
        return w;
}

static size_t columns(const char *s) {
        size_t n = 0;
        while (*s)
                n += char_columns(&s);
        return n;
}

/* The longest end of s that fits in cols columns */
static const char *tail_within(const char *s, size_t cols) {
        size_t n = columns(s);
        while (*s && n > cols)
                n -= char_columns(&s);
        return s;
}

/* Where s must end to fit in cols columns, between characters */
static const char *head_within(const char *s, size_t cols) {
        size_t n = 0;
        for (const char *c = s; *c;) {
                const char *at = c;
                n += char_columns(&c);
                if (n > cols)
                        return at;
        }
        return s + strlen(s);
}

static void draw(struct progress *p, double t) {
        double elapsed = t - p->start;
        double rate = elapsed > 0 ? (double)p->done / elapsed : 0;
        double shown_rate = elapsed > 0 && p->bytes ? (double)p->bytes / elapsed : rate;
        char figures[96];
        int n;
        if (p->total) {
                double frac = (double)p->done / (double)p->total;
                if (frac > 1)
                        frac = 1;
                n = snprintf(figures, sizeof(figures), "  %3d%%", (int)(frac * 100));
        } else {
                char sz[32];
                format_size(p->bytes ? p->bytes : p->done, sz);
                n = snprintf(figures, sizeof(figures), "  %s", sz);
        }
        n += snprintf(figures + n, sizeof(figures) - (size_t)n, "  %.1f MB/s", shown_rate / 1e6);
        if (p->total && rate > 0 && p->done < p->total) {
                unsigned eta = (unsigned)((double)(p->total - p->done) / rate + 0.5);
                snprintf(figures + n, sizeof(figures) - (size_t)n, "  ETA %u:%02u", eta / 60, eta % 60);
        }
        /* A file name is text from outside: no escape sequence of its may
         * reach the terminal (and, valid UTF-8, it is cut between
         * characters). */
        _cleanup_free_ char *name = xstrdup(p->what ? p->what : "");
        str_printable(name);
        /* a tab, which str_printable keeps, is as wide as the terminal
         * makes it: the width below could not count it */
        for (char *c = name; *c; c++)
                if (*c == '\t')
                        *c = '?';
        const char *shown = name, *cut = "";
        /* Wider than the terminal, the line would wrap, and each redraw
         * (from a carriage return) would start a new one: the name's start
         * gives way, keeping its end (".img.xz") and the figures.  The last
         * column is left blank: some terminals wrap as soon as it is
         * written. */
        size_t cols = term_columns();
        /* dimimage sets no locale, and C's counts a byte as a character */
        locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
        locale_t was = utf8 ? uselocale(utf8) : (locale_t)0;
        if (cols) {
                size_t fixed = (p->verb ? columns(p->verb) + 1 : 0) + strlen(figures);
                size_t room = cols - 1 > fixed ? cols - 1 - fixed : 0;
                if (columns(name) > room) {
                        size_t keep = room > 3 ? room - 3 : 0;
                        cut = keep ? "..." : "";
                        shown = tail_within(name, keep);
                }
        }
        _cleanup_free_ char *line = xasprintf("%s%s%s%s%s", p->verb ? p->verb : "", p->verb ? " " : "", cut, shown,
                                              figures);
        /* Narrower than even the verb and the figures (a split pane of 30
         * columns): the line itself gives way at the width, its end first,
         * so that it still redraws over itself rather than wrapping. */
        if (cols)
                *(char *)head_within(line, cols - 1) = '\0';
        /* one write; the rest of the line cleared, so a shorter redraw
         * leaves no debris (on a dumb terminal, by spaces over what the
         * last one drew) */
        size_t w = columns(line);
        if (utf8) {
                uselocale(was);
                freelocale(utf8);
        }
        if (p->dumb)
                fprintf(stderr, "\r%s%*s", line, p->drawn > w ? (int)(p->drawn - w) : 0, "");
        else
                fprintf(stderr, "\r%s\033[K", line);
        fflush(stderr);
        p->drawn = w;
        p->shown = 1;
}

void progress_update(struct progress *p, uint64_t done) {
        p->done = done;
        if (!p->enabled)
                return;
        double t = monotonic_s();
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
                if (p->dumb)
                        fprintf(stderr, "\r%*s\r", (int)p->drawn, "");
                else
                        fputs("\r\033[K", stderr);
                fflush(stderr);
        }
        p->shown = 0;
        p->enabled = 0;
}
