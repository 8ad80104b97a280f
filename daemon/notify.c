/*
 * notify.c: the sd_notify protocol both ways. Upward, corrald tells its
 * service manager that it is ready, reloading, stopping, and alive
 * (libsystemd's sd_notify; without NOTIFY_SOCKET all of it is off).
 * Inward, corrald listens on a datagram socket of its own that workers
 * find in their NOTIFY_SOCKET, so programs written for systemd run as
 * workers unchanged. Who sent a message is decided by the owner that gets
 * it (wnotify.c, from the sender's cgroup); this file only receives and
 * parses.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "log.h"
#include "notify.h"
#include "unixmsg.h"

/* STATUS= lines are sent at most this often (seconds). */
#define STATUS_EVERY 0.1

/* A datagram larger than this is not a notification. */
#define NOTIFY_MAX 4096

/* A flood must not cost corrald its loop: at most NOTIFY_BUDGET
 * datagrams every NOTIFY_PAUSE seconds, after which the socket is left
 * alone until that time is over (the kernel's queue holds the rest, their
 * senders wait; with a short queue a flood is many small wakeups, so a
 * budget per wakeup would not do). And each sending process is heard
 * SENDER_RATE times a second after a burst of SENDER_BURST (a worker's
 * start, its statuses), the excess dropped before the work of finding
 * its worker, and counted. What a dropped datagram says of the load
 * (BUSY=1, IDLE=1, REQUESTS=N) is not lost: it is kept with the sender,
 * added up, and passed on with its next datagram heard, or every
 * HELD_EVERY seconds within the same rate, so a worker that reports each
 * request is counted right and costs no more. */
#define NOTIFY_BUDGET 64
#define NOTIFY_PAUSE 0.01
#define SENDER_RATE 200.0
#define SENDER_BURST 2048.0
#define SENDER_SLOTS 32
#define SENDER_SAY_EVERY 5.0
#define HELD_EVERY 0.1

struct sender {
	pid_t pid;		/* 0: a free slot */
	double tokens, at;	/* the bucket, when last filled */
	unsigned long dropped;	/* not said yet */
	double said;
	int load;		/* held from dropped datagrams: the last */
	uint64_t requests;	/* and their sum */
};

static struct {
	struct ev_loop *loop;
	ev_timer watchdog;
	char status[512];
	double status_sent;
	ev_timer status_timer;
	int managed;		/* a service manager listens (NOTIFY_SOCKET) */
	int sock;
	ev_io io;
	ev_timer pause;
	ev_timer held;		/* passes on what senders' slots hold */
	double window;		/* when the current NOTIFY_PAUSE began */
	int taken;		/* datagrams read since */
	struct sender senders[SENDER_SLOTS];
	char name[64];
	/* the same socket by a path, for workers in a network namespace or
	 * a root of their own (abstract names are per network namespace) */
	int psock;
	ev_io pio;
	char path[108];
	void (*on_message)(pid_t sender, const struct cr_notify_msg *m);
} N = { .sock = -1, .psock = -1 };

/* ---- upward ------------------------------------------------------------- */

static void send_up(const char *msg)
{
	int rc = sd_notify(0, msg);

	if (rc < 0)
		cr_warn(NULL, "notify: unable to tell the service manager \"%s\": %s", msg, strerror(-rc));
}

static void status_cb(struct ev_loop *loop, ev_timer *t, int revents);
static void flush_status(void);

/* Pings at half the interval systemd asked for; the timer only runs when
 * the loop does, so a stuck corrald stops pinging. */
static void watchdog_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)t;
	(void)revents;
	send_up("WATCHDOG=1");
}

int cr_notify_managed(void)
{
	return N.managed;
}

void cr_notify_init(struct ev_loop *loop)
{
	uint64_t usec = 0;
	int rc;

	N.loop = loop;
	N.managed = getenv("NOTIFY_SOCKET") != NULL;
	ev_timer_init(&N.status_timer, status_cb, 0, 0);
	rc = sd_watchdog_enabled(0, &usec);	/* honours WATCHDOG_PID */
	if (rc > 0 && usec > 0) {
		double every = (double)usec / 2e6;
		ev_timer_init(&N.watchdog, watchdog_cb, every, every);
		ev_timer_start(loop, &N.watchdog);
		cr_info(NULL, "notify: pinging the service manager's watchdog every %gs", every);
	}
}

