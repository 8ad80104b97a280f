/*
 * supervisor.c: pools and workers. Events (a worker spawned, became ready,
 * exited; a prototype came up or died; a signal; a reload) change state
 * and mark the pool dirty; one place, reconcile(), then compares each
 * dirty pool with what it should be and acts: start a prototype, spawn or
 * stop workers, honouring backoff, the crash limit and rolling replacement.
 * reconcile() runs from an ev_prepare watcher, so event handlers never
 * recurse into each other.
 *
 * Process exits reach us two ways: the prototype reports its workers'
 * wait statuses, and corrald (a child subreaper) reaps its prototypes and
 * every orphan, including workers whose prototype died before them.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/inotify.h>
#include <sys/pidfd.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "config.h"
#include "json.h"
#include "layout.h"
#include "log.h"
#include "notify.h"
#include "proto.h"
#include "runtime.h"
#include "sockets.h"
#include "spawn.h"
#include "supervisor.h"

/* glibc's <sys/queue.h> lacks the _SAFE iterators */
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar) \
	for ((var) = TAILQ_FIRST(head); (var) && ((tvar) = TAILQ_NEXT(var, field), 1); (var) = (tvar))
#endif
#ifndef TAILQ_FOREACH_REVERSE_SAFE
#define TAILQ_FOREACH_REVERSE_SAFE(var, head, headname, field, tvar) \
	for ((var) = TAILQ_LAST(head, headname); \
	     (var) && ((tvar) = TAILQ_PREV(var, headname, field), 1); (var) = (tvar))
#endif

/* While starting, every EXTEND_EVERY seconds of progress buys EXTEND_USEC. */
#define EXTEND_EVERY 5.0
#define EXTEND_USEC 15000000ULL

/* Spawn requests a prototype may have unanswered at once. */
#define MAX_INFLIGHT 32

/* W_GONE: its main process exited; what it left in its cgroup is being
 * killed, and the record (and its id) stays until the cgroup is empty. */
enum worker_state { W_SPAWNING, W_STARTING, W_READY, W_STOPPING, W_GONE };

struct cr_worker {
	TAILQ_ENTRY(cr_worker) link;
	struct cr_pool *pool;
	struct cr_pool_conf *conf;	/* the definition it was made from */
	struct cr_proto *proto;		/* its parent; NULL once adopted by corrald */
	unsigned id, generation;
	uint32_t serial;
	pid_t pid;
	int pidfd, chan;
	ev_io chan_io;
	ev_timer kill_timer;
	enum worker_state state;
	int stop_pending;		/* asked to stop before its pid was known */
	int wd;				/* inotify watch on its cgroup.events, or -1 */
	ev_tstamp started;
	int has_exec_error;
	int early_ready;		/* READY=1 came before its pid did */
	pid_t first_pid;		/* the process forked; pid moves on MAINPID= */
	ev_timer watchdog;		/* pool's watchdog: WATCHDOG=1 restarts it */
	ev_timer ready_timer;		/* pool's ready_timeout until ready */
	char *status;			/* its last STATUS= */
};

enum pool_state { POOL_STARTING, POOL_RUNNING, POOL_FAILED, POOL_STOPPED };

struct cr_pool {
	TAILQ_ENTRY(cr_pool) link;
	char name[65];
	struct cr_pool_conf *conf;
	unsigned generation;		/* bumped when the definition changes */
	unsigned target;		/* workers wanted now */
	enum pool_state state;
	int removed, dirty, ready_logged;
	enum { THAWED, FREEZING, FROZEN, THAWING } freeze;
	int wd;				/* inotify watch on its cgroup.events while (un)freezing */
	struct cr_proto *proto;		/* of the current generation */
	TAILQ_HEAD(cr_worker_list, cr_worker) workers;
	unsigned nworkers;
	uint32_t next_serial;
	unsigned streak;		/* consecutive failures, for backoff */
	ev_tstamp not_before;		/* no spawn before this time */
	ev_timer retry;
	ev_tstamp *failures;		/* ring of the last crash_failures failure times */
	unsigned nfailures, fail_next;
	/* per worker id, for status: restarts and how the last one ended */
	struct cr_slot { unsigned restarts; char last_exit[112]; } *slots;
	unsigned nslots, restarts;
};

static struct {
	struct ev_loop *loop;
	struct cr_config *conf;
	TAILQ_HEAD(cr_pool_list, cr_pool) pools;
	struct cr_proto *protos;	/* every prototype not yet reaped and closed */
	int stopping, verbose, dirty;
	int inotify;			/* cgroup.events of emptying worker cgroups */
	ev_io inotify_io;
	int ready_sent;			/* READY=1 told to the service manager */
	int exit_code;
	char fail_reason[128];		/* why a start failed, for STATUS= */
	unsigned last_ready;		/* for EXTEND_TIMEOUT_USEC: progress */
	ev_timer extend;
	ev_signal sigterm, sigint, sighup;
	ev_child child;
	ev_prepare prepare;
} S;

static void mark_dirty(struct cr_pool *pool)
{
	pool->dirty = 1;
	S.dirty = 1;
}

static struct cr_who pool_who(const struct cr_pool *pool)
{
	return (struct cr_who){ .pool = pool->name };
}

static struct cr_who worker_who(const struct cr_worker *w)
{
	return (struct cr_who){ .pool = w->pool->name, .worker = w->id, .pid = w->pid };
}

static void format_duration(char *buf, size_t n, double s)
{
	if (s < 1)
		snprintf(buf, n, "%.0fms", s * 1e3);
	else if (s < 100000)
		snprintf(buf, n, "%gs", round(s * 1000) / 1000);
	else
		snprintf(buf, n, "%.0fs", s);
}

/* "exited with status 3", "killed by signal 9 (KILL) (core dumped)" */
static void format_status(char *buf, size_t n, int status)
{
	if (WIFEXITED(status))
		snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, n, "killed by signal %d (%s)%s", WTERMSIG(status),
			 sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?",
			 WCOREDUMP(status) ? " (core dumped)" : "");
	else
		snprintf(buf, n, "ended with wait status %#x", status);
}

/* ---- pools -------------------------------------------------------------- */

static void pool_set_conf(struct cr_pool *pool, struct cr_pool_conf *pc)
{
	struct cr_pool_conf *old = pool->conf;

	pool->conf = cr_pool_conf_ref(pc);
	cr_pool_conf_unref(old);
	pool->target = pc->workers;
	if (!old || old->crash_failures != pc->crash_failures) {
		free(pool->failures);
		pool->failures = pc->crash_failures ? calloc(pc->crash_failures, sizeof *pool->failures) : NULL;
		pool->nfailures = pool->fail_next = 0;
	}
}

/* A fresh start after failures: the backoff and the crash count forgotten,
 * and a failed pool given its chance again. A stopped pool stays stopped. */
static void pool_reset_failures(struct cr_pool *pool)
{
	pool->streak = 0;
	pool->not_before = 0;
	pool->nfailures = pool->fail_next = 0;
	if (pool->state == POOL_FAILED)
		pool->state = POOL_STARTING;
}

static void retry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	mark_dirty(t->data);
}

static struct cr_pool *pool_new(struct cr_pool_conf *pc)
{
	struct cr_pool *pool = calloc(1, sizeof *pool);

	if (!pool)
		return NULL;
	snprintf(pool->name, sizeof pool->name, "%s", pc->name);
	TAILQ_INIT(&pool->workers);
	pool->generation = 1;
	pool->state = POOL_STARTING;
	pool->wd = -1;
	ev_timer_init(&pool->retry, retry_cb, 0, 0);
	pool->retry.data = pool;
	pool_set_conf(pool, pc);
	cr_layout_pool(pool->name, &pc->limits, &pc->worker_limits);
	if (pc->crash_failures && !pool->failures) {
		cr_pool_conf_unref(pool->conf);
		free(pool);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&S.pools, pool, link);
	mark_dirty(pool);
	return pool;
}

