/*
 * log.c: formats one line per event and writes it to stderr with a single
 * write(2), so lines from corrald, its prototypes and workers do not mix.
 * Owns nothing else: no buffering, no allocation, safe in a forked child.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

enum cr_level cr_log_level = CR_INFO;

static const char *const level_names[] = {
	[CR_DEBUG] = "debug", [CR_INFO] = "info", [CR_NOTICE] = "notice",
	[CR_WARN] = "warn", [CR_ERR] = "error", [CR_ALERT] = "alert",
};

int cr_log_level_parse(const char *name)
{
	for (unsigned i = 0; i < sizeof level_names / sizeof *level_names; i++)
		if (strcmp(name, level_names[i]) == 0)
			return (int)i;
	return -1;
}

void cr_log(enum cr_level level, const struct cr_who *who, const char *fmt, ...)
{
	char line[2048];
	size_t n = 0, room = sizeof line - 1;
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int saved = errno, r;

	if (level < cr_log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	r = snprintf(line, room, "%02d:%02d:%02d.%03ld %s ", tm.tm_hour, tm.tm_min,
		     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level]);
	n = (size_t)r;
	va_start(ap, fmt);
	r = vsnprintf(line + n, room - n, fmt, ap);
	va_end(ap);
	n = r < 0 ? n : n + (size_t)r;
	if (who && n < room && who->pool) {
		r = snprintf(line + n, room - n, " pool=%s", who->pool);
		n += r > 0 ? (size_t)r : 0;
	}
	if (who && n < room && who->worker) {
		r = snprintf(line + n, room - n, " worker=%u", who->worker);
		n += r > 0 ? (size_t)r : 0;
	}
	if (who && n < room && who->pid > 0) {
		r = snprintf(line + n, room - n, " pid=%d", (int)who->pid);
		n += r > 0 ? (size_t)r : 0;
	}
	if (n > room)
		n = room;	/* truncated: still one line */
	line[n++] = '\n';
	while (write(STDERR_FILENO, line, n) < 0 && errno == EINTR)
		;
	errno = saved;
}
