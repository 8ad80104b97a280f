/* isolcheck.h: what a pool's isolation needs of this system, checked
 * when a config is loaded (so by `corrald -t` too). */
#ifndef CR_ISOLCHECK_H
#define CR_ISOLCHECK_H

struct cr_config;

/* Each pool's rootfs (a directory), mount sources (there), user
 * namespaces (enabled when asked for) and kept capabilities (in corrald's
 * bounding set). 0; or -1 with *err set to one line per problem, "FILE:LINE:
 * pool "NAME": isolation.KEY: what", in file order (free it). */
int cr_isolcheck(const struct cr_config *conf, char **err);

#endif
