/*
 * config.c: runs a config file through lua/corral/config.lua, which does
 * all the validating, and copies the plain result into C structs. Knows
 * nothing of processes; the reload diff is a fingerprint comparison that
 * supervisor.c makes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "config.h"
#include "crlua.h"
#include "log.h"
#include "runtime.h"

struct cr_pool_conf *cr_pool_conf_ref(struct cr_pool_conf *pc)
{
	pc->refs++;
	return pc;
}

static void free_strv(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

static void free_limits(struct cr_limits *l)
{
	for (unsigned i = 0; i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].file);
		free(l->v[i].value);
	}
	free(l->v);
}

int cr_pool_conf_same(const struct cr_pool_conf *a, const struct cr_pool_conf *b)
{
	return a->fingerprint_len == b->fingerprint_len &&
	       memcmp(a->fingerprint, b->fingerprint, a->fingerprint_len) == 0;
}

void cr_pool_conf_unref(struct cr_pool_conf *pc)
{
	if (!pc || --pc->refs > 0)
		return;
	free_limits(&pc->limits);
	free_limits(&pc->worker_limits);
	free(pc->file);
	free_strv(pc->argv);
	free_strv(pc->envp);
	free(pc->directory);
	free(pc->groups);
	free(pc->fingerprint);
	free(pc->output);
	free_strv(pc->listen_names);
	free_strv(pc->listen_specs);
	free(pc->listen_fds);
	free(pc->syslog_identifier);
	free(pc);
}

void cr_config_free(struct cr_config *conf)
{
	if (!conf)
		return;
	for (unsigned i = 0; i < conf->npools; i++)
		cr_pool_conf_unref(conf->pools[i]);
	free(conf->pools);
	free(conf->file);
	free(conf->cgroup);
	free(conf->control);
	if (conf->lua) {
		cr_runtime_forget(conf->lua);	/* its timers and triggers */
		lua_close(conf->lua);
	}
	free(conf);
}

/* Field readers for the normalized table at the top of the stack. The Lua
 * side guarantees types; these only guard against a broken module. */
static double get_number(lua_State *L, const char *key)
{
	double v;

	lua_getfield(L, -1, key);
	v = lua_tonumber(L, -1);
	lua_pop(L, 1);
	return v;
}

static char *get_string(lua_State *L, const char *key)
{
	const char *s;
	char *v;

	lua_getfield(L, -1, key);
	s = lua_tostring(L, -1);
	v = s ? strdup(s) : NULL;
	lua_pop(L, 1);
	return v;
}

static char **get_strv(lua_State *L, const char *key)
{
	char **v;
	size_t n;

	lua_getfield(L, -1, key);
	n = lua_objlen(L, -1);
	v = calloc(n + 1, sizeof *v);
	for (size_t i = 0; v && i < n; i++) {
		lua_rawgeti(L, -1, (int)i + 1);
		v[i] = strdup(lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
		lua_pop(L, 1);
		if (!v[i]) {
			free_strv(v);
			v = NULL;
		}
	}
	lua_pop(L, 1);
	return v;
}

/* A registry ref to the field's function or table, or LUA_NOREF. */
static int get_ref(lua_State *L, const char *key)
{
	lua_getfield(L, -1, key);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return LUA_NOREF;
	}
	return luaL_ref(L, LUA_REGISTRYINDEX);
}

