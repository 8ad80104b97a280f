/*
 * cgwatch.c: tells its callers when a cgroup's cgroup.events file
 * changes, through one inotify instance on corrald's loop. The kernel
 * modifies that file when the cgroup empties or fills (populated) and
 * when a freeze or thaw completes (frozen); what the change means is the
 * caller's business. Only cgroups that someone waits on are watched: a
 * worker's once it is emptying, a pool's while it freezes or thaws.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "cgwatch.h"
#include "log.h"

struct watch {
	int wd;
	void (*cb)(void *data);
	void *data;
	struct watch *next;
};

static struct {
	struct ev_loop *loop;
	int fd;
	ev_io io;
	struct watch *watches;
} W = { .fd = -1 };

static struct watch *find(int wd)
{
	for (struct watch *w = W.watches; w; w = w->next)
		if (w->wd == wd)
			return w;
	return NULL;
}

static void inotify_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	(void)loop;
	(void)io;
	(void)revents;
	while ((n = read(W.fd, buf, sizeof buf)) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *e = (const void *)p;
			struct watch *w;

			p += sizeof *e + e->len;
			/* looked up again for each event: a callback may
			 * remove any watch, its own too */
			if ((e->mask & IN_MODIFY) && (w = find(e->wd)))
				w->cb(w->data);
		}
	}
}

int cr_cgwatch_init(struct ev_loop *loop)
{
	W.loop = loop;
	W.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (W.fd < 0)
		return -errno;
	ev_io_init(&W.io, inotify_cb, W.fd, EV_READ);
	ev_io_start(loop, &W.io);
	return 0;
}

void cr_cgwatch_finish(void)
{
	while (W.watches) {
		struct watch *w = W.watches;
		W.watches = w->next;
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

	if (!w)
		return -ENOMEM;
	snprintf(path, sizeof path, "%s/cgroup.events", dir);
	w->wd = inotify_add_watch(W.fd, path, IN_MODIFY);
	if (w->wd < 0) {
		int e = errno;
		free(w);
		return -e;
	}
	if (find(w->wd)) {
		/* one file, one wd: a second watcher of it is a caller's bug */
		free(w);
		return -EEXIST;
	}
	w->cb = cb;
	w->data = data;
	w->next = W.watches;
	W.watches = w;
	return w->wd;
}

void cr_cgwatch_remove(int id)
{
	for (struct watch **pp = &W.watches; *pp; pp = &(*pp)->next) {
		struct watch *w = *pp;
		if (w->wd == id) {
			*pp = w->next;
			/* EINVAL when the kernel dropped it with its cgroup */
			inotify_rm_watch(W.fd, id);
			free(w);
			return;
		}
	}
}