void cr_notify_finish(void)
{
	if (N.loop) {
		flush_status();	/* the last word before we go */
		ev_timer_stop(N.loop, &N.watchdog);
	}
}

void cr_notify_ready(void)
{
	flush_status();	/* the status that says why we are ready comes first */
	send_up("READY=1");
}

void cr_notify_reloading(void)
{
	flush_status();
	struct timespec ts;
	char msg[96];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
	send_up(msg);
}

void cr_notify_stopping(void)
{
	flush_status();
	send_up("STOPPING=1");
}

void cr_notify_extend_timeout(uint64_t usec)
{
	char msg[64];

	snprintf(msg, sizeof msg, "EXTEND_TIMEOUT_USEC=%llu", (unsigned long long)usec);
	send_up(msg);
}

static void send_status(void)
{
	char msg[600];

	snprintf(msg, sizeof msg, "STATUS=%s", N.status);
	send_up(msg);
	N.status_sent = ev_now(N.loop);
}

static void status_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)t;
	(void)revents;
	send_status();
}

/* A status held back by the rate limit goes out now. */
static void flush_status(void)
{
	if (!ev_is_active(&N.status_timer))
		return;
	ev_timer_stop(N.loop, &N.status_timer);
	send_status();
}

/* At most STATUS_EVERY apart: a pool of a thousand workers coming up
 * changes the line a thousand times; the manager needs the latest. */
void cr_notify_status(const char *status)
{
	double wait;

	if (!N.managed || strcmp(status, N.status) == 0)
		return;
	snprintf(N.status, sizeof N.status, "%s", status);
	wait = N.status_sent + STATUS_EVERY - ev_now(N.loop);
	if (wait <= 0) {
		ev_timer_stop(N.loop, &N.status_timer);
		send_status();
	} else if (!ev_is_active(&N.status_timer)) {
		ev_timer_set(&N.status_timer, wait, 0);
		ev_timer_start(N.loop, &N.status_timer);
	}
}

/* ---- inward: parsing ---------------------------------------------------- */

static int parse_u64(const char *s, size_t n, uint64_t *v)
{
	uint64_t x = 0;

	if (n == 0 || n > 20)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (x > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return -1;
		x = x * 10 + (uint64_t)(s[i] - '0');
	}
	*v = x;
	return 0;
}

static int is(const char *key, size_t klen, const char *name)
{
	return strlen(name) == klen && memcmp(key, name, klen) == 0;
}

