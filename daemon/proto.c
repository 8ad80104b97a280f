/*
 * proto.c: the prototype, a fork server per pool. corrald forks it after
 * the config has run, so the config's code and data are in it; it forks
 * the pool's workers when corrald asks, hands their pidfds and channels
 * back over its socketpair, and reaps them, reporting each exit status.
 *
 * Wire format: one struct cr_proto_msg per SOCK_SEQPACKET datagram, with
 * file descriptors (SCM_RIGHTS) on CR_MSG_SPAWNED only. Both ends are the
 * same binary, so the struct is sent as it is.
 *
 * The prototype is single-threaded and does not use libev; it polls two
 * fds. What it does before serving (isolation, the prefork hook) is in
 * proto_main(), before CR_MSG_READY is sent.
 *
 * A prototype's cgroup holds what its prefork started too (a daemon it
 * double-forked included): once the prototype is killed or exits, the
 * whole cgroup is killed, and the prototype is done only when the cgroup
 * is empty (cgroup.events populated 0).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "cgwatch.h"
#include "config.h"
#include "crlua.h"
#include "isolate.h"
#include "notify.h"
#include "log.h"
#include "output.h"
#include "proctitle.h"
#include "proto.h"
#include "spawn.h"
#include "text.h"
#include "unixmsg.h"

enum cr_msg_type {
	CR_MSG_READY = 1,	/* proto -> corrald: serving */
	CR_MSG_GO,		/* corrald -> proto: its uid/gid maps are written */
	CR_MSG_SPAWN,		/* corrald -> proto: fork worker `worker` */
	CR_MSG_SPAWNED,		/* proto -> corrald: pid, fds [pidfd, channel]
				 * and, when pumped (output.c), its output's pipe */
	CR_MSG_SPAWN_FAILED,	/* proto -> corrald: status = errno */
	CR_MSG_EXITED,		/* proto -> corrald: pid, status = wait status */
};

struct cr_proto_msg {
	uint32_t type;
	uint32_t serial;	/* names a spawn request */
	uint32_t worker;
	int32_t pid;
	int32_t status;
};

#define PROTO_SOCK 3

/* Descriptors a message of ours may carry. */
#define MAX_FDS 3

/* One message and its descriptors. Returns the bytes read, 0 at EOF,
 * -1/errno; a message that is not whole comes back as -2 with its
 * descriptors closed; a whole one whose descriptors did not all arrive
 * (the receiver out of fds: the kernel drops them, MSG_CTRUNC) as -3,
 * with those that came closed. */
static ssize_t msg_recv(int sock, struct cr_proto_msg *m, struct cr_unixmsg_extra *x, int flags)
{
	ssize_t n = cr_unixmsg_recv(sock, m, sizeof *m, MAX_FDS, x, flags);

	if (n <= 0)
		return n;
	if (n != (ssize_t)sizeof *m || x->truncated) {
		cr_unixmsg_close_fds(x);
		x->nfds = 0;
		return n == (ssize_t)sizeof *m ? -3 : -2;
	}
	return n;
}

/* ---- the prototype process ---------------------------------------------- */

/* Blocking: corrald reads as fast as it can, and we have nothing else to
 * do; if corrald is gone there is no one to serve. */
static void proto_send(const struct cr_proto_msg *m, const int *fds, int nfds)
{
	if (cr_unixmsg_send(PROTO_SOCK, m, sizeof *m, fds, nfds, 0) < 0)
		_exit(errno == EPIPE || errno == ECONNRESET ? 0 : 1);
}

