/*
 * supervisor.c: pools and workers. Events (a worker spawned, became ready,
 * exited; a prototype came up or died; a signal; a control request) change
 * state, each change through one function per object that checks it
 * against a table of allowed moves, and mark the pool dirty; one place,
 * reconcile(), then compares each dirty pool with what it should be and
 * acts: start a prototype, spawn or stop workers, honouring backoff, the
 * crash limit and rolling replacement. reconcile() runs from an ev_prepare
 * watcher, so handlers never recurse into each other; the events plugins
 * see are queued and delivered after it (no Lua runs inside a transition).
 *
 * Process exits reach us two ways: the prototype reports its workers'
 * wait statuses, and corrald (a child subreaper) reaps its prototypes and
 * every orphan, including workers whose prototype died before them.
 *
 * Not here: status.c (the report), reload.c (a new config), wnotify.c
 * (what workers say on their notify socket), manager.c (what systemd is
 * told), proto.c (the fork server), cgwatch.c (cgroup.events).
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "cgwatch.h"
#include "config.h"
#include "crlua.h"
#include "layout.h"
#include "log.h"
#include "notes.h"
#include "manager.h"
#include "pool.h"
#include "proto.h"
#include "supervisor.h"
#include "text.h"

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

/* Rounds of reconcile-then-deliver in one loop iteration; a plugin that
 * keeps making events is served again on the next one. */
#define MAX_ROUNDS 64

/* A stop waits this long after the last KILL is due (the longest
 * stop_timeout) for what was killed to go, and again as long as workers
 * keep going (thousands take a while on a loaded machine); once a grace
 * passes with nothing gone, it gives up on the rest. */
#define STOP_GRACE 5.0

static struct {
	ev_signal sigterm, sigint;
	ev_child child;
	ev_prepare prepare;
	ev_idle more;			/* events left after MAX_ROUNDS */
	ev_timer deadline;		/* of a stop */
	unsigned stop_left;		/* workers and prototypes at its last check */
} S;

/* ---- pools -------------------------------------------------------------- */

void cr_pool_set_conf(struct cr_pool *pool, struct cr_pool_conf *pc)
{
	struct cr_pool_conf *old = pool->conf;
	/* read before the unref: old may go with it */
	int same_limit = old && old->crash_failures == pc->crash_failures;

	pool->conf = cr_pool_conf_ref(pc);
	cr_pool_conf_unref(old);
	pool->target = pc->workers;
	if (!same_limit) {
		free(pool->failures);
		pool->failures = pc->crash_failures ? calloc(pc->crash_failures, sizeof *pool->failures) : NULL;
		pool->nfailures = pool->fail_next = 0;
	}
}

static void retry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	cr_pool_mark_dirty(t->data);
}

struct cr_pool *cr_pool_new(struct cr_pool_conf *pc)
{
	struct cr_pool *pool = calloc(1, sizeof *pool);

	if (!pool)
		return NULL;
	snprintf(pool->name, sizeof pool->name, "%s", pc->name);
	TAILQ_INIT(&pool->workers);
	pool->generation = 1;
	pool->state = POOL_STARTING;
	pool->since = cr_stamp_now();
	pool->watch = -1;
	ev_timer_init(&pool->retry, retry_cb, 0, 0);
	pool->retry.data = pool;
	cr_pool_set_conf(pool, pc);
	cr_layout_pool(pool->name, &pc->limits, &pc->worker_limits);
	pool->has_memory = -1;
	if (pc->crash_failures && !pool->failures) {
		cr_pool_conf_unref(pool->conf);
		free(pool);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&cr_sv.pools, pool, link);
	cr_pool_mark_dirty(pool);
	return pool;
}

static void pool_free(struct cr_pool *pool)
{
	cr_cgwatch_remove(pool->watch);
	if (cr_layout_remove_pool(pool->name) < 0)
		cr_sv.left_behind++;
	TAILQ_REMOVE(&cr_sv.pools, pool, link);
	ev_timer_stop(cr_sv.loop, &pool->retry);
	cr_pool_conf_unref(pool->conf);
	free(pool->failures);
	free(pool->slots);
	cr_notes_free(&pool->notes);
	free(pool);
}

struct cr_pool *cr_pool_find(const char *name)
{
	struct cr_pool *pool;

	TAILQ_FOREACH(pool, &cr_sv.pools, link)
		if (strcmp(pool->name, name) == 0)
			return pool;
	return NULL;
}

