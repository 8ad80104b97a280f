/* proto.h: the prototype (fork server) of a pool, seen from corrald. */
#ifndef CR_PROTO_H
#define CR_PROTO_H

#include <ev.h>
#include <stdint.h>
#include <sys/types.h>

struct cr_pool_conf;
struct cr_proto;

enum cr_proto_state { CR_PROTO_STARTING, CR_PROTO_READY, CR_PROTO_GONE };

/* What a prototype reports to its owner, as it reads it. A message read
 * while the prototype is being closed is reported too. */
struct cr_proto_ops {
	void (*ready)(struct cr_proto *p);
	/* pidfd, chan and out (its output's pipe, or -1: output.c) are the
	 * owner's from then on */
	void (*spawned)(struct cr_proto *p, uint32_t serial, pid_t pid, int pidfd, int chan, int out);
	void (*spawn_failed)(struct cr_proto *p, uint32_t serial, int err);
	/* a worker it forked exited, with this wait status */
	void (*exited)(struct cr_proto *p, pid_t pid, int status);
	/* its cgroup emptied after cr_proto_kill(): nothing it left runs */
	void (*emptied)(struct cr_proto *p);
};

struct cr_proto {
	void *owner;			/* given to cr_proto_start, for the ops */
	struct cr_pool_conf *conf;	/* the definition it was forked with */
	unsigned generation;
	pid_t pid;
	int pidfd;
	enum cr_proto_state state;
	unsigned inflight;		/* spawn requests not yet answered */
	ev_tstamp waiting_since;	/* while inflight: since the oldest request
					 * or the last message; for status */
	int reaped;			/* the owner saw it exit; free when also closed */
	struct cr_proto *next;		/* for the owner's list */
	/* proto.c's own */
	struct ev_loop *loop;
	const struct cr_proto_ops *ops;
	int sock;			/* -1 once closed */
	ev_io io;
	ev_timer start_timer;		/* until it is ready: prefork_timeout */
	int closing;
	char *cgroup;			/* its cgroup's directory */
	int watch;			/* on cgroup.events while emptying, or -1 */
	ev_timer kill_again;		/* while emptying */
	int emptying, emptied;
	/* in a pid namespace of its own: its workers' pids as it sees them
	 * (inner) and as corrald does (outer), from spawned to exited */
	int pidns;
	int retiring;			/* the owner's: set aside, not yet killed */
	struct cr_pidpair { pid_t inner, outer; } *pids;
	unsigned npids, cap_pids;
};

/* Forks the prototype of a pool into the cgroup directory given, which
 * must hold nothing else (the child never returns from here). A prototype
 * not ready within the pool's prefork_timeout is killed. NULL with errno. */
struct cr_proto *cr_proto_start(struct ev_loop *loop, const struct cr_proto_ops *ops, void *owner,
				struct cr_pool_conf *conf, unsigned generation, const char *cgroup);
/* Asks for a worker, to be born in the cgroup whose directory fd is given;
 * the answer comes through ops->spawned or ops->spawn_failed. */
int cr_proto_spawn(struct cr_proto *p, uint32_t serial, unsigned id, int cgroup_fd);
/* Kills the process and everything in its cgroup (ops->emptied once that
 * is empty); its socket stays open, so that what it said before dying is
 * read, until it is reaped and closed. */
void cr_proto_kill(struct cr_proto *p);
/* Reaped by the owner (p->reaped) and its cgroup empty: p may be freed. */
int cr_proto_done(const struct cr_proto *p);
/* Reads what is left on the socket, closes it, and kills the process. */
void cr_proto_close(struct ev_loop *loop, struct cr_proto *p);
void cr_proto_free(struct cr_proto *p);

#endif
