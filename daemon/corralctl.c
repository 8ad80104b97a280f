/*
 * corralctl.c: the command line for corrald's control socket. Builds one
 * JSON request from the arguments, prints the answer (or, with --json, the
 * raw JSON line) and exits with a code scripts can test:
 *   0 ok, 1 failed, 2 bad request or usage, 3 not found, 4 refused,
 *   5 corrald not running, 6 timed out, 7 a pool failed while waited on,
 *   8 the pool is failed (status POOL, is-ready), 9 not ready (is-ready).
 * stop, start, restart, scale and reload then wait until what they asked
 * for is true, asking for the status again and again (the protocol is one
 * request per connection; corrald needs nothing more); --no-wait returns
 * at once. --timeout bounds the whole command, connections included: a
 * stopped or stuck corrald makes it fail, never hang.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctljson.h"
#include "json.h"
#include "text.h"

#define DEFAULT_SOCKET "/run/corral/control.sock"
/* long enough for a rolling restart of a big pool, short enough that a
 * script learns that something is wrong */
#define DEFAULT_TIMEOUT 90.0

enum {
	EXIT_OK, EXIT_FAILED, EXIT_BAD, EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_NOT_RUNNING,
	EXIT_TIMEOUT, EXIT_POOL_FAILED, EXIT_IS_FAILED, EXIT_NOT_READY
};

/* What the command line asked for, beyond the command. */
struct ctl {
	const char *path;
	int json, all, wait, quiet;
	double timeout;		/* seconds */
	double deadline;	/* on the monotonic clock */
};

static const struct {
	const char *name, *args, *help;
} commands[] = {
	{ "status", "[POOL]", "pools and workers: state, readiness, restarts, memory, CPU" },
	{ "is-ready", "[POOL]", "exit 0 if POOL (every pool) runs with all its workers ready" },
	{ "scale", "POOL N", "run N workers in POOL (until the next reload)" },
	{ "restart", "POOL[/ID] [--all-at-once]", "a rolling restart of POOL (new prototype first), or one worker" },
	{ "stop", "POOL", "stop POOL and keep it stopped until started" },
	{ "start", "POOL", "start a stopped or failed POOL" },
	{ "signal", "POOL[/ID] SIGNAL", "send SIGNAL (name or number) to POOL's workers, or one" },
	{ "freeze", "POOL", "freeze POOL's cgroup" },
	{ "thaw", "POOL", "thaw POOL's cgroup" },
	{ "reload", "", "reload the configuration; prints the result or the error with file:line" },
	{ "plugin", "PLUGIN CMD [ARG=VALUE ...]", "run a command that a plugin registered (corral.command)" },
	{ "plugins", "", "list the plugins' commands: PLUGIN CMD ARG=TYPE ... -- help" },
	{ "ping", "", "check that corrald answers" },
	{ "version", "", "corrald's version" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: corralctl [-s SOCKET] [--json] [-q] [--no-wait] [--timeout DURATION] COMMAND [ARGS]\n\n");
	for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
		fprintf(f, "  %-8s %-26s %s\n", commands[i].name, commands[i].args, commands[i].help);
	fprintf(f, "\nThe socket: -s/--socket, else $CORRAL_SOCKET, else %s.\n"
		"stop, start, restart, scale and reload wait until done: the pool stopped\n"
		"and its processes gone, the workers ready, the old ones gone (--no-wait:\n"
		"return at once). --timeout DURATION (default %gs; 500ms, 30s, 1min 30s)\n"
		"bounds the whole command, connections included.\n"
		"-q/--quiet: is-ready prints nothing.\n"
		"Exit codes: 0 ok, 1 failed, 2 bad request, 3 not found, 4 refused,\n"
		"5 corrald not running, 6 timed out, 7 the pool failed while waited on,\n"
		"8 the pool is failed (status POOL, is-ready), 9 not ready (is-ready).\n"
		"`corralctl help COMMAND` explains one.\n", DEFAULT_SOCKET, DEFAULT_TIMEOUT);
}

static int command_help(const char *name)
{
	for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
		if (!strcmp(commands[i].name, name)) {
			printf("usage: corralctl %s %s\n  %s\n", commands[i].name, commands[i].args, commands[i].help);
			return EXIT_OK;
		}
	}
	fprintf(stderr, "corralctl: unknown command \"%s\"\n", name);
	return EXIT_BAD;
}

