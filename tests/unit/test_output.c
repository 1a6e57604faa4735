/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bmap.h"
#include "hash.h"
#include "imager.h"
#include "log.h"
#include "output.h"
#include "test_util.h"
#include "util.h"

#define GOLDEN_BMAP "tests/golden/bmap-small.xml"
#define IMG_SIZE TU_GOLDEN_IMG_SIZE

static char dir[PATH_MAX];

static int setup(void **state) {
        assert_int_equal(tu_mkdtemp(dir, sizeof dir, "test_output"), 0);
        return 0;
}

static int teardown(void **state) {
        DIR *d = opendir(dir);
        struct dirent *e;
        while (d && (e = readdir(d)))
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                        char *p = xasprintf("%s/%s", dir, e->d_name);
                        unlink(p);
                        free(p);
                }
        if (d)
                closedir(d);
        rmdir(dir);
        return 0;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The directory's entries, sorted, joined with spaces. */
static char *listing(void) {
        char *names[64];
        size_t n = 0;
        DIR *d = opendir(dir);
        struct dirent *e;
        while ((e = readdir(d)))
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && n < 64)
                        names[n++] = xstrdup(e->d_name);
        closedir(d);
        qsort(names, n, sizeof(char *), cmp_str);
        struct buf b = { 0 };
        for (size_t i = 0; i < n; i++) {
                buf_printf(&b, "%s%s", i ? " " : "", names[i]);
                free(names[i]);
        }
        buf_puts(&b, "");
        return (char *)buf_steal(&b, NULL);
}

static char *p(const char *name) {
        return xasprintf("%s/%s", dir, name);
}

static uint8_t *golden_image_bytes(void) {
        uint8_t *b = xcalloc(1, IMG_SIZE);
        for (uint64_t off = 0; off < IMG_SIZE; off++)
                if (off < 4096 || (off >= 5 * 4096 && off < 8 * 4096) || (off >= 1049000 && off < 1049100))
                        b[off] = (uint8_t)(off * 131 + 7);
        return b;
}

static int run(char *const argv[], const char *out_path) {
        return tu_run((const char *const *)argv, out_path, TU_STDERR_KEEP);
}

static void assert_file_equals(const char *path, const void *data, size_t len) {
        uint8_t *got;
        size_t glen;
        assert_int_equal(read_file(path, 64 << 20, &got, &glen), 0);
        assert_int_equal(glen, len);
        assert_memory_equal(got, data, len);
        free(got);
}

/* Every range of the bmap at path hashes to what img holds there. */
static void assert_bmap_ranges(const char *path, const uint8_t *img, size_t nranges) {
        struct bmap b;
        assert_int_equal(bmap_load(path, &b), 0);
        if (nranges)
                assert_int_equal(b.n, nranges);
        char hex[65];
        for (size_t i = 0; i < b.n; i++) {
                uint64_t start, end;
                bmap_range_bytes(&b, &b.v[i], &start, &end);
                sha256_hex(img + start, (size_t)(end - start), hex);
                assert_string_equal(b.v[i].sha256, hex);
        }
        bmap_free(&b);
}

/* OUT.sha256 at path: "sha256 of img  name". */
static void assert_sums_file(const char *path, const uint8_t *img, size_t len, const char *name) {
        char hex[65];
        sha256_hex(img, len, hex);
        char *line = xasprintf("%s  %s\n", hex, name);
        assert_file_equals(path, line, strlen(line));
        free(line);
}

static int commit_golden(const char *name, int level) {
        char *out = p(name);
        struct output o = { .compression_level = level };
        int r = output_begin(&o, out, NULL, true);
        if (r >= 0) {
                tu_golden_image(o.fd);
                r = output_commit(&o);
        }
        output_abort(&o);
        free(out);
        return r;
}

