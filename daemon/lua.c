/*
 * lua.c: corral's LuaJIT states and the one path by which C calls Lua.
 * It makes the states (the config's, inherited by prototypes and
 * workers), runs a config and hands config.c a plain C copy of the
 * result, delivers events and timer callbacks to the active state inside
 * corrald's time budget, runs the hooks in prototypes and workers, and
 * gives Lua the primitives that need its own state (budget_call, exec).
 * The rest of corral.core is bindings.c's. What a config means is config.c's business.
 *
 * Every call into Lua is protected (a traceback handler under the
 * function, lua_pcall), checks that it leaves the stack as it found it,
 * and anything that builds Lua values for a call (event tables, the copy
 * of a config) runs inside a protected call too: an allocation failure is
 * an error, never a panic.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>
#include <luajit.h>

#include "config.h"
#include "crlua.h"
#include "json.h"
#include "log.h"
#include "luapat.h"
#include "proctitle.h"
#include "spawn.h"
#include "plugio.h"
#include "timers.h"
#include "unixmsg.h"

struct cr_lua {
	lua_State *L;
	size_t used, limit;		/* bytes: the allocator's count, and its cap */
	lua_Alloc base_alloc;		/* LuaJIT's own, which does the work */
	void *base_ud;
	/* corral's entry points, looked up once */
	int ref_emit, ref_fire, ref_new_worker, ref_command;
};

static const char *const phase_names[] = {
	[CR_PHASE_CONFIG] = "config", [CR_PHASE_PLUGIN] = "plugin", [CR_PHASE_PREFORK] = "prefork",
	[CR_PHASE_SETUP] = "setup", [CR_PHASE_START] = "start",
};

static struct {
	enum cr_phase phase;
	struct cr_who who;
	const struct cr_pool_conf *pc;
	char **exec_argv;		/* worker:exec() was called: unwinding to exec */
	struct cr_lua *active;
	void (*open_more)(lua_State *L);
	char dir[PATH_MAX];		/* corral's Lua modules */
} ctx;

/* Config code that runs longer than this inside corrald is stopped. */
#define BUDGET_SECONDS 10.0
/* Run-time calls into Lua from corrald (events, timers) get this long. */
#define PLUGIN_BUDGET_SECONDS 1.0
/* A state inside corrald may hold this much; prototypes and workers have
 * no cap of corral's (their cgroup's memory limits apply). */
#define MEMORY_LIMIT ((size_t)256 << 20)

static double monotonic(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *cr_lua_phase_name(void)
{
	return phase_names[ctx.phase];
}

/* ---- the protected call path --------------------------------------------- */

static int traceback(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);

	if (!msg) {
		if (luaL_callmeta(L, 1, "__tostring") && lua_isstring(L, -1))
			return 1;
		msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	}
	/* the first line stays "file:line: message"; the traceback follows */
	luaL_traceback(L, L, msg, 1);
	return 1;
}

/* Calls the function under nargs arguments with a traceback handler. On
 * error returns -1 and leaves the message (first line: file:line) on the
 * stack in place of the results. */
static int pcall(lua_State *L, int nargs, int nresults)
{
	int base = lua_gettop(L) - nargs;	/* the function's slot */
	int rc;

	lua_pushcfunction(L, traceback);
	lua_insert(L, base);
	rc = lua_pcall(L, nargs, nresults, base);
	lua_remove(L, base);
	return rc == 0 ? 0 : -1;
}

/* An error outside any protected call: nothing is left to catch it.
 * Every call here is protected, so this is a bug of corral's. */
static int panic(lua_State *L)
{
	const char *msg = lua_tostring(L, -1);

	cr_alert(NULL, "lua: unprotected error: %s", msg ? msg : "(no message)");
	return 0;
}

/* The stack of an entry point is where it started once it is done. */
static void check_stack(lua_State *L, int top, const char *where)
{
	if (lua_gettop(L) != top) {
		cr_alert(NULL, "lua: %s left the stack at %d, not %d", where, lua_gettop(L), top);
		lua_settop(L, top);
	}
}

static double budget_deadline, budget_seconds;
static int budget_on;

/* For luapat.c: the budget, once it is spent. */
static double budget_spent(void)
{
	return budget_on && monotonic() > budget_deadline ? budget_seconds : 0;
}

