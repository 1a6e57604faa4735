/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compose.h"
#include "dotenv.h"
#include "log.h"
#include "stackenv.h"
#include "test_util.h"
#include "util.h"
#include "yamltree.h"

#define APP "tests/golden/compose/docker-compose.app.yml"
#define OBS "tests/golden/compose/docker-compose.observability.yml"
#define APP_IMAGE "/opt/dimdim-health/deploy/docker-compose.app.yml"

static char *slurp(const char *path, size_t *len) {
        uint8_t *data = NULL;
        if (read_file(path, 1 << 20, &data, len) < 0)
                fail_msg("cannot read %s (run from the top directory)", path);
        return (char *)data;
}

static int scan_file(const char *path, const char *image_path, struct compose_info *ci) {
        size_t len;
        _cleanup_free_ char *text = slurp(path, &len);
        return compose_scan(path, text, len, image_path, ci);
}

static const struct compose_path *find_path(const struct compose_info *ci, const char *service,
                                            enum compose_path_kind kind) {
        for (size_t i = 0; i < ci->npaths; i++)
                if (strcmp(ci->paths[i].service, service) == 0 && ci->paths[i].kind == kind)
                        return &ci->paths[i];
        return NULL;
}

static const struct compose_var *find_var(const struct compose_info *ci, const char *name) {
        for (size_t i = 0; i < ci->nvars; i++)
                if (strcmp(ci->vars[i].name, name) == 0)
                        return &ci->vars[i];
        return NULL;
}

static void test_seed_app(void **state) {
        (void)state;
        struct compose_info ci;
        assert_int_equal(scan_file(APP, APP_IMAGE, &ci), 0);
        assert_int_equal(ci.nservices, 4);
        assert_string_equal(ci.services[0], "db");
        assert_string_equal(ci.services[1], "redis");
        assert_string_equal(ci.services[2], "api");
        assert_string_equal(ci.services[3], "worker");
        assert_true(ci.has_build);

        assert_int_equal(ci.nvars, 3);
        const struct compose_var *v = find_var(&ci, "DB_PASSWORD");
        assert_non_null(v);
        assert_int_equal(v->kind, REF_DEFAULT);
        assert_true(v->colon);
        assert_string_equal(v->arg, "changeme");
        assert_int_equal(v->line, 11);
        v = find_var(&ci, "OPENOBSERVE_URL");
        assert_string_equal(v->arg, "http://192.168.1.102:5080");
        assert_int_equal(v->line, 51);

        /* db: one bind mount (the named volume doesn't count); api and
         * worker: context, Dockerfile, ../config */
        assert_int_equal(ci.npaths, 7);
        const struct compose_path *p = find_path(&ci, "db", PATH_BIND_MOUNT);
        assert_string_equal(p->path, "./scripts/init-db.sh");
        assert_string_equal(p->resolved, "/opt/dimdim-health/deploy/scripts/init-db.sh");
        assert_int_equal(p->line, 14);
        assert_false(p->has_vars);
        p = find_path(&ci, "api", PATH_BUILD_CONTEXT);
        assert_string_equal(p->path, "..");
        assert_string_equal(p->resolved, "/opt/dimdim-health");
        assert_int_equal(p->line, 44);
        p = find_path(&ci, "api", PATH_DOCKERFILE);
        assert_string_equal(p->path, "deploy/Dockerfile.api");
        assert_string_equal(p->resolved, "/opt/dimdim-health/deploy/Dockerfile.api");
        assert_int_equal(p->line, 45);
        p = find_path(&ci, "api", PATH_BIND_MOUNT);
        assert_string_equal(p->resolved, "/opt/dimdim-health/config");
        p = find_path(&ci, "worker", PATH_DOCKERFILE);
        assert_string_equal(p->resolved, "/opt/dimdim-health/deploy/Dockerfile.worker");
        assert_null(find_path(&ci, "redis", PATH_BIND_MOUNT));
        compose_info_free(&ci);
}