static void proto_spawn(const struct cr_pool_conf *pc, unsigned generation,
			const struct cr_proto_msg *req, int cgroup_fd)
{
	struct cr_proto_msg m = { .serial = req->serial, .worker = req->worker };
	int chan[2], pidfd, fds[3], out[2] = { -1, -1 }, e;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan) < 0)
		goto fail;
	/* its output through corrald: the read end non-blocking (corrald's
	 * side), the write end as a terminal would be */
	if (cr_output_kind(pc) != CR_OUTPUT_DIRECT &&
	    (pipe2(out, O_CLOEXEC) < 0 || fcntl(out[0], F_SETFL, O_NONBLOCK) < 0))
		goto fail_chan;
	pid = cr_spawn_clone(&pidfd, cgroup_fd);
	if (pid < 0)
		goto fail_chan;
	if (pid == 0) {
		close(chan[0]);
		close(cgroup_fd);
		if (out[0] >= 0)
			close(out[0]);
		cr_spawn_worker(pc, req->worker, generation, chan[1], out[1]);
	}
	close(chan[1]);
	m.type = CR_MSG_SPAWNED;
	m.pid = pid;
	fds[0] = pidfd;
	fds[1] = chan[0];
	fds[2] = out[0];
	if (out[1] >= 0)
		close(out[1]);
	proto_send(&m, fds, out[0] >= 0 ? 3 : 2);
	close(pidfd);
	close(chan[0]);
	if (out[0] >= 0)
		close(out[0]);
	return;
fail_chan:
	e = errno;
	close(chan[0]);
	close(chan[1]);
	for (int i = 0; i < 2; i++)
		if (out[i] >= 0)
			close(out[i]);
	errno = e;
fail:
	m.type = CR_MSG_SPAWN_FAILED;
	m.status = errno;
	proto_send(&m, NULL, 0);
}

/* Reports each exited worker before reaping it: if we die in between, the
 * zombie goes to corrald (a subreaper), so its status is never lost. */
static void proto_reap(void)
{
	struct cr_proto_msg m = { .type = CR_MSG_EXITED };
	siginfo_t si;

	for (;;) {
		si.si_pid = 0;
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0)
			return;
		m.pid = si.si_pid;
		/* the wait status that waitpid() would give */
		if (si.si_code == CLD_EXITED)
			m.status = (si.si_status & 0xff) << 8;
		else
			m.status = (si.si_status & 0x7f) | (si.si_code == CLD_DUMPED ? 0x80 : 0);
		proto_send(&m, NULL, 0);
		waitpid(si.si_pid, NULL, 0);
	}
}

/* Copies the pool's sockets to fds of 16 and up (F_DUPFD never takes one
 * in use), so that moving the socketpair to fd 3 cannot hit one; the conf
 * is the prototype's own copy, so it records where they went. */