/* "web/3" -> pool "web", id 3 */
static int split_target(const char *arg, char *pool, size_t n, unsigned long *id)
{
	const char *slash = strchr(arg, '/');
	char *end;

	*id = 0;
	if (!slash) {
		snprintf(pool, n, "%s", arg);
		return 0;
	}
	if ((size_t)(slash - arg) >= n)
		return -1;
	memcpy(pool, arg, (size_t)(slash - arg));
	pool[slash - arg] = 0;
	*id = strtoul(slash + 1, &end, 10);
	return *end || *id == 0 ? -1 : 0;
}

static int build_request(struct cr_buf *b, int argc, char **argv, int all_at_once, int json)
{
	const char *cmd = argv[0];
	char pool[128];
	unsigned long id = 0;

	cr_buf_lit(b, "{\"command\":");
	cr_buf_json_string(b, !strcmp(cmd, "is-ready") ? "status" : cmd);
	if (!strcmp(cmd, "status") || !strcmp(cmd, "is-ready")) {
		if (argc > 2)
			return -1;
		if (argc == 2) {
			cr_buf_lit(b, ",\"pool\":");
			cr_buf_json_string(b, argv[1]);
		}
		if (!json && !strcmp(cmd, "status"))
			cr_buf_lit(b, ",\"format\":\"text\"");
	} else if (!strcmp(cmd, "reload") || !strcmp(cmd, "ping") || !strcmp(cmd, "version")) {
		if (argc != 1)
			return -1;
	} else if (!strcmp(cmd, "scale")) {
		char *end;
		unsigned long n;
		if (argc != 3)
			return -1;
		n = strtoul(argv[2], &end, 10);
		if (*end || !argv[2][0])
			return -1;
		cr_buf_lit(b, ",\"pool\":");
		cr_buf_json_string(b, argv[1]);
		cr_buf_printf(b, ",\"count\":%lu", n);
	} else if (!strcmp(cmd, "restart") || !strcmp(cmd, "signal")) {
		int want = !strcmp(cmd, "signal") ? 3 : 2;
		if (argc != want || split_target(argv[1], pool, sizeof pool, &id) < 0)
			return -1;
		cr_buf_lit(b, ",\"pool\":");
		cr_buf_json_string(b, pool);
		if (id)
			cr_buf_printf(b, ",\"worker\":%lu", id);
		if (want == 3) {
			cr_buf_lit(b, ",\"signal\":");
			cr_buf_json_string(b, argv[2]);
		}
		if (all_at_once)
			cr_buf_lit(b, ",\"all_at_once\":true");
	} else if (!strcmp(cmd, "plugins")) {
		if (argc != 1)
			return -1;
		if (!json)
			cr_buf_lit(b, ",\"format\":\"text\"");
	} else if (!strcmp(cmd, "plugin")) {
		if (argc < 3)
			return -1;
		cr_buf_lit(b, ",\"plugin\":");
		cr_buf_json_string(b, argv[1]);
		cr_buf_lit(b, ",\"name\":");
		cr_buf_json_string(b, argv[2]);
		cr_buf_lit(b, ",\"args\":{");
		for (int i = 3; i < argc; i++) {
			const char *eq = strchr(argv[i], '=');
			char key[64];
			if (!eq || eq == argv[i] || (size_t)(eq - argv[i]) >= sizeof key)
				return -1;	/* ARG=VALUE */
			snprintf(key, sizeof key, "%.*s", (int)(eq - argv[i]), argv[i]);
			if (i > 3)
				cr_buf_lit(b, ",");
			cr_buf_json_string(b, key);
			cr_buf_lit(b, ":");
			cr_buf_json_string(b, eq + 1);
		}
		cr_buf_lit(b, "}");
		if (!json)
			cr_buf_lit(b, ",\"format\":\"text\"");
	} else if (!strcmp(cmd, "stop") || !strcmp(cmd, "start") || !strcmp(cmd, "freeze") ||
		   !strcmp(cmd, "thaw")) {
		if (argc != 2)
			return -1;
		cr_buf_lit(b, ",\"pool\":");
		cr_buf_json_string(b, argv[1]);
	} else {
		return -2;
	}
	cr_buf_lit(b, "}\n");
	return 0;
}

/* Text from corrald, to a terminal perhaps: what the terminal would act
 * on is escaped (corrald escapes what workers said already; this holds
 * whatever is on the other end of the socket). */
static void print_text(FILE *f, const char *text)
{
	char *safe = cr_text_escape_dup(text, CR_TEXT_KEEP_TAB | CR_TEXT_KEEP_NEWLINE);

	fputs(safe ? safe : "(out of memory)", f);
	free(safe);
}

