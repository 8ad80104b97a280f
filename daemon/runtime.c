/*
 * runtime.c: Lua that runs inside corrald after startup: the supervisor's
 * events go to the handlers that the config and its plugins registered
 * (corral.on), and plugins get timers and PSI triggers. Every call into
 * Lua goes through cr_lua_plugin_call(): a time budget, JIT off, errors
 * logged. Timers and triggers belong to one config's Lua state and die
 * with it at a reload.
 *
 * PSI triggers: a trigger is a pressure file we wrote "some|full STALL
 * WINDOW" to; the kernel signals it with POLLPRI, which ev_io cannot wait
 * for. Each trigger gets an epoll set of its own holding just that fd
 * (EPOLLPRI), and libev watches the set's fd: polling a trigger consumes
 * its event, so the set's readiness is the only sign we get, and one set
 * per trigger says which one fired.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <lauxlib.h>

#include "cgroup.h"
#include "crlua.h"
#include "json.h"
#include "layout.h"
#include "log.h"
#include "runtime.h"
#include "supervisor.h"

enum cb_kind { CB_TIMER, CB_PSI };

struct cb {
	int id;
	enum cb_kind kind;
	lua_State *L;
	ev_timer timer;
	int fd;			/* CB_PSI: the pressure file */
	int epfd;		/* CB_PSI: an epoll set holding only fd */
	ev_io io;		/* CB_PSI: on epfd */
	struct cb *next;
};

static struct {
	struct ev_loop *loop;
	lua_State *L;		/* the current config's state */
	struct cb *cbs;
	int next_id;
} R;

static int reload_pending;	/* corral.reload(): after the handler */
static ev_idle reload_idle;

static void cb_free(struct cb *c)
{
	if (c->kind == CB_TIMER)
		ev_timer_stop(R.loop, &c->timer);
	if (c->kind == CB_PSI) {
		ev_io_stop(R.loop, &c->io);
		if (c->epfd >= 0)
			close(c->epfd);
	}
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

static void cb_remove(struct cb *c)
{
	for (struct cb **pp = &R.cbs; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			cb_free(c);
			return;
		}
	}
}

static struct cb *cb_find(int id)
{
	for (struct cb *c = R.cbs; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

/* corral._fire(id) in the callback's state */
static void fire(struct cb *c)
{
	lua_State *L = c->L;
	int id = c->id;

	if (c->kind == CB_TIMER && !ev_is_active(&c->timer))
		cb_remove(c);	/* a one-shot timer is done */
	if (cr_lua_plugin_fn(L, "_fire") < 0)
		return;
	lua_pushinteger(L, id);
	cr_lua_plugin_call(L, 1, "timer or trigger");
}

static void timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	fire(t->data);
}

static void psi_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct cb *c = io->data;
	struct epoll_event ev;
	int n;

	(void)loop;
	(void)revents;
	/* the event itself was consumed when the set was polled; this only
	 * tells a gone cgroup (an error) from a trigger */
	n = epoll_wait(c->epfd, &ev, 1, 0);
	if (n > 0 && (ev.events & (EPOLLERR | EPOLLHUP))) {
		cr_warn(NULL, "plugin: PSI trigger %d stopped: its pool's cgroup is gone", c->id);
		cb_remove(c);
		return;
	}
	fire(c);
}

void cr_runtime_init(struct ev_loop *loop)
{
	R.loop = loop;
}

void cr_runtime_forget(lua_State *L)
{
	struct cb **pp = &R.cbs;

	while (*pp) {
		struct cb *c = *pp;
		if (c->L == L) {
			*pp = c->next;
			cb_free(c);
		} else {
			pp = &c->next;
		}
	}
	if (R.L == L)
		R.L = NULL;
}

void cr_runtime_activate(lua_State *L)
{
	if (R.L && R.L != L)
		cr_runtime_forget(R.L);
	R.L = L;
	cr_runtime_emit("config", &(struct cr_event){ 0 });
}

void cr_runtime_finish(void)
{
	if (reload_pending) {
		ev_idle_stop(R.loop, &reload_idle);
		reload_pending = 0;
	}
	while (R.cbs) {
		struct cb *c = R.cbs;
		R.cbs = c->next;
		cb_free(c);
	}
	R.L = NULL;
}

void cr_runtime_emit(const char *event, const struct cr_event *ev)
{
	lua_State *L = R.L;

	if (!L || cr_lua_plugin_fn(L, "_emit") < 0)
		return;
	lua_pushstring(L, event);
	lua_newtable(L);
	lua_pushstring(L, event);
	lua_setfield(L, -2, "event");
	if (ev->pool) {
		lua_pushstring(L, ev->pool);
		lua_setfield(L, -2, "pool");
	}
	if (ev->worker) {
		lua_pushinteger(L, ev->worker);
		lua_setfield(L, -2, "worker");
	}
	if (ev->pid) {
		lua_pushinteger(L, ev->pid);
		lua_setfield(L, -2, "pid");
	}
	if (ev->exited) {
		lua_pushinteger(L, ev->code);
		lua_setfield(L, -2, "code");
	}
	if (ev->signal) {
		lua_pushinteger(L, ev->signal);
		lua_setfield(L, -2, "signal");
	}
	if (!strcmp(event, "worker_exited") || !strcmp(event, "oom")) {
		lua_pushboolean(L, ev->oom);
		lua_setfield(L, -2, "oom");
	}
	if (ev->message) {
		lua_pushstring(L, ev->message);
		lua_setfield(L, -2, "message");
	}
	cr_lua_plugin_call(L, 2, event);
}

