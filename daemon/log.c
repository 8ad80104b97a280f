/*
 * log.c: formats one line per event and writes it to stderr with a single
 * write(2), so lines from corrald, its prototypes and workers do not mix;
 * or, when stderr is the journal, sends it with structured fields
 * (CORRAL_POOL=, CORRAL_WORKER=, CORRAL_PID=, PRIORITY=). No buffering and
 * no allocation: safe in a forked child, which inherits the choice.
 *
 * Text lines start with the time, RFC 3339 local with the offset and
 * milliseconds (2026-12-05T14:45:01.123+01:00): logs are kept for days,
 * and read beside others.
 *
 * A log must not stop corrald: when stderr is a pipe whose reader lags
 * (or a terminal that does), corrald writes through a non-blocking file
 * description of its own
 * (opened again through /proc, so that stderr's own, shared with others,
 * stays as it is); lines that cannot be written (a full pipe, a full
 * disk) are counted, and the next line that can be says how many. The
 * journal is spoken to the same way: its native protocol on a datagram
 * socket of our own, never blocking (libsystemd's sd_journal_sendv blocks
 * while journald is stalled). CORRAL_JOURNAL_SOCKET names another socket
 * than /run/systemd/journal/socket: for tests only.
 *
 * Nor may a worker make corrald log without bound: in corrald, lines at
 * info to warn about a worker or a process (what a worker can cause) are
 * limited to LIMIT_LINES per LIMIT_EVERY seconds for each message and
 * source; the rest are counted, and said with corrald's first line after
 * the interval. Debug lines (-v) are all kept, errors and alerts too.
 * Control characters but tab are written as \xNN: text a worker chose (a
 * STATUS=) cannot move an operator's terminal or forge a line.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "text.h"

enum cr_level cr_log_level = CR_INFO;
int cr_log_journal;

#define LINE_MAX_ 2048

static struct {
	int fd;			/* corrald's own, non-blocking, or -1 */
	pid_t pid;		/* whose: children write to stderr */
	int cfd;		/* a worker's: corrald's stderr, kept (or -1) */
	pid_t cpid;		/* whose */
	int tried;
	unsigned long dropped;
	int jfd;		/* the journal's socket, or -1 */
	pid_t jpid;		/* whose */
	unsigned long jdropped;
} L = { .fd = -1, .cfd = -1, .jfd = -1 };

/* Where this process writes its lines: for corrald, with stderr a pipe
 * or a terminal, a non-blocking description of it of its own (a regular
 * file's must be shared: its offset); for a worker whose stderr goes
 * through corrald (output.c), corrald's stderr as it kept it. */
static int log_fd(void)
{
	struct stat st;

	if (!L.tried) {
		L.tried = 1;
		L.pid = getpid();
		if (!cr_log_journal && fstat(STDERR_FILENO, &st) == 0 &&
		    (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)))
			L.fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	}
	if (L.pid == getpid())
		return L.fd >= 0 ? L.fd : STDERR_FILENO;
	return L.cfd >= 0 && L.cpid == getpid() ? L.cfd : STDERR_FILENO;
}

int cr_log_stderr_fd(void)
{
	return log_fd();
}

void cr_log_keep_stderr(int fd)
{
	L.cfd = fd;
	L.cpid = getpid();
}

/* RFC 3339 local time with its offset and milliseconds:
 * 2026-12-05T14:45:01.123+01:00 */
size_t cr_log_stamp(char *buf, size_t n)
{
	struct timespec ts;
	struct tm tm;
	char off[8];
	int r;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(off, sizeof off, "%z", &tm);	/* +0100 */
	r = snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03ld%.3s:%.2s", tm.tm_year + 1900,
		     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     ts.tv_nsec / 1000000, off, off + 3);
	return r < 0 ? 0 : (size_t)r < n ? (size_t)r : n - 1;
}

