/*
 * worker.c: one worker's life, from the spawn request to the prototype
 * until its cgroup is empty: its cgroup made first (it is born in it),
 * the channel it reports its start on, its stop (signal, then KILL), its
 * watchdog and ready_timeout, its exit and the restart decision, and the
 * killing of what it left behind. What the pool as a whole should run is
 * supervisor.c's reconcile().
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "cgwatch.h"
#include "config.h"
#include "crlua.h"
#include "layout.h"
#include "isolate.h"
#include "log.h"
#include "notes.h"
#include "notify.h"
#include "output.h"
#include "pool.h"
#include "proto.h"
#include "spawn.h"
#include "text.h"
#include "unixmsg.h"

/* Kills the worker and all it started: its whole cgroup. */
void cr_worker_kill(struct cr_worker *w)
{
	struct cr_who who = cr_worker_who(w);
	char dir[PATH_MAX];
	int rc;

	if ((rc = cr_worker_dir(w, dir, sizeof dir)) < 0 || (rc = cr_cgroup_kill(dir)) < 0) {
		cr_error(&who, "cgroup: unable to kill the worker's cgroup: %s", strerror(-rc));
		if (w->pidfd >= 0)
			pidfd_send_signal(w->pidfd, SIGKILL, NULL, 0);
	}
}

static void kill_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct cr_worker *w = t->data;
	struct cr_who who = cr_worker_who(w);
	char d[32];

	(void)loop;
	(void)revents;
	cr_text_duration(d, sizeof d, w->conf->stop_timeout);
	cr_warn(&who, "worker did not stop within %s, sending KILL", d);
	cr_worker_kill(w);
}

static void worker_signal(struct cr_worker *w, int sig)
{
	struct cr_who who = cr_worker_who(w);

	if (w->pidfd < 0)
		return;
	if (pidfd_send_signal(w->pidfd, sig, NULL, 0) < 0 && errno != ESRCH)
		cr_error(&who, "unable to send %s to worker: %s", sigabbrev_np(sig), strerror(errno));
}

/* Its stop signal now, KILL after stop_timeout. */
static void send_stop(struct cr_worker *w)
{
	worker_signal(w, w->conf->stop_signal);
	ev_timer_set(&w->kill_timer, w->conf->stop_timeout, 0);
	ev_timer_start(cr_sv.loop, &w->kill_timer);
}

void cr_worker_stop_for(struct cr_worker *w, const char *reason)
{
	if (w->state >= W_STOPPING)
		return;
	if (!w->stop_reason)
		w->stop_reason = reason;
	cr_worker_set_state(w, W_STOPPING);
	ev_timer_stop(cr_sv.loop, &w->watchdog);	/* it is going anyway */
	ev_timer_stop(cr_sv.loop, &w->ready_timer);
	if (w->pid > 0)
		send_stop(w);	/* else once its pid arrives */
}

void cr_worker_stop(struct cr_worker *w)
{
	cr_worker_stop_for(w, "requested");
}

/* Generation 0 is no pool's (they count from 1): the worker counts as
 * old, and reconcile() replaces it as it replaces a restarted pool's,
 * a new one ready first. */
void cr_worker_replace(struct cr_worker *w, const char *reason)
{
	if (w->state >= W_STOPPING || w->generation == 0)
		return;
	cr_pool_count(w, -1);
	w->generation = 0;
	w->replace_reason = reason;
	cr_pool_count(w, 1);
}

/* ---- workers by pid: a prototype's exit report names a pid --------------- */

static struct {
	struct cr_worker **bucket;
	unsigned size, n;	/* size: a power of 2, or 0 */
	int incomplete;		/* one could not be added (out of memory) */
} by_pid;

static unsigned pid_hash(pid_t pid)
{
	return ((unsigned)pid * 2654435761u) & (by_pid.size - 1);
}

/* Doubles the table when it gets full; if that cannot be had, the chains
 * just grow longer. */
