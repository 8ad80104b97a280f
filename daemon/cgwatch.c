/*
 * cgwatch.c: tells its callers when a cgroup's cgroup.events file
 * changes, through one inotify instance on corrald's loop. The kernel
 * modifies that file when the cgroup empties or fills (populated) and
 * when a freeze or thaw completes (frozen); what the change means is the
 * caller's business. Only cgroups that someone waits on are watched: a
 * worker's once it is emptying, a pool's while it freezes or thaws.
 *
 * When inotify runs out (no instance: fs.inotify.max_user_instances or
 * the fd limit; no watch: fs.inotify.max_user_watches) a watch is polled
 * instead: its callback runs every POLL_INTERVAL. Callers look at the file
 * themselves, so a call without a change costs a read and nothing else;
 * a lost event would leave a worker or a freeze waiting forever. For the
 * same reason a queue overflow calls every callback.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "cgwatch.h"
#include "log.h"

#define POLL_INTERVAL 0.1

struct watch {
	int id;			/* what the caller holds */
	int wd;			/* inotify's, or -1 when polled */
	ev_timer poll;
	void (*cb)(void *data);
	void *data;
	struct watch *next;
};

static struct {
	struct ev_loop *loop;
	int fd;
	ev_io io;
	struct watch *watches;
	int next_id;
	int polling;		/* said so in the log, not yet said it ended */
} W = { .fd = -1 };

static struct watch *find_wd(int wd)
{
	for (struct watch *w = W.watches; w; w = w->next)
		if (w->wd == wd)
			return w;
	return NULL;
}

static struct watch *find_id(int id)
{
	for (struct watch *w = W.watches; w; w = w->next)
		if (w->id == id)
			return w;
	return NULL;
}

/* Events were lost: every inotify watch's callback, each looked up again
 * since a callback may remove any watch. */
static void call_all(void)
{
	unsigned n = 0, i = 0;
	int *ids;

	for (struct watch *w = W.watches; w; w = w->next)
		n++;
	if (!n || !(ids = malloc(n * sizeof *ids)))
		return;	/* out of memory: the polled ones still run */
	for (struct watch *w = W.watches; w; w = w->next)
		if (w->wd >= 0)
			ids[i++] = w->id;
	for (unsigned k = 0; k < i; k++) {
		struct watch *w = find_id(ids[k]);
		if (w)
			w->cb(w->data);
	}
	free(ids);
}

static void inotify_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	int overflow = 0;
	ssize_t n;

	(void)loop;
	(void)io;
	(void)revents;
	while ((n = read(W.fd, buf, sizeof buf)) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *e = (const void *)p;
			struct watch *w;

			p += sizeof *e + e->len;
			if (e->mask & IN_Q_OVERFLOW)
				overflow = 1;
			/* looked up again for each event: a callback may
			 * remove any watch, its own too */
			else if ((e->mask & IN_MODIFY) && (w = find_wd(e->wd)))
				w->cb(w->data);
		}
	}
	if (overflow) {
		cr_warn(NULL, "cgroup: inotify queue overflowed (fs.inotify.max_queued_events); "
			"looking at every watched cgroup");
		call_all();
	}
}

static void poll_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct watch *w = t->data;

	(void)loop;
	(void)revents;
	w->cb(w->data);	/* last: it may remove w */
}

/* An inotify instance, made now if there was none; -errno if none can be. */
static int instance(void)
{
	if (W.fd >= 0)
		return 0;
	W.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (W.fd < 0)
		return -errno;
	ev_io_init(&W.io, inotify_cb, W.fd, EV_READ);
	ev_io_start(W.loop, &W.io);
	return 0;
}

/* Never fails: without an instance every watch is polled. */
int cr_cgwatch_init(struct ev_loop *loop)
{
	int rc;

	W.loop = loop;
	if ((rc = instance()) < 0) {
		cr_warn(NULL, "cgroup: unable to create an inotify instance: %s; polling cgroup.events "
			"every %.0f ms instead until one can be made", strerror(-rc), POLL_INTERVAL * 1000);
		W.polling = 1;
	}
	return 0;
}

void cr_cgwatch_finish(void)
{
	while (W.watches) {
		struct watch *w = W.watches;
		W.watches = w->next;
		ev_timer_stop(W.loop, &w->poll);
		free(w);
	}
	if (W.fd >= 0) {
		ev_io_stop(W.loop, &W.io);
		close(W.fd);
		W.fd = -1;
	}
}

int cr_cgwatch_add(const char *dir, void (*cb)(void *data), void *data)
{
	char path[PATH_MAX + 16];
	struct watch *w = calloc(1, sizeof *w);
	int rc;

	if (!w)
		return -ENOMEM;
	snprintf(path, sizeof path, "%s/cgroup.events", dir);
	if ((rc = instance()) == 0) {
		w->wd = inotify_add_watch(W.fd, path, IN_MODIFY);
		rc = w->wd < 0 ? -errno : 0;
	}
	if (rc == 0 && find_wd(w->wd)) {
		/* one file, one wd: a second watcher of it is a caller's bug */
		free(w);
		return -EEXIST;
	}
	if (rc < 0) {
		/* once per shortage, not once per cgroup */
		if (!W.polling)
			cr_warn(NULL, "cgroup: unable to watch %s: %s; polling it every %.0f ms instead, "
				"and any other cgroup until inotify watches can be had again",
				path, strerror(-rc), POLL_INTERVAL * 1000);
		W.polling = 1;
		w->wd = -1;
		ev_timer_init(&w->poll, poll_cb, POLL_INTERVAL, POLL_INTERVAL);
		w->poll.data = w;
		ev_timer_start(W.loop, &w->poll);
	} else if (W.polling) {
		cr_info(NULL, "cgroup: inotify watches can be had again, polling no more for new ones");
		W.polling = 0;
	}
	/* ids of our own: positive, and never those of live watches */
	do
		W.next_id = W.next_id == INT_MAX ? 1 : W.next_id + 1;
	while (find_id(W.next_id));
	w->id = W.next_id;
	w->cb = cb;
	w->data = data;
	w->next = W.watches;
	W.watches = w;
	return w->id;
}

void cr_cgwatch_remove(int id)
{
	for (struct watch **pp = &W.watches; *pp; pp = &(*pp)->next) {
		struct watch *w = *pp;
		if (w->id == id) {
			*pp = w->next;
			if (w->wd >= 0)
				/* EINVAL when the kernel dropped it with its cgroup */
				inotify_rm_watch(W.fd, w->wd);
			else
				ev_timer_stop(W.loop, &w->poll);
			free(w);
			return;
		}
	}
}
