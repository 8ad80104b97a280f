/*
 * reload.c: a new configuration, all or nothing. The file is loaded and
 * checked whole (its sockets opened, its controllers enabled) before
 * anything changes; then each pool is added, rescaled in place (only its
 * count changed), given new limits in place, replaced by a new generation
 * (rolling, never below its count), or removed (drained). Reloads come
 * from SIGHUP, corralctl, and plugins (after their handler returns, as
 * the reload replaces the Lua state it runs in). corralctl is told what
 * happened to each pool, or the errors, as a JSON object.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>

#include "config.h"
#include "fdneed.h"
#include "json.h"
#include "layout.h"
#include "log.h"
#include "manager.h"
#include "pool.h"
#include "reload.h"
#include "sockets.h"

static int reload(char *msg, size_t msglen, struct cr_buf *detail);

static struct {
	struct ev_loop *loop;
	ev_signal sighup;
	ev_idle later;		/* cr_reload_later(): after the handler */
} R;

/* Limits change in place: the workers keep running. */
static void apply_worker_limits(struct cr_pool *pool)
{
	struct cr_worker *w;
	char dir[PATH_MAX];

	cr_layout_pool(pool->name, &pool->conf->limits, &pool->conf->worker_limits);
	pool->has_memory = -1;
	TAILQ_FOREACH(w, &pool->workers, link) {
		struct cr_who who = cr_worker_who(w);
		if (w->state < W_GONE && (w->generation == pool->generation || w->generation == 0) &&
		    cr_worker_dir(w, dir, sizeof dir) == 0)
			cr_layout_apply(dir, &pool->conf->worker_limits, &who);
	}
}

/* {"errors":["line",...]}: an error, a line each. */
static void errors_json(struct cr_buf *detail, const char *err)
{
	const char *line = err, *nl;

	if (!detail)
		return;
	cr_buf_lit(detail, "{\"errors\":[");
	for (; line; line = nl ? nl + 1 : NULL) {
		char one[1024];
		size_t len;
		nl = strchr(line, '\n');
		len = nl ? (size_t)(nl - line) : strlen(line);
		snprintf(one, sizeof one, "%.*s", (int)(len < sizeof one ? len : sizeof one - 1), line);
		if (line != err)
			cr_buf_lit(detail, ",");
		cr_buf_json_string(detail, one);
	}
	cr_buf_lit(detail, "]}");
}

int cr_reload(char *msg, size_t msglen, struct cr_buf *detail)
{
	char buf[1024];
	int rc;

	if (cr_sv.stopping) {
		snprintf(msg ? msg : buf, msg ? msglen : sizeof buf, "corrald is stopping");
		errors_json(detail, "corrald is stopping");
		return -1;
	}
	cr_manager_reloading();
	rc = reload(msg ? msg : buf, msg ? msglen : sizeof buf, detail);
	/* done, good or bad: the running configuration is whole again; before
	 * the first READY=1, that one still waits for the pools */
	cr_manager_reloaded();
	return rc;
}

/* A pool's name into one of the lists of the answer. */
static void listed(struct cr_buf *list, const char *name)
{
	if (list->len)
		cr_buf_lit(list, ",");
	cr_buf_json_string(list, name);
}

/* {"added":[...],"changed":[...],...}: what happened to each pool. */
static void outcome_json(struct cr_buf *detail, struct cr_buf lists[5])
{
	static const char *const names[5] = { "added", "changed", "removed", "unchanged", "rescaled" };

	for (int i = 0; i < 5; i++) {
		if (detail)
			cr_buf_printf(detail, "%s\"%s\":[%.*s]", i ? "," : "{", names[i], (int)lists[i].len,
				      lists[i].data ? lists[i].data : "");
		cr_buf_free(&lists[i]);
	}
	if (detail)
		cr_buf_lit(detail, "}");
}

/* 0 with a summary in msg, or -1 with the error in msg; the same in
 * detail as JSON (when not NULL). */
