/*
 * text.c: the few formats corral prints and reads in more than one place.
 * Durations and sizes are written the way a config writes them, so what
 * a log line or `corralctl status` shows can be pasted back into a config
 * (lua/corral/units.lua formats through the same function, core.duration).
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>

#include "text.h"

void cr_text_duration(char *buf, size_t n, double s)
{
	if (s < 1)
		snprintf(buf, n, "%.0fms", s * 1e3);
	else if (s < 100000)
		snprintf(buf, n, "%gs", round(s * 1000) / 1000);
	else
		snprintf(buf, n, "%.0fs", s);
}

void cr_text_bytes(char *buf, size_t n, long long v)
{
	if (v < 0)
		snprintf(buf, n, "-");
	else if (v >= 1LL << 30)
		snprintf(buf, n, "%.1fG", (double)v / (1 << 30));
	else if (v >= 1LL << 20)
		snprintf(buf, n, "%.1fM", (double)v / (1 << 20));
	else
		snprintf(buf, n, "%.0fK", (double)v / 1024);
}

void cr_text_wait_status(char *buf, size_t n, int status)
{
	if (WIFEXITED(status))
		snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, n, "killed by signal %d (%s)%s", WTERMSIG(status),
			 sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?",
			 WCOREDUMP(status) ? " (core dumped)" : "");
	else
		snprintf(buf, n, "ended with wait status %#x", status);
}

int cr_text_signal(const char *name)
{
	char *end;
	long n = strtol(name, &end, 10);

	if (*name && !*end)
		return n > 0 && n < NSIG ? (int)n : -1;
	if (!strncasecmp(name, "SIG", 3))
		name += 3;
	for (int i = 1; i < NSIG; i++)
		if (sigabbrev_np(i) && !strcasecmp(name, sigabbrev_np(i)))
			return i;
	return -1;
}