static void test_seed_observability(void **state) {
        (void)state;
        struct compose_info ci;
        assert_int_equal(scan_file(OBS, "/opt/dimdim-health/deploy/docker-compose.observability.yml", &ci), 0);
        assert_int_equal(ci.nservices, 1);
        assert_string_equal(ci.services[0], "openobserve");
        assert_false(ci.has_build);
        assert_int_equal(ci.npaths, 0);
        const struct compose_var *v = find_var(&ci, "OPENOBSERVE_PASSWORD");
        assert_non_null(v);
        assert_int_equal(v->kind, REF_REQUIRED);
        assert_true(v->colon);
        assert_string_equal(v->arg, "OpenObserve password is required");
        assert_int_equal(v->line, 10);
        v = find_var(&ci, "OPENOBSERVE_EMAIL");
        assert_int_equal(v->kind, REF_DEFAULT);
        assert_string_equal(v->arg, "admin@example.com");

        /* Interpolating the required reference without the key names it. */
        v = find_var(&ci, "OPENOBSERVE_PASSWORD");
        struct env e = {0};
        char *out = NULL;
        struct tu_capture c;
        tu_capture_begin(&c);
        _cleanup_free_ char *ref = xasprintf("${%s:?%s}", v->name, v->arg);
        assert_int_equal(env_interpolate(&e, ref, &out, OBS, v->line), -EINVAL);
        unsigned errors;
        _cleanup_free_ char *err = tu_capture_end(&c, &errors);
        assert_int_equal(errors, 1);
        assert_non_null(strstr(err, OBS ":10: required variable OPENOBSERVE_PASSWORD is missing a value: "
                                        "OpenObserve password is required"));
        compose_info_free(&ci);
}

/* exists() callback: everything but the paths listed in u */
static bool exists_except(const char *resolved, void *u) {
        for (const char *const *m = u; *m; m++)
                if (strcmp(*m, resolved) == 0)
                        return false;
        return true;
}

static void expect_missing(const char *missing, const char *want) {
        struct compose_info ci;
        assert_int_equal(scan_file(APP, APP_IMAGE, &ci), 0);
        const char *const list[] = {missing, NULL};
        struct tu_capture c;
        tu_capture_begin(&c);
        int r = compose_check_paths(&ci, exists_except, (void *)list);
        unsigned errors;
        _cleanup_free_ char *err = tu_capture_end(&c, &errors);
        assert_int_equal(r, -EINVAL);
        assert_int_equal(errors, 1);
        if (!strstr(err, want))
                fail_msg("stderr [%s] lacks [%s]", err, want);
        compose_info_free(&ci);
}

static void test_check_paths(void **state) {
        (void)state;
        struct compose_info ci;
        assert_int_equal(scan_file(APP, APP_IMAGE, &ci), 0);
        const char *const none[] = {NULL};
        assert_int_equal(compose_check_paths(&ci, exists_except, (void *)none), 0);
        compose_info_free(&ci);

        expect_missing("/opt/dimdim-health/deploy/scripts/init-db.sh",
                       "dimimage: error: " APP ":14: service 'db': bind-mount source ./scripts/init-db.sh "
                       "(/opt/dimdim-health/deploy/scripts/init-db.sh) will not exist in the image");
        expect_missing("/opt/dimdim-health/config",
                       APP ":53: service 'api': bind-mount source ../config (/opt/dimdim-health/config) will not "
                       "exist in the image");
        expect_missing("/opt/dimdim-health/deploy/Dockerfile.worker",
                       APP ":74: service 'worker': Dockerfile deploy/Dockerfile.worker "
                       "(/opt/dimdim-health/deploy/Dockerfile.worker) will not exist in the image");
        expect_missing("/opt/dimdim-health", APP ":44: service 'api': build context .. (/opt/dimdim-health)");
}

