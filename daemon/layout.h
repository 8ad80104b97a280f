/* layout.h: where corral's cgroups are, and what is enabled in them. */
#ifndef CR_LAYOUT_H
#define CR_LAYOUT_H

#include <stddef.h>
#include <sys/types.h>

struct cr_config;
struct cr_limits;
struct cr_who;

/* Finds the cgroup2 mount and the base (setting "auto": our own cgroup if
 * systemd delegated it, else <mount>/corral; or an absolute path below the
 * mount), removes what an earlier corrald left there, and moves corrald
 * into <base>/corrald/. On error returns -1 with a message in err. */
int cr_layout_init(const char *setting, char *err, size_t errlen);
const char *cr_layout_base(void);
/* At exit: corrald back into the cgroup it came from, its leaf removed,
 * and the base too when corrald created it. -1 (logged) when something
 * keeps them. */
int cr_layout_finish(void);
/* Removes a pool's cgroup (and its prototype's); when it cannot be, logs
 * what is left in it (each cgroup, its pids) and returns -1. */
int cr_layout_remove_pool(const char *pool);

/* <base>/<pool>, <base>/<pool>/prototype, <base>/<pool>/<id> */
int cr_layout_pool_dir(char *buf, size_t n, const char *pool);
int cr_layout_proto_dir(char *buf, size_t n, const char *pool);
/* <base>/<pool>/prototype.<seq>: a prototype's while a retired one that
 * outlives it (its workers are in its pid namespace) holds the first */
int cr_layout_proto_aside_dir(char *buf, size_t n, const char *pool, unsigned seq);
int cr_layout_worker_dir(char *buf, size_t n, const char *pool, unsigned id);

/* Enables in <base> the controllers the config's limits need and the
 * kernel offers; reports each limit that cannot be applied, once. With
 * limits_required, a missing controller is an error: returns -1 with a
 * message in err. */
int cr_layout_controllers(const struct cr_config *conf, char *err, size_t errlen);
/* Makes a pool's directory and its prototype's, enables in it what its
 * workers' limits need (and memory, pids for their stats), applies the
 * pool's limits. */
int cr_layout_pool(const char *pool, const struct cr_limits *limits,
		   const struct cr_limits *worker_limits);
/* Writes limits into dir; logs those that fail. */
void cr_layout_apply(const char *dir, const struct cr_limits *limits, const struct cr_who *who);
/* The pool and worker id of a cgroup path from /proc/PID/cgroup ("/base/
 * pool/id", or deeper); -1 when it is not a worker cgroup of ours. */
int cr_layout_attribute(const char *cgpath, char *pool, size_t n, unsigned *id);

/* Whether the controller is enabled for the pool's children. */
int cr_layout_pool_has(const char *pool, const char *controller);

#endif