int cr_notify_parse(const char *buf, size_t n, struct cr_notify_msg *m, const char **why)
{
	size_t pos = 0;

	memset(m, 0, sizeof *m);
	*why = NULL;
	if (n == 0) {
		*why = "empty datagram";
		return -EINVAL;
	}
	if (memchr(buf, 0, n)) {
		*why = "NUL byte in datagram";
		return -EINVAL;
	}
	while (pos < n) {
		const char *line = buf + pos, *nl = memchr(line, '\n', n - pos), *eq;
		size_t len = nl ? (size_t)(nl - line) : n - pos, klen, vlen;
		const char *val;
		uint64_t v;

		pos += len + (nl ? 1 : 0);
		if (len == 0)
			continue;	/* a trailing or doubled newline */
		eq = memchr(line, '=', len);
		if (!eq || eq == line) {
			*why = "a line that is not KEY=VALUE";
			return -EINVAL;
		}
		klen = (size_t)(eq - line);
		val = eq + 1;
		vlen = len - klen - 1;
		for (size_t i = 0; i < klen; i++) {
			char c = line[i];
			if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) {
				*why = "a key that is not [A-Z0-9_]";
				return -EINVAL;
			}
		}
		if (is(line, klen, "READY")) {
			m->ready = vlen == 1 && val[0] == '1';
		} else if (is(line, klen, "STOPPING")) {
			m->stopping = vlen == 1 && val[0] == '1';
		} else if (is(line, klen, "RELOADING")) {
			m->reloading = vlen == 1 && val[0] == '1';
		} else if (is(line, klen, "STATUS")) {
			m->has_status = 1;
			if (vlen >= sizeof m->status)
				vlen = sizeof m->status - 1;	/* keep the start */
			memcpy(m->status, val, vlen);
			m->status[vlen] = 0;
		} else if (is(line, klen, "WATCHDOG")) {
			if (vlen == 1 && val[0] == '1')
				m->watchdog = 1;
			else if (vlen == 7 && !memcmp(val, "trigger", 7))
				m->watchdog_trigger = 1;
			else
				m->unknown++;
		} else if (is(line, klen, "EXTEND_TIMEOUT_USEC")) {
			if (parse_u64(val, vlen, &v) < 0) {
				*why = "EXTEND_TIMEOUT_USEC is not a number";
				return -EINVAL;
			}
			m->extend_usec = v;
		} else if (is(line, klen, "WATCHDOG_USEC")) {
			if (parse_u64(val, vlen, &v) < 0 || v == 0) {
				*why = "WATCHDOG_USEC is not a positive number";
				return -EINVAL;
			}
			m->watchdog_usec = v;
		} else if (is(line, klen, "MAINPID")) {
			if (parse_u64(val, vlen, &v) < 0 || v < 2 || v > 0x3fffffff) {
				*why = "MAINPID is not a pid";
				return -EINVAL;
			}
			m->mainpid = (pid_t)v;
		} else if (is(line, klen, "BUSY") || is(line, klen, "IDLE")) {
			if (vlen == 1 && val[0] == '1')
				m->load = line[0] == 'B' ? CR_LOAD_BUSY : CR_LOAD_IDLE;
			else
				m->unknown++;	/* BUSY=0: not a word of ours */
		} else if (is(line, klen, "REQUESTS")) {
			if (parse_u64(val, vlen, &v) < 0 || v > CR_NOTIFY_REQUESTS_MAX) {
				*why = "REQUESTS is not a count";
				return -EINVAL;
			}
			/* a datagram holds at most 4096 / 10 of them: no overflow */
			m->requests += v;
		} else if (is(line, klen, "ERRNO")) {
			if (parse_u64(val, vlen, &v) < 0 || v > 4095) {
				*why = "ERRNO is not an errno";
				return -EINVAL;
			}
			m->has_errno = 1;
			m->errnum = (int)v;
		} else {
			m->unknown++;	/* BARRIER=1, FDSTORE=1, ...: nothing to do */
		}
	}
	return 0;
}

/* ---- inward: the socket ------------------------------------------------- */

static uint64_t add_saturating(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* What a sender's slot holds, passed on: merged into m, a datagram of
 * it being heard (its own load, newer, wins), or on its own. */
static void pass_held(struct sender *s, struct cr_notify_msg *m)
{
	struct cr_notify_msg own = { .load = s->load, .requests = s->requests };

	s->load = 0;
	s->requests = 0;
	if (!m) {
		N.on_message(s->pid, &own);
		return;
	}
	if (!m->load)
		m->load = own.load;
	m->requests = add_saturating(m->requests, own.requests);
}

/* A dropped datagram's load keys, kept for later. */
static void hold(struct sender *s, const char *buf, ssize_t n, const struct cr_unixmsg_extra *x)
{
	struct cr_notify_msg m;
	const char *why;

	if (n > NOTIFY_MAX || x->truncated || cr_notify_parse(buf, (size_t)n, &m, &why) < 0 ||
	    (!m.load && !m.requests))
		return;
	if (m.load)
		s->load = m.load;
	s->requests = add_saturating(s->requests, m.requests);
	if (!ev_is_active(&N.held)) {
		ev_timer_set(&N.held, HELD_EVERY, 0);
		ev_timer_start(N.loop, &N.held);
	}
}

static struct sender *sender_of(pid_t pid, double now);

/* Each slot that holds something and may be heard again passes it on. */
static void held_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	double now = ev_now(loop);
	int left = 0;

	(void)revents;
	for (struct sender *s = N.senders; s < N.senders + SENDER_SLOTS; s++) {
		if (!s->pid || (!s->load && !s->requests))
			continue;
		sender_of(s->pid, now);	/* refilled */
		if (s->tokens >= 1) {
			s->tokens -= 1;
			pass_held(s, NULL);
		} else {
			left = 1;
		}
	}
	if (left) {
		ev_timer_set(t, HELD_EVERY, 0);
		ev_timer_start(loop, t);
	}
}

/* The bucket of a sending process: its own, or the least recently used
 * one's, refilled. */
static struct sender *sender_of(pid_t pid, double now)
{
	struct sender *s, *victim = &N.senders[0];