/* ---- time ---------------------------------------------------------------- */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "90", "500ms", "1.5s", "2m", "1m30s", "1min 30s", "5 seconds": the
 * spellings the configuration takes (lua/corral/units.lua, systemd.time(7)),
 * NUMBER UNIT parts summed. Seconds, or -1 with *why saying what is wrong. */
static double parse_duration(const char *s, const char **why)
{
	static const struct {
		const char *unit;
		double seconds;
	} units[] = {
		{ "us", 1e-6 }, { "usec", 1e-6 }, { "ms", 1e-3 }, { "msec", 1e-3 },
		{ "s", 1 }, { "sec", 1 }, { "second", 1 }, { "seconds", 1 },
		{ "m", 60 }, { "min", 60 }, { "minute", 60 }, { "minutes", 60 },
		{ "h", 3600 }, { "hr", 3600 }, { "hour", 3600 }, { "hours", 3600 },
		{ "d", 86400 }, { "day", 86400 }, { "days", 86400 },
		{ "w", 604800 }, { "week", 604800 }, { "weeks", 604800 },
	};
	double total = 0;
	const char *p = s + strspn(s, " \t");
	int parts = 0;

	*why = "not a number";
	if (!*p) {
		*why = "empty";
		return -1;
	}
	while (*p) {
		size_t n = strspn(p, "0123456789"), len, i;
		char *end;
		double v;

		/* NUMBER as the config reads it: 1, 1., 1.5 or .5; no signs, no exponents */
		if (p[n] == '.')
			n += 1 + strspn(p + n + 1, "0123456789");
		if (!n || (n == 1 && *p == '.'))
			return -1;
		v = strtod(p, &end);
		if (end != p + n)
			return -1;
		end += strspn(end, " \t");
		for (len = 0; isalpha((unsigned char)end[len]); len++)
			;
		parts++;
		if (!len) {
			if (parts != 1 || *end) {
				*why = "missing unit";
				return -1;
			}
			return v;	/* a bare number is seconds, alone */
		}
		for (i = 0; i < sizeof units / sizeof *units; i++)
			if (strlen(units[i].unit) == len && !strncasecmp(units[i].unit, end, len))
				break;
		if (i == sizeof units / sizeof *units) {
			static char unknown[64];

			snprintf(unknown, sizeof unknown, "unknown unit \"%.*s\"", (int)(len > 32 ? 32 : len), end);
			*why = unknown;
			return -1;
		}
		total += v * units[i].seconds;
		p = end + len;
		p += strspn(p, " \t");
	}
	return total;
}

/* ---- messages and progress ---------------------------------------------- */

static int progress_shown;
static char progress_last[1024];

static void progress_clear(void)
{
	if (progress_shown)
		fputs("\r\033[K", stderr);
	progress_shown = 0;
}

/* "corralctl: " and the message on stderr, escaped (it may hold what a
 * worker said), on a line of its own. */
__attribute__((format(printf, 1, 2)))
static void complain(const char *fmt, ...)
{
	char buf[1024], *safe;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	safe = cr_text_escape_dup(buf, 0);
	progress_clear();
	fprintf(stderr, "corralctl: %s\n", safe ? safe : buf);
	free(safe);
}

/* What a wait is at, on one line rewritten in place on a terminal: cut
 * to its width, as a longer line would wrap and \r not go back over it. */
static void progress(const char *msg)
{
	struct winsize ws;
	size_t width = 80, len;
	char *safe;

	if (progress_shown && !strcmp(msg, progress_last))
		return;	/* as it is on the screen */
	snprintf(progress_last, sizeof progress_last, "%s", msg);
	if (!(safe = cr_text_escape_dup(msg, 0)))
		return;
	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1)
		width = ws.ws_col;
	len = strlen(safe);
	if (len >= width) {
		len = width - 1;
		while (len > 0 && ((unsigned char)safe[len] & 0xc0) == 0x80)
			len--;	/* not in the middle of a character */
	}
	fprintf(stderr, "\r%.*s\033[K", (int)len, safe);
	fflush(stderr);
	progress_shown = 1;
	free(safe);
}

/* ---- one request, one answer ---------------------------------------------- */

/* The socket's SO_SNDTIMEO or SO_RCVTIMEO: what is left until the
 * deadline. -1 when nothing is. */
