/* pool.h: the supervisor's pools and workers, shared by the files that
 * make up the supervisor: supervisor.c (states, events, reconcile),
 * status.c, reload.c and wnotify.c. Everyone else uses supervisor.h. */
#ifndef CR_POOL_H
#define CR_POOL_H

#include <ev.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "log.h"

struct cr_config;
struct cr_pool_conf;
struct cr_proto;
struct cr_event;
struct cr_note;

/* A worker's life; the allowed moves are the table in supervisor.c.
 *   SPAWNING  asked of the prototype; no pid yet
 *   STARTING  its pid is known; not ready
 *   READY     ready by its pool's rule
 *   STOPPING  asked to stop (its stop signal, then KILL after stop_timeout);
 *             with no pid yet, the signal goes out when the pid arrives
 *   GONE      its main process exited; what it left in its cgroup is being
 *             killed, and the record (and its id) stays until it is empty
 * Besides the state, two facts are kept, not states of their own:
 *   early_ready     READY=1 came while SPAWNING (a worker may speak
 *                   before the prototype's answer); it is applied, as
 *                   STARTING -> READY, the moment the pid arrives
 *   has_exec_error  the worker reported a failed start step: its EOF on
 *                   the channel does not mean it exec'd
 * A worker being aborted (watchdog, ready_timeout) stays STARTING or READY
 * until it exits: its exit is then a failure, not a requested stop. */
enum worker_state { W_SPAWNING, W_STARTING, W_READY, W_STOPPING, W_GONE, W_NSTATES };

/* A pool's life:
 *   STARTING  wants workers, not all of them ready
 *   RUNNING   all its workers ready
 *   FAILED    crash limit reached; down until start, restart or reload
 *   STOPPED   stopped by a control request, until started
 *   REMOVED   not in the config after a reload; freed once drained
 * Freezing (cgroup.freeze) is a separate dimension: `freeze`. */
enum pool_state { POOL_STARTING, POOL_RUNNING, POOL_FAILED, POOL_STOPPED, POOL_REMOVED, POOL_NSTATES };

struct cr_worker {
	TAILQ_ENTRY(cr_worker) link;
	struct cr_worker *pid_next;	/* worker.c's table of workers by pid */
	struct cr_pool *pool;
	struct cr_pool_conf *conf;	/* the definition it was made from */
	struct cr_proto *proto;		/* its parent; NULL once adopted by corrald */
	unsigned id, generation;
	int surge;			/* spawned above the target during a rolling
					 * replacement: temporary, see reconcile() */
	uint32_t serial;
	pid_t pid;			/* its main process; moves on MAINPID= */
	pid_t forked;			/* what the prototype forked, and reaps */
	int pidfd, chan;
	int cpufd;			/* its cgroup's cpu.stat, for status, or -1 */
	ev_io chan_io;
	ev_io main_io;			/* on pidfd while its main process is one
					 * the prototype will not reap (MAINPID=) */
	ev_timer kill_timer;
	enum worker_state state;
	int watch;			/* on its cgroup.events once GONE or while
					 * main_io is, or -1 */
	ev_tstamp started;
	ev_tstamp ready_at;		/* 0 until ready; its start window runs from here */
	int has_exec_error;
	const char *start_step;		/* with has_exec_error: the step that
					 * failed (cr_spawn_step_name) */
	int start_err;			/* and its errno */
	int early_ready;
	int has_memory;			/* its cgroup has memory.events */
	const char *stop_reason;	/* why corral ended it (an exit reason,
					 * see worker_ended), or NULL */
	const char *replace_reason;	/* being replaced, its replacement ready
					 * first (generation 0): why, or NULL */
	int signalled;			/* the last signal the operator sent it */
	ev_timer watchdog;		/* pool's watchdog: WATCHDOG=1 restarts it */
	ev_timer ready_timer;		/* pool's ready_timeout until ready */
	char *status;			/* its last STATUS= */
	/* load reports (BUSY=1, IDLE=1, REQUESTS=N; corral.busy() ...):
	 * kept by cr_worker_set_load / cr_worker_add_requests */
	int load;			/* 0: none yet (or exited), CR_LOAD_BUSY, CR_LOAD_IDLE */
	ev_tstamp load_since;		/* ev_now() when load last changed */
	uint64_t requests;		/* served, as reported */
	ev_tstamp last_request;		/* ev_now() of the last REQUESTS report; 0: none */
	struct cr_output *output;	/* the pipe of its stdout/stderr (output.c), or NULL */
	struct cr_note *notes;		/* what plugins say of it (notes.c) */
};

TAILQ_HEAD(cr_worker_list, cr_worker);

/* Worker exits a pool keeps for status (recent_exits). */
#define CR_RECENT 10

/* A moment, for status: the wall clock (shown in UTC) and the monotonic
 * clock (to compare, whatever the wall clock does); wall 0: never. */
struct cr_stamp {
	double wall, mono;
};

/* How a worker ended, for status: its exit status or signal, or why
 * that is not known, and why it ended (an exit reason). */