static void pool_free(struct cr_pool *pool)
{
	char dir[PATH_MAX];

	if (pool->wd >= 0)
		inotify_rm_watch(S.inotify, pool->wd);
	if (cr_layout_proto_dir(dir, sizeof dir, pool->name) == 0)
		cr_cgroup_rmdir(dir);
	if (cr_layout_pool_dir(dir, sizeof dir, pool->name) == 0)
		cr_cgroup_rmdir(dir);
	TAILQ_REMOVE(&S.pools, pool, link);
	ev_timer_stop(S.loop, &pool->retry);
	cr_pool_conf_unref(pool->conf);
	free(pool->failures);
	free(pool->slots);
	free(pool);
}

static struct cr_slot *slot_of(struct cr_pool *pool, unsigned id)
{
	if (id == 0)
		return NULL;
	if (id > pool->nslots) {
		unsigned n = id + 8;
		struct cr_slot *s = realloc(pool->slots, n * sizeof *s);
		if (!s)
			return NULL;
		memset(s + pool->nslots, 0, (n - pool->nslots) * sizeof *s);
		pool->slots = s;
		pool->nslots = n;
	}
	return &pool->slots[id - 1];
}

static struct cr_pool *pool_find(const char *name)
{
	struct cr_pool *pool;

	TAILQ_FOREACH(pool, &S.pools, link)
		if (strcmp(pool->name, name) == 0)
			return pool;
	return NULL;
}

/* An unexpected exit of a worker or prototype: grow the backoff, and
 * mark the pool failed when it crosses the crash limit. */
static void pool_failure(struct cr_pool *pool, ev_tstamp ran_for, const char *what)
{
	const struct cr_pool_conf *pc = pool->conf;
	struct cr_who who = pool_who(pool);
	ev_tstamp now = ev_now(S.loop), delay;
	char d[32], iv[32];

	if (ran_for >= pc->backoff_reset)
		pool->streak = 0;
	pool->streak++;
	delay = pc->backoff_initial * pow(2, pool->streak - 1);
	if (delay > pc->backoff_max)
		delay = pc->backoff_max;
	pool->not_before = now + delay;

	if (pc->crash_failures && pool->failures) {
		pool->failures[pool->fail_next] = now;
		pool->fail_next = (pool->fail_next + 1) % pc->crash_failures;
		if (pool->nfailures < pc->crash_failures)
			pool->nfailures++;
		/* the oldest of the last crash_failures failures */
		if (pool->nfailures == pc->crash_failures &&
		    now - pool->failures[pool->fail_next] <= pc->crash_interval &&
		    pool->state != POOL_FAILED) {
			format_duration(iv, sizeof iv, pc->crash_interval);
			cr_error(&who, "pool failed: %u failures within %s, staying down until reload",
				 pc->crash_failures, iv);
			pool->state = POOL_FAILED;
			cr_runtime_emit_pool("pool_failed", pool->name);
			return;
		}
	}
	format_duration(d, sizeof d, delay);
	if (pool->target > 0 && !S.stopping)
		cr_info(&who, "restarting %s in %s", what, d);
}

/* ---- workers ------------------------------------------------------------ */

static int worker_dir(const struct cr_worker *w, char *buf, size_t n)
{
	return cr_layout_worker_dir(buf, n, w->pool->name, w->id);
}

/* Kills the worker and all it started: its whole cgroup. */
static void worker_kill(struct cr_worker *w)
{
	struct cr_who who = worker_who(w);
	char dir[PATH_MAX];
	int rc;

	if ((rc = worker_dir(w, dir, sizeof dir)) < 0 || (rc = cr_cgroup_kill(dir)) < 0) {
		cr_error(&who, "cgroup: unable to kill the worker's cgroup: %s", strerror(-rc));
		if (w->pidfd >= 0)
			pidfd_send_signal(w->pidfd, SIGKILL, NULL, 0);
	}
}

static void kill_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct cr_worker *w = t->data;
	struct cr_who who = worker_who(w);
	char d[32];

	(void)loop;
	(void)revents;
	format_duration(d, sizeof d, w->conf->stop_timeout);
	cr_warn(&who, "worker did not stop within %s, sending KILL", d);
	worker_kill(w);
}

static void worker_signal(struct cr_worker *w, int sig)
{
	struct cr_who who = worker_who(w);

	if (w->pidfd < 0)
		return;
	if (pidfd_send_signal(w->pidfd, sig, NULL, 0) < 0 && errno != ESRCH)
		cr_error(&who, "unable to send %s to worker: %s", sigabbrev_np(sig), strerror(errno));
}

static void worker_stop(struct cr_worker *w)
{
	if (w->state >= W_STOPPING)
		return;
	w->state = W_STOPPING;
	ev_timer_stop(S.loop, &w->watchdog);	/* it is going anyway */
	ev_timer_stop(S.loop, &w->ready_timer);
	if (w->pid <= 0) {
		w->stop_pending = 1;
		return;
	}
	worker_signal(w, w->conf->stop_signal);
	ev_timer_set(&w->kill_timer, w->conf->stop_timeout, 0);
	ev_timer_start(S.loop, &w->kill_timer);
}

static void worker_free(struct cr_worker *w)
{
	char dir[PATH_MAX];

	if (w->wd >= 0)
		inotify_rm_watch(S.inotify, w->wd);
	if (worker_dir(w, dir, sizeof dir) == 0)
		cr_cgroup_rmdir(dir);
	TAILQ_REMOVE(&w->pool->workers, w, link);
	w->pool->nworkers--;
	ev_timer_stop(S.loop, &w->kill_timer);
	ev_timer_stop(S.loop, &w->watchdog);
	ev_timer_stop(S.loop, &w->ready_timer);
	free(w->status);
	if (w->chan >= 0) {
		ev_io_stop(S.loop, &w->chan_io);
		close(w->chan);
	}
	if (w->pidfd >= 0)
		close(w->pidfd);
	cr_pool_conf_unref(w->conf);
	free(w);
}

/* The lowest id no live worker of the pool uses: one pass over a bitmap
 * of the ids up to the number of workers (some id in 1..n+1 is free). */
static unsigned free_id(struct cr_pool *pool)
{
	unsigned char *used;
	struct cr_worker *w;
	unsigned id;

	used = calloc(pool->nworkers / 8 + 1, 1);
	if (!used) {
		/* out of memory: any id above all others is free too */
		id = 0;
		TAILQ_FOREACH(w, &pool->workers, link)
			id = w->id > id ? w->id : id;
		return id + 1;
	}
	TAILQ_FOREACH(w, &pool->workers, link)
		if (w->id >= 1 && w->id <= pool->nworkers)
			used[(w->id - 1) / 8] |= (unsigned char)(1u << ((w->id - 1) % 8));
	for (id = 1; id <= pool->nworkers; id++)
		if (!(used[(id - 1) / 8] & (1u << ((id - 1) % 8))))
			break;
	free(used);
	return id;
}

/* The worker's watchdog or ready_timeout ran out: abort it, as systemd
 * does, and kill its cgroup if it does not go; its exit is a failure. */
static void worker_abort(struct cr_worker *w, const char *why)
{
	struct cr_who who = worker_who(w);

	if (w->state >= W_STOPPING)
		return;
	cr_warn(&who, "%s, aborting the worker", why);
	ev_timer_stop(S.loop, &w->watchdog);
	ev_timer_stop(S.loop, &w->ready_timer);
	worker_signal(w, SIGABRT);
	ev_timer_set(&w->kill_timer, w->conf->stop_timeout, 0);
	ev_timer_start(S.loop, &w->kill_timer);
}

static void watchdog_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct cr_worker *w = t->data;
	char why[96], d[32];

	(void)loop;
	(void)revents;
	format_duration(d, sizeof d, w->conf->watchdog);
	snprintf(why, sizeof why, "watchdog timeout: no WATCHDOG=1 within %s", d);
	worker_abort(w, why);
}

static void ready_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct cr_worker *w = t->data;
	char why[96], d[32];

	(void)loop;
	(void)revents;
	format_duration(d, sizeof d, w->conf->ready_timeout);
	snprintf(why, sizeof why, "not ready within ready_timeout (%s)", d);
	worker_abort(w, why);
}