static int time_left(int fd, int opt, const struct ctl *c)
{
	double left = c->deadline - now();
	struct timeval tv;

	if (left <= 0)
		return -1;
	tv.tv_sec = (time_t)left;
	tv.tv_usec = (suseconds_t)((left - (double)tv.tv_sec) * 1e6);
	if (!tv.tv_sec && !tv.tv_usec)
		tv.tv_usec = 1;	/* 0 would wait for ever */
	setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof tv);
	return 0;
}

static int timed_out(const struct ctl *c, const char *what)
{
	char d[32];

	cr_text_duration(d, sizeof d, c->timeout);
	complain("%s within %s (--timeout)", what, d);
	return EXIT_TIMEOUT;
}

/* Sends req on a new connection and reads the whole answer into resp,
 * all before the deadline: EXIT_OK, or an exit code and why on stderr. */
static int request(const struct ctl *c, const struct cr_buf *req, struct cr_buf *resp)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, code = EXIT_OK, werr = 0;

	if (strlen(c->path) >= sizeof sa.sun_path) {
		complain("socket path too long: %s", c->path);
		return EXIT_BAD;
	}
	strcpy(sa.sun_path, c->path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		complain("unable to make a socket: %s", strerror(errno));
		return EXIT_FAILED;
	}
	/* with corrald's backlog full (it is stopped, or stuck), connect()
	 * waits as long as a send may */
	if (time_left(fd, SO_SNDTIMEO, c) < 0) {
		code = timed_out(c, "corrald did not answer");
		goto out;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		if (errno == EAGAIN || errno == EINPROGRESS) {
			code = timed_out(c, "corrald did not accept the connection");
		} else if (errno == EACCES || errno == EPERM) {
			complain("%s: %s (not allowed to use corrald's control socket)", c->path, strerror(errno));
			code = EXIT_REFUSED;
		} else {
			complain("corrald is not running (unable to connect to %s: %s)", c->path, strerror(errno));
			code = EXIT_NOT_RUNNING;
		}
		goto out;
	}
	if (send(fd, req->data, req->len, MSG_NOSIGNAL) != (ssize_t)req->len) {
		/* corrald may have answered and closed first (busy): read on */
		werr = errno;
		shutdown(fd, SHUT_WR);
	}
	for (;;) {
		char buf[65536];
		ssize_t n;

		if (time_left(fd, SO_RCVTIMEO, c) < 0) {
			code = timed_out(c, "corrald did not answer");
			goto out;
		}
		n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			code = timed_out(c, "corrald did not answer");
			goto out;
		}
		if (n <= 0)
			break;
		cr_buf_add(resp, buf, (size_t)n);
	}
	if ((!resp->data || resp->failed) && werr) {
		complain("unable to send the request: %s", strerror(werr));
		code = werr == EAGAIN ? EXIT_TIMEOUT : EXIT_NOT_RUNNING;
	} else if (!resp->data || resp->failed) {
		complain("corrald closed the connection without an answer");
		code = EXIT_FAILED;
	}
out:
	close(fd);
	return code;
}

/* The exit code that the answer's "code" maps to. */
static int answer_code(const char *answer)
{
	char *s = cr_jv_field(answer, "code");
	int code = !s ? EXIT_FAILED
		 : !strcmp(s, "ok") ? EXIT_OK
		 : !strcmp(s, "bad-request") ? EXIT_BAD
		 : !strcmp(s, "not-found") ? EXIT_NOT_FOUND
		 : !strcmp(s, "refused") ? EXIT_REFUSED : EXIT_FAILED;

	free(s);
	return code;
}

static void print_answer(const char *answer, int code, int json)
{
	char *text;

	if (json) {
		fputs(answer, stdout);
		fflush(stdout);	/* before a wait */
	} else if (code != EXIT_OK) {
		text = cr_jv_field(answer, "error");
		fputs("corralctl: ", stderr);
		print_text(stderr, text ? text : "failed");
		fputc('\n', stderr);
		free(text);
	} else if ((text = cr_jv_field(answer, "text")) || (text = cr_jv_field(answer, "message")) ||
		   (text = cr_jv_field(answer, "version"))) {
		print_text(stdout, text);
		if (text[0] && text[strlen(text) - 1] != '\n')
			putchar('\n');
		fflush(stdout);
		free(text);
	} else if (strstr(answer, "\"pong\":true")) {
		puts("pong");
	} else if ((text = strstr(answer, "\"signalled\":"))) {
		printf("signalled %d worker%s\n", atoi(text + 12), atoi(text + 12) == 1 ? "" : "s");
	}
}

/* The answer, parsed, with its "pools" array: NULL (said on stderr) when
 * it is not understood. */