static void test_raw_commit(void **state) {
        assert_int_equal(commit_golden("a.img", -1), 0);
        char *l = listing();
        assert_string_equal(l, "a.img a.img.bmap a.img.sha256");
        free(l);
        char *img = p("a.img"), *bm = p("a.img.bmap"), *sums = p("a.img.sha256");
        uint8_t *want = golden_image_bytes();
        assert_file_equals(img, want, IMG_SIZE);
        uint8_t *golden;
        size_t glen;
        assert_int_equal(read_file(GOLDEN_BMAP, 1 << 20, &golden, &glen), 0);
        assert_file_equals(bm, golden, glen);
        assert_sums_file(sums, want, IMG_SIZE, "a.img");
        struct stat st;
        assert_int_equal(stat(img, &st), 0);
        /* the image holds secrets: 0600 whatever the umask */
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(stat(bm, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0644);
        assert_true((uint64_t)st.st_blocks * 512 < IMG_SIZE); /* still sparse */
        free(golden);
        free(want);
        free(img);
        free(bm);
        free(sums);
}

static void check_compressed(const char *name, const char *tool) {
        assert_int_equal(commit_golden(name, -1), 0);
        char *l = listing();
        char *want_list = xasprintf("%s %s.bmap %s.sha256", name, name, name);
        assert_string_equal(l, want_list);
        char *out = p(name), *raw = p("decompressed");
        char *t_argv[] = { (char *)tool, "-qt", out, NULL };
        assert_int_equal(run(t_argv, NULL), 0);
        char *d_argv[] = { (char *)tool, "-dc", out, NULL };
        assert_int_equal(run(d_argv, raw), 0);
        uint8_t *want = golden_image_bytes();
        assert_file_equals(raw, want, IMG_SIZE);
        /* the bmap describes the raw image, whatever the container */
        char *bm = xasprintf("%s.bmap", out);
        uint8_t *golden;
        size_t glen;
        assert_int_equal(read_file(GOLDEN_BMAP, 1 << 20, &golden, &glen), 0);
        assert_file_equals(bm, golden, glen);
        char *sums = xasprintf("%s.sha256", out);
        char *c_argv[] = { "sh", "-c", "cd \"$1\" && sha256sum -c --status \"$2\"", "sh", dir, (char *)path_basename(sums), NULL };
        assert_int_equal(run(c_argv, NULL), 0);
        unlink(raw);
        free(sums);
        free(golden);
        free(bm);
        free(want);
        free(out);
        free(raw);
        free(l);
        free(want_list);
}

static void test_xz(void **state) { check_compressed("a.img.xz", "xz"); }
static void test_zstd(void **state) { check_compressed("a.img.zst", "zstd"); }
static void test_gzip(void **state) { check_compressed("a.img.gz", "gzip"); }

static void test_reproducible(void **state) {
        static const char *const names[] = { "r.img", "r.img.xz", "r.img.zst", "r.img.gz" };
        static const char *const sfx[] = { "", ".bmap", ".sha256" };
        for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
                uint8_t *first[3];
                size_t len[3];
                assert_int_equal(commit_golden(names[i], -1), 0);
                for (int k = 0; k < 3; k++) {
                        char *f = xasprintf("%s/%s%s", dir, names[i], sfx[k]);
                        assert_int_equal(read_file(f, 64 << 20, &first[k], &len[k]), 0);
                        free(f);
                }
                assert_int_equal(commit_golden(names[i], -1), 0);
                for (int k = 0; k < 3; k++) {
                        char *f = xasprintf("%s/%s%s", dir, names[i], sfx[k]);
                        assert_file_equals(f, first[k], len[k]);
                        unlink(f);
                        free(f);
                        free(first[k]);
                }
        }
}

static void test_gzip_header(void **state) {
        assert_int_equal(commit_golden("h.img.gz", 9), 0);
        char *f = p("h.img.gz");
        uint8_t *d;
        size_t n;
        assert_int_equal(read_file(f, 64 << 20, &d, &n), 0);
        assert_true(n > 10);
        assert_int_equal(d[0], 0x1f);
        assert_int_equal(d[1], 0x8b);
        assert_int_equal(d[3] & 0x08, 0); /* no FNAME */
        assert_int_equal(get_le32(d + 4), 0); /* MTIME */
        free(d);
        free(f);
}

static void test_abort_leaves_nothing(void **state) {
        char *out = p("x.img.zst");
        struct output o = { .compression_level = -1 };
        assert_int_equal(output_begin(&o, out, NULL, false), 0);
        tu_golden_image(o.fd);
        char *l = listing();
        assert_true(str_has_prefix(l, ".x.img.zst.") && str_has_suffix(l, ".tmp"));
        free(l);
        output_abort(&o);
        output_abort(&o);
        l = listing();
        assert_string_equal(l, "");
        free(l);
        free(out);
}

