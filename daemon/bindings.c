/*
 * bindings.c: corral.core's C functions that reach beyond the process Lua
 * runs in: the supervisor's controls (scale, restart, ...), status,
 * reload, timers and PSI triggers, cgroup stats and pressure, and the
 * lookups a config needs (users, groups, signals, plugin paths). lua.c
 * gives each a phase check; lua/corral/init.lua builds the friendly API
 * on top. This and lua.c are the only files that use the Lua C API.
 */
#include <errno.h>
#include <dirent.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <lauxlib.h>
#include <sys/capability.h>

#include "bindings.h"
#include "cgroup.h"
#include "commands.h"
#include "config.h"
#include "crlua.h"
#include "json.h"
#include "layout.h"
#include "log.h"
#include "notes.h"
#include "pool.h"
#include "reload.h"
#include "spawn.h"
#include "status.h"
#include "supervisor.h"
#include "text.h"
#include "plugio.h"
#include "timers.h"

/* ---- for configs ------------------------------------------------------------ */

/* corral.core.signum("TERM" | "SIGTERM" | 15) -> number | nil */
static int l_signum(lua_State *L)
{
	int sig = -1;

	if (lua_type(L, 1) == LUA_TNUMBER) {
		lua_Number n = lua_tonumber(L, 1);
		if (n >= 1 && n < NSIG && n == (int)n)
			sig = (int)n;
	} else {
		const char *s = luaL_checkstring(L, 1);
		/* names only: "15" as a string is not a signal's name */
		if (s[0] < '0' || s[0] > '9')
			sig = cr_text_signal(s);
	}
	if (sig < 0)
		return 0;
	lua_pushinteger(L, sig);
	return 1;
}

/* corral.core.duration(seconds) -> "250ms", as log lines write it */
static int l_duration(lua_State *L)
{
	char buf[32];

	cr_text_duration(buf, sizeof buf, luaL_checknumber(L, 1));
	lua_pushstring(L, buf);
	return 1;
}

/* ---- for every phase ------------------------------------------------------ */

/* corral.core.log(level, message): with the pool and worker we run for */
static int l_log(lua_State *L)
{
	int level = cr_log_level_parse(luaL_checkstring(L, 1));
	const char *msg = luaL_checkstring(L, 2);

	if (level < 0 || level == CR_ALERT)
		level = CR_INFO;	/* alert is corral's own, never a hook's */
	cr_log((enum cr_level)level, cr_lua_who(), "%s", msg);
	return 0;
}

static int l_phase(lua_State *L)
{
	lua_pushstring(L, cr_lua_phase_name());
	return 1;
}

static int l_now(lua_State *L)
{
	lua_pushnumber(L, cr_lua_now());
	return 1;
}

static int l_getpid(lua_State *L)
{
	lua_pushinteger(L, getpid());
	return 1;
}


/* corral.core.setenv(name, value | nil) */
static int l_setenv(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	int rc = lua_isnoneornil(L, 2) ? unsetenv(name) : setenv(name, luaL_checkstring(L, 2), 1);

	if (rc < 0)
		return luaL_error(L, "corral.setenv: unable to set %s: %s", name, strerror(errno));
	return 0;
}


static int l_stopping(lua_State *L)
{
	lua_pushboolean(L, cr_spawn_stopping());
	return 1;
}

/* corral.core.sleep(seconds) -> interrupted by a stop request */
static int l_sleep(lua_State *L)
{
	lua_pushboolean(L, cr_spawn_sleep(luaL_checknumber(L, 1)));
	return 1;
}

static int l_ready(lua_State *L)
{
	int rc = cr_spawn_ready();

	if (rc < 0)
		return luaL_error(L, "corral.ready: unable to tell corrald: %s", strerror(-rc));
	return 0;
}

/* core.load(busy): corral.busy() / corral.idle() */
static int l_load(lua_State *L)
{
	int rc = cr_spawn_load(lua_toboolean(L, 1));

	if (rc < 0)
		return luaL_error(L, "corral.%s: unable to tell corrald: %s", lua_toboolean(L, 1) ? "busy" : "idle",
				  strerror(-rc));
	return 0;
}

/* core.requests(n): corral.request_done(n), n checked by the caller */
static int l_requests(lua_State *L)
{
	int rc = cr_spawn_requests((unsigned)luaL_checknumber(L, 1));

	if (rc < 0)
		return luaL_error(L, "corral.request_done: unable to tell corrald: %s", strerror(-rc));
	return 0;
}