static void pid_grow(void)
{
	unsigned size = by_pid.size ? by_pid.size * 2 : 64, old = by_pid.size;
	struct cr_worker **b = calloc(size, sizeof *b), **ob = by_pid.bucket;

	if (!b)
		return;
	by_pid.bucket = b;
	by_pid.size = size;
	for (unsigned i = 0; i < old; i++) {
		for (struct cr_worker *w = ob[i], *next; w; w = next) {
			next = w->pid_next;
			w->pid_next = b[pid_hash(w->pid)];
			b[pid_hash(w->pid)] = w;
		}
	}
	free(ob);
}

static void pid_add(struct cr_worker *w)
{
	unsigned h;

	if (by_pid.n >= by_pid.size)
		pid_grow();
	if (!by_pid.size) {
		by_pid.incomplete = 1;	/* cr_worker_by_pid() searches the pools */
		return;
	}
	h = pid_hash(w->pid);
	w->pid_next = by_pid.bucket[h];
	by_pid.bucket[h] = w;
	by_pid.n++;
}

static void pid_remove(struct cr_worker *w)
{
	if (w->pid <= 0 || !by_pid.size)
		return;
	for (struct cr_worker **pp = &by_pid.bucket[pid_hash(w->pid)]; *pp; pp = &(*pp)->pid_next) {
		if (*pp == w) {
			*pp = w->pid_next;
			by_pid.n--;
			return;
		}
	}
}

struct cr_worker *cr_worker_by_pid(struct cr_proto *from, pid_t pid)
{
	struct cr_pool *pool;
	struct cr_worker *w;

	if (by_pid.size) {
		for (w = by_pid.bucket[pid_hash(pid)]; w; w = w->pid_next)
			if (w->pid == pid && w->state != W_GONE && (!from || w->proto == from))
				return w;
		if (!by_pid.incomplete)
			return NULL;
	}
	TAILQ_FOREACH(pool, &cr_sv.pools, link)
		TAILQ_FOREACH(w, &pool->workers, link)
			if (w->pid == pid && w->state != W_GONE && (!from || w->proto == from))
				return w;
	return NULL;
}

void cr_worker_free(struct cr_worker *w)
{
	struct cr_pool *pool = w->pool;
	struct cr_slot *slot = cr_pool_slot(pool, w->id);
	char dir[PATH_MAX];

	cr_cgwatch_remove(w->watch);
	if (w->cpufd >= 0)
		close(w->cpufd);
	if (cr_worker_dir(w, dir, sizeof dir) == 0)
		cr_cgroup_rmdir(dir);
	if (slot && slot->worker == w)
		slot->worker = NULL;
	if (w->id < pool->free_hint)
		pool->free_hint = w->id;
	cr_pool_count(w, -1);
	cr_worker_set_load(w, 0);
	pid_remove(w);
	TAILQ_REMOVE(&w->pool->workers, w, link);
	w->pool->nworkers--;
	ev_timer_stop(cr_sv.loop, &w->kill_timer);
	ev_timer_stop(cr_sv.loop, &w->watchdog);
	ev_timer_stop(cr_sv.loop, &w->ready_timer);
	free(w->status);
	cr_notes_free(&w->notes);
	cr_output_detach(w->output);
	if (w->chan >= 0) {
		ev_io_stop(cr_sv.loop, &w->chan_io);
		close(w->chan);
	}
	ev_io_stop(cr_sv.loop, &w->main_io);
	if (w->pidfd >= 0)
		close(w->pidfd);
	cr_pool_conf_unref(w->conf);
	free(w);
}

/* The lowest id above `above` that no worker record holds and that is
 * not retired: an id is held until its worker's record is freed (its
 * cgroup, named by the id, empty and removed). free_hint skips the ids
 * known to be taken, so filling 1..N is linear. */
unsigned cr_pool_free_id(struct cr_pool *pool, unsigned above)
{
	unsigned id = above + 1 > pool->free_hint ? above + 1 : pool->free_hint;

	if (id == 0)
		id = 1;
	for (; id <= pool->nslots; id++)
		if (!pool->slots[id - 1].worker && !pool->slots[id - 1].retired)
			break;
	if (above == 0)
		pool->free_hint = id;
	return id;
}

