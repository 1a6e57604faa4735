/* SPDX-License-Identifier: GPL-3.0-or-later */
/* log.c's deferred warnings (log_defer/log_flush), held lines
 * (log_hold/log_release) and quiet checks (log_quiet), and util.c's sweep
 * of what a killed process left (sweep_stale, temp_lock), on a real
 * directory. */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "test_util.h"
#include "util.h"

/* The lines logged by fn, and how many errors among them. */
static char *logged(void (*fn)(void), unsigned *errors) {
        struct tu_capture c;
        tu_capture_begin(&c);
        fn();
        return tu_capture_end(&c, errors);
}

static void deferred_then_refused(void) {
        log_defer(true);
        log_warn("a.env", "first warning");
        log_error(EINVAL, "a.env", "the refusal");
        log_warn("a.env", "second warning");
        log_flush(false);
}

static void deferred_then_passed(void) {
        log_defer(true);
        log_warn("a.env", "kept back");
        log_defer(false);
        log_warn("base.img", "said at once");
        log_flush(true);
        log_warn("out.img", "after the flush");
}

static void *warn_from_thread(void *arg) {
        (void)arg;
        log_warn("out-1.img", "from the commit thread");
        return NULL;
}

/* A fleet's detached commit of the host before warns from its own thread
 * while the next host's input is deferred, and that input is refused. */
static void deferred_beside_a_thread(void) {
        log_defer(true);
        log_warn("b.env", "the input's warning");
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, warn_from_thread, NULL), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
        log_error(EINVAL, "b.env", "the refusal");
        log_flush(false);
}

static void *error_from_thread(void *arg) {
        (void)arg;
        log_error(EIO, "out-1.img", "another thread's error");
        return NULL;
}

/* inspect over a damaged root filesystem: ext4.c's errors become warnings,
 * only the demoting thread's, and only until it stops. */
static void demoted_errors(void) {
        log_demote(true);
        int r = log_error(EIO, "c.img", "ext4 /etc/os-release: looking up");
        assert_int_equal(r, -EIO);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, error_from_thread, NULL), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
        log_demote(false);
        log_error(EINVAL, "c.img", "after");
}

static void test_demote(void **state) {
        (void)state;
        unsigned errors;
        _cleanup_free_ char *out = logged(demoted_errors, &errors);
        assert_int_equal(errors, 2);
        assert_string_equal(out, "dimimage: warning: c.img: ext4 /etc/os-release: looking up\n"
                                 "dimimage: error: out-1.img: another thread's error\n"
                                 "dimimage: error: c.img: after\n");
}

/* No escape sequence from outside reaches a terminal: C0, DEL, C1 and
 * invalid UTF-8 bytes become '?', printable UTF-8 and tabs stay. */