/* ---- for configs (more) ------------------------------------------------------ */

/* corral.core.getpwnam(name | uid) -> { name, uid, gid, dir, shell, groups } | nil */
static int l_getpwnam(lua_State *L)
{
	struct passwd *pw;
	gid_t groups[NGROUPS_MAX];
	int n = NGROUPS_MAX;

	errno = 0;
	if (lua_type(L, 1) == LUA_TNUMBER)
		pw = getpwuid((uid_t)lua_tointeger(L, 1));
	else
		pw = getpwnam(luaL_checkstring(L, 1));
	if (!pw)
		return 0;
	lua_createtable(L, 0, 6);
	lua_pushstring(L, pw->pw_name);
	lua_setfield(L, -2, "name");
	lua_pushinteger(L, pw->pw_uid);
	lua_setfield(L, -2, "uid");
	lua_pushinteger(L, pw->pw_gid);
	lua_setfield(L, -2, "gid");
	lua_pushstring(L, pw->pw_dir);
	lua_setfield(L, -2, "dir");
	lua_pushstring(L, pw->pw_shell);
	lua_setfield(L, -2, "shell");
	if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) < 0)
		n = 0;
	lua_createtable(L, n, 0);
	for (int i = 0; i < n; i++) {
		lua_pushinteger(L, groups[i]);
		lua_rawseti(L, -2, i + 1);
	}
	lua_setfield(L, -2, "groups");
	return 1;
}

/* corral.core.getgrnam(name | gid) -> gid | nil */
static int l_getgrnam(lua_State *L)
{
	struct group *gr;

	if (lua_type(L, 1) == LUA_TNUMBER)
		gr = getgrgid((gid_t)lua_tointeger(L, 1));
	else
		gr = getgrnam(luaL_checkstring(L, 1));
	if (!gr)
		return 0;
	lua_pushinteger(L, gr->gr_gid);
	return 1;
}

/* corral.core.capability("cap_net_bind_service") -> 10 | nil, through
 * libcap's table (case-insensitive); capability(10) -> its name | nil.
 * Names only: cap_from_name would also read a number. */
