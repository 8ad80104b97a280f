/*
 * manager.c: corrald's progress toward its service manager. From the
 * supervisor's counts it makes the STATUS= line, sends READY=1 once every
 * pool has its workers ready, asks for more time (EXTEND_TIMEOUT_USEC)
 * while a start progresses, and says when a start has failed. notify.c
 * does the sending; this file decides what and when, and knows nothing
 * of pools but their counts.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "manager.h"
#include "notify.h"

/* While starting, every EXTEND_EVERY seconds of progress buys EXTEND_USEC. */
#define EXTEND_EVERY 5.0
#define EXTEND_USEC 15000000ULL

static struct {
	struct ev_loop *loop;
	int ready_sent;			/* READY=1 told to the service manager */
	int exit_code;
	char fail_reason[128];		/* why a start failed, for STATUS= */
	unsigned last_ready, seen_ready;	/* progress, for EXTEND_TIMEOUT_USEC */
	ev_timer extend;
} M;

/* While pools come up, ask for more time as long as workers keep
 * becoming ready: a start that progresses is not timed out. */
static void extend_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)t;
	(void)revents;
	if (M.ready_sent || M.fail_reason[0])
		return;
	if (M.last_ready > M.seen_ready)
		cr_notify_extend_timeout(EXTEND_USEC);
	M.seen_ready = M.last_ready;
}

void cr_manager_init(struct ev_loop *loop)
{
	M.loop = loop;
	ev_timer_init(&M.extend, extend_cb, EXTEND_EVERY, EXTEND_EVERY);
	ev_timer_start(loop, &M.extend);
}

void cr_manager_finish(void)
{
	if (M.loop)
		ev_timer_stop(M.loop, &M.extend);
}

int cr_manager_update(const struct cr_manager_view *v, char *why, size_t n)
{
	char status[256];

	if (v->stopping && M.fail_reason[0])
		snprintf(status, sizeof status, "failed: %s; stopping: %u worker%s left", M.fail_reason,
			 v->live, v->live == 1 ? "" : "s");
	else if (v->stopping)
		snprintf(status, sizeof status, "stopping: %u worker%s left", v->live, v->live == 1 ? "" : "s");
	else
		snprintf(status, sizeof status, "%u pool%s, %u/%u workers ready%s%s", v->pools,
			 v->pools == 1 ? "" : "s", v->ready, v->want, v->nfailed ? ", failed: " : "",
			 v->nfailed ? v->failed : "");
	cr_notify_status(status);
	if (v->stopping) {
		ev_timer_stop(M.loop, &M.extend);
		return 0;
	}
	/* under a service manager, a start that cannot complete fails; run by
	 * hand, the other pools go on and the failed one waits for a reload */
	if (!M.ready_sent && v->nfailed && cr_notify_managed()) {
		snprintf(M.fail_reason, sizeof M.fail_reason, "pool %s failed before it was ready", v->failed);
		snprintf(why, n, "%s", M.fail_reason);
		M.exit_code = 1;
		return 1;
	}
	if (!M.ready_sent && v->all_ready) {
		M.ready_sent = 1;
		ev_timer_stop(M.loop, &M.extend);
		cr_info(NULL, "ready: %s", status);
		cr_notify_ready();
	}
	M.last_ready = v->ready;
	return 0;
}

void cr_manager_stopping(void)
{
	cr_notify_stopping();
}

void cr_manager_reloading(void)
{
	cr_notify_reloading();
}

/* done, good or bad: the running configuration is whole again; before the
 * first READY=1, that one still waits for the pools */
void cr_manager_reloaded(void)
{
	if (M.ready_sent)
		cr_notify_ready();
}

int cr_manager_exit_code(void)
{
	return M.exit_code;
}
