/*
 * status.c: the status report: every running pool with its state, since
 * when, its counts and its recent worker exits, and a row per worker id,
 * sorted: a worker with its pid, state, uptime, restarts, memory and CPU
 * (from its cgroup), its load reports (busy or idle, requests), last
 * STATUS= or how it last ended, and the ids the
 * pool wants that have no worker (waiting out a backoff, failed), with
 * how their last worker ended; as JSON for corralctl --json and plugins,
 * or as the table corralctl prints. Moments are given as UTC and on the
 * monotonic clock; exits as objects in JSON, as the log says them in the
 * table.
 * It only reads the supervisor's state, and checks it against the
 * processes: a worker that died while its prototype (which reaps it and
 * reports its exit) is stopped is shown as exited, not ready, and the
 * prototype as not answering. What workers wrote (STATUS=) is escaped in
 * the table: it may be printed on an operator's terminal.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "json.h"
#include "layout.h"
#include "notes.h"
#include "notify.h"
#include "pool.h"
#include "proto.h"
#include "status.h"
#include "supervisor.h"
#include "text.h"

/* A spawn request unanswered this long: the prototype is not answering. */
#define PROTO_LATE 2.0

static const char *shown_state(const struct cr_pool *pool, unsigned ready, unsigned old)
{
	if (cr_sv.stopping)
		return "stopping";
	if (pool->state == POOL_STOPPED)
		return "stopped";
	if (pool->state == POOL_FAILED)
		return "failed";
	if (pool->freeze == FROZEN || pool->freeze == FREEZING)
		return "frozen";
	if (old)
		return "reloading";
	return ready >= pool->target ? "running" : "starting";
}

/* Seconds until the pool's next attempt, when it is waiting out its
 * backoff with workers or its prototype missing; -1 when it is not. */
static double restart_in(const struct cr_pool *pool, unsigned current, ev_tstamp now)
{
	if (cr_sv.stopping || pool->target == 0 || now >= pool->not_before ||
	    (pool->state != POOL_STARTING && pool->state != POOL_RUNNING) ||
	    (current >= pool->target && pool->proto))
		return -1;
	if (ev_is_active(&pool->retry))
		return ev_timer_remaining(cr_sv.loop, (ev_timer *)&pool->retry);
	return pool->not_before - now;
}

/* Its main process has exited, though corrald has not heard of it yet
 * (a pidfd is readable once its process is dead, reaped or not). */
static int exit_unreported(const struct cr_worker *w)
{
	struct pollfd p = { .fd = w->pidfd, .events = POLLIN };

	return w->state != W_GONE && w->pid > 0 && w->pidfd >= 0 && poll(&p, 1, 0) == 1;
}

/* The state letter of /proc/PID/stat ('R', 'S', 'T', 'Z', ...), or 0. */
static char proc_state(pid_t pid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')');	/* after the name, which may hold anything */
	return p && p[1] == ' ' ? p[2] : 0;
}

/* The pool's prototype: "starting", "running", "stopping", or what keeps
 * it from answering ("stopped", "exited", "not answering"), with why for
 * the table; NULL when there is none. */
static const char *proto_shown(const struct cr_proto *p, ev_tstamp now, char *why, size_t n)
{
	char st;

	*why = 0;
	if (!p)
		return NULL;
	st = proc_state(p->pid);
	if (st == 'T' || st == 't') {
		snprintf(why, n, "stopped (SIGSTOP or a debugger): no worker is started, no exit reported");
		return "stopped";
	}
	if (p->state == CR_PROTO_GONE)
		return "stopping";
	if (st == 'Z' || st == 'X') {
		snprintf(why, n, "exited, not reaped yet");
		return "exited";
	}
	if (p->state == CR_PROTO_STARTING)
		return "starting";
	if (p->inflight > 0 && now - p->waiting_since >= PROTO_LATE) {
		char d[32];
		cr_text_duration(d, sizeof d, now - p->waiting_since);
		snprintf(why, n, "%u worker%s asked of it, no answer for %s", p->inflight,
			 p->inflight == 1 ? "" : "s", d);
		return "not answering";
	}
	return "running";
}

