/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "model.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "log.h"

/* imager: the device tag Raspberry Pi Imager filters its OS list by (the
 * Zero 2 W shares the Pi 3's, the 400 and CM4 the Pi 4's, the 500 the Pi 5's) */
static const struct {
        const char *name;
        unsigned mb;
        const char *imager;
} models[] = {
        {"pi3b", 1024, "pi3-64bit"},    {"pi3b+", 1024, "pi3-64bit"},   {"pi3bplus", 1024, "pi3-64bit"},
        {"pi4-1gb", 1024, "pi4-64bit"}, {"pi4-2gb", 2048, "pi4-64bit"}, {"pi4-4gb", 4096, "pi4-64bit"},
        {"pi4-8gb", 8192, "pi4-64bit"}, {"pi400", 4096, "pi4-64bit"},   {"pi5-1gb", 1024, "pi5-64bit"},
        {"pi5-2gb", 2048, "pi5-64bit"}, {"pi5-4gb", 4096, "pi5-64bit"}, {"pi5-8gb", 8192, "pi5-64bit"},
        {"pi5-16gb", 16384, "pi5-64bit"}, {"pi500", 8192, "pi5-64bit"}, {"cm4-1gb", 1024, "pi4-64bit"},
        {"cm4-2gb", 2048, "pi4-64bit"}, {"cm4-4gb", 4096, "pi4-64bit"}, {"cm4-8gb", 8192, "pi4-64bit"},
        {"pizero2w", 512, "pi3-64bit"},
};

static int find(const char *model) {
        for (size_t i = 0; model && i < sizeof models / sizeof *models; i++)
                if (!strcasecmp(models[i].name, model))
                        return (int)i;
        return -1;
}

unsigned model_memory_mb(const char *model) {
        int i = find(model);
        return i < 0 ? 0 : models[i].mb;
}

const char *model_imager_device(const char *model) {
        int i = find(model);
        return i < 0 ? NULL : models[i].imager;
}

/* The Pi 5 and 500's Cortex-A76 has the ARMv8 crypto extensions; the
 * Cortex-A53 and A72 of the Pi 3, Zero 2 W, Pi 4, 400 and CM4 lack them
 * (their /proc/cpuinfo says "fp asimd evtstrm crc32 cpuid"). */
bool model_has_aes(const char *model) {
        int i = find(model);
        return i < 0 || !strcmp(models[i].imager, "pi5-64bit");
}

const char *model_names(void) {
        return "pi3b, pi3b+, pi4-1gb, pi4-2gb, pi4-4gb, pi4-8gb, pi400, pi5-1gb, pi5-2gb, pi5-4gb, pi5-8gb, "
               "pi5-16gb, pi500, cm4-1gb..cm4-8gb, pizero2w";
}

int model_check(const char *what, const char *model, const struct profile *p) {
        if (!model)
                return 0;
        unsigned mb = model_memory_mb(model);
        if (!mb)
                return log_error(EINVAL, what, "unknown Pi model '%s'; known models: %s", model, model_names());
        if (p->memory_min_mb && mb < p->memory_min_mb)
                return log_error(EINVAL, what,
                                 "a %s (%u MiB RAM) cannot run role '%s', which needs at least %llu MiB: "
                                 "split the roles across two Pis (app + observability) or use a larger model",
                                 model, mb, p->name, (unsigned long long)p->memory_min_mb);
        if (p->memory_recommended_mb && mb < p->memory_recommended_mb)
                log_warn(what, "a %s (%u MiB RAM) is a tight fit for role '%s' (%llu MiB recommended)", model, mb,
                         p->name, (unsigned long long)p->memory_recommended_mb);
        return 0;
}