	for (s = N.senders; s < N.senders + SENDER_SLOTS; s++) {
		if (s->pid == pid)
			goto fill;
		if (victim->pid && (!s->pid || s->at < victim->at))
			victim = s;
	}
	s = victim;
	if (s->pid && (s->load || s->requests))
		pass_held(s, NULL);	/* its last word, before its slot goes */
	*s = (struct sender){ .pid = pid, .tokens = SENDER_BURST, .at = now };
fill:
	s->tokens += (now - s->at) * SENDER_RATE;
	if (s->tokens > SENDER_BURST)
		s->tokens = SENDER_BURST;
	s->at = now;
	return s;
}

/* Whether a process may be heard now (*slot: its bucket); else its
 * datagram is counted, and the count said at most every SENDER_SAY_EVERY
 * seconds. */
static int sender_pass(pid_t pid, struct sender **slot)
{
	double now = ev_now(N.loop);
	struct sender *s = *slot = sender_of(pid, now);

	if (s->tokens >= 1) {
		s->tokens -= 1;
		return 1;
	}
	s->dropped++;
	if (now - s->said >= SENDER_SAY_EVERY) {
		cr_warn(&(struct cr_who){ .pid = pid }, "notify: dropped %lu datagrams of a process that sends "
			"more than %g a second", s->dropped, SENDER_RATE);
		s->dropped = 0;
		s->said = now;
	}
	return 0;
}

static void pause_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)t;
	(void)revents;
	ev_io_start(loop, &N.io);
	if (N.psock >= 0)
		ev_io_start(loop, &N.pio);
}

static void notify_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	double now = ev_now(loop);

	(void)revents;
	if (now - N.window >= NOTIFY_PAUSE) {
		N.window = now;
		N.taken = 0;
	}
	for (; N.taken < NOTIFY_BUDGET; N.taken++) {
		char buf[NOTIFY_MAX + 1];
		struct cr_unixmsg_extra x;
		struct cr_notify_msg m;
		struct sender *from;
		const char *why;
		/* fds (BARRIER=1's pipe, FDSTORE) are closed at once: that
		 * also releases a waiting sender */
		ssize_t n = cr_unixmsg_recv(io->fd, buf, sizeof buf, 0, &x, MSG_DONTWAIT | MSG_TRUNC);

		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				cr_warn(NULL, "notify: unable to receive: %s", strerror(errno));
			return;
		}
		if (x.cred.pid <= 0) {
			cr_debug(NULL, "notify: dropped a datagram without sender credentials");
			continue;
		}
		if (!sender_pass(x.cred.pid, &from)) {
			hold(from, buf, n, &x);
			continue;
		}
		if (n > NOTIFY_MAX || x.truncated) {
			cr_debug(&(struct cr_who){ .pid = x.cred.pid }, "notify: dropped a truncated datagram (%zd bytes)", n);
			continue;
		}
		if (cr_notify_parse(buf, (size_t)n, &m, &why) < 0) {
			cr_debug(&(struct cr_who){ .pid = x.cred.pid }, "notify: dropped a malformed datagram: %s", why);
			continue;
		}
		if (from->load || from->requests)
			pass_held(from, &m);
		N.on_message(x.cred.pid, &m);
	}
	/* the budget is spent and more may wait: a pause, not a spin */
	ev_io_stop(loop, &N.io);
	ev_io_stop(loop, &N.pio);
	ev_timer_set(&N.pause, N.window + NOTIFY_PAUSE - now, 0);
	ev_timer_start(loop, &N.pause);
}

/* A fresh name for the workers' socket: 128 random bits, so nobody can
 * bind it first (a name made of corrald's pid could be taken by any local
 * user before corrald starts, and corrald would then refuse to). */