static int l_capability(lua_State *L)
{
	cap_value_t cap;
	char *name;

	if (lua_type(L, 1) == LUA_TNUMBER) {
		lua_Number n = lua_tonumber(L, 1);
		if (n < 0 || n > 63 || n != (int)n || !(name = cap_to_name((cap_value_t)n)))
			return 0;
		/* a number libcap has no name for comes back as digits */
		if (name[0] >= '0' && name[0] <= '9')
			lua_pushnil(L);
		else
			lua_pushstring(L, name);
		cap_free(name);
		return 1;
	}
	const char *s = luaL_checkstring(L, 1);
	if (!*s || s[strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")])
		return 0;
	/* iso.caps is a 64-bit mask */
	if (cap_from_name(s, &cap) < 0 || cap < 0 || cap > 63)
		return 0;
	lua_pushinteger(L, cap);
	return 1;
}

/* corral.core.environ() -> { NAME = value } of corrald's own environment */
static int l_environ(lua_State *L)
{
	extern char **environ;

	lua_newtable(L);
	for (char **e = environ; e && *e; e++) {
		const char *eq = strchr(*e, '=');
		if (!eq || eq == *e)
			continue;
		lua_pushlstring(L, *e, (size_t)(eq - *e));
		lua_pushstring(L, eq + 1);
		lua_rawset(L, -3);
	}
	return 1;
}

/* core.plugin_path(config_file) -> "dir/?.lua;..." where plugins are looked
 * for: beside the config, then corral's own (source tree or installed). */
static int l_plugin_path(lua_State *L)
{
	const char *conf = luaL_checkstring(L, 1), *slash = strrchr(conf, '/');
	const char *lua = cr_lua_dir();
	size_t n = strlen(lua);
	char own[PATH_MAX];

	/* <dir>/lua -> <dir>/plugins */
	snprintf(own, sizeof own, "%.*s/plugins/?.lua", (int)(n > 4 && !strcmp(lua + n - 4, "/lua") ? n - 4 : n), lua);
	if (slash) {
		lua_pushlstring(L, conf, (size_t)(slash - conf));	/* its directory */
		lua_pushfstring(L, "%s/plugins/?.lua;%s", lua_tostring(L, -1), own);
	} else {
		lua_pushfstring(L, "./plugins/?.lua;%s", own);
	}
	return 1;
}

/* core.loadfile(path) -> chunk | nil, message: a plugin file, compiled
 * from the very fd config.c checked (a file only root or corrald's user
 * may write: its code runs inside corrald). */
struct fd_reader {
	int fd, err, first, skip;
	char buf[4096];
};

static const char *read_fd(lua_State *L, void *ud, size_t *size)
{
	struct fd_reader *r = ud;
	ssize_t n;
	char *p, *nl;

	(void)L;
	for (;;) {
		while ((n = read(r->fd, r->buf, sizeof r->buf)) < 0 && errno == EINTR)
			;
		if (n <= 0) {
			r->err = n < 0 ? errno : 0;
			*size = 0;
			return NULL;
		}
		p = r->buf;
		*size = (size_t)n;
		if (r->first) {
			r->first = 0;
			r->skip = r->buf[0] == '#';
		}
		if (!r->skip)
			return p;
		/* a #! line, as loadfile skips it (its newline kept: line numbers) */
		if (!(nl = memchr(p, '\n', *size)))
			continue;
		r->skip = 0;
		*size -= (size_t)(nl - p);
		return nl;
	}
}

static int l_loadfile(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	char err[PATH_MAX + 256];
	struct fd_reader *r;
	int rc;

	/* what may raise an error comes before the open */
	r = lua_newuserdata(L, sizeof *r);
	lua_pushfstring(L, "@%s", path);
	if ((r->fd = cr_config_open_trusted(path, err, sizeof err)) < 0) {
		lua_pushnil(L);
		lua_pushstring(L, err);
		return 2;
	}
	r->err = r->skip = 0;
	r->first = 1;
	rc = lua_load(L, read_fd, r, lua_tostring(L, -1));
	close(r->fd);
	if (rc == 0 && !r->err)
		return 1;
	lua_pushnil(L);
	if (r->err)
		lua_pushfstring(L, "%s: unable to read: %s", path, strerror(r->err));
	else
		lua_pushvalue(L, -2);	/* lua_load's message */
	return 2;
}

static int push_error(lua_State *L, int err)
{
	lua_pushnil(L);
	lua_pushstring(L, err == -ENOENT ? "no such pool or worker" : strerror(-err));
	return 2;
}

static int l_freeze(lua_State *L)
{
	int rc = cr_supervisor_freeze(luaL_checkstring(L, 1), lua_toboolean(L, 2));

	if (rc == -ENOENT) {
		lua_pushnil(L);
		lua_pushstring(L, "no such pool");
		return 2;
	}
	if (rc < 0)
		return push_error(L, rc);
	lua_pushboolean(L, 1);
	return 1;
}

static int l_pools(lua_State *L)
{
	const char *name;

	lua_newtable(L);
	for (unsigned i = 0; (name = cr_supervisor_pool_name(i)); i++) {
		lua_pushstring(L, name);
		lua_rawseti(L, -2, (int)i + 1);
	}
	return 1;
}

/* The pool's cgroup, or a worker's: -ENOENT when there is none. */
static int dir_of(lua_State *L, char *dir, size_t n)
{
	const char *pool = luaL_checkstring(L, 1);
	int rc;

	if (!cr_supervisor_pool(pool))
		return -ENOENT;
	if (lua_isnoneornil(L, 2))
		rc = cr_layout_pool_dir(dir, n, pool);
	else
		rc = cr_layout_worker_dir(dir, n, pool, (unsigned)luaL_checkinteger(L, 2));
	if (rc == 0 && access(dir, F_OK) < 0)
		rc = -ENOENT;
	return rc;
}

static void set_stat(lua_State *L, const char *key, long long v)
{
	if (v < 0)
		return;
	lua_pushnumber(L, (lua_Number)v);
	lua_setfield(L, -2, key);
}

/* The load reports into the table on top: a pool's busy, idle, requests,
 * last_request_ago; a worker's load, load_for, requests, last_request_ago
 * (absent: never). */
static void set_load(lua_State *L)
{
	struct cr_load ld;

	if (cr_status_load(lua_tostring(L, 1), (unsigned)luaL_optinteger(L, 2, 0), &ld) < 0)
		return;
	if (lua_isnoneornil(L, 2)) {
		set_stat(L, "busy", ld.busy);
		set_stat(L, "idle", ld.idle);
	} else if (ld.load) {
		lua_pushstring(L, ld.load);
		lua_setfield(L, -2, "load");
		lua_pushnumber(L, ld.load_for);
		lua_setfield(L, -2, "load_for");
	}
	lua_pushnumber(L, (lua_Number)ld.requests);
	lua_setfield(L, -2, "requests");
	if (ld.last_request_ago >= 0) {
		lua_pushnumber(L, ld.last_request_ago);
		lua_setfield(L, -2, "last_request_ago");
	}
}

static int l_stats(lua_State *L)
{
	struct cr_cgroup_stats st;
	char dir[PATH_MAX];
	int rc = dir_of(L, dir, sizeof dir);

	if (rc < 0)
		return push_error(L, rc);
	cr_cgroup_stats(dir, &st);
	lua_newtable(L);
	set_stat(L, "memory_current", st.memory_current);
	set_stat(L, "memory_peak", st.memory_peak);
	set_stat(L, "cpu_usage_usec", st.cpu_usage_usec);
	set_stat(L, "cpu_user_usec", st.cpu_user_usec);
	set_stat(L, "cpu_system_usec", st.cpu_system_usec);
	set_stat(L, "pids_current", st.pids_current);
	set_stat(L, "oom_kills", st.oom_kills);
	set_load(L);
	return 1;
}

static int l_read_pressure(lua_State *L)
{
	char dir[PATH_MAX], file[32], buf[512];
	int rc;
	ssize_t n;

	lua_settop(L, 2);
	snprintf(file, sizeof file, "%s.pressure", luaL_checkstring(L, 2));
	lua_pushnil(L);
	lua_replace(L, 2);	/* the pool, not a worker */
	if ((rc = dir_of(L, dir, sizeof dir)) < 0)
		return push_error(L, rc);
	if ((n = cr_cgroup_read(dir, file, buf, sizeof buf)) < 0)
		return push_error(L, (int)n);
	lua_pushlstring(L, buf, (size_t)n);
	return 1;
}

/* core.psi_trigger(pool, resource, spec) -> id | nil, message */
static int l_psi_trigger(lua_State *L)
{
	const char *pool = luaL_checkstring(L, 1), *resource = luaL_checkstring(L, 2);
	const char *spec = luaL_checkstring(L, 3);
	char dir[PATH_MAX], path[PATH_MAX + 32];
	int id;

	if (!cr_supervisor_pool(pool) || cr_layout_pool_dir(dir, sizeof dir, pool) < 0)
		return push_error(L, -ENOENT);
	snprintf(path, sizeof path, "%s/%s.pressure", dir, resource);
	if ((id = cr_timers_add_psi(cr_lua_active(), path, spec)) < 0)
		return push_error(L, id);
	lua_pushinteger(L, id);
	return 1;
}

/* core.listen_watch(pool, name, pause) -> id | nil, message */
static int l_listen_watch(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1), *listen = luaL_checkstring(L, 2);
	double pause = luaL_checknumber(L, 3);
	struct cr_pool *pool = cr_supervisor_pool(name);
	int id;

	if (!pool)
		return push_error(L, -ENOENT);
	for (unsigned i = 0; i < pool->conf->nlisten; i++) {
		if (strcmp(pool->conf->listen_names[i], listen) || pool->conf->listen_fds[i] < 0)
			continue;
		if ((id = cr_timers_add_listen(cr_lua_active(), pool->conf->listen_fds[i], pause)) < 0)
			return push_error(L, id);
		lua_pushinteger(L, id);
		return 1;
	}
	lua_pushnil(L);
	lua_pushfstring(L, "pool %s has no listen socket %s", name, listen);
	return 2;
}

static int push_result(lua_State *L, int rc)
{
	if (rc == -ENOENT || rc == -ESRCH) {
		lua_pushnil(L);
		lua_pushstring(L, rc == -ENOENT ? "no such pool" : "no such worker");
		return 2;
	}
	if (rc < 0)
		return push_error(L, rc);
	lua_pushinteger(L, rc);
	return 1;
}

static int l_scale(lua_State *L)
{
	return push_result(L, cr_pool_scale(luaL_checkstring(L, 1), (unsigned)luaL_checkinteger(L, 2), lua_toboolean(L, 3)));
}

/* core.restart(pool, id, all_at_once, reason, rolling) */
static int l_restart(lua_State *L)
{
	struct cr_restart_how how = { .all_at_once = lua_toboolean(L, 3), .rolling = lua_toboolean(L, 5) };
	const char *reason = luaL_optstring(L, 4, "requested");

	if (!(how.reason = cr_restart_reason(reason)))
		return luaL_error(L, "corral.restart: reason must be requested, recycled or unhealthy, not %s", reason);
	return push_result(L, cr_pool_restart(luaL_checkstring(L, 1), (unsigned)luaL_optinteger(L, 2, 0), &how));
}

/* core.note(pool, id, key, value|nil) -> 0, or nil and why */
static int l_note(lua_State *L)
{
	int rc = cr_pool_note(luaL_checkstring(L, 1), (unsigned)luaL_checkinteger(L, 2), luaL_checkstring(L, 3),
			      luaL_optstring(L, 4, NULL));

	if (rc == -E2BIG) {
		lua_pushnil(L);
		lua_pushfstring(L, "too many notes (at most %d a pool or worker)", CR_NOTES_MAX);
		return 2;
	}
	return push_result(L, rc);
}

static int l_pool_stop(lua_State *L)
{
	return push_result(L, cr_pool_stop(luaL_checkstring(L, 1)));
}

static int l_pool_start(lua_State *L)
{
	return push_result(L, cr_pool_start(luaL_checkstring(L, 1)));
}

static int l_signal(lua_State *L)
{
	return push_result(L, cr_pool_signal(luaL_checkstring(L, 1), (unsigned)luaL_optinteger(L, 2, 0),
						   (int)luaL_checkinteger(L, 3)));
}

/* core.status_json([pool]) -> the JSON array corralctl gets */
static int l_status_json(lua_State *L)
{
	struct cr_buf b = { 0 };
	int rc = cr_status_report(&b, luaL_optstring(L, 1, NULL), 1);

	if (rc < 0 || b.failed) {
		cr_buf_free(&b);
		return push_result(L, rc < 0 ? rc : -ENOMEM);
	}
	lua_pushlstring(L, b.data ? b.data : "[]", b.data ? b.len : 2);
	cr_buf_free(&b);
	return 1;
}

/* core.timer(seconds, repeat) -> id */
static int l_timer(lua_State *L)
{
	int id = cr_timers_add(cr_lua_active(), luaL_checknumber(L, 1), lua_toboolean(L, 2));

	if (id < 0)
		return luaL_error(L, "corral: unable to add a timer: %s", strerror(-id));
	lua_pushinteger(L, id);
	return 1;
}

static int l_cancel(lua_State *L)
{
	int id = (int)luaL_checkinteger(L, 1);

	if (id >= CR_PLUGIO_FIRST_ID)
		cr_plugio_cancel(cr_lua_active(), id);
	else
		cr_timers_cancel(cr_lua_active(), id);
	return 0;
}

/* core.self_stats() -> { rss_bytes, open_fds, max_fds }: corrald's own */
static int l_self_stats(lua_State *L)
{
	char line[256];
	struct rlimit rl;
	struct dirent *d;
	long rss = -1, fds = 0;
	FILE *f = fopen("/proc/self/status", "re");
	DIR *dir;

	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &rss) == 1)
			break;
	if (f)
		fclose(f);
	if ((dir = opendir("/proc/self/fd"))) {
		while ((d = readdir(dir)))
			fds += d->d_name[0] != '.';
		closedir(dir);
		fds--;	/* the directory's own */
	}
	lua_createtable(L, 0, 3);
	if (rss >= 0) {
		lua_pushnumber(L, (lua_Number)rss * 1024);
		lua_setfield(L, -2, "rss_bytes");
	}
	lua_pushnumber(L, (lua_Number)fds);
	lua_setfield(L, -2, "open_fds");
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		lua_pushnumber(L, (lua_Number)rl.rlim_cur);
		lua_setfield(L, -2, "max_fds");
	}
	return 1;
}

