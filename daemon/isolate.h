/* isolate.h: a pool's `isolation = { ... }`, applied once, when its
 * prototype is born, so that every worker forked from it inherits it. */
#ifndef CR_ISOLATE_H
#define CR_ISOLATE_H

#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

/* One line of uid_map / gid_map. */
struct cr_idmap {
	uint32_t inside, outside, count;
};

/* A bind mount into the pool's root: source on the host, target inside
 * (absolute, as the workers see it). */
struct cr_mount {
	char *source, *target;
	int readonly;
};

struct cr_rlimit {
	int resource;		/* RLIMIT_* */
	struct rlimit value;
};

struct cr_isolation {
	int namespaces;		/* CLONE_NEWUSER | CLONE_NEWPID | ...; 0: none */
	/* with CLONE_NEWUSER; none given: the pool's user (or corrald's)
	 * as root inside */
	struct cr_idmap *uidmap, *gidmap;
	unsigned nuidmap, ngidmap;
	char *hostname;		/* with CLONE_NEWUTS; NULL: unchanged */
	int loopback;		/* with CLONE_NEWNET: bring lo up */
	char *rootfs;		/* NULL: the host's */
	struct cr_mount *mounts;
	unsigned nmounts;
	int no_new_privs;	/* on unless the config says false */
	int set_caps;		/* capabilities given: keep those, drop the rest */
	uint64_t caps;		/* bit n: capability n */
	struct cr_rlimit *rlimits;
	unsigned nrlimits;
	int umask;		/* -1: unchanged */
	int set_nice, nice;
	int set_oom_score_adj, oom_score_adj;
};

struct cr_pool_conf;

/* corrald's side. The clone flags the prototype is born with. */
int cr_isolate_clone_flags(const struct cr_pool_conf *pc);
/* Writes the child's uid_map, setgroups and gid_map (a user namespace).
 * 0, or -1 with a message in err naming the file and the reason. */
int cr_isolate_write_maps(const struct cr_pool_conf *pc, pid_t child, char *err, size_t len);
/* The outside uid the prototype runs as (its cgroups are delegated to
 * it), or -1 when it keeps corrald's. */
long cr_isolate_delegate_uid(const struct cr_pool_conf *pc);

/* In the prototype, once its maps are written, before prefork: the
 * namespaces' insides (hostname, loopback, mounts, root), rlimits,
 * umask, nice, oom_score_adj, no_new_privs, and inside a user namespace
 * its root credentials. 0, or -1 with a message in err ("KEY: what"). */
int cr_isolate_prototype(const struct cr_pool_conf *pc, char *err, size_t len);

/* In a worker just born, before its credentials are dropped: its own
 * cgroup namespace (rooted at its cgroup). 0 or -1/errno. */
int cr_isolate_worker_early(const struct cr_pool_conf *pc);
/* In a worker, after setuid: the capabilities kept, everything else
 * dropped (bounding set too); ambient ones for exec. 0 or -1/errno.
 * cr_isolate_worker_bound() runs before setuid (it needs CAP_SETPCAP). */
int cr_isolate_worker_bound(const struct cr_pool_conf *pc);
int cr_isolate_worker_caps(const struct cr_pool_conf *pc);

/* Whether the pool's workers reach corrald's notify socket by a path,
 * not by its abstract name (a network namespace or a root of their own),
 * and the path they use. */
int cr_isolate_notify_by_path(const struct cr_pool_conf *pc);
#define CR_ISOLATE_NOTIFY_INSIDE "/run/corral/notify"

void cr_isolation_free(struct cr_isolation *iso);

#endif
