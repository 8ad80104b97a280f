/*
 * corralctl.c: the command line for corrald's control socket. Builds one
 * JSON request from the arguments, prints the answer (or, with --json, the
 * raw JSON line) and exits with a code scripts can test:
 *   0 ok, 1 failed, 2 bad request or usage, 3 not found, 4 refused,
 *   5 corrald not running.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "json.h"
#include "text.h"

#define DEFAULT_SOCKET "/run/corral/control.sock"

enum { EXIT_OK, EXIT_FAILED, EXIT_BAD, EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_NOT_RUNNING };

static const struct {
	const char *name, *args, *help;
} commands[] = {
	{ "status", "[POOL]", "pools and workers: state, readiness, restarts, memory, CPU" },
	{ "scale", "POOL N", "run N workers in POOL (until the next reload)" },
	{ "restart", "POOL[/ID] [--all-at-once]", "a rolling restart of POOL (new prototype first), or one worker" },
	{ "stop", "POOL", "stop POOL and keep it stopped until started" },
	{ "start", "POOL", "start a stopped or failed POOL" },
	{ "signal", "POOL[/ID] SIGNAL", "send SIGNAL (name or number) to POOL's workers, or one" },
	{ "freeze", "POOL", "freeze POOL's cgroup" },
	{ "thaw", "POOL", "thaw POOL's cgroup" },
	{ "reload", "", "reload the configuration; prints the result or the error with file:line" },
	{ "ping", "", "check that corrald answers" },
	{ "version", "", "corrald's version" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: corralctl [-s SOCKET] [--json] COMMAND [ARGS]\n\n");
	for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
		fprintf(f, "  %-8s %-26s %s\n", commands[i].name, commands[i].args, commands[i].help);
	fprintf(f, "\nThe socket: -s/--socket, else $CORRAL_SOCKET, else %s.\n"
		"Exit codes: 0 ok, 1 failed, 2 bad request, 3 not found, 4 refused,\n"
		"5 corrald not running. `corralctl help COMMAND` explains one.\n", DEFAULT_SOCKET);
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
	cr_buf_json_string(b, cmd);
	if (!strcmp(cmd, "status")) {
		if (argc > 2)
			return -1;
		if (argc == 2) {
			cr_buf_lit(b, ",\"pool\":");
			cr_buf_json_string(b, argv[1]);
		}
		if (!json)
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

/* A code point as UTF-8 (a surrogate, which corrald never sends alone,
 * as U+FFFD). */
static void add_utf8(struct cr_buf *b, unsigned v)
{
	char u[3];

	if (v >= 0xd800 && v <= 0xdfff)
		v = 0xfffd;
	if (v < 0x80) {
		u[0] = (char)v;
		cr_buf_add(b, u, 1);
	} else if (v < 0x800) {
		u[0] = (char)(0xc0 | v >> 6);
		u[1] = (char)(0x80 | (v & 0x3f));
		cr_buf_add(b, u, 2);
	} else {
		u[0] = (char)(0xe0 | v >> 12);
		u[1] = (char)(0x80 | (v >> 6 & 0x3f));
		u[2] = (char)(0x80 | (v & 0x3f));
		cr_buf_add(b, u, 3);
	}
}