/* Text that may come from a worker, escaped for the table. */
static void add_escaped(struct cr_buf *b, const char *s)
{
	char *e = cr_text_escape_dup(s, 0);

	if (!e) {
		b->failed = 1;
		return;
	}
	cr_buf_add(b, e, strlen(e));
	free(e);
}

static void json_stat(struct cr_buf *b, const char *key, long long v)
{
	if (v < 0)
		cr_buf_printf(b, ",\"%s\":null", key);
	else
		cr_buf_printf(b, ",\"%s\":%lld", key, v);
}

static void json_or_null(struct cr_buf *b, const char *s)
{
	if (s)
		cr_buf_json_string(b, s);
	else
		cr_buf_lit(b, "null");
}

/* ---- moments and exits ---------------------------------------------------- */

/* The wall clock part of a stamp, in UTC, as fmt (strftime) says. */
static void stamp_utc(char *buf, size_t n, const struct cr_stamp *s, const char *fmt)
{
	time_t t = (time_t)s->wall;
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, n, fmt, &tm))
		snprintf(buf, n, "?");
}

/* {"iso":"2026-12-05T13:45:01.123Z","mono":1234.567}, or null for never. */
static void stamp_json(struct cr_buf *b, const struct cr_stamp *s)
{
	char iso[40];
	int ms;

	if (!s->wall) {
		cr_buf_lit(b, "null");
		return;
	}
	stamp_utc(iso, sizeof iso, s, "%Y-%m-%dT%H:%M:%S");
	ms = (int)((s->wall - (double)(time_t)s->wall) * 1000);
	cr_buf_printf(b, "{\"iso\":\"%s.%03dZ\",\"mono\":%.3f}", iso, ms > 999 ? 999 : ms, s->mono);
}

/* "3h 2min", as systemctl says how long ago. */
static void ago(char *buf, size_t n, double s)
{
	long long t = (long long)(s < 0 ? 0 : s);

	if (s < 1)
		snprintf(buf, n, "%.0fms", s < 0 ? 0 : s * 1e3);
	else if (t < 60)
		snprintf(buf, n, "%llds", t);
	else if (t < 3600)
		snprintf(buf, n, "%lldmin %llds", t / 60, t % 60);
	else if (t < 86400)
		snprintf(buf, n, "%lldh %lldmin", t / 3600, t % 3600 / 60);
	else
		snprintf(buf, n, "%lldd %lldh", t / 86400, t % 86400 / 3600);
}

static double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The members of an exit object, without its braces: "code" or "signal"
 * (with "name" and "core") or "unknown", then "oom", "reason", the failed
 * start "step" and its "error" when it failed before it ran, and "at". */
static void exit_members(struct cr_buf *b, const struct cr_exit *ex)
{
	if (ex->unknown) {
		cr_buf_lit(b, "\"unknown\":");
		cr_buf_json_string(b, ex->unknown);
	} else if (ex->signal) {
		cr_buf_printf(b, "\"signal\":%d,\"name\":", ex->signal);
		json_or_null(b, sigabbrev_np(ex->signal));
		cr_buf_printf(b, ",\"core\":%s", ex->core ? "true" : "false");
	} else {
		cr_buf_printf(b, "\"code\":%d", ex->code);
	}
	cr_buf_printf(b, ",\"oom\":%s,\"reason\":", ex->oom ? "true" : "false");
	json_or_null(b, ex->reason);
	if (ex->step) {
		cr_buf_lit(b, ",\"step\":");
		cr_buf_json_string(b, ex->step);
		cr_buf_lit(b, ",\"error\":");
		json_or_null(b, ex->err > 0 ? strerror(ex->err) : NULL);
	}
	cr_buf_lit(b, ",\"at\":");
	stamp_json(b, &ex->at);
}