static const struct jval *answer_pools(const char *answer, struct jval *v)
{
	const struct jval *pools;

	if (cr_jv_parse(answer, v) < 0 || !(pools = cr_jv_get(v, "pools")) || pools->type != J_ARR) {
		complain("corrald's status answer is not understood");
		return NULL;
	}
	return pools;
}

/* ---- waiting until it is done ---------------------------------------------- */

enum wait_kind { WAIT_NONE, WAIT_STOPPED, WAIT_STARTED, WAIT_SCALED, WAIT_RESTARTED, WAIT_WORKER, WAIT_RELOADED };

struct waiting {
	enum wait_kind kind;
	char pool[128];
	unsigned long worker;	/* restart POOL/ID */
};

enum { NOT_YET, DONE, POOL_FAILED, GAVE_UP };

/* What a command waits for, from its arguments (checked already). */
static void what_to_wait_for(int argc, char **argv, struct waiting *w)
{
	const char *cmd = argv[0];

	memset(w, 0, sizeof *w);
	if (argc > 1 && split_target(argv[1], w->pool, sizeof w->pool, &w->worker) < 0)
		return;
	w->kind = !strcmp(cmd, "stop") ? WAIT_STOPPED
		: !strcmp(cmd, "start") ? WAIT_STARTED
		: !strcmp(cmd, "scale") ? WAIT_SCALED
		: !strcmp(cmd, "restart") ? (w->worker ? WAIT_WORKER : WAIT_RESTARTED)
		: !strcmp(cmd, "reload") ? WAIT_RELOADED : WAIT_NONE;
}

__attribute__((format(printf, 3, 4)))
static void append(char *msg, size_t n, const char *fmt, ...)
{
	size_t len = strlen(msg);
	va_list ap;

	if (len + 1 >= n)
		return;
	va_start(ap, fmt);
	vsnprintf(msg + len, n - len, fmt, ap);
	va_end(ap);
}

/* stop: the pool stopped, no worker left, nor its prototype, nor any
 * process in its cgroup ("populated", which a retired prototype or what
 * a worker left keeps true after the lists are empty). */
static int stopped_check(const struct jval *p, char *msg, size_t n)
{
	const char *name = cr_jv_str(p, "name", "?"), *state = cr_jv_str(p, "state", "?");
	const struct jval *proto = cr_jv_get(p, "prototype");
	size_t left = cr_jv_len(p, "workers");
	int stopped = !strcmp(state, "stopped") || !strcmp(state, "stopping");

	proto = proto && proto->type == J_OBJ ? proto : NULL;
	if (stopped && !left && !proto && cr_jv_num(p, "populated", 0) != 1)
		return DONE;
	if (!stopped)
		snprintf(msg, n, "%s: %s, not stopped", name, state);
	else if (left)
		snprintf(msg, n, "%s: stopping, %zu worker%s left", name, left, left == 1 ? "" : "s");
	else if (proto)
		snprintf(msg, n, "%s: stopping, its prototype left", name);
	else
		snprintf(msg, n, "%s: stopping, processes left in its cgroup", name);
	return NOT_YET;
}

/* start, scale, restart, reload: the pool running, its workers all
 * ready and of its generation, the ones it stopped gone (for a worker's
 * restart: that worker gone and the pool running). A stopped pool stays
 * so (but for start, which meant to change that), and so does a frozen
 * one after a reload. */
