/* SPDX-License-Identifier: GPL-3.0-or-later */
/* freed-secrets.so: LD_PRELOAD'ed into a dimimage run, it looks in every
 * block the program frees (free, or a realloc that moves the block) for
 * the secrets it was given, so a test can tell that dimimage wipes what
 * held a secret before it lets go of it.  A freed block is the heap's to
 * hand out again, unwiped, to whatever asks next.
 *
 *   FREED_SECRETS_FILE    the secrets, one per line (at least 8 bytes each)
 *   FREED_SECRETS_REPORT  appended to: one "program ..." line per block the
 *                         program itself freed holding one, followed by its
 *                         backtrace; one "library ..." line per block a
 *                         library freed of its own (an encoder's window
 *                         without the allocator dimimage hands it, say)
 *
 * The check runs inside free, so it uses no stdio and no malloc; a thread
 * already inside it (backtrace's first call loads libgcc) is let through. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <execinfo.h>
#include <fcntl.h>
#include <link.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SECRETS 32

static char secrets_text[8192];
static const char *secret[MAX_SECRETS];
static size_t secret_len[MAX_SECRETS];
static size_t nsecrets;
static char report_path[4096];
static uintptr_t main_lo, main_hi; /* the program's own executable mapping */
static __thread bool busy;

/* glibc's own, which dlsym(RTLD_NEXT) would allocate to find */
void __libc_free(void *);
void *__libc_realloc(void *, size_t);

static int find_main(struct dl_phdr_info *info, size_t size, void *arg) {
        (void)size;
        (void)arg;
        /* the first object is the program itself */
        for (int i = 0; i < info->dlpi_phnum; i++) {
                const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
                if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
                        main_lo = info->dlpi_addr + ph->p_vaddr;
                        main_hi = main_lo + ph->p_memsz;
                }
        }
        return 1;
}

static void load_secrets(void) {
        const char *path = getenv("FREED_SECRETS_FILE");
        int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
        if (fd < 0)
                return;
        ssize_t n = read(fd, secrets_text, sizeof(secrets_text) - 1);
        close(fd);
        if (n <= 0)
                return;
        secrets_text[n] = 0;
        for (char *line = secrets_text; *line && nsecrets < MAX_SECRETS;) {
                char *end = strchr(line, '\n');
                if (end)
                        *end = 0;
                if (strlen(line) >= 8) {
                        secret[nsecrets] = line;
                        secret_len[nsecrets++] = strlen(line);
                }
                if (!end)
                        break;
                line = end + 1;
        }
}

__attribute__((constructor)) static void init(void) {
        busy = true;
        const char *r = getenv("FREED_SECRETS_REPORT");
        if (r && strlen(r) < sizeof(report_path))
                strcpy(report_path, r);
        load_secrets();
        dl_iterate_phdr(find_main, NULL);
        busy = false;
}

static void put(int fd, const char *s) { (void)!write(fd, s, strlen(s)); }

static void put_hex(int fd, uintptr_t v) {
        char buf[2 + 2 * sizeof v + 1];
        size_t i = sizeof(buf) - 1;
        buf[i] = 0;
        do {
                buf[--i] = "0123456789abcdef"[v & 15];
                v >>= 4;
        } while (v);
        buf[--i] = 'x';
        buf[--i] = '0';
        put(fd, buf + i);
}

/* the index of the first secret p's block holds, or -1 */
static int holds_secret(void *p) {
        size_t n = malloc_usable_size(p);
        for (size_t i = 0; i < nsecrets; i++)
                if (memmem(p, n, secret[i], secret_len[i]))
                        return (int)i;
        return -1;
}

static void report(const char *how, void *caller, int which) {
        int fd = open(report_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
                return;
        uintptr_t c = (uintptr_t)caller;
        const bool own = c >= main_lo && c < main_hi;
        put(fd, own ? "program " : "library ");
        put(fd, how);
        put(fd, " of a block holding secret ");
        char num[4] = { (char)('0' + which / 10 % 10), (char)('0' + which % 10), 0 };
        put(fd, num);
        put(fd, " from ");
        Dl_info info;
        if (dladdr(caller, &info) && info.dli_fname) {
                put(fd, info.dli_fname);
                put(fd, "+");
                put_hex(fd, c - (uintptr_t)info.dli_fbase);
        } else {
                put_hex(fd, c);
        }
        put(fd, "\n");
        void *bt[24];
        int k = backtrace(bt, 24);
        backtrace_symbols_fd(bt, k, fd);
        close(fd);
}

static void check(void *p, const char *how, void *caller) {
        if (!p || busy || !nsecrets || !report_path[0])
                return;
        busy = true;
        int which = holds_secret(p);
        if (which >= 0)
                report(how, caller, which);
        busy = false;
}

void free(void *p) {
        check(p, "free", __builtin_return_address(0));
        __libc_free(p);
}

void *realloc(void *p, size_t n) {
        /* only a block realloc moves is left behind: look before, say after */
        int which = -1;
        if (p && !busy && nsecrets && report_path[0]) {
                busy = true;
                which = holds_secret(p);
                busy = false;
        }
        void *q = __libc_realloc(p, n);
        if (which >= 0 && q && q != p) {
                busy = true;
                report("realloc", __builtin_return_address(0), which);
                busy = false;
        }
        return q;
}
