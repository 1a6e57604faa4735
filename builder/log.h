/* SPDX-License-Identifier: GPL-3.0-or-later */
/* One logging helper that carries context.
 *
 * Convention, everywhere: the function that detects a failure logs it once,
 * with the file (and line) it concerns, and returns -errno; callers only
 * propagate.  So a failed build prints exactly one "dimimage: error:" line.
 * Never pass a secret value to any of these. */
#pragma once

#include <errno.h>
#include <stdbool.h>

#include "util.h"

enum log_level { LOG_QUIET = 0, LOG_NORMAL = 1, LOG_VERBOSE = 2 };

/* The only mutable global besides options: set once by main. */
extern enum log_level log_level;

/* "dimimage: error: FILE:LINE: message" (FILE/LINE omitted when NULL/0).
 * Returns -abs(err), or -EINVAL when err is 0, so callers can
 * `return log_error_at(...)`. */
int log_error_at(int err, const char *file, unsigned line, const char *fmt, ...) _printf_(4, 5);
#define log_error(err, file, ...) log_error_at((err), (file), 0, __VA_ARGS__)
void log_warn_at(const char *file, unsigned line, const char *fmt, ...) _printf_(3, 4);
#define log_warn(file, ...) log_warn_at((file), 0, __VA_ARGS__)
/* Progress and results for the user, suppressed by --quiet. */
void log_info(const char *fmt, ...) _printf_(1, 2);
/* Only with --verbose. */
void log_debug(const char *fmt, ...) _printf_(1, 2);

/* Hold warnings and errors back instead of printing them, until
 * log_release: print them (in order) when true, drop them when false.  For a
 * build working on bytes whose check is still running (source_verify): if
 * they turn out damaged, what it said about them is moot.  Info and debug
 * lines are never held. */
void log_hold(void);
void log_release(bool print);

/* log_defer(true): keep warnings back (errors still print at once) until
 * log_flush, which prints them when print is true and drops them
 * otherwise, so input that is refused gets its one error line, not the
 * warnings that came before it.  Only the calling thread's warnings are
 * kept; other threads' print at once.  log_defer(false): print new warnings at
 * once again, still keeping those kept so far for log_flush. */
void log_defer(bool on);
void log_flush(bool print);

/* log_demote(true): the calling thread's errors print as warnings (and are
 * not counted) until log_demote(false).  For a read-only report (inspect)
 * over a part of its input that is damaged: the modules it calls log what
 * they found as they would for a build, and the report goes on with the
 * rest. */
void log_demote(bool on);

/* log_quiet(true): the calling thread's info and debug lines are dropped until
 * log_quiet(false).  For a fleet's look at every host before the base is
 * read: the build that follows says it all again. */
void log_quiet(bool on);
/* While quiet, line (an info line; NULL: none) is printed just before the
 * thread's next error, once: for an error that does not say which of the
 * fleet's hosts it is about (a compose file's, every app host's), as the
 * build's "== HOST" line before it would have. */
void log_quiet_context(const char *line);

/* How many errors were logged so far (tests check there is exactly one). */
unsigned log_error_count(void);

/* Command-line usage errors return -EUSAGE so they exit with EX_USAGE. */
#define EUSAGE EDOM
/* What does not fit where it must go (a payload in its partition, an image
 * on its device) returns -ENOROOM: bad input, EX_DATAERR.  ENOSPC stays the
 * disk's own, a full output directory: EX_CANTCREAT, with write_hint. */
#define ENOROOM EFBIG

/* "FILE: cannot VERB: <strerror>" for an output being written or synced,
 * with what to do next when its disk is full (write_hint).  Returns -errno,
 * but -ENOSPC for EFBIG (a file past what the filesystem or ulimit -f
 * holds: no room there, not the ENOROOM of bad input). */
int log_output_error(int err, const char *file, const char *verb);
/* The same with hint (" (...)" or "") in place of write_hint's. */
int log_output_error_hint(int err, const char *file, const char *verb, const char *hint);

/* Map a -errno result to a sysexits.h exit code. */
int exit_code_for(int r);

/* An input that may not be read (-EACCES, -EPERM) exits EX_NOINPUT, as a
 * missing one does; EACCES alone means an output that cannot be created.
 * For log_error's first argument where an input is opened or read (a
 * -errno in, a -errno out); the message still says what the system said. */
static inline int input_err(int r) {
        return r == -EACCES || r == -EPERM ? -ENOENT : r;
}