/* A new server's or request's id, or nil and why. */
static int push_id(lua_State *L, int id, const char *err)
{
	if (id < 0) {
		lua_pushnil(L);
		lua_pushstring(L, err);
		return 2;
	}
	lua_pushinteger(L, id);
	return 1;
}

/* core.http_serve(address) -> id | nil, why */
static int l_http_serve(lua_State *L)
{
	char err[512];
	int id = cr_plugio_serve(cr_lua_active(), luaL_checkstring(L, 1), err, sizeof err);

	return push_id(L, id, err);
}

/* core.http_address(id) -> "HOST:PORT" | nil */
static int l_http_address(lua_State *L)
{
	char buf[128];

	if (cr_plugio_address(cr_lua_active(), (int)luaL_checkinteger(L, 1), buf, sizeof buf) < 0)
		return 0;
	lua_pushstring(L, buf);
	return 1;
}

/* core.http_request(method, url, body|nil, { "Name: value", ... }, timeout, connect_only)
 * -> id | nil, why */
static int l_http_request(lua_State *L)
{
	const char *method = luaL_checkstring(L, 1), *url = luaL_checkstring(L, 2), *body = NULL;
	size_t body_len = 0, nh;
	double timeout = luaL_checknumber(L, 5);
	char err[512];
	int id;

	if (!lua_isnoneornil(L, 3))
		body = luaL_checklstring(L, 3, &body_len);
	luaL_checktype(L, 4, LUA_TTABLE);
	nh = lua_objlen(L, 4);
	if (nh > 64)
		return luaL_error(L, "corral.http_request: at most 64 headers");
	{
		const char *headers[nh + 1];
		for (size_t i = 0; i < nh; i++) {
			lua_rawgeti(L, 4, (int)i + 1);
			headers[i] = luaL_checkstring(L, -1);	/* kept alive by the table */
			lua_pop(L, 1);
		}
		headers[nh] = NULL;
		id = cr_plugio_request(cr_lua_active(), method, url, body, body_len, headers, timeout,
				       lua_toboolean(L, 6), err, sizeof err);
	}
	return push_id(L, id, err);
}