static void test_printable(void **state) {
        (void)state;
        static const struct {
                const char *in, *out;
        } cases[] = {
                { "plain caf\xc3\xa9 \xe2\x82\xac\tx", "plain caf\xc3\xa9 \xe2\x82\xac\tx" },
                { "\x1b[31mred\x1b[0m", "?[31mred?[0m" },
                { "\x1b]0;title\x07", "?]0;title?" },
                { "csi\xc2\x9b" "31m", "csi??31m" },
                { "del\x7f", "del?" },
                { "bad\xff\xc0\xaf", "bad???" },
                { "nbsp\xc2\xa0", "nbsp\xc2\xa0" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                _cleanup_free_ char *s = xstrdup(cases[i].in);
                str_printable(s);
                assert_string_equal(s, cases[i].out);
        }
}

static void escape_in_a_name(void) { log_error(EINVAL, "x.zip", "holds no *.img file (a\x1b[2Jb)"); }

static void test_log_printable(void **state) {
        (void)state;
        unsigned errors;
        _cleanup_free_ char *out = logged(escape_in_a_name, &errors);
        assert_string_equal(out, "dimimage: error: x.zip: holds no *.img file (a?[2Jb)\n");
}

/* "Wrote OUT" and "Reading BASE": names from outside in info and debug
 * lines too, and an escape sequence there would reach the terminal */
static void escape_in_info(void) {
        enum log_level was = log_level;
        log_level = LOG_VERBOSE;
        log_info("Wrote %s", "fleet/a\x1b]0;owned\x07" "b.img");
        log_debug("reading %s", "c\x1b[2Jd\ne.img");
        log_level = was;
}

static void test_info_printable(void **state) {
        (void)state;
        unsigned errors;
        _cleanup_free_ char *out = logged(escape_in_info, &errors);
        assert_string_equal(out, "Wrote fleet/a?]0;owned?b.img\ndimimage: debug: reading c?[2Jd e.img\n");
        assert_int_equal(errors, 0);
}

static void test_defer(void **state) {
        (void)state;
        unsigned errors;
        _cleanup_free_ char *refused = logged(deferred_then_refused, &errors);
        assert_int_equal(errors, 1);
        assert_string_equal(refused, "dimimage: error: a.env: the refusal\n");

        _cleanup_free_ char *passed = logged(deferred_then_passed, &errors);
        assert_int_equal(errors, 0);
        assert_string_equal(passed, "dimimage: warning: base.img: said at once\n"
                                    "dimimage: warning: a.env: kept back\n"
                                    "dimimage: warning: out.img: after the flush\n");

        _cleanup_free_ char *beside = logged(deferred_beside_a_thread, &errors);
        assert_int_equal(errors, 1);
        assert_string_equal(beside, "dimimage: warning: out-1.img: from the commit thread\n"
                                    "dimimage: error: b.env: the refusal\n");
}

static void held_and_dropped(void) {
        log_hold();
        log_error(EIO, "cache", "damaged");
        log_release(false);
        log_hold();
        log_warn("cache", "kept");
        log_release(true);
}

static void test_hold(void **state) {
        (void)state;
        unsigned errors;
        _cleanup_free_ char *out = logged(held_and_dropped, &errors);
        assert_int_equal(errors, 0); /* a dropped error is not counted */
        assert_string_equal(out, "dimimage: warning: cache: kept\n");
}

/* A fleet's check of every host before the base is read: its info lines
 * and (deferred) warnings dropped, its host's line said before its error
 * only, once, and never before an error once the host is done. */
static void quiet_check(void) {
        log_quiet(true);
        log_quiet_context("== a (app, 10.0.0.5)");
        log_defer(true);
        log_info("Writing 3 entries");
        log_warn("a.env", "a warning");
        log_flush(false);
        log_quiet_context("== b (app, 10.0.0.6)");
        log_defer(true);
        log_warn("b.env", "a warning");
        log_error(EINVAL, "compose.yml", "the refusal");
        log_error(EINVAL, "compose.yml", "another");
        log_flush(false);
        log_quiet_context(NULL);
        log_error(EINVAL, "fleet.yml", "no host's");
        log_quiet(false);
        log_info("said again");
}

static void test_quiet(void **state) {
        (void)state;
        unsigned errors;
        _cleanup_free_ char *out = logged(quiet_check, &errors);
        assert_int_equal(errors, 3);
        assert_string_equal(out, "== b (app, 10.0.0.6)\n"
                                 "dimimage: error: compose.yml: the refusal\n"
                                 "dimimage: error: compose.yml: another\n"
                                 "dimimage: error: fleet.yml: no host's\n"
                                 "said again\n");
}

/* ---- sweep_stale ---- */

static bool tmp_named(const char *name, const void *prefix) { return str_has_prefix(name, prefix); }

static unsigned nremoved;
static void count_removed(const char *dir, const char *name, uint64_t bytes) { nremoved++; }

static void make_file(const char *dir, const char *name, time_t age) {
        _cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "x", 1), 1);
        close(fd);
        struct timespec t[2] = {{.tv_sec = time(NULL) - age}, {.tv_sec = time(NULL) - age}};
        assert_int_equal(utimensat(AT_FDCWD, p, t, 0), 0);
}

static bool exists(const char *dir, const char *name) {
        _cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
        return access(p, F_OK) == 0;
}

static void test_sweep(void **state) {
        (void)state;
        char dir[PATH_MAX];
        assert_int_equal(tu_mkdtemp(dir, sizeof dir, "dimimage-sweep"), 0);
        make_file(dir, "tmp-dead", 120);   /* old, unlocked: a killed process's */
        make_file(dir, "tmp-fresh", 0);    /* just written */
        make_file(dir, "tmp-locked", 120); /* old, but a live process holds it */
        make_file(dir, "other-old", 120);  /* not ours to judge */
        _cleanup_free_ char *lp = xasprintf("%s/tmp-locked", dir);
        int lfd = open(lp, O_RDONLY | O_CLOEXEC);
        assert_true(lfd >= 0);
        temp_lock(lfd);
        _cleanup_free_ char *link = xasprintf("%s/tmp-link", dir);
        assert_int_equal(symlink("tmp-fresh", link), 0); /* never followed, never removed */

        nremoved = 0;
        sweep_stale(dir, tmp_named, "tmp-", 60, count_removed);
        assert_int_equal(nremoved, 1);
        assert_false(exists(dir, "tmp-dead"));
        assert_true(exists(dir, "tmp-fresh"));
        assert_true(exists(dir, "tmp-locked"));
        assert_true(exists(dir, "other-old"));
        assert_true(exists(dir, "tmp-link"));

        /* the lock goes with its holder: then the file is a dead one's */
        close(lfd);
        sweep_stale(dir, tmp_named, "tmp-", 60, count_removed);
        assert_int_equal(nremoved, 2);
        assert_false(exists(dir, "tmp-locked"));

        const char *rest[] = {"tmp-fresh", "other-old", "tmp-link"};
        for (size_t i = 0; i < ARRAY_SIZE(rest); i++) {
                _cleanup_free_ char *p = xasprintf("%s/%s", dir, rest[i]);
                assert_int_equal(unlink(p), 0);
        }
        assert_int_equal(rmdir(dir), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defer),
                cmocka_unit_test(test_demote),
                cmocka_unit_test(test_printable),
                cmocka_unit_test(test_log_printable),
                cmocka_unit_test(test_info_printable),
                cmocka_unit_test(test_hold),
                cmocka_unit_test(test_quiet),
                cmocka_unit_test(test_sweep),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
