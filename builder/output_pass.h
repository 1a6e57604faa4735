/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The commit's one pass over the finished image: read once, in large
 * aligned chunks, holes never read, each chunk handed to the whole-image
 * SHA-256, the bmap's range SHA-256s and the compressor, each on a thread
 * of its own.  For output.c's commit only. */
#pragma once

#include "bmap.h"
#include "compress.h"
#include "output.h"

/* Whole-image sha256 into o->raw_sha256 (unless o->no_raw_sha256 for a
 * compressed output), every bmap range's sha256 into b, and c (may be
 * NULL) fed the image.  Patches o->patch into the image as it passes.
 * Failures are logged; returns -errno. */
int output_pass(struct output *o, struct bmap *b, struct compressor *c);
