/*
 * state.c: the states of pools and workers and the one place each changes:
 * a table of allowed moves per object (an illegal move is an alert), and
 * what a change brings with it: a dirty mark that reconcile() acts on,
 * the events queued for plugins (delivered by supervisor.c after
 * reconcile(), so no Lua runs inside a transition), and the backoff and
 * crash count that a failure adds to. The bottom of the supervisor's
 * files: worker.c, supervisor.c and the rest build on it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "crlua.h"
#include "layout.h"
#include "log.h"
#include "notify.h"
#include "pool.h"
#include "text.h"

struct cr_supervisor cr_sv = { .events_tail = &cr_sv.events };

/* A queued event: what happened, copied when it happened. */
struct cr_queued {
	struct cr_event ev;
	struct cr_queued *next;
};

static const char *const worker_state_names[W_NSTATES] = {
	[W_SPAWNING] = "spawning", [W_STARTING] = "starting", [W_READY] = "ready",
	[W_STOPPING] = "stopping", [W_GONE] = "exited",
};

static const char *const pool_state_names[POOL_NSTATES] = {
	[POOL_STARTING] = "starting", [POOL_RUNNING] = "running", [POOL_FAILED] = "failed",
	[POOL_STOPPED] = "stopped", [POOL_REMOVED] = "removed",
};

#define TO(s) (1u << (s))

/* From each state, the states a worker may move to. */
static const unsigned worker_moves[W_NSTATES] = {
	[W_SPAWNING] = TO(W_STARTING) | TO(W_STOPPING) | TO(W_GONE),
	[W_STARTING] = TO(W_READY) | TO(W_STOPPING) | TO(W_GONE),
	[W_READY] = TO(W_STOPPING) | TO(W_GONE),
	[W_STOPPING] = TO(W_GONE),
	[W_GONE] = 0,
};

/* From each state, the states a pool may move to. */
static const unsigned pool_moves[POOL_NSTATES] = {
	[POOL_STARTING] = TO(POOL_RUNNING) | TO(POOL_FAILED) | TO(POOL_STOPPED) | TO(POOL_REMOVED),
	[POOL_RUNNING] = TO(POOL_STARTING) | TO(POOL_FAILED) | TO(POOL_STOPPED) | TO(POOL_REMOVED),
	[POOL_FAILED] = TO(POOL_STARTING) | TO(POOL_STOPPED) | TO(POOL_REMOVED),
	[POOL_STOPPED] = TO(POOL_STARTING) | TO(POOL_REMOVED),
	[POOL_REMOVED] = TO(POOL_STARTING),
};

const char *cr_worker_state_name(enum worker_state s)
{
	return worker_state_names[s];
}

struct cr_who cr_worker_who(const struct cr_worker *w)
{
	return (struct cr_who){ .pool = w->pool->name, .worker = w->id, .pid = w->pid };
}

struct cr_who cr_pool_who(const struct cr_pool *pool)
{
	return (struct cr_who){ .pool = pool->name };
}

int cr_worker_dir(const struct cr_worker *w, char *buf, size_t n)
{
	return cr_layout_worker_dir(buf, n, w->pool->name, w->id);
}

/* The one place a worker's state changes. 0, or -1 for a move the table
 * does not allow (an alert: corral's bug; the state stays). */
int cr_worker_set_state(struct cr_worker *w, enum worker_state to)
{
	struct cr_who who = cr_worker_who(w);

	if (w->state == to)
		return 0;
	if (!(worker_moves[w->state] & TO(to))) {
		cr_alert(&who, "transition: worker %s -> %s is not allowed", worker_state_names[w->state],
			 worker_state_names[to]);
		return -1;
	}
	cr_debug(&who, "transition: worker %s -> %s", worker_state_names[w->state], worker_state_names[to]);
	cr_pool_count(w, -1);
	w->state = to;
	cr_pool_count(w, 1);
	if (to == W_GONE)
		cr_worker_set_load(w, 0);	/* busy or idle: only the living */
	return 0;
}

void cr_worker_set_load(struct cr_worker *w, int load)
{
	struct cr_pool *pool = w->pool;

	if (w->load == load || (load && w->state == W_GONE))
		return;
	if (w->load)
		(*(w->load == CR_LOAD_BUSY ? &pool->busy : &pool->idle))--;
	if (load)
		(*(load == CR_LOAD_BUSY ? &pool->busy : &pool->idle))++;
	w->load = load;
	w->load_since = ev_now(cr_sv.loop);
}

