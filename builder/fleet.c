/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "fleet.h"

#include <errno.h>

#include "log.h"

int fleet_build(const struct build_opts *o) {
        return log_error(ENOTSUP, o->fleet, "fleet builds are not implemented yet");
}
