/*
 * wnotify.c: what workers say on the NOTIFY_SOCKET corrald gives them.
 * notify.c receives and parses each datagram; this file decides which
 * worker it is from, by the cgroup the kernel says the sender is in (so a
 * helper a worker runs counts for it, and no other process can speak for
 * it), and applies it: READY=1, STATUS=, WATCHDOG=1, EXTEND_TIMEOUT_USEC,
 * MAINPID, WATCHDOG=trigger, and corral's load reports: BUSY=1, IDLE=1,
 * REQUESTS=N (N more requests served).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <unistd.h>

#include "cgroup.h"
#include "config.h"
#include "layout.h"
#include "log.h"
#include "notify.h"
#include "pool.h"
#include "wnotify.h"

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
	    !(pool = cr_pool_find(pool_name)))
		return NULL;
	/* a worker may speak before the prototype's answer with its pid
	 * has reached us: its cgroup is what counts */
	w = cr_pool_worker(pool, id);
	return w && w->state < W_GONE ? w : NULL;
}

static void on_message(pid_t sender, const struct cr_notify_msg *m)
{
	struct cr_worker *w = worker_of_pid(sender);
	struct cr_who who = { .pid = sender };

	if (!w) {
		cr_debug(&who, "notify: ignored a message from a process that is in no worker's cgroup");
		return;
	}
	who = cr_worker_who(w);
	if (m->mainpid) {
		struct cr_worker *owner = worker_of_pid(m->mainpid);
		int fd = owner == w ? pidfd_open(m->mainpid, 0) : -1;
		if (fd < 0) {
			cr_warn(&who, "notify: ignored MAINPID=%d: not a process of this worker", (int)m->mainpid);
		} else if (m->mainpid != w->pid && w->pid > 0) {
			cr_info(&who, "worker's main process is now pid %d (MAINPID)", (int)m->mainpid);
			cr_worker_set_main(w, m->mainpid, fd);
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
		ev_timer_stop(cr_sv.loop, &w->watchdog);	/* set only works on a stopped timer */
		ev_timer_set(&w->watchdog, w->conf->watchdog, 0);
		ev_timer_start(cr_sv.loop, &w->watchdog);
	}
	if (m->extend_usec && ev_is_active(&w->ready_timer)) {
		ev_timer_stop(cr_sv.loop, &w->ready_timer);
		ev_timer_set(&w->ready_timer, (double)m->extend_usec / 1e6, 0);
		ev_timer_start(cr_sv.loop, &w->ready_timer);
		cr_debug(&who, "notify: ready_timeout extended by %.3fs", (double)m->extend_usec / 1e6);
	}
	if (m->load)
		cr_worker_set_load(w, m->load);
	cr_worker_add_requests(w, m->requests);
	if (m->stopping)
		cr_info(&who, "worker says it is stopping (STOPPING=1)");
	if (m->has_errno)
		cr_info(&who, "worker reports errno %d (%s)", m->errnum, strerror(m->errnum));
	if (m->ready) {
		if (w->conf->ready == CR_READY_NOTIFY && w->state == W_SPAWNING)
			w->early_ready = 1;	/* applied once its pid is known */
		else if (w->conf->ready == CR_READY_NOTIFY)
			cr_worker_ready(w);
		else
			cr_debug(&who, "notify: READY=1 (the pool's ready rule is not \"notify\")");
	}
	if (m->watchdog_trigger && w->state < W_STOPPING)
		cr_worker_abort(w, "watchdog triggered by the worker (WATCHDOG=trigger)");
}

int cr_wnotify_listen(struct ev_loop *loop)
{
	return cr_notify_listen(loop, on_message);
}
