/* spawn.h: creating processes, and what a worker does before its own code. */
#ifndef CR_SPAWN_H
#define CR_SPAWN_H

#include <sys/types.h>

struct cr_pool_conf;

/* Creates a process inside the cgroup whose directory fd is given: with
 * clone3(CLONE_INTO_CGROUP | CLONE_PIDFD), or where the kernel cannot, a
 * fork whose child waits until the parent has moved it there. Returns
 * like fork(); in the parent *pidfd holds the child's pidfd. */
pid_t cr_spawn_clone(int *pidfd, int cgroup_fd);
/* The same, into new namespaces (CLONE_NEW* flags). */
pid_t cr_spawn_clone_ns(int *pidfd, int cgroup_fd, int ns_flags);

/* Tests force the fallback (CORRAL_PIPE_PLACEMENT=1 in the environment). */
extern int cr_spawn_force_pipe_placement;

/* The steps of a worker's start, as a CR_CHAN_ERROR names them. */
enum cr_spawn_step {
	CR_STEP_SIGNALS, CR_STEP_SESSION, CR_STEP_STDIN, CR_STEP_CHDIR,
	CR_STEP_SETGROUPS, CR_STEP_SETGID, CR_STEP_SETUID, CR_STEP_ENV, CR_STEP_EXEC,
	CR_STEP_HOOK,		/* a Lua hook failed; the worker logged why */
	CR_STEP_OUTPUT,
	CR_STEP_NAMESPACE,	/* its own cgroup namespace */
	CR_STEP_CAPS,		/* keep its capabilities, drop the rest */
};

const char *cr_spawn_step_name(int step);

/* In a new worker: reset the process, drop privileges, then run the
 * pool's Lua hooks or exec its command. Never returns; a failure before
 * the worker's own code is reported on chan. out: the pipe corrald reads
 * its output from (output.c), to be its stdout and stderr, or -1. */
void cr_spawn_worker(const struct cr_pool_conf *pc, unsigned id, unsigned generation,
		     int chan, int out) __attribute__((noreturn));

/* In a Lua worker (its body runs in this process): whether its stop
 * signal came; a sleep that a stop request cuts short (whether it did);
 * telling corrald it is ready (0 or -errno). Outside a worker's body,
 * sleep just sleeps. */
int cr_spawn_stopping(void);

/* corrald raises its soft RLIMIT_NOFILE to the hard limit at start;
 * prototypes and workers put the original back (0, or -1 with errno). */
void cr_spawn_raise_nofile(void);
int cr_spawn_restore_nofile(void);
int cr_spawn_sleep(double seconds);
int cr_spawn_ready(void);
/* In a Lua worker: its load report to corrald (corral.busy(), idle(),
 * request_done(n)); 0 or -errno. */
int cr_spawn_load(int busy);
int cr_spawn_requests(unsigned n);

#endif
