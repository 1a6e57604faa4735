/* SPDX-License-Identifier: GPL-3.0-or-later */
/* What plan.c (the payload: overlays, stack, network, SSH, source) and
 * plan_base.c (the base's own files edited) share.  Not for other modules:
 * they see plan.h. */
#pragma once

#include <stdint.h>

#include "payload.h"
#include "plan.h"
#include "util.h"

#define WANTS "/etc/systemd/system/multi-user.target.wants/"

/* A root-owned file of the payload holding b's or s's bytes. */
void plan_add_text(struct payload *p, enum part part, const char *path, uint32_t mode, const struct buf *b);
void plan_add_str(struct payload *p, enum part part, const char *path, uint32_t mode, const char *s);
/* The name locale.gen, SUPPORTED and raspi-config know a locale by: its
 * codeset spelled UTF-8 (glibc also takes utf8), the rest as given. */
char *locale_name(const char *loc);
/* The stack's .env (0600, a secret), in the form the base's Compose reads. */
int plan_env_file(const struct plan_input *in, struct payload *out);
