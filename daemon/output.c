/*
 * output.c: workers' stdout and stderr, pumped through corrald. For a
 * pool whose output is "inherit" (or "auto" outside systemd) or a file,
 * the prototype gives each worker a pipe as stdout and stderr and hands
 * its read end to corrald, which reads it here and writes whole lines:
 *
 *   inherit: to corrald's stderr, as "TIME pool/id | line", the line's
 *            control characters escaped (tab kept), so that a worker's
 *            traceback is told from corrald's lines and cannot move the
 *            operator's cursor;
 *   a file:  the lines as they are, appended to the file, which corrald
 *            opens (as root, no symlink, no hard link) and opens again
 *            on SIGUSR1, for logrotate.
 *
 * A line is cut at LINE_CAP bytes, and what is left at EOF is a line.
 * corrald never blocks: its stderr is written through a non-blocking
 * description of its own (log.c); what it does not take is queued, up to
 * QUEUE_MAX, and past that the pipes are not read until it drains (the
 * workers wait, as they would on a terminal). A pipe is read until EOF;
 * once its worker's record is gone, LINGER seconds more at most (a
 * process that kept it open).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "output.h"
#include "text.h"

#define LINE_CAP 4096		/* a longer line is cut into lines this long */
#define QUEUE_MAX (64 * 1024)	/* corrald's stderr lagging: stop reading */
#define LINGER 5.0		/* a pipe read after its worker's record went */
#define DRAIN_MAX (256 * 1024)	/* read at most this at the end */

struct sink {			/* an output file, shared by its readers */
	LIST_ENTRY(sink) link;
	char *path;
	int fd;			/* -1: not open yet, or it could not be */
	int failed;		/* the open failed: lines dropped until SIGUSR1 */
	int dropping;		/* a write failed; said once */
	unsigned refs;
	unsigned long long dropped;	/* bytes */
};

struct cr_output {
	LIST_ENTRY(cr_output) link;
	int fd;			/* the pipe; -1 after EOF */
	ev_io io;
	ev_timer linger;
	int detached;		/* its worker's record is gone */
	int paused;		/* corrald's stderr is full */
	struct sink *sink;	/* NULL: corrald's stderr */
	char who[96];		/* "pool/id" */
	size_t len;		/* of a line begun, not yet ended: */
	char *part;		/* its bytes (malloc'd only while there are
				 * any: most workers have none, most of the time) */
};

static struct {
	struct ev_loop *loop;
	LIST_HEAD(, cr_output) readers;
	LIST_HEAD(, sink) sinks;
	ev_signal usr1;
	int wfd, sock;		/* corrald's stderr; whether a socket */
	ev_io wio;		/* while it does not take the queue */
	char rbuf[LINE_CAP];	/* the reader at work: its line begun, then what it read */
	char *q;
	size_t qlen, qcap;
	unsigned long long dropped;	/* bytes stderr refused for good */
} O = { .wfd = -1 };

enum cr_output_kind cr_output_kind(const struct cr_pool_conf *pc)
{
	const char *out = pc->output;

	if (!strcmp(out, "auto"))
		out = cr_log_journal ? "journal" : "inherit";
	if (!strcmp(out, "inherit"))
		return CR_OUTPUT_TERMINAL;
	if (!strcmp(out, "journal") || !strcmp(out, "null"))
		return CR_OUTPUT_DIRECT;
	return CR_OUTPUT_FILE;
}

int cr_output_open_file(const char *path)
{
	struct stat st;
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0640);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
		close(fd);
		return -EMLINK;
	}
	return fd;
}

/* ---- output files ---------------------------------------------------------- */

static struct sink *sink_ref(const char *path)
{
	struct sink *s;

	LIST_FOREACH(s, &O.sinks, link)
		if (!strcmp(s->path, path)) {
			s->refs++;
			return s;
		}
	if (!(s = calloc(1, sizeof *s)) || !(s->path = strdup(path))) {
		free(s);
		return NULL;
	}
	s->fd = -1;
	s->refs = 1;
	LIST_INSERT_HEAD(&O.sinks, s, link);
	return s;
}

