/*
 * preflight.c: a config is run once in a child process before corrald
 * runs it. The count hook stops Lua code that loops, luapat.c bounds
 * pattern matching and lua.c caps memory, but a config can still block
 * in a system call (io.read on a pipe, os.execute) or in a C function
 * nobody thought of. The child meets that instead of corrald: it is
 * killed after PREFLIGHT_SECONDS and the config refused, with what is
 * known. What the child loaded is thrown away: hooks and plugins are Lua
 * functions, with upvalues, that cannot be passed back; corrald then
 * runs the file itself, with the same checks in place.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crlua.h"
#include "log.h"
#include "preflight.h"

static void child(const char *path, int out)
{
	struct cr_value *v = NULL;
	struct cr_lua *lua;
	char *err = NULL;
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	/* its log lines and prints would repeat corrald's own run */
	cr_log_level = CR_ALERT + 1;
	if (null >= 0) {
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
	}
	lua = cr_lua_load_config(path, &v, &err, 0);
	if (!lua) {
		const char *msg = err ? err : "out of memory";
		if (write(out, msg, strlen(msg)) < 0) {
			/* corrald reads a short answer as what it is */
		}
	} else if (write(out, "", 1) < 0) {
		/* nothing to say: the config loaded */
	}
	_exit(0);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int cr_preflight(const char *path, double seconds, char **err)
{
	int fds[2], status, timed_out = 0, finished;
	char msg[16384];	/* up to 20 errors, a line each */
	size_t got = 0;
	double deadline = now() + seconds;
	pid_t pid;

	*err = NULL;
	if (pipe2(fds, O_CLOEXEC) < 0)
		return 0;	/* no preflight: corrald's own checks still apply */
	if ((pid = fork()) < 0) {
		close(fds[0]);
		close(fds[1]);
		return 0;
	}
	if (pid == 0) {
		close(fds[0]);
		child(path, fds[1]);
	}
	close(fds[1]);
	for (;;) {
		struct pollfd p = { .fd = fds[0], .events = POLLIN };
		double left = deadline - now();
		ssize_t n;

		if (left <= 0) {
			kill(pid, SIGKILL);
			snprintf(msg, sizeof msg, "%s: loading took longer than %gs in a test run, stopped "
				 "(a blocking call or a long C function?)", path, seconds);
			got = strlen(msg) + 1;	/* as an error */
			timed_out = 1;
			break;
		}
		n = poll(&p, 1, (int)(left * 1000) + 1);
		if (n < 0 && errno != EINTR)
			break;
		if (n <= 0)
			continue;
		n = read(fds[0], msg + got, sizeof msg - 1 - got);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == sizeof msg - 1)
			break;
	}
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	msg[got < sizeof msg ? got : sizeof msg - 1] = 0;
	/* the child's own words: its load ended, with errors */
	finished = got > 0 && msg[0] && !timed_out;
	if (got == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		/* it died without a word: a crash in C, or killed */
		snprintf(msg, sizeof msg, "%s: loading crashed the test run (%s %d)", path,
			 WIFSIGNALED(status) ? "signal" : "status",
			 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
		got = 1;
	}
	if (got > 0 && msg[0]) {
		*err = strdup(msg);
		return finished ? 1 : -1;
	}
	return 0;
}
