/* confcheck.h: what `corrald -t` checks on this system beyond the
 * config's own rules, without starting anything. */
#ifndef CR_CONFCHECK_H
#define CR_CONFCHECK_H

#include <stdio.h>

struct cr_config;

/* Checks each pool's program (after PATH lookup), directory and raw
 * cgroup files (limits.cgroup); writes each finding to out as one line,
 * "corrald: FILE:LINE: pool "NAME": KEY: what" (warnings say so), in file
 * order. Returns the number of errors (warnings not counted). */
int cr_confcheck(const struct cr_config *conf, FILE *out);

#endif
