/* SPDX-License-Identifier: GPL-3.0-or-later */
/* `dimimage inspect IMAGE [--json]`: what is in an image (raw or compressed):
 * partition table, filesystems, OS release and, for an image dimimage built,
 * its manifest.  Reports any layout; fails only for unreadable or non-image
 * input. */
#pragma once

/* argv[0] is "inspect".  Returns 0 or -errno (logged once; usage errors are
 * -EUSAGE), like the other cmd_* functions. */
int cmd_inspect(int argc, char **argv);
