/* proto.h: the prototype (fork server) of a pool, seen from corrald. */
#ifndef CR_PROTO_H
#define CR_PROTO_H

#include <ev.h>
#include <stdint.h>
#include <sys/types.h>

struct cr_pool;
struct cr_pool_conf;

enum cr_proto_state { CR_PROTO_STARTING, CR_PROTO_READY, CR_PROTO_GONE };

struct cr_proto {
	struct cr_pool *pool;
	struct cr_pool_conf *conf;	/* the definition it was forked with */
	unsigned generation;
	pid_t pid;
	int pidfd;
	int sock;			/* -1 once closed */
	ev_io io;
	enum cr_proto_state state;
	unsigned inflight;		/* spawn requests not yet answered */
	ev_timer start_timer;		/* until it is ready: prefork_timeout */
	int closing;
	int reaped;			/* waitpid saw it; free when also closed */
	struct cr_proto *next;		/* corrald's list of live prototypes */
};

/* Forks the prototype of pool into the cgroup whose directory fd is given
 * (the child never returns from here). */
struct cr_proto *cr_proto_start(struct ev_loop *loop, struct cr_pool *pool,
				struct cr_pool_conf *conf, unsigned generation, int cgroup_fd);
/* Asks for a worker, to be born in the cgroup whose directory fd is given;
 * the answer comes as cr_supervisor_on_spawned(). */
int cr_proto_spawn(struct cr_proto *p, uint32_t serial, unsigned id, int cgroup_fd);
/* Kills the process; its socket stays open, so that what it said before
 * dying is read, until it is reaped and closed. */
void cr_proto_kill(struct cr_proto *p);
/* Reads what is left on the socket, closes it, and kills the process. */
void cr_proto_close(struct ev_loop *loop, struct cr_proto *p);
void cr_proto_free(struct cr_proto *p);

#endif