static int ready_check(const struct waiting *w, const struct jval *p, char *msg, size_t n)
{
	const char *name = cr_jv_str(p, "name", "?"), *state = cr_jv_str(p, "state", "?");
	const struct jval *ws = cr_jv_get(p, "workers");
	double gen = cr_jv_num(p, "generation", 0), next = cr_jv_num(p, "restart_in", -1);
	size_t nw = cr_jv_len(p, "workers"), settled = 0, leaving = 0, old = 0;
	int worker_left = 0;

	for (size_t i = 0; i < nw; i++) {
		const struct jval *x = &ws->items[i];
		const char *st = cr_jv_str(x, "state", "");
		int going = !strcmp(st, "stopping") || !strcmp(st, "exited");
		settled += !strcmp(st, "ready") && cr_jv_num(x, "generation", -1) == gen;
		leaving += going;
		/* generation 0: replaced one at a time by a plugin, not old */
		old += !going && cr_jv_num(x, "generation", -1) != gen && cr_jv_num(x, "generation", -1) != 0;
		worker_left |= going && cr_jv_num(x, "id", 0) == (double)w->worker;
	}
	if (!strcmp(state, "failed")) {
		snprintf(msg, n, "%s failed: %s", name, cr_jv_str(p, "failure", "no reason given"));
		return POOL_FAILED;
	}
	if (!strcmp(state, "stopping")) {
		snprintf(msg, n, "corrald is stopping");
		return GAVE_UP;
	}
	if (!strcmp(state, "stopped")) {
		if (w->kind != WAIT_STARTED)
			return DONE;
		snprintf(msg, n, "%s was stopped again", name);
		return GAVE_UP;
	}
	if (!strcmp(state, "frozen") && w->kind == WAIT_RELOADED)
		return DONE;
	if (!strcmp(state, "running") && (w->kind == WAIT_WORKER ? !worker_left : settled == nw))
		return DONE;
	/* ready of the current generation: a restart counts the new ones */
	snprintf(msg, n, "%s: %zu/%u ready", name, settled, (unsigned)cr_jv_num(p, "target", 0));
	if (old)
		append(msg, n, ", %zu old", old);
	if (leaving)
		append(msg, n, ", %zu stopping", leaving);
	if (!strcmp(state, "frozen"))
		append(msg, n, ", frozen");
	if (next >= 0) {
		char d[32];
		cr_text_duration(d, sizeof d, next);
		append(msg, n, ", next start in %s (last failure: %s)", d, cr_jv_str(p, "last_failure", "?"));
	}
	return NOT_YET;
}

/* Every pool of the answer as the command wants it: DONE; or NOT_YET,
 * what those that are not yet are at in msg; or one never will be:
 * POOL_FAILED or GAVE_UP, why in msg. */
static int pools_check(const struct waiting *w, const struct jval *pools, char *msg, size_t n)
{
	int result = DONE;

	msg[0] = 0;
	for (size_t i = 0; i < pools->n; i++) {
		char one[512] = "";
		int r = w->kind == WAIT_STOPPED ? stopped_check(&pools->items[i], one, sizeof one)
			: ready_check(w, &pools->items[i], one, sizeof one);
		if (r == POOL_FAILED || r == GAVE_UP) {
			snprintf(msg, n, "%s", one);
			return r;
		}
		if (r == NOT_YET) {
			append(msg, n, "%s%s", result == NOT_YET ? "; " : "", one);
			result = NOT_YET;
		}
	}
	return result;
}

/* One status request: what it says of the wait, or an exit code below
 * 0 (negated), said on stderr. */
static int poll_status(const struct ctl *c, const struct waiting *w, const struct cr_buf *req,
		       char *msg, size_t n)
{
	struct cr_buf resp = { 0 };
	struct jval answer = { 0 };
	const struct jval *pools;
	int r;

	if ((r = request(c, req, &resp)) != EXIT_OK) {
		r = -r;
	} else if ((r = answer_code(resp.data)) != EXIT_OK) {
		char *error = cr_jv_field(resp.data, "error");
		complain("%s", error ? error : "status failed");
		free(error);
		r = -r;
	} else {
		pools = answer_pools(resp.data, &answer);
		r = pools ? pools_check(w, pools, msg, n) : -EXIT_FAILED;
	}
	cr_jv_free(&answer);
	cr_buf_free(&resp);
	return r;
}

/* Asks for the status until it says the command is done, a pool failed
 * or the deadline passed; shows how it goes on a terminal. */
static int wait_done(const struct ctl *c, const struct waiting *w)
{
	struct cr_buf req = { 0 };
	char msg[1024] = "";
	double backoff = 0.01, pause, left;
	int tty = !c->json && isatty(STDERR_FILENO), r, code = EXIT_OK;

	cr_buf_lit(&req, "{\"command\":\"status\"");
	if (w->kind != WAIT_RELOADED) {
		cr_buf_lit(&req, ",\"pool\":");
		cr_buf_json_string(&req, w->pool);
	}
	cr_buf_lit(&req, "}\n");
	for (;;) {
		double t0 = now(), spent;

		r = poll_status(c, w, &req, msg, sizeof msg);
		spent = now() - t0;
		if (r < 0 || r == DONE) {
			code = r < 0 ? -r : EXIT_OK;
			break;
		}
		if (r != NOT_YET) {
			complain("%s", msg);
			code = r == POOL_FAILED ? EXIT_POOL_FAILED : EXIT_FAILED;
			break;
		}
		if (tty)
			progress(msg);
		/* soon at first: most commands are done in a moment; never
		 * more than a fifth of corrald's time on our status calls,
		 * which grow with the pool (a status of 5,000 workers takes
		 * a while) */
		pause = 4 * spent > backoff ? (4 * spent < 2 ? 4 * spent : 2) : backoff;
		if ((left = c->deadline - now()) > 0) {
			left = left < pause ? left : pause;
			nanosleep(&(struct timespec){ (time_t)left, (long)((left - (double)(time_t)left) * 1e9) }, NULL);
			backoff = backoff * 2 < 0.1 ? backoff * 2 : 0.1;
		}
		if (c->deadline - now() <= 0) {
			char d[32];
			cr_text_duration(d, sizeof d, c->timeout);
			complain("not done within %s (--timeout): %s", d, msg);
			code = EXIT_TIMEOUT;
			break;
		}
	}
	progress_clear();
	cr_buf_free(&req);
	return code;
}

