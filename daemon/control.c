/*
 * control.c: the control socket. One JSON object per line in, one per
 * line out, then the connection closes; see doc/control.md. Clients are
 * checked with SO_PEERCRED against the socket's own rule (root, corrald's
 * user, or the configured group); members of the monitor group may run
 * the commands that only read (read_only()). A client cannot stall
 * corrald or other clients: everything is non-blocking, a request is at most MAX_REQUEST
 * bytes, its first byte must come within FIRST_BYTE_TIMEOUT and all of it
 * within REQUEST_TIMEOUT. A user other than root and corrald's own may
 * hold PEER_MAX connections, and all such users together UNPRIVILEGED_MAX,
 * so that the rest of the MAX_CONNS are always there for root; one over
 * its share is answered "busy" and closed at once. When MAX_CONNS are
 * open, a new client takes the place of the oldest one that has not sent
 * its request yet (another user's first), so that a crowd of idle
 * clients cannot lock everyone out; only when all of them are being
 * answered do the others wait. A request too large is answered, and what
 * the client still sends is read and dropped until it stops (bounded),
 * so that the close does not reset the connection before it has read the
 * answer. When accept() fails (out of fds: EMFILE, ENFILE; out of memory)
 * the socket rests for ACCEPT_PAUSE rather than wake the loop at once,
 * again and again.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "commands.h"
#include "control.h"
#include "crlua.h"
#include "json.h"
#include "log.h"
#include "reload.h"
#include "sockets.h"
#include "status.h"
#include "supervisor.h"
#include "text.h"

#define MAX_REQUEST 65536
#define MAX_CONNS 128
#define PEER_MAX 16		/* per user, but root and corrald's own */
#define UNPRIVILEGED_MAX 96	/* of all such users together */
#define FIRST_BYTE_TIMEOUT 1.0
#define REQUEST_TIMEOUT 5.0
/* after a too large request: what the client goes on sending is dropped,
 * until it stops for DRAIN_IDLE, or DRAIN_MAX bytes, or REQUEST_TIMEOUT
 * after the answer */
#define DRAIN_IDLE 1.0
#define DRAIN_MAX (64 << 20)
#define BUSY_LOG_EVERY 10.0
#define ACCEPT_PAUSE 0.25
/* accepts per wakeup: the loop reads what the new ones sent in between,
 * before as many newer ones could take their place */
#define ACCEPT_BATCH 16

struct conn {
	int fd;
	ev_io io;
	ev_timer timer;
	char in[MAX_REQUEST + 1];
	size_t inlen;
	struct cr_buf out;
	size_t sent;
	int allowed;
	int monitor;		/* not allowed, but a member of the monitor group */
	int privileged;		/* root or corrald's user: no share to keep to */
	int answering;		/* its request is read: it is not evicted */
	int draining;		/* the request was too large: drop what comes */
	int peer_done;		/* the client closed its side */
	int answered;		/* the answer is sent: only draining is left */
	size_t dropped;
	ev_tstamp since, answered_at;
	struct ucred peer;
	struct conn *next;
};

static struct {
	struct ev_loop *loop;
	int fd;
	ev_io io;
	char path[PATH_MAX];
	int group;
	gid_t gid;
	int monitor;		/* settings.monitor_group is set: mgid */
	gid_t mgid;
	struct conn *conns;
	unsigned nconns;
	ev_timer pause;		/* accept() failed: resting */
	int accept_failed;	/* said so in the log */
	int crowded;		/* evicting, said so in the log */
	ev_tstamp busy_logged;	/* when "busy" was last said in the log */
	unsigned busy;		/* clients turned away since */
} C = { .fd = -1 };