static void exit_json(struct cr_buf *b, const struct cr_slot *slot)
{
	if (!slot || !slot->exit.at.wall) {
		cr_buf_lit(b, "null");
		return;
	}
	cr_buf_lit(b, "{");
	exit_members(b, &slot->exit);
	cr_buf_lit(b, "}");
}

/* How the last worker of an id ended, for the table: "crashed: exited
 * with status 127 (unable to exec: No such file or directory)". */
static void exit_text(struct cr_buf *b, const struct cr_slot *slot)
{
	const struct cr_exit *ex = &slot->exit;

	if (ex->reason)
		cr_buf_printf(b, "%s: ", ex->reason);
	add_escaped(b, slot->last_exit);
	if (ex->step)
		cr_buf_printf(b, " (unable to %s%s%s)", ex->step, ex->err > 0 ? ": " : "",
			      ex->err > 0 ? strerror(ex->err) : "");
}

/* A recent exit, short: "13:45:01 web/2 crashed (signal KILL)". */
static void recent_text(struct cr_buf *b, const struct cr_pool *pool, const struct cr_recent *r)
{
	const struct cr_exit *ex = &r->exit;
	char t[16];

	stamp_utc(t, sizeof t, &ex->at, "%H:%M:%S");
	cr_buf_printf(b, "%s %s/%u %s (", t, pool->name, r->id, ex->reason ? ex->reason : "exited");
	if (ex->unknown)
		cr_buf_lit(b, "status unknown");
	else if (ex->signal)
		cr_buf_printf(b, "signal %s", sigabbrev_np(ex->signal) ? sigabbrev_np(ex->signal) : "?");
	else
		cr_buf_printf(b, "status %d", ex->code);
	if (ex->step)
		cr_buf_printf(b, ", unable to %s", ex->step);
	cr_buf_lit(b, ")");
}

/* ---- rows: a worker, or an id the pool wants that has none ---------------- */

struct row {
	unsigned id;
	struct cr_worker *w;	/* NULL: a vacant id */
	int dead;		/* a worker whose exit is not reported yet */
	long long mem, cpu;	/* memory.current, usage_usec; -1: unknown */
};

static int row_cmp(const void *a, const void *b)
{
	const struct row *x = a, *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	if (!x->w || !y->w)
		return !x->w - !y->w;
	return x->w->serial < y->w->serial ? -1 : x->w->serial > y->w->serial;
}

/* Whether the pool wants workers now: its vacant ids are then shown. */
static int wants_workers(const struct cr_pool *pool)
{
	return !cr_sv.stopping && pool->target > 0 &&
	       (pool->state == POOL_STARTING || pool->state == POOL_RUNNING || pool->state == POOL_FAILED);
}

/* Which workers' exits are unreported: one poll of all their pidfds
 * (a poll each, when that fails). */
static void find_dead(struct row *rows, size_t n)
{
	struct pollfd *p = calloc(n + 1, sizeof *p);

	for (size_t i = 0; p && i < n; i++) {
		const struct cr_worker *w = rows[i].w;
		p[i].fd = w && w->state != W_GONE && w->pid > 0 && w->pidfd >= 0 ? w->pidfd : -1;
		p[i].events = POLLIN;
	}
	if (p && poll(p, n, 0) >= 0) {
		for (size_t i = 0; i < n; i++)
			rows[i].dead = p[i].fd >= 0 && (p[i].revents & POLLIN);
	} else {
		for (size_t i = 0; i < n; i++)
			rows[i].dead = rows[i].w && exit_unreported(rows[i].w);
	}
	free(p);
}

/* What each worker's cgroup says: memory (where the pool's cgroup gives
 * its workers the memory controller), relative to the pool's cgroup, and
 * CPU from the cpu.stat the worker keeps open (worker.c). */