static void worker_spawn(struct cr_pool *pool)
{
	struct cr_who who = pool_who(pool);
	struct cr_worker *w = calloc(1, sizeof *w);
	char dir[PATH_MAX];
	int rc, cgfd;

	if (!w) {
		cr_error(&who, "unable to allocate a worker: out of memory");
		return;
	}
	w->pool = pool;
	w->conf = cr_pool_conf_ref(pool->conf);
	w->proto = pool->proto;
	w->generation = pool->generation;
	w->id = free_id(pool);
	w->serial = ++pool->next_serial;
	w->pidfd = w->chan = w->wd = -1;
	w->state = W_SPAWNING;
	ev_timer_init(&w->kill_timer, kill_cb, 0, 0);
	w->kill_timer.data = w;
	ev_timer_init(&w->watchdog, watchdog_cb, 0, 0);
	w->watchdog.data = w;
	ev_timer_init(&w->ready_timer, ready_timeout_cb, 0, 0);
	w->ready_timer.data = w;
	TAILQ_INSERT_TAIL(&pool->workers, w, link);
	pool->nworkers++;

	/* its cgroup first: it is born in it */
	who.worker = w->id;
	if ((rc = worker_dir(w, dir, sizeof dir)) < 0 || (rc = cr_cgroup_mkdir(dir)) < 0 ||
	    (rc = cgfd = cr_cgroup_open(dir)) < 0) {
		cr_error(&who, "cgroup: unable to create the worker's cgroup %s: %s", dir, strerror(-rc));
		goto fail;
	}
	cr_layout_apply(dir, &w->conf->worker_limits, &who);
	if (cr_layout_pool_has(pool->name, "memory") &&
	    (rc = cr_cgroup_write(dir, "memory.oom.group", "1")) < 0)
		cr_warn(&who, "cgroup: unable to set memory.oom.group: %s", strerror(-rc));
	rc = cr_proto_spawn(pool->proto, w->serial, w->id, cgfd);
	close(cgfd);
	if (rc < 0) {
		cr_error(&who, "unable to ask the prototype for a worker: %s", strerror(-rc));
		goto fail;
	}
	return;
fail:
	worker_free(w);
	pool_failure(pool, 0, "worker");
}

static void worker_ready(struct cr_worker *w)
{
	struct cr_who who = worker_who(w);

	if (w->state != W_STARTING)
		return;
	w->state = W_READY;
	ev_timer_stop(S.loop, &w->ready_timer);
	cr_debug(&who, "worker ready");
	cr_runtime_emit("worker_ready", &(struct cr_event){ .pool = w->pool->name, .worker = w->id, .pid = w->pid });
	mark_dirty(w->pool);
}

/* The channel: messages from the worker; EOF without an error before it
 * means the exec succeeded (the worker's end is close-on-exec) or the
 * worker is gone. */
static void worker_read_chan(struct cr_worker *w)
{
	struct cr_who who = worker_who(w);
	struct cr_chan_msg m;
	ssize_t n;

	while (w->chan >= 0) {
		n = recv(w->chan, &m, sizeof m, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n == (ssize_t)sizeof m && m.type == CR_CHAN_ERROR) {
			w->has_exec_error = 1;
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
				worker_ready(w);
			continue;
		}
		if (n == (ssize_t)sizeof m && m.type == CR_CHAN_READY) {
			if (w->conf->ready == CR_READY_NOTIFY)
				cr_debug(&who, "corral.ready() in a ready = \"notify\" pool: waiting for READY=1");
			else
				worker_ready(w);
			continue;
		}
		if (n > 0) {
			cr_warn(&who, "worker sent a message of %zd bytes that is not corral's, ignored", n);
			continue;
		}
		/* EOF (or a broken channel): the child is past exec or gone */
		ev_io_stop(S.loop, &w->chan_io);
		close(w->chan);
		w->chan = -1;
		if (!w->has_exec_error && w->conf->ready == CR_READY_STARTED)
			worker_ready(w);
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

	if (worker_dir(w, dir, sizeof dir) < 0)
		return 0;
	cr_cgroup_key(dir, "memory.events", "oom_kill", &kills);
	cr_cgroup_key(dir, "memory.events", "oom_group_kill", &group);
	return kills > 0 || group > 0;
}

/* Once the main process is gone, nothing it started may stay: kill the
 * rest of the cgroup, and free the worker when cgroup.events says it is
 * empty. */
static void worker_gone(struct cr_worker *w)
{
	struct cr_who who = worker_who(w);
	char dir[PATH_MAX], events[PATH_MAX + 16];
	int populated;

	ev_timer_stop(S.loop, &w->kill_timer);
	ev_timer_stop(S.loop, &w->watchdog);
	ev_timer_stop(S.loop, &w->ready_timer);
	w->state = W_GONE;
	if (worker_dir(w, dir, sizeof dir) < 0 || (populated = cr_cgroup_populated(dir)) <= 0) {
		worker_free(w);
		return;
	}
	snprintf(events, sizeof events, "%s/cgroup.events", dir);
	w->wd = inotify_add_watch(S.inotify, events, IN_MODIFY);
	if (w->wd < 0)
		cr_error(&who, "cgroup: unable to watch %s: %s", events, strerror(errno));
	cr_debug(&who, "killing what the worker left in its cgroup");
	worker_kill(w);
	/* it may have emptied before the watch was in place */
	if (cr_cgroup_populated(dir) <= 0)
		worker_free(w);
}

/* ---- freezing a pool ------------------------------------------------------ */

/* Confirms a freeze or thaw from cgroup.events. */
static void freeze_check(struct cr_pool *pool)
{
	struct cr_who who = pool_who(pool);
	char dir[PATH_MAX];
	long long frozen;

	if (pool->freeze != FREEZING && pool->freeze != THAWING)
		return;
	if (cr_layout_pool_dir(dir, sizeof dir, pool->name) < 0 ||
	    cr_cgroup_key(dir, "cgroup.events", "frozen", &frozen) < 0)
		return;
	if ((pool->freeze == FREEZING) != (frozen != 0))
		return;
	pool->freeze = frozen ? FROZEN : THAWED;
	if (pool->wd >= 0) {
		inotify_rm_watch(S.inotify, pool->wd);
		pool->wd = -1;
	}
	cr_info(&who, "pool %s", frozen ? "frozen" : "thawed");
	cr_runtime_emit_pool(frozen ? "frozen" : "thawed", pool->name);
	mark_dirty(pool);
}

const char *cr_supervisor_pool_name(unsigned i)
{
	struct cr_pool *pool;

	TAILQ_FOREACH(pool, &S.pools, link)
		if (!pool->removed && i-- == 0)
			return pool->name;
	return NULL;
}

int cr_supervisor_pool_exists(const char *name)
{
	struct cr_pool *pool = pool_find(name);

	return pool && !pool->removed;
}

int cr_supervisor_freeze(const char *name, int on)
{
	struct cr_pool *pool = pool_find(name);
	struct cr_who who = { .pool = name };
	char dir[PATH_MAX], events[PATH_MAX + 16];
	int rc;

	if (!pool || pool->removed)
		return -ENOENT;
	if ((on && (pool->freeze == FROZEN || pool->freeze == FREEZING)) ||
	    (!on && (pool->freeze == THAWED || pool->freeze == THAWING)))
		return 0;
	if ((rc = cr_layout_pool_dir(dir, sizeof dir, pool->name)) < 0)
		return rc;
	/* watch first: the kernel's confirmation may come at once */
	if (pool->wd < 0) {
		snprintf(events, sizeof events, "%s/cgroup.events", dir);
		pool->wd = inotify_add_watch(S.inotify, events, IN_MODIFY);
	}
	if ((rc = cr_cgroup_write(dir, "cgroup.freeze", on ? "1" : "0")) < 0) {
		cr_error(&who, "cgroup: unable to %s the pool: %s", on ? "freeze" : "thaw", strerror(-rc));
		return rc == -ENOENT ? -EOPNOTSUPP : rc;	/* no cgroup.freeze: an old kernel */
	}
	pool->freeze = on ? FREEZING : THAWING;
	cr_debug(&who, "%s the pool", on ? "freezing" : "thawing");
	return 0;
}

static void inotify_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct cr_pool *pool;
	struct cr_worker *w, *tmp;
	ssize_t n;

	(void)loop;
	(void)io;
	(void)revents;
	while ((n = read(S.inotify, buf, sizeof buf)) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *e = (const void *)p;
			p += sizeof *e + e->len;
			TAILQ_FOREACH(pool, &S.pools, link) {
				if (pool->wd == e->wd)
					freeze_check(pool);
				TAILQ_FOREACH_SAFE(w, &pool->workers, link, tmp) {
					char dir[PATH_MAX];
					if (w->wd != e->wd || w->state != W_GONE)
						continue;
					if (worker_dir(w, dir, sizeof dir) < 0 || cr_cgroup_populated(dir) <= 0) {
						mark_dirty(pool);
						worker_free(w);
					}
				}
			}
		}
	}
}