void cr_runtime_emit_pool(const char *event, const char *pool)
{
	cr_runtime_emit(event, &(struct cr_event){ .pool = pool });
}

/* ---- primitives --------------------------------------------------------- */

static struct cb *cb_new(lua_State *L, enum cb_kind kind)
{
	struct cb *c = calloc(1, sizeof *c);

	if (!c) {
		luaL_error(L, "out of memory");
		return NULL;
	}
	c->id = ++R.next_id;
	c->kind = kind;
	c->L = L;
	c->fd = c->epfd = -1;
	c->next = R.cbs;
	R.cbs = c;
	return c;
}

/* core.timer(seconds, repeat) -> id */
static int l_timer(lua_State *L)
{
	double s = luaL_checknumber(L, 1);
	int repeat = lua_toboolean(L, 2);
	struct cb *c = cb_new(L, CB_TIMER);

	ev_timer_init(&c->timer, timer_cb, s, repeat ? s : 0);
	c->timer.data = c;
	ev_timer_start(R.loop, &c->timer);
	lua_pushinteger(L, c->id);
	return 1;
}

static int l_cancel(lua_State *L)
{
	struct cb *c = cb_find((int)luaL_checkinteger(L, 1));

	if (c && c->L == L)
		cb_remove(c);
	return 0;
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

	if (!cr_supervisor_pool_exists(pool))
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
	struct epoll_event ev = { .events = EPOLLPRI };
	struct cb *c;
	int fd, e;

	if (!cr_supervisor_pool_exists(pool) || cr_layout_pool_dir(dir, sizeof dir, pool) < 0)
		return push_error(L, -ENOENT);
	snprintf(path, sizeof path, "%s/%s.pressure", dir, resource);
	fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return push_error(L, -errno);
	if (write(fd, spec, strlen(spec) + 1) < 0) {
		e = errno;
		close(fd);
		return push_error(L, -e);
	}
	c = cb_new(L, CB_PSI);
	c->fd = fd;
	c->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (c->epfd < 0 || epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		e = errno;
		cb_remove(c);
		return push_error(L, -e);
	}
	ev_io_init(&c->io, psi_cb, c->epfd, EV_READ);
	c->io.data = c;
	ev_io_start(R.loop, &c->io);
	lua_pushinteger(L, c->id);
	return 1;
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
	return push_result(L, cr_supervisor_scale(luaL_checkstring(L, 1), (unsigned)luaL_checkinteger(L, 2)));
}

static int l_restart(lua_State *L)
{
	return push_result(L, cr_supervisor_restart(luaL_checkstring(L, 1), (unsigned)luaL_optinteger(L, 2, 0),
						    lua_toboolean(L, 3)));
}

static int l_pool_stop(lua_State *L)
{
	return push_result(L, cr_supervisor_pool_stop(luaL_checkstring(L, 1)));
}

static int l_pool_start(lua_State *L)
{
	return push_result(L, cr_supervisor_pool_start(luaL_checkstring(L, 1)));
}

static int l_signal(lua_State *L)
{
	return push_result(L, cr_supervisor_signal(luaL_checkstring(L, 1), (unsigned)luaL_optinteger(L, 2, 0),
						   (int)luaL_checkinteger(L, 3)));
}

/* core.status_json([pool]) -> the JSON array corralctl gets */
static int l_status_json(lua_State *L)
{
	struct cr_buf b = { 0 };
	int rc = cr_supervisor_status(&b, luaL_optstring(L, 1, NULL), 1);

	if (rc < 0 || b.failed) {
		cr_buf_free(&b);
		return push_result(L, rc < 0 ? rc : -ENOMEM);
	}
	lua_pushlstring(L, b.data ? b.data : "[]", b.data ? b.len : 2);
	cr_buf_free(&b);
	return 1;
}

static void reload_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	(void)revents;
	ev_idle_stop(loop, w);
	reload_pending = 0;
	cr_supervisor_reload(NULL, 0);
}

/* A reload replaces the Lua state a handler runs in: it happens after the
 * handler, from the loop. */
static int l_reload(lua_State *L)
{
	(void)L;
	if (!reload_pending) {
		reload_pending = 1;
		ev_idle_init(&reload_idle, reload_cb);
		ev_idle_start(R.loop, &reload_idle);
	}
	return 0;
}

static const luaL_Reg runtime_funcs[] = {
	{ "scale", l_scale },
	{ "restart", l_restart },
	{ "pool_stop", l_pool_stop },
	{ "pool_start", l_pool_start },
	{ "signal", l_signal },
	{ "status_json", l_status_json },
	{ "reload", l_reload },
	{ "timer", l_timer },
	{ "cancel", l_cancel },
	{ "freeze", l_freeze },
	{ "pools", l_pools },
	{ "stats", l_stats },
	{ "read_pressure", l_read_pressure },
	{ "psi_trigger", l_psi_trigger },
	{ NULL, NULL },
};

void cr_runtime_register(lua_State *L)
{
	luaL_register(L, NULL, runtime_funcs);
}