static void test_path_forms(void **state) {
        (void)state;
        const char *t = "services:\n"
                        "  web:\n"                                      /* 2 */
                        "    build: ../src\n"                           /* 3 */
                        "    env_file:\n"                               /* 4 */
                        "      - ./web.env\n"                           /* 5 */
                        "      - path: ./optional.env\n"                /* 6 */
                        "        required: false\n"                     /* 7 */
                        "      - path: ./needed.env\n"                  /* 8 */
                        "    volumes:\n"                                /* 9 */
                        "      - type: bind\n"                          /* 10 */
                        "        source: ${DATA:-./data}\n"             /* 11 */
                        "        target: /data\n"                       /* 12 */
                        "      - ~/x:/y:ro\n"                           /* 13 */
                        "      - named:/z\n"                            /* 14 */
                        "      - /abs/./p/../q:/w\n"                    /* 15 */
                        "      - ${VOL}:/v\n"                           /* 16 */
                        "      - /anonymous\n"                          /* 17 */
                        "      - type: volume\n"                        /* 18 */
                        "        source: vol\n"                         /* 19 */
                        "  other:\n"                                    /* 20 */
                        "    build:\n"                                  /* 21 */
                        "      context: https://github.com/x/y.git\n"   /* 22 */
                        "  third:\n"                                    /* 23 */
                        "    env_file: ../../../../etc/x.env\n"         /* 24 */
                        "    build:\n"                                  /* 25 */
                        "      dockerfile_inline: FROM scratch\n";      /* 26 */
        struct compose_info ci;
        assert_int_equal(compose_scan("x.yml", t, strlen(t), "/srv/app/x.yml", &ci), 0);
        assert_int_equal(ci.nservices, 3);
        static const struct {
                const char *service;
                enum compose_path_kind kind;
                const char *path, *resolved;
                unsigned line;
                bool has_vars;
        } want[] = {
                {"web", PATH_BUILD_CONTEXT, "../src", "/srv/src", 3, false},
                {"web", PATH_DOCKERFILE, "Dockerfile", "/srv/src/Dockerfile", 3, false},
                {"web", PATH_BIND_MOUNT, "${DATA:-./data}", NULL, 11, true},
                {"web", PATH_BIND_MOUNT, "~/x", "/root/x", 13, false},
                {"web", PATH_BIND_MOUNT, "/abs/./p/../q", "/abs/q", 15, false},
                {"web", PATH_BIND_MOUNT, "${VOL}", NULL, 16, true},
                {"web", PATH_ENV_FILE, "./web.env", "/srv/app/web.env", 5, false},
                {"web", PATH_ENV_FILE, "./needed.env", "/srv/app/needed.env", 8, false},
                {"third", PATH_BUILD_CONTEXT, ".", "/srv/app", 25, false},
                {"third", PATH_ENV_FILE, "../../../../etc/x.env", "/etc/x.env", 24, false},
        };
        assert_int_equal(ci.npaths, ARRAY_SIZE(want));
        for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
                const struct compose_path *p = NULL;
                for (size_t j = 0; j < ci.npaths; j++)
                        if (strcmp(ci.paths[j].path, want[i].path) == 0 &&
                            strcmp(ci.paths[j].service, want[i].service) == 0)
                                p = &ci.paths[j];
                if (!p)
                        fail_msg("no path %s for %s", want[i].path, want[i].service);
                assert_int_equal(p->kind, want[i].kind);
                assert_int_equal(p->line, want[i].line);
                assert_int_equal(p->has_vars, want[i].has_vars);
                if (want[i].resolved)
                        assert_string_equal(p->resolved, want[i].resolved);
        }
        /* unresolved paths are not checked... */
        const char *const none[] = {NULL};
        assert_int_equal(compose_check_paths(&ci, exists_except, (void *)none), 0);

        /* ...until the environment is known: VOL names a volume, DATA is unset */
        struct env e = {0};
        env_set(&e, "VOL", "pgdata", ORIGIN_FILE, "a.env", 1);
        assert_int_equal(compose_resolve_paths(&ci, &e), 0);
        assert_int_equal(ci.npaths, ARRAY_SIZE(want) - 1);
        const struct compose_path *p = find_path(&ci, "web", PATH_BIND_MOUNT);
        assert_string_equal(p->resolved, "/srv/app/data");
        assert_false(p->has_vars);
        for (size_t i = 0; i < ci.npaths; i++)
                assert_null(strstr(ci.paths[i].path, "VOL"));
        const char *const missing[] = {"/srv/app/data", NULL};
        struct tu_capture c;
        tu_capture_begin(&c);
        assert_int_equal(compose_check_paths(&ci, exists_except, (void *)missing), -EINVAL);
        unsigned errors;
        _cleanup_free_ char *err = tu_capture_end(&c, &errors);
        assert_int_equal(errors, 1);
        assert_non_null(strstr(err, "x.yml:11: service 'web': bind-mount source ${DATA:-./data} (/srv/app/data)"));
        env_free(&e);
        compose_info_free(&ci);
}