void cr_worker_abort(struct cr_worker *w, const char *why)
{
	struct cr_who who = cr_worker_who(w);

	if (w->state >= W_STOPPING)
		return;
	if (!w->stop_reason)
		w->stop_reason = "watchdog";
	cr_warn(&who, "%s, aborting the worker", why);
	ev_timer_stop(cr_sv.loop, &w->watchdog);
	ev_timer_stop(cr_sv.loop, &w->ready_timer);
	worker_signal(w, SIGABRT);
	ev_timer_set(&w->kill_timer, w->conf->stop_timeout, 0);
	ev_timer_start(cr_sv.loop, &w->kill_timer);
}

/* The watchdog or ready_timeout ran out (which one: the timer). */
static void abort_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct cr_worker *w = t->data;
	int watchdog = t == &w->watchdog;
	char why[96], d[32];

	(void)loop;
	(void)revents;
	cr_text_duration(d, sizeof d, watchdog ? w->conf->watchdog : w->conf->ready_timeout);
	if (watchdog)
		snprintf(why, sizeof why, "watchdog timeout: no WATCHDOG=1 within %s", d);
	else
		snprintf(why, sizeof why, "not ready within ready_timeout (%s)", d);
	cr_worker_abort(w, why);
}

static void main_cb(struct ev_loop *loop, ev_io *io, int revents);

void cr_worker_spawn(struct cr_pool *pool, unsigned id, int surge)
{
	struct cr_who who = cr_pool_who(pool);
	struct cr_worker *w = calloc(1, sizeof *w);
	struct cr_slot *slot;
	char dir[PATH_MAX];
	int rc, cgfd;
	long uid;

	if (!w) {
		cr_error(&who, "unable to allocate a worker: out of memory");
		return;
	}
	w->pool = pool;
	w->conf = cr_pool_conf_ref(pool->conf);
	w->proto = pool->proto;
	w->generation = pool->generation;
	w->id = id;
	w->surge = surge;
	w->serial = ++pool->next_serial;
	w->pidfd = w->chan = w->watch = w->cpufd = -1;
	w->state = W_SPAWNING;
	ev_timer_init(&w->kill_timer, kill_cb, 0, 0);
	w->kill_timer.data = w;
	ev_timer_init(&w->watchdog, abort_cb, 0, 0);
	w->watchdog.data = w;
	ev_timer_init(&w->ready_timer, abort_cb, 0, 0);
	w->ready_timer.data = w;
	ev_io_init(&w->main_io, main_cb, 0, EV_READ);	/* its fd set when started */
	w->main_io.data = w;
	if (!(slot = cr_pool_slot(pool, id))) {
		cr_error(&who, "unable to allocate a worker: out of memory");
		cr_pool_conf_unref(w->conf);
		free(w);
		return;
	}
	slot->worker = w;
	TAILQ_INSERT_TAIL(&pool->workers, w, link);
	pool->nworkers++;
	cr_pool_count(w, 1);

	/* its cgroup first: it is born in it */
	who.worker = w->id;
	if ((rc = cr_worker_dir(w, dir, sizeof dir)) < 0 || (rc = cr_cgroup_mkdir(dir)) < 0 ||
	    (rc = cgfd = cr_cgroup_open(dir)) < 0) {
		cr_error(&who, "cgroup: unable to create the worker's cgroup %s: %s", dir, strerror(-rc));
		goto fail;
	}
	cr_layout_apply(dir, &w->conf->worker_limits, &who);
	/* kept for status: at thousands of workers, opening it by path at
	 * every status was most of status's cost */
	w->cpufd = openat(cgfd, "cpu.stat", O_RDONLY | O_CLOEXEC);
	/* a prototype in a user namespace places it there as its own uid */
	if ((uid = cr_isolate_delegate_uid(w->conf)) >= 0 &&
	    fchownat(cgfd, "cgroup.procs", (uid_t)uid, (gid_t)-1, 0) < 0)
		cr_warn(&who, "cgroup: unable to delegate %s/cgroup.procs to uid %ld (isolation.namespaces "
			"\"user\"): %s", dir, uid, strerror(errno));
	if (pool->has_memory < 0)
		pool->has_memory = cr_layout_pool_has(pool->name, "memory");
	w->has_memory = pool->has_memory;
	if (w->has_memory &&
	    (rc = cr_cgroup_write(dir, "memory.oom.group", "1")) < 0)
		cr_warn(&who, "cgroup: unable to set memory.oom.group: %s", strerror(-rc));
	rc = cr_proto_spawn(pool->proto, w->serial, w->id, cgfd);
	close(cgfd);
	if (rc < 0) {
		cr_error(&who, "unable to ask the prototype for a worker: %s", strerror(-rc));
		goto fail;
	}
	cr_debug(&who, "worker asked of the prototype (spawning)");
	return;
fail:
	cr_worker_free(w);
	cr_pool_failure(pool, 0, "worker", "unable to create a worker");
}