static void sink_unref(struct sink *s)
{
	if (!s || --s->refs)
		return;
	if (s->dropped)
		cr_warn(NULL, "output %s: %llu bytes of workers' output dropped", s->path, s->dropped);
	if (s->fd >= 0)
		close(s->fd);
	LIST_REMOVE(s, link);
	free(s->path);
	free(s);
}

/* Opened when the first line comes: a worker that fails its own check
 * of the file (spawn.c) writes none, and corrald does not open it. */
static int sink_fd(struct sink *s)
{
	int fd;

	if (s->fd < 0 && !s->failed) {
		if ((fd = cr_output_open_file(s->path)) < 0) {
			s->failed = 1;
			cr_error(NULL, "output: unable to open %s: %s; workers' lines for it are dropped "
				 "until it can be (SIGUSR1 tries again)", s->path, strerror(-fd));
		}
		s->fd = fd < 0 ? -1 : fd;
	}
	return s->fd;
}

static void sink_write(struct sink *s, const char *buf, size_t n, int newline)
{
	struct iovec iov[2] = { { (void *)buf, n }, { "\n", 1 } };
	int fd = sink_fd(s);
	ssize_t w = -1;

	if (fd >= 0)
		while ((w = writev(fd, iov, newline ? 2 : 1)) < 0 && errno == EINTR)
			;
	if (w == (ssize_t)(n + (newline ? 1 : 0))) {
		s->dropping = 0;
		return;
	}
	s->dropped += n + (newline ? 1 : 0) - (w > 0 ? (size_t)w : 0);
	if (fd >= 0 && !s->dropping) {
		s->dropping = 1;
		cr_error(NULL, "output: unable to write to %s: %s; dropping lines", s->path,
			 w < 0 ? strerror(errno) : "a short write");
	}
}

int cr_output_reopen(void)
{
	struct sink *s;
	int n = 0, fd;

	LIST_FOREACH(s, &O.sinks, link) {
		if ((fd = cr_output_open_file(s->path)) < 0) {
			cr_error(NULL, "output: unable to reopen %s: %s", s->path, strerror(-fd));
			continue;
		}
		if (s->fd >= 0)
			close(s->fd);
		s->fd = fd;
		s->failed = s->dropping = 0;
		n++;
	}
	cr_info(NULL, "reopened %d output file%s", n, n == 1 ? "" : "s");
	return n;
}

static void usr1_cb(struct ev_loop *loop, ev_signal *sig, int revents)
{
	(void)loop;
	(void)sig;
	(void)revents;
	cr_output_reopen();
}

/* ---- corrald's stderr -------------------------------------------------------- */

static void reader_resume(void);

static ssize_t out_write(const char *buf, size_t n)
{
	ssize_t w;

	do
		w = O.sock ? send(O.wfd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL) : write(O.wfd, buf, n);
	while (w < 0 && errno == EINTR);
	return w;
}

/* Writes what is queued, at most PIPE_BUF at once and ending with a
 * line: a pipe takes that whole or not at all, so corrald's own lines
 * (log.c, the same pipe) never land inside one. */
static void queue_flush(void)
{
	while (O.qlen) {
		size_t n = O.qlen < PIPE_BUF ? O.qlen : PIPE_BUF;
		const char *nl = memrchr(O.q, '\n', n);
		ssize_t w;

		if (n < O.qlen)
			n = nl ? (size_t)(nl - O.q) + 1 : (size_t)((char *)memchr(O.q, '\n', O.qlen) - O.q) + 1;
		w = out_write(O.q, n);
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ev_io_start(O.loop, &O.wio);
			return;
		}
		if (w <= 0) {	/* stderr is gone: nothing more can go there */
			O.dropped += O.qlen;
			O.qlen = 0;
			break;
		}
		memmove(O.q, O.q + w, O.qlen - (size_t)w);
		O.qlen -= (size_t)w;
	}
	ev_io_stop(O.loop, &O.wio);
	reader_resume();
}

static void wio_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)loop;
	(void)io;
	(void)revents;
	queue_flush();
}