/* Regression (fuzz_compose): a path dropped as a named volume, then a
 * failing one, left compose_info with a stale copy: double free.  The
 * fuzzer's input also split "${DIR:?msg}/x:/w" at the ':' inside ${...}. */
static void test_resolve_error_after_drop(void **state) {
        (void)state;
        const char *t = "services:\n"
                        "  s:\n"
                        "    volumes:\n"
                        "      - ${VOL}:/v\n"
                        "      - ${DIR:?set DIR}/x:/w\n"
                        "      - ./after:/a\n";
        struct compose_info ci;
        assert_int_equal(compose_scan("r.yml", t, strlen(t), "/x/r.yml", &ci), 0);
        assert_int_equal(ci.npaths, 3);
        assert_string_equal(ci.paths[1].path, "${DIR:?set DIR}/x");
        struct env e = {0};
        env_set(&e, "VOL", "named", ORIGIN_FILE, "a.env", 1);
        struct tu_capture c;
        tu_capture_begin(&c);
        assert_int_equal(compose_resolve_paths(&ci, &e), -EINVAL);
        unsigned errors;
        _cleanup_free_ char *err = tu_capture_end(&c, &errors);
        assert_int_equal(errors, 1);
        if (!strstr(err, "r.yml:5: required variable DIR is missing a value: set DIR"))
                fail_msg("[%s]", err);
        assert_int_equal(ci.npaths, 2);
        assert_string_equal(ci.paths[1].path, "./after");
        env_free(&e);
        compose_info_free(&ci);
}

static void test_variables(void **state) {
        (void)state;
        const char *t = "services:\n"
                        "  s:\n"
                        "    command: \"${A:-{x}} ${B} $C ${D:?} $$NOTVAR ${E-} ${F:+alt} ${G:-${H}}\"\n"
                        "    ${KEY_NOT_INTERPOLATED}: x\n"
                        "    labels: [\"$$\", \"$\", \"cost 5$\"]\n";
        struct compose_info ci;
        assert_int_equal(compose_scan("v.yml", t, strlen(t), "/x/v.yml", &ci), 0);
        static const char *const names[] = {"A", "B", "C", "D", "E", "F", "G", "H"};
        static const enum compose_ref_kind kinds[] = {REF_DEFAULT, REF_PLAIN,   REF_PLAIN,   REF_REQUIRED,
                                                      REF_DEFAULT, REF_ALT,     REF_DEFAULT, REF_PLAIN};
        assert_int_equal(ci.nvars, ARRAY_SIZE(names));
        for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
                assert_string_equal(ci.vars[i].name, names[i]);
                assert_int_equal(ci.vars[i].kind, kinds[i]);
                assert_int_equal(ci.vars[i].line, 3);
        }
        assert_string_equal(ci.vars[0].arg, "{x}");
        assert_false(ci.vars[4].colon);
        assert_string_equal(ci.vars[6].arg, "${H}");
        compose_info_free(&ci);
}

struct bad_case {
        const char *text;
        const char *want;
};

static void expect_scan_error(const char *text, size_t len, const char *want) {
        struct compose_info ci;
        struct tu_capture c;
        tu_capture_begin(&c);
        int r = compose_scan("bad.yml", text, len, APP_IMAGE, &ci);
        unsigned errors;
        _cleanup_free_ char *err = tu_capture_end(&c, &errors);
        if (r >= 0 || !strstr(err, want))
                fail_msg("r=%d stderr [%s], wanted [%s]", r, err, want);
        assert_int_equal(errors, 1);
        assert_int_equal(strchr(err, '\n') - err + 1, (long)strlen(err)); /* one line */
}