static void test_refusals(void **state) {
        char *base = p("base.img"), *out = p("o.img"), *link = p("link.img");
        int fd = open(base, O_CREAT | O_WRONLY, 0644);
        close(fd);
        struct output o = { .compression_level = -1 };
        unsigned errors = log_error_count();
        assert_int_equal(output_begin(&o, base, base, true), -EINVAL);
        assert_int_equal(symlink(base, link), 0);
        assert_int_equal(output_begin(&o, link, base, true), -EINVAL);
        /* base.img.bmap would be written beside a base named base.img */
        char *bm = xasprintf("%s.bmap", out);
        rename(base, bm);
        assert_int_equal(output_begin(&o, out, bm, true), -EINVAL);
        rename(bm, base);
        /* relative spelling of the same path */
        char *cwd = getcwd(NULL, 0);
        assert_int_equal(chdir(dir), 0);
        assert_int_equal(output_begin(&o, "./base.img", base, true), -EINVAL);
        assert_int_equal(chdir(cwd), 0);
        free(cwd);
        /* existing OUT without force: untouched */
        assert_int_equal(output_begin(&o, base, NULL, false), -EEXIST);
        assert_int_equal(output_begin(&o, out, NULL, false), 0);
        output_abort(&o);
        assert_int_equal(output_begin(&o, "/nonexistent-dir/o.img", NULL, false), -EACCES);
        assert_int_equal(exit_code_for(-EACCES), 73); /* EX_CANTCREAT */
        assert_int_equal(output_begin(&o, out, NULL, false), 0);
        output_abort(&o);
        char *odd = p("o.iso");
        assert_int_equal(output_begin(&o, odd, NULL, false), -EUSAGE); /* -o's spelling: a usage error */
        assert_int_equal(output_begin(&o, dir, NULL, true), -EUSAGE); /* a directory: a usage error */
        assert_int_equal(log_error_count() - errors, 8);
        if (geteuid() != 0) {
                char *ro = p("ro");
                assert_int_equal(mkdir(ro, 0555), 0);
                char *o2 = xasprintf("%s/o.img", ro);
                assert_int_equal(output_begin(&o, o2, NULL, false), -EACCES);
                rmdir(ro);
                free(o2);
                free(ro);
        }
        char *l = listing();
        assert_string_equal(l, "base.img link.img");
        free(l);
        free(odd);
        free(bm);
        free(base);
        free(out);
        free(link);
}

static void test_force_replaces_and_drops_stale_bmap(void **state) {
        assert_int_equal(commit_golden("f.img", -1), 0);
        char *out = p("f.img");
        struct output o = { .compression_level = -1, .no_bmap = true };
        assert_int_equal(output_begin(&o, out, NULL, true), 0);
        assert_int_equal(ftruncate(o.fd, 8192), 0);
        assert_int_equal(output_commit(&o), 0);
        output_abort(&o);
        char *l = listing();
        assert_string_equal(l, "f.img f.img.sha256");
        free(l);
        struct stat st;
        assert_int_equal(stat(out, &st), 0);
        assert_int_equal(st.st_size, 8192);
        free(out);
}

static int describe_json(void *json, struct output *o) {
        return imager_add_to_output(json, o, "dimdim app", "test \"image\"", NULL);
}

static void test_imager_json(void **state) {
        char *out = p("i.img.xz"), *json = p("os_list.json");
        struct output o = { .compression_level = -1 };
        assert_int_equal(output_begin(&o, out, NULL, false), 0);
        tu_golden_image(o.fd);
        o.describe = describe_json;
        o.describe_arg = json;
        assert_int_equal(output_commit(&o), 0);
        uint8_t *d;
        size_t n;
        assert_int_equal(read_file(json, 1 << 20, &d, &n), 0);
        const char *t = (const char *)d;
        char *want = xasprintf("\"extract_sha256\": \"%s\"", o.raw_sha256);
        assert_non_null(strstr(t, want));
        free(want);
        want = xasprintf("\"image_download_sha256\": \"%s\"", o.sha256);
        assert_non_null(strstr(t, want));
        free(want);
        /* The scratch directory resolved (TMPDIR may be a symlink) and
         * percent-encoded (it may have a space, "%20"), as RFC 3986 wants. */
        char *rdir = realpath(dir, NULL);
        assert_non_null(rdir);
        struct buf url = { 0 };
        buf_puts(&url, "\"url\": \"file://");
        for (const char *c = rdir; *c; c++)
                if (strchr("-._~/", *c) || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                    (*c >= '0' && *c <= '9'))
                        buf_append(&url, c, 1);
                else
                        buf_printf(&url, "%%%02X", (unsigned)(unsigned char)*c);
        buf_puts(&url, "/i.img.xz\"");
        buf_append(&url, "", 1);
        assert_non_null(strstr(t, (const char *)url.data));
        buf_free(&url);
        free(rdir);
        assert_non_null(strstr(t, "\"extract_size\": 1049576"));
        assert_non_null(strstr(t, "\"release_date\": \"2023-11-14\""));
        assert_non_null(strstr(t, "\"init_format\": \"none\""));
        assert_non_null(strstr(t, "\"pi5-64bit\""));
        assert_non_null(strstr(t, "i.img.xz.bmap\""));
        char *v_argv[] = { "python3", "-m", "json.tool", json, NULL };
        assert_int_equal(run(v_argv, "/dev/null"), 0);
        free(d);
        output_abort(&o);
        free(out);
        free(json);
}