static int keep_listen_fds(struct cr_pool_conf *pc, int *sock)
{
	for (unsigned i = 0; i < pc->nlisten; i++) {
		int fd = fcntl(pc->listen_fds[i], F_DUPFD_CLOEXEC, 16);
		if (fd < 0)
			return -1;
		pc->listen_fds[i] = fd;
	}
	if (*sock < 16) {
		int fd = fcntl(*sock, F_DUPFD_CLOEXEC, 16);
		if (fd < 0)
			return -1;
		*sock = fd;
	}
	return 0;
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* Closes every fd above `low` but those in keep. */
static void close_all_but(int low, const int *keep, unsigned n)
{
	int sorted[n + 1], next = low + 1;

	memcpy(sorted, keep, n * sizeof *keep);
	qsort(sorted, n, sizeof *sorted, cmp_int);
	for (unsigned i = 0; i < n; i++) {
		if (sorted[i] > next)
			close_range((unsigned)next, (unsigned)sorted[i] - 1, 0);
		if (sorted[i] >= next)
			next = sorted[i] + 1;
	}
	close_range((unsigned)next, ~0U, 0);
}

/* Without a user namespace the prototype stays root (it places workers
 * in their cgroups and sets their credentials), but prefork runs with
 * the pool's user and groups as its effective ones: what it opens and
 * creates, it does as the pool's user. */
static int prefork_as_user(const struct cr_pool_conf *pc)
{
	gid_t *groups;
	int n, rc;

	if ((pc->isolation.namespaces & CLONE_NEWUSER) || (!pc->set_uid && !pc->set_gid) || geteuid() != 0)
		return cr_lua_prefork(pc);
	/* on the heap: rlimits.stack may be small already */
	if ((n = getgroups(0, NULL)) < 0 || !(groups = calloc((size_t)n + 1, sizeof *groups)) ||
	    (n = getgroups(n, groups)) < 0 || setgroups((size_t)pc->ngroups, pc->groups) < 0 ||
	    (pc->set_gid && setresgid((gid_t)-1, pc->gid, (gid_t)-1) < 0) ||
	    (pc->set_uid && setresuid((uid_t)-1, pc->uid, (uid_t)-1) < 0)) {
		cr_error(&(struct cr_who){ .pool = pc->name, .pid = getpid() },
			 "prototype: unable to take the pool's user for prefork: %s", strerror(errno));
		return -1;
	}
	rc = cr_lua_prefork(pc);
	if (setresuid((uid_t)-1, getuid(), (uid_t)-1) < 0 || setresgid((gid_t)-1, getgid(), (gid_t)-1) < 0 ||
	    setgroups((size_t)n, groups) < 0) {
		cr_error(&(struct cr_who){ .pool = pc->name, .pid = getpid() },
			 "prototype: unable to return from the pool's user after prefork: %s", strerror(errno));
		return -1;
	}
	free(groups);
	return rc;
}

/* Waits for corrald to write our uid/gid maps. */
static void wait_go(int sock)
{
	struct cr_proto_msg m;
	struct cr_unixmsg_extra x;
	ssize_t n;

	while ((n = msg_recv(sock, &m, &x, 0)) < 0 && errno == EINTR)
		;
	if (n <= 0 || m.type != CR_MSG_GO)
		_exit(1);	/* corrald gave up on us, and said why */
	cr_unixmsg_close_fds(&x);
}

static void __attribute__((noreturn)) proto_main(struct cr_pool_conf *pc, unsigned generation,
						 int sock, pid_t parent)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL }, ign = { .sa_handler = SIG_IGN };
	struct cr_proto_msg m = { .type = CR_MSG_READY };
	struct pollfd pfd[2];
	sigset_t mask;
	int sfd, null, ns = cr_isolate_clone_flags(pc);
	char err[PATH_MAX + 256];

	cr_proctitle_set("corral: prototype %s", pc->name);
	/* corrald's death ends the prototype; workers live on until killed.
	 * In a pid namespace of its own, its parent is not there to see (0). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != ((ns & CLONE_NEWPID) ? 0 : parent))
		_exit(1);
	if (ns & CLONE_NEWUSER)
		wait_go(sock);
	setsid();	/* a Ctrl-C in corrald's terminal is corrald's alone */
	if (cr_spawn_restore_nofile() < 0)	/* corrald's own is raised */
		_exit(1);
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &dfl, NULL);
	sigaction(SIGPIPE, &ign, NULL);
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_SETMASK, &mask, NULL);

	/* nothing of corrald's stays open but stdout, stderr and the pool's
	 * listening sockets (moved above fd 16 first, out of the way); pc is
	 * this process's own copy, so it records where they went */
	if (keep_listen_fds(pc, &sock) < 0)
		_exit(1);
	if (sock != PROTO_SOCK && dup3(sock, PROTO_SOCK, O_CLOEXEC) < 0)
		_exit(1);
	close_all_but(PROTO_SOCK, pc->listen_fds, pc->nlisten);
	null = open("/dev/null", O_RDONLY);
	if (null >= 0 && null != STDIN_FILENO) {
		dup2(null, STDIN_FILENO);
		close(null);
	}
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		_exit(1);

	/* isolation, once, for every worker forked from here */
	if (cr_isolate_prototype(pc, err, sizeof err) < 0) {
		cr_error(&(struct cr_who){ .pool = pc->name, .pid = (ns & CLONE_NEWPID) ? 0 : getpid() },
			 "prototype: %s", err);
		_exit(1);
	}
	/* what prefork loads, every worker shares until it writes to it */
	if (prefork_as_user(pc) < 0)
		_exit(1);
	/* a change of credentials (above) clears the death signal */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		_exit(1);
	proto_send(&m, NULL, 0);
	pfd[0] = (struct pollfd){ .fd = PROTO_SOCK, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = sfd, .events = POLLIN };
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		if (pfd[1].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof si) > 0)
				;
			proto_reap();
		}
		if (pfd[0].revents) {
			struct cr_unixmsg_extra x;
			ssize_t n = msg_recv(PROTO_SOCK, &m, &x, 0);
			if (n == 0 || (n == -1 && errno != EAGAIN))
				_exit(0);	/* corrald closed: we are done */
			if (n > 0 && m.type == CR_MSG_SPAWN && x.nfds == 1)
				proto_spawn(pc, generation, &m, x.fds[0]);
			else if (m.type == CR_MSG_SPAWN && (n > 0 || n == -3)) {
				/* its cgroup's fd did not come (we are out of
				 * fds): corrald must not wait for it forever */
				struct cr_proto_msg f = { .type = CR_MSG_SPAWN_FAILED, .serial = m.serial,
							  .worker = m.worker, .status = EMFILE };
				proto_send(&f, NULL, 0);
			}
			cr_unixmsg_close_fds(&x);
		}
	}
}