static int get_limits(lua_State *L, const char *key, struct cr_limits *l)
{
	int ok = 1;

	lua_getfield(L, -1, key);
	l->n = (unsigned)lua_objlen(L, -1);
	l->v = calloc(l->n + 1, sizeof *l->v);
	for (unsigned i = 0; l->v && i < l->n; i++) {
		lua_rawgeti(L, -1, (int)i + 1);
		l->v[i].key = get_string(L, "key");
		l->v[i].file = get_string(L, "file");
		l->v[i].value = get_string(L, "value");
		ok = ok && l->v[i].key && l->v[i].file && l->v[i].value;
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return l->v && ok ? 0 : -1;
}

static struct cr_pool_conf *read_pool(lua_State *L)
{
	struct cr_pool_conf *pc = calloc(1, sizeof *pc);
	char *name, *restart, *ready;

	if (!pc)
		return NULL;
	pc->refs = 1;
	pc->lua = L;
	pc->ref_prefork = get_ref(L, "prefork");
	pc->ref_setup = get_ref(L, "setup");
	pc->ref_start = get_ref(L, "start");
	pc->ref_object = get_ref(L, "object");
	ready = get_string(L, "ready");
	pc->ready = !ready || !strcmp(ready, "started") ? CR_READY_STARTED
		  : !strcmp(ready, "lua") ? CR_READY_LUA : CR_READY_NOTIFY;
	pc->watchdog = get_number(L, "watchdog");
	pc->output = get_string(L, "output");
	lua_getfield(L, -1, "listen");
	pc->nlisten = (unsigned)lua_objlen(L, -1);
	pc->listen_names = calloc(pc->nlisten + 1, sizeof *pc->listen_names);
	pc->listen_specs = calloc(pc->nlisten + 1, sizeof *pc->listen_specs);
	pc->listen_fds = calloc(pc->nlisten + 1, sizeof *pc->listen_fds);
	for (unsigned i = 0; pc->listen_names && pc->listen_specs && pc->listen_fds && i < pc->nlisten; i++) {
		lua_rawgeti(L, -1, (int)i + 1);
		pc->listen_names[i] = get_string(L, "name");
		pc->listen_specs[i] = get_string(L, "spec");
		pc->listen_fds[i] = -1;
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	pc->syslog_identifier = get_string(L, "syslog_identifier");
	pc->ready_timeout = get_number(L, "ready_timeout");
	free(ready);
	pc->prefork_timeout = get_number(L, "prefork_timeout");
	name = get_string(L, "name");
	snprintf(pc->name, sizeof pc->name, "%s", name ? name : "");
	free(name);
	pc->file = get_string(L, "file");
	pc->line = (int)get_number(L, "line");
	pc->argv = get_strv(L, "argv");
	pc->envp = get_strv(L, "env");
	pc->directory = get_string(L, "directory");
	pc->workers = (unsigned)get_number(L, "workers");
	pc->stop_signal = (int)get_number(L, "stop_signal");
	pc->stop_timeout = get_number(L, "stop_timeout");
	restart = get_string(L, "restart");
	pc->restart = !restart || !strcmp(restart, "always") ? CR_RESTART_ALWAYS
		    : !strcmp(restart, "on-failure") ? CR_RESTART_ON_FAILURE
		    : CR_RESTART_NEVER;
	free(restart);
	pc->backoff_initial = get_number(L, "backoff_initial");
	pc->backoff_max = get_number(L, "backoff_max");
	pc->backoff_reset = get_number(L, "backoff_reset");
	pc->crash_failures = (unsigned)get_number(L, "crash_failures");
	pc->crash_interval = get_number(L, "crash_interval");
	lua_getfield(L, -1, "fingerprint");
	{
		size_t n = 0;
		const char *fp = lua_tolstring(L, -1, &n);
		pc->fingerprint = fp ? malloc(n + 1) : NULL;
		if (pc->fingerprint) {
			memcpy(pc->fingerprint, fp, n + 1);
			pc->fingerprint_len = n;
		}
	}
	lua_pop(L, 1);

	lua_getfield(L, -1, "uid");
	pc->set_uid = lua_isnumber(L, -1);
	pc->uid = (uid_t)lua_tointeger(L, -1);
	lua_pop(L, 1);
	lua_getfield(L, -1, "gid");
	pc->set_gid = lua_isnumber(L, -1);
	pc->gid = (gid_t)lua_tointeger(L, -1);
	lua_pop(L, 1);
	lua_getfield(L, -1, "groups");
	if (lua_istable(L, -1)) {
		pc->ngroups = (int)lua_objlen(L, -1);
		pc->groups = calloc((size_t)pc->ngroups + 1, sizeof *pc->groups);
		for (int i = 0; pc->groups && i < pc->ngroups; i++) {
			lua_rawgeti(L, -1, i + 1);
			pc->groups[i] = (gid_t)lua_tointeger(L, -1);
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);

	if (get_limits(L, "limits", &pc->limits) < 0 ||
	    get_limits(L, "worker_limits", &pc->worker_limits) < 0 ||
	    !pc->file || !pc->argv || !pc->envp || !pc->directory || !pc->fingerprint ||
	    !pc->output || !pc->syslog_identifier ||
	    !pc->listen_names || !pc->listen_specs || !pc->listen_fds ||
	    (pc->ngroups && !pc->groups)) {
		cr_pool_conf_unref(pc);
		return NULL;
	}
	return pc;
}

struct cr_config *cr_config_load(const char *path, char **err)
{
	struct cr_config *conf;
	lua_State *L;
	char *level;

	*err = NULL;
	conf = calloc(1, sizeof *conf);
	if (!conf || !(conf->file = strdup(path)))
		goto fail_oom;
	L = cr_lua_new();
	if (!L)
		goto fail_oom;
	conf->lua = L;

	lua_getglobal(L, "require");
	lua_pushstring(L, "corral.config");
	if (cr_lua_pcall(L, 1, 1) != 0)
		goto fail_lua;
	lua_getfield(L, -1, "load");
	lua_pushstring(L, path);
	if (cr_lua_pcall(L, 1, 2) != 0)
		goto fail_lua;
	if (lua_isnil(L, -2)) {
		*err = strdup(lua_tostring(L, -1) ? lua_tostring(L, -1) : "unknown error");
		goto fail;
	}
	lua_pop(L, 1);	/* the nil message: the config is on top */

	lua_getfield(L, -1, "settings");
	level = get_string(L, "log_level");
	conf->log_level = level ? cr_log_level_parse(level) : CR_INFO;
	free(level);
	conf->cgroup = get_string(L, "cgroup");
	conf->control = get_string(L, "control");
	lua_getfield(L, -1, "control_group");
	conf->control_group_set = lua_isnumber(L, -1);
	conf->control_group = (gid_t)lua_tointeger(L, -1);
	lua_pop(L, 1);
	lua_getfield(L, -1, "limits_required");
	conf->limits_required = lua_toboolean(L, -1);
	lua_pop(L, 1);
	if (!conf->cgroup || !conf->control) {
		lua_pop(L, 1);
		goto fail_oom;
	}
	lua_pop(L, 1);

	lua_getfield(L, -1, "pools");
	conf->npools = (unsigned)lua_objlen(L, -1);
	conf->pools = calloc(conf->npools + 1, sizeof *conf->pools);
	if (!conf->pools)
		goto fail_oom;
	for (unsigned i = 0; i < conf->npools; i++) {
		lua_rawgeti(L, -1, (int)i + 1);
		conf->pools[i] = read_pool(L);
		lua_pop(L, 1);
		if (!conf->pools[i])
			goto fail_oom;
	}
	lua_settop(L, 0);
	return conf;

fail_lua:
	{
		/* an error in corral's own Lua: keep the whole traceback */
		const char *msg = lua_tostring(L, -1);
		size_t n = msg ? strlen(msg) + 32 : 0;
		*err = n ? malloc(n) : NULL;
		if (*err)
			snprintf(*err, n, "internal error: %s", msg);
	}
	goto fail;
fail_oom:
	if (!*err)
		*err = strdup("out of memory");
fail:
	cr_config_free(conf);
	return NULL;
}