static void conn_close(struct conn *c)
{
	for (struct conn **pp = &C.conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	ev_io_stop(C.loop, &c->io);
	ev_timer_stop(C.loop, &c->timer);
	close(c->fd);
	cr_buf_free(&c->out);
	free(c);
	C.nconns--;
	if (C.fd >= 0 && !ev_is_active(&C.io) && !ev_is_active(&C.pause))
		ev_io_start(C.loop, &C.io);	/* room again */
	if (C.crowded && C.nconns <= MAX_CONNS / 2) {
		cr_info(NULL, "control: %u connections open, no longer crowded", C.nconns);
		C.crowded = 0;
	}
}

/* Room for one more: the oldest connection that has not sent its request,
 * or has had its answer and is only being drained, is closed; another
 * user's before root's, and with only_others, only another user's. 0 when
 * there is none. */
static int evict(int only_others)
{
	struct conn *old = NULL;

	for (struct conn *c = C.conns; c; c = c->next) {
		if ((c->answering && !c->answered) || (only_others && c->privileged))
			continue;
		if (!old || c->privileged < old->privileged ||
		    (c->privileged == old->privileged && c->since <= old->since))
			old = c;
	}
	if (!old)
		return 0;
	conn_close(old);
	return 1;
}

/* Whether the peer is a member of gid: its primary group, or one of the
 * supplementary groups it had when it connected (SO_PEERGROUPS, taken by
 * the kernel with its credentials: not read from /proc/PID, whose pid
 * may be another process's by now). */
static int peer_member(int fd, const struct ucred *cr, gid_t gid)
{
	gid_t few[64], *groups = few;
	socklen_t len = sizeof few;
	int ok = 0;

	if (cr->gid == gid)
		return 1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0 &&
	    (errno != ERANGE || !(groups = malloc(len)) ||	/* len: what all of them take */
	     getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0))
		goto out;
	for (size_t i = 0; i < len / sizeof *groups; i++)
		ok |= groups[i] == gid;
out:
	if (groups != few)
		free(groups);
	return ok;
}

/* Whether the peer may control corrald: root, our own user, or a member
 * of the configured group. */
static int peer_allowed(int fd, const struct ucred *cr)
{
	if (cr->uid == 0 || cr->uid == geteuid())
		return 1;
	return C.group && peer_member(fd, cr, C.gid);
}

/* What members of the monitor group may run: what only reads */
static int read_only(const char *cmd)
{
	return !strcmp(cmd, "ping") || !strcmp(cmd, "version") || !strcmp(cmd, "status") ||
	       !strcmp(cmd, "plugins");
}