static int reload(char *msg, size_t msglen, struct cr_buf *detail)
{
	struct cr_config *conf;
	struct cr_pool *pool;
	struct cr_worker *w;
	unsigned added = 0, changed = 0, removed = 0, unchanged = 0, scaled = 0, kept;
	int keep;
	char *err = NULL, errbuf[512];
	/* the names: added, changed, removed, unchanged (rescaled ones too), rescaled */
	struct cr_buf lists[5] = { { 0 } };

	cr_info(NULL, "reload requested");
	conf = cr_config_load(cr_sv.conf->file, &err);
	if (!conf) {
		snprintf(msg, msglen, "%s", err ? err : "out of memory");
		errors_json(detail, err ? err : msg);	/* all of them: msg is cut */
		/* a log line per error: log.c would escape the newlines */
		for (char *line = err ? err : msg, *nl; line; line = nl ? nl + 1 : NULL) {
			if ((nl = strchr(line, '\n')))
				*nl = 0;
			cr_error(NULL, "reload failed, keeping the running configuration: %s", line);
		}
		free(err);
		return -1;
	}
	/* the worker limits: open files in corrald for every pool's workers */
	if (cr_fdneed_config(conf, errbuf, sizeof errbuf) < 0 ||
	    cr_layout_controllers(conf, errbuf, sizeof errbuf) < 0 ||
	    cr_sockets_open(conf, errbuf, sizeof errbuf) < 0) {
		snprintf(msg, msglen, "%s", errbuf);
		errors_json(detail, errbuf);
		cr_error(NULL, "reload failed, keeping the running configuration: %s", errbuf);
		cr_config_free(conf);
		return -1;
	}
	if (strcmp(conf->cgroup, cr_sv.conf->cgroup) != 0)
		cr_warn(NULL, "reload: settings.cgroup changed; the base stays %s until corrald restarts",
			cr_layout_base());
	if (strcmp(conf->control, cr_sv.conf->control) != 0 ||
	    conf->control_group_set != cr_sv.conf->control_group_set ||
	    conf->control_group != cr_sv.conf->control_group)
		cr_warn(NULL, "reload: settings.control or control_group changed; "
			"the control socket stays as it is until corrald restarts");
	if (conf->monitor_group_set != cr_sv.conf->monitor_group_set ||
	    conf->monitor_group != cr_sv.conf->monitor_group)
		cr_warn(NULL, "reload: settings.monitor_group changed; "
			"the control socket keeps the old one until corrald restarts");
	/* from here on nothing can fail: the new config is whole */
	TAILQ_FOREACH(pool, &cr_sv.pools, link)
		pool->in_new_config = 0;
	for (unsigned i = 0; i < conf->npools; i++) {
		struct cr_pool_conf *pc = conf->pools[i];
		struct cr_who who = { .pool = pc->name };

		pool = cr_pool_find(pc->name);
		if (!pool) {
			if (!(pool = cr_pool_new(pc))) {
				cr_error(&who, "unable to add pool: out of memory");
				continue;
			}
			pool->in_new_config = 1;
			added++;
			listed(&lists[0], pool->name);
			continue;
		}
		pool->in_new_config = 1;
		/* a plugin's scale with keep (autoscale) outlives the reload,
		 * while the config's workers is what it was */
		keep = pool->keep_target && pool->state != POOL_REMOVED && pool->conf->workers == pc->workers;
		kept = pool->target;
		if (pool->state != POOL_REMOVED && cr_pool_conf_same(pool->conf, pc)) {
			if (!keep && pool->target != pc->workers) {
				scaled++;
				listed(&lists[4], pool->name);
			} else {
				unchanged++;
			}
			listed(&lists[3], pool->name);
			cr_pool_set_conf(pool, pc);
			/* a failed pool gets its chance again on reload */
			if (pool->state == POOL_FAILED)
				cr_pool_reset_failures(pool);
			apply_worker_limits(pool);
		} else {
			cr_pool_set_conf(pool, pc);
			cr_layout_pool(pool->name, &pc->limits, &pc->worker_limits);
			pool->has_memory = -1;
			pool->generation++;
			/* one being replaced is now replaced by the reload */
			TAILQ_FOREACH(w, &pool->workers, link)
				w->replace_reason = NULL;
			cr_pool_reset_failures(pool);
			/* a new definition starts, back in the config or stopped */
			if (pool->state == POOL_STOPPED || pool->state == POOL_REMOVED)
				cr_pool_set_state(pool, POOL_STARTING);
			changed++;
			listed(&lists[1], pool->name);
		}
		if (keep) {
			pool->target = kept;
			pool->keep_pending = 1;
		} else {
			pool->keep_target = 0;
		}
		cr_pool_mark_dirty(pool);
	}
	TAILQ_FOREACH(pool, &cr_sv.pools, link) {
		if (!pool->in_new_config && pool->state != POOL_REMOVED) {
			cr_pool_set_state(pool, POOL_REMOVED);
			removed++;
			listed(&lists[2], pool->name);
			cr_pool_mark_dirty(pool);
		}
	}
	cr_sockets_commit(conf);
	if (!cr_sv.verbose && conf->log_level >= 0)
		cr_log_level = conf->log_level;
	snprintf(msg, msglen, "%u added, %u changed, %u removed, %u unchanged%s",
		 added, changed, removed, unchanged + scaled, scaled ? " (some rescaled)" : "");
	cr_info(NULL, "reload done: %s", msg);
	outcome_json(detail, lists);
	cr_supervisor_activate(conf);
	cr_supervisor_queue("reload", NULL);
	return 0;
}

static void hup_cb(struct ev_loop *loop, ev_signal *sig, int revents)
{
	(void)loop;
	(void)sig;
	(void)revents;
	if (!cr_sv.stopping)
		cr_reload(NULL, 0, NULL);
}

static void later_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	(void)revents;
	ev_idle_stop(loop, w);
	if (!cr_sv.stopping)
		cr_reload(NULL, 0, NULL);
}

void cr_reload_later(void)
{
	ev_idle_start(R.loop, &R.later);
}

void cr_reload_init(struct ev_loop *loop)
{
	R.loop = loop;
	ev_signal_init(&R.sighup, hup_cb, SIGHUP);
	ev_signal_start(loop, &R.sighup);
	ev_idle_init(&R.later, later_cb);
}

void cr_reload_finish(void)
{
	ev_signal_stop(R.loop, &R.sighup);
	ev_idle_stop(R.loop, &R.later);
}