/* ---- what the answer says, besides what print_answer prints ---------------- */

/* status POOL: a failed pool is an exit status of its own, as systemctl
 * is-failed has it. */
static int status_code(const char *answer)
{
	struct jval v = { 0 };
	const struct jval *pools = answer_pools(answer, &v);
	int code = !pools ? EXIT_FAILED
		 : pools->n == 1 && !strcmp(cr_jv_str(&pools->items[0], "state", ""), "failed") ? EXIT_IS_FAILED
		 : EXIT_OK;

	cr_jv_free(&v);
	return code;
}

/* is-ready: a word per pool, "ready" or the state it is in (with the
 * pool's name first when no pool was named); EXIT_OK when all are ready,
 * else EXIT_IS_FAILED when one is failed, else EXIT_NOT_READY. */
static int is_ready(const struct ctl *c, const char *answer, int named)
{
	struct jval v = { 0 };
	const struct jval *pools = answer_pools(answer, &v);
	struct cr_buf out = { 0 };
	int code = EXIT_OK;

	if (!pools) {
		cr_jv_free(&v);
		return EXIT_FAILED;
	}
	cr_buf_lit(&out, "{\"ok\":true,\"code\":\"ok\",\"pools\":[");
	for (size_t i = 0; i < pools->n; i++) {
		const struct jval *pool = &pools->items[i];
		const char *name = cr_jv_str(pool, "name", "?"), *state = cr_jv_str(pool, "state", "?");
		int ready = !strcmp(state, "running");	/* all its workers ready */

		if (!ready && code != EXIT_IS_FAILED)
			code = !strcmp(state, "failed") ? EXIT_IS_FAILED : EXIT_NOT_READY;
		cr_buf_printf(&out, "%s{\"name\":", i ? "," : "");
		cr_buf_json_string(&out, name);
		cr_buf_printf(&out, ",\"ready\":%s,\"state\":", ready ? "true" : "false");
		cr_buf_json_string(&out, state);
		cr_buf_lit(&out, "}");
		if (c->quiet || c->json)
			continue;
		if (!named) {
			print_text(stdout, name);
			putchar(' ');
		}
		print_text(stdout, ready ? "ready" : state);
		putchar('\n');
	}
	cr_buf_printf(&out, "],\"ready\":%s}\n", code == EXIT_OK ? "true" : "false");
	if (c->json && !c->quiet && out.data)
		fputs(out.data, stdout);
	cr_buf_free(&out);
	cr_jv_free(&v);
	return code;
}

/* reload: the pools of each kind, under the summary line. */
static void print_reload(const char *answer)
{
	static const char *const kinds[] = { "added", "changed", "removed", "rescaled" };
	struct jval v = { 0 };
	const struct jval *r;

	if (cr_jv_parse(answer, &v) == 0 && (r = cr_jv_get(&v, "reload")) && r->type == J_OBJ) {
		for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
			const struct jval *list = cr_jv_get(r, kinds[k]);
			for (size_t i = 0; list && list->type == J_ARR && i < list->n; i++) {
				printf(i ? ", " : "  %s: ", kinds[k]);
				print_text(stdout, list->items[i].type == J_STR ? list->items[i].str : "?");
				if (i + 1 == list->n)
					putchar('\n');
			}
		}
	}
	cr_jv_free(&v);
}

/* ---- the command line ------------------------------------------------------ */