static void budget_hook(lua_State *L, lua_Debug *ar)
{
	if (monotonic() <= budget_deadline)
		return;
	lua_getinfo(L, "Sl", ar);
	luaL_error(L, "%s:%d: took longer than %gs, stopped", ar->short_src,
		   ar->currentline, budget_seconds);
}

/* pcall() with a wall-clock budget; the JIT is off in corrald's states,
 * so the count hook is reached even in a tight loop. */
static int budget_pcall(lua_State *L, int nargs, int nresults, double seconds)
{
	int rc, was_on = budget_on;

	budget_seconds = seconds;
	budget_deadline = monotonic() + seconds;
	budget_on = 1;
	lua_sethook(L, budget_hook, LUA_MASKCOUNT, 10000);
	rc = pcall(L, nargs, nresults);
	lua_sethook(L, NULL, 0, 0);
	budget_on = was_on;
	return rc;
}

/* Calls a function of the active state from corrald at run time: the
 * arguments are made by `push` inside a protected call (so that running
 * out of memory there is an error, not a panic), then the function runs
 * in the "plugin" phase with its budget. An error is logged naming what
 * was being called. */
static void plugin_call(int ref, int (*push)(lua_State *L), void *arg, const char *what)
{
	struct cr_lua *lua = ctx.active;
	enum cr_phase saved = ctx.phase;
	lua_State *L;
	int top, nargs;

	if (!lua || ref == LUA_NOREF)
		return;
	L = lua->L;
	top = lua_gettop(L);
	lua_pushcfunction(L, push);
	lua_pushlightuserdata(L, arg);
	if (pcall(L, 1, LUA_MULTRET) != 0) {
		cr_error(NULL, "plugin: %s: unable to call the handlers: %s", what, lua_tostring(L, -1));
		lua_settop(L, top);
		return;
	}
	nargs = lua_gettop(L) - top;
	lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
	lua_insert(L, top + 1);
	ctx.phase = CR_PHASE_PLUGIN;
	if (budget_pcall(L, nargs, 0, PLUGIN_BUDGET_SECONDS) != 0) {
		const char *msg = lua_tostring(L, -1);
		cr_error(NULL, "plugin: %s: %.*s", what, msg ? (int)strcspn(msg, "\n") : 5, msg ? msg : "error");
		lua_pop(L, 1);
		/* what a failed handler built (up to the cap) goes now, not later */
		lua_gc(L, LUA_GCCOLLECT, 0);
	}
	ctx.phase = saved;
	check_stack(L, top, what);
}

/* ---- events and timers --------------------------------------------------- */

static void set_int(lua_State *L, const char *key, lua_Number v)
{
	lua_pushnumber(L, v);
	lua_setfield(L, -2, key);
}

/* (event) -> name, { event = name, pool = ..., ... } */
static int push_event(lua_State *L)
{
	const struct cr_event *ev = lua_touserdata(L, 1);

	lua_settop(L, 0);
	lua_pushstring(L, ev->name);
	lua_createtable(L, 0, 8);
	lua_pushstring(L, ev->name);
	lua_setfield(L, -2, "event");
	if (ev->pool[0]) {
		lua_pushstring(L, ev->pool);
		lua_setfield(L, -2, "pool");
	}
	if (ev->worker)
		set_int(L, "worker", ev->worker);
	if (ev->pid)
		set_int(L, "pid", ev->pid);
	if (ev->exited)
		set_int(L, "code", ev->code);
	if (ev->signal)
		set_int(L, "signal", ev->signal);
	if (!strcmp(ev->name, "worker_exited") || !strcmp(ev->name, "oom")) {
		lua_pushboolean(L, ev->oom);
		lua_setfield(L, -2, "oom");
		if (ev->reason) {
			lua_pushstring(L, ev->reason);
			lua_setfield(L, -2, "reason");
		}
	}
	return 2;
}

void cr_lua_emit(const struct cr_event *ev)
{
	if (ctx.active)
		plugin_call(ctx.active->ref_emit, push_event, (void *)(uintptr_t)ev, ev->name);
}

static int push_id(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)(intptr_t)lua_touserdata(L, 1));
	return 1;
}