static void worker_exited(struct cr_worker *w, int status)
{
	struct cr_pool *pool = w->pool;
	const struct cr_pool_conf *pc = w->conf;
	struct cr_who who = worker_who(w);
	ev_tstamp ran_for = ev_now(S.loop) - w->started;
	int expected = w->state == W_STOPPING;
	int failed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	int restart, oom;
	struct cr_slot *slot;
	struct cr_event ev;
	char how[96];

	worker_read_chan(w);	/* an exec error it sent before it went */
	format_status(how, sizeof how, status);
	oom = worker_oom_killed(w);
	if (oom)
		cr_warn(&who, "worker killed by the kernel's OOM killer (%s): its cgroup ran out of memory", how);
	else if (expected)
		cr_info(&who, "worker stopped (%s)", how);
	else
		cr_log(failed ? CR_WARN : CR_INFO, &who, "worker %s", how);
	ev = (struct cr_event){
		.pool = pool->name, .worker = w->id, .pid = w->pid, .oom = oom,
		.exited = WIFEXITED(status), .code = WIFEXITED(status) ? WEXITSTATUS(status) : 0,
		.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0,
	};
	if (oom)
		cr_runtime_emit("oom", &ev);
	cr_runtime_emit("worker_exited", &ev);

	restart = !expected && !S.stopping && !pool->removed && pool->generation == w->generation &&
		  (pc->restart == CR_RESTART_ALWAYS ||
		   (pc->restart == CR_RESTART_ON_FAILURE && failed));
	if (!expected && !restart && pool->generation == w->generation && pool->target > 0) {
		/* not to be replaced: the pool runs one fewer until reload */
		pool->target--;
		cr_info(&who, "worker not restarted (restart = %s)",
			pc->restart == CR_RESTART_NEVER ? "never" : "on-failure");
	}
	if ((slot = slot_of(pool, w->id))) {
		snprintf(slot->last_exit, sizeof slot->last_exit, "%s%s", oom ? "OOM-killed, " : "", how);
		slot->restarts += restart;
	}
	pool->restarts += restart;
	worker_gone(w);
	if (restart)
		pool_failure(pool, ran_for, "worker");
	mark_dirty(pool);
}

static struct cr_worker *worker_by_pid(struct cr_proto *from, pid_t pid)
{
	struct cr_pool *pool;
	struct cr_worker *w;

	TAILQ_FOREACH(pool, &S.pools, link)
		TAILQ_FOREACH(w, &pool->workers, link)
			if (w->pid == pid && w->state != W_GONE && (!from || w->proto == from))
				return w;
	return NULL;
}

/* ---- events from the prototypes ----------------------------------------- */

void cr_supervisor_on_proto_ready(struct cr_proto *p)
{
	struct cr_who who = { .pool = p->conf->name, .pid = p->pid };

	ev_timer_stop(S.loop, &p->start_timer);
	cr_debug(&who, "prototype ready");
	mark_dirty(p->pool);
}

static struct cr_worker *worker_by_serial(struct cr_proto *p, uint32_t serial)
{
	struct cr_worker *w;

	TAILQ_FOREACH(w, &p->pool->workers, link)
		if (w->proto == p && w->serial == serial && w->pid == 0)
			return w;
	return NULL;
}

void cr_supervisor_on_spawned(struct cr_proto *p, uint32_t serial, pid_t pid, int pidfd, int chan)
{
	struct cr_worker *w = worker_by_serial(p, serial);
	struct cr_who who = { .pool = p->conf->name, .pid = pid };

	if (!w) {
		/* we gave up on it: not ours to keep running */
		cr_warn(&who, "prototype spawned a worker nobody waits for, killing it");
		pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
		close(pidfd);
		close(chan);
		return;
	}
	w->pid = w->first_pid = pid;
	w->pidfd = pidfd;
	w->chan = chan;
	if (w->conf->watchdog > 0) {
		ev_timer_set(&w->watchdog, w->conf->watchdog, 0);
		ev_timer_start(S.loop, &w->watchdog);
	}
	if (w->conf->ready_timeout > 0) {
		ev_timer_set(&w->ready_timer, w->conf->ready_timeout, 0);
		ev_timer_start(S.loop, &w->ready_timer);
	}
	w->started = ev_now(S.loop);
	ev_io_init(&w->chan_io, chan_cb, chan, EV_READ);
	w->chan_io.data = w;
	ev_io_start(S.loop, &w->chan_io);
	who = worker_who(w);
	cr_info(&who, "worker started");
	cr_runtime_emit("worker_started", &(struct cr_event){ .pool = w->pool->name, .worker = w->id, .pid = pid });
	if (w->stop_pending) {
		w->state = W_SPAWNING;	/* let worker_stop() act now */
		worker_stop(w);
		return;
	}
	w->state = W_STARTING;
	if (w->early_ready)
		worker_ready(w);
	mark_dirty(w->pool);
}

void cr_supervisor_on_spawn_failed(struct cr_proto *p, uint32_t serial, int err)
{
	struct cr_worker *w = worker_by_serial(p, serial);
	struct cr_who who = { .pool = p->conf->name, .pid = p->pid };
	struct cr_pool *pool = p->pool;

	cr_error(&who, "prototype: unable to fork a worker: %s", strerror(err));
	if (w)
		worker_free(w);
	pool_failure(pool, 0, "worker");
	mark_dirty(pool);
}

void cr_supervisor_on_exited(struct cr_proto *p, pid_t pid, int status)
{
	struct cr_worker *w = worker_by_pid(p, pid);
	struct cr_who who = { .pool = p->conf->name, .pid = pid };

	if (!w) {
		/* a worker's first process, after MAINPID= named another */
		cr_debug(&who, "prototype reaped a process that is no worker's main one");
		return;
	}
	worker_exited(w, status);
}

void cr_supervisor_on_proto_lost(struct cr_proto *p)
{
	/* it closed its end: dying or broken; its exit is handled when reaped */
	cr_proto_close(S.loop, p);
}

/* ---- notifications from workers ----------------------------------------- */

/* The worker a process belongs to, by the cgroup the kernel says it is
 * in: a helper a worker runs counts for it; no one else can. */
static struct cr_worker *worker_of_pid(pid_t pid)
{
	char cg[PATH_MAX], pool_name[65];
	struct cr_pool *pool;
	struct cr_worker *w;
	unsigned id;

	if (cr_cgroup_of(pid, cg, sizeof cg) < 0 ||
	    cr_layout_attribute(cg, pool_name, sizeof pool_name, &id) < 0 ||
	    !(pool = pool_find(pool_name)))
		return NULL;
	/* a worker may speak before the prototype's answer with its pid
	 * has reached us: its cgroup is what counts */
	TAILQ_FOREACH(w, &pool->workers, link)
		if (w->id == id && w->state < W_GONE)
			return w;
	return NULL;
}

