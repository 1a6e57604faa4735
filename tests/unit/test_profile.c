/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Profiles: the shipped ones load, and every kind of mistake is one error
 * naming file:line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "profile.h"
#include "hash.h"
#include "test_util.h"

/* Run profile_parse on text with stderr captured; returns the rc and the
 * captured text in err (caller frees). */
static int parse_capture(const char *text, struct profile *p, char **err) {
        fflush(stderr);
        int saved = dup(2);
        FILE *tmp = tu_tmpfile();
        assert_non_null(tmp);
        dup2(fileno(tmp), 2);
        unsigned before = log_error_count();
        int rc = profile_parse("t.yml", text, strlen(text), p);
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        long n = ftell(tmp);
        fseek(tmp, 0, SEEK_END);
        n = ftell(tmp);
        rewind(tmp);
        *err = xcalloc(1, (size_t)n + 1);
        if (n > 0)
                assert_int_equal(fread(*err, 1, (size_t)n, tmp), (size_t)n);
        fclose(tmp);
        if (rc < 0)
                assert_int_equal(log_error_count() - before, 1); /* exactly one error line */
        else
                assert_int_equal(log_error_count(), before);
        return rc;
}

/* The text must be refused with an error containing want. */
static void expect_refused(const char *text, const char *want) {
        struct profile p;
        char *err = NULL;
        int rc = parse_capture(text, &p, &err);
        if (rc >= 0 || !strstr(err, want))
                fail_msg("rc=%d, wanted error containing \"%s\", got \"%s\"", rc, want, err);
        profile_free(&p);
        free(err);
}

#define BASE                                                                                                         \
        "name: t\n"                                                                                                  \
        "overlays: [common]\n"                                                                                       \
        "compose: [deploy/x.yml]\n"                                                                                  \
        "memory: {minimum_mb: 512, recommended_mb: 1024}\n"

static void load_shipped(const char *role, const char *name) {
        struct profile p;
        _cleanup_free_ char *path = profile_path_for(role);
        int rc = profile_load(path, &p);
        assert_int_equal(rc, 0);
        assert_string_equal(p.name, name);
        assert_int_equal(strlen(p.sha256), 64);
        assert_true(p.noverlays >= 2);
        assert_string_equal(p.overlays[0], "common");
        assert_true(p.ncompose >= 1);
        assert_true(p.memory_min_mb >= 1024);
        assert_true(p.memory_recommended_mb >= p.memory_min_mb);
        assert_string_equal(p.journald_max_use, "64M");
        assert_string_equal(p.docker_log_max_size, "10m");
        assert_int_equal(p.docker_log_max_file, 3);
        assert_int_equal(p.gpu_mem_mb, 16);
        for (size_t i = 0; i < p.nenv; i++)
                if (p.env[i].secret)
                        assert_true(!p.env[i].def || !*p.env[i].def);
        profile_free(&p);
}

static void test_shipped_profiles(void **state) {
        (void)state;
        load_shipped("app", "app");
        load_shipped("observability", "observability");
        load_shipped("all", "all");
        load_shipped("app-standalone", "app-standalone");
}

static void test_app_profile(void **state) {
        (void)state;
        struct profile p;
        _cleanup_free_ char *path = profile_path_for("app");
        assert_int_equal(profile_load(path, &p), 0);
        const struct profile_env *e = profile_env_find(&p, "DB_PASSWORD");
        assert_non_null(e);
        assert_true(e->required && e->secret && e->generate);
        assert_int_equal(e->length, 32);
        assert_null(e->def);
        e = profile_env_find(&p, "OPENOBSERVE_URL");
        assert_non_null(e);
        assert_string_equal(e->def, "http://192.168.1.102:5080");
        assert_string_equal(e->fleet, "http://${observability.host}:5080");
        e = profile_env_find(&p, "OPENOBSERVE_PASSWORD");
        assert_true(e && e->secret && !e->required && e->fleet);
        assert_true(p.log_shipping);
        assert_string_equal(p.compose[0], "deploy/docker-compose.app.yml");
        assert_int_equal(p.memory_min_mb, 1024);
        bool api = false;
        for (size_t i = 0; i < p.nports; i++)
                if (p.ports[i].port == 3000 && !strcmp(p.ports[i].service, "api") && !strcmp(p.ports[i].proto, "tcp"))
                        api = true;
        assert_true(api);
        profile_free(&p);
}