static void read_usage(const struct cr_pool *pool, struct row *rows, size_t n)
{
	char dir[PATH_MAX], sub[16];
	unsigned want;
	int fd = -1;

	if (cr_layout_pool_dir(dir, sizeof dir, pool->name) == 0)
		fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	want = fd < 0 ? 0 : cr_cgroup_stats_enabled(fd, ".", "cgroup.subtree_control") & (CR_STAT_CPU | CR_STAT_MEMORY);
	for (size_t i = 0; i < n; i++) {
		struct cr_cgroup_stats st = { -1, -1, -1, -1, -1, -1, -1 };
		struct cr_worker *w = rows[i].w;
		if (w && want) {
			snprintf(sub, sizeof sub, "%u", rows[i].id);
			cr_cgroup_stats_at(fd, sub, want & CR_STAT_MEMORY, &st);
			if (w->cpufd >= 0 && (want & CR_STAT_CPU))
				st.cpu_usage_usec = cr_cgroup_cpu_usage_fd(w->cpufd);
		}
		rows[i].mem = st.memory_current;
		rows[i].cpu = st.cpu_usage_usec;
	}
	if (fd >= 0)
		close(fd);
}

/* Every worker of the pool, and the ids 1..target that no worker holds
 * while it wants them, sorted by id, with what each worker's process and
 * cgroup say: a new array (free it), or NULL and b failed when out of
 * memory. */
static struct row *pool_rows(const struct cr_pool *pool, struct cr_buf *b, size_t *n)
{
	unsigned vacant = wants_workers(pool) ? pool->target : 0;
	struct row *rows = malloc((pool->nworkers + vacant + 1) * sizeof *rows);
	unsigned char *held = calloc(vacant + 1, 1);
	struct cr_worker *w;

	*n = 0;
	if (!rows || !held) {
		free(rows);
		free(held);
		b->failed = 1;
		return NULL;
	}
	TAILQ_FOREACH(w, &pool->workers, link) {
		rows[(*n)++] = (struct row){ .id = w->id, .w = w };
		if (w->id <= vacant)
			held[w->id] = 1;
	}
	for (unsigned id = 1; id <= vacant; id++)
		if (!held[id])
			rows[(*n)++] = (struct row){ .id = id, .mem = -1, .cpu = -1 };
	free(held);
	qsort(rows, *n, sizeof *rows, row_cmp);
	find_dead(rows, *n);
	read_usage(pool, rows, *n);
	return rows;
}

/* What a vacant id waits for. */
static const char *vacant_state(const struct cr_pool *pool, const struct cr_slot *slot, double wait)
{
	if (pool->state == POOL_FAILED)
		return "failed";
	if (slot && slot->retired)
		return "retired";
	return wait >= 0 ? "backoff" : "waiting";
}

/* ---- one pool ---------------------------------------------------------------- */

struct pool_view {
	unsigned ready, total, old, current;
	double wait;			/* restart_in, or -1 */
	const char *state, *pstate;	/* shown; the prototype's */
	char pwhy[160];
	struct cr_cgroup_stats st;
	int populated;
};

static void pool_view(struct cr_pool *pool, const struct row *rows, size_t nrows, ev_tstamp now,
		      struct pool_view *v)
{
	char dir[PATH_MAX];

	memset(v, 0, sizeof *v);
	v->st = (struct cr_cgroup_stats){ -1, -1, -1, -1, -1, -1, -1 };
	v->populated = -1;
	v->pstate = proto_shown(pool->proto, now, v->pwhy, sizeof v->pwhy);
	for (size_t i = 0; i < nrows; i++) {
		const struct cr_worker *w = rows[i].w;
		if (!w || w->state >= W_STOPPING || rows[i].dead)
			continue;
		v->total++;
		v->ready += w->state == W_READY;
		/* generation 0: one worker being replaced, not a reload */
		v->old += w->generation != pool->generation && w->generation != 0;
	}
	v->current = v->total - v->old;
	v->wait = restart_in(pool, v->current, now);
	v->state = shown_state(pool, v->ready, v->old);
	if (cr_layout_pool_dir(dir, sizeof dir, pool->name) == 0) {
		int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			unsigned want = cr_cgroup_stats_enabled(fd, ".", "cgroup.controllers");
			cr_cgroup_stats_at(fd, ".", want & (CR_STAT_CPU | CR_STAT_MEMORY), &v->st);
			close(fd);
		}
		v->populated = cr_cgroup_populated(dir);
	}
}

