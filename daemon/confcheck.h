/* confcheck.h: what `corrald -t` checks on this system beyond the
 * config's own rules, without starting anything. */
#ifndef CR_CONFCHECK_H
#define CR_CONFCHECK_H

#include <stdio.h>

struct cr_config;

/* Checks each pool's program (after PATH lookup), directory and raw
 * cgroup files (limits.cgroup) of conf (may be NULL); writes each finding
 * to out as one line, "corrald: FILE:LINE: pool "NAME": KEY: what"
 * (warnings say so), together with the config's own errors (the lines
 * of cr_config_load's message, or NULL; changed in place), all in file
 * order, at most 20 and then "FILE: and N more errors". Returns the
 * number of errors, the config's included (warnings not counted). */
int cr_confcheck(const struct cr_config *conf, char *errors, const char *file, FILE *out);

#endif