/* An image of several 4 MiB read chunks: ranges that cross chunk
 * boundaries, a long hole, data in the last partial block.  Every range's
 * sha256 in the bmap and the whole-file sha256 must match the bytes, for a
 * raw and a compressed output alike; no_raw_sha256 leaves the raw hash out
 * of a compressed output only. */
#define BIG_SIZE ((13u << 20) + 123)
static void fill_big(int fd) {
        assert_int_equal(ftruncate(fd, BIG_SIZE), 0);
        tu_write_pattern(fd, 0, 8192);
        tu_write_pattern(fd, (3u << 20) + 4096, (6u << 20) + 12288); /* crosses 4 and 8 MiB */
        tu_write_pattern(fd, 12u << 20, 4096);
        tu_write_pattern(fd, BIG_SIZE - 100, 100);
}

static void check_big(const char *name, bool no_raw) {
        char *out = p(name), *bm = xasprintf("%s.bmap", out);
        struct output o = { .compression_level = 1, .no_raw_sha256 = no_raw };
        assert_int_equal(output_begin(&o, out, NULL, true), 0);
        fill_big(o.fd);
        _cleanup_free_ uint8_t *img = xcalloc(1, BIG_SIZE);
        assert_int_equal(pread_full(o.fd, img, BIG_SIZE, 0), 0);
        assert_int_equal(output_commit(&o), 0);
        char hex[65];
        sha256_hex(img, BIG_SIZE, hex);
        if (o.format == OUT_RAW || !no_raw)
                assert_string_equal(o.raw_sha256, hex);
        else
                assert_string_equal(o.raw_sha256, "");
        assert_bmap_ranges(bm, img, 4);
        output_abort(&o);
        unlink(bm);
        free(bm);
        free(out);
}

/* output_patch: bytes filled in by the commit's reader, in two spans, one
 * across a read chunk's boundary.  fill is called once; the file, its
 * sha256 and its bmap all say the filled bytes.  A failing fill fails the
 * commit unlogged and leaves nothing; a span in a hole is an error. */
struct filler {
        int calls;
        int r;
};

static int fill_letters(void *arg, uint8_t data[OUTPUT_PATCH_BYTES]) {
        struct filler *f = arg;
        f->calls++;
        for (int i = 0; i < OUTPUT_PATCH_BYTES; i++)
                data[i] = (uint8_t)('A' + i % 26);
        return f->r;
}

static int commit_patched(const char *name, struct filler *f, uint64_t second, uint8_t *img) {
        char *out = p(name);
        struct output o = {.compression_level = 1};
        assert_int_equal(output_begin(&o, out, NULL, true), 0);
        fill_big(o.fd);
        o.patch = (struct output_patch){.nspan = 2, .fill = fill_letters, .arg = f};
        o.patch.span[0].off = (4u << 20) - 20; /* inside a data extent, across a 4 MiB chunk */
        o.patch.span[0].len = 40;
        o.patch.span[1].off = second;
        o.patch.span[1].len = 24;
        o.patch.span[1].from = 40;
        assert_int_equal(pread_full(o.fd, img, BIG_SIZE, 0), 0);
        int r = output_commit(&o);
        output_abort(&o);
        free(out);
        return r;
}

static void test_patch(void **state) {
        _cleanup_free_ uint8_t *img = xcalloc(1, BIG_SIZE), *got = NULL;
        struct filler f = {0};
        assert_int_equal(commit_patched("patched.img", &f, 12u << 20, img), 0);
        assert_int_equal(f.calls, 1);
        uint8_t letters[OUTPUT_PATCH_BYTES];
        fill_letters(&(struct filler){0}, letters);
        memcpy(img + (4u << 20) - 20, letters, 40);
        memcpy(img + (12u << 20), letters + 40, 24);
        char *out = p("patched.img"), *bm = p("patched.img.bmap"), *sums = p("patched.img.sha256");
        assert_file_equals(out, img, BIG_SIZE);
        assert_sums_file(sums, img, BIG_SIZE, "patched.img");
        assert_bmap_ranges(bm, img, 0);

        unsigned errors = log_error_count();
        f = (struct filler){.r = -ESTALE};
        assert_int_equal(commit_patched("stale.img", &f, 12u << 20, img), -ESTALE);
        assert_int_equal(f.calls, 1);
        assert_int_equal(log_error_count(), errors);
        f = (struct filler){0};
        assert_int_equal(commit_patched("hole.img", &f, 2u << 20, img), -EIO); /* 2 MiB: a hole */
        assert_int_equal(log_error_count(), errors + 1);
        char *l = listing();
        assert_string_equal(l, "patched.img patched.img.bmap patched.img.sha256");
        free(l), free(out), free(bm), free(sums);
}