void cr_supervisor_on_notify(pid_t sender, const struct cr_notify_msg *m)
{
	struct cr_worker *w = worker_of_pid(sender);
	struct cr_who who = { .pid = sender };

	if (!w) {
		cr_debug(&who, "notify: ignored a message from a process that is in no worker's cgroup");
		return;
	}
	who = worker_who(w);
	if (m->mainpid) {
		struct cr_worker *owner = worker_of_pid(m->mainpid);
		int fd = owner == w ? pidfd_open(m->mainpid, 0) : -1;
		if (fd < 0) {
			cr_warn(&who, "notify: ignored MAINPID=%d: not a process of this worker", (int)m->mainpid);
		} else if (m->mainpid != w->pid && w->pid > 0) {
			cr_info(&who, "worker's main process is now pid %d (MAINPID)", (int)m->mainpid);
			close(w->pidfd);
			w->pidfd = fd;
			w->pid = m->mainpid;
			who.pid = w->pid;
		} else {
			close(fd);
		}
	}
	if (m->has_status) {
		free(w->status);
		w->status = strdup(m->status);
		cr_debug(&who, "notify: STATUS=%s", m->status);
	}
	if (m->watchdog && w->conf->watchdog > 0 && w->state < W_STOPPING) {
		ev_timer_stop(S.loop, &w->watchdog);	/* set only works on a stopped timer */
		ev_timer_set(&w->watchdog, w->conf->watchdog, 0);
		ev_timer_start(S.loop, &w->watchdog);
	}
	if (m->extend_usec && ev_is_active(&w->ready_timer)) {
		ev_timer_stop(S.loop, &w->ready_timer);
		ev_timer_set(&w->ready_timer, (double)m->extend_usec / 1e6, 0);
		ev_timer_start(S.loop, &w->ready_timer);
		cr_debug(&who, "notify: ready_timeout extended by %.3fs", (double)m->extend_usec / 1e6);
	}
	if (m->stopping)
		cr_info(&who, "worker says it is stopping (STOPPING=1)");
	if (m->has_errno)
		cr_info(&who, "worker reports errno %d (%s)", m->errnum, strerror(m->errnum));
	if (m->ready) {
		if (w->conf->ready == CR_READY_NOTIFY && w->state == W_SPAWNING)
			w->early_ready = 1;	/* applied once its pid is known */
		else if (w->conf->ready == CR_READY_NOTIFY)
			worker_ready(w);
		else
			cr_debug(&who, "notify: READY=1 (the pool's ready rule is not \"notify\")");
	}
	if (m->watchdog_trigger && w->state < W_STOPPING)
		worker_abort(w, "watchdog triggered by the worker (WATCHDOG=trigger)");
}

/* ---- prototypes --------------------------------------------------------- */

static void proto_unlink(struct cr_proto *p)
{
	for (struct cr_proto **pp = &S.protos; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			return;
		}
	}
}

/* Workers whose prototype is gone are corrald's children now. */
static void adopt_workers(struct cr_proto *p)
{
	struct cr_worker *w, *tmp;

	TAILQ_FOREACH_SAFE(w, &p->pool->workers, link, tmp) {
		if (w->proto != p)
			continue;
		if (w->pid == 0) {
			/* its answer never came: if it was forked, its cgroup
			 * holds it; kill and remove that like any worker's */
			worker_gone(w);
			continue;
		}
		w->proto = NULL;
	}
}

static void proto_reaped(struct cr_proto *p, int status)
{
	struct cr_pool *pool = p->pool;
	struct cr_who who = { .pool = pool->name, .pid = p->pid };
	char how[96];

	p->reaped = 1;
	ev_timer_stop(S.loop, &p->start_timer);
	cr_proto_close(S.loop, p);	/* reads what it said before dying */
	adopt_workers(p);
	format_status(how, sizeof how, status);
	/* a prototype we retired is no longer the pool's */
	if (pool->proto == p) {
		pool->proto = NULL;
		cr_warn(&who, "prototype exited unexpectedly (%s)", how);
		pool_failure(pool, 0, "prototype");
	} else {
		cr_debug(&who, "prototype %s", how);
	}
	proto_unlink(p);
	cr_proto_free(p);
	mark_dirty(pool);
}

/* A prototype that is not serving in time (prefork stuck) is killed; its
 * exit then counts as a failure of the pool. */
static void proto_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct cr_proto *p = t->data;
	struct cr_who who = { .pool = p->pool->name, .pid = p->pid };
	char d[32];

	(void)loop;
	(void)revents;
	format_duration(d, sizeof d, p->conf->prefork_timeout);
	cr_error(&who, "prototype not ready within %s (prefork_timeout), killing it", d);
	pidfd_send_signal(p->pidfd, SIGKILL, NULL, 0);
}

static void proto_start(struct cr_pool *pool)
{
	struct cr_who who = pool_who(pool);
	struct cr_proto *p = NULL;
	char dir[PATH_MAX];
	int cgfd, rc;

	if ((rc = cr_layout_proto_dir(dir, sizeof dir, pool->name)) < 0 ||
	    (rc = cr_cgroup_mkdir(dir)) < 0 || (rc = cgfd = cr_cgroup_open(dir)) < 0) {
		cr_error(&who, "cgroup: unable to open the prototype's cgroup %s: %s", dir, strerror(-rc));
	} else {
		p = cr_proto_start(S.loop, pool, pool->conf, pool->generation, cgfd);
		if (!p)
			cr_error(&who, "unable to start the prototype: %s", strerror(errno));
		close(cgfd);
	}
	if (!p) {
		pool_failure(pool, 0, "prototype");
		return;
	}
	p->next = S.protos;
	S.protos = p;
	pool->proto = p;
	ev_timer_init(&p->start_timer, proto_timeout_cb, pool->conf->prefork_timeout, 0);
	p->start_timer.data = p;
	ev_timer_start(S.loop, &p->start_timer);
	who.pid = p->pid;
	cr_info(&who, "prototype started");
}

/* ---- reconcile: what should be, from what is ---------------------------- */

static void arm_retry(struct cr_pool *pool)
{
	ev_tstamp wait = pool->not_before - ev_now(S.loop);

	if (ev_is_active(&pool->retry))
		return;
	ev_timer_set(&pool->retry, wait > 0 ? wait : 0, 0);
	ev_timer_start(S.loop, &pool->retry);
}

static void reconcile(struct cr_pool *pool)
{
	struct cr_worker *w, *tmp;
	unsigned want, cur = 0, cur_ready = 0, old = 0, room;
	int may_spawn;
	struct cr_who who = pool_who(pool);

	want = S.stopping || pool->removed || pool->state == POOL_STOPPED ? 0 : pool->target;
	may_spawn = want > 0 && pool->state != POOL_FAILED;

	TAILQ_FOREACH(w, &pool->workers, link) {
		if (w->state >= W_STOPPING)
			continue;
		if (w->generation == pool->generation) {
			cur++;
			cur_ready += w->state == W_READY;
		} else {
			old++;
		}
	}

	/* scale down: the newest surplus workers go first */
	TAILQ_FOREACH_REVERSE_SAFE(w, &pool->workers, cr_worker_list, link, tmp) {
		if (cur <= want)
			break;
		if (w->state < W_STOPPING && w->generation == pool->generation) {
			worker_stop(w);
			cur--;
			if (w->state == W_READY)
				cur_ready--;
		}
	}
	/* rolling replacement: an old worker goes once a new one is ready */
	TAILQ_FOREACH_SAFE(w, &pool->workers, link, tmp) {
		if (old == 0 || cur_ready + old <= want)
			break;
		if (w->state < W_STOPPING && w->generation != pool->generation) {
			worker_stop(w);
			old--;
		}
	}

	/* the prototype: one of the current generation while workers are wanted */
	if (pool->proto && (pool->proto->generation != pool->generation || !may_spawn)) {
		struct cr_proto *p = pool->proto;
		pool->proto = NULL;
		ev_timer_stop(S.loop, &p->start_timer);
		cr_proto_kill(p);	/* read on until it is reaped */
	}
	if (may_spawn && !pool->proto) {
		if (ev_now(S.loop) < pool->not_before) {
			arm_retry(pool);
		} else {
			proto_start(pool);
			if (!pool->proto)
				arm_retry(pool);
		}
	}

	if (may_spawn && pool->freeze == THAWED && pool->proto &&
	    pool->proto->state == CR_PROTO_READY && cur < want) {
		if (ev_now(S.loop) < pool->not_before) {
			arm_retry(pool);
		} else {
			/* during a rolling replacement, one worker above the count */
			room = want + (old > 0) - (cur + old);
			if (room > want - cur)
				room = want - cur;
			for (; room > 0 && pool->proto && pool->proto->inflight < MAX_INFLIGHT; room--)
				worker_spawn(pool);
		}
	}

	if (cur_ready >= want && old == 0 && want > 0 && pool->state != POOL_FAILED) {
		if (!pool->ready_logged) {
			cr_info(&who, "pool ready (%u/%u workers)", cur_ready, want);
			pool->ready_logged = 1;
			pool->state = POOL_RUNNING;
			cr_runtime_emit_pool("pool_ready", pool->name);
		}
	} else if (cur_ready < want) {
		pool->ready_logged = 0;
	}
}