void cr_worker_ready(struct cr_worker *w)
{
	struct cr_who who = cr_worker_who(w);

	if (w->state != W_STARTING)
		return;
	cr_worker_set_state(w, W_READY);
	w->ready_at = ev_now(cr_sv.loop);
	ev_timer_stop(cr_sv.loop, &w->ready_timer);
	cr_debug(&who, "worker ready");
	cr_queue_worker_event("worker_ready", w, (struct cr_event){ 0 });
	cr_pool_mark_dirty(w->pool);
}

/* How many messages of the channel one wakeup reads: a worker that keeps
 * writing cannot hold the loop. */
#define CHAN_BUDGET 64

/* The channel is corral's own protocol: anything else on it (a message
 * of another size or type, a second error) means a broken or hostile
 * worker. Said once; the channel is closed and the worker aborted, and
 * replaced as any other that fails. */
static void chan_violation(struct cr_worker *w, ssize_t n)
{
	char why[128];

	snprintf(why, sizeof why, "worker sent a message of %zd bytes on its channel that is not corral's", n);
	ev_io_stop(cr_sv.loop, &w->chan_io);
	close(w->chan);
	w->chan = -1;
	if (w->state < W_STOPPING) {
		if (!w->stop_reason)
			w->stop_reason = "crashed";
		cr_worker_abort(w, why);
	} else {
		struct cr_who who = cr_worker_who(w);
		cr_warn(&who, "%s", why);	/* stopping already: its KILL is on the way */
	}
}

/* The channel: messages from the worker; EOF without an error before it
 * means the exec succeeded (the worker's end is close-on-exec) or the
 * worker is gone. */
static void worker_read_chan(struct cr_worker *w)
{
	struct cr_who who = cr_worker_who(w);
	struct cr_chan_msg m;
	ssize_t n;

	for (int budget = 0; w->chan >= 0 && budget < CHAN_BUDGET; budget++) {
		n = recv(w->chan, &m, sizeof m, MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n == (ssize_t)sizeof m && m.type == CR_CHAN_ERROR && !w->has_exec_error) {
			w->has_exec_error = 1;
			w->start_step = cr_spawn_step_name(m.step);	/* for status */
			w->start_err = m.err;
			/* CR_STEP_HOOK: the worker logged the hook's error itself */
			if (m.step == CR_STEP_EXEC)
				cr_error(&who, "unable to exec \"%s\": %s",
					 w->conf->argv[0] ? w->conf->argv[0] : "", strerror(m.err));
			else if (m.step == CR_STEP_CHDIR)
				cr_error(&who, "unable to change directory to %s: %s", w->conf->directory, strerror(m.err));
			else if (m.step != CR_STEP_HOOK)
				cr_error(&who, "unable to %s: %s", cr_spawn_step_name(m.step), strerror(m.err));
			continue;
		}
		if (n == (ssize_t)sizeof m && m.type == CR_CHAN_STARTED) {
			cr_debug(&who, "worker's start hook is running");
			if (w->conf->ready == CR_READY_STARTED)
				cr_worker_ready(w);
			continue;
		}
		if (n == (ssize_t)sizeof m && (m.type == CR_CHAN_BUSY || m.type == CR_CHAN_IDLE)) {
			cr_worker_set_load(w, m.type == CR_CHAN_BUSY ? CR_LOAD_BUSY : CR_LOAD_IDLE);
			continue;
		}
		if (n == (ssize_t)sizeof m && m.type == CR_CHAN_REQUESTS) {
			cr_worker_add_requests(w, m.count);
			continue;
		}
		if (n == (ssize_t)sizeof m && m.type == CR_CHAN_READY) {
			if (w->conf->ready == CR_READY_NOTIFY)
				cr_debug(&who, "corral.ready() in a ready = \"notify\" pool: waiting for READY=1");
			else
				cr_worker_ready(w);
			continue;
		}
		if (n > 0) {
			chan_violation(w, n);
			return;
		}
		/* EOF (or a broken channel): the child is past exec or gone */
		ev_io_stop(cr_sv.loop, &w->chan_io);
		close(w->chan);
		w->chan = -1;
		if (!w->has_exec_error && w->conf->ready == CR_READY_STARTED)
			cr_worker_ready(w);
	}
}