struct cr_pool *cr_supervisor_pool(const char *name)
{
	struct cr_pool *pool = cr_pool_find(name);

	return pool && pool->state != POOL_REMOVED ? pool : NULL;
}

const char *cr_supervisor_pool_name(unsigned i)
{
	struct cr_pool *pool;

	TAILQ_FOREACH(pool, &cr_sv.pools, link)
		if (pool->state != POOL_REMOVED && i-- == 0)
			return pool->name;
	return NULL;
}

/* ---- freezing a pool ------------------------------------------------------ */

/* cgroup.events of a freezing or thawing pool changed: confirm it. */
static void freeze_cb(void *data)
{
	struct cr_pool *pool = data;
	struct cr_who who = cr_pool_who(pool);
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
	pool->since = cr_stamp_now();	/* status shows frozen as a state */
	cr_cgwatch_remove(pool->watch);
	pool->watch = -1;
	cr_info(&who, "pool %s", frozen ? "frozen" : "thawed");
	cr_queue_pool_event(frozen ? "frozen" : "thawed", pool);
	cr_pool_mark_dirty(pool);
}

int cr_supervisor_freeze(const char *name, int on)
{
	struct cr_pool *pool = cr_supervisor_pool(name);
	struct cr_who who = { .pool = name };
	char dir[PATH_MAX];
	int rc;

	if (!pool)
		return -ENOENT;
	if ((on && (pool->freeze == FROZEN || pool->freeze == FREEZING)) ||
	    (!on && (pool->freeze == THAWED || pool->freeze == THAWING)))
		return 0;
	if ((rc = cr_layout_pool_dir(dir, sizeof dir, pool->name)) < 0)
		return rc;
	/* watch first: the kernel's confirmation may come at once */
	if (pool->watch < 0)
		pool->watch = cr_cgwatch_add(dir, freeze_cb, pool);
	if ((rc = cr_cgroup_write(dir, "cgroup.freeze", on ? "1" : "0")) < 0) {
		cr_error(&who, "cgroup: unable to %s the pool: %s", on ? "freeze" : "thaw", strerror(-rc));
		return rc == -ENOENT ? -EOPNOTSUPP : rc;	/* no cgroup.freeze: an old kernel */
	}
	pool->freeze = on ? FREEZING : THAWING;
	cr_debug(&who, "%s the pool", on ? "freezing" : "thawing");
	return 0;
}

/* ---- reconcile: what should be, from what is ---------------------------- */


/* The retry timer always says when the next attempt is: a shorter wait
 * replaces a longer one. */
static void arm_retry(struct cr_pool *pool)
{
	ev_tstamp wait = pool->not_before - ev_now(cr_sv.loop);

	if (wait < 0)
		wait = 0;
	if (ev_is_active(&pool->retry) && ev_timer_remaining(cr_sv.loop, &pool->retry) <= wait)
		return;
	ev_timer_stop(cr_sv.loop, &pool->retry);
	ev_timer_set(&pool->retry, wait, 0);
	ev_timer_start(cr_sv.loop, &pool->retry);
}

/* Ids: a pool with target N runs ids 1..N once settled. An id is held
 * until its worker's cgroup (named by it) is empty and removed, so a
 * replacement takes the id of the worker it replaces: at once when the
 * worker's main process was all there was (the common case), else once
 * what it left is killed. While an older generation is still there (a
 * rolling replacement, or old workers draining) one surge worker takes an
 * id above N; it goes once 1..N are all new and ready. */
struct ids {
	unsigned cur, cur_ready, old;	/* live (not stopping) workers */
	unsigned regular;		/* live, with ids 1..want */
	unsigned low_ready;		/* current and ready, with ids 1..want */
	unsigned above;			/* current and live, ids above want */
	int rolling;			/* an older generation is not gone yet */
};

#ifdef CR_CHECK_COUNTS
/* Sanitized builds: the kept counts against a pass over every worker. */
static void check_counts(struct cr_pool *pool, unsigned want, const struct ids *k)
{
	struct cr_who who = cr_pool_who(pool);
	struct cr_worker *w;
	struct ids c;

	memset(&c, 0, sizeof c);
	TAILQ_FOREACH(w, &pool->workers, link) {
		if (w->generation != pool->generation && w->state < W_GONE)
			c.rolling = 1;
		if (w->state >= W_STOPPING)
			continue;
		c.regular += w->id <= want;
		if (w->generation != pool->generation) {
			c.old++;
			continue;
		}
		c.cur++;
		c.cur_ready += w->state == W_READY;
		c.low_ready += w->state == W_READY && w->id <= want;
		c.above += w->id > want;
	}
	if (memcmp(&c, k, sizeof c))
		cr_alert(&who, "counts: kept %u/%u/%u/%u/%u/%u/%d, counted %u/%u/%u/%u/%u/%u/%d", k->cur,
			 k->cur_ready, k->old, k->regular, k->low_ready, k->above, k->rolling, c.cur,
			 c.cur_ready, c.old, c.regular, c.low_ready, c.above, c.rolling);
}
#endif

