/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A Raspberry Pi Imager os_list JSON (`rpi-imager --repo FILE`) offering
 * the built image, or a fleet's images, one entry per host. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct output;

struct imager_entry {
        const char *name;
        const char *description;
        const char *const *devices; /* NULL: pi5-64bit, pi4-64bit, pi3-64bit */
        size_t n_devices;
        time_t release_time;        /* printed as UTC YYYY-MM-DD */
        uint64_t extract_size;      /* raw image bytes */
        const char *extract_sha256; /* of the raw image */
        uint64_t download_size;     /* bytes of the file the url names */
        const char *download_sha256;
        const char *bmap_path;      /* NULL when there is no bmap */
};

/* One entry for a committed output, owning copies of what it needs: a
 * fleet keeps it past the build's context, and lists every host. */
struct imager_item {
        char *image, *bmap; /* OUT and OUT.bmap (NULL when there is none) */
        char *name, *description;
        uint64_t extract_size, download_size;
        char extract_sha256[65], download_sha256[65];
        const char *device; /* static: the Pi model's Imager tag; NULL: the default three */
};
void imager_item_from_output(struct imager_item *it, const struct output *o, const char *name,
                             const char *description, const char *device);
void imager_item_free(struct imager_item *it);
/* An os_list of the n items, in order, written atomically.  Logs, -errno. */
int imager_write_json_items(const char *json_path, const struct imager_item *items, size_t n);

/* Write json_path atomically; image_path (and bmap_path) become absolute
 * file:// URLs.  Logs, -errno. */
int imager_write_json(const char *json_path, const char *image_path, const struct imager_entry *e);
/* The same for an output being committed (from its describe hook): sizes
 * and checksums come from o, release date from build_time(); the list is
 * added to o's files (output_add_file), renamed into place with OUT. */
int imager_add_to_output(const char *json_path, struct output *o, const char *name, const char *description,
                         const char *device);