/* ---- plugins' network I/O (plugio.c) ---------------------------------------- */

struct io_call {
	int id;
	const struct cr_http_in *in;
	const struct cr_http_res *res;
};

/* The answer of the HTTP handler running now (core.http_reply fills it). */
static struct cr_http_out *http_out;

static void set_str(lua_State *L, const char *key, const char *v, size_t n)
{
	lua_pushlstring(L, v, n);
	lua_setfield(L, -2, key);
}

/* (id, { method, path, query, body, peer }) */
static int push_http_in(lua_State *L)
{
	const struct io_call *c = lua_touserdata(L, 1);

	lua_pushinteger(L, c->id);
	lua_createtable(L, 0, 5);
	set_str(L, "method", c->in->method, strlen(c->in->method));
	set_str(L, "path", c->in->path, strlen(c->in->path));
	set_str(L, "query", c->in->query, strlen(c->in->query));
	set_str(L, "body", c->in->body, c->in->body_len);
	set_str(L, "peer", c->in->peer, strlen(c->in->peer));
	return 2;
}

/* (id, { status, body, content_type, seconds } | nil, error) */
static int push_http_res(lua_State *L)
{
	const struct io_call *c = lua_touserdata(L, 1);

	lua_pushinteger(L, c->id);
	if (!c->res->ok) {
		lua_pushnil(L);
		lua_pushstring(L, c->res->error ? c->res->error : "failed");
		return 3;
	}
	lua_createtable(L, 0, 5);
	set_int(L, "status", (lua_Number)c->res->status);
	set_str(L, "body", c->res->body ? c->res->body : "", c->res->body ? c->res->body_len : 0);
	if (c->res->content_type)
		set_str(L, "content_type", c->res->content_type, strlen(c->res->content_type));
	set_int(L, "seconds", c->res->seconds);
	if (c->res->error)
		set_str(L, "warning", c->res->error, strlen(c->res->error));
	lua_pushnil(L);
	return 3;
}

void cr_lua_http_serve(void *owner, int id, const struct cr_http_in *in, struct cr_http_out *out)
{
	struct io_call c = { .id = id, .in = in };
	struct cr_lua *lua = owner;

	if (lua != ctx.active)
		return;	/* out stays empty: a 500 */
	http_out = out;
	plugin_call(lua->ref_fire, push_http_in, &c, "HTTP handler");
	http_out = NULL;
}

void cr_lua_io_done(void *owner, int id, const struct cr_http_res *res)
{
	struct io_call c = { .id = id, .res = res };
	struct cr_lua *lua = owner;

	if (lua == ctx.active)
		plugin_call(lua->ref_fire, push_http_res, &c, "network request");
}

/* core.http_reply(status, body, content_type): the running HTTP
 * handler's answer (its wrapper in init.lua calls this) */
static int l_http_reply(lua_State *L)
{
	int status = (int)luaL_checkinteger(L, 1);
	size_t n = 0;
	const char *body = luaL_optlstring(L, 2, "", &n);
	const char *type = luaL_optstring(L, 3, NULL);

	if (!http_out)
		return luaL_error(L, "corral: an answer outside of an HTTP handler");
	if (status < 100 || status > 599)
		return luaL_error(L, "corral.http_serve: the handler's status must be 100..599, got %d", status);
	free(http_out->body);
	free(http_out->content_type);
	http_out->body = malloc(n + 1);
	http_out->content_type = type ? strdup(type) : NULL;
	if (!http_out->body)
		return luaL_error(L, "corral: out of memory");
	memcpy(http_out->body, body, n);
	http_out->body_len = n;
	http_out->status = status;
	return 0;
}

void cr_lua_fire(void *owner, int id)
{
	struct cr_lua *lua = owner;

	if (lua == ctx.active)
		plugin_call(lua->ref_fire, push_id, (void *)(intptr_t)id, "timer or trigger");
}

void cr_lua_activate(struct cr_lua *lua)
{
	if (ctx.active && ctx.active != lua) {
		cr_timers_forget(ctx.active);
		cr_plugio_forget(ctx.active);
	}
	ctx.active = lua;
}

struct cr_lua *cr_lua_active(void)
{
	return ctx.active;
}

