/* SPDX-License-Identifier: GPL-3.0-or-later */
/* `dimimage build --fleet FLEET.yml`: every Pi of a deployment from one
 * description, wired together, from one decompression of the base. */
#pragma once

#include "cli.h"

int fleet_build(const struct build_opts *o);