static void reply_error(struct cr_buf *b, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void reply_error(struct cr_buf *b, const char *code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	cr_buf_printf(b, "{\"ok\":false,\"code\":\"%s\",\"error\":", code);
	cr_buf_json_string(b, msg);
	cr_buf_lit(b, "}");
}

static const char *str(const struct cr_json_object *o, const char *key)
{
	const struct cr_json_field *f = cr_json_get(o, key);

	return f && f->type == CR_JSON_STRING ? f->str : NULL;
}

/* worker: a number, or absent (0) */
static int worker_id(const struct cr_json_object *o, unsigned *id)
{
	const struct cr_json_field *f = cr_json_get(o, "worker");

	*id = 0;
	if (!f || f->type == CR_JSON_NULL)
		return 0;
	if (f->type != CR_JSON_NUMBER || f->num < 1 || f->num > 1e9 || f->num != (unsigned)f->num)
		return -1;
	*id = (unsigned)f->num;
	return 0;
}

static void result(struct cr_buf *b, int rc, const char *pool, unsigned id)
{
	if (rc == -ENOENT)
		reply_error(b, "not-found", "no such pool: %s", pool);
	else if (rc == -EOPNOTSUPP)
		reply_error(b, "failed", "the kernel has no cgroup.freeze for this pool");
	else if (rc == -ESRCH)
		reply_error(b, "not-found", "no such worker: %s/%u", pool, id);
	else if (rc == -ERANGE)
		reply_error(b, "bad-request", "out of range");
	else if (rc == -EMFILE)
		reply_error(b, "failed", "%s", cr_pool_scale_refusal());
	else if (rc < 0)
		reply_error(b, "failed", "%s", strerror(-rc));
	else
		cr_buf_lit(b, "{\"ok\":true,\"code\":\"ok\"}");
}

/* plugin: one plugin's command, run in the plugin phase (its budget
 * bounds it); plugins: the list of them. The answer is Lua's. */
static void plugin_command(struct conn *c, const struct cr_json_object *o, int one)
{
	const char *plugin = str(o, "plugin"), *name = str(o, "name"), *format = str(o, "format");
	const struct cr_json_field *args = cr_json_get(o, "args");
	size_t mark = c->out.len;
	int rc;

	if (one && (!plugin || !name)) {
		reply_error(&c->out, "bad-request", "plugin: missing \"plugin\" or \"name\" (strings)");
		return;
	}
	rc = cr_lua_command(one ? plugin : NULL, name, args ? args->raw : NULL, args ? args->rawlen : 0,
			    format && !strcmp(format, "text"), c->allowed, (unsigned)c->peer.uid, &c->out);
	if (rc < 0) {
		c->out.len = mark;
		if (rc == -ENOENT)
			reply_error(&c->out, "not-found", "no plugin commands (no config is running)");
		else
			reply_error(&c->out, "failed", "the plugin command could not be run%s",
				    rc == -ENOMEM ? ": out of memory" : " (corrald's log says why)");
	}
}

static void handle(struct conn *c, const char *req, size_t n)
{
	struct cr_buf *b = &c->out;
	struct cr_json_object o;
	const char *cmd, *pool;
	char why[128];
	unsigned id;
	int rc;

	if (!c->allowed && !c->monitor) {
		reply_error(b, "refused", "permission denied: uid %d is not allowed to control corrald",
			    (int)c->peer.uid);
		return;
	}
	if (cr_json_parse_object(req, n, &o, why, sizeof why) < 0) {
		reply_error(b, "bad-request", "not a request: %s", why);
		return;
	}
	/* every field known and of its type: a typo must not pass as absent */
	for (unsigned i = 0; i < o.n; i++) {
		static const struct { const char *key; int types; const char *what; } fields[] = {
			{ "command", 1 << CR_JSON_STRING, "a string" },
			{ "pool", 1 << CR_JSON_STRING, "a string" },
			{ "worker", 1 << CR_JSON_NUMBER | 1 << CR_JSON_NULL, "a worker id (a positive integer)" },
			{ "count", 1 << CR_JSON_NUMBER, "an integer from 0 to 10000" },
			{ "signal", 1 << CR_JSON_STRING | 1 << CR_JSON_NUMBER, "a signal name or number" },
			{ "all_at_once", 1 << CR_JSON_BOOL, "true or false" },
			{ "format", 1 << CR_JSON_STRING, "\"text\" or \"json\"" },
			{ "plugin", 1 << CR_JSON_STRING, "a plugin's name" },
			{ "name", 1 << CR_JSON_STRING, "a plugin command's name" },
			{ "args", 1 << CR_JSON_OBJECT, "an object of arguments" },
		};
		size_t k;
		for (k = 0; k < sizeof fields / sizeof *fields && strcmp(o.f[i].key, fields[k].key); k++)
			;
		if (k == sizeof fields / sizeof *fields) {
			reply_error(b, "bad-request", "unknown field \"%s\"", o.f[i].key);
			return;
		}
		if (!(fields[k].types & (1 << o.f[i].type))) {
			reply_error(b, "bad-request", "\"%s\" must be %s", o.f[i].key, fields[k].what);
			return;
		}
	}
	if (!(cmd = str(&o, "command"))) {
		reply_error(b, "bad-request", "missing \"command\" (a string)");
		return;
	}
	pool = str(&o, "pool");
	if (worker_id(&o, &id) < 0) {
		reply_error(b, "bad-request", "\"worker\" must be a worker id (a positive integer)");
		return;
	}
	static const char *const known[] = { "ping", "version", "status", "reload", "scale", "restart",
					      "stop", "start", "freeze", "thaw", "signal", "plugin",
					      "plugins" };
	size_t k;
	for (k = 0; k < sizeof known / sizeof *known && strcmp(cmd, known[k]); k++)
		;
	if (k == sizeof known / sizeof *known) {
		reply_error(b, "bad-request", "unknown command \"%s\"", cmd);
		return;
	}
	/* a plugin command says itself whether it only reads (Lua checks) */
	if (!c->allowed && !read_only(cmd) && strcmp(cmd, "plugin")) {
		reply_error(b, "refused", "permission denied: uid %d, of settings.monitor_group, may only run "
			    "ping, version, status, plugins and read-only plugin commands, not %s",
			    (int)c->peer.uid, cmd);
		return;
	}
	if (!strcmp(cmd, "ping")) {
		cr_buf_printf(b, "{\"ok\":true,\"code\":\"ok\",\"pong\":true}");
	} else if (!strcmp(cmd, "version")) {
		cr_buf_printf(b, "{\"ok\":true,\"code\":\"ok\",\"version\":\"%s\"}", CR_VERSION);
	} else if (!strcmp(cmd, "status")) {
		const char *format = str(&o, "format");
		struct cr_buf text = { 0 };
		size_t mark = b->len;
		int with_text = format && !strcmp(format, "text");
		cr_buf_lit(b, "{\"ok\":true,\"code\":\"ok\",\"pools\":");
		if (cr_status_reports(b, with_text ? &text : NULL, pool) < 0) {
			b->len = mark;	/* drop the partial answer */
			result(b, -ENOENT, pool, 0);
			return;
		}
		if (with_text) {
			cr_buf_lit(b, ",\"text\":");
			cr_buf_json_string(b, text.data ? text.data : "");
			cr_buf_free(&text);
		}
		cr_buf_lit(b, "}");
	} else if (!strcmp(cmd, "reload")) {
		char msg[8192];	/* a config's errors: up to 20 lines */
		struct cr_buf detail = { 0 };
		rc = cr_reload(msg, sizeof msg, &detail);
		/* the sentence for people, and what it says as an object */
		if (rc < 0)
			cr_buf_lit(b, "{\"ok\":false,\"code\":\"failed\",\"error\":");
		else
			cr_buf_lit(b, "{\"ok\":true,\"code\":\"ok\",\"message\":");
		cr_buf_json_string(b, msg);
		cr_buf_lit(b, ",\"reload\":");
		if (detail.data && !detail.failed)
			cr_buf_add(b, detail.data, detail.len);
		else
			cr_buf_lit(b, "null");
		cr_buf_lit(b, "}");
		cr_buf_free(&detail);
	} else if (!strcmp(cmd, "plugin") || !strcmp(cmd, "plugins")) {
		plugin_command(c, &o, !strcmp(cmd, "plugin"));
	} else if (!pool) {
		reply_error(b, "bad-request", "%s: missing \"pool\"", cmd);
	} else if (!strcmp(cmd, "scale")) {
		const struct cr_json_field *f = cr_json_get(&o, "count");
		if (!f || f->type != CR_JSON_NUMBER || f->num < 0 || f->num > 10000 || f->num != (unsigned)f->num)
			reply_error(b, "bad-request", "scale: \"count\" must be an integer from 0 to 10000");
		else
			result(b, cr_pool_scale(pool, (unsigned)f->num, 0), pool, 0);
	} else if (!strcmp(cmd, "restart")) {
		const struct cr_json_field *f = cr_json_get(&o, "all_at_once");
		struct cr_restart_how how = { .all_at_once = f && f->type == CR_JSON_BOOL && f->boolean,
					  .reason = "requested" };
		result(b, cr_pool_restart(pool, id, &how), pool, id);
	} else if (!strcmp(cmd, "stop")) {
		result(b, cr_pool_stop(pool), pool, 0);
	} else if (!strcmp(cmd, "start")) {
		result(b, cr_pool_start(pool), pool, 0);
	} else if (!strcmp(cmd, "freeze") || !strcmp(cmd, "thaw")) {
		result(b, cr_supervisor_freeze(pool, !strcmp(cmd, "freeze")), pool, 0);
	} else if (!strcmp(cmd, "signal")) {
		const struct cr_json_field *f = cr_json_get(&o, "signal");
		int sig = !f ? -1 : f->type == CR_JSON_STRING ? cr_text_signal(f->str)
			: f->type == CR_JSON_NUMBER && f->num >= 1 && f->num < NSIG && f->num == (int)f->num
			? (int)f->num : -1;
		if (sig < 0) {
			reply_error(b, "bad-request", "signal: \"signal\" must be a signal name or number");
			return;
		}
		rc = cr_pool_signal(pool, id, sig);
		if (rc >= 0)
			cr_buf_printf(b, "{\"ok\":true,\"code\":\"ok\",\"signalled\":%d}", rc);
		else
			result(b, rc, pool, id);
	} else {
		reply_error(b, "bad-request", "unknown command \"%s\"", cmd);
	}
}

static void watch(struct conn *c, int events)
{
	ev_io_stop(C.loop, &c->io);
	ev_io_set(&c->io, c->fd, events);
	ev_io_start(C.loop, &c->io);
}

static void rearm(struct conn *c, ev_tstamp after)
{
	ev_timer_stop(C.loop, &c->timer);
	ev_timer_set(&c->timer, after > 0 ? after : 0, 0);
	ev_timer_start(C.loop, &c->timer);
}

/* Draining after the answer: until the client stops for DRAIN_IDLE, and
 * never past REQUEST_TIMEOUT after the answer was ready. */
static void rearm_drain(struct conn *c)
{
	ev_tstamp left = c->answered_at + REQUEST_TIMEOUT - ev_now(C.loop);

	rearm(c, left < DRAIN_IDLE ? left : DRAIN_IDLE);
}

/* Reads and drops what the client sends after a too large request (its
 * request buffer is free by then), a bounded amount per wakeup. -1 when
 * the connection is closed. */
static int conn_drain(struct conn *c)
{
	for (int i = 0; i < 16 && !c->peer_done; i++) {
		ssize_t n = recv(c->fd, c->in, MAX_REQUEST, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0) {
			c->peer_done = 1;
			break;
		}
		c->dropped += (size_t)n;
		if (c->dropped > DRAIN_MAX) {
			conn_close(c);	/* enough: the client loses what it has not read */
			return -1;
		}
		if (c->answered)
			rearm_drain(c);
	}
	if (!c->peer_done)
		return 0;
	if (c->answered) {
		conn_close(c);
		return -1;
	}
	watch(c, EV_WRITE);	/* only the answer is left to do */
	return 0;
}

static void conn_write(struct conn *c)
{
	while (c->sent < c->out.len) {
		ssize_t n = send(c->fd, c->out.data + c->sent, c->out.len - c->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;	/* the loop calls again when it can */
			if (errno == EINTR)
				continue;
			conn_close(c);
			return;
		}
		c->sent += (size_t)n;
	}
	if (!c->draining || c->peer_done) {
		conn_close(c);
		return;
	}
	/* the client may still be writing its request: closing now, with
	 * its bytes unread, would reset the connection and could lose the
	 * answer. The end of the answer is shown with SHUT_WR instead, and
	 * the rest dropped until the client stops. */
	shutdown(c->fd, SHUT_WR);
	c->answered = 1;
	watch(c, EV_READ);
	rearm_drain(c);
}

static void conn_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct conn *c = io->data;
	char *nl;
	ssize_t n;

	(void)loop;
	if (c->answering) {
		if ((revents & EV_READ) && conn_drain(c) < 0)
			return;
		if ((revents & EV_WRITE) && !c->answered)
			conn_write(c);
		return;
	}
	n = recv(c->fd, c->in + c->inlen, MAX_REQUEST - c->inlen, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0 || (n == 0 && c->inlen == 0)) {
		conn_close(c);	/* gone before saying anything */
		return;
	}
	if (c->inlen == 0)	/* its first bytes: the rest within REQUEST_TIMEOUT */
		rearm(c, c->since + REQUEST_TIMEOUT - ev_now(C.loop));
	c->inlen += (size_t)n;
	c->in[c->inlen] = 0;
	nl = memchr(c->in, '\n', c->inlen);
	if (!nl && n == 0) {
		nl = c->in + c->inlen;	/* it closed its side: the request is whole */
		c->peer_done = 1;
	}
	if (!nl && c->inlen < MAX_REQUEST)
		return;
	if (!nl) {
		reply_error(&c->out, "bad-request", "request too large (at most %d bytes)", MAX_REQUEST);
		c->draining = 1;
	} else {
		handle(c, c->in, (size_t)(nl - c->in));
	}
	cr_buf_lit(&c->out, "\n");
	if (c->out.failed) {
		conn_close(c);
		return;
	}
	/* a client that does not read its answer gets the same deadline */
	c->answering = 1;
	c->answered_at = ev_now(C.loop);
	rearm(c, REQUEST_TIMEOUT);
	watch(c, c->draining ? EV_READ | EV_WRITE : EV_WRITE);
	conn_write(c);
}

