/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The libext2fs io_manager ext4.c opens images with: pread and pwrite on the
 * image file at the "offset=" option, nothing cached, nothing synced, and no
 * write past "size=" bytes from the offset (the partition's end) when given.
 *
 * libext2fs' own unix_io_manager fsync()s the file every time it opens it
 * (e2fsprogs 1.47 unix_open_channel, to clear stale block device errors).
 * On a freshly extracted image that fsync writes the whole base to disk: for
 * a compressed output, whose raw temporary is deleted unsynced, 0.8 s and
 * 1.7 GB of writes thrown away on the bench base, and the blocks it forces
 * allocated then cost another 0.4 s to free.  The image is synced once, by
 * the commit, when it is to be kept. */
#pragma once

#include <ext2fs/ext2fs.h>

extern io_manager ext4io_manager;
/* The errno of the channel's last failed write, 0 if none: libext2fs'
 * own codes ("Can't write a block bitmap") do not carry it. */
int ext4io_write_error(io_channel io);