/* The live states: not stopping, not gone. */
static unsigned live(const unsigned *by_state)
{
	return by_state[W_SPAWNING] + by_state[W_STARTING] + by_state[W_READY];
}

static void count_ids(struct cr_pool *pool, unsigned want, struct ids *c)
{
	const struct cr_counts *n = cr_pool_counts(pool, want);

	c->rolling = live(n->old) + n->old[W_STOPPING] > 0;
	c->regular = live(n->cur_low) + live(n->old_low);
	c->old = live(n->old);
	c->cur = live(n->cur);
	c->cur_ready = n->cur[W_READY];
	c->low_ready = n->cur_low[W_READY];
	c->above = c->cur - live(n->cur_low);
#ifdef CR_CHECK_COUNTS
	check_counts(pool, want, c);
#endif
}

/* Scale down: ids above want go (all at once). One current worker above
 * (a surge worker, or one already born) stays while 1..want are not all
 * new and ready: the surge worker, or one a scale down or an exit not restarted left above the
 * target while a lower id was being replaced (that id is refilled, then
 * it goes). */
/* Why reconcile() stops a worker it no longer wants. */
static const char *unwanted(const struct cr_pool *pool, const struct cr_worker *w)
{
	if (cr_sv.stopping)
		return "stopping";
	if (pool->state == POOL_REMOVED)
		return "reload";
	if (w->surge && pool->rolling_reason)
		return pool->rolling_reason;
	return "requested";	/* scale down, stop */
}

static void stop_above(struct cr_pool *pool, unsigned want, const struct ids *c)
{
	struct cr_worker *w, *keep = NULL;

	if (c->cur + c->old == c->regular)
		return;	/* none above want */
	if (want > 0 && (c->rolling || c->low_ready < want))
		TAILQ_FOREACH(w, &pool->workers, link)
			if ((w->surge || w->state == W_STARTING || w->state == W_READY) && w->state < W_STOPPING &&
			    w->generation == pool->generation && w->id > want &&
			    (!keep || w->id < keep->id))
				keep = w;
	TAILQ_FOREACH(w, &pool->workers, link)
		if (w->state < W_STOPPING && w->id > want && w != keep)
			cr_worker_stop_for(w, unwanted(pool, w));
}

/* The next worker to spawn: its id, or 0 for none now. */
static unsigned next_id(struct cr_pool *pool, unsigned want, const struct ids *c, int *surge)
{
	unsigned id = cr_pool_free_id(pool, 0);

	*surge = 0;
	if (id <= want)
		return c->regular < want ? id : 0;
	/* 1..want all held: only a surge worker, while an old generation goes */
	if (!c->rolling || c->above > 0 || c->cur + c->old > want)
		return 0;
	*surge = 1;
	return cr_pool_free_id(pool, want);
}

