/*
 * status.c: the status report: every running pool with its state and
 * counts, and every worker with its pid, state, uptime, restarts, memory
 * and CPU (from its cgroup), last STATUS= or how it last ended; as JSON
 * for corralctl --json and plugins, or as the table corralctl prints.
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
#include <unistd.h>

#include "cgroup.h"
#include "json.h"
#include "layout.h"
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

/* status [POOL]: as JSON (the "pools" array of the response) or as the
 * table corralctl prints. -ENOENT for an unknown pool. */
int cr_status_report(struct cr_buf *b, const char *only, int json)
{
	struct cr_pool *pool;
	struct cr_worker *w;
	int first = 1, found = 0;
	ev_tstamp now = ev_now(cr_sv.loop);

	if (only && !cr_supervisor_pool(only))
		return -ENOENT;
	if (json)
		cr_buf_lit(b, "[");
	else
		cr_buf_printf(b, "%-20s %-10s %7s %7s %6s %8s\n", "POOL", "STATE", "READY", "WORKERS", "TARGET", "RESTARTS");
	TAILQ_FOREACH(pool, &cr_sv.pools, link) {
		unsigned ready = 0, total = 0, old = 0, current = 0;
		double wait;
		char dir[PATH_MAX], pwhy[160];
		struct cr_cgroup_stats st = { -1, -1, -1, -1, -1, -1, -1 };
		const char *pstate;
		int populated = -1;

		if (pool->state == POOL_REMOVED || (only && strcmp(only, pool->name)))
			continue;
		found = 1;
		pstate = proto_shown(pool->proto, now, pwhy, sizeof pwhy);
		TAILQ_FOREACH(w, &pool->workers, link) {
			if (w->state >= W_STOPPING || exit_unreported(w))
				continue;
			total++;
			ready += w->state == W_READY;
			old += w->generation != pool->generation;
		}
		current = total - old;
		wait = restart_in(pool, current, now);
		if (cr_layout_pool_dir(dir, sizeof dir, pool->name) == 0) {
			cr_cgroup_stats(dir, &st);
			populated = cr_cgroup_populated(dir);
		}
		if (json) {
			cr_buf_add(b, first ? "{" : ",{", first ? 1 : 2);
			first = 0;
			cr_buf_lit(b, "\"name\":");
			cr_buf_json_string(b, pool->name);
			cr_buf_printf(b, ",\"state\":\"%s\",\"ready\":%u,\"total\":%u,\"target\":%u,"
				      "\"restarts\":%u,\"generation\":%u",
				      shown_state(pool, ready, old), ready, total, pool->target,
				      pool->restarts, pool->generation);
			cr_buf_printf(b, ",\"start_failures\":%u", pool->start_failures);
			if (wait >= 0)
				cr_buf_printf(b, ",\"restart_in\":%.3f", wait);
			else
				cr_buf_lit(b, ",\"restart_in\":null");
			cr_buf_lit(b, ",\"failure\":");
			if (pool->state == POOL_FAILED && pool->failure[0])
				cr_buf_json_string(b, pool->failure);
			else
				cr_buf_lit(b, "null");
			cr_buf_lit(b, ",\"last_failure\":");
			if (pool->last_failure[0])
				cr_buf_json_string(b, pool->last_failure);
			else
				cr_buf_lit(b, "null");
			json_stat(b, "memory_current", st.memory_current);
			json_stat(b, "cpu_usage_usec", st.cpu_usage_usec);
			/* a retired prototype, or what a worker left, may outlive
			 * the workers list: corralctl stop waits for this */
			cr_buf_printf(b, ",\"populated\":%s",
				      populated < 0 ? "null" : populated ? "true" : "false");
			if (pstate)
				cr_buf_printf(b, ",\"prototype\":{\"pid\":%d,\"state\":\"%s\"}",
					      (int)pool->proto->pid, pstate);
			else
				cr_buf_lit(b, ",\"prototype\":null");
			cr_buf_lit(b, ",\"workers\":[");
		} else {
			char r[24];
			snprintf(r, sizeof r, "%u/%u", ready, pool->target);
			cr_buf_printf(b, "%-20s %-10s %7s %7u %6u %8u\n", pool->name,
				      shown_state(pool, ready, old), r, total, pool->target, pool->restarts);
			if (pool->state == POOL_FAILED && pool->failure[0]) {
				cr_buf_lit(b, "  failed: ");
				add_escaped(b, pool->failure);
				cr_buf_lit(b, "\n");
			} else if (wait >= 0) {
				char d[32];
				cr_text_duration(d, sizeof d, wait);
				cr_buf_printf(b, "  restart in %s (backoff after %u start failure%s in a row; last: ",
					      d, pool->streak, pool->streak == 1 ? "" : "s");
				add_escaped(b, pool->last_failure);
				cr_buf_lit(b, ")\n");
			}
			if (pwhy[0])
				cr_buf_printf(b, "  prototype %d not answering: %s\n", (int)pool->proto->pid, pwhy);
			cr_buf_printf(b, "  %4s %8s %-9s %8s %8s %8s %9s  %s\n", "ID", "PID", "STATE",
				      "UPTIME", "RESTARTS", "MEMORY", "CPU", "STATUS / LAST EXIT");
		}
		int wfirst = 1;
		TAILQ_FOREACH(w, &pool->workers, link) {
			struct cr_slot *slot = cr_pool_slot(pool, w->id);
			struct cr_cgroup_stats ws = { -1, -1, -1, -1, -1, -1, -1 };
			double up = w->pid > 0 ? now - w->started : 0;
			int dead = exit_unreported(w);
			const char *state = dead ? cr_worker_state_name(W_GONE) : cr_worker_state_name(w->state);

			if (cr_worker_dir(w, dir, sizeof dir) == 0)
				cr_cgroup_stats(dir, &ws);
			if (json) {
				cr_buf_add(b, wfirst ? "{" : ",{", wfirst ? 1 : 2);
				wfirst = 0;
				cr_buf_printf(b, "\"id\":%u,\"pid\":%d,\"state\":\"%s\",\"generation\":%u,"
					      "\"uptime\":%.3f,\"restarts\":%u,\"last_exit\":",
					      w->id, (int)w->pid, state, w->generation,
					      up, slot ? slot->restarts : 0);
				if (slot && slot->last_exit[0])
					cr_buf_json_string(b, slot->last_exit);
				else
					cr_buf_lit(b, "null");
				if (slot && slot->last_exit[0] && slot->reason)
					cr_buf_printf(b, ",\"last_exit_reason\":\"%s\"", slot->reason);
				else
					cr_buf_lit(b, ",\"last_exit_reason\":null");
				cr_buf_lit(b, ",\"status\":");
				if (w->status)
					cr_buf_json_string(b, w->status);
				else
					cr_buf_lit(b, "null");
				json_stat(b, "memory_current", ws.memory_current);
				json_stat(b, "cpu_usage_usec", ws.cpu_usage_usec);
				cr_buf_lit(b, "}");
			} else {
				char upt[32], mem[16], cpu[24];
				cr_text_duration(upt, sizeof upt, up);
				cr_text_bytes(mem, sizeof mem, ws.memory_current);
				if (ws.cpu_usage_usec >= 0)
					snprintf(cpu, sizeof cpu, "%.2fs", (double)ws.cpu_usage_usec / 1e6);
				else
					snprintf(cpu, sizeof cpu, "-");
				cr_buf_printf(b, "  %4u %8d %-9s %8s %8u %8s %9s  ", w->id, (int)w->pid, state, upt,
					      slot ? slot->restarts : 0, mem, cpu);
				if (dead)
					cr_buf_printf(b, "its exit is not reported yet%s",
						      w->proto && w->proto == pool->proto && pwhy[0]
						      ? ": the prototype is not answering" : "");
				else if (w->status || !slot || !slot->last_exit[0])
					add_escaped(b, w->status ? w->status : "");
				else if (slot->reason) {
					cr_buf_printf(b, "%s: ", slot->reason);
					add_escaped(b, slot->last_exit);
				}
				else
					add_escaped(b, slot->last_exit);
				cr_buf_lit(b, "\n");
			}
		}
		if (json)
			cr_buf_lit(b, "]}");
	}
	if (json)
		cr_buf_lit(b, "]");
	else if (!found)
		cr_buf_printf(b, "(no pools)\n");
	return 0;
}