static void chan_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)loop;
	(void)revents;
	worker_read_chan(io->data);
}

/* memory.events counts OOM kills in the worker's cgroup, whether its own
 * memory.max or the pool's triggered them. */
static int worker_oom_killed(const struct cr_worker *w)
{
	char dir[PATH_MAX];
	long long kills = 0, group = 0;

	if (!w->has_memory || cr_worker_dir(w, dir, sizeof dir) < 0)
		return 0;
	cr_cgroup_key(dir, "memory.events", "oom_kill", &kills);
	cr_cgroup_key(dir, "memory.events", "oom_group_kill", &group);
	return kills > 0 || group > 0;
}

static void main_exited(struct cr_worker *w, const char *unknown);

/* cgroup.events changed: a GONE worker is freed once its cgroup is empty;
 * an empty cgroup of one not GONE means its main process is dead too,
 * whoever reaped it (a backstop for main_io). */
static void cgroup_cb(void *data)
{
	struct cr_worker *w = data;
	char dir[PATH_MAX];
	int populated = cr_worker_dir(w, dir, sizeof dir) < 0 ? -1 : cr_cgroup_populated(dir);

	if (w->state != W_GONE) {
		if (populated == 0 && w->pid > 0)
			main_exited(w, "its cgroup is empty");
		return;
	}
	if (populated <= 0) {
		cr_pool_mark_dirty(w->pool);
		cr_worker_free(w);
	}
}

/* Once the main process is gone, nothing it started may stay: kill the
 * rest of the cgroup, and free the worker when cgroup.events says it is
 * empty. */
void cr_worker_gone(struct cr_worker *w)
{
	struct cr_who who = cr_worker_who(w);
	char dir[PATH_MAX];

	ev_timer_stop(cr_sv.loop, &w->kill_timer);
	ev_timer_stop(cr_sv.loop, &w->watchdog);
	ev_timer_stop(cr_sv.loop, &w->ready_timer);
	ev_io_stop(cr_sv.loop, &w->main_io);
	cr_worker_set_state(w, W_GONE);
	if (cr_worker_dir(w, dir, sizeof dir) < 0 || cr_cgroup_populated(dir) <= 0) {
		cr_worker_free(w);
		return;
	}
	if (w->watch < 0)	/* else already on, since MAINPID= */
		w->watch = cr_cgwatch_add(dir, cgroup_cb, w);
	if (w->watch < 0)
		cr_error(&who, "cgroup: unable to watch %s/cgroup.events: %s", dir, strerror(-w->watch));
	cr_debug(&who, "killing what the worker left in its cgroup");
	cr_worker_kill(w);
	/* it may have emptied before the watch was in place */
	if (cr_cgroup_populated(dir) <= 0)
		cr_worker_free(w);
}

/* Restarting is not failing: only an exit before ready or within the
 * start window is a start failure (backoff, crash limit); a worker that
 * got through it is replaced at once, whatever ended it. */
