/* cgwatch.h: callbacks when a cgroup's cgroup.events changes. */
#ifndef CR_CGWATCH_H
#define CR_CGWATCH_H

#include <ev.h>

int cr_cgwatch_init(struct ev_loop *loop);
void cr_cgwatch_finish(void);
/* Calls cb(data) each time dir/cgroup.events changes (populated, frozen).
 * A watch id, or -errno. */
int cr_cgwatch_add(const char *dir, void (*cb)(void *data), void *data);
/* Stops watch id (from a callback too); -1 is ignored. */
void cr_cgwatch_remove(int id);

#endif