/* What dimdim-status expects a container of (stack.conf's DIMDIM_SERVICES). */
static void test_started_services(void **state) {
        (void)state;
        struct compose_info ci[3];
        assert_int_equal(scan_file(APP, APP_IMAGE, &ci[0]), 0);
        /* an override file names the same services again, and adds one
         * that only a profile starts */
        static const char over[] = "services:\n"
                                   "  api: {logging: {driver: json-file}}\n"
                                   "  worker: {}\n"
                                   "  adminer: {image: adminer, profiles: [debug]}\n"
                                   "  spare: {image: x, scale: 0}\n"
                                   "  idle: {image: x, deploy: {replicas: 0}}\n"
                                   "  two: {image: x, deploy: {replicas: 2}, profiles: []}\n";
        assert_int_equal(compose_scan("over.yml", over, strlen(over), APP_IMAGE, &ci[1]), 0);
        _cleanup_free_ char *one = compose_started_services(ci, 1);
        assert_string_equal(one, "api db redis worker");
        _cleanup_free_ char *two = compose_started_services(ci, 2);
        assert_string_equal(two, "api db redis two worker");
        /* a profile given to a service in a later file holds for it all */
        static const char later[] = "services:\n  redis:\n    profiles: [cache]\n";
        assert_int_equal(compose_scan("later.yml", later, strlen(later), APP_IMAGE, &ci[2]), 0);
        _cleanup_free_ char *three = compose_started_services(ci, 3);
        assert_string_equal(three, "api db two worker");
        _cleanup_free_ char *none = compose_started_services(ci, 0);
        assert_string_equal(none, "");
        for (size_t i = 0; i < ARRAY_SIZE(ci); i++)
                compose_info_free(&ci[i]);
}