struct cr_exit {
	struct cr_stamp at;
	const char *reason;		/* crashed, oom, ...: a static string */
	const char *unknown;		/* why the wait status is not known (a
					 * static string), or NULL */
	int code;			/* the exit status, when signal is 0 */
	int signal, core, oom;
	const char *step;		/* a start that failed before it ran: the
					 * step (cr_spawn_step_name), or NULL */
	int err;			/* and the step's errno */
};

/* Per worker id, for status: restarts and how the last one ended. */
struct cr_slot {
	unsigned restarts;
	char last_exit[112];		/* as the log says it */
	struct cr_exit exit;		/* exit.at.wall 0: none yet */
	int retired;			/* its worker exited, not restarted: the
					 * id is not refilled until the target
					 * changes again */
	struct cr_worker *worker;	/* the record holding the id (from its
					 * spawn until freed), or NULL */
};

/* How many workers a pool has, by generation (the current one or older),
 * by state, and of those with ids up to `want`: kept as workers come, move
 * and go (state.c), so that reconcile() and status never count them one
 * by one; counted over again only when the generation or want changes. */
struct cr_counts {
	unsigned cur[W_NSTATES], old[W_NSTATES];
	unsigned cur_low[W_NSTATES], old_low[W_NSTATES];	/* ids <= want */
	unsigned want, generation;
	int valid;
};

struct cr_pool {
	TAILQ_ENTRY(cr_pool) link;
	char name[65];
	struct cr_pool_conf *conf;
	unsigned generation;		/* bumped when the definition changes */
	unsigned target;		/* workers wanted now */
	int keep_target;		/* scaled by a plugin with keep: a reload
					 * keeps the target (reload.c) ... */
	int keep_pending;		/* ... until the new config's plugins have
					 * run: one must claim it again (state.c) */
	enum pool_state state;
	int dirty;			/* reconcile() has something to look at */
	int in_new_config;		/* reload.c: seen in the config being applied */
	enum { THAWED, FREEZING, FROZEN, THAWING } freeze;
	int watch;			/* on its cgroup.events while (un)freezing, or -1 */
	struct cr_proto *proto;		/* of the current generation */
	struct cr_worker_list workers;
	unsigned nworkers;
	uint32_t next_serial;
	const char *rolling_reason;	/* why old workers are being replaced */
	const char *restart_reason;	/* why the last restart of the pool, or NULL */
	unsigned retired_target;	/* the target when ids were retired */
	int has_retired;
	/* Start failures (an exit before ready or within start_window):
	 * backoff and the crash limit. Other exits are replaced at once. */
	unsigned streak;		/* consecutive start failures, for backoff */
	ev_tstamp not_before;		/* no spawn before this time */
	unsigned immediate;		/* replacements due now despite not_before */
	ev_timer retry;
	ev_tstamp *failures;		/* ring of the last crash_failures failure times */
	unsigned nfailures, fail_next;
	unsigned start_failures;	/* in all, for status */
	ev_tstamp last_failure_at;	/* of the last start failure */
	ev_tstamp passed_at;		/* when a worker last got through its window */
	ev_tstamp proto_ready_at;	/* when the current prototype got ready; 0: not yet */
	char last_failure[160];		/* what the last start failure was */
	char failure[256];		/* why the pool is FAILED */
	struct cr_slot *slots;
	unsigned nslots, restarts;
	unsigned free_hint;		/* every id below it is held or retired */
	int has_memory;			/* its workers' cgroups have the memory
					 * controller: 1, 0, or -1 to be looked up
					 * (after each change to its cgroup) */
	struct cr_counts counts;
	/* load reports, summed as they come: workers now busy and idle (not
	 * exited), requests its workers ever reported, and when last */
	unsigned busy, idle;
	uint64_t requests;
	ev_tstamp last_request;
	struct cr_stamp since;		/* its state (or freezing) last changed */
	/* the last CR_RECENT worker exits, oldest first from recent_next */
	struct cr_recent {
		unsigned id;
		struct cr_exit exit;
	} recent[CR_RECENT];
	unsigned nrecent, recent_next;
	struct cr_note *notes;		/* what plugins say of it (notes.c) */
};

TAILQ_HEAD(cr_pool_list, cr_pool);

struct cr_queued;

extern struct cr_supervisor {
	struct ev_loop *loop;
	struct cr_config *conf;		/* the running configuration */
	struct cr_pool_list pools;
	struct cr_proto *protos;	/* every prototype not yet reaped and closed */
	int stopping, verbose;
	int dirty;			/* some pool is */
	unsigned left_behind;		/* cgroups not removed, a stop given up */
	struct cr_queued *events, **events_tail;	/* not yet delivered */
} cr_sv;

/* ---- state.c ---- */
const char *cr_worker_state_name(enum worker_state s);
struct cr_who cr_worker_who(const struct cr_worker *w);
struct cr_who cr_pool_who(const struct cr_pool *pool);
int cr_worker_dir(const struct cr_worker *w, char *buf, size_t n);
/* Through the table of allowed moves; an illegal one is an alert, and the
 * state stays (-1). */