static void replace_worker(struct cr_worker *w, const char *how)
{
	struct cr_pool *pool = w->pool;
	ev_tstamp now = ev_now(cr_sv.loop), ran_for = now - w->started;
	char detail[160];

	if (w->state != W_READY || now - w->ready_at < w->conf->start_window) {
		snprintf(detail, sizeof detail, "worker %u %s%s", w->id, how,
			 w->state == W_READY ? " within its start_window" : " before it was ready");
		cr_pool_failure(pool, ran_for, "worker", detail);
		return;
	}
	if (w->ready_at + w->conf->start_window > pool->passed_at)
		pool->passed_at = w->ready_at + w->conf->start_window;
	pool->immediate++;	/* even while the pool backs off */
	if (pool->target > 0 && !cr_sv.stopping &&
	    (pool->state == POOL_STARTING || pool->state == POOL_RUNNING)) {
		struct cr_who who = cr_worker_who(w);
		cr_info(&who, "replacing the worker now");
	}
}

/* Why it ended: what corral asked for, else what the exit says. */
static const char *exit_reason(const struct cr_worker *w, int status, const char *unknown, int oom, int failed)
{
	if (oom)
		return "oom";
	if (w->stop_reason)
		return w->stop_reason;
	if (!unknown && WIFSIGNALED(status) && WTERMSIG(status) == w->signalled)
		return "requested";	/* the operator's signal did it */
	return failed ? "crashed" : "exited";
}

/* Its main process is gone. unknown: why its wait status cannot be had
 * (status is then meaningless); an unknown end counts as a failure. */
static void worker_ended(struct cr_worker *w, int status, const char *unknown)
{
	struct cr_pool *pool = w->pool;
	const struct cr_pool_conf *pc = w->conf;
	struct cr_who who = cr_worker_who(w);
	int expected = w->state == W_STOPPING;
	int failed = unknown || !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	int current = pool->generation == w->generation && pool->state != POOL_REMOVED;
	int restart, oom;
	const char *reason;
	struct cr_slot *slot;
	struct cr_event ev;
	char how[96];

	worker_read_chan(w);	/* an exec error it sent before it went */
	if (unknown) {
		snprintf(how, sizeof how, "exited (status unknown: %s)", unknown);
		status = 0;
	} else {
		cr_text_wait_status(how, sizeof how, status);
	}
	oom = worker_oom_killed(w);
	reason = exit_reason(w, status, unknown, oom, failed);
	if (oom)
		cr_warn(&who, "worker killed by the kernel's OOM killer (%s): its cgroup ran out of memory", how);
	else if (expected)
		cr_info(&who, "worker stopped (%s)", how);
	else
		cr_log(failed ? CR_WARN : CR_INFO, &who, "worker %s", how);

	restart = !expected && !cr_sv.stopping && current &&
		  (pc->restart == CR_RESTART_ALWAYS ||
		   (pc->restart == CR_RESTART_ON_FAILURE && failed));
	if (!expected && !restart && current && pool->target > 0) {
		/* not to be replaced: the pool runs one fewer until reload,
		 * and this id is not refilled (a hole in 1..N) till then */
		pool->target--;
		if ((slot = cr_pool_slot(pool, w->id))) {
			slot->retired = 1;
			pool->retired_target = pool->target;
			pool->has_retired = 1;
		}
		cr_info(&who, "worker not restarted (restart = %s)",
			pc->restart == CR_RESTART_NEVER ? "never" : "on-failure");
	}
	cr_pool_record_exit(pool, w->id, &(struct cr_exit){
		.at = cr_stamp_now(), .reason = reason, .unknown = unknown, .oom = oom,
		.code = !unknown && WIFEXITED(status) ? WEXITSTATUS(status) : 0,
		.signal = !unknown && WIFSIGNALED(status) ? WTERMSIG(status) : 0,
		.core = !unknown && WIFSIGNALED(status) && WCOREDUMP(status),
		.step = w->has_exec_error ? w->start_step : NULL, .err = w->start_err,
	}, restart, how);
	pool->restarts += restart;
	if (restart)
		replace_worker(w, oom ? "was OOM-killed" : how);
	ev = (struct cr_event){
		.oom = oom, .exited = !unknown && WIFEXITED(status),
		.code = !unknown && WIFEXITED(status) ? WEXITSTATUS(status) : 0,
		.signal = !unknown && WIFSIGNALED(status) ? WTERMSIG(status) : 0,
		.reason = reason,
	};
	if (oom)
		cr_queue_worker_event("oom", w, ev);
	cr_queue_worker_event("worker_exited", w, ev);
	cr_pool_mark_dirty(pool);
	cr_worker_gone(w);
}