static void queue_add(const char *s, size_t n)
{
	if (O.qlen + n > O.qcap) {
		size_t cap = O.qcap ? O.qcap : 8192;
		char *q;
		while (cap < O.qlen + n)
			cap *= 2;
		if (!(q = realloc(O.q, cap))) {
			O.dropped += n;
			return;
		}
		O.q = q;
		O.qcap = cap;
	}
	memcpy(O.q + O.qlen, s, n);
	O.qlen += n;
}

/* "TIME pool/id | line", the line's control characters escaped (a NUL
 * too: it would end the string to escape). */
static void terminal_line(const struct cr_output *o, const char *stamp, const char *s, size_t n)
{
	static char raw[LINE_CAP + 1], esc[LINE_CAP * 6 + 256];
	size_t k, room = sizeof esc - 2;

	k = (size_t)snprintf(esc, room, "%s %s | ", stamp, o->who);
	while (n && k < room) {
		size_t seg = strnlen(s, n);
		memcpy(raw, s, seg);
		raw[seg] = 0;
		k += cr_text_escape(esc + k, room - k, raw, CR_TEXT_KEEP_TAB);
		if (k >= room)
			k = room - 1;
		if (seg < n && k + 4 < room) {
			memcpy(esc + k, "\\x00", 4);
			k += 4;
			seg++;
		}
		s += seg;
		n -= seg;
	}
	esc[k++] = '\n';
	queue_add(esc, k);
}

/* ---- the pipes ------------------------------------------------------------------ */

static void reader_free(struct cr_output *o)
{
	ev_io_stop(O.loop, &o->io);
	ev_timer_stop(O.loop, &o->linger);
	if (o->fd >= 0)
		close(o->fd);
	sink_unref(o->sink);
	LIST_REMOVE(o, link);
	free(o->part);
	free(o);
}

/* The whole lines in O.rbuf (o->len bytes) go out; with final (EOF) or
 * a full buffer, what is left too, as a line. What is left stays at the
 * start of O.rbuf. */
static void deliver(struct cr_output *o, int final)
{
	char stamp[40], *b = O.rbuf;
	size_t start = 0;
	char *nl;

	if (!o->len)
		return;
	if (o->sink) {
		nl = memrchr(b, '\n', o->len);
		start = nl ? (size_t)(nl - b) + 1 : 0;
		if (start)
			sink_write(o->sink, b, start, 0);
		if (start < o->len && (final || (start == 0 && o->len == LINE_CAP))) {
			sink_write(o->sink, b + start, o->len - start, 1);
			start = o->len;
		}
	} else {
		cr_log_stamp(stamp, sizeof stamp);
		while ((nl = memchr(b + start, '\n', o->len - start))) {
			terminal_line(o, stamp, b + start, (size_t)(nl - b) - start);
			start = (size_t)(nl - b) + 1;
		}
		if (start < o->len && (final || (start == 0 && o->len == LINE_CAP))) {
			terminal_line(o, stamp, b + start, o->len - start);
			start = o->len;
		}
		queue_flush();
	}
	memmove(b, b + start, o->len - start);
	o->len -= start;
}

/* The line begun into O.rbuf, to read or deliver after it. */
static void part_load(struct cr_output *o)
{
	if (o->len)
		memcpy(O.rbuf, o->part, o->len);
}

/* What is left in O.rbuf back into the reader's own. Out of memory, the
 * begun line goes out as it is (a line cut in two, nothing lost). */
static void part_keep(struct cr_output *o)
{
	char *p;

	if (!o->len) {
		free(o->part);
		o->part = NULL;
		return;
	}
	if (!(p = realloc(o->part, o->len))) {
		deliver(o, 1);
		return;
	}
	memcpy(p, O.rbuf, o->len);
	o->part = p;
}