static void timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	conn_close(t->data);	/* too slow: to start, to finish, to read, or to stop sending */
}

static void pause_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)t;
	(void)revents;
	if (C.fd >= 0 && C.nconns < MAX_CONNS)
		ev_io_start(loop, &C.io);
}

/* Why a new client is over its share, or NULL when it is not: a user
 * other than root and corrald's own may have PEER_MAX connections, and
 * all of them together UNPRIVILEGED_MAX (their oldest idle one makes
 * room). An unknown peer (no SO_PEERCRED) counts as a user of its own. */
static const char *over_share(const struct ucred *peer, int known)
{
	static char why[128];
	unsigned mine = 0, others = 0;

	if (known && (peer->uid == 0 || peer->uid == geteuid()))
		return NULL;
	for (struct conn *c = C.conns; c; c = c->next) {
		if (c->privileged)
			continue;
		others++;
		mine += c->peer.uid == peer->uid;
	}
	if (mine >= PEER_MAX) {
		snprintf(why, sizeof why, "too many connections from uid %d (at most %d at once)",
			 known ? (int)peer->uid : -1, PEER_MAX);
		return why;
	}
	if (others >= UNPRIVILEGED_MAX && !evict(1)) {
		snprintf(why, sizeof why, "too many connections from users other than root (at most %d at once)",
			 UNPRIVILEGED_MAX);
		return why;
	}
	return NULL;
}