static int random_name(char *buf, size_t size)
{
	unsigned char r[16];
	size_t got = 0;
	char hex[2 * sizeof r + 1];

	while (got < sizeof r) {
		ssize_t n = getrandom(r + got, sizeof r - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	for (size_t i = 0; i < sizeof r; i++)
		snprintf(hex + 2 * i, 3, "%02x", r[i]);
	snprintf(buf, size, "@corral/%s/notify", hex);
	return 0;
}

/* How often a name already bound is replaced by another; with 128 random
 * bits a second collision means something is wrong with the randomness. */
#define NAME_TRIES 4

int cr_notify_listen(struct ev_loop *loop, void (*on_message)(pid_t, const struct cr_notify_msg *))
{
	int one = 1, rc = -EADDRINUSE;

	N.loop = loop;
	N.on_message = on_message;
	N.sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (N.sock < 0)
		return -errno;
	if (setsockopt(N.sock, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0) {
		rc = -errno;
		goto fail;
	}
	for (int i = 0; i < NAME_TRIES; i++) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		size_t len;

		if ((rc = random_name(N.name, sizeof N.name)) < 0)
			goto fail;
		len = strlen(N.name);
		memcpy(sa.sun_path, N.name, len);
		sa.sun_path[0] = 0;	/* abstract: nothing on disk to clean up */
		if (bind(N.sock, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) == 0) {
			rc = 0;
			break;
		}
		rc = -errno;
		if (rc != -EADDRINUSE)
			goto fail;
		cr_warn(NULL, "notify: %s is taken already, trying another name", N.name);
	}
	if (rc < 0)
		goto fail;
	cr_info(NULL, "notify: workers' socket is %s", N.name);
	ev_io_init(&N.io, notify_cb, N.sock, EV_READ);
	ev_timer_init(&N.pause, pause_cb, 0, 0);
	ev_timer_init(&N.held, held_cb, 0, 0);
	/* read before the timers that ran out in the same turn of the loop:
	 * a WATCHDOG=1 that came in time, while corrald was held up (a busy
	 * machine, SIGSTOP), resets the watchdog instead of losing to it */
	ev_set_priority(&N.io, EV_MAXPRI);
	ev_io_start(loop, &N.io);
	return 0;
fail:
	close(N.sock);
	N.sock = -1;
	return rc;
}

const char *cr_notify_socket(void)
{
	return N.sock >= 0 ? N.name : NULL;
}

static char own_dir[80];

void cr_notify_set_dir(const char *file_in_it)
{
	const char *slash = strrchr(file_in_it, '/');

	if (slash && slash > file_in_it && (size_t)(slash - file_in_it) < sizeof own_dir)
		snprintf(own_dir, sizeof own_dir, "%.*s", (int)(slash - file_in_it), file_in_it);
}

/* The directory for the path: root's runtime directory (reachable by
 * every pool's user), else corrald's own. */
static const char *runtime_dir(char *buf, size_t n)
{
	snprintf(buf, n, "%s", geteuid() == 0 || !own_dir[0] ? "/run/corral" : own_dir);
	return buf;
}

const char *cr_notify_path(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[80];
	int one = 1;

	if (N.psock >= 0)
		return N.path;
	if (N.sock < 0)
		return NULL;
	/* the abstract name's random part: as hard to guess, and unique */
	runtime_dir(dir, sizeof dir);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		cr_error(NULL, "notify: unable to make %s: %s", dir, strerror(errno));
		return NULL;
	}
	if ((size_t)snprintf(N.path, sizeof N.path, "%.60s/notify-%.32s", dir, N.name + strlen("@corral/")) >=
	    sizeof N.path)
		return NULL;
	memcpy(sa.sun_path, N.path, strlen(N.path) + 1);
	unlink(N.path);	/* ours: the random name is no one else's */
	N.psock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (N.psock < 0 || setsockopt(N.psock, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0 ||
	    bind(N.psock, (struct sockaddr *)&sa, sizeof sa) < 0 || chmod(N.path, 0666) < 0) {
		cr_error(NULL, "notify: unable to listen on %s: %s", N.path, strerror(errno));
		if (N.psock >= 0)
			close(N.psock);
		N.psock = -1;
		return NULL;
	}
	cr_info(NULL, "notify: workers' socket by path is %s", N.path);
	ev_io_init(&N.pio, notify_cb, N.psock, EV_READ);
	ev_set_priority(&N.pio, EV_MAXPRI);
	if (!ev_is_active(&N.pause))
		ev_io_start(N.loop, &N.pio);
	return N.path;
}

void cr_notify_close(void)
{
	if (N.psock >= 0) {
		ev_io_stop(N.loop, &N.pio);
		close(N.psock);
		unlink(N.path);
		N.psock = -1;
	}
	if (N.sock < 0)
		return;
	ev_io_stop(N.loop, &N.io);
	ev_timer_stop(N.loop, &N.pause);
	ev_timer_stop(N.loop, &N.held);
	close(N.sock);
	N.sock = -1;
}