static void test_other_profiles(void **state) {
        (void)state;
        struct profile p;
        _cleanup_free_ char *obs = profile_path_for("observability");
        assert_int_equal(profile_load(obs, &p), 0);
        const struct profile_env *e = profile_env_find(&p, "OPENOBSERVE_PASSWORD");
        assert_true(e && e->required && e->secret && !e->generate);
        assert_string_equal(profile_env_find(&p, "OPENOBSERVE_EMAIL")->def, "admin@example.com");
        assert_false(p.log_shipping);
        profile_free(&p);

        _cleanup_free_ char *all = profile_path_for("all");
        assert_int_equal(profile_load(all, &p), 0);
        assert_int_equal(p.memory_min_mb, 2048); /* a 1 GB Pi 3B+ is refused */
        assert_int_equal(p.memory_recommended_mb, 4096);
        assert_non_null(profile_env_find(&p, "DB_PASSWORD"));
        assert_true(profile_env_find(&p, "OPENOBSERVE_PASSWORD")->required);
        profile_free(&p);

        _cleanup_free_ char *sa = profile_path_for("app-standalone");
        assert_int_equal(profile_load(sa, &p), 0);
        assert_false(p.log_shipping);
        assert_null(profile_env_find(&p, "OPENOBSERVE_URL"));
        assert_int_equal(p.ncompose, 1);
        profile_free(&p);
}

static void test_minimal_and_defaults(void **state) {
        (void)state;
        struct profile p;
        char *err = NULL;
        assert_int_equal(parse_capture(BASE "environment:\n  A_KEY:\n  B: {default: ''}\n", &p, &err), 0);
        assert_int_equal(p.nenv, 2);
        assert_false(p.env[0].required);
        assert_string_equal(p.env[1].def, "");
        assert_int_equal(p.env[1].line, 7);
        assert_int_equal(p.docker_log_max_file, 3);
        assert_false(p.log_shipping);
        profile_free(&p);
        free(err);
}