/* Prototypes of the pool not yet reaped, current or retired: the pool
 * must outlive them (proto_reaped() uses it). */
static int pool_has_protos(const struct cr_pool *pool)
{
	for (const struct cr_proto *p = S.protos; p; p = p->next)
		if (p->pool == pool)
			return 1;
	return 0;
}

static int everything_stopped(void)
{
	struct cr_pool *pool;

	TAILQ_FOREACH(pool, &S.pools, link)
		if (!TAILQ_EMPTY(&pool->workers))
			return 0;
	return S.protos == NULL;
}

static void begin_stop(const char *why);

/* What the service manager sees: a STATUS= line when it changes, READY=1
 * once every pool has its workers ready, and a failed start when a pool
 * fails before that. */
static void update_manager(void)
{
	struct cr_pool *pool, *failed = NULL;
	struct cr_worker *w;
	unsigned pools = 0, want = 0, ready = 0, nfailed = 0;
	int all_ready = 1;
	char status[256];

	unsigned live = 0;

	TAILQ_FOREACH(pool, &S.pools, link) {
		unsigned r = 0;
		TAILQ_FOREACH(w, &pool->workers, link)
			live += w->state < W_GONE;
		if (pool->removed)
			continue;
		pools++;
		TAILQ_FOREACH(w, &pool->workers, link)
			r += w->state == W_READY && w->generation == pool->generation;
		ready += r;
		want += pool->target;
		if (pool->state == POOL_FAILED) {
			nfailed++;
			failed = failed ? failed : pool;
		}
		if (r < pool->target || pool->state == POOL_FAILED)
			all_ready = 0;
	}
	if (S.stopping && S.fail_reason[0])
		snprintf(status, sizeof status, "failed: %s; stopping: %u worker%s left", S.fail_reason,
			 live, live == 1 ? "" : "s");
	else if (S.stopping)
		snprintf(status, sizeof status, "stopping: %u worker%s left", live, live == 1 ? "" : "s");
	else
		snprintf(status, sizeof status, "%u pool%s, %u/%u workers ready%s%s", pools,
			 pools == 1 ? "" : "s", ready, want, nfailed ? ", failed: " : "",
			 nfailed ? failed->name : "");
	cr_notify_status(status);
	if (S.stopping)
		return;
	/* under a service manager, a start that cannot complete fails; run by
	 * hand, the other pools go on and the failed one waits for a reload */
	if (!S.ready_sent && failed && cr_notify_managed()) {
		char why[128];
		snprintf(why, sizeof why, "pool %s failed before it was ready", failed->name);
		snprintf(S.fail_reason, sizeof S.fail_reason, "%s", why);
		S.exit_code = 1;
		begin_stop(why);
		return;
	}
	if (!S.ready_sent && all_ready) {
		S.ready_sent = 1;
		ev_timer_stop(S.loop, &S.extend);
		cr_info(NULL, "ready: %s", status);
		cr_notify_ready();
	}
	S.last_ready = ready;
}

/* While pools come up, ask systemd for more time as long as workers keep
 * becoming ready: a start that progresses is not timed out. */
static void extend_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	static unsigned seen;

	(void)loop;
	(void)t;
	(void)revents;
	if (S.ready_sent || S.stopping)
		return;
	if (S.last_ready > seen)
		cr_notify_extend_timeout(EXTEND_USEC);
	seen = S.last_ready;
}

static void prepare_cb(struct ev_loop *loop, ev_prepare *pr, int revents)
{
	struct cr_pool *pool, *tmp;

	(void)pr;
	(void)revents;
	while (S.dirty) {
		S.dirty = 0;
		TAILQ_FOREACH_SAFE(pool, &S.pools, link, tmp) {
			if (!pool->dirty)
				continue;
			pool->dirty = 0;
			reconcile(pool);
			if (pool->removed && TAILQ_EMPTY(&pool->workers) && !pool->proto &&
			    !pool_has_protos(pool)) {
				struct cr_who who = pool_who(pool);
				cr_info(&who, "pool removed");
				pool_free(pool);
			}
		}
	}
	update_manager();
	if (S.stopping && everything_stopped()) {
		cr_info(NULL, "stopped");
		ev_break(loop, EVBREAK_ALL);
	}
}

/* ---- signals and children ----------------------------------------------- */

static void mark_all_dirty(void)
{
	struct cr_pool *pool;

	TAILQ_FOREACH(pool, &S.pools, link)
		mark_dirty(pool);
}

static void stop_cb(struct ev_loop *loop, ev_signal *sig, int revents)
{
	struct cr_pool *pool;
	struct cr_worker *w;

	(void)loop;
	(void)revents;
	if (S.stopping) {
		cr_warn(NULL, "%s again: killing every worker now", sigabbrev_np(sig->signum));
		TAILQ_FOREACH(pool, &S.pools, link)
			TAILQ_FOREACH(w, &pool->workers, link)
				if (w->pid > 0)
					worker_kill(w);
		return;
	}
	begin_stop(sigabbrev_np(sig->signum));
}

static void begin_stop(const char *why)
{
	struct cr_pool *pool;

	cr_info(NULL, "stopping (%s)", why);
	cr_notify_stopping();
	S.stopping = 1;
	cr_runtime_emit("stop", &(struct cr_event){ 0 });
	/* frozen workers cannot see their stop signal */
	TAILQ_FOREACH(pool, &S.pools, link)
		if (pool->freeze != THAWED)
			cr_supervisor_freeze(pool->name, 0);
	mark_all_dirty();
}

static int reload(char *msg, size_t msglen);

static void hup_cb(struct ev_loop *loop, ev_signal *sig, int revents)
{
	(void)loop;
	(void)sig;
	(void)revents;
	if (S.stopping)
		return;
	cr_supervisor_reload(NULL, 0);
}

static void child_cb(struct ev_loop *loop, ev_child *c, int revents)
{
	struct cr_proto *p;
	struct cr_worker *w;
	struct cr_who who = { .pid = c->rpid };

	(void)loop;
	(void)revents;
	for (p = S.protos; p; p = p->next) {
		if (p->pid == c->rpid) {
			proto_reaped(p, c->rstatus);
			return;
		}
	}
	w = worker_by_pid(NULL, c->rpid);
	if (w) {
		worker_exited(w, c->rstatus);
		return;
	}
	cr_debug(&who, "reaped an orphan");
}

/* ---- reload ------------------------------------------------------------- */

/* Limits change in place: the workers keep running. */
static void apply_worker_limits(struct cr_pool *pool)
{
	struct cr_worker *w;
	char dir[PATH_MAX];

	cr_layout_pool(pool->name, &pool->conf->limits, &pool->conf->worker_limits);
	TAILQ_FOREACH(w, &pool->workers, link) {
		struct cr_who who = worker_who(w);
		if (w->state < W_GONE && w->generation == pool->generation &&
		    worker_dir(w, dir, sizeof dir) == 0)
			cr_layout_apply(dir, &pool->conf->worker_limits, &who);
	}
}

int cr_supervisor_reload(char *msg, size_t msglen)
{
	char buf[1024];
	int rc;

	if (S.stopping) {
		snprintf(msg ? msg : buf, msg ? msglen : sizeof buf, "corrald is stopping");
		return -1;
	}
	cr_notify_reloading();
	rc = reload(msg ? msg : buf, msg ? msglen : sizeof buf);
	/* done, good or bad: the running configuration is whole again; before
	 * the first READY=1, that one still waits for the pools */
	if (S.ready_sent)
		cr_notify_ready();
	return rc;
}

