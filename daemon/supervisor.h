/* supervisor.h: pools and workers, seen from outside the supervisor. */
#ifndef CR_SUPERVISOR_H
#define CR_SUPERVISOR_H

#include <ev.h>

struct cr_config;
struct cr_pool;

/* Takes ownership of conf and starts every pool. */
int cr_supervisor_start(struct ev_loop *loop, struct cr_config *conf, int verbose);
/* Frees what is left once the loop has returned, killing what still runs
 * in the pools' cgroups. The number of things left behind (a cgroup that
 * could not be removed, a stop that gave up on what would not die), each
 * logged with what is in it. */
int cr_supervisor_finish(void);

/* A running pool by name (not one that a reload removed), or NULL. */
struct cr_pool *cr_supervisor_pool(const char *name);
/* The i-th running pool's name, NULL past the last. */
const char *cr_supervisor_pool_name(unsigned i);

/* Freezes (on) or thaws a pool through cgroup.freeze; "pool frozen" is
 * logged (and the frozen event sent) once cgroup.events confirms it.
 * 0, or -ENOENT for an unknown pool, or -errno. */
int cr_supervisor_freeze(const char *pool, int on);

#endif
