/* spawn.h: creating processes, and what a worker does before its own code. */
#ifndef CR_SPAWN_H
#define CR_SPAWN_H

#include <sys/types.h>

struct cr_pool_conf;

/* clone3 with CLONE_PIDFD (fork + pidfd_open where clone3 is missing).
 * Returns like fork(); in the parent *pidfd holds the child's pidfd. */
pid_t cr_spawn_clone(int *pidfd);

/* Why a worker could not start, sent by the child up its channel. */
struct cr_spawn_error {
	int step;		/* enum cr_spawn_step */
	int err;		/* errno */
};

enum cr_spawn_step {
	CR_STEP_SIGNALS, CR_STEP_SESSION, CR_STEP_STDIN, CR_STEP_CHDIR,
	CR_STEP_SETGROUPS, CR_STEP_SETGID, CR_STEP_SETUID, CR_STEP_ENV, CR_STEP_EXEC,
};

const char *cr_spawn_step_name(int step);

/* In a new worker: reset the process, then exec the pool's command.
 * Never returns; on failure reports on chan and exits 127. */
void cr_spawn_worker_exec(const struct cr_pool_conf *pc, unsigned id, int chan)
	__attribute__((noreturn));

#endif