/* ---- plugin commands ------------------------------------------------------ */

struct command_call {
	const char *plugin, *name, *args;
	size_t argslen;
	int text, may_change;
	unsigned uid;
};

/* (struct command_call) -> plugin, name, args, text, refused_uid */
static int push_command(lua_State *L)
{
	const struct command_call *c = lua_touserdata(L, 1);

	lua_settop(L, 0);
	if (c->plugin)
		lua_pushstring(L, c->plugin);
	else
		lua_pushnil(L);
	lua_pushstring(L, c->name ? c->name : "");
	if (c->args)
		lua_pushlstring(L, c->args, c->argslen);
	else
		lua_pushnil(L);
	lua_pushboolean(L, c->text);
	if (c->may_change)
		lua_pushnil(L);
	else
		lua_pushinteger(L, c->uid);
	return 5;
}

int cr_lua_command(const char *plugin, const char *name, const char *args, size_t argslen, int text,
		   int may_change, unsigned uid, struct cr_buf *out)
{
	struct command_call call = { plugin, name, args, argslen, text, may_change, uid };
	struct cr_lua *lua = ctx.active;
	enum cr_phase saved = ctx.phase;
	const char *answer;
	size_t len;
	lua_State *L;
	int top, rc;

	if (!lua || lua->ref_command == LUA_NOREF)
		return -ENOENT;
	L = lua->L;
	top = lua_gettop(L);
	lua_pushcfunction(L, push_command);
	lua_pushlightuserdata(L, &call);
	if (pcall(L, 1, LUA_MULTRET) != 0) {
		lua_settop(L, top);
		return -ENOMEM;
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, lua->ref_command);
	lua_insert(L, top + 1);
	ctx.phase = CR_PHASE_PLUGIN;
	rc = budget_pcall(L, lua_gettop(L) - top - 1, 1, PLUGIN_BUDGET_SECONDS);
	ctx.phase = saved;
	answer = lua_tolstring(L, -1, &len);
	if (rc != 0 || !answer) {
		cr_error(NULL, "plugin: command %s %s: %.*s", plugin ? plugin : "(list)", name ? name : "",
			 answer ? (int)strcspn(answer, "\n") : 5, answer ? answer : "error");
		lua_settop(L, top);
		lua_gc(L, LUA_GCCOLLECT, 0);
		return -EIO;
	}
	cr_buf_add(out, answer, len);
	lua_settop(L, top);
	check_stack(L, top, "command");
	return 0;
}

/* ---- primitives of the process Lua runs in -------------------------------- */

static int gate(lua_State *L)
{
	const struct cr_lua_fn *f = lua_touserdata(L, lua_upvalueindex(1));

	if (!(f->phases & CR_IN(ctx.phase)))
		return luaL_error(L, "corral.core.%s: not available in %s", f->name, phase_names[ctx.phase]);
	return f->fn(L);
}

void cr_lua_register(lua_State *L, const struct cr_lua_fn *fns)
{
	for (const struct cr_lua_fn *f = fns; f->name; f++) {
		lua_pushlightuserdata(L, (void *)(uintptr_t)f);
		lua_pushcclosure(L, gate, 1);
		lua_setfield(L, -2, f->name);
	}
}

/* An error object of its own: worker:exec() unwinds the Lua body with it. */
static char exec_unwind;

/* corral.core.exec(argv): the worker's Lua code unwinds, and spawn.c
 * execs argv once cr_lua_worker() has returned it. */
static int l_exec(lua_State *L)
{
	int n;
	char **argv;

	luaL_checktype(L, 1, LUA_TTABLE);
	n = (int)lua_objlen(L, 1);
	for (int i = 1; i <= n; i++) {
		lua_rawgeti(L, 1, i);
		if (!lua_isstring(L, -1))
			return luaL_error(L, "exec: argv[%d] is not a string", i);
		lua_pop(L, 1);
	}
	argv = calloc((size_t)n + 1, sizeof *argv);
	for (int i = 0; argv && i < n; i++) {
		lua_rawgeti(L, 1, i + 1);
		if (!(argv[i] = strdup(lua_tostring(L, -1)))) {
			for (int k = 0; k < i; k++)
				free(argv[k]);
			free(argv);
			argv = NULL;
		}
		lua_pop(L, 1);
	}
	if (!argv)
		return luaL_error(L, "exec: out of memory");
	ctx.exec_argv = argv;
	lua_pushlightuserdata(L, &exec_unwind);
	return lua_error(L);
}