static void test_hostile(void **state) {
        (void)state;
        static const struct bad_case cases[] = {
                {"x: &a [1, 2]\ny: *a\n", "bad.yml:1: YAML anchors are not allowed"},
                {"x-common: &common\n  image: x\nservices:\n  s:\n    <<: *common\n", "bad.yml:1: YAML anchors"},
                {"a: &a [\"lol\",\"lol\"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n",
                 "bad.yml:1: YAML anchors"},
                {"x: *undefined\n", "bad.yml:1: YAML aliases are not allowed"},
                {"services:\n  s:\n    volumes: !reset []\n", "bad.yml:3: YAML tags are not allowed"},
                {"services:\n  a:\n    image: \"x\n  b: [unclosed\n", "bad.yml:"},
                {"services:\n\tdb: x\n", "bad.yml:2: malformed YAML: found character that cannot start any token"},
                {"---\na: 1\n---\nb: 2\n", "bad.yml:3: more than one YAML document"},
                {"services:\n  s:\n    image: a\n    image: b\n", "bad.yml:4: duplicate key 'image'"},
                {"", "bad.yml: empty compose file"},
                {"# only a comment\n", "bad.yml: empty compose file"},
                {"{}\n", "bad.yml: empty compose file"},
                {"- a\n- b\n", "bad.yml:1: the top level must be a mapping"},
                {"services: [a, b]\n", "bad.yml:1: services: must be a mapping"},
                {"services:\n  s:\n    image: \"${\"\n", "bad.yml:3: invalid ${...}"},
                {"services:\n  ? [a]\n  : x\n", "bad.yml:2: mapping keys must be plain strings"},
                {"services:\n  \"\": {image: x}\n", "bad.yml:2: a service name must be a string"},
                {"services:\n  ok: {image: x}\n  \"my api\": {image: x}\n",
                 "bad.yml:3: service name 'my api': only letters, digits, '.', '_' and '-' are allowed"},
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
                expect_scan_error(cases[i].text, strlen(cases[i].text), cases[i].want);

        /* depth: YAML_MAX_DEPTH collections (the top-level map included)
         * pass, one more fails */
        struct buf b = {0};
        for (unsigned i = 0; i < YAML_MAX_DEPTH - 1; i++)
                buf_puts(&b, "[");
        buf_puts(&b, "x");
        for (unsigned i = 0; i < YAML_MAX_DEPTH - 1; i++)
                buf_puts(&b, "]");
        _cleanup_free_ char *ok = xasprintf("a: %s\n", (const char *)b.data);
        _cleanup_free_ char *deep = xasprintf("a: [%s]\n", (const char *)b.data);
        struct compose_info ci;
        assert_int_equal(compose_scan("ok.yml", ok, strlen(ok), APP_IMAGE, &ci), 0);
        compose_info_free(&ci);
        expect_scan_error(deep, strlen(deep), "bad.yml:1: nesting deeper than 32 levels");
        buf_free(&b);

        /* nested brackets up to the file limit: refused early, no recursion */
        size_t n = YAML_MAX_FILE - 3;
        char *huge = xmalloc(n + 4);
        memcpy(huge, "a: ", 3);
        memset(huge + 3, '[', n);
        expect_scan_error(huge, n + 3, "nesting deeper than 32 levels");
        free(huge);

        /* a scalar over YAML_MAX_SCALAR; just at the limit is fine */
        n = YAML_MAX_SCALAR + 1;
        char *big = xmalloc(n + 8);
        memcpy(big, "a: ", 3);
        memset(big + 3, 'x', n);
        memcpy(big + 3 + n, "\n", 1);
        expect_scan_error(big, n + 4, "bad.yml:1: scalar of 65537 bytes is too large");
        memcpy(big + 3 + YAML_MAX_SCALAR, "\n", 1);
        assert_int_equal(compose_scan("ok.yml", big, 4 + YAML_MAX_SCALAR, APP_IMAGE, &ci), 0);
        compose_info_free(&ci);
        free(big);

        /* a file over YAML_MAX_FILE, even of small values */
        n = YAML_MAX_FILE + 1;
        char *long_file = xmalloc(n);
        memset(long_file, '#', n);
        long_file[0] = 'a';
        memcpy(long_file + 1, ": 1\n", 4);
        expect_scan_error(long_file, n, "bad.yml: larger than 1 MiB");
        free(long_file);

        /* NUL bytes: refused with the line they are on */
        expect_scan_error("a: b\0c\n", 7, "bad.yml:1: contains a NUL byte");
        expect_scan_error("a: b\nc: \"\\0\"\n", 13, "bad.yml:2: value contains a NUL byte");
}

/* The required check of stackenv_resolve against compose text, as compose-go
 * decides it.  want NULL: resolves; else one error line containing want. */
static void expect_required(const char *yml, const char *const *sets, size_t nsets, const char *want) {
        struct compose_info ci;
        assert_int_equal(compose_scan("c.yml", yml, strlen(yml), APP_IMAGE, &ci), 0);
        struct profile p = {.path = "p.yml", .name = "t"};
        struct stackenv_input in = {
                .profile = &p, .sets = (char *const *)sets, .nsets = nsets, .compose = &ci, .ncompose = 1,
                .allow_weak = true};
        struct env env = {0}, gen = {0};
        struct tu_capture c;
        tu_capture_begin(&c);
        int r = stackenv_resolve(&in, &env, &gen);
        unsigned errors;
        _cleanup_free_ char *out = tu_capture_end(&c, &errors);
        if (want ? r >= 0 || errors != 1 || !strstr(out, want) : r < 0)
                fail_msg("sets starting %s: r=%d, stderr: %s (wanted %s)", nsets ? sets[0] : "-", r, out,
                         want ? want : "success");
        env_free(&env);
        env_free(&gen);
        compose_info_free(&ci);
}

/* ${V?m} needs V set, ${V:?m} set and not empty. */
static void test_required_colon(void **state) {
        (void)state;
        static const char yml[] = "services:\n"
                                  "  s:\n"
                                  "    image: x\n"
                                  "    environment:\n"
                                  "      A: ${NOCOLON?needed}\n"
                                  "      B: ${COLON:?needed}\n";
        const char *ok[] = {"COLON=1", "NOCOLON="};
        expect_required(yml, ok, ARRAY_SIZE(ok), NULL);
        const char *unset[] = {"COLON=1"};
        expect_required(yml, unset, ARRAY_SIZE(unset), "c.yml:5: NOCOLON is required");
        const char *empty[] = {"COLON=", "NOCOLON=1"};
        expect_required(yml, empty, ARRAY_SIZE(empty), "c.yml:6: COLON is required");
}

/* A reference nested in a default or an alternative is evaluated, so
 * required, only when that operand is used. */
static void test_required_nested(void **state) {
        (void)state;
        static const char yml[] = "services:\n"
                                  "  s:\n"
                                  "    image: x\n"
                                  "    environment:\n"
                                  "      C: ${OPENOBSERVE_URL:-${FALLBACK_URL:?needed}}\n"
                                  "      D: ${USE_ALT:+${ALT_REQ?needed}}\n"
                                  "      E: ${X:-${Y-${Z:?needed}}}\n";
        const char *url[] = {"OPENOBSERVE_URL=http://o:5080", "Y=1"};
        expect_required(yml, url, ARRAY_SIZE(url), NULL);
        const char *nourl[] = {"OPENOBSERVE_URL=", "Y=1"};
        expect_required(yml, nourl, ARRAY_SIZE(nourl), "c.yml:5: FALLBACK_URL is required");
        const char *fallback[] = {"FALLBACK_URL=f", "Y=1"};
        expect_required(yml, fallback, ARRAY_SIZE(fallback), NULL);
        /* an alternative is used when its variable is set */
        const char *alt[] = {"OPENOBSERVE_URL=u", "USE_ALT=1", "Y=1"};
        expect_required(yml, alt, ARRAY_SIZE(alt), "c.yml:6: ALT_REQ is required");
        const char *alt_ok[] = {"OPENOBSERVE_URL=u", "USE_ALT=1", "ALT_REQ=", "Y=1"};
        expect_required(yml, alt_ok, ARRAY_SIZE(alt_ok), NULL);
        const char *alt_empty[] = {"OPENOBSERVE_URL=u", "USE_ALT=", "Y=1"};
        expect_required(yml, alt_empty, ARRAY_SIZE(alt_empty), NULL);
        /* two levels down: Z only when X is unset or empty and Y unset */
        const char *y_empty[] = {"OPENOBSERVE_URL=u", "Y="};
        expect_required(yml, y_empty, ARRAY_SIZE(y_empty), NULL);
        const char *no_y[] = {"OPENOBSERVE_URL=u", "X="};
        expect_required(yml, no_y, ARRAY_SIZE(no_y), "c.yml:7: Z is required");
        const char *x_set[] = {"OPENOBSERVE_URL=u", "X=1"};
        expect_required(yml, x_set, ARRAY_SIZE(x_set), NULL);
}

static void test_kind_names(void **state) {
        (void)state;
        assert_string_equal(compose_path_kind_name(PATH_BUILD_CONTEXT), "build context");
        assert_string_equal(compose_path_kind_name(PATH_DOCKERFILE), "Dockerfile");
        assert_string_equal(compose_path_kind_name(PATH_BIND_MOUNT), "bind-mount source");
        assert_string_equal(compose_path_kind_name(PATH_ENV_FILE), "env_file");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_seed_app),     cmocka_unit_test(test_seed_observability),
                cmocka_unit_test(test_check_paths),  cmocka_unit_test(test_path_forms),
                cmocka_unit_test(test_resolve_error_after_drop),
                cmocka_unit_test(test_variables),    cmocka_unit_test(test_hostile),
                cmocka_unit_test(test_kind_names),   cmocka_unit_test(test_required_colon),
                cmocka_unit_test(test_started_services),
                cmocka_unit_test(test_required_nested),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