/* ---- corrald's side ----------------------------------------------------- */

/* ---- pids in a pid namespace ------------------------------------------- */

/* The pid a pidfd refers to, as corrald's pid namespace numbers it. */
static pid_t pidfd_pid(int pidfd)
{
	char path[64], buf[1024], *at;
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", pidfd);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	at = strstr(buf, "\nPid:");
	return at ? (pid_t)strtol(at + 5, NULL, 10) : -1;
}

static int pid_remember(struct cr_proto *p, pid_t inner, pid_t outer)
{
	if (p->npids == p->cap_pids) {
		unsigned cap = p->cap_pids ? 2 * p->cap_pids : 16;
		struct cr_pidpair *v = realloc(p->pids, cap * sizeof *v);
		if (!v)
			return -1;
		p->pids = v;
		p->cap_pids = cap;
	}
	p->pids[p->npids++] = (struct cr_pidpair){ inner, outer };
	return 0;
}

/* The outer pid of an inner one, forgotten; 0 for one not a worker's
 * (an orphan the prototype reaped as PID 1). */
static pid_t pid_forget(struct cr_proto *p, pid_t inner)
{
	for (unsigned i = 0; i < p->npids; i++) {
		if (p->pids[i].inner == inner) {
			pid_t outer = p->pids[i].outer;
			p->pids[i] = p->pids[--p->npids];
			return outer;
		}
	}
	return 0;
}

/* Reads every queued message and reports each to the owner. Returns -1
 * once the prototype is gone. */