/* corral.core.budget_call(f, ...) -> true, results... | false, message */
static int l_budget_call(lua_State *L)
{
	int n = lua_gettop(L), rc;

	luaL_checktype(L, 1, LUA_TFUNCTION);
	rc = budget_pcall(L, n - 1, LUA_MULTRET, BUDGET_SECONDS);
	lua_pushboolean(L, rc == 0);
	lua_insert(L, 1);
	return lua_gettop(L);
}

/* core.renew_budget(): each plugin handler gets the whole budget */
static int l_renew_budget(lua_State *L)
{
	(void)L;
	budget_deadline = monotonic() + budget_seconds;
	return 0;
}

/* core.budget_used() -> seconds since the budget was renewed, the budget */
static int l_budget_used(lua_State *L)
{
	lua_pushnumber(L, monotonic() - (budget_deadline - budget_seconds));
	lua_pushnumber(L, budget_seconds);
	return 2;
}

static const struct cr_lua_fn process_fns[] = {
	{ "budget_used", l_budget_used, CR_IN(CR_PHASE_PLUGIN) },
	{ "budget_call", l_budget_call, CR_IN(CR_PHASE_CONFIG) },
	{ "renew_budget", l_renew_budget, CR_IN(CR_PHASE_PLUGIN) },
	{ "exec", l_exec, CR_IN_WORKER },
	{ "http_reply", l_http_reply, CR_IN(CR_PHASE_PLUGIN) },
	{ NULL, NULL, 0 },
};

/* ---- states ---------------------------------------------------------------- */

void cr_lua_init(const char *dir, void (*open_more)(lua_State *L))
{
	snprintf(ctx.dir, sizeof ctx.dir, "%s", dir);
	ctx.open_more = open_more;
}

const char *cr_lua_dir(void)
{
	return ctx.dir;
}

const struct cr_who *cr_lua_who(void)
{
	return ctx.phase <= CR_PHASE_PLUGIN ? NULL : &ctx.who;
}

double cr_lua_now(void)
{
	return monotonic();
}

/* The allocator of corrald's states: LuaJIT's own, with a cap on what
 * one state may hold, so that string.rep or table.concat of gigabytes is
 * an error ("not enough memory") rather than corrald's end. */
static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct cr_lua *lua = ud;
	size_t old = ptr ? osize : 0;
	void *p;

	if (nsize > old && nsize - old > lua->limit - lua->used)
		return NULL;
	p = lua->base_alloc(lua->base_ud, ptr, osize, nsize);
	if (nsize == 0 || p) {
		/* what it held before the cap was put on is not counted */
		lua->used -= old < lua->used ? old : lua->used;
		lua->used += nsize;
	}
	return p;
}

static int open_state(lua_State *L)
{
	const char *dir = lua_touserdata(L, 1);

	luaL_openlibs(L);
	luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
	cr_luapat_install(L);
	lua_getglobal(L, "package");
	lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", dir, dir);
	lua_setfield(L, -2, "path");
	lua_pushstring(L, "");
	lua_setfield(L, -2, "cpath");
	lua_getfield(L, -1, "loaded");
	lua_newtable(L);
	cr_lua_register(L, process_fns);
	if (ctx.open_more)
		ctx.open_more(L);
	lua_pushstring(L, CR_VERSION);
	lua_setfield(L, -2, "version");
	lua_setfield(L, -2, "corral.core");
	lua_settop(L, 0);
	return 0;
}

/* ---- a config, copied out of Lua ------------------------------------------ */

void cr_lua_value_free(struct cr_value *v)
{
	if (!v)
		return;
	free(v->string);
	for (unsigned i = 0; i < v->n; i++) {
		free(v->entries[i].key);
		cr_lua_value_free(&v->entries[i].value);
	}
	free(v->entries);
	v->entries = NULL;
	v->n = 0;
}

#define COPY_DEPTH 8

/* Fills v from the value at idx (an absolute index). Inside a protected
 * call: errors (out of memory, too deep) unwind with v still freeable. */