static void test_errors(void **state) {
        (void)state;
        expect_refused(BASE "environment:\n  DB_PASSWORD: {generate: yes}\n",
                       "t.yml:6: environment.DB_PASSWORD: 'generate' must be true or false");
        expect_refused(BASE "environment:\n  DB_PASSWORD:\n    requird: true\n",
                       "t.yml:7: environment.DB_PASSWORD: unknown key 'requird'");
        expect_refused(BASE "colour: blue\n", "t.yml:5: profile: unknown key 'colour'");
        expect_refused(BASE "tuning: {gpu_mem: 16}\n", "t.yml:5: tuning: unknown key 'gpu_mem'");
        expect_refused(BASE "ports: [{port: 70000, service: x}]\n", "t.yml:5: ports[0].port must be between 1 and 65535");
        expect_refused(BASE "ports: [{port: abc, service: x}]\n", "t.yml:5: ports[0].port must be a whole number");
        expect_refused(BASE "ports: {port: 1}\n", "t.yml:5: ports must be a list");
        expect_refused(BASE "log_shipping: \"true\"\n", "t.yml:5: log_shipping must be true or false");
        expect_refused(BASE "log_shipping: true\n", "t.yml:5: log_shipping: true needs environment.OPENOBSERVE_URL");
        expect_refused("name: t\noverlays: [common]\ncompose: [../x.yml]\nmemory: {minimum_mb: 512, recommended_mb: 1024}\n",
                       "t.yml:3: compose[0]: '../x.yml' is not a valid");
        expect_refused("name: t\noverlays: [app]\ncompose: [x.yml]\nmemory: {minimum_mb: 512, recommended_mb: 1024}\n",
                       "t.yml:2: overlays: common is missing; every role needs it");
        expect_refused("name: t\noverlays: [com/mon]\ncompose: [x.yml]\nmemory: {minimum_mb: 512, recommended_mb: 1024}\n",
                       "t.yml:2: overlays[0]");
        expect_refused("name: t\ncompose: [x.yml]\nmemory: {minimum_mb: 512, recommended_mb: 1024}\n",
                       "t.yml:1: profile: missing 'overlays'");
        expect_refused(BASE "name: u\n", "t.yml:5: duplicate key 'name'");
        expect_refused(BASE "environment:\n  S: {secret: true, default: hunter2}\n",
                       "t.yml:6: environment.S: a secret must not have a default");
        expect_refused(BASE "environment:\n  S: {length: 40}\n", "environment.S: 'length' needs 'generate: true'");
        expect_refused(BASE "environment:\n  S: {required: true, warn_unset: why}\n",
                       "t.yml:6: environment.S: 'warn_unset' is for an optional key with no default");
        expect_refused(BASE "environment:\n  S: {default: x, warn_unset: why}\n",
                       "t.yml:6: environment.S: 'warn_unset' is for an optional key with no default");
        expect_refused(BASE "environment:\n  S: {warn_unset: [why]}\n", "t.yml:6: environment.S: 'warn_unset' must be a string");
        expect_refused(BASE "environment:\n  U: {format: uri}\n", "t.yml:6: environment.U: 'format': the only format is 'url'");
        expect_refused(BASE "environment:\n  1BAD: {}\n", "t.yml:6: environment.1BAD: not a valid variable name");
        expect_refused(BASE "environment:\n  U: {fleet: '${observability.secret}'}\n",
                       "t.yml:6: environment.U: 'fleet': only ${ROLE.host} and ${ROLE.env.KEY}");
        expect_refused(BASE "memory2: 1\n", "unknown key 'memory2'");
        expect_refused("name: t\noverlays: [common]\ncompose: [x.yml]\nmemory: {minimum_mb: 2048, recommended_mb: 1024}\n",
                       "t.yml:4: memory.recommended_mb is below memory.minimum_mb");
        expect_refused(BASE "tuning: {journald_max_use: lots}\n", "t.yml:5: tuning.journald_max_use must be a size");
        expect_refused(BASE "tuning: {gpu_mem_mb: 8}\n", "t.yml:5: tuning.gpu_mem_mb must be between 16 and 512");
        expect_refused("- a\n- b\n", "t.yml:1: the top level must be a mapping");
        expect_refused("", "t.yml: empty profile");
        expect_refused("# nothing\n{}\n", "t.yml: empty profile");
        expect_refused(BASE "environment:\n  K: {generate: true, length: '20'}\n",
                       "t.yml:6: environment.K: 'length' must be a whole number");
        expect_refused(BASE "description:\n", "t.yml:5: description must be a string");
        expect_refused("name: BAD\noverlays: [common]\ncompose: [x.yml]\nmemory: {minimum_mb: 512, recommended_mb: 1024}\n",
                       "t.yml:1: name: 'BAD' must be lower-case");
}

static void test_yaml_refusals(void **state) {
        (void)state;
        expect_refused(BASE "description: &d hello\n", "t.yml:5: YAML anchors are not allowed");
        expect_refused("name: &n t\noverlays: [common]\n", "t.yml:1: YAML anchors are not allowed");
        expect_refused(BASE "environment:\n  A: {description: x}\n  B: *a\n", "t.yml:7: YAML aliases are not allowed");
        expect_refused(BASE "description: !!str x\n", "t.yml:5: YAML tags are not allowed");
        expect_refused(BASE "environment: {A: [1, 2\n", "t.yml:6: malformed YAML");
        expect_refused("name: t\n  overlays: [x]\n", "t.yml:2: malformed YAML: mapping values are not allowed");
        expect_refused(BASE "---\nname: u\n", "t.yml:5: more than one YAML document");

        /* 40 levels of flow sequences */
        struct buf b = {0};
        buf_puts(&b, BASE "description: ");
        for (int i = 0; i < 40; i++)
                buf_puts(&b, "[");
        for (int i = 0; i < 40; i++)
                buf_puts(&b, "]");
        buf_puts(&b, "\n");
        expect_refused((char *)b.data, "t.yml:5: nesting deeper than 32 levels");
        buf_free(&b);

        /* a 70 KiB scalar */
        buf_puts(&b, BASE "description: \"");
        for (int i = 0; i < 70 * 1024; i++)
                buf_puts(&b, "x");
        buf_puts(&b, "\"\n");
        expect_refused((char *)b.data, "t.yml:5: scalar of 71680 bytes is too large");
        buf_free(&b);
}