/* 0 with a summary in msg, or -1 with the error in msg. */
static int reload(char *msg, size_t msglen)
{
	struct cr_config *conf;
	struct cr_pool *pool;
	unsigned added = 0, changed = 0, removed = 0, unchanged = 0, scaled = 0;
	char *err = NULL, errbuf[512];

	cr_info(NULL, "reload requested");
	conf = cr_config_load(S.conf->file, &err);
	if (!conf) {
		snprintf(msg, msglen, "%s", err ? err : "out of memory");
		cr_error(NULL, "reload failed, keeping the running configuration: %s", msg);
		free(err);
		return -1;
	}
	if (cr_layout_controllers(conf, errbuf, sizeof errbuf) < 0 ||
	    cr_sockets_open(conf, errbuf, sizeof errbuf) < 0) {
		snprintf(msg, msglen, "%s", errbuf);
		cr_error(NULL, "reload failed, keeping the running configuration: %s", errbuf);
		cr_config_free(conf);
		return -1;
	}
	if (strcmp(conf->cgroup, S.conf->cgroup) != 0)
		cr_warn(NULL, "reload: settings.cgroup changed; the base stays %s until corrald restarts",
			cr_layout_base());
	if (strcmp(conf->control, S.conf->control) != 0 ||
	    conf->control_group_set != S.conf->control_group_set ||
	    conf->control_group != S.conf->control_group)
		cr_warn(NULL, "reload: settings.control or control_group changed; "
			"the control socket stays as it is until corrald restarts");
	/* from here on nothing can fail: the new config is whole */
	TAILQ_FOREACH(pool, &S.pools, link)
		pool->dirty = 2;	/* 2: not seen in the new config */
	for (unsigned i = 0; i < conf->npools; i++) {
		struct cr_pool_conf *pc = conf->pools[i];
		struct cr_who who = { .pool = pc->name };

		pool = pool_find(pc->name);
		if (!pool) {
			if (!pool_new(pc)) {
				cr_error(&who, "unable to add pool: out of memory");
				continue;
			}
			added++;
			continue;
		}
		if (!pool->removed && cr_pool_conf_same(pool->conf, pc)) {
			if (pool->target != pc->workers)
				scaled++;
			else
				unchanged++;
			pool_set_conf(pool, pc);
			/* a failed pool gets its chance again on reload */
			if (pool->state == POOL_FAILED)
				pool_reset_failures(pool);
			apply_worker_limits(pool);
		} else {
			pool_set_conf(pool, pc);
			cr_layout_pool(pool->name, &pc->limits, &pc->worker_limits);
			pool->generation++;
			pool->removed = 0;
			pool_reset_failures(pool);
			if (pool->state == POOL_STOPPED)
				pool->state = POOL_STARTING;	/* a new definition starts */
			changed++;
		}
		mark_dirty(pool);
	}
	TAILQ_FOREACH(pool, &S.pools, link) {
		if (pool->dirty == 2) {
			pool->removed = 1;
			removed++;
			mark_dirty(pool);
		}
	}
	cr_config_free(S.conf);
	S.conf = conf;
	cr_sockets_commit(conf);
	if (!S.verbose && conf->log_level >= 0)
		cr_log_level = conf->log_level;
	snprintf(msg, msglen, "%u added, %u changed, %u removed, %u unchanged%s",
		 added, changed, removed, unchanged + scaled, scaled ? " (some rescaled)" : "");
	cr_info(NULL, "reload done: %s", msg);
	cr_runtime_activate(conf->lua);
	cr_runtime_emit("reload", &(struct cr_event){ 0 });
	return 0;
}

/* ---- control: what corralctl and plugins may ask ------------------------- */

static struct cr_pool *live_pool(const char *name)
{
	struct cr_pool *pool = pool_find(name);

	return pool && !pool->removed ? pool : NULL;
}

static struct cr_worker *live_worker(struct cr_pool *pool, unsigned id)
{
	struct cr_worker *w;

	TAILQ_FOREACH(w, &pool->workers, link)
		if (w->id == id && w->state < W_STOPPING && w->pid > 0)
			return w;
	return NULL;
}

int cr_supervisor_scale(const char *name, unsigned n)
{
	struct cr_pool *pool = live_pool(name);
	struct cr_who who = { .pool = name };

	if (!pool)
		return -ENOENT;
	if (n > 10000)
		return -ERANGE;
	cr_info(&who, "scaling from %u to %u workers (until the next reload)", pool->target, n);
	pool->target = n;
	mark_dirty(pool);
	return 0;
}

int cr_supervisor_restart(const char *name, unsigned id, int all_at_once)
{
	struct cr_pool *pool = live_pool(name);
	struct cr_who who = { .pool = name, .worker = id };
	struct cr_worker *w;

	if (!pool)
		return -ENOENT;
	if (id) {
		if (!(w = live_worker(pool, id)))
			return -ESRCH;
		cr_info(&who, "restarting the worker");
		worker_stop(w);	/* the pool still wants it: a new one comes */
		mark_dirty(pool);
		return 0;
	}
	/* a new generation: a new prototype (fresh code), then workers
	 * replaced one by one, or all at once */
	cr_info(&who, "restarting the pool%s", all_at_once ? ", all workers at once" : "");
	pool->generation++;
	pool_reset_failures(pool);	/* a failed pool gets going; a stopped one waits for start */
	if (all_at_once)
		TAILQ_FOREACH(w, &pool->workers, link)
			worker_stop(w);
	mark_dirty(pool);
	return 0;
}

int cr_supervisor_pool_stop(const char *name)
{
	struct cr_pool *pool = live_pool(name);
	struct cr_who who = { .pool = name };

	if (!pool)
		return -ENOENT;
	if (pool->state != POOL_STOPPED)
		cr_info(&who, "stopping the pool (until started)");
	pool->state = POOL_STOPPED;
	mark_dirty(pool);
	return 0;
}

int cr_supervisor_pool_start(const char *name)
{
	struct cr_pool *pool = live_pool(name);
	struct cr_who who = { .pool = name };

	if (!pool)
		return -ENOENT;
	if (pool->state == POOL_STOPPED || pool->state == POOL_FAILED) {
		cr_info(&who, "starting the pool");
		pool->state = POOL_STARTING;
		pool_reset_failures(pool);
		pool->ready_logged = 0;
	}
	mark_dirty(pool);
	return 0;
}

int cr_supervisor_signal(const char *name, unsigned id, int sig)
{
	struct cr_pool *pool = live_pool(name);
	struct cr_worker *w;
	int n = 0;

	if (!pool)
		return -ENOENT;
	TAILQ_FOREACH(w, &pool->workers, link) {
		if ((id && w->id != id) || w->state >= W_GONE || w->pidfd < 0)
			continue;
		if (pidfd_send_signal(w->pidfd, sig, NULL, 0) == 0)
			n++;
	}
	return id && n == 0 ? -ESRCH : n;
}

static const char *pool_state_name(const struct cr_pool *pool, unsigned ready, unsigned old)
{
	if (S.stopping)
		return "stopping";
	if (pool->state == POOL_STOPPED)
		return "stopped";
	if (pool->state == POOL_FAILED)
		return "failed";
	if (pool->freeze == FROZEN || pool->freeze == FREEZING)
		return "frozen";
	if (old)
		return "reloading";
	return ready >= pool->target ? "running" : "starting";
}

static const char *const worker_state_names[] = {
	[W_SPAWNING] = "spawning", [W_STARTING] = "starting", [W_READY] = "ready",
	[W_STOPPING] = "stopping", [W_GONE] = "exited",
};

static void json_stat(struct cr_buf *b, const char *key, long long v)
{
	if (v < 0)
		cr_buf_printf(b, ",\"%s\":null", key);
	else
		cr_buf_printf(b, ",\"%s\":%lld", key, v);
}

static void format_bytes(char *buf, size_t n, long long v)
{
	if (v < 0)
		snprintf(buf, n, "-");
	else if (v >= 1LL << 30)
		snprintf(buf, n, "%.1fG", (double)v / (1 << 30));
	else if (v >= 1LL << 20)
		snprintf(buf, n, "%.1fM", (double)v / (1 << 20));
	else
		snprintf(buf, n, "%.0fK", (double)v / 1024);
}