static void copy_value(lua_State *L, int idx, struct cr_value *v, int depth)
{
	size_t len;
	const char *s;

	memset(v, 0, sizeof *v);
	switch (lua_type(L, idx)) {
	case LUA_TBOOLEAN:
		v->type = CR_V_BOOLEAN;
		v->number = lua_toboolean(L, idx);
		return;
	case LUA_TNUMBER:
		v->type = CR_V_NUMBER;
		v->number = lua_tonumber(L, idx);
		return;
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &len);
		if (!(v->string = malloc(len + 1)))
			luaL_error(L, "out of memory");
		memcpy(v->string, s, len + 1);
		v->len = len;
		v->type = CR_V_STRING;
		return;
	case LUA_TFUNCTION:
		lua_pushvalue(L, idx);
		v->ref = luaL_ref(L, LUA_REGISTRYINDEX);
		v->type = CR_V_FUNCTION;
		return;
	case LUA_TTABLE:
		break;
	default:
		v->type = CR_V_NIL;
		return;
	}
	if (depth > COPY_DEPTH)
		luaL_error(L, "config: nested deeper than %d tables", COPY_DEPTH);
	v->type = CR_V_TABLE;
	unsigned items = (unsigned)lua_objlen(L, idx), total = items;
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		total += lua_type(L, -2) == LUA_TSTRING;
		lua_pop(L, 1);
	}
	if (total && !(v->entries = calloc(total, sizeof *v->entries)))
		luaL_error(L, "out of memory");
	for (unsigned i = 0; i < items; i++) {
		lua_rawgeti(L, idx, (int)i + 1);
		v->n++;
		copy_value(L, lua_gettop(L), &v->entries[i].value, depth + 1);
		lua_pop(L, 1);
	}
	v->nitems = items;
	lua_pushnil(L);
	while (lua_next(L, idx) && v->n < total) {
		if (lua_type(L, -2) == LUA_TSTRING) {
			struct cr_value_entry *e = &v->entries[v->n++];
			if (!(e->key = strdup(lua_tostring(L, -2))))
				luaL_error(L, "out of memory");
			copy_value(L, lua_gettop(L), &e->value, depth + 1);
		}
		lua_pop(L, 1);
	}
	lua_settop(L, idx);
}

/* (value, struct cr_value *) -> the copy, made in place */
static int copy_protected(lua_State *L)
{
	copy_value(L, 1, lua_touserdata(L, 2), 0);
	return 0;
}

/* Looks up corral's entry points once. */
static int find_entry_points(lua_State *L)
{
	struct cr_lua *lua = lua_touserdata(L, 1);
	static const char *const names[] = { "_emit", "_fire", "_new_worker", "_command" };
	int *refs[] = { &lua->ref_emit, &lua->ref_fire, &lua->ref_new_worker, &lua->ref_command };

	lua_getglobal(L, "require");
	lua_pushstring(L, "corral");
	lua_call(L, 1, 1);	/* protected: we run under pcall() */
	for (int i = 0; i < 4; i++) {
		lua_getfield(L, -1, names[i]);
		luaL_checktype(L, -1, LUA_TFUNCTION);
		*refs[i] = luaL_ref(L, LUA_REGISTRYINDEX);
	}
	return 0;
}

static char *first_line_dup(const char *prefix, const char *msg)
{
	size_t n = strlen(prefix) + (msg ? strlen(msg) : 16) + 1;
	char *s = malloc(n);

	if (s)
		snprintf(s, n, "%s%s", prefix, msg ? msg : "unknown error");
	return s;
}

struct cr_lua *cr_lua_load_config(const char *path, struct cr_value **result, char **err, int partial)
{
	struct cr_lua *lua = calloc(1, sizeof *lua);
	struct cr_value *v = calloc(1, sizeof *v);
	lua_State *L;

