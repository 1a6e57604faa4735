/* Force-included (-include) by scripts/lint.sh when clang-tidy analyses
 * builder/*.c; never part of the build.  The static analyzer does not
 * inline variadic functions, so it does not know that log_error_at()
 * always returns a negative errno, and it then explores impossible paths
 * ("Assuming 'r' is >= 0" right after `r = log_error(...)`) and reports
 * double frees and uninitialised reads on them.  Here log_error/log_error_at
 * keep calling the real function and yield the same value it returns
 * (builder/log.c), through an inline function the analyzer can see. */
#pragma once
#include <errno.h>
#include "log.h"

static inline int lint_log_result(int err) { return err == 0 ? -EINVAL : err < 0 ? err : -err; }
#undef log_error
#define log_error(err, file, ...) log_error_at((err), (file), 0, __VA_ARGS__)
#define log_error_at(err, file, line, ...) \
        ((void)(log_error_at)((err), (file), (line), __VA_ARGS__), lint_log_result(err))