/* status [POOL]: as JSON (the "pools" array of the response) or as the
 * table corralctl prints. -ENOENT for an unknown pool. */
int cr_supervisor_status(struct cr_buf *b, const char *only, int json)
{
	struct cr_pool *pool;
	struct cr_worker *w;
	int first = 1, found = 0;
	ev_tstamp now = ev_now(S.loop);

	if (only && !live_pool(only))
		return -ENOENT;
	if (json)
		cr_buf_lit(b, "[");
	else
		cr_buf_printf(b, "%-20s %-10s %7s %7s %6s %8s\n", "POOL", "STATE", "READY", "WORKERS", "TARGET", "RESTARTS");
	TAILQ_FOREACH(pool, &S.pools, link) {
		unsigned ready = 0, total = 0, old = 0;
		char dir[PATH_MAX];
		struct cr_cgroup_stats st = { -1, -1, -1, -1, -1, -1, -1 };

		if (pool->removed || (only && strcmp(only, pool->name)))
			continue;
		found = 1;
		TAILQ_FOREACH(w, &pool->workers, link) {
			if (w->state >= W_STOPPING)
				continue;
			total++;
			ready += w->state == W_READY;
			old += w->generation != pool->generation;
		}
		if (cr_layout_pool_dir(dir, sizeof dir, pool->name) == 0)
			cr_cgroup_stats(dir, &st);
		if (json) {
			cr_buf_add(b, first ? "{" : ",{", first ? 1 : 2);
			first = 0;
			cr_buf_lit(b, "\"name\":");
			cr_buf_json_string(b, pool->name);
			cr_buf_printf(b, ",\"state\":\"%s\",\"ready\":%u,\"total\":%u,\"target\":%u,"
				      "\"restarts\":%u,\"generation\":%u",
				      pool_state_name(pool, ready, old), ready, total, pool->target,
				      pool->restarts, pool->generation);
			json_stat(b, "memory_current", st.memory_current);
			json_stat(b, "cpu_usage_usec", st.cpu_usage_usec);
			cr_buf_lit(b, ",\"workers\":[");
		} else {
			char r[24];
			snprintf(r, sizeof r, "%u/%u", ready, pool->target);
			cr_buf_printf(b, "%-20s %-10s %7s %7u %6u %8u\n", pool->name,
				      pool_state_name(pool, ready, old), r, total, pool->target, pool->restarts);
			cr_buf_printf(b, "  %4s %8s %-9s %8s %8s %8s %9s  %s\n", "ID", "PID", "STATE",
				      "UPTIME", "RESTARTS", "MEMORY", "CPU", "STATUS / LAST EXIT");
		}
		int wfirst = 1;
		TAILQ_FOREACH(w, &pool->workers, link) {
			struct cr_slot *slot = slot_of(pool, w->id);
			struct cr_cgroup_stats ws = { -1, -1, -1, -1, -1, -1, -1 };
			double up = w->pid > 0 ? now - w->started : 0;

			if (worker_dir(w, dir, sizeof dir) == 0)
				cr_cgroup_stats(dir, &ws);
			if (json) {
				cr_buf_add(b, wfirst ? "{" : ",{", wfirst ? 1 : 2);
				wfirst = 0;
				cr_buf_printf(b, "\"id\":%u,\"pid\":%d,\"state\":\"%s\",\"generation\":%u,"
					      "\"uptime\":%.3f,\"restarts\":%u,\"last_exit\":",
					      w->id, (int)w->pid, worker_state_names[w->state], w->generation,
					      up, slot ? slot->restarts : 0);
				if (slot && slot->last_exit[0])
					cr_buf_json_string(b, slot->last_exit);
				else
					cr_buf_lit(b, "null");
				cr_buf_lit(b, ",\"status\":");
				if (w->status)
					cr_buf_json_string(b, w->status);
				else
					cr_buf_lit(b, "null");
				json_stat(b, "memory_current", ws.memory_current);
				json_stat(b, "cpu_usage_usec", ws.cpu_usage_usec);
				cr_buf_lit(b, "}");
			} else {
				char upt[32], mem[16], cpu[24];
				format_duration(upt, sizeof upt, up);
				format_bytes(mem, sizeof mem, ws.memory_current);
				if (ws.cpu_usage_usec >= 0)
					snprintf(cpu, sizeof cpu, "%.2fs", (double)ws.cpu_usage_usec / 1e6);
				else
					snprintf(cpu, sizeof cpu, "-");
				cr_buf_printf(b, "  %4u %8d %-9s %8s %8u %8s %9s  %s\n", w->id, (int)w->pid,
					      worker_state_names[w->state], upt, slot ? slot->restarts : 0, mem, cpu,
					      w->status ? w->status : slot && slot->last_exit[0] ? slot->last_exit : "");
			}
		}
		if (json)
			cr_buf_lit(b, "]}");
	}
	if (json)
		cr_buf_lit(b, "]");
	else if (!found)
		cr_buf_printf(b, "(no pools)\n");
	return 0;
}

/* ---- start and finish ---------------------------------------------------- */

void cr_supervisor_finish(void)
{
	struct cr_pool *pool;

	while ((pool = TAILQ_FIRST(&S.pools))) {
		while (!TAILQ_EMPTY(&pool->workers))
			worker_free(TAILQ_FIRST(&pool->workers));
		if (pool->proto && !pool->proto->reaped)
			cr_proto_close(S.loop, pool->proto);
		pool_free(pool);
	}
	while (S.protos) {
		struct cr_proto *p = S.protos;
		S.protos = p->next;
		ev_timer_stop(S.loop, &p->start_timer);
		cr_proto_free(p);
	}
	cr_runtime_finish();
	cr_notify_close();
	cr_notify_finish();
	ev_timer_stop(S.loop, &S.extend);
	cr_config_free(S.conf);
	S.conf = NULL;
	if (S.inotify >= 0) {
		ev_io_stop(S.loop, &S.inotify_io);
		close(S.inotify);
		S.inotify = -1;
	}
}


int cr_supervisor_exit_code(void)
{
	return S.exit_code;
}

int cr_supervisor_start(struct ev_loop *loop, struct cr_config *conf, int verbose)
{
	int rc;

	S.loop = loop;
	S.conf = conf;
	S.verbose = verbose;
	TAILQ_INIT(&S.pools);

	ev_signal_init(&S.sigterm, stop_cb, SIGTERM);
	ev_signal_init(&S.sigint, stop_cb, SIGINT);
	ev_signal_init(&S.sighup, hup_cb, SIGHUP);
	ev_signal_start(loop, &S.sigterm);
	ev_signal_start(loop, &S.sigint);
	ev_signal_start(loop, &S.sighup);
	ev_child_init(&S.child, child_cb, 0, 0);
	ev_child_start(loop, &S.child);
	ev_prepare_init(&S.prepare, prepare_cb);
	ev_prepare_start(loop, &S.prepare);
	S.inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (S.inotify < 0) {
		cr_error(NULL, "unable to create an inotify instance: %m");
		return -1;
	}
	ev_io_init(&S.inotify_io, inotify_cb, S.inotify, EV_READ);
	ev_io_start(loop, &S.inotify_io);
	cr_runtime_init(loop);
	cr_notify_init(loop);
	if ((rc = cr_notify_listen(loop)) < 0) {
		cr_error(NULL, "notify: unable to open the workers' notify socket: %s", strerror(-rc));
		return -1;
	}
	ev_timer_init(&S.extend, extend_cb, EXTEND_EVERY, EXTEND_EVERY);
	ev_timer_start(loop, &S.extend);

	for (unsigned i = 0; i < conf->npools; i++) {
		if (!pool_new(conf->pools[i])) {
			cr_error(NULL, "unable to set up pool %s: out of memory", conf->pools[i]->name);
			return -1;
		}
	}
	if (conf->npools == 0)
		cr_notice(NULL, "no pools configured");
	cr_runtime_activate(conf->lua);
	return 0;
}