/* The value of a top-level string field of the answer, unescaped. */
static char *field(const char *json, const char *key)
{
	char pat[64];
	const char *p;
	struct cr_buf out = { 0 };

	snprintf(pat, sizeof pat, "\"%s\":\"", key);
	if (!(p = strstr(json, pat)))
		return NULL;
	for (p += strlen(pat); *p && *p != '"'; p++) {
		char ch = *p;
		if (ch == '\\' && p[1]) {
			p++;
			switch (*p) {
			case 'n': ch = '\n'; break;
			case 't': ch = '\t'; break;
			case 'r': ch = '\r'; break;
			case 'b': ch = '\b'; break;
			case 'f': ch = '\f'; break;
			case 'u': {
				unsigned v = 0;
				if (sscanf(p + 1, "%4x", &v) == 1)
					p += 4;
				add_utf8(&out, v);
				continue;
			}
			default: ch = *p;
			}
		}
		cr_buf_add(&out, &ch, 1);
	}
	if (!out.data)
		cr_buf_lit(&out, "");
	return out.data ? out.data : strdup("");
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

static int talk(const char *path, int argc, char **argv, int all, int json);

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "all-at-once", no_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = getenv("CORRAL_SOCKET");
	int json = 0, all = 0, opt, code;

	while ((opt = getopt_long(argc, argv, "+s:jah", longopts, NULL)) != -1) {
		switch (opt) {
		case 's': path = optarg; break;
		case 'j': json = 1; break;
		case 'a': all = 1; break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_BAD;
		}
	}
	/* options after the command too: corralctl restart web --all-at-once */
	for (int i = optind; i < argc; i++) {
		if (!strcmp(argv[i], "--all-at-once") || !strcmp(argv[i], "--json")) {
			if (argv[i][2] == 'a')
				all = 1;
			else
				json = 1;
			memmove(&argv[i], &argv[i + 1], (size_t)(argc - i) * sizeof *argv);
			argc--;
			i--;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_BAD;
	}
	if (!strcmp(argv[optind], "help"))
		return optind + 1 < argc ? command_help(argv[optind + 1]) : (usage(stdout), EXIT_OK);
	if (!path || !*path)
		path = DEFAULT_SOCKET;
	code = talk(path, argc - optind, argv + optind, all, json);
	return code;
}

static int talk(const char *path, int argc, char **argv, int all, int json)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct cr_buf req = { 0 }, resp = { 0 };
	char *text, *codestr;
	int fd = -1, rc, code, werr = 0;

	rc = build_request(&req, argc, argv, all, json);
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
	if (strlen(path) >= sizeof sa.sun_path) {
		fprintf(stderr, "corralctl: socket path too long: %s\n", path);
		code = EXIT_BAD;
		goto out;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		if (errno == EACCES || errno == EPERM) {
			fprintf(stderr, "corralctl: %s: %s (not allowed to use corrald's control socket)\n",
				path, strerror(errno));
			code = EXIT_REFUSED;
		} else {
			fprintf(stderr, "corralctl: corrald is not running (unable to connect to %s: %s)\n",
				path, strerror(errno));
			code = EXIT_NOT_RUNNING;
		}
		goto out;
	}
	{
		/* a reload may take a while (its config has 10 s); a stuck
		 * corrald must not hang the command line */
		struct timeval tv = { .tv_sec = 60 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	}
	if (send(fd, req.data, req.len, MSG_NOSIGNAL) != (ssize_t)req.len) {
		/* corrald may have answered and closed first (busy): read on */
		werr = errno;
		shutdown(fd, SHUT_WR);
	}
	for (;;) {
		char buf[65536];
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			fprintf(stderr, "corralctl: corrald did not answer within 60s\n");
			code = EXIT_FAILED;
			goto out;
		}
		if (n <= 0)
			break;
		cr_buf_add(&resp, buf, (size_t)n);
	}
	if ((!resp.data || resp.failed) && werr) {
		fprintf(stderr, "corralctl: unable to send the request: %s\n", strerror(werr));
		code = EXIT_NOT_RUNNING;
		goto out;
	}
	if (!resp.data || resp.failed) {
		fprintf(stderr, "corralctl: corrald closed the connection without an answer\n");
		code = EXIT_FAILED;
		goto out;
	}
	codestr = field(resp.data, "code");
	code = !codestr ? EXIT_FAILED
	     : !strcmp(codestr, "ok") ? EXIT_OK
	     : !strcmp(codestr, "bad-request") ? EXIT_BAD
	     : !strcmp(codestr, "not-found") ? EXIT_NOT_FOUND
	     : !strcmp(codestr, "refused") ? EXIT_REFUSED : EXIT_FAILED;
	free(codestr);
	if (json) {
		fputs(resp.data, stdout);
	} else if (code != EXIT_OK) {
		text = field(resp.data, "error");
		fputs("corralctl: ", stderr);
		print_text(stderr, text ? text : "failed");
		fputc('\n', stderr);
		free(text);
	} else if ((text = field(resp.data, "text")) || (text = field(resp.data, "message")) ||
		   (text = field(resp.data, "version"))) {
		print_text(stdout, text);
		if (text[0] && text[strlen(text) - 1] != '\n')
			putchar('\n');
		free(text);
	} else if (strstr(resp.data, "\"pong\":true")) {
		puts("pong");
	} else if ((text = strstr(resp.data, "\"signalled\":"))) {
		printf("signalled %d worker%s\n", atoi(text + 12), atoi(text + 12) == 1 ? "" : "s");
	}
out:
	if (fd >= 0)
		close(fd);
	cr_buf_free(&req);
	cr_buf_free(&resp);
	return code;
}