	*err = NULL;
	*result = NULL;
	if (!lua || !v)
		goto fail_oom;
	lua->limit = MEMORY_LIMIT;
	cr_luapat_budget(budget_spent);
	if (!(lua->L = L = luaL_newstate()))
		goto fail_oom;
	lua->base_alloc = lua_getallocf(L, &lua->base_ud);
	lua_setallocf(L, limited_alloc, lua);
	lua->ref_emit = lua->ref_fire = lua->ref_new_worker = lua->ref_command = LUA_NOREF;
	lua_atpanic(L, panic);
	lua_pushcfunction(L, open_state);
	lua_pushlightuserdata(L, (void *)(uintptr_t)cr_lua_dir());
	if (pcall(L, 1, 0) != 0)
		goto fail_internal;

	ctx.phase = CR_PHASE_CONFIG;
	lua_getglobal(L, "require");
	lua_pushstring(L, "corral.config");
	if (pcall(L, 1, 1) != 0)
		goto fail_internal;
	lua_getfield(L, -1, "load");
	lua_pushstring(L, path);
	if (pcall(L, 1, 3) != 0)
		goto fail_internal;
	if (lua_isnil(L, -3)) {
		const char *msg = lua_tostring(L, -2);
		/* LuaJIT's memory error has no position: say where and why */
		if (msg && !strcmp(msg, "not enough memory")) {
			lua_pushfstring(L, "%s: not enough memory (Lua inside corrald may use %d MiB)",
					path, (int)(MEMORY_LIMIT >> 20));
			lua_replace(L, -3);
		}
		*err = first_line_dup("", lua_tostring(L, -2));
		if (!partial || !lua_istable(L, -1) || !*err)
			goto fail;
		/* the pools that parsed: nil, the message, the config */
		lua_replace(L, -3);
		lua_pop(L, 1);
	} else {
		lua_pop(L, 2);	/* nil, nil: the config is on top */
	}
	lua_pushcfunction(L, copy_protected);
	lua_insert(L, -2);
	lua_pushlightuserdata(L, v);
	if (pcall(L, 2, 0) != 0)
		goto fail_internal;
	lua_settop(L, 0);
	lua_pushcfunction(L, find_entry_points);
	lua_pushlightuserdata(L, lua);
	if (pcall(L, 1, 0) != 0)
		goto fail_internal;
	lua_settop(L, 0);
	*result = v;
	return lua;

fail_internal:
	/* an error in corral's own Lua: keep the whole traceback */
	free(*err);	/* the config's errors, with partial */
	*err = first_line_dup("internal error: ", lua_tostring(L, -1));
	goto fail;
fail_oom:
	free(*err);
	*err = strdup("out of memory");
fail:
	cr_lua_value_free(v);
	free(v);
	cr_lua_close(lua);
	return NULL;
}

void cr_lua_close(struct cr_lua *lua)
{
	if (!lua)
		return;
	cr_timers_forget(lua);
	cr_plugio_forget(lua);
	if (ctx.active == lua)
		ctx.active = NULL;
	if (lua->L) {
		/* LuaJIT frees its arena whole only under its own allocator */
		if (lua->base_alloc)
			lua_setallocf(lua->L, lua->base_alloc, lua->base_ud);
		lua_close(lua->L);
	}
	free(lua);
}

/* ---- hooks, in prototypes and workers ------------------------------------ */

/* Logs a hook's error: the first line names file and line, the traceback
 * follows on lines of its own. */
static void log_hook_error(const char *hook, const char *msg)
{
	const char *nl = msg ? strchr(msg, '\n') : NULL;

	if (!msg)
		msg = "(no message)";
	cr_error(&ctx.who, "%s hook failed: %.*s", hook, nl ? (int)(nl - msg) : (int)strlen(msg), msg);
	while (nl) {
		const char *line = nl + 1;
		nl = strchr(line, '\n');
		cr_error(&ctx.who, "  %.*s", nl ? (int)(nl - line) : (int)strlen(line), line);
	}
}

static void __attribute__((noreturn)) worker_exit(int code)
{
	fflush(NULL);
	_exit(code);
}

/* corral's budget and JIT-off are for code run inside corrald */
static void enter_child(const struct cr_pool_conf *pc, enum cr_phase phase, unsigned id)
{
	lua_State *L = pc->lua->L;

	ctx.phase = phase;
	ctx.pc = pc;
	ctx.active = NULL;
	ctx.who = (struct cr_who){ .pool = pc->name, .worker = id, .pid = getpid() };
	lua_sethook(L, NULL, 0, 0);
	budget_on = 0;
	lua_setallocf(L, pc->lua->base_alloc, pc->lua->base_ud);	/* no cap */
	lua_pushcfunction(L, cr_luapat_uninstall);
	if (pcall(L, 0, 0) != 0)
		lua_pop(L, 1);	/* out of memory: the bounded ones stay, and work */
	luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_ON);
}