static int proto_read(struct cr_proto *p)
{
	struct cr_who who = { .pool = p->conf->name, .pid = p->pid };

	while (p->sock >= 0) {
		struct cr_proto_msg m;
		struct cr_unixmsg_extra x;
		ssize_t n = msg_recv(p->sock, &m, &x, MSG_DONTWAIT);

		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		p->waiting_since = ev_now(p->loop);	/* it answers */
		if (n == -2) {
			cr_alert(&who, "prototype: unable to read a message: not a whole one");
			continue;
		}
		if (n == -3 && m.type == CR_MSG_SPAWNED) {
			struct cr_who ww = { .pool = p->conf->name, .worker = m.worker, .pid = m.pid };
			/* corrald is out of fds: without its pidfd and channel
			 * the worker cannot be run. Killed by pid, there being
			 * no pidfd: the pid is the worker's unless it already
			 * died and the prototype reaped it, a window accepted. */
			cr_error(&ww, "prototype: the worker's pidfd and channel did not arrive "
				 "(corrald out of file descriptors?); killing it");
			kill(m.pid, SIGKILL);
			p->inflight--;
			p->ops->spawn_failed(p, m.serial, EMFILE);
			continue;
		}
		if (n < 0 && n != -3)
			return -1;
		if (n == 0)
			return -1;
		if (m.type == CR_MSG_SPAWNED && (x.nfds == 2 || x.nfds == 3)) {
			p->inflight--;
			if (p->pidns) {
				pid_t outer = pidfd_pid(x.fds[0]);
				/* gone and reaped already (an exec that failed at
				 * once): its exit report follows; until then it
				 * is known by a number no process has */
				if (outer <= 0)
					outer = -m.pid;
				if (pid_remember(p, m.pid, outer) < 0) {
					cr_error(&who, "prototype: unable to learn the pid of worker %u outside "
						 "its pid namespace; killing it", m.worker);
					pidfd_send_signal(x.fds[0], SIGKILL, NULL, 0);
					cr_unixmsg_close_fds(&x);
					p->ops->spawn_failed(p, m.serial, ESRCH);
					continue;
				}
				m.pid = outer;
			}
			p->ops->spawned(p, m.serial, m.pid, x.fds[0], x.fds[1], x.nfds == 3 ? x.fds[2] : -1);
			continue;
		}
		cr_unixmsg_close_fds(&x);
		switch (m.type) {
		case CR_MSG_READY:
			p->state = CR_PROTO_READY;
			ev_timer_stop(p->loop, &p->start_timer);
			cr_debug(&who, "prototype ready");
			p->ops->ready(p);
			break;
		case CR_MSG_SPAWNED:
			cr_alert(&who, "prototype: spawn answer carried %d fds, not 2 or 3", x.nfds);
			break;
		case CR_MSG_SPAWN_FAILED:
			p->inflight--;
			p->ops->spawn_failed(p, m.serial, m.status);
			break;
		case CR_MSG_EXITED:
			if (p->pidns && !(m.pid = pid_forget(p, m.pid))) {
				cr_debug(&who, "prototype reaped an orphan in its pid namespace");
				break;
			}
			p->ops->exited(p, m.pid, m.status);
			break;
		default:
			cr_alert(&who, "prototype: unknown message type %u", m.type);
		}
	}
	return -1;
}

static void proto_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct cr_proto *p = w->data;

	(void)revents;
	/* it closed its end: dying or broken; its exit comes when reaped */
	if (proto_read(p) < 0)
		cr_proto_close(loop, p);
}

/* A prototype not serving in time (prefork stuck) is killed; its exit is
 * then reported like any other. */
static void start_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct cr_proto *p = t->data;
	struct cr_who who = { .pool = p->conf->name, .pid = p->pid };
	char d[32];

	(void)loop;
	(void)revents;
	cr_text_duration(d, sizeof d, p->conf->prefork_timeout);
	cr_error(&who, "prototype not ready within %s (prefork_timeout), killing it", d);
	cr_proto_kill(p);
}

/* ---- its cgroup, once it is killed or gone ------------------------------- */

/* Killing again this often while a cgroup does not empty: the fallback
 * without cgroup.kill can miss a process forked meanwhile, and a lost
 * inotify event must not leave the prototype waiting. */
#define KILL_AGAIN 1.0