/* ---- load reports -------------------------------------------------------- */

static const char *load_name(int load)
{
	return load == CR_LOAD_BUSY ? "busy" : load == CR_LOAD_IDLE ? "idle" : NULL;
}

/* ,"key":seconds since then, or null for never */
static void json_ago(struct cr_buf *b, const char *key, ev_tstamp then, ev_tstamp now)
{
	if (then > 0)
		cr_buf_printf(b, ",\"%s\":%.3f", key, now > then ? now - then : 0);
	else
		cr_buf_printf(b, ",\"%s\":null", key);
}

/* "load":"busy"|"idle"|null, "load_for", "requests", "last_request_ago" */
static void worker_load_json(struct cr_buf *b, const struct cr_worker *w, ev_tstamp now)
{
	cr_buf_lit(b, ",\"load\":");
	json_or_null(b, load_name(w->load));
	json_ago(b, "load_for", w->load ? w->load_since : 0, now);
	cr_buf_printf(b, ",\"requests\":%llu", (unsigned long long)w->requests);
	json_ago(b, "last_request_ago", w->last_request, now);
}

/* "busy 3s, 120 requests; " before a worker's STATUS, once it reported */
static void worker_load_text(struct cr_buf *b, const struct cr_worker *w, ev_tstamp now)
{
	char d[32];

	if (!w->load && !w->last_request)
		return;
	if (w->load) {
		cr_text_duration(d, sizeof d, now - w->load_since);
		cr_buf_printf(b, "%s %s, ", load_name(w->load), d);
	}
	cr_buf_printf(b, "%llu request%s; ", (unsigned long long)w->requests, w->requests == 1 ? "" : "s");
}

int cr_status_load(const char *name, unsigned id, struct cr_load *out)
{
	struct cr_pool *pool = cr_supervisor_pool(name);
	const struct cr_worker *w;
	ev_tstamp now = ev_now(cr_sv.loop), last;

	if (!pool)
		return -ENOENT;
	memset(out, 0, sizeof *out);
	if (!id) {
		out->busy = pool->busy;
		out->idle = pool->idle;
		out->requests = pool->requests;
		last = pool->last_request;
	} else {
		if (!(w = cr_pool_worker(pool, id)) || w->state == W_GONE)
			return -ESRCH;
		out->load = load_name(w->load);
		out->load_for = w->load ? now - w->load_since : -1;
		out->requests = w->requests;
		last = w->last_request;
	}
	out->last_request_ago = last > 0 ? now - last : -1;
	return 0;
}

static void worker_json(struct cr_buf *b, struct cr_pool *pool, const struct row *r, ev_tstamp now)
{
	struct cr_worker *w = r->w;
	struct cr_slot *slot = cr_pool_slot(pool, w->id);
	const char *state = r->dead ? cr_worker_state_name(W_GONE) : cr_worker_state_name(w->state);

	cr_buf_printf(b, "{\"id\":%u,\"pid\":%d,\"state\":\"%s\",\"generation\":%u,"
		      "\"uptime\":%.3f,\"restarts\":%u,\"last_exit\":",
		      w->id, (int)w->pid, state, w->generation,
		      w->pid > 0 ? now - w->started : 0, slot ? slot->restarts : 0);
	exit_json(b, slot);
	cr_buf_lit(b, ",\"status\":");
	json_or_null(b, w->status);
	json_stat(b, "memory_current", r->mem);
	json_stat(b, "cpu_usage_usec", r->cpu);
	worker_load_json(b, w, now);
	cr_buf_lit(b, ",\"replacing\":");
	json_or_null(b, w->state < W_STOPPING ? w->replace_reason : NULL);
	cr_notes_json(b, w->notes);
	cr_buf_lit(b, "}");
}

