/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Raspberry Pi Imager reads os_list entries (see rpi-imager's
 * doc/json-schema/os-list-schema.json); "init_format": "none" tells it not
 * to offer its own customisation, which would fight ours. */
#include "imager.h"

#include <errno.h>
#include <stdio.h>

#include "json.h"
#include "log.h"
#include "output.h"
#include "util.h"

static const char *const default_devices[] = { "pi5-64bit", "pi4-64bit", "pi3-64bit" };

/* The directory resolved, not the file: a single build's list is written
 * before OUT is renamed into place (and a symlink at OUT is replaced). */
static char *file_url(const char *path) {
        _cleanup_free_ char *dir = path_dirname(path);
        _cleanup_free_ char *rdir = realpath(dir, NULL);
        if (!rdir)
                return NULL;
        _cleanup_free_ char *abs = xasprintf("%s/%s", strcmp(rdir, "/") ? rdir : "", path_basename(path));
        struct buf b = { 0 };
        buf_puts(&b, "file://");
        /* Percent-encode everything outside RFC 3986's unreserved set and '/'. */
        for (const unsigned char *p = (const unsigned char *)abs; *p; p++) {
                if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                    strchr("-._~/", *p))
                        buf_append(&b, p, 1);
                else
                        buf_printf(&b, "%%%02X", *p);
        }
        return (char *)buf_steal(&b, NULL);
}

/* One os_list entry; json_path names the list in messages. */
static int add_entry(struct json *j, const char *json_path, const char *image_path, const struct imager_entry *e) {
        _cleanup_free_ char *url = file_url(image_path);
        if (!url)
                return log_error(errno, image_path, "cannot resolve the image path: %m");
        _cleanup_free_ char *bmap_url = NULL;
        if (e->bmap_path && !(bmap_url = file_url(e->bmap_path)))
                return log_error(errno, e->bmap_path, "cannot resolve the bmap path: %m");
        struct tm tm;
        time_t t = e->release_time;
        char date[16];
        if (!gmtime_r(&t, &tm) || strftime(date, sizeof(date), "%Y-%m-%d", &tm) == 0)
                return log_error(EINVAL, json_path, "bad release time");

        json_begin_object(j);
        json_key(j, "name");
        json_string(j, e->name ? e->name : path_basename(image_path));
        json_key(j, "description");
        json_string(j, e->description ? e->description : "Built by dimimage");
        json_key(j, "url");
        json_string(j, url);
        json_key(j, "extract_size");
        json_uint(j, e->extract_size);
        json_key(j, "extract_sha256");
        json_string(j, e->extract_sha256);
        json_key(j, "image_download_size");
        json_uint(j, e->download_size);
        json_key(j, "image_download_sha256");
        json_string(j, e->download_sha256);
        json_key(j, "release_date");
        json_string(j, date);
        json_key(j, "devices");
        json_begin_array(j);
        const char *const *devs = e->devices ? e->devices : default_devices;
        size_t n = e->devices ? e->n_devices : ARRAY_SIZE(default_devices);
        for (size_t i = 0; i < n; i++)
                json_string(j, devs[i]);
        json_end_array(j);
        json_key(j, "init_format");
        json_string(j, "none");
        if (bmap_url) {
                json_key(j, "bmap_url");
                json_string(j, bmap_url);
        }
        json_end_object(j);
        return 0;
}

/* The os_list of n images (image_paths[i] described by e[i]) into *text. */
static int list_text(const char *json_path, const char *const *image_paths, const struct imager_entry *e, size_t n,
                     char **text, size_t *len) {
        struct json j = { 0 };
        json_begin_object(&j);
        json_key(&j, "os_list");
        json_begin_array(&j);
        int r = 0;
        for (size_t i = 0; i < n && r == 0; i++)
                r = add_entry(&j, json_path, image_paths[i], &e[i]);
        json_end_array(&j);
        json_end_object(&j);
        *text = json_finish(&j, len);
        if (r < 0) {
                free(*text);
                *text = NULL;
        }
        return r;
}

static int write_list(const char *json_path, const char *const *image_paths, const struct imager_entry *e,
                      size_t n) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = list_text(json_path, image_paths, e, n, &text, &len);
        return r < 0 ? r : output_write_file_atomic(json_path, text, len, 0644, false);
}

int imager_write_json(const char *json_path, const char *image_path, const struct imager_entry *e) {
        return write_list(json_path, &image_path, e, 1);
}

void imager_item_from_output(struct imager_item *it, const struct output *o, const char *name,
                             const char *description, const char *device) {
        *it = (struct imager_item){
                .image = xstrdup(o->path),
                .bmap = o->has_bmap ? xasprintf("%s.bmap", o->path) : NULL,
                .name = name ? xstrdup(name) : NULL,
                .description = description ? xstrdup(description) : NULL,
                .extract_size = o->raw_bytes,
                .download_size = o->out_bytes,
                .device = device,
        };
        memcpy(it->extract_sha256, o->raw_sha256, sizeof(it->extract_sha256));
        memcpy(it->download_sha256, o->sha256, sizeof(it->download_sha256));
}

void imager_item_free(struct imager_item *it) {
        free(it->image);
        free(it->bmap);
        free(it->name);
        free(it->description);
        *it = (struct imager_item){0};
}

/* The list of n items: into *text (text non-NULL), else written to json_path. */
static int items_list(const char *json_path, const struct imager_item *items, size_t n, char **text, size_t *len) {
        const char **paths = xcalloc(n ? n : 1, sizeof(*paths));
        struct imager_entry *e = xcalloc(n ? n : 1, sizeof(*e));
        for (size_t i = 0; i < n; i++) {
                paths[i] = items[i].image;
                e[i] = (struct imager_entry){
                        .name = items[i].name,
                        .description = items[i].description,
                        .release_time = build_time(),
                        .extract_size = items[i].extract_size,
                        .extract_sha256 = items[i].extract_sha256,
                        .download_size = items[i].download_size,
                        .download_sha256 = items[i].download_sha256,
                        .bmap_path = items[i].bmap,
                };
                if (items[i].device) {
                        e[i].devices = &items[i].device;
                        e[i].n_devices = 1;
                }
        }
        int r = text ? list_text(json_path, paths, e, n, text, len) : write_list(json_path, paths, e, n);
        free(paths);
        free(e);
        return r;
}

int imager_write_json_items(const char *json_path, const struct imager_item *items, size_t n) {
        return items_list(json_path, items, n, NULL, NULL);
}

int imager_add_to_output(const char *json_path, struct output *o, const char *name, const char *description,
                         const char *device) {
        struct imager_item it;
        imager_item_from_output(&it, o, name, description, device);
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = items_list(json_path, &it, 1, &text, &len);
        imager_item_free(&it);
        return r < 0 ? r : output_add_file(o, json_path, text, len, 0644);
}