/* Reads once; 0 while the pipe may have more, -1 at EOF or an error. */
static int reader_read(struct cr_output *o)
{
	ssize_t n;

	part_load(o);
	n = read(o->fd, O.rbuf + o->len, LINE_CAP - o->len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 1;
	if (n <= 0)
		return -1;
	o->len += (size_t)n;
	deliver(o, 0);
	part_keep(o);
	return 0;
}

/* EOF: the last line out, the pipe closed; the record stays until its
 * worker's goes. */
static void reader_end(struct cr_output *o)
{
	part_load(o);
	deliver(o, 1);
	part_keep(o);
	ev_io_stop(O.loop, &o->io);
	close(o->fd);
	o->fd = -1;
	if (o->detached)
		reader_free(o);
}

/* What the pipe holds now, within a bound; then it is closed. */
static void reader_drain(struct cr_output *o)
{
	size_t got = 0;

	while (o->fd >= 0 && got < DRAIN_MAX && reader_read(o) == 0)
		got += LINE_CAP;
	if (o->fd >= 0)
		reader_end(o);
}

static void reader_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct cr_output *o = io->data;

	(void)loop;
	(void)revents;
	if (reader_read(o) < 0) {
		reader_end(o);
		return;
	}
	/* corrald's stderr lags: the workers wait until it drains */
	if (!o->sink && O.qlen >= QUEUE_MAX)
		LIST_FOREACH(o, &O.readers, link)
			if (!o->sink && o->fd >= 0 && !o->paused) {
				o->paused = 1;
				ev_io_stop(O.loop, &o->io);
			}
}

static void reader_resume(void)
{
	struct cr_output *o;

	if (O.qlen >= QUEUE_MAX / 2)
		return;
	LIST_FOREACH(o, &O.readers, link)
		if (o->paused) {
			o->paused = 0;
			if (o->fd >= 0)
				ev_io_start(O.loop, &o->io);
		}
}

static void linger_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct cr_output *o = t->data;

	(void)loop;
	(void)revents;
	reader_drain(o);	/* frees it: detached */
}

struct cr_output *cr_output_attach(int fd, const struct cr_pool_conf *pc, unsigned worker)
{
	enum cr_output_kind kind = cr_output_kind(pc);
	struct cr_output *o;

	if (kind == CR_OUTPUT_DIRECT || !O.loop || !(o = calloc(1, sizeof *o))) {
		close(fd);
		return NULL;
	}
	if (kind == CR_OUTPUT_FILE && !(o->sink = sink_ref(pc->output))) {
		free(o);
		close(fd);
		return NULL;
	}
	o->fd = fd;
	cr_text_escape(o->who, sizeof o->who - 12, pc->name, 0);
	snprintf(o->who + strlen(o->who), 12, "/%u", worker);
	ev_io_init(&o->io, reader_cb, fd, EV_READ);
	o->io.data = o;
	ev_timer_init(&o->linger, linger_cb, LINGER, 0);
	o->linger.data = o;
	LIST_INSERT_HEAD(&O.readers, o, link);
	if (!o->sink && O.qlen >= QUEUE_MAX)
		o->paused = 1;
	else
		ev_io_start(O.loop, &o->io);
	return o;
}

void cr_output_detach(struct cr_output *o)
{
	if (!o)
		return;
	o->detached = 1;
	if (o->fd < 0)
		reader_free(o);
	else
		ev_timer_start(O.loop, &o->linger);
}

/* ---- start and end ----------------------------------------------------------- */

void cr_output_init(struct ev_loop *loop)
{
	struct stat st;

	O.loop = loop;
	LIST_INIT(&O.readers);
	LIST_INIT(&O.sinks);
	O.wfd = cr_log_stderr_fd();
	O.sock = fstat(O.wfd, &st) == 0 && S_ISSOCK(st.st_mode);
	ev_io_init(&O.wio, wio_cb, O.wfd, EV_WRITE);
	ev_signal_init(&O.usr1, usr1_cb, SIGUSR1);
	ev_signal_start(loop, &O.usr1);
}

void cr_output_finish(void)
{
	if (!O.loop)
		return;
	while (!LIST_EMPTY(&O.readers)) {
		struct cr_output *o = LIST_FIRST(&O.readers);
		o->detached = 1;
		if (o->fd >= 0)
			reader_drain(o);
		else
			reader_free(o);
	}
	queue_flush();		/* once: what stderr does not take now is lost */
	if (O.qlen || O.dropped)
		cr_warn(NULL, "output: %llu bytes of workers' output could not be written to stderr",
			O.dropped + O.qlen);
	ev_io_stop(O.loop, &O.wio);
	ev_signal_stop(O.loop, &O.usr1);
	free(O.q);
	O.q = NULL;
	O.qlen = O.qcap = 0;
	O.loop = NULL;
}
