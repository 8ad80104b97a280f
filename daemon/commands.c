/*
 * commands.c: what corralctl and plugins may ask of a pool: scale,
 * restart, stop, start, signal. Each changes the pool's wishes (target,
 * generation, state) and marks it dirty; reconcile() does the rest. The
 * answers a caller gets are checked here; nothing waits.
 */
#include <errno.h>
#include <string.h>
#include <sys/pidfd.h>

#include "commands.h"
#include "fdneed.h"
#include "log.h"
#include "notes.h"
#include "pool.h"
#include "supervisor.h"

static struct cr_worker *live_worker(struct cr_pool *pool, unsigned id)
{
	struct cr_worker *w;

	w = cr_pool_worker(pool, id);
	return w && w->state < W_STOPPING && w->pid > 0 ? w : NULL;
}

/* Why the last scale was refused with -EMFILE. */
static char refusal[512];

const char *cr_pool_scale_refusal(void)
{
	return refusal;
}

int cr_pool_scale(const char *name, unsigned n, int keep)
{
	struct cr_pool *pool = cr_supervisor_pool(name);
	struct cr_who who = { .pool = name };

	if (!pool)
		return -ENOENT;
	if (n > 10000)
		return -ERANGE;
	if (n > pool->target && cr_fdneed_scale(name, n, refusal, sizeof refusal) < 0) {
		cr_error(&who, "scale to %u refused: %s", n, refusal);
		return -EMFILE;
	}
	if (n != pool->target)
		cr_info(&who, "scaling from %u to %u workers (%s)", pool->target, n,
			keep ? "kept across reloads that leave its workers as configured" : "until the next reload");
	pool->target = n;
	pool->keep_target = keep;
	pool->keep_pending = 0;	/* claimed again after a reload */
	cr_pool_mark_dirty(pool);
	return 0;
}

const char *const cr_restart_reasons[] = { "requested", "recycled", "unhealthy", NULL };

const char *cr_restart_reason(const char *name)
{
	for (const char *const *r = cr_restart_reasons; *r; r++)
		if (!strcmp(*r, name))
			return *r;
	return NULL;
}

int cr_pool_restart(const char *name, unsigned id, const struct cr_restart_how *how)
{
	static const struct cr_restart_how plain = { .reason = "requested" };
	struct cr_pool *pool = cr_supervisor_pool(name);
	struct cr_who who = { .pool = name, .worker = id };
	struct cr_worker *w;

	if (!how)
		how = &plain;
	if (!pool)
		return -ENOENT;
	if (id) {
		if (!(w = live_worker(pool, id)))
			return -ESRCH;
		if (how->rolling) {
			cr_info(&who, "replacing the worker (%s): its replacement first", how->reason);
			cr_worker_replace(w, how->reason);
		} else {
			cr_info(&who, "restarting the worker (%s)", how->reason);
			cr_worker_stop_for(w, how->reason);	/* the pool still wants it: a new one comes */
		}
		cr_pool_mark_dirty(pool);
		return 0;
	}
	/* a new generation: a new prototype (fresh code), then workers
	 * replaced one by one, or all at once */
	cr_info(&who, "restarting the pool%s", how->all_at_once ? ", all workers at once" : "");
	pool->generation++;
	pool->restart_reason = how->reason;
	cr_pool_reset_failures(pool);	/* a failed pool gets going; a stopped one waits for start */
	if (how->all_at_once)
		TAILQ_FOREACH(w, &pool->workers, link)
			cr_worker_stop_for(w, how->reason);
	cr_pool_mark_dirty(pool);
	return 0;
}

int cr_pool_stop(const char *name)
{
	struct cr_pool *pool = cr_supervisor_pool(name);
	struct cr_who who = { .pool = name };

	if (!pool)
		return -ENOENT;
	if (pool->state != POOL_STOPPED)
		cr_info(&who, "stopping the pool (until started)");
	cr_pool_set_state(pool, POOL_STOPPED);
	cr_pool_mark_dirty(pool);
	return 0;
}

int cr_pool_start(const char *name)
{
	struct cr_pool *pool = cr_supervisor_pool(name);
	struct cr_who who = { .pool = name };

	if (!pool)
		return -ENOENT;
	if (pool->state == POOL_STOPPED || pool->state == POOL_FAILED) {
		cr_info(&who, "starting the pool");
		cr_pool_set_state(pool, POOL_STARTING);
		cr_pool_reset_failures(pool);
	}
	cr_pool_mark_dirty(pool);
	return 0;
}

int cr_pool_signal(const char *name, unsigned id, int sig)
{
	struct cr_pool *pool = cr_supervisor_pool(name);
	struct cr_worker *w;
	int n = 0;

	if (!pool)
		return -ENOENT;
	TAILQ_FOREACH(w, &pool->workers, link) {
		if ((id && w->id != id) || w->state >= W_GONE || w->pidfd < 0)
			continue;
		if (pidfd_send_signal(w->pidfd, sig, NULL, 0) == 0) {
			w->signalled = sig;	/* an exit by it was asked for */
			n++;
		}
	}
	return id && n == 0 ? -ESRCH : n;
}

int cr_pool_note(const char *name, unsigned id, const char *key, const char *value)
{
	struct cr_pool *pool = cr_supervisor_pool(name);
	struct cr_worker *w = NULL;

	if (!pool)
		return -ENOENT;
	if (id && (!(w = cr_pool_worker(pool, id)) || w->state == W_GONE))
		return -ESRCH;
	return cr_note_set(w ? &w->notes : &pool->notes, key, value);
}
