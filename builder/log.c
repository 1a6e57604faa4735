/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>

enum log_level log_level = LOG_NORMAL;
static unsigned errors;

/* log_hold's buffer; the lock because commit threads may log too */
static pthread_mutex_t hold_lock = PTHREAD_MUTEX_INITIALIZER;
static bool holding;
static struct buf held;
static unsigned held_errors;
/* log_defer's warnings: only its caller's.  A fleet's detached commit of
 * the host before logs from its own thread meanwhile; its warnings are not
 * the input's, and must not wait for (or be dropped with) the next host's. */
static bool deferring;
static pthread_t deferrer;
static struct buf deferred;
/* log_demote's thread, and log_quiet's (and the line its next error
 * follows, log_quiet_context) */
static bool demoting, quieting;
static pthread_t demoter, quieter;
static struct buf quiet_context;

/* One finished line: printed, or kept while holding (or deferring). */
static void emit(const struct buf *b, bool error) {
        pthread_mutex_lock(&hold_lock);
        /* where the error goes, not deferred with the warnings */
        if (error && quieting && quiet_context.len && pthread_equal(pthread_self(), quieter)) {
                if (holding)
                        buf_append(&held, quiet_context.data, quiet_context.len);
                else
                        fwrite(quiet_context.data, 1, quiet_context.len, stderr);
                buf_free(&quiet_context);
        }
        if (holding) {
                buf_append(&held, b->data, b->len);
                held_errors += error;
        } else if (deferring && !error && pthread_equal(pthread_self(), deferrer)) {
                buf_append(&deferred, b->data, b->len);
        } else {
                fwrite(b->data, 1, b->len, stderr);
                errors += error;
        }
        pthread_mutex_unlock(&hold_lock);
}

static bool demoted(void) {
        pthread_mutex_lock(&hold_lock);
        bool d = demoting && pthread_equal(pthread_self(), demoter);
        pthread_mutex_unlock(&hold_lock);
        return d;
}

static bool quieted(void) {
        pthread_mutex_lock(&hold_lock);
        bool q = quieting && pthread_equal(pthread_self(), quieter);
        pthread_mutex_unlock(&hold_lock);
        return q;
}

/* The message, then the newline: one line, always (a newline inside a
 * message would let untrusted input forge extra lines), and printable, as
 * file names and messages carry text from outside (archive entry names,
 * labels): no escape sequence may reach the terminal. */
static void append_line(struct buf *b, const char *fmt, va_list ap) {
        va_list aq;
        va_copy(aq, ap);
        int n = vsnprintf(NULL, 0, fmt, aq);
        va_end(aq);
        if (n > 0) {
                char *msg = xmalloc((size_t)n + 1);
                vsnprintf(msg, (size_t)n + 1, fmt, ap);
                for (char *c = msg; *c; c++)
                        if (*c == '\n' || *c == '\r')
                                *c = ' ';
                buf_puts(b, msg);
                free(msg);
        }
        buf_puts(b, ""); /* data, even for an empty line */
        str_printable((char *)b->data);
        buf_puts(b, "\n");
}

static void vlog(bool error, const char *kind, const char *file, unsigned line, const char *fmt, va_list ap) {
        if (error && demoted()) {
                error = false;
                kind = "warning";
        }
        /* Build the whole line first so concurrent writers never interleave. */
        struct buf b = {0};
        buf_printf(&b, "dimimage: %s: ", kind);
        if (file && line)
                buf_printf(&b, "%s:%u: ", file, line);
        else if (file)
                buf_printf(&b, "%s: ", file);
        append_line(&b, fmt, ap);
        emit(&b, error);
        buf_free(&b);
}

int log_error_at(int err, const char *file, unsigned line, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vlog(true, "error", file, line, fmt, ap);
        va_end(ap);
        if (err == 0)
                return -EINVAL;
        return err < 0 ? err : -err;
}

/* Printed even with --quiet, which promises "only warnings and errors": a
 * warning is what a quiet build must still say. */
void log_warn_at(const char *file, unsigned line, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vlog(false, "warning", file, line, fmt, ap);
        va_end(ap);
}

/* An info or debug line, printed at once (never held): made printable as
 * vlog's are, since "Wrote OUT" and "Reading BASE" carry names from outside
 * too, and written whole so threads' lines never interleave. */
static void vlog_plain(const char *prefix, const char *fmt, va_list ap) {
        struct buf b = {0};
        buf_puts(&b, prefix);
        append_line(&b, fmt, ap);
        fwrite(b.data, 1, b.len, stderr);
        buf_free(&b);
}