int cr_worker_set_state(struct cr_worker *w, enum worker_state to);
void cr_pool_set_state(struct cr_pool *pool, enum pool_state to);
void cr_pool_mark_dirty(struct cr_pool *pool);
/* Queues an event for the plugins; delivered after reconcile(). */
void cr_supervisor_queue(const char *name, const struct cr_event *ev);
void cr_queue_pool_event(const char *name, const struct cr_pool *pool);
void cr_queue_worker_event(const char *name, const struct cr_worker *w, struct cr_event ev);
void cr_events_deliver(void);
void cr_events_drop(void);
/* A start failure of a worker or prototype: backoff, and the crash limit.
 * what: "worker" or "prototype"; detail: what happened, for the log and
 * status ("worker 3 exited with status 1"). */
void cr_pool_failure(struct cr_pool *pool, ev_tstamp ran_for, const char *what, const char *detail);
void cr_pool_reset_failures(struct cr_pool *pool);
struct cr_slot *cr_pool_slot(struct cr_pool *pool, unsigned id);
/* The worker record holding that id, or NULL. */
struct cr_worker *cr_pool_worker(const struct cr_pool *pool, unsigned id);
/* The pool's counts for ids up to want (counted again if stale). */
const struct cr_counts *cr_pool_counts(struct cr_pool *pool, unsigned want);
/* A worker record comes (+1) or goes (-1): its share of the counts. */
void cr_pool_count(struct cr_worker *w, int sign);
struct cr_stamp cr_stamp_now(void);
/* A worker's load report: load is CR_LOAD_BUSY, CR_LOAD_IDLE, or 0 (it
 * exited: out of the pool's sums); requests are added to its and its
 * pool's totals. O(1): the pool's sums are kept, never counted. */
void cr_worker_set_load(struct cr_worker *w, int load);
void cr_worker_add_requests(struct cr_worker *w, uint64_t n);
/* A worker's exit: into its id's slot and the pool's recent exits. */
void cr_pool_record_exit(struct cr_pool *pool, unsigned id, const struct cr_exit *ex, int restarted,
			 const char *how);

/* ---- worker.c ---- */
/* A worker with that id (free: cr_pool_free_id); surge: a temporary one. */
void cr_worker_spawn(struct cr_pool *pool, unsigned id, int surge);
unsigned cr_pool_free_id(struct cr_pool *pool, unsigned above);
void cr_worker_started(struct cr_worker *w, pid_t pid, int pidfd, int chan);
void cr_worker_ready(struct cr_worker *w);
/* Exit reasons: crashed, oom, watchdog, requested, reload, stopping,
 * exited (a clean exit nobody asked for); recycled is for plugins. */
void cr_worker_stop(struct cr_worker *w);	/* reason: requested */
void cr_worker_stop_for(struct cr_worker *w, const char *reason);
/* Replaced one at a time, like a restarted pool's workers: a new worker
 * with its id comes once a surge worker is ready and it has stopped. */
void cr_worker_replace(struct cr_worker *w, const char *reason);
/* The watchdog or ready_timeout ran out: abort it, as systemd does
 * (reason: watchdog, unless one was set). */
void cr_worker_abort(struct cr_worker *w, const char *why);
void cr_worker_kill(struct cr_worker *w);
void cr_worker_exited(struct cr_worker *w, int status);
/* Its main process is gone and its wait status with it (reaped by a
 * dying pid namespace): why, for the log and status. */
void cr_worker_lost(struct cr_worker *w, const char *why);
/* MAINPID=: pid (pidfd, now the worker's) is its main process from now. */
void cr_worker_set_main(struct cr_worker *w, pid_t pid, int pidfd);
void cr_worker_gone(struct cr_worker *w);
void cr_worker_free(struct cr_worker *w);
/* A live worker by its main pid; with from, only that prototype's. */
struct cr_worker *cr_worker_by_pid(struct cr_proto *from, pid_t pid);

/* ---- protos.c ---- */
/* Starts the pool's prototype (pool->proto, NULL if it could not start). */
void cr_pool_proto_start(struct cr_pool *pool);
/* Whether the pool has a prototype not yet done: not reaped, or its cgroup
 * not yet empty. A new one waits for that; the pool must outlive it. */
int cr_pool_has_protos(const struct cr_pool *pool);
/* Whether one of them keeps a new one from starting: all but those set
 * aside (a retired prototype whose workers live in its pid namespace). */
int cr_pool_protos_block(const struct cr_pool *pool);
/* The pool's prototype is not wanted any more: killed, or, when its
 * workers live in its pid namespace, set aside until they are gone. */
void cr_pool_proto_retire(struct cr_pool *pool, struct cr_proto *p);
/* A child corrald reaped: 1 when it was a prototype. */
int cr_pool_proto_reaped(pid_t pid, int status);

/* ---- supervisor.c ---- */
/* A pool by name, removed ones too. */
struct cr_pool *cr_pool_find(const char *name);
struct cr_pool *cr_pool_new(struct cr_pool_conf *pc);
void cr_pool_set_conf(struct cr_pool *pool, struct cr_pool_conf *pc);
/* conf becomes the running configuration (the old one is freed), its Lua
 * state the one events go to. */
void cr_supervisor_activate(struct cr_config *conf);

#endif