/* A client over its share: answered "busy" and closed at once. What it
 * has sent already is read first, so that the close does not reset the
 * connection before the answer can be read. Logged at most every
 * BUSY_LOG_EVERY, with a count. */
static void turn_away(int fd, const char *why)
{
	struct cr_buf b = { 0 };
	ev_tstamp now = ev_now(C.loop);

	reply_error(&b, "busy", "%s", why);
	cr_buf_lit(&b, "\n");
	if (!b.failed)
		send(fd, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);	/* a fresh socket: room */
	cr_buf_free(&b);
	shutdown(fd, SHUT_WR);
	for (int i = 0; i < 4; i++) {
		char drop[16384];
		if (recv(fd, drop, sizeof drop, MSG_DONTWAIT) <= 0)
			break;
	}
	close(fd);
	if (C.busy_logged > 0 && now - C.busy_logged < BUSY_LOG_EVERY) {
		C.busy++;
		return;
	}
	if (C.busy)
		cr_warn(NULL, "control: %s: client turned away (and %u more in the last %.0f s)", why, C.busy,
			now - C.busy_logged);
	else
		cr_warn(NULL, "control: %s: client turned away", why);
	C.busy_logged = now;
	C.busy = 0;
}

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)revents;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		socklen_t len = sizeof(struct ucred);
		struct ucred peer = { .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
		const char *why;
		struct conn *c;
		int fd, known;

		if (C.nconns >= MAX_CONNS) {
			struct pollfd p = { .fd = C.fd, .events = POLLIN };
			if (poll(&p, 1, 0) <= 0)
				return;	/* no one waits: no one is evicted */
			if (!evict(0)) {
				ev_io_stop(loop, io);	/* all are answered: the backlog waits */
				return;
			}
			if (!C.crowded)
				cr_warn(NULL, "control: %d connections open, the most there may be; closing the oldest "
					"that has not sent its request for each new one", MAX_CONNS);
			C.crowded = 1;
		}
		fd = accept4(C.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* the connection stays queued: a level-triggered
			 * watcher would call us again at once, forever */
			if (!C.accept_failed)
				cr_error(NULL, "control: unable to accept a connection: %s; "
					 "retrying every %.0f ms", strerror(errno), ACCEPT_PAUSE * 1000);
			C.accept_failed = 1;
			ev_io_stop(loop, io);
			ev_timer_set(&C.pause, ACCEPT_PAUSE, 0);
			ev_timer_start(loop, &C.pause);
			return;
		}
		if (C.accept_failed) {
			cr_info(NULL, "control: accepting connections again");
			C.accept_failed = 0;
		}
		known = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) == 0;
		if (!known)
			peer = (struct ucred){ .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
		if ((why = over_share(&peer, known))) {
			turn_away(fd, why);
			continue;
		}
		if (!(c = calloc(1, sizeof *c))) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->since = ev_now(loop);
		c->peer = peer;
		c->allowed = known && peer_allowed(fd, &peer);
		c->privileged = known && (peer.uid == 0 || peer.uid == geteuid());
		c->monitor = known && !c->allowed && C.monitor && peer_member(fd, &peer, C.mgid);
		ev_io_init(&c->io, conn_cb, fd, EV_READ);
		c->io.data = c;
		ev_io_start(loop, &c->io);
		/* a client that says nothing at first is not kept waiting for */
		ev_timer_init(&c->timer, timeout_cb, FIRST_BYTE_TIMEOUT, 0);
		c->timer.data = c;
		ev_timer_start(loop, &c->timer);
		c->next = C.conns;
		C.conns = c;
		C.nconns++;
	}
}