static void pool_json(struct cr_buf *b, struct cr_pool *pool, const struct pool_view *v,
		      const struct row *rows, size_t nrows, ev_tstamp now)
{
	int first = 1;

	cr_buf_lit(b, "{\"name\":");
	cr_buf_json_string(b, pool->name);
	cr_buf_printf(b, ",\"state\":\"%s\",\"since\":", v->state);
	stamp_json(b, &pool->since);
	cr_buf_printf(b, ",\"ready\":%u,\"total\":%u,\"target\":%u,\"restarts\":%u,\"generation\":%u",
		      v->ready, v->total, pool->target, pool->restarts, pool->generation);
	cr_buf_printf(b, ",\"start_failures\":%u", pool->start_failures);
	if (v->wait >= 0)
		cr_buf_printf(b, ",\"restart_in\":%.3f", v->wait);
	else
		cr_buf_lit(b, ",\"restart_in\":null");
	cr_buf_lit(b, ",\"failure\":");
	json_or_null(b, pool->state == POOL_FAILED && pool->failure[0] ? pool->failure : NULL);
	cr_buf_lit(b, ",\"last_failure\":");
	json_or_null(b, pool->last_failure[0] ? pool->last_failure : NULL);
	json_stat(b, "memory_current", v->st.memory_current);
	json_stat(b, "cpu_usage_usec", v->st.cpu_usage_usec);
	/* a retired prototype, or what a worker left, may outlive the
	 * workers list: corralctl stop waits for this */
	cr_buf_printf(b, ",\"busy\":%u,\"idle\":%u,\"requests\":%llu", pool->busy, pool->idle,
		      (unsigned long long)pool->requests);
	json_ago(b, "last_request_ago", pool->last_request, now);
	cr_buf_printf(b, ",\"populated\":%s", v->populated < 0 ? "null" : v->populated ? "true" : "false");
	cr_notes_json(b, pool->notes);
	if (v->pstate)
		cr_buf_printf(b, ",\"prototype\":{\"pid\":%d,\"state\":\"%s\"}", (int)pool->proto->pid, v->pstate);
	else
		cr_buf_lit(b, ",\"prototype\":null");
	cr_buf_lit(b, ",\"recent_exits\":[");
	for (unsigned i = 0; i < pool->nrecent; i++) {
		const struct cr_recent *r = &pool->recent[(pool->recent_next + CR_RECENT - pool->nrecent + i) % CR_RECENT];
		cr_buf_printf(b, "%s{\"id\":%u,", i ? "," : "", r->id);
		exit_members(b, &r->exit);
		cr_buf_lit(b, "}");
	}
	cr_buf_lit(b, "],\"vacant\":[");
	for (size_t i = 0; i < nrows; i++) {
		struct cr_slot *slot;
		if (rows[i].w)
			continue;
		slot = cr_pool_slot(pool, rows[i].id);
		cr_buf_printf(b, "%s{\"id\":%u,\"state\":\"%s\",\"restarts\":%u,\"restart_in\":", first ? "" : ",",
			      rows[i].id, vacant_state(pool, slot, v->wait), slot ? slot->restarts : 0);
		first = 0;
		if (v->wait >= 0 && pool->state != POOL_FAILED)
			cr_buf_printf(b, "%.3f", v->wait);
		else
			cr_buf_lit(b, "null");
		cr_buf_lit(b, ",\"last_exit\":");
		exit_json(b, slot);
		cr_buf_lit(b, "}");
	}
	/* workers last: the shell completions take the ids after it */
	cr_buf_lit(b, "],\"workers\":[");
	first = 1;
	for (size_t i = 0; i < nrows; i++) {
		if (!rows[i].w)
			continue;
		if (!first)
			cr_buf_lit(b, ",");
		first = 0;
		worker_json(b, pool, &rows[i], now);
	}
	cr_buf_lit(b, "]}");
}