void log_info(const char *fmt, ...) {
        if (log_level < LOG_NORMAL || quieted())
                return;
        va_list ap;
        va_start(ap, fmt);
        vlog_plain("", fmt, ap);
        va_end(ap);
}

/* log_quiet's pass says its timings once, for the whole pass: the build
 * after it says each phase's again. */
void log_debug(const char *fmt, ...) {
        if (log_level < LOG_VERBOSE || quieted())
                return;
        va_list ap;
        va_start(ap, fmt);
        vlog_plain("dimimage: debug: ", fmt, ap);
        va_end(ap);
}

void log_hold(void) {
        pthread_mutex_lock(&hold_lock);
        holding = true;
        pthread_mutex_unlock(&hold_lock);
}

void log_release(bool print) {
        pthread_mutex_lock(&hold_lock);
        if (print && held.len) {
                fwrite(held.data, 1, held.len, stderr);
                errors += held_errors;
        }
        buf_free(&held);
        held_errors = 0;
        holding = false;
        pthread_mutex_unlock(&hold_lock);
}

void log_defer(bool on) {
        pthread_mutex_lock(&hold_lock);
        deferring = on;
        if (on)
                deferrer = pthread_self();
        pthread_mutex_unlock(&hold_lock);
}

void log_demote(bool on) {
        pthread_mutex_lock(&hold_lock);
        demoting = on;
        if (on)
                demoter = pthread_self();
        pthread_mutex_unlock(&hold_lock);
}

void log_quiet(bool on) {
        pthread_mutex_lock(&hold_lock);
        quieting = on;
        if (on)
                quieter = pthread_self();
        else
                buf_free(&quiet_context);
        pthread_mutex_unlock(&hold_lock);
}

void log_quiet_context(const char *line) {
        pthread_mutex_lock(&hold_lock);
        buf_free(&quiet_context);
        /* an info line: not with --quiet */
        if (line && log_level >= LOG_NORMAL) {
                buf_puts(&quiet_context, line);
                str_printable((char *)quiet_context.data);
                buf_puts(&quiet_context, "\n");
        }
        pthread_mutex_unlock(&hold_lock);
}

void log_flush(bool print) {
        pthread_mutex_lock(&hold_lock);
        if (print && deferred.len)
                fwrite(deferred.data, 1, deferred.len, stderr);
        buf_free(&deferred);
        deferring = false;
        pthread_mutex_unlock(&hold_lock);
}

unsigned log_error_count(void) {
        pthread_mutex_lock(&hold_lock);
        unsigned n = errors;
        pthread_mutex_unlock(&hold_lock);
        return n;
}

int log_output_error(int err, const char *file, const char *verb) {
        return log_output_error_hint(err, file, verb, write_hint(err));
}

int log_output_error_hint(int err, const char *file, const char *verb, const char *hint) {
        int r = log_error(err, file, "cannot %s: %s%s", verb, strerror(err < 0 ? -err : err), hint);
        /* A file larger than the output's filesystem or `ulimit -f` allows:
         * no room for OUT there, as a full disk (EX_CANTCREAT); EFBIG itself
         * is ENOROOM, a payload too big for its partition (bad input). */
        return r == -EFBIG ? -ENOSPC : r;
}

int exit_code_for(int r) {
        if (r >= 0)
                return EX_OK;
        switch (-r) {
        case EUSAGE:
                return EX_USAGE;
        case ENOENT:
        case ENOTDIR:
        case EISDIR:
        case ENAMETOOLONG:
        case ELOOP:
                return EX_NOINPUT;
        case EINVAL:
        case EBADMSG:
        case ENOEXEC:
        case EILSEQ:
        case ERANGE:
        case EFBIG:
        case E2BIG:
        case EOVERFLOW:
        case ENOTSUP:
        case EUCLEAN:
        case ENOTEMPTY: /* a directory in the base where a file goes */
        case EMLINK:
                return EX_DATAERR;
        case EEXIST: /* an existing output without --force */
        case EACCES:
        case EPERM:
        case EROFS:
        case ENOSPC:
        case EDQUOT:
                return EX_CANTCREAT;
        case EIO:
                return EX_IOERR;
        case EINTR:
        case ECANCELED:
                return 130;
        case EBUSY:
        case ENODEV:
                return EX_UNAVAILABLE;
        case EAGAIN: /* an input that changed while it was read: try again */
                return EX_TEMPFAIL;
        case ENOMEM:
                return EX_OSERR;
        default:
                return EX_SOFTWARE;
        }
}