static void reconcile(struct cr_pool *pool)
{
	struct cr_worker *w, *tmp;
	unsigned want, id, n = 0, ready;
	struct ids c;
	int may_spawn, warm, surge;
	struct cr_who who = cr_pool_who(pool);

	want = cr_sv.stopping || pool->state == POOL_REMOVED || pool->state == POOL_STOPPED ? 0 : pool->target;
	may_spawn = want > 0 && pool->state != POOL_FAILED;
	/* keep_prototype: a pool scaled to 0 keeps its prototype, prefork
	 * done, so that its next worker is one fork away */
	warm = may_spawn || (want == 0 && pool->target == 0 && pool->conf->keep_prototype && !cr_sv.stopping &&
			     pool->state != POOL_FAILED && pool->state != POOL_STOPPED && pool->state != POOL_REMOVED);

	if (pool->has_retired && pool->target != pool->retired_target) {
		/* the target changed since: every id is wanted again */
		for (unsigned i = 0; i < pool->nslots; i++)
			pool->slots[i].retired = 0;
		pool->has_retired = 0;
		pool->free_hint = 1;
	}
	count_ids(pool, want, &c);
	stop_above(pool, want, &c);
	count_ids(pool, want, &c);
	/* rolling replacement: an old worker goes once a new one is ready */
	TAILQ_FOREACH_SAFE(w, &pool->workers, link, tmp) {
		if (c.old == 0 || c.cur_ready + c.old <= want)
			break;
		if (w->state < W_STOPPING && w->generation != pool->generation) {
			/* a new definition, or the same one restarted; one worker
			 * replaced (replace_reason) leaves its surge worker's end
			 * "requested": one recycle, one recycled exit */
			if (w->replace_reason) {
				pool->rolling_reason = "requested";
				cr_worker_stop_for(w, w->replace_reason);
				c.old--;
				continue;
			}
			pool->rolling_reason = w->conf != pool->conf ? "reload"
					     : pool->restart_reason ? pool->restart_reason : "requested";
			cr_worker_stop_for(w, pool->rolling_reason);
			c.old--;
		}
	}
	count_ids(pool, want, &c);

	/* the prototype: one of the current generation while workers are wanted */
	if (pool->proto && (pool->proto->generation != pool->generation || !warm)) {
		struct cr_proto *p = pool->proto;
		pool->proto = NULL;
		cr_pool_proto_retire(pool, p);
	}
	if (warm && !pool->proto && !cr_pool_protos_block(pool)) {
		if (ev_now(cr_sv.loop) < pool->not_before) {
			arm_retry(pool);
		} else {
			cr_pool_proto_start(pool);
			if (!pool->proto)
				arm_retry(pool);
		}
	}

	if (ev_now(cr_sv.loop) >= pool->not_before)
		pool->immediate = 0;
	while (may_spawn && n++ <= want && pool->freeze == THAWED && pool->proto && pool->proto->state == CR_PROTO_READY &&
	       pool->proto->inflight < MAX_INFLIGHT && (id = next_id(pool, want, &c, &surge))) {
		/* backing off (maybe since the last spawn failed): only
		 * workers that were up and ended are replaced now */
		if (ev_now(cr_sv.loop) < pool->not_before) {
			if (!pool->immediate) {
				arm_retry(pool);
				break;
			}
			pool->immediate--;
		}
		cr_worker_spawn(pool, id, surge);
		/* what count_ids() would find now, without a pass over them all */
		c.cur++;
		c.regular += id <= want;
		c.above += id > want;
	}

	/* a worker being replaced one at a time (generation 0) still serves:
	 * the pool is not short of it (rare: counted only then) */
	ready = c.cur_ready;
	if (c.old)
		TAILQ_FOREACH(w, &pool->workers, link)
			ready += w->generation == 0 && w->state == W_READY;
	if (c.cur_ready >= want && c.old == 0 && want > 0 && pool->state == POOL_STARTING) {
		cr_info(&who, "pool ready (%u/%u workers)", c.cur_ready, want);
		cr_pool_set_state(pool, POOL_RUNNING);
		cr_queue_pool_event("pool_ready", pool);
	} else if (ready < want && pool->state == POOL_RUNNING) {
		cr_pool_set_state(pool, POOL_STARTING);	/* one went missing */
	}
}

static int everything_stopped(void)
{
	struct cr_pool *pool;

	TAILQ_FOREACH(pool, &cr_sv.pools, link)
		if (!TAILQ_EMPTY(&pool->workers))
			return 0;
	return cr_sv.protos == NULL;
}

static void reconcile_dirty(void)
{
	struct cr_pool *pool, *tmp;

	while (cr_sv.dirty) {
		cr_sv.dirty = 0;
		TAILQ_FOREACH_SAFE(pool, &cr_sv.pools, link, tmp) {
			if (!pool->dirty)
				continue;
			pool->dirty = 0;
			reconcile(pool);
			if (pool->state == POOL_REMOVED && TAILQ_EMPTY(&pool->workers) && !pool->proto &&
			    !cr_pool_has_protos(pool)) {
				struct cr_who who = cr_pool_who(pool);
				cr_info(&who, "pool removed");
				pool_free(pool);
			}
		}
	}
}

static void begin_stop(const char *why);

