/*
 * timers.c: timers and PSI triggers that plugins ask for, each belonging
 * to an owner (a config's Lua state: they die with it at a reload) and
 * named by an id. When one fires, the owner's fire function is called;
 * this file knows nothing of Lua.
 *
 * PSI triggers: a trigger is a pressure file we wrote "some|full STALL
 * WINDOW" to; the kernel signals it with POLLPRI, which ev_io cannot wait
 * for. Each trigger gets an epoll set of its own holding just that fd
 * (EPOLLPRI), and libev watches the set's fd: polling a trigger consumes
 * its event, so the set's readiness is the only sign we get, and one set
 * per trigger says which one fired.
 *
 * Listen watches: a pool's listening socket (our own dup of it) with a
 * connection waiting in its backlog. Nobody accepts here, so the socket
 * stays readable for as long as the connection waits: a level-triggered
 * watcher would fire at once, again and again. Each readiness fires once,
 * then the watcher rests for its pause and only then looks again; a
 * connection that waits on costs one wakeup per pause, not a spinning loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "log.h"
#include "timers.h"

enum kind { TIMER, PSI, LISTEN };

struct cb {
	int id;
	enum kind kind;
	void *owner;
	ev_timer timer;
	int fd;			/* PSI: the pressure file */
	int epfd;		/* PSI: an epoll set holding only fd */
	ev_io io;		/* PSI: on epfd; LISTEN: on fd */
	double pause;		/* LISTEN: rest after firing */
	struct cb *next;
};

static struct {
	struct ev_loop *loop;
	void (*fire)(void *owner, int id);
	struct cb *cbs;
	int next_id;
} T;

static void cb_free(struct cb *c)
{
	if (c->kind == TIMER)
		ev_timer_stop(T.loop, &c->timer);
	if (c->kind == LISTEN) {
		ev_io_stop(T.loop, &c->io);
		ev_timer_stop(T.loop, &c->timer);
	}
	if (c->kind == PSI) {
		ev_io_stop(T.loop, &c->io);
		if (c->epfd >= 0)
			close(c->epfd);
	}
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

static void cb_remove(struct cb *c)
{
	for (struct cb **pp = &T.cbs; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			cb_free(c);
			return;
		}
	}
}

static void fire(struct cb *c)
{
	void *owner = c->owner;
	int id = c->id;

	if (c->kind == TIMER && !ev_is_active(&c->timer))
		cb_remove(c);	/* a one-shot timer is done */
	T.fire(owner, id);
}

static void timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	fire(t->data);
}

static void psi_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct cb *c = io->data;
	struct epoll_event ev;
	int n;

	(void)loop;
	(void)revents;
	/* the event itself was consumed when the set was polled; this only
	 * tells a gone cgroup (an error) from a trigger */
	n = epoll_wait(c->epfd, &ev, 1, 0);
	if (n > 0 && (ev.events & (EPOLLERR | EPOLLHUP))) {
		cr_warn(NULL, "plugin: PSI trigger %d stopped: its pool's cgroup is gone", c->id);
		cb_remove(c);
		return;
	}
	fire(c);
}

static void listen_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct cb *c = io->data;

	(void)revents;
	/* the connection stays queued: rest, then look again */
	ev_io_stop(loop, io);
	ev_timer_set(&c->timer, c->pause, 0);
	ev_timer_start(loop, &c->timer);
	fire(c);
}

static void listen_rested_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct cb *c = t->data;

	(void)revents;
	ev_io_start(loop, &c->io);
}

void cr_timers_init(struct ev_loop *loop, void (*fire_fn)(void *owner, int id))
{
	T.loop = loop;
	T.fire = fire_fn;
}

void cr_timers_forget(void *owner)
{
	struct cb **pp = &T.cbs;

	while (*pp) {
		struct cb *c = *pp;
		if (c->owner == owner) {
			*pp = c->next;
			cb_free(c);
		} else {
			pp = &c->next;
		}
	}
}

void cr_timers_finish(void)
{
	while (T.cbs) {
		struct cb *c = T.cbs;
		T.cbs = c->next;
		cb_free(c);
	}
}

static struct cb *cb_new(void *owner, enum kind kind)
{
	struct cb *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	c->id = ++T.next_id;
	c->kind = kind;
	c->owner = owner;
	c->fd = c->epfd = -1;
	c->next = T.cbs;
	T.cbs = c;
	return c;
}

int cr_timers_add(void *owner, double seconds, int repeat)
{
	struct cb *c = cb_new(owner, TIMER);

	if (!c)
		return -ENOMEM;
	ev_timer_init(&c->timer, timer_cb, seconds, repeat ? seconds : 0);
	c->timer.data = c;
	ev_timer_start(T.loop, &c->timer);
	return c->id;
}

void cr_timers_cancel(void *owner, int id)
{
	for (struct cb *c = T.cbs; c; c = c->next) {
		if (c->id == id && c->owner == owner) {
			cb_remove(c);
			return;
		}
	}
}

int cr_timers_add_psi(void *owner, const char *path, const char *spec)
{
	struct epoll_event ev = { .events = EPOLLPRI };
	struct cb *c;
	int fd, e;

	fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, spec, strlen(spec) + 1) < 0) {
		e = errno;
		close(fd);
		return -e;
	}
	if (!(c = cb_new(owner, PSI))) {
		close(fd);
		return -ENOMEM;
	}
	c->fd = fd;
	c->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (c->epfd < 0 || epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		e = errno;
		cb_remove(c);
		return -e;
	}
	ev_io_init(&c->io, psi_cb, c->epfd, EV_READ);
	c->io.data = c;
	ev_io_start(T.loop, &c->io);
	return c->id;
}

int cr_timers_add_listen(void *owner, int fd, double pause)
{
	struct cb *c;

	/* our own fd: a reload that closes the pool's cannot leave the
	 * watcher on a closed or reused number */
	if ((fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0)
		return -errno;
	if (!(c = cb_new(owner, LISTEN))) {
		close(fd);
		return -ENOMEM;
	}
	c->fd = fd;
	c->pause = pause;
	ev_io_init(&c->io, listen_cb, fd, EV_READ);
	c->io.data = c;
	ev_timer_init(&c->timer, listen_rested_cb, pause, 0);
	c->timer.data = c;
	ev_io_start(T.loop, &c->io);
	return c->id;
}
