/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>

enum log_level log_level = LOG_NORMAL;
static unsigned errors;

static void vlog(const char *kind, const char *file, unsigned line, const char *fmt, va_list ap) {
        /* Build the whole line first so concurrent writers never interleave. */
        struct buf b = {0};
        buf_printf(&b, "dimimage: %s: ", kind);
        if (file && line)
                buf_printf(&b, "%s:%u: ", file, line);
        else if (file)
                buf_printf(&b, "%s: ", file);
        va_list aq;
        va_copy(aq, ap);
        int n = vsnprintf(NULL, 0, fmt, aq);
        va_end(aq);
        if (n > 0) {
                char *msg = xmalloc((size_t)n + 1);
                vsnprintf(msg, (size_t)n + 1, fmt, ap);
                /* One line, always: a newline inside a message would let
                 * untrusted input forge extra lines. */
                for (char *c = msg; *c; c++)
                        if (*c == '\n' || *c == '\r')
                                *c = ' ';
                buf_puts(&b, msg);
                free(msg);
        }
        buf_puts(&b, "\n");
        fwrite(b.data, 1, b.len, stderr);
        buf_free(&b);
}

int log_error_at(int err, const char *file, unsigned line, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vlog("error", file, line, fmt, ap);
        va_end(ap);
        errors++;
        if (err == 0)
                return -EINVAL;
        return err < 0 ? err : -err;
}

void log_warn_at(const char *file, unsigned line, const char *fmt, ...) {
        if (log_level == LOG_QUIET)
                return;
        va_list ap;
        va_start(ap, fmt);
        vlog("warning", file, line, fmt, ap);
        va_end(ap);
}

void log_info(const char *fmt, ...) {
        if (log_level < LOG_NORMAL)
                return;
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

void log_debug(const char *fmt, ...) {
        if (log_level < LOG_VERBOSE)
                return;
        va_list ap;
        va_start(ap, fmt);
        fputs("dimimage: debug: ", stderr);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

unsigned log_error_count(void) { return errors; }

int exit_code_for(int r) {
        if (r >= 0)
                return EX_OK;
        switch (-r) {
        case EUSAGE:
                return EX_USAGE;
        case ENOENT:
        case ENOTDIR:
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
        case ENOSPC:
        case EUCLEAN:
        case EEXIST:
                return EX_DATAERR;
        case EACCES:
        case EPERM:
        case EROFS:
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
        case ENOMEM:
                return EX_OSERR;
        default:
                return EX_SOFTWARE;
        }
}