void cr_worker_exited(struct cr_worker *w, int status)
{
	worker_ended(w, status, NULL);
}

void cr_worker_lost(struct cr_worker *w, const char *why)
{
	ev_io_stop(cr_sv.loop, &w->main_io);
	worker_ended(w, 0, why);
}

/* The main process named by MAINPID= is dead. If it is corrald's child
 * (its parent died and it was reparented here), reap it for its status;
 * else its parent reaps it and the status is not to be had. */
static void main_exited(struct cr_worker *w, const char *unknown)
{
	siginfo_t si = { 0 };

	ev_io_stop(cr_sv.loop, &w->main_io);
	if (waitid(P_PIDFD, (id_t)w->pidfd, &si, WEXITED | WNOHANG) == 0 && si.si_pid != 0) {
		/* the wait status that waitpid() would give */
		if (si.si_code == CLD_EXITED)
			worker_ended(w, (si.si_status & 0xff) << 8, NULL);
		else
			worker_ended(w, (si.si_status & 0x7f) | (si.si_code == CLD_DUMPED ? 0x80 : 0), NULL);
		return;
	}
	worker_ended(w, 0, unknown);
}

/* A pidfd is readable once its process has exited. */
static void main_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)loop;
	(void)revents;
	main_exited(io->data, "not corrald's child");
}

void cr_worker_set_main(struct cr_worker *w, pid_t pid, int pidfd)
{
	struct cr_who who;
	char dir[PATH_MAX];

	ev_io_stop(cr_sv.loop, &w->main_io);
	close(w->pidfd);
	w->pidfd = pidfd;
	pid_remove(w);
	w->pid = pid;
	pid_add(w);
	if (w->proto && pid == w->forked) {
		/* back to the prototype's child: it reports the exit, with its
		 * status; an empty cgroup must not beat that report */
		cr_cgwatch_remove(w->watch);
		w->watch = -1;
		return;
	}
	/* the prototype does not reap this one: corrald must see it go */
	ev_io_set(&w->main_io, pidfd, EV_READ);
	ev_io_start(cr_sv.loop, &w->main_io);
	if (w->watch < 0 && cr_worker_dir(w, dir, sizeof dir) == 0 &&
	    (w->watch = cr_cgwatch_add(dir, cgroup_cb, w)) < 0) {
		who = cr_worker_who(w);
		cr_warn(&who, "cgroup: unable to watch %s/cgroup.events: %s", dir, strerror(-w->watch));
	}
}

/* The prototype's answer: the worker has a pid, a pidfd and a channel. */
void cr_worker_started(struct cr_worker *w, pid_t pid, int pidfd, int chan)
{
	struct cr_who who;

	w->pid = w->forked = pid;
	pid_add(w);
	w->pidfd = pidfd;
	w->chan = chan;
	w->started = ev_now(cr_sv.loop);
	ev_io_init(&w->chan_io, chan_cb, chan, EV_READ);
	w->chan_io.data = w;
	ev_io_start(cr_sv.loop, &w->chan_io);
	who = cr_worker_who(w);
	cr_info(&who, "worker started");
	cr_queue_worker_event("worker_started", w, (struct cr_event){ 0 });
	cr_pool_mark_dirty(w->pool);
	if (w->state == W_STOPPING) {
		send_stop(w);	/* asked to stop before its pid was known */
		return;
	}
	if (w->conf->watchdog > 0) {
		ev_timer_set(&w->watchdog, w->conf->watchdog, 0);
		ev_timer_start(cr_sv.loop, &w->watchdog);
	}
	if (w->conf->ready_timeout > 0) {
		ev_timer_set(&w->ready_timer, w->conf->ready_timeout, 0);
		ev_timer_start(cr_sv.loop, &w->ready_timer);
	}
	cr_worker_set_state(w, W_STARTING);
	if (w->early_ready)
		cr_worker_ready(w);
}