/* Ends a table row: no trailing blanks (an empty STATUS column). */
static void end_row(struct cr_buf *b)
{
	while (b->data && b->len > 0 && b->data[b->len - 1] == ' ')
		b->len--;
	cr_buf_lit(b, "\n");
}

static void worker_text(struct cr_buf *b, struct cr_pool *pool, const struct pool_view *v,
			const struct row *r, ev_tstamp now)
{
	struct cr_worker *w = r->w;
	struct cr_slot *slot = cr_pool_slot(pool, w->id);
	char upt[32], mem[16], cpu[24];
	int dead = r->dead;
	const char *state = dead ? cr_worker_state_name(W_GONE) : cr_worker_state_name(w->state);

	cr_text_duration(upt, sizeof upt, w->pid > 0 ? now - w->started : 0);
	cr_text_bytes(mem, sizeof mem, r->mem);
	if (r->cpu >= 0)
		snprintf(cpu, sizeof cpu, "%.2fs", (double)r->cpu / 1e6);
	else
		snprintf(cpu, sizeof cpu, "-");
	cr_buf_printf(b, "  %4u %8d %-9s %8s %8u %8s %9s  ", w->id, (int)w->pid, state, upt,
		      slot ? slot->restarts : 0, mem, cpu);
	if (dead)
		cr_buf_printf(b, "its exit is not reported yet%s",
			      w->proto && w->proto == pool->proto && v->pwhy[0] ? ": the prototype is not answering" : "");
	else {
		if (w->replace_reason && w->state < W_STOPPING)
			cr_buf_printf(b, "being replaced (%s); ", w->replace_reason);
		cr_notes_text(b, w->notes, "", "; ");
		worker_load_text(b, w, now);
		if (w->status || !slot || !slot->exit.at.wall)
			add_escaped(b, w->status ? w->status : "");
		else
			exit_text(b, slot);
	}
	end_row(b);
}

static void vacant_text(struct cr_buf *b, struct cr_pool *pool, const struct pool_view *v, unsigned id)
{
	struct cr_slot *slot = cr_pool_slot(pool, id);
	const char *state = vacant_state(pool, slot, v->wait);
	char d[32];

	cr_buf_printf(b, "  %4u %8s %-9s %8s %8u %8s %9s  ", id, "-", state, "-", slot ? slot->restarts : 0, "-", "-");
	if (!strcmp(state, "backoff")) {
		cr_text_duration(d, sizeof d, v->wait);
		cr_buf_printf(b, "restart in %s", d);
	} else if (!strcmp(state, "failed")) {
		cr_buf_lit(b, "not restarted: the pool failed");
	} else if (!strcmp(state, "retired")) {
		cr_buf_lit(b, "not restarted (restart policy)");
	} else {
		cr_buf_lit(b, "waiting to start");
	}
	if (slot && slot->exit.at.wall) {
		cr_buf_lit(b, "; last: ");
		exit_text(b, slot);
	}
	cr_buf_lit(b, "\n");
}