/* A reload replaces the Lua state a handler runs in: it happens after the
 * handler, from the loop. */
static int l_reload(lua_State *L)
{
	(void)L;
	cr_reload_later();
	return 0;
}

#define CONFIG CR_IN(CR_PHASE_CONFIG)
#define PLUGIN CR_IN(CR_PHASE_PLUGIN)

static const struct cr_lua_fn fns[] = {
	{ "log", l_log, CR_IN_ANY },
	{ "phase", l_phase, CR_IN_ANY },
	{ "now", l_now, CR_IN_ANY },
	{ "getpid", l_getpid, CR_IN_ANY },
	{ "setenv", l_setenv, CR_IN_WORKER },
	{ "stopping", l_stopping, CR_IN_WORKER },
	{ "sleep", l_sleep, CR_IN(CR_PHASE_PREFORK) | CR_IN_WORKER },
	{ "ready", l_ready, CR_IN_WORKER },
	{ "load", l_load, CR_IN_WORKER },
	{ "requests", l_requests, CR_IN_WORKER },
	{ "signum", l_signum, CR_IN_ANY },
	{ "duration", l_duration, CR_IN_ANY },
	{ "getpwnam", l_getpwnam, CONFIG },
	{ "getgrnam", l_getgrnam, CONFIG },
	{ "capability", l_capability, CONFIG },
	{ "environ", l_environ, CONFIG },
	{ "plugin_path", l_plugin_path, CONFIG },
	{ "loadfile", l_loadfile, CONFIG },
	{ "scale", l_scale, PLUGIN },
	{ "restart", l_restart, PLUGIN },
	{ "note", l_note, PLUGIN },
	{ "pool_stop", l_pool_stop, PLUGIN },
	{ "pool_start", l_pool_start, PLUGIN },
	{ "signal", l_signal, PLUGIN },
	{ "status_json", l_status_json, PLUGIN },
	{ "reload", l_reload, PLUGIN },
	{ "timer", l_timer, PLUGIN },
	{ "cancel", l_cancel, PLUGIN },
	{ "http_serve", l_http_serve, PLUGIN },
	{ "self_stats", l_self_stats, PLUGIN },
	{ "http_address", l_http_address, PLUGIN },
	{ "http_request", l_http_request, PLUGIN },
	{ "freeze", l_freeze, PLUGIN },
	{ "pools", l_pools, PLUGIN },
	{ "stats", l_stats, PLUGIN },
	{ "read_pressure", l_read_pressure, PLUGIN },
	{ "psi_trigger", l_psi_trigger, PLUGIN },
	{ "listen_watch", l_listen_watch, PLUGIN },
	{ NULL, NULL, 0 },
};

void cr_bindings_open(lua_State *L)
{
	cr_lua_register(L, fns);
}