/* Whether the cgroup is empty now; when it is, the owner is told. */
static int check_empty(struct cr_proto *p)
{
	struct cr_who who = { .pool = p->conf->name, .pid = p->pid };
	int populated = cr_cgroup_populated(p->cgroup);

	if (populated > 0)
		return 0;
	if (populated < 0 && populated != -ENOENT)
		cr_error(&who, "cgroup: unable to read %s/cgroup.events: %s; taking the prototype's "
			 "cgroup as empty", p->cgroup, strerror(-populated));
	cr_cgwatch_remove(p->watch);
	p->watch = -1;
	ev_timer_stop(p->loop, &p->kill_again);
	p->emptying = 0;
	p->emptied = 1;
	/* the next prototype gets a new one: a cgroup once killed may kill
	 * what is later cloned into it (kernels that compare cgroup.kill's
	 * count of the parent's cgroup with the target's) */
	if ((populated = cr_cgroup_rmdir(p->cgroup)) < 0)
		cr_error(&who, "cgroup: unable to remove the prototype's cgroup %s: %s", p->cgroup,
			 strerror(-populated));
	cr_debug(&who, "prototype's cgroup is empty");
	return 1;
}

static void cgroup_cb(void *data)
{
	struct cr_proto *p = data;

	if (check_empty(p))
		p->ops->emptied(p);	/* last: it may free p */
}

static void kill_again_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct cr_proto *p = t->data;

	(void)loop;
	(void)revents;
	cr_cgroup_kill(p->cgroup);
	cgroup_cb(p);
}

/* Everything in the prototype's cgroup is killed: the prototype and what
 * its prefork left running. Done when cgroup.events says it is empty. */
static void empty_cgroup(struct cr_proto *p)
{
	struct cr_who who = { .pool = p->conf->name, .pid = p->pid };
	int rc;

	p->emptying = 1;
	/* watch first: it may empty at once */
	p->watch = cr_cgwatch_add(p->cgroup, cgroup_cb, p);
	if ((rc = cr_cgroup_kill(p->cgroup)) < 0 && rc != -ENOENT)
		cr_error(&who, "cgroup: unable to kill what is left in %s: %s", p->cgroup, strerror(-rc));
	if (!check_empty(p)) {
		cr_debug(&who, "killing what is left in the prototype's cgroup");
		ev_timer_start(p->loop, &p->kill_again);
	}
}

struct cr_proto *cr_proto_start(struct ev_loop *loop, const struct cr_proto_ops *ops, void *owner,
				struct cr_pool_conf *conf, unsigned generation, const char *cgroup)
{
	struct cr_proto *p;
	int sv[2] = { -1, -1 }, pidfd, cgroup_fd, ns = cr_isolate_clone_flags(conf);
	pid_t parent = getpid(), pid;
	char err[256];

