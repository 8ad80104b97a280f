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
#include "layout.h"
#include "log.h"
#include "proto.h"
#include "runtime.h"
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
};

static struct {
	struct ev_loop *loop;
	struct cr_config *conf;
	TAILQ_HEAD(cr_pool_list, cr_pool) pools;
	struct cr_proto *protos;	/* every prototype not yet reaped and closed */
	int stopping, verbose, dirty;
	int inotify;			/* cgroup.events of emptying worker cgroups */
	ev_io inotify_io;
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
	else
		snprintf(buf, n, "%gs", round(s * 1000) / 1000);
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

/* A fresh start: a failed pool given a chance again, a new definition. */
static void pool_reset_failures(struct cr_pool *pool)
{
	pool->streak = 0;
	pool->not_before = 0;
	pool->nfailures = pool->fail_next = 0;
	if (pool->state == POOL_FAILED || pool->state == POOL_STOPPED)
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
	free(pool);
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
			if (!w->conf->ready_lua)
				worker_ready(w);
			continue;
		}
		if (n == (ssize_t)sizeof m && m.type == CR_CHAN_READY) {
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
		if (!w->has_exec_error && !w->conf->ready_lua)
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
		return rc;
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
	w->pid = pid;
	w->pidfd = pidfd;
	w->chan = chan;
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
		cr_debug(&who, "prototype reaped an unknown process");
		return;
	}
	worker_exited(w, status);
}

void cr_supervisor_on_proto_lost(struct cr_proto *p)
{
	/* it closed its end: dying or broken; its exit is handled when reaped */
	cr_proto_close(S.loop, p);
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
			/* its answer never came: if it was forked, it is an
			 * orphan we reap but cannot track */
			worker_free(w);
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
	cr_info(NULL, "stopping (%s)", sigabbrev_np(sig->signum));
	S.stopping = 1;
	cr_runtime_emit("stop", &(struct cr_event){ 0 });
	/* frozen workers cannot see their stop signal */
	TAILQ_FOREACH(pool, &S.pools, link)
		if (pool->freeze != THAWED)
			cr_supervisor_freeze(pool->name, 0);
	mark_all_dirty();
}

static void reload(void);

static void hup_cb(struct ev_loop *loop, ev_signal *sig, int revents)
{
	(void)loop;
	(void)sig;
	(void)revents;
	if (S.stopping)
		return;
	reload();
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

static void reload(void)
{
	struct cr_config *conf;
	struct cr_pool *pool;
	unsigned added = 0, changed = 0, removed = 0, unchanged = 0, scaled = 0;
	char *err = NULL, errbuf[512];

	cr_info(NULL, "reload requested");
	conf = cr_config_load(S.conf->file, &err);
	if (!conf) {
		cr_error(NULL, "reload failed, keeping the running configuration: %s",
			 err ? err : "out of memory");
		free(err);
		return;
	}
	if (cr_layout_controllers(conf, errbuf, sizeof errbuf) < 0) {
		cr_error(NULL, "reload failed, keeping the running configuration: %s", errbuf);
		cr_config_free(conf);
		return;
	}
	if (strcmp(conf->cgroup, S.conf->cgroup) != 0)
		cr_warn(NULL, "reload: settings.cgroup changed; the base stays %s until corrald restarts",
			cr_layout_base());
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
	if (!S.verbose && conf->log_level >= 0)
		cr_log_level = conf->log_level;
	cr_info(NULL, "reload done: %u added, %u changed, %u removed, %u unchanged%s",
		added, changed, removed, unchanged + scaled,
		scaled ? " (some rescaled)" : "");
	cr_runtime_activate(conf->lua);
	cr_runtime_emit("reload", &(struct cr_event){ 0 });
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
	cr_config_free(S.conf);
	S.conf = NULL;
	if (S.inotify >= 0) {
		ev_io_stop(S.loop, &S.inotify_io);
		close(S.inotify);
		S.inotify = -1;
	}
}


int cr_supervisor_start(struct ev_loop *loop, struct cr_config *conf, int verbose)
{
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