static int talk(const struct ctl *c, int argc, char **argv)
{
	struct cr_buf req = { 0 }, resp = { 0 };
	struct waiting w;
	int rc, code;

	rc = build_request(&req, argc, argv, c->all, c->json);
	if (rc == -2) {
		fprintf(stderr, "corralctl: unknown command \"%s\" (corralctl --help lists them)\n", argv[0]);
		code = EXIT_BAD;
		goto out;
	}
	if (rc < 0) {
		fprintf(stderr, "corralctl: wrong arguments for %s; usage: ", argv[0]);
		for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
			if (!strcmp(commands[i].name, argv[0]))
				fprintf(stderr, "corralctl %s %s\n", commands[i].name, commands[i].args);
		code = EXIT_BAD;
		goto out;
	}
	if ((code = request(c, &req, &resp)) != EXIT_OK)
		goto out;
	code = answer_code(resp.data);
	if (!strcmp(argv[0], "is-ready") && code == EXIT_OK) {
		code = is_ready(c, resp.data, argc > 1);
		goto out;
	}
	print_answer(resp.data, code, c->json);
	if (code == EXIT_OK && !strcmp(argv[0], "status") && argc > 1)
		code = status_code(resp.data);
	if (code == EXIT_OK && !strcmp(argv[0], "reload") && !c->json)
		print_reload(resp.data);
	what_to_wait_for(argc, argv, &w);
	if (code == EXIT_OK && c->wait && w.kind != WAIT_NONE)
		code = wait_done(c, &w);
out:
	cr_buf_free(&req);
	cr_buf_free(&resp);
	return code;
}

static int set_timeout(struct ctl *c, const char *arg)
{
	const char *why;
	double t = parse_duration(arg, &why);

	if (t >= 0 && !(t > 0))
		why = "not more than 0";
	else if (t > 1e7)
		why = "too long";
	if (!(t > 0) || t > 1e7) {
		fprintf(stderr, "corralctl: --timeout: invalid duration \"%s\": %s "
			"(seconds, or as 500ms, 30s, 2min, 1min 30s, 5 seconds; units us, ms, s, min, h, d, w)\n",
			arg, why);
		return -1;
	}
	c->timeout = t;
	return 0;
}

/* Options after the command too: corralctl restart web --all-at-once,
 * corralctl stop web --timeout 5s. Removes them from argv. */
static int options_after(struct ctl *c, int *argc, char **argv, int from)
{
	for (int i = from; i < *argc; i++) {
		const char *a = argv[i];
		int used = 1;

		if (!strcmp(a, "--all-at-once")) {
			c->all = 1;
		} else if (!strcmp(a, "--json")) {
			c->json = 1;
		} else if (!strcmp(a, "--quiet")) {
			c->quiet = 1;
		} else if (!strcmp(a, "--no-wait")) {
			c->wait = 0;
		} else if (!strncmp(a, "--timeout=", 10)) {
			if (set_timeout(c, a + 10) < 0)
				return -1;
		} else if (!strcmp(a, "--timeout")) {
			if (i + 1 >= *argc) {
				fprintf(stderr, "corralctl: --timeout needs a duration\n");
				return -1;
			}
			if (set_timeout(c, argv[i + 1]) < 0)
				return -1;
			used = 2;
		} else {
			continue;
		}
		memmove(&argv[i], &argv[i + used], (size_t)(*argc - i - used + 1) * sizeof *argv);
		*argc -= used;
		i--;
	}
	return 0;
}

int main(int argc, char **argv)
{
	enum { OPT_NO_WAIT = 256, OPT_TIMEOUT };
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "all-at-once", no_argument, NULL, 'a' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "no-wait", no_argument, NULL, OPT_NO_WAIT },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl c = { .path = getenv("CORRAL_SOCKET"), .wait = 1, .timeout = DEFAULT_TIMEOUT };
	int opt;

	while ((opt = getopt_long(argc, argv, "+s:jaqh", longopts, NULL)) != -1) {
		switch (opt) {
		case 's': c.path = optarg; break;
		case 'j': c.json = 1; break;
		case 'a': c.all = 1; break;
		case 'q': c.quiet = 1; break;
		case OPT_NO_WAIT: c.wait = 0; break;
		case OPT_TIMEOUT:
			if (set_timeout(&c, optarg) < 0)
				return EXIT_BAD;
			break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_BAD;
		}
	}
	if (options_after(&c, &argc, argv, optind) < 0)
		return EXIT_BAD;
	if (optind >= argc) {
		usage(stderr);
		return EXIT_BAD;
	}
	if (!strcmp(argv[optind], "help"))
		return optind + 1 < argc ? command_help(argv[optind + 1]) : (usage(stdout), EXIT_OK);
	if (!c.path || !*c.path)
		c.path = DEFAULT_SOCKET;
	c.deadline = now() + c.timeout;
	return talk(&c, argc - optind, argv + optind);
}