	/* workers that cannot reach the abstract name get the path: it must
	 * be there before the prototype is forked (it binds it in its root) */
	if (cr_isolate_notify_by_path(conf) && cr_notify_socket() && !cr_notify_path()) {
		cr_error(&(struct cr_who){ .pool = conf->name }, "isolation: the pool's workers (in a network "
			 "namespace or a rootfs) reach corrald's notify socket by a path, which could not be made");
		errno = EADDRNOTAVAIL;
		return NULL;
	}
	p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	if (!(p->cgroup = strdup(cgroup)))
		goto fail_free;
	if ((cgroup_fd = cr_cgroup_open(cgroup)) < 0) {
		errno = -cgroup_fd;
		goto fail_free;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		goto fail_close;
	pid = cr_spawn_clone_ns(&pidfd, cgroup_fd, ns);
	if (pid < 0) {
		if (ns)
			cr_error(&(struct cr_who){ .pool = conf->name }, "isolation.namespaces: unable to make "
				 "the prototype's namespaces: %s%s", strerror(errno),
				 errno == EPERM ? " (not allowed to corrald: root, or a user namespace, is needed)"
				 : errno == ENOSPC || errno == EUSERS ? " (the kernel's namespace limit, "
				 "/proc/sys/user/max_*_namespaces)" : "");
		goto fail_close;
	}
	if (pid == 0) {
		close(sv[0]);
		close(cgroup_fd);
		proto_main(conf, generation, sv[1], parent);
	}
	close(sv[1]);
	close(cgroup_fd);
	if (ns & CLONE_NEWUSER) {
		struct cr_proto_msg go = { .type = CR_MSG_GO };
		int rc = cr_isolate_write_maps(conf, pid, err, sizeof err);
		if (rc == 0 && cr_unixmsg_send(sv[0], &go, sizeof go, NULL, 0, 0) < 0) {
			snprintf(err, sizeof err, "unable to tell the prototype to go on: %s", strerror(errno));
			rc = -1;
		}
		if (rc < 0) {
			cr_error(&(struct cr_who){ .pool = conf->name, .pid = pid }, "prototype: %s", err);
			pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
			waitpid(pid, NULL, 0);	/* ours, not reaped by the loop yet */
			close(pidfd);
			close(sv[0]);
			free(p->cgroup);
			free(p);
			errno = EPERM;
			return NULL;
		}
	}
	p->pidns = (ns & CLONE_NEWPID) != 0;
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	p->loop = loop;
	p->ops = ops;
	p->owner = owner;
	p->conf = cr_pool_conf_ref(conf);
	p->generation = generation;
	p->pid = pid;
	p->pidfd = pidfd;
	p->sock = sv[0];
	p->state = CR_PROTO_STARTING;
	p->watch = -1;
	ev_timer_init(&p->kill_again, kill_again_cb, KILL_AGAIN, KILL_AGAIN);
	p->kill_again.data = p;
	ev_io_init(&p->io, proto_cb, p->sock, EV_READ);
	p->io.data = p;
	ev_io_start(loop, &p->io);
	ev_timer_init(&p->start_timer, start_timeout_cb, conf->prefork_timeout, 0);
	p->start_timer.data = p;
	ev_timer_start(loop, &p->start_timer);
	return p;

fail_close:
	{
		int e = errno;
		if (sv[0] >= 0) {
			close(sv[0]);
			close(sv[1]);
		}
		close(cgroup_fd);
		errno = e;
	}
fail_free:
	free(p->cgroup);
	free(p);
	return NULL;
}

int cr_proto_spawn(struct cr_proto *p, uint32_t serial, unsigned id, int cgroup_fd)
{
	struct cr_proto_msg m = { .type = CR_MSG_SPAWN, .serial = serial, .worker = id };

	if (p->state != CR_PROTO_READY)
		return -EAGAIN;
	if (cr_unixmsg_send(p->sock, &m, sizeof m, &cgroup_fd, 1, MSG_DONTWAIT) < 0)
		return -errno;
	if (p->inflight++ == 0)
		p->waiting_since = ev_now(p->loop);
	return 0;
}

void cr_proto_kill(struct cr_proto *p)
{
	ev_timer_stop(p->loop, &p->start_timer);
	if (!p->reaped)
		pidfd_send_signal(p->pidfd, SIGKILL, NULL, 0);
	p->state = CR_PROTO_GONE;
	if (!p->emptying && !p->emptied)
		empty_cgroup(p);
}

int cr_proto_done(const struct cr_proto *p)
{
	return p->reaped && p->emptied;
}

void cr_proto_close(struct ev_loop *loop, struct cr_proto *p)
{
	if (p->sock >= 0 && !p->closing) {
		p->closing = 1;
		proto_read(p);	/* exits and answers sent before it went */
		ev_io_stop(loop, &p->io);
		close(p->sock);
		p->sock = -1;
	}
	cr_proto_kill(p);
}

void cr_proto_free(struct cr_proto *p)
{
	if (!p)
		return;
	ev_timer_stop(p->loop, &p->start_timer);
	if (p->sock >= 0) {
		ev_io_stop(p->loop, &p->io);
		close(p->sock);
	}
	if (p->pidfd >= 0)
		close(p->pidfd);
	cr_cgwatch_remove(p->watch);
	ev_timer_stop(p->loop, &p->kill_again);
	cr_pool_conf_unref(p->conf);
	free(p->pids);
	free(p->cgroup);
	free(p);
}