/* (pool object getter, prefork) -> pool.state = prefork(pool) */
static int run_prefork(lua_State *L)
{
	lua_pushvalue(L, 1);
	lua_call(L, 0, 1);		/* protected: we run under pcall() */
	lua_replace(L, 1);		/* the pool object */
	lua_pushvalue(L, 1);
	lua_call(L, 1, 1);
	lua_setfield(L, 1, "state");
	return 0;
}

int cr_lua_prefork(const struct cr_pool_conf *pc)
{
	lua_State *L = pc->lua->L;

	enter_child(pc, CR_PHASE_PREFORK, 0);
	if (pc->ref_prefork == CR_NOREF)
		return 0;
	lua_settop(L, 0);
	lua_pushcfunction(L, run_prefork);
	lua_rawgeti(L, LUA_REGISTRYINDEX, pc->ref_object);
	lua_rawgeti(L, LUA_REGISTRYINDEX, pc->ref_prefork);
	if (pcall(L, 2, 0) != 0) {
		log_hook_error("prefork", lua_tostring(L, -1));
		return -1;
	}
	lua_settop(L, 0);
	/* leave the workers a heap without prefork's garbage */
	lua_gc(L, LUA_GCCOLLECT, 0);
	return 0;
}

/* (new_worker, pool object getter, id, generation, pid) -> worker */
static int make_worker(lua_State *L)
{
	lua_pushvalue(L, 2);
	lua_call(L, 0, 1);		/* protected: we run under pcall() */
	lua_replace(L, 2);
	lua_call(L, 4, 1);
	return 1;
}

/* A hook's end: an error that is worker:exec() unwinding is not one. */
static int hook_failed(lua_State *L, const char *hook, int rc)
{
	if (rc == 0 || ctx.exec_argv)
		return 0;
	log_hook_error(hook, lua_tostring(L, -1));
	return 1;
}

char *const *cr_lua_worker(const struct cr_pool_conf *pc, unsigned id, unsigned generation, int chan,
			   int (*stopping)(void))
{
	lua_State *L = pc->lua->L;
	int worker;

	enter_child(pc, CR_PHASE_SETUP, id);
	cr_proctitle_set("corral: worker %s/%u", pc->name, id);

	lua_settop(L, 0);
	lua_pushcfunction(L, make_worker);
	lua_rawgeti(L, LUA_REGISTRYINDEX, pc->lua->ref_new_worker);
	lua_rawgeti(L, LUA_REGISTRYINDEX, pc->ref_object);
	lua_pushinteger(L, id);
	lua_pushinteger(L, generation);
	lua_pushinteger(L, getpid());
	if (pcall(L, 5, 1) != 0) {
		log_hook_error("worker", lua_tostring(L, -1));
		worker_exit(1);
	}
	worker = lua_gettop(L);

	if (pc->ref_setup != CR_NOREF) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, pc->ref_setup);
		lua_pushvalue(L, worker);
		if (hook_failed(L, "setup", pcall(L, 1, 0))) {
			/* not started: corrald must not count it ready */
			cr_chan_send(chan, CR_CHAN_ERROR, CR_STEP_HOOK, 0);
			worker_exit(1);
		}
	}
	/* a stop that came while setup ran (its sleep took the signal):
	 * neither start nor the command */
	if (stopping())
		worker_exit(0);
	if (ctx.exec_argv || pc->ref_start == CR_NOREF)
		goto exec;
	ctx.phase = CR_PHASE_START;
	cr_chan_send(chan, CR_CHAN_STARTED, 0, 0);
	lua_settop(L, worker);
	lua_rawgeti(L, LUA_REGISTRYINDEX, pc->ref_start);
	lua_pushvalue(L, worker);
	if (hook_failed(L, "start", pcall(L, 1, 0)))
		worker_exit(1);
	if (!ctx.exec_argv)
		worker_exit(0);
exec:
	return ctx.exec_argv;
}