/* The service manager's view: counts over the pools. */
static void update_manager(void)
{
	struct cr_manager_view v = { .all_ready = 1, .stopping = cr_sv.stopping };
	struct cr_pool *pool;
	char why[128];

	TAILQ_FOREACH(pool, &cr_sv.pools, link) {
		const struct cr_counts *n = cr_pool_counts(pool, pool->counts.want);
		unsigned r = n->cur[W_READY];

		v.live += live(n->cur) + live(n->old) + n->cur[W_STOPPING] + n->old[W_STOPPING];
		if (pool->state == POOL_REMOVED)
			continue;
		v.pools++;
		v.ready += r;
		v.want += pool->target;
		if (pool->state == POOL_FAILED && !v.nfailed++)
			v.failed = pool->name;
		if (r < pool->target || pool->state == POOL_FAILED)
			v.all_ready = 0;
	}
	if (cr_manager_update(&v, why, sizeof why))
		begin_stop(why);
}

/* Before the loop sleeps: reconcile what is dirty, deliver the events
 * that caused (handlers may make pools dirty again), and once all is
 * settled, tell the service manager. */
static void prepare_cb(struct ev_loop *loop, ev_prepare *pr, int revents)
{
	(void)pr;
	(void)revents;
	ev_idle_stop(loop, &S.more);
	for (int round = 0;; round++) {
		reconcile_dirty();
		if (!cr_sv.events) {
			update_manager();	/* a failed start begins to stop */
			if (!cr_sv.dirty && !cr_sv.events)
				break;
			continue;
		}
		if (round >= MAX_ROUNDS) {
			ev_idle_start(loop, &S.more);	/* the rest next time round */
			return;
		}
		cr_events_deliver();
	}
	if (cr_sv.stopping && everything_stopped()) {
		cr_info(NULL, "stopped");
		ev_break(loop, EVBREAK_ALL);
	}
}

static void more_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	/* nothing to do: being active kept the loop from blocking */
}

/* ---- signals and children ----------------------------------------------- */

static void stop_cb(struct ev_loop *loop, ev_signal *sig, int revents)
{
	struct cr_pool *pool;
	struct cr_worker *w;

	(void)loop;
	(void)revents;
	if (cr_sv.stopping) {
		cr_warn(NULL, "%s again: killing every worker now", sigabbrev_np(sig->signum));
		TAILQ_FOREACH(pool, &cr_sv.pools, link)
			TAILQ_FOREACH(w, &pool->workers, link)
				if (w->pid > 0)
					cr_worker_kill(w);
		return;
	}
	begin_stop(sigabbrev_np(sig->signum));
}

/* What would not die: corrald names it when it exits (cr_supervisor_finish)
 * and exits with status 3. */
static unsigned stop_left(void)
{
	const struct cr_pool *pool;
	const struct cr_proto *p;
	unsigned n = 0;

	TAILQ_FOREACH(pool, &cr_sv.pools, link)
		n += pool->nworkers;
	for (p = cr_sv.protos; p; p = p->next)
		n++;
	return n;
}

static void deadline_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	unsigned left = stop_left();

	(void)revents;
	if (left < S.stop_left) {
		S.stop_left = left;	/* still going: another grace */
		ev_timer_set(t, STOP_GRACE, 0);
		ev_timer_start(loop, t);
		return;
	}
	cr_error(NULL, "stop: not everything is gone %.0fs after the last KILL; giving up on what is left",
		 STOP_GRACE);
	cr_sv.left_behind++;
	ev_break(loop, EVBREAK_ALL);
}

static void begin_stop(const char *why)
{
	struct cr_pool *pool;
	struct cr_worker *w;
	ev_tstamp longest = 0;

	TAILQ_FOREACH(pool, &cr_sv.pools, link) {
		if (pool->conf->stop_timeout > longest)
			longest = pool->conf->stop_timeout;
		TAILQ_FOREACH(w, &pool->workers, link)
			if (w->conf->stop_timeout > longest)
				longest = w->conf->stop_timeout;
	}
	ev_timer_init(&S.deadline, deadline_cb, longest + STOP_GRACE, 0);
	ev_timer_start(cr_sv.loop, &S.deadline);
	S.stop_left = stop_left();
	cr_info(NULL, "stopping (%s)", why);
	cr_manager_stopping();
	cr_sv.stopping = 1;
	cr_supervisor_queue("stop", NULL);
	/* frozen workers cannot see their stop signal */
	TAILQ_FOREACH(pool, &cr_sv.pools, link) {
		if (pool->freeze != THAWED)
			cr_supervisor_freeze(pool->name, 0);
		cr_pool_mark_dirty(pool);
	}
}

static void child_cb(struct ev_loop *loop, ev_child *c, int revents)
{
	struct cr_worker *w;
	struct cr_who who = { .pid = c->rpid };

	(void)loop;
	(void)revents;
	if (cr_pool_proto_reaped(c->rpid, c->rstatus))
		return;
	w = cr_worker_by_pid(NULL, c->rpid);
	if (w) {
		cr_worker_exited(w, c->rstatus);
		return;
	}
	cr_debug(&who, "reaped an orphan");
}