static uint64_t add_saturating(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

void cr_worker_add_requests(struct cr_worker *w, uint64_t n)
{
	if (!n)
		return;
	w->requests = add_saturating(w->requests, n);
	w->pool->requests = add_saturating(w->pool->requests, n);
	w->last_request = w->pool->last_request = ev_now(cr_sv.loop);
}

void cr_pool_count(struct cr_worker *w, int sign)
{
	struct cr_counts *c = &w->pool->counts;
	int cur = w->generation == c->generation;

	if (!c->valid)
		return;
	(cur ? c->cur : c->old)[w->state] += (unsigned)sign;
	if (w->id <= c->want)
		(cur ? c->cur_low : c->old_low)[w->state] += (unsigned)sign;
}

const struct cr_counts *cr_pool_counts(struct cr_pool *pool, unsigned want)
{
	struct cr_counts *c = &pool->counts;
	struct cr_worker *w;

	if (c->valid && c->want == want && c->generation == pool->generation)
		return c;
	memset(c, 0, sizeof *c);
	c->want = want;
	c->generation = pool->generation;
	c->valid = 1;
	TAILQ_FOREACH(w, &pool->workers, link)
		cr_pool_count(w, 1);
	return c;
}

void cr_pool_set_state(struct cr_pool *pool, enum pool_state to)
{
	struct cr_who who = cr_pool_who(pool);

	if (pool->state == to)
		return;
	if (!(pool_moves[pool->state] & TO(to))) {
		cr_alert(&who, "transition: pool %s -> %s is not allowed", pool_state_names[pool->state],
			 pool_state_names[to]);
		return;
	}
	cr_debug(&who, "transition: pool %s -> %s", pool_state_names[pool->state], pool_state_names[to]);
	pool->state = to;
	pool->since = cr_stamp_now();
}

struct cr_stamp cr_stamp_now(void)
{
	struct timespec wall, mono;

	clock_gettime(CLOCK_REALTIME, &wall);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	return (struct cr_stamp){ (double)wall.tv_sec + (double)wall.tv_nsec / 1e9,
				  (double)mono.tv_sec + (double)mono.tv_nsec / 1e9 };
}

/* ---- dirty marks and events --------------------------------------------- */

void cr_pool_mark_dirty(struct cr_pool *pool)
{
	pool->dirty = 1;
	cr_sv.dirty = 1;
}

void cr_supervisor_queue(const char *name, const struct cr_event *ev)
{
	struct cr_queued *q = calloc(1, sizeof *q);

	if (!q) {
		cr_error(NULL, "plugin: unable to queue the %s event: out of memory", name);
		return;
	}
	if (ev)
		q->ev = *ev;
	q->ev.name = name;
	*cr_sv.events_tail = q;
	cr_sv.events_tail = &q->next;
}

void cr_queue_pool_event(const char *name, const struct cr_pool *pool)
{
	struct cr_event ev = { 0 };

	snprintf(ev.pool, sizeof ev.pool, "%s", pool->name);
	cr_supervisor_queue(name, &ev);
}

void cr_queue_worker_event(const char *name, const struct cr_worker *w, struct cr_event ev)
{
	snprintf(ev.pool, sizeof ev.pool, "%s", w->pool->name);
	ev.worker = w->id;
	ev.pid = w->pid;
	cr_supervisor_queue(name, &ev);
}

/* After a reload's config event: a target a plugin kept (corral.scale
 * with keep) stays only if a plugin of the new config claimed it again in
 * its config handler; else the pool has the config's workers, as after
 * any reload (the plugin that kept it is gone, or no longer manages it). */
static void settle_kept_targets(void)
{
	struct cr_pool *pool;

	TAILQ_FOREACH(pool, &cr_sv.pools, link) {
		struct cr_who who = cr_pool_who(pool);
		if (!pool->keep_pending)
			continue;
		pool->keep_pending = pool->keep_target = 0;
		if (pool->state == POOL_REMOVED || pool->target == pool->conf->workers)
			continue;
		cr_info(&who, "reload: no plugin claimed the target of %u workers again: back to the config's %u",
			pool->target, pool->conf->workers);
		pool->target = pool->conf->workers;
		cr_pool_mark_dirty(pool);
	}
}

/* Delivers what is queued now; what handlers cause is queued anew. */
void cr_events_deliver(void)
{
	struct cr_queued *q = cr_sv.events;

	cr_sv.events = NULL;
	cr_sv.events_tail = &cr_sv.events;
	while (q) {
		struct cr_queued *next = q->next;
		cr_lua_emit(&q->ev);
		if (!strcmp(q->ev.name, "config"))
			settle_kept_targets();
		free(q);
		q = next;
	}
}

void cr_events_drop(void)
{
	while (cr_sv.events) {
		struct cr_queued *q = cr_sv.events;
		cr_sv.events = q->next;
		free(q);
	}
	cr_sv.events_tail = &cr_sv.events;
}

/* ---- failures ------------------------------------------------------------ */

/* A fresh start after failures: the backoff and the crash count forgotten,
 * and a failed pool given its chance again. A stopped pool stays stopped. */
void cr_pool_reset_failures(struct cr_pool *pool)
{
	pool->streak = 0;
	pool->not_before = 0;
	pool->immediate = 0;
	pool->nfailures = pool->fail_next = 0;
	pool->failure[0] = 0;
	if (pool->state == POOL_FAILED)
		cr_pool_set_state(pool, POOL_STARTING);
}

/* Has a worker got through its start window since the last start failure?
 * Then starting works again, and the backoff starts over. Workers that
 * exited did so before their window passed, or they set passed_at. */
static int worker_passed_since(struct cr_pool *pool, ev_tstamp since, ev_tstamp now)
{
	struct cr_worker *w;

	if (pool->passed_at > since)
		return 1;
	TAILQ_FOREACH(w, &pool->workers, link) {
		ev_tstamp end = w->ready_at + w->conf->start_window;
		if (w->state < W_GONE && w->ready_at > 0 && end <= now && end > since)
			return 1;
	}
	return 0;
}

/* A start failure of a worker or prototype: grow the backoff, and mark
 * the pool failed when it crosses the crash limit. */
void cr_pool_failure(struct cr_pool *pool, ev_tstamp ran_for, const char *what, const char *detail)
{
	const struct cr_pool_conf *pc = pool->conf;
	struct cr_who who = cr_pool_who(pool);
	ev_tstamp now = ev_now(cr_sv.loop), delay;
	char d[32], iv[32];

	if (ran_for >= pc->backoff_reset || worker_passed_since(pool, pool->last_failure_at, now))
		pool->streak = 0;
	pool->streak++;
	pool->start_failures++;
	pool->last_failure_at = now;
	snprintf(pool->last_failure, sizeof pool->last_failure, "%s", detail);
	delay = pc->backoff_initial * pow(2, pool->streak - 1);
	if (delay > pc->backoff_max)
		delay = pc->backoff_max;
	pool->not_before = now + delay;
	cr_pool_mark_dirty(pool);	/* reconcile() arms the retry */

	if (pc->crash_failures && pool->failures) {
		pool->failures[pool->fail_next] = now;
		pool->fail_next = (pool->fail_next + 1) % pc->crash_failures;
		if (pool->nfailures < pc->crash_failures)
			pool->nfailures++;
		/* the oldest of the last crash_failures failures */
		if (pool->nfailures == pc->crash_failures &&
		    now - pool->failures[pool->fail_next] <= pc->crash_interval &&
		    (pool->state == POOL_STARTING || pool->state == POOL_RUNNING)) {
			cr_text_duration(iv, sizeof iv, pc->crash_interval);
			snprintf(pool->failure, sizeof pool->failure, "%u start failure%s within %s, last: %s",
				 pc->crash_failures, pc->crash_failures == 1 ? "" : "s", iv, detail);
			cr_error(&who, "pool failed: %s; staying down until start, restart or reload",
				 pool->failure);
			cr_pool_set_state(pool, POOL_FAILED);
			cr_queue_pool_event("pool_failed", pool);
			return;
		}
	}
	/* only where a restart follows: not for a failed, stopped or removed pool */
	cr_text_duration(d, sizeof d, delay);
	if (pool->target > 0 && !cr_sv.stopping &&
	    (pool->state == POOL_STARTING || pool->state == POOL_RUNNING))
		cr_info(&who, "restarting %s in %s", what, d);
}

struct cr_slot *cr_pool_slot(struct cr_pool *pool, unsigned id)
{
	if (id == 0)
		return NULL;
	if (id > pool->nslots) {
		unsigned n = id + 8 > 2 * pool->nslots ? id + 8 : 2 * pool->nslots;
		struct cr_slot *s = realloc(pool->slots, n * sizeof *s);
		if (!s)
			return NULL;
		memset(s + pool->nslots, 0, (n - pool->nslots) * sizeof *s);
		pool->slots = s;
		pool->nslots = n;
	}
	return &pool->slots[id - 1];
}

struct cr_worker *cr_pool_worker(const struct cr_pool *pool, unsigned id)
{
	return id >= 1 && id <= pool->nslots ? pool->slots[id - 1].worker : NULL;
}

void cr_pool_record_exit(struct cr_pool *pool, unsigned id, const struct cr_exit *ex, int restarted,
			 const char *how)
{
	struct cr_slot *slot = cr_pool_slot(pool, id);

	if (slot) {
		snprintf(slot->last_exit, sizeof slot->last_exit, "%s%s", ex->oom ? "OOM-killed, " : "", how);
		slot->exit = *ex;
		slot->restarts += restarted;
	}
	pool->recent[pool->recent_next] = (struct cr_recent){ .id = id, .exit = *ex };
	pool->recent_next = (pool->recent_next + 1) % CR_RECENT;
	if (pool->nrecent < CR_RECENT)
		pool->nrecent++;
}
