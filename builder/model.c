/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "model.h"

#include <errno.h>
#include <strings.h>

#include "log.h"

static const struct {
        const char *name;
        unsigned mb;
} models[] = {
        {"pi3b", 1024},      {"pi3b+", 1024},     {"pi3bplus", 1024}, {"pi4-1gb", 1024},  {"pi4-2gb", 2048},
        {"pi4-4gb", 4096},   {"pi4-8gb", 8192},   {"pi400", 4096},    {"pi5-1gb", 1024},  {"pi5-2gb", 2048},
        {"pi5-4gb", 4096},   {"pi5-8gb", 8192},   {"pi5-16gb", 16384}, {"pi500", 8192},   {"cm4-1gb", 1024},
        {"cm4-2gb", 2048},   {"cm4-4gb", 4096},   {"cm4-8gb", 8192},  {"pizero2w", 512},
};

unsigned model_memory_mb(const char *model) {
        for (size_t i = 0; i < sizeof models / sizeof *models; i++)
                if (!strcasecmp(models[i].name, model))
                        return models[i].mb;
        return 0;
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