static void test_big_raw(void **state) { check_big("big.img", false); }
static void test_big_zstd(void **state) { check_big("big.img.zst", false); }
static void test_big_zstd_no_raw_hash(void **state) { check_big("big2.img.zst", true); }

/* SIGTERM while a commit compresses: the child dies of the signal and no
 * temporary survives it. */
static void test_sigterm_removes_temporaries(void **state) {
        int pfd[2];
        assert_int_equal(pipe(pfd), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                close(pfd[0]);
                char *out = p("s.img.xz");
                struct output o = { .compression_level = 9 };
                if (output_begin(&o, out, NULL, false) < 0)
                        _exit(2);
                uint64_t x = 88172645463325252ull;
                uint8_t *b = xmalloc(1 << 20);
                for (int mib = 0; mib < 48; mib++) {
                        for (size_t i = 0; i < (1 << 20); i++) {
                                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                                b[i] = (uint8_t)(x & 0x0f); /* compressible, but slowly */
                        }
                        if (pwrite_full(o.fd, b, 1 << 20, (uint64_t)mib << 20) < 0)
                                _exit(3);
                }
                if (write(pfd[1], "c", 1) != 1)
                        _exit(4);
                output_commit(&o);
                _exit(5);
        }
        close(pfd[1]);
        char c;
        assert_int_equal(read(pfd[0], &c, 1), 1);
        usleep(300 * 1000); /* well inside the commit: xz -9 on 48 MiB takes seconds */
        char *l = listing();
        assert_non_null(strstr(l, ".s.img.xz."));
        free(l);
        kill(pid, SIGTERM);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFSIGNALED(st));
        assert_int_equal(WTERMSIG(st), SIGTERM);
        l = listing();
        assert_string_equal(l, "");
        free(l);
        close(pfd[0]);
}

/* A fleet keeps every host's image tracked until it is done: far more than
 * the table's first 64 slots.  SIGTERM then removes every tracked file
 * (and the directory, emptied), and only those. */
static void test_sigterm_many_tracked(void **state) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                output_install_signal_handlers();
                char *fleet = p("fleet");
                if (mkdir(fleet, 0755) < 0)
                        _exit(2);
                output_track_dir(fleet);
                for (int i = 0; i < 300; i++) {
                        char *f = xasprintf("%s/host-%03d.img", fleet, i);
                        int fd = open(f, O_WRONLY | O_CREAT | O_EXCL, 0644);
                        if (fd < 0)
                                _exit(3);
                        close(fd);
                        output_track_temp(f);
                        if (i % 7 == 0) /* slots freed between the others */
                                output_untrack_temp(f), unlink(f);
                        free(f);
                }
                char *kept = p("kept.img");
                int fd = open(kept, O_WRONLY | O_CREAT | O_EXCL, 0644);
                if (fd < 0)
                        _exit(4);
                close(fd);
                output_track_temp(kept);
                output_untrack_temp(kept);
                raise(SIGTERM);
                _exit(5);
        }
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFSIGNALED(st));
        assert_int_equal(WTERMSIG(st), SIGTERM);
        char *l = listing();
        assert_string_equal(l, "kept.img");
        free(l);
        char *kept = p("kept.img");
        unlink(kept);
        free(kept);
}

int main(void) {
        setenv("SOURCE_DATE_EPOCH", "1700000000", 1);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_raw_commit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_xz, setup, teardown),
                cmocka_unit_test_setup_teardown(test_zstd, setup, teardown),
                cmocka_unit_test_setup_teardown(test_gzip, setup, teardown),
                cmocka_unit_test_setup_teardown(test_gzip_header, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reproducible, setup, teardown),
                cmocka_unit_test_setup_teardown(test_abort_leaves_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
                cmocka_unit_test_setup_teardown(test_force_replaces_and_drops_stale_bmap, setup, teardown),
                cmocka_unit_test_setup_teardown(test_imager_json, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sigterm_removes_temporaries, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sigterm_many_tracked, setup, teardown),
                cmocka_unit_test_setup_teardown(test_big_raw, setup, teardown),
                cmocka_unit_test_setup_teardown(test_patch, setup, teardown),
                cmocka_unit_test_setup_teardown(test_big_zstd, setup, teardown),
                cmocka_unit_test_setup_teardown(test_big_zstd_no_raw_hash, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
