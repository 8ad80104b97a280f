/*
 * protos.c: the pools' prototypes, as the supervisor keeps them: starting
 * one in its pool's prototype cgroup, what it reports (workers spawned,
 * failed, exited), its end (its workers adopted by corrald, a prototype
 * that died replaced or counted as a failure), and its cgroup emptied of
 * all it left before the next prototype starts there or the pool goes.
 * The fork server itself is proto.c.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <unistd.h>

#include "cgroup.h"
#include "config.h"
#include "layout.h"
#include "isolate.h"
#include "log.h"
#include "output.h"
#include "pool.h"
#include "proto.h"
#include "text.h"

/* glibc's <sys/queue.h> lacks the _SAFE iterators */
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar) \
	for ((var) = TAILQ_FIRST(head); (var) && ((tvar) = TAILQ_NEXT(var, field), 1); (var) = (tvar))
#endif

/* ---- events from the prototypes ----------------------------------------- */

static void on_proto_ready(struct cr_proto *p)
{
	struct cr_pool *pool = p->owner;

	if (pool->proto == p)
		pool->proto_ready_at = ev_now(cr_sv.loop);
	cr_pool_mark_dirty(pool);
}

static struct cr_worker *worker_by_serial(struct cr_proto *p, uint32_t serial)
{
	struct cr_pool *pool = p->owner;
	struct cr_worker *w;

	/* from the newest: the prototype answers in the order it was
	 * asked, so the one waited for is among the last few */
	TAILQ_FOREACH_REVERSE(w, &pool->workers, cr_worker_list, link)
		if (w->proto == p && w->serial == serial && w->pid == 0)
			return w;
	return NULL;
}

static void on_spawned(struct cr_proto *p, uint32_t serial, pid_t pid, int pidfd, int chan, int out)
{
	struct cr_worker *w = worker_by_serial(p, serial);
	struct cr_who who = { .pool = p->conf->name, .pid = pid };

	if (!w) {
		/* we gave up on it: not ours to keep running */
		cr_warn(&who, "prototype spawned a worker nobody waits for, killing it");
		pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
		close(pidfd);
		close(chan);
		if (out >= 0)
			close(out);
		return;
	}
	if (out >= 0)
		w->output = cr_output_attach(out, w->conf, w->id);
	cr_worker_started(w, pid, pidfd, chan);
}

static void retire_check(struct cr_proto *p);

static void on_spawn_failed(struct cr_proto *p, uint32_t serial, int err)
{
	struct cr_worker *w = worker_by_serial(p, serial);
	struct cr_who who = { .pool = p->conf->name, .pid = p->pid, .worker = w ? w->id : 0 };
	struct cr_pool *pool = p->owner;
	char detail[160];

	cr_error(&who, "prototype: unable to fork a worker: %s", strerror(err));
	/* its cgroup is empty, unless a worker was forked whose answer could
	 * not be had (corrald out of fds): then that is killed first */
	if (w)
		cr_worker_gone(w);
	retire_check(p);
	snprintf(detail, sizeof detail, "the prototype was unable to fork a worker: %s", strerror(err));
	cr_pool_failure(pool, 0, "worker", detail);
	cr_pool_mark_dirty(pool);
}

static void on_exited(struct cr_proto *p, pid_t pid, int status)
{
	struct cr_worker *w = cr_worker_by_pid(p, pid);
	struct cr_who who = { .pool = p->conf->name, .pid = pid };

	if (!w) {
		/* a worker's first process, after MAINPID= named another */
		cr_debug(&who, "prototype reaped a process that is no worker's main one");
		return;
	}
	cr_worker_exited(w, status);
	retire_check(p);
}

static void on_emptied(struct cr_proto *p);

static const struct cr_proto_ops proto_ops = {
	.ready = on_proto_ready,
	.spawned = on_spawned,
	.spawn_failed = on_spawn_failed,
	.exited = on_exited,
	.emptied = on_emptied,
};

/* ---- prototypes --------------------------------------------------------- */

static void proto_unlink(struct cr_proto *p)
{
	for (struct cr_proto **pp = &cr_sv.protos; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			return;
		}
	}
}

/* Whether a worker of p has not ended yet. */
static int proto_has_workers(const struct cr_proto *p)
{
	const struct cr_pool *pool = p->owner;
	const struct cr_worker *w;

	TAILQ_FOREACH(w, &pool->workers, link)
		if (w->proto == p && w->state != W_GONE)
			return 1;
	return 0;
}

/* A prototype set aside goes with the last of its workers. */
static void retire_check(struct cr_proto *p)
{
	if (p->retiring && p->state != CR_PROTO_GONE && !proto_has_workers(p))
		cr_proto_kill(p);
}

/* Workers whose prototype is gone are corrald's children now; in its pid
 * namespace they died with it, their statuses reaped there. */
static void adopt_workers(struct cr_proto *p)
{
	struct cr_pool *pool = p->owner;
	struct cr_worker *w, *tmp;

	TAILQ_FOREACH_SAFE(w, &pool->workers, link, tmp) {
		if (w->proto != p)
			continue;
		if (w->pid == 0) {
			/* its answer never came: if it was forked, its cgroup
			 * holds it; kill and remove that like any worker's */
			cr_worker_gone(w);
			continue;
		}
		w->proto = NULL;
		if (p->pidns && w->state != W_GONE)
			cr_worker_lost(w, "killed with its prototype's pid namespace");
	}
}