void cr_control_monitor(int set, gid_t gid)
{
	C.monitor = set;
	C.mgid = gid;
}

/* The socket file's mode and group: 0600; 0660 for the one group set
 * (control's, else monitor's); 0666 when both are, and differ: then only
 * the credentials keep others out, as they do for every request. */
static mode_t socket_mode(gid_t *gid)
{
	*gid = C.group ? C.gid : C.monitor ? C.mgid : (gid_t)-1;
	if (C.group && C.monitor && C.gid != C.mgid)
		return 0666;
	return C.group || C.monitor ? 0660 : 0600;
}

int cr_control_listen(struct ev_loop *loop, const char *path, int group, gid_t gid,
		      char *err, size_t errlen)
{
	struct sockaddr_un sa;
	char why[512];
	mode_t mode;
	gid_t sgid;

	C.loop = loop;
	C.group = group;
	C.gid = gid;
	if (strlen(path) >= sizeof sa.sun_path || path[0] != '/') {
		snprintf(err, errlen, "control: %s: expected an absolute path of at most %zu bytes",
			 path, sizeof sa.sun_path - 1);
		return -1;
	}
	snprintf(C.path, sizeof C.path, "%s", path);
	/* mode and group set without a race: see cr_unix_listen() */
	mode = socket_mode(&sgid);
	C.fd = cr_unix_listen(path, SOCK_NONBLOCK, 0, mode, sgid, 128, why, sizeof why);
	if (C.fd == -EADDRINUSE) {
		snprintf(err, errlen, "control: %s is in use by a running corrald", path);
		C.fd = -1;
		return -1;
	}
	if (C.fd < 0) {
		snprintf(err, errlen, "control: unable to listen on %s: %s", path, why);
		C.fd = -1;
		return -1;
	}
	ev_io_init(&C.io, accept_cb, C.fd, EV_READ);
	ev_io_start(loop, &C.io);
	ev_timer_init(&C.pause, pause_cb, ACCEPT_PAUSE, 0);
	cr_info(NULL, "control: listening on %s", path);
	return 0;
}

void cr_control_close(void)
{
	while (C.conns)
		conn_close(C.conns);
	if (C.fd >= 0) {
		ev_io_stop(C.loop, &C.io);
		ev_timer_stop(C.loop, &C.pause);
		close(C.fd);
		cr_unix_unlink(C.path);
		C.fd = -1;
	}
}