/* Whether this process is corrald (the first to log), not a child. */
static int own(void)
{
	log_fd();
	return L.pid == getpid();
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

/* ---- escaping ------------------------------------------------------------ */

/* src into dst, as a terminal cannot act on it (text.c); tabs stay:
 * harmless, and Lua's tracebacks indent with them. */
static void escape(char *dst, size_t size, const char *src)
{
	cr_text_escape(dst, size, src, CR_TEXT_KEEP_TAB);
}

/* ---- the rate limit ------------------------------------------------------ */

#define LIMIT_LINES 20		/* lines of one message and source ... */
#define LIMIT_EVERY 5.0		/* ... per this many seconds */
#define LIMIT_SLOTS 64		/* sources followed at once (the least recent go) */

struct limit {
	const char *fmt;	/* NULL: a free slot */
	uint32_t pool;		/* the pool name's hash */
	unsigned worker;
	pid_t pid;		/* only without a worker: an outsider */
	double start, used;	/* the interval's start; last line */
	unsigned lines;		/* within the interval */
	unsigned long suppressed;
	char last[160];		/* the last line suppressed, for the summary */
};

static struct limit limits[LIMIT_SLOTS];

static double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint32_t hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; s && *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* What a worker can cause: lines about a worker or a process, below
 * error; and only corrald's own (children log little and briefly). */
static int limited(enum cr_level level, const struct cr_who *who)
{
	return level >= CR_INFO && level < CR_ERR && who && (who->worker || who->pid > 0) && own();
}

static void emit(enum cr_level level, const struct cr_who *who, const char *msg);

/* The summary of a slot's interval: how many lines it held back. */
static void limit_summary(struct limit *l, double now)
{
	char msg[256];

	snprintf(msg, sizeof msg, "%lu similar lines suppressed in %gs (more than %d), the last: %s",
		 l->suppressed, LIMIT_EVERY, LIMIT_LINES, l->last);
	l->suppressed = 0;
	l->start = now;
	l->lines = 0;
	emit(CR_WARN, NULL, msg);
}

/* Summaries of the intervals that are over. */
static void limit_report(double now)
{
	for (struct limit *l = limits; l < limits + LIMIT_SLOTS; l++)
		if (l->fmt && l->suppressed && now - l->start >= LIMIT_EVERY)
			limit_summary(l, now);
}

static struct limit *limit_slot(const char *fmt, const struct cr_who *who, double now)
{
	uint32_t pool = hash(who->pool);
	pid_t pid = who->worker ? 0 : who->pid;
	struct limit *l, *victim = &limits[0];

	for (l = limits; l < limits + LIMIT_SLOTS; l++) {
		if (l->fmt == fmt && l->pool == pool && l->worker == who->worker && l->pid == pid)
			return l;
		if (!l->fmt || (victim->fmt && l->used < victim->used))
			victim = l;
	}
	if (victim->fmt && victim->suppressed)
		limit_summary(victim, now);	/* its count is not lost */
	*victim = (struct limit){ .fmt = fmt, .pool = pool, .worker = who->worker, .pid = pid, .start = now };
	return victim;
}

/* Whether the line may go out; else it is counted (its text kept). */
static int limit_pass(enum cr_level level, const struct cr_who *who, const char *fmt, const char *msg)
{
	double now = mono_now();
	struct limit *l;
	char pool[64];

	if (own())
		limit_report(now);
	if (!limited(level, who))
		return 1;
	l = limit_slot(fmt, who, now);
	l->used = now;
	if (now - l->start >= LIMIT_EVERY) {
		l->start = now;
		l->lines = 0;
	}
	if (l->lines < LIMIT_LINES) {
		l->lines++;
		return 1;
	}
	l->suppressed++;
	if (who->pool)
		escape(pool, sizeof pool, who->pool);
	snprintf(l->last, sizeof l->last, "%.100s%s%.40s", msg, who->pool ? " pool=" : "", who->pool ? pool : "");
	return 0;
}

/* ---- the journal's native protocol ---------------------------------------- */

/* Our socket to journald, non-blocking and not connected (each line is
 * sent to the path, so a journald that restarted gets it): one per
 * process (a child may have closed its parent's, or have another file on
 * that fd). */
static struct sockaddr_un journal_addr = { .sun_family = AF_UNIX };
static socklen_t journal_addrlen;

static int journal_fd(void)
{
	const char *path = getenv("CORRAL_JOURNAL_SOCKET");	/* tests only */
	size_t len;

	if (L.jfd >= 0 && L.jpid == getpid())
		return L.jfd;
	L.jfd = -1;	/* a parent's: not ours to close */
	L.jpid = getpid();
	if (!path || !*path)
		path = "/run/systemd/journal/socket";
	len = strlen(path);
	if (len >= sizeof journal_addr.sun_path)
		return -1;
	memcpy(journal_addr.sun_path, path, len + 1);
	journal_addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
	L.jfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	return L.jfd;
}

struct fields {
	struct iovec iov[32];
	char lens[8][8];
	int n, nlen;
};

/* NAME=value\n, or when the value has a newline the binary form:
 * NAME\n, its length (64 bits, little-endian), the value, \n. */
static void field(struct fields *f, const char *name, const char *value)
{
	size_t vlen = strlen(value);

	if (f->n + 5 > (int)(sizeof f->iov / sizeof *f->iov))
		return;
	f->iov[f->n++] = (struct iovec){ (void *)name, strlen(name) };
	if (memchr(value, '\n', vlen) && f->nlen < 8) {
		uint64_t v = vlen;
		char *le = f->lens[f->nlen++];
		for (int i = 0; i < 8; i++)
			le[i] = (char)(v >> (8 * i));
		f->iov[f->n++] = (struct iovec){ "\n", 1 };
		f->iov[f->n++] = (struct iovec){ le, 8 };
	} else {
		f->iov[f->n++] = (struct iovec){ "=", 1 };
	}
	f->iov[f->n++] = (struct iovec){ (void *)value, vlen };
	f->iov[f->n++] = (struct iovec){ "\n", 1 };
}

static int journal_send(enum cr_level level, const struct cr_who *who, const char *msg)
{
	char prio[4], worker[16], pid[16];
	struct fields f = { .n = 0 };
	struct msghdr mh = { 0 };
	int fd = journal_fd();
	ssize_t r;

	if (fd < 0)
		return -1;
	snprintf(prio, sizeof prio, "%d", priorities[level]);
	field(&f, "PRIORITY", prio);
	field(&f, "MESSAGE", msg);
	field(&f, "SYSLOG_IDENTIFIER", "corrald");
	if (who && who->pool)
		field(&f, "CORRAL_POOL", who->pool);
	if (who && who->worker) {
		snprintf(worker, sizeof worker, "%u", who->worker);
		field(&f, "CORRAL_WORKER", worker);
	}
	if (who && who->pid > 0) {
		snprintf(pid, sizeof pid, "%d", (int)who->pid);
		field(&f, "CORRAL_PID", pid);
	}
	mh.msg_name = &journal_addr;
	mh.msg_namelen = journal_addrlen;
	mh.msg_iov = f.iov;
	mh.msg_iovlen = (size_t)f.n;
	while ((r = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	return r < 0 ? -1 : 0;
}

/* To the journal; lines it did not take are counted and said later. */
static void to_journal(enum cr_level level, const struct cr_who *who, const char *msg)
{
	if (L.jdropped && own()) {
		char note[128];
		snprintf(note, sizeof note, "%lu log lines dropped: the journal took no more", L.jdropped);
		if (journal_send(CR_WARN, NULL, note) == 0)
			L.jdropped = 0;
	}
	if (journal_send(level, who, msg) < 0 && own())
		L.jdropped++;
}

/* ---- stderr ---------------------------------------------------------------- */

static void to_stderr(enum cr_level level, const struct cr_who *who, const char *msg)
{
	char line[LINE_MAX_], stamp[40];
	size_t n = 0, room = sizeof line - 1;
	int r, fd;

	cr_log_stamp(stamp, sizeof stamp);
	r = snprintf(line, room, "%s %s %s", stamp, level_names[level], msg);
	n = r < 0 ? 0 : (size_t)r;
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
	if (own() && L.dropped) {
		char note[128];
		int k = snprintf(note, sizeof note, "%s warn %lu log lines dropped: "
				 "stderr took no more\n", stamp, L.dropped);
		if (k > 0 && write_line(fd, note, (size_t)k) == 0)
			L.dropped = 0;
	}
	if (write_line(fd, line, n) < 0 && own())
		L.dropped++;
}

/* msg escaped already; who's fields are escaped here. */
static void emit(enum cr_level level, const struct cr_who *who, const char *msg)
{
	char pool[256];
	struct cr_who w;

	if (who && who->pool) {
		w = *who;
		escape(pool, sizeof pool, who->pool);
		w.pool = pool;
		who = &w;
	}
	if (cr_log_journal)
		to_journal(level, who, msg);
	else
		to_stderr(level, who, msg);
}

void cr_log(enum cr_level level, const struct cr_who *who, const char *fmt, ...)
{
	char raw[LINE_MAX_], msg[LINE_MAX_];
	va_list ap;
	int saved = errno, r;

	if (level < cr_log_level)
		return;
	va_start(ap, fmt);
	r = vsnprintf(raw, sizeof raw, fmt, ap);	/* %m: errno, untouched so far */
	va_end(ap);
	if (r < 0)
		raw[0] = 0;
	escape(msg, sizeof msg, raw);
	if (limit_pass(level, who, fmt, msg))
		emit(level, who, msg);
	errno = saved;
}
