/* SPDX-License-Identifier: GPL-3.0-or-later */
/* disk_probe_any on arbitrary bytes: the input is the start of a sparse image
 * of at least 2 MiB (so the size check passes and partitions can point into
 * it); the first 4 bytes, when present, add up to 60 MiB of extra length so
 * "past the end" and large-table paths are reachable.  Must not crash, leak,
 * hang or prompt. */
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "disk.h"
#include "fuzz_common.h"
#include "util.h"

static char path[PATH_MAX];

static void remove_image(void) { unlink(path); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (!path[0]) {
                /* Under $TMPDIR, as every test's scratch files. */
                const char *t = getenv("TMPDIR");
                if ((size_t)snprintf(path, sizeof(path), "%s/fuzz_disk.%d.img", t && *t ? t : "/tmp", (int)getpid()) >=
                    sizeof(path))
                        abort();
                atexit(remove_image);
        }
        uint64_t extra = 0;
        if (size >= 516)
                extra = (get_le32(data + 512) % (60u << 20)) & ~(uint64_t)511;
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                abort();
        if (write_full(fd, data, size) < 0 || ftruncate(fd, (off_t)(MAX(size, 2u << 20) + extra)) < 0)
                abort();
        close(fd);
        struct disk_layout l;
        if (disk_probe_any(path, &l) == 0) {
                if (l.n > DISK_MAX_PARTS || (l.boot >= (int)l.n) || (l.root >= (int)l.n))
                        abort();
                struct disk_layout s;
                (void)disk_probe(path, &s);
        }
        return 0;
}
