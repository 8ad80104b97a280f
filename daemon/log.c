/*
 * log.c: formats one line per event and writes it to stderr with a single
 * write(2), so lines from corrald, its prototypes and workers do not mix;
 * or, when stderr is the journal, sends it with structured fields
 * (CORRAL_POOL=, CORRAL_WORKER=, CORRAL_PID=, PRIORITY=). No buffering and
 * no allocation: safe in a forked child, which inherits the choice.
 *
 * A log must not stop corrald: when stderr is a pipe whose reader lags,
 * corrald writes through a non-blocking file description of its own
 * (opened again through /proc, so that stderr's own, shared with others,
 * stays as it is); lines that cannot be written (a full pipe, a full
 * disk) are counted, and the next line that can be says how many.
 */
#include <errno.h>
#include <fcntl.h>
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

static struct {
	int fd;			/* corrald's own, non-blocking, or -1 */
	pid_t pid;		/* whose: children write to stderr */
	int tried;
	unsigned long dropped;
} L = { .fd = -1 };

/* Where this process writes its lines: for corrald, with stderr a pipe,
 * a non-blocking description of that pipe of its own. */
static int log_fd(void)
{
	struct stat st;

	if (!L.tried) {
		L.tried = 1;
		L.pid = getpid();
		if (fstat(STDERR_FILENO, &st) == 0 && S_ISFIFO(st.st_mode))
			L.fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	}
	return L.fd >= 0 && L.pid == getpid() ? L.fd : STDERR_FILENO;
}

/* The whole line, or nothing (a pipe takes up to PIPE_BUF at once). */
static int write_line(int fd, const char *line, size_t n)
{
	ssize_t w;

	while ((w = write(fd, line, n)) < 0 && errno == EINTR)
		;
	return w == (ssize_t)n ? 0 : -1;
}

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
	int saved = errno, r, fd, own;

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
	fd = log_fd();
	own = L.pid == getpid();
	if (own && L.dropped) {
		char note[128];
		int k = snprintf(note, sizeof note, "%02d:%02d:%02d.%03ld warn %lu log lines dropped: "
				 "stderr took no more\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
				 ts.tv_nsec / 1000000, L.dropped);
		if (k > 0 && write_line(fd, note, (size_t)k) == 0)
			L.dropped = 0;
	}
	if (write_line(fd, line, n) < 0 && own)
		L.dropped++;
	errno = saved;
}