static void proto_reaped(struct cr_proto *p, int status)
{
	struct cr_pool *pool = p->owner;
	struct cr_who who = { .pool = pool->name, .pid = p->pid };
	char how[96];

	p->reaped = 1;
	cr_proto_close(cr_sv.loop, p);	/* reads what it said before dying */
	adopt_workers(p);
	cr_text_wait_status(how, sizeof how, status);
	/* a prototype we retired is no longer the pool's; one that had been
	 * ready for its start window is replaced at once, like a worker */
	if (pool->proto == p) {
		ev_tstamp now = ev_now(cr_sv.loop);
		pool->proto = NULL;
		cr_warn(&who, "prototype exited unexpectedly (%s)", how);
		if (pool->proto_ready_at > 0 && now - pool->proto_ready_at >= pool->conf->start_window) {
			cr_info(&who, "starting a new prototype now");
		} else {
			char detail[160];
			snprintf(detail, sizeof detail, "the prototype %s", how);
			cr_pool_failure(pool, 0, "prototype", detail);
		}
		pool->proto_ready_at = 0;
	} else {
		cr_debug(&who, "prototype %s", how);
	}
	/* what it left in its cgroup is being killed: until that is empty,
	 * no new prototype starts there and the pool stays */
	if (cr_proto_done(p)) {
		proto_unlink(p);
		cr_proto_free(p);
	}
	cr_pool_mark_dirty(pool);
}

static void on_emptied(struct cr_proto *p)
{
	struct cr_pool *pool = p->owner;

	if (cr_proto_done(p)) {
		proto_unlink(p);
		cr_proto_free(p);
	}
	cr_pool_mark_dirty(pool);
}

/* The prototype's cgroup: <pool>/prototype, unless a retired one still
 * holds that (cgroup v2 cannot rename it): then one of its own. */
static int proto_dir(const struct cr_pool *pool, char *dir, size_t n)
{
	static unsigned seq;
	int rc = cr_layout_proto_dir(dir, n, pool->name);

	for (const struct cr_proto *p = cr_sv.protos; rc == 0 && p; p = p->next)
		if (p->owner == pool && !strcmp(p->cgroup, dir))
			return cr_layout_proto_aside_dir(dir, n, pool->name, ++seq);
	return rc;
}

void cr_pool_proto_start(struct cr_pool *pool)
{
	struct cr_who who = cr_pool_who(pool);
	struct cr_proto *p = NULL;
	char dir[PATH_MAX];
	long uid;
	int rc;

	/* a prototype in a user namespace moves its workers from its cgroup
	 * to theirs as its own uid: their common parent must let it */
	if ((uid = cr_isolate_delegate_uid(pool->conf)) < 0)
		uid = geteuid();
	if (cr_layout_pool_dir(dir, sizeof dir, pool->name) == 0 &&
	    (rc = cr_cgroup_chown(dir, "cgroup.procs", (uid_t)uid)) < 0)
		cr_warn(&who, "cgroup: unable to delegate %s/cgroup.procs to uid %ld (isolation.namespaces "
			"\"user\"): %s", dir, uid, strerror(-rc));
	if ((rc = proto_dir(pool, dir, sizeof dir)) < 0 || (rc = cr_cgroup_mkdir(dir)) < 0) {
		cr_error(&who, "cgroup: unable to make the prototype's cgroup %s: %s", dir, strerror(-rc));
	} else {
		p = cr_proto_start(cr_sv.loop, &proto_ops, pool, pool->conf, pool->generation, dir);
		if (!p)
			cr_error(&who, "unable to start the prototype in %s: %s", dir, strerror(errno));
	}
	if (!p) {
		cr_pool_failure(pool, 0, "prototype", "unable to start the prototype");
		return;
	}
	p->next = cr_sv.protos;
	cr_sv.protos = p;
	pool->proto = p;
	pool->proto_ready_at = 0;
	who.pid = p->pid;
	cr_info(&who, "prototype started");
}

/* Prototypes of the pool not yet done (reaped, their cgroup empty),
 * current or retired: the pool must outlive them (proto_reaped() uses
 * it), and a new one waits for the cgroup they share. */
int cr_pool_has_protos(const struct cr_pool *pool)
{
	for (const struct cr_proto *p = cr_sv.protos; p; p = p->next)
		if (p->owner == pool)
			return 1;
	return 0;
}

int cr_pool_protos_block(const struct cr_pool *pool)
{
	for (const struct cr_proto *p = cr_sv.protos; p; p = p->next)
		if (p->owner == pool && !p->retiring)
			return 1;
	return 0;
}

void cr_pool_proto_retire(struct cr_pool *pool, struct cr_proto *p)
{
	struct cr_who who = { .pool = pool->name, .pid = p->pid };

	if (!p->pidns || p->state == CR_PROTO_GONE || !proto_has_workers(p)) {
		cr_proto_kill(p);	/* read on until it is reaped */
		return;
	}
	/* its workers end with its pid namespace, which ends with it: it
	 * stays until they have stopped (the next one takes another cgroup) */
	p->retiring = 1;
	cr_debug(&who, "prototype retired: it stays until its workers have stopped");
}

int cr_pool_proto_reaped(pid_t pid, int status)
{
	for (struct cr_proto *p = cr_sv.protos; p; p = p->next) {
		if (p->pid == pid && !p->reaped) {
			proto_reaped(p, status);
			return 1;
		}
	}
	return 0;
}