static void pool_text(struct cr_buf *b, struct cr_pool *pool, const struct pool_view *v,
		      const struct row *rows, size_t nrows, ev_tstamp now)
{
	char r[24], when[40], d[32];

	snprintf(r, sizeof r, "%u/%u", v->ready, pool->target);
	cr_buf_printf(b, "%-20s %-10s %7s %7u %6u %8u\n", pool->name, v->state, r, v->total, pool->target,
		      pool->restarts);
	stamp_utc(when, sizeof when, &pool->since, "%Y-%m-%d %H:%M:%S UTC");
	ago(d, sizeof d, mono_now() - pool->since.mono);
	cr_buf_printf(b, "  %s since %s; %s ago\n", v->state, when, d);
	if (pool->state == POOL_FAILED && pool->failure[0]) {
		cr_buf_lit(b, "  failed: ");
		add_escaped(b, pool->failure);
		cr_buf_lit(b, "\n");
	} else if (v->wait >= 0) {
		cr_text_duration(d, sizeof d, v->wait);
		cr_buf_printf(b, "  restart in %s (backoff after %u start failure%s in a row; last: ",
			      d, pool->streak, pool->streak == 1 ? "" : "s");
		add_escaped(b, pool->last_failure);
		cr_buf_lit(b, ")\n");
	}
	if (pool->busy || pool->idle || pool->last_request) {
		cr_buf_printf(b, "  load: %u busy, %u idle, %llu request%s", pool->busy, pool->idle,
			      (unsigned long long)pool->requests, pool->requests == 1 ? "" : "s");
		if (pool->last_request) {
			ago(d, sizeof d, now - pool->last_request);
			cr_buf_printf(b, ", the last %s ago", d);
		}
		cr_buf_lit(b, "\n");
	}
	if (v->pwhy[0])
		cr_buf_printf(b, "  prototype %d not answering: %s\n", (int)pool->proto->pid, v->pwhy);
	cr_notes_text(b, pool->notes, "  ", "\n");
	if (pool->nrecent) {
		unsigned show = pool->nrecent < 3 ? pool->nrecent : 3;
		cr_buf_lit(b, "  recent: ");
		for (unsigned i = 0; i < show; i++) {
			unsigned at = (pool->recent_next + CR_RECENT - show + i) % CR_RECENT;
			if (i)
				cr_buf_lit(b, "; ");
			recent_text(b, pool, &pool->recent[at]);
		}
		cr_buf_lit(b, "\n");
	}
	cr_buf_printf(b, "  %4s %8s %-9s %8s %8s %8s %9s  %s\n", "ID", "PID", "STATE",
		      "UPTIME", "RESTARTS", "MEMORY", "CPU", "STATUS / LAST EXIT");
	for (size_t i = 0; i < nrows; i++) {
		if (rows[i].w)
			worker_text(b, pool, v, &rows[i], now);
		else
			vacant_text(b, pool, v, rows[i].id);
	}
}

int cr_status_reports(struct cr_buf *json, struct cr_buf *text, const char *only)
{
	struct cr_pool *pool;
	int first = 1, found = 0;
	ev_tstamp now = ev_now(cr_sv.loop);

	if (only && !cr_supervisor_pool(only))
		return -ENOENT;
	if (json)
		cr_buf_lit(json, "[");
	if (text)
		cr_buf_printf(text, "%-20s %-10s %7s %7s %6s %8s\n", "POOL", "STATE", "READY", "WORKERS", "TARGET",
			      "RESTARTS");
	TAILQ_FOREACH(pool, &cr_sv.pools, link) {
		struct pool_view v;
		struct row *rows;
		size_t nrows;

		if (pool->state == POOL_REMOVED || (only && strcmp(only, pool->name)))
			continue;
		found = 1;
		if (!(rows = pool_rows(pool, json ? json : text, &nrows)))
			break;
		pool_view(pool, rows, nrows, now, &v);
		if (json) {
			if (!first)
				cr_buf_lit(json, ",");
			first = 0;
			pool_json(json, pool, &v, rows, nrows, now);
		}
		if (text)
			pool_text(text, pool, &v, rows, nrows, now);
		free(rows);
	}
	if (json)
		cr_buf_lit(json, "]");
	if (text && !found)
		cr_buf_printf(text, "(no pools)\n");
	return 0;
}

int cr_status_report(struct cr_buf *b, const char *only, int json)
{
	return cr_status_reports(json ? b : NULL, json ? NULL : b, only);
}