/* ---- start and finish ---------------------------------------------------- */

void cr_supervisor_activate(struct cr_config *conf)
{
	struct cr_pool *pool;
	struct cr_worker *w;

	if (cr_sv.conf != conf)
		cr_config_free(cr_sv.conf);
	cr_sv.conf = conf;
	/* the plugins that wrote the notes start again */
	TAILQ_FOREACH(pool, &cr_sv.pools, link) {
		cr_notes_free(&pool->notes);
		TAILQ_FOREACH(w, &pool->workers, link)
			cr_notes_free(&w->notes);
	}
	cr_lua_activate(conf->lua);
	cr_supervisor_queue("config", NULL);
}

/* At exit, what still runs in a pool's cgroup (a start that failed half
 * way, a stop that gave up) is killed, and given a bounded while to go. */
static void kill_the_rest(void)
{
	struct cr_pool *pool;
	char dir[PATH_MAX];
	int left = 0;

	TAILQ_FOREACH(pool, &cr_sv.pools, link)
		if (cr_layout_pool_dir(dir, sizeof dir, pool->name) == 0 && cr_cgroup_populated(dir) > 0) {
			cr_cgroup_kill(dir);
			left = 1;
		}
	for (int i = 0; left && i < 100; i++) {
		nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
		left = 0;
		TAILQ_FOREACH(pool, &cr_sv.pools, link)
			if (cr_layout_pool_dir(dir, sizeof dir, pool->name) == 0 && cr_cgroup_populated(dir) > 0)
				left = 1;
	}
}

int cr_supervisor_finish(void)
{
	struct cr_pool *pool;

	kill_the_rest();
	while ((pool = TAILQ_FIRST(&cr_sv.pools))) {
		while (!TAILQ_EMPTY(&pool->workers))
			cr_worker_free(TAILQ_FIRST(&pool->workers));
		if (pool->proto && !pool->proto->reaped)
			cr_proto_close(cr_sv.loop, pool->proto);
		pool_free(pool);
	}
	while (cr_sv.protos) {
		struct cr_proto *p = cr_sv.protos;
		cr_sv.protos = p->next;
		cr_proto_free(p);
	}
	cr_events_drop();
	cr_manager_finish();
	cr_cgwatch_finish();
	if (cr_sv.loop) {
		ev_timer_stop(cr_sv.loop, &S.deadline);
		ev_prepare_stop(cr_sv.loop, &S.prepare);
		ev_idle_stop(cr_sv.loop, &S.more);
		ev_child_stop(cr_sv.loop, &S.child);
		ev_signal_stop(cr_sv.loop, &S.sigterm);
		ev_signal_stop(cr_sv.loop, &S.sigint);
	}
	cr_config_free(cr_sv.conf);
	cr_sv.conf = NULL;
	return cr_sv.left_behind;
}

int cr_supervisor_start(struct ev_loop *loop, struct cr_config *conf, int verbose)
{
	int rc;

	cr_sv.loop = loop;
	cr_sv.verbose = verbose;
	TAILQ_INIT(&cr_sv.pools);
	ev_signal_init(&S.sigterm, stop_cb, SIGTERM);
	ev_signal_init(&S.sigint, stop_cb, SIGINT);
	ev_signal_start(loop, &S.sigterm);
	ev_signal_start(loop, &S.sigint);
	ev_child_init(&S.child, child_cb, 0, 0);
	ev_child_start(loop, &S.child);
	ev_prepare_init(&S.prepare, prepare_cb);
	ev_prepare_start(loop, &S.prepare);
	ev_idle_init(&S.more, more_cb);
	ev_timer_init(&S.deadline, deadline_cb, 0, 0);
	cr_manager_init(loop);
	if ((rc = cr_cgwatch_init(loop)) < 0) {
		cr_error(NULL, "unable to create an inotify instance: %s", strerror(-rc));
		cr_config_free(conf);
		return -1;
	}
	cr_supervisor_activate(conf);
	for (unsigned i = 0; i < conf->npools; i++) {
		if (!cr_pool_new(conf->pools[i])) {
			cr_error(NULL, "unable to set up pool %s: out of memory", conf->pools[i]->name);
			return -1;
		}
	}
	if (conf->npools == 0)
		cr_notice(NULL, "no pools configured");
	return 0;
}
