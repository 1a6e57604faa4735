/* SPDX-License-Identifier: GPL-3.0-or-later */
/* `dimimage flash IMAGE DEVICE`: bmap-aware write, read-back verify, and
 * the checks that keep a user from overwriting the wrong disk. */
#pragma once

/* 0 or -errno (logged once); --help prints usage and returns 0. */
int cmd_flash(int argc, char **argv);