static void test_sha256(void **state) {
        (void)state;
        struct profile p;
        char *err = NULL;
        assert_int_equal(parse_capture(BASE, &p, &err), 0);
        char want[65];
        sha256_hex(BASE, strlen(BASE), want);
        assert_string_equal(p.sha256, want);
        assert_string_equal(p.path, "t.yml");
        profile_free(&p);
        free(err);
}

static void test_data_dir(void **state) {
        (void)state;
        char tmpl[PATH_MAX];
        assert_int_equal(tu_mkdtemp(tmpl, sizeof tmpl, "test_profile"), 0);
        _cleanup_free_ char *prof = xasprintf("%s/profiles", tmpl);
        assert_int_equal(mkdir(prof, 0755), 0);
        _cleanup_free_ char *f1 = xasprintf("%s/zeta.yml", prof);
        _cleanup_free_ char *f2 = xasprintf("%s/alpha.yml", prof);
        _cleanup_free_ char *f3 = xasprintf("%s/notes.txt", prof);
        FILE *f = fopen(f1, "w");
        fputs(BASE, f);
        fclose(f);
        f = fopen(f2, "w");
        fputs(BASE, f);
        fclose(f);
        f = fopen(f3, "w");
        fclose(f);

        char *old = getenv("DIMIMAGE_DATADIR") ? xstrdup(getenv("DIMIMAGE_DATADIR")) : NULL;
        setenv("DIMIMAGE_DATADIR", tmpl, 1);
        assert_string_equal(data_dir(), tmpl);
        _cleanup_free_ char *path = profile_path_for("zeta");
        _cleanup_free_ char *want = xasprintf("%s/profiles/zeta.yml", tmpl);
        assert_string_equal(path, want);
        _cleanup_free_ char *as_path = profile_path_for("./my.yml");
        assert_string_equal(as_path, "./my.yml");
        _cleanup_free_ char *as_yml = profile_path_for("custom.yml");
        assert_string_equal(as_yml, "custom.yml");

        size_t n = 0;
        char **roles = profile_list_roles(&n);
        assert_int_equal(n, 2);
        assert_string_equal(roles[0], "alpha");
        assert_string_equal(roles[1], "zeta");
        assert_null(roles[2]);
        profile_roles_free(roles);

        char *found = NULL;
        assert_int_equal(profile_find("zeta", "build", 0, NULL, EUSAGE, &found), 0);
        assert_string_equal(found, want);
        free(found);

        /* unknown role: one error listing what exists */
        fflush(stderr);
        int saved = dup(2);
        FILE *tmp = tu_tmpfile();
        dup2(fileno(tmp), 2);
        int rc = profile_find("nosuch", "fleet.yml", 7, "host h", EINVAL, &found);
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        char msg[512] = {0};
        rewind(tmp);
        size_t got = fread(msg, 1, sizeof(msg) - 1, tmp);
        (void)got;
        fclose(tmp);
        assert_int_equal(rc, -EINVAL);
        assert_null(found);
        assert_non_null(strstr(msg, "fleet.yml:7: host h: unknown role 'nosuch'; available roles: alpha, zeta"));

        unlink(f1);
        unlink(f2);
        unlink(f3);
        rmdir(prof);
        rmdir(tmpl);

        /* Without the variable, a test binary in build/ finds the source tree. */
        unsetenv("DIMIMAGE_DATADIR");
        _cleanup_free_ char *app = xasprintf("%s/profiles/app.yml", data_dir());
        assert_int_equal(access(app, R_OK), 0);
        if (old) {
                setenv("DIMIMAGE_DATADIR", old, 1);
                free(old);
        }
}

int main(void) {
        /* The shipped profiles are looked up in the source tree. */
        if (!getenv("DIMIMAGE_DATADIR") && access("profiles/app.yml", R_OK) == 0)
                setenv("DIMIMAGE_DATADIR", ".", 1);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_shipped_profiles), cmocka_unit_test(test_app_profile),
                cmocka_unit_test(test_other_profiles),   cmocka_unit_test(test_minimal_and_defaults),
                cmocka_unit_test(test_errors),           cmocka_unit_test(test_yaml_refusals),
                cmocka_unit_test(test_sha256),           cmocka_unit_test(test_data_dir),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
