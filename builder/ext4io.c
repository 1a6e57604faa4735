/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "ext4io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

struct ext4io {
        int fd;
        unsigned long long offset; /* of the filesystem in the file */
        unsigned long long size;   /* of its partition; 0: unbounded */
        struct struct_io_stats stats;
        int write_errno; /* the last write's failure: ext4io_write_error */
};

/* count > 0: blocks; count < 0: -count bytes (libext2fs' convention) */
static size_t span(io_channel io, int count) {
        return count < 0 ? (size_t)(-(long long)count) : (size_t)count * (size_t)io->block_size;
}

static errcode_t ext4io_open(const char *name, int flags, io_channel *channel) {
        if (!name)
                return EXT2_ET_BAD_DEVICE_NAME;
        int fd = open(name, ((flags & IO_FLAG_RW) ? O_RDWR : O_RDONLY) | O_CLOEXEC);
        if (fd < 0)
                return errno;
        io_channel io = xcalloc(1, sizeof(*io));
        struct ext4io *p = xcalloc(1, sizeof(*p));
        p->fd = fd;
        p->stats.num_fields = 2;
        io->magic = EXT2_ET_MAGIC_IO_CHANNEL;
        io->manager = ext4io_manager;
        io->name = xstrdup(name);
        io->block_size = 1024;
        io->refcount = 1;
        io->private_data = p;
        *channel = io;
        return 0;
}

static errcode_t ext4io_close(io_channel io) {
        EXT2_CHECK_MAGIC(io, EXT2_ET_MAGIC_IO_CHANNEL);
        if (--io->refcount > 0)
                return 0;
        struct ext4io *p = io->private_data;
        errcode_t r = close(p->fd) < 0 ? errno : 0;
        free(p);
        free(io->name);
        free(io);
        return r;
}

static errcode_t ext4io_set_blksize(io_channel io, int blksize) {
        EXT2_CHECK_MAGIC(io, EXT2_ET_MAGIC_IO_CHANNEL);
        if (blksize <= 0)
                return EXT2_ET_INVALID_ARGUMENT;
        io->block_size = blksize;
        return 0;
}

/* Reads what is there; past the end of the file the rest is zeros and the
 * error EXT2_ET_SHORT_READ, as unix_io does. */
static errcode_t read_at(io_channel io, unsigned long long block, int count, void *buf) {
        struct ext4io *p = io->private_data;
        size_t size = span(io, count), got = 0;
        off_t at = (off_t)(p->offset + block * (unsigned long long)io->block_size);
        errcode_t r = 0;
        while (got < size) {
                ssize_t k = pread(p->fd, (char *)buf + got, size - got, at + (off_t)got);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0) {
                        r = k < 0 ? errno : EXT2_ET_SHORT_READ;
                        break;
                }
                got += (size_t)k;
        }
        p->stats.bytes_read += got;
        if (!r)
                return 0;
        memset((char *)buf + got, 0, size - got);
        if (io->read_error)
                return io->read_error(io, (unsigned long)block, count, buf, size, (int)got, r);
        return r;
}

static errcode_t write_at(io_channel io, unsigned long long byte, unsigned long long block, int count,
                          size_t size, const void *buf) {
        struct ext4io *p = io->private_data;
        /* A damaged filesystem must not make us write into the next
         * partition, whatever libext2fs believes its size to be. */
        if (p->size && (byte < p->offset || byte - p->offset > p->size || size > p->size - (byte - p->offset)))
                return EXT2_ET_BAD_BLOCK_NUM;
        /* pwrite_full: in WRITE_PIECEs, as every write to the page cache here */
        int e = pwrite_full(p->fd, buf, size, byte);
        if (e == 0) {
                p->stats.bytes_written += size;
                return 0;
        }
        p->write_errno = -e;
        if (io->write_error)
                return io->write_error(io, (unsigned long)block, count, buf, size, -1, -e);
        return -e;
}

int ext4io_write_error(io_channel io) {
        return io && io->manager == ext4io_manager ? ((struct ext4io *)io->private_data)->write_errno : 0;
}

static errcode_t ext4io_read_blk64(io_channel io, unsigned long long block, int count, void *buf) {
        EXT2_CHECK_MAGIC(io, EXT2_ET_MAGIC_IO_CHANNEL);
        return read_at(io, block, count, buf);
}

static errcode_t ext4io_read_blk(io_channel io, unsigned long block, int count, void *buf) {
        return ext4io_read_blk64(io, block, count, buf);
}

static errcode_t ext4io_write_blk64(io_channel io, unsigned long long block, int count, const void *buf) {
        EXT2_CHECK_MAGIC(io, EXT2_ET_MAGIC_IO_CHANNEL);
        struct ext4io *p = io->private_data;
        return write_at(io, p->offset + block * (unsigned long long)io->block_size, block, count, span(io, count),
                        buf);
}

static errcode_t ext4io_write_blk(io_channel io, unsigned long block, int count, const void *buf) {
        return ext4io_write_blk64(io, block, count, buf);
}

static errcode_t ext4io_write_byte(io_channel io, unsigned long offset, int size, const void *buf) {
        EXT2_CHECK_MAGIC(io, EXT2_ET_MAGIC_IO_CHANNEL);
        if (size < 0)
                return EXT2_ET_INVALID_ARGUMENT;
        struct ext4io *p = io->private_data;
        return write_at(io, p->offset + offset, offset / (unsigned long)io->block_size, size, (size_t)size, buf);
}

/* Nothing is held back here; keeping the bytes is the commit's fsync. */
static errcode_t ext4io_flush(io_channel io) {
        EXT2_CHECK_MAGIC(io, EXT2_ET_MAGIC_IO_CHANNEL);
        return 0;
}

static errcode_t ext4io_set_option(io_channel io, const char *option, const char *arg) {
        EXT2_CHECK_MAGIC(io, EXT2_ET_MAGIC_IO_CHANNEL);
        struct ext4io *p = io->private_data;
        bool offset = strcmp(option, "offset") == 0;
        if ((!offset && strcmp(option, "size") != 0) || !arg || !*arg)
                return EXT2_ET_INVALID_ARGUMENT;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(arg, &end, 0);
        if (*end || errno || arg[0] == '-')
                return EXT2_ET_INVALID_ARGUMENT;
        *(offset ? &p->offset : &p->size) = v;
        return 0;
}

static errcode_t ext4io_get_stats(io_channel io, io_stats *stats) {
        EXT2_CHECK_MAGIC(io, EXT2_ET_MAGIC_IO_CHANNEL);
        struct ext4io *p = io->private_data;
        if (stats)
                *stats = &p->stats;
        return 0;
}

static struct struct_io_manager manager = {
        .magic = EXT2_ET_MAGIC_IO_MANAGER,
        .name = "dimimage pread/pwrite I/O manager",
        .open = ext4io_open,
        .close = ext4io_close,
        .set_blksize = ext4io_set_blksize,
        .read_blk = ext4io_read_blk,
        .write_blk = ext4io_write_blk,
        .flush = ext4io_flush,
        .write_byte = ext4io_write_byte,
        .set_option = ext4io_set_option,
        .get_stats = ext4io_get_stats,
        .read_blk64 = ext4io_read_blk64,
        .write_blk64 = ext4io_write_blk64,
        /* discard, zeroout, cache_readahead: unimplemented, which libext2fs
         * answers by writing zeros / skipping the hint */
};

io_manager ext4io_manager = &manager;
