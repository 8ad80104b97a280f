/*
 * log.c: formats one line per event and writes it to stderr with a single
 * write(2), so lines from corrald, its prototypes and workers do not mix;
 * or, when stderr is the journal, sends it with structured fields
 * (CORRAL_POOL=, CORRAL_WORKER=, CORRAL_PID=, PRIORITY=). No buffering and
 * no allocation: safe in a forked child, which inherits the choice.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "log.h"

enum cr_level cr_log_level = CR_INFO;
int cr_log_journal;

static const int priorities[] = {
	[CR_DEBUG] = LOG_DEBUG, [CR_INFO] = LOG_INFO, [CR_NOTICE] = LOG_NOTICE,
	[CR_WARN] = LOG_WARNING, [CR_ERR] = LOG_ERR, [CR_ALERT] = LOG_ALERT,
};

int cr_log_detect_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	/* systemd sets it to stderr's device:inode when that is the journal */
	cr_log_journal = js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
			 fstat(STDERR_FILENO, &st) == 0 &&
			 (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
	return cr_log_journal;
}

static void send_journal(enum cr_level level, const struct cr_who *who, const char *msg)
{
	char prio[16], pool[80], worker[32], pid[32], message[2100];
	struct iovec iov[6];
	int n = 0;

	snprintf(prio, sizeof prio, "PRIORITY=%d", priorities[level]);
	iov[n++] = (struct iovec){ prio, strlen(prio) };
	snprintf(message, sizeof message, "MESSAGE=%s", msg);
	iov[n++] = (struct iovec){ message, strlen(message) };
	iov[n++] = (struct iovec){ "SYSLOG_IDENTIFIER=corrald", 25 };
	if (who && who->pool) {
		snprintf(pool, sizeof pool, "CORRAL_POOL=%s", who->pool);
		iov[n++] = (struct iovec){ pool, strlen(pool) };
	}
	if (who && who->worker) {
		snprintf(worker, sizeof worker, "CORRAL_WORKER=%u", who->worker);
		iov[n++] = (struct iovec){ worker, strlen(worker) };
	}
	if (who && who->pid > 0) {
		snprintf(pid, sizeof pid, "CORRAL_PID=%d", (int)who->pid);
		iov[n++] = (struct iovec){ pid, strlen(pid) };
	}
	sd_journal_sendv(iov, n);
}

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
	if (cr_log_journal) {
		char msg[2048];
		va_start(ap, fmt);
		r = vsnprintf(msg, sizeof msg, fmt, ap);
		va_end(ap);
		if (r >= 0)
			send_journal(level, who, msg);
		errno = saved;
		return;
	}
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
