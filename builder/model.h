/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Raspberry Pi models and their memory, from the deployment guide's table,
 * to refuse a role a Pi cannot run before an image is written for it. */
#pragma once

#include <stdbool.h>

#include "profile.h"

/* Memory in MiB of a model name such as "pi4-4gb", or 0 when unknown. */
unsigned model_memory_mb(const char *model);
/* Refuse (logged, -EINVAL) a model below the profile's minimum; warn below
 * its recommendation.  what names the host for messages. */
int model_check(const char *what, const char *model, const struct profile *p);
/* Raspberry Pi Imager's device tag for the model ("pi4-64bit"), or NULL
 * when unknown (or model is NULL). */
const char *model_imager_device(const char *model);
/* Whether the model's CPU has the AES instructions (true when unknown). */
bool model_has_aes(const char *model);
/* "pi3b+, pi4-2gb, ..." for help and errors. */
const char *model_names(void);
