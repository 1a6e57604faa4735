/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Temporary stub: replaced by the real command dispatcher. */
#include <stdio.h>

int main(void) {
        puts("dimimage " DIMIMAGE_VERSION);
        return 0;
}
