/*
 * lua.c: creates corrald's LuaJIT states, gives them the C primitives that
 * lua/corral/ builds the config API on (corral.core), and owns the single
 * protected call path. What the config means is config.c's business.
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>
#include <luajit.h>

#include "config.h"
#include "crlua.h"
#include "log.h"
#include "proctitle.h"
#include "runtime.h"
#include "spawn.h"

/* Where Lua runs in this process, and on whose behalf. corrald runs the
 * config; a prototype runs prefork; a worker runs setup and start. */
enum phase { PHASE_CONFIG, PHASE_PLUGIN, PHASE_PREFORK, PHASE_SETUP, PHASE_START };

static const char *const phase_names[] = {
	[PHASE_CONFIG] = "config", [PHASE_PLUGIN] = "plugin", [PHASE_PREFORK] = "prefork",
	[PHASE_SETUP] = "setup", [PHASE_START] = "start",
};

static struct {
	enum phase phase;
	struct cr_who who;
	const struct cr_pool_conf *pc;
	unsigned id;
	int chan;			/* the worker's channel to corrald */
	sigset_t stop_mask;		/* just the pool's stop signal */
} ctx = { .chan = -1 };

static volatile sig_atomic_t stop_requested;

/* Config code that runs longer than this inside corrald is stopped. */
#define BUDGET_SECONDS 10.0

static double monotonic(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

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

int cr_lua_pcall(lua_State *L, int nargs, int nresults)
{
	int base = lua_gettop(L) - nargs;	/* the function's slot */
	int rc;

	lua_pushcfunction(L, traceback);
	lua_insert(L, base);
	rc = lua_pcall(L, nargs, nresults, base);
	lua_remove(L, base);
	return rc == 0 ? 0 : -1;
}

/* corral.core.signum("TERM" | "SIGTERM" | 15) -> number | nil */
static const struct { const char *name; int num; } signals[] = {
	{ "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT }, { "ILL", SIGILL },
	{ "TRAP", SIGTRAP }, { "ABRT", SIGABRT }, { "BUS", SIGBUS }, { "FPE", SIGFPE },
	{ "KILL", SIGKILL }, { "USR1", SIGUSR1 }, { "SEGV", SIGSEGV }, { "USR2", SIGUSR2 },
	{ "PIPE", SIGPIPE }, { "ALRM", SIGALRM }, { "TERM", SIGTERM }, { "CHLD", SIGCHLD },
	{ "CONT", SIGCONT }, { "STOP", SIGSTOP }, { "TSTP", SIGTSTP }, { "TTIN", SIGTTIN },
	{ "TTOU", SIGTTOU }, { "URG", SIGURG }, { "XCPU", SIGXCPU }, { "XFSZ", SIGXFSZ },
	{ "VTALRM", SIGVTALRM }, { "PROF", SIGPROF }, { "WINCH", SIGWINCH }, { "IO", SIGIO },
	{ "PWR", SIGPWR }, { "SYS", SIGSYS },
};

static int l_signum(lua_State *L)
{
	if (lua_type(L, 1) == LUA_TNUMBER) {
		lua_Number n = lua_tonumber(L, 1);
		if (n >= 1 && n < NSIG && n == (int)n) {
			lua_pushinteger(L, (int)n);
			return 1;
		}
		return 0;
	}
	const char *s = luaL_checkstring(L, 1);
	if (strncasecmp(s, "SIG", 3) == 0)
		s += 3;
	for (size_t i = 0; i < sizeof signals / sizeof *signals; i++) {
		if (strcasecmp(s, signals[i].name) == 0) {
			lua_pushinteger(L, signals[i].num);
			return 1;
		}
	}
	return 0;
}

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

/* corral.core.log(level, message): with the pool and worker we run for */
static int l_log(lua_State *L)
{
	int level = cr_log_level_parse(luaL_checkstring(L, 1));
	const char *msg = luaL_checkstring(L, 2);

	if (level < 0 || level == CR_ALERT)
		level = CR_INFO;	/* alert is corral's own, never a hook's */
	cr_log((enum cr_level)level, ctx.phase <= PHASE_PLUGIN ? NULL : &ctx.who, "%s", msg);
	return 0;
}

static int l_phase(lua_State *L)
{
	lua_pushstring(L, phase_names[ctx.phase]);
	return 1;
}

static int l_now(lua_State *L)
{
	lua_pushnumber(L, monotonic());
	return 1;
}

/* The stop signal is blocked in a Lua worker and caught only while it
 * sleeps, so a pending one is seen here without a race. */
static int stopping(void)
{
	sigset_t pending;
	struct timespec zero = { 0, 0 };

	if (stop_requested || ctx.phase < PHASE_SETUP)
		return stop_requested;
	if (sigpending(&pending) == 0 && sigismember(&pending, ctx.pc->stop_signal)) {
		sigtimedwait(&ctx.stop_mask, NULL, &zero);
		stop_requested = 1;
	}
	return stop_requested;
}

static int l_stopping(lua_State *L)
{
	lua_pushboolean(L, stopping());
	return 1;
}

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* corral.core.sleep(seconds) -> interrupted by a stop request */
static int l_sleep(lua_State *L)
{
	double end = monotonic() + luaL_checknumber(L, 1), left;
	sigset_t during;

	sigprocmask(SIG_SETMASK, NULL, &during);
	if (ctx.phase >= PHASE_SETUP)
		sigdelset(&during, ctx.pc->stop_signal);
	while (!stopping() && (left = end - monotonic()) > 0) {
		struct timespec ts;
		if (left > 1e9)
			left = 1e9;	/* math.huge: sleep in long steps, not a bad timeout */
		ts.tv_sec = (time_t)left;
		ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
		ppoll(NULL, 0, &ts, &during);	/* EINTR when the stop signal comes */
	}
	lua_pushboolean(L, stopping());
	return 1;
}

static int send_chan(lua_State *L, int type, const char *fname)
{
	int rc = cr_spawn_chan_send(ctx.chan, type, 0, 0);

	if (rc < 0)
		return luaL_error(L, "%s: unable to tell corrald: %s", fname, strerror(-rc));
	return 0;
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

static int l_getpid(lua_State *L)
{
	lua_pushinteger(L, getpid());
	return 1;
}

static int l_ready(lua_State *L)
{
	return send_chan(L, CR_CHAN_READY, "corral.ready");
}

/* corral.core.exec(argv) -> only returns on failure: nil, message */
static int l_exec(lua_State *L)
{
	int n = (int)lua_objlen(L, 1);
	char **argv;

	luaL_checktype(L, 1, LUA_TTABLE);
	argv = lua_newuserdata(L, ((size_t)n + 1) * sizeof *argv);
	for (int i = 0; i < n; i++) {
		lua_rawgeti(L, 1, i + 1);
		argv[i] = (char *)lua_tostring(L, -1);	/* kept alive by the table */
		lua_pop(L, 1);
		if (!argv[i])
			return luaL_error(L, "exec: argv[%d] is not a string", i + 1);
	}
	argv[n] = NULL;
	fflush(NULL);
	cr_spawn_exec(argv);
	/* back from a failed exec: the stop signal is caught again */
	sigprocmask(SIG_BLOCK, &ctx.stop_mask, NULL);
	signal(ctx.pc->stop_signal, on_stop_signal);
	lua_pushnil(L);
	lua_pushstring(L, strerror(errno));
	return 2;
}

static double budget_deadline, budget_seconds;

static void budget_hook(lua_State *L, lua_Debug *ar)
{
	if (monotonic() <= budget_deadline)
		return;
	lua_getinfo(L, "Sl", ar);
	luaL_error(L, "%s:%d: took longer than %gs, stopped", ar->short_src,
		   ar->currentline, budget_seconds);
}

/* Calls the function under nargs arguments with a wall-clock budget; the
 * JIT is off in corrald's states, so the count hook is reached even in a
 * tight loop. */
static int budget_pcall(lua_State *L, int nargs, int nresults, double seconds)
{
	int rc;

	budget_seconds = seconds;
	budget_deadline = monotonic() + seconds;
	lua_sethook(L, budget_hook, LUA_MASKCOUNT, 10000);
	rc = cr_lua_pcall(L, nargs, nresults);
	lua_sethook(L, NULL, 0, 0);
	return rc;
}

/* Run-time calls into Lua from corrald (events, timers) get this long. */
#define PLUGIN_BUDGET_SECONDS 1.0

int cr_lua_plugin_fn(lua_State *L, const char *name)
{
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "loaded");
	lua_getfield(L, -1, "corral");
	if (!lua_istable(L, -1)) {
		lua_pop(L, 3);
		return -1;
	}
	lua_getfield(L, -1, name);
	lua_replace(L, -4);
	lua_pop(L, 2);
	if (!lua_isfunction(L, -1)) {
		lua_pop(L, 1);
		return -1;
	}
	return 0;
}

void cr_lua_plugin_call(lua_State *L, int nargs, const char *what)
{
	enum phase saved = ctx.phase;

	ctx.phase = PHASE_PLUGIN;
	if (budget_pcall(L, nargs, 0, PLUGIN_BUDGET_SECONDS) != 0) {
		const char *msg = lua_tostring(L, -1);
		cr_error(NULL, "plugin: %s: %.*s", what, msg ? (int)strcspn(msg, "\n") : 5, msg ? msg : "error");
		lua_pop(L, 1);
	}
	ctx.phase = saved;
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
	if (ctx.phase == PHASE_PLUGIN)
		budget_deadline = monotonic() + budget_seconds;
	return 0;
}

static const luaL_Reg core_funcs[] = {
	{ "renew_budget", l_renew_budget },
	{ "signum", l_signum },
	{ "getpwnam", l_getpwnam },
	{ "getgrnam", l_getgrnam },
	{ "environ", l_environ },
	{ "log", l_log },
	{ "budget_call", l_budget_call },
	{ "phase", l_phase },
	{ "now", l_now },
	{ "stopping", l_stopping },
	{ "sleep", l_sleep },
	{ "ready", l_ready },
	{ "exec", l_exec },
	{ "setenv", l_setenv },
	{ "getpid", l_getpid },
	{ "plugin_path", l_plugin_path },
	{ NULL, NULL },
};

static int file_exists(const char *path)
{
	return access(path, R_OK) == 0;
}

const char *cr_lua_dir(void)
{
	static char dir[PATH_MAX + 8];
	char exe[PATH_MAX], probe[PATH_MAX + 64];
	ssize_t n;

	if (dir[0])
		return dir;
	/* run from the source tree: build/corrald or build/asan/corrald */
	n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = 0;
		for (int up = 0; up < 3; up++) {
			char *slash = strrchr(exe, '/');
			if (!slash)
				break;
			*slash = 0;
			snprintf(probe, sizeof probe, "%s/lua/corral/config.lua", exe);
			if (file_exists(probe)) {
				snprintf(dir, sizeof dir, "%s/lua", exe);
				return dir;
			}
		}
	}
	snprintf(dir, sizeof dir, "%s/lua", CR_DATADIR);
	return dir;
}

static int open_state(lua_State *L)
{
	const char *dir = lua_touserdata(L, 1);

	luaL_openlibs(L);
	luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
	lua_getglobal(L, "package");
	lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", dir, dir);
	lua_setfield(L, -2, "path");
	lua_pushstring(L, "");
	lua_setfield(L, -2, "cpath");
	lua_getfield(L, -1, "loaded");
	lua_newtable(L);
	luaL_register(L, NULL, core_funcs);
	cr_runtime_register(L);
	lua_pushstring(L, CR_VERSION);
	lua_setfield(L, -2, "version");
	lua_setfield(L, -2, "corral.core");
	return 0;
}

lua_State *cr_lua_new(void)
{
	lua_State *L = luaL_newstate();

	if (!L)
		return NULL;
	lua_pushcfunction(L, open_state);
	lua_pushlightuserdata(L, (void *)cr_lua_dir());
	if (lua_pcall(L, 1, 0, 0) != 0) {
		cr_error(NULL, "lua: unable to set up a state: %s", lua_tostring(L, -1));
		lua_close(L);
		return NULL;
	}
	return L;
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

int cr_lua_prefork(const struct cr_pool_conf *pc)
{
	lua_State *L = pc->lua;

	ctx.phase = PHASE_PREFORK;
	ctx.pc = pc;
	ctx.who = (struct cr_who){ .pool = pc->name, .pid = getpid() };
	/* corrald's budget and JIT-off are for code run inside corrald */
	lua_sethook(L, NULL, 0, 0);
	luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_ON);
	if (pc->ref_prefork == CR_NOREF)
		return 0;
	lua_rawgeti(L, LUA_REGISTRYINDEX, pc->ref_prefork);
	lua_rawgeti(L, LUA_REGISTRYINDEX, pc->ref_object);
	if (cr_lua_pcall(L, 1, 1) != 0) {
		log_hook_error("prefork", lua_tostring(L, -1));
		return -1;
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, pc->ref_object);
	lua_insert(L, -2);
	lua_setfield(L, -2, "state");
	lua_settop(L, 0);
	/* leave the workers a heap without prefork's garbage */
	lua_gc(L, LUA_GCCOLLECT, 0);
	return 0;
}

void cr_lua_worker(const struct cr_pool_conf *pc, unsigned id, unsigned generation, int chan)
{
	lua_State *L = pc->lua;
	int worker;

	ctx.phase = PHASE_SETUP;
	ctx.pc = pc;
	ctx.id = id;
	ctx.chan = chan;
	ctx.who = (struct cr_who){ .pool = pc->name, .worker = id, .pid = getpid() };
	cr_proctitle_set("corral: worker %s/%u", pc->name, id);
	lua_sethook(L, NULL, 0, 0);
	luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_ON);

	/* the stop signal: blocked, and caught while sleeping (see stopping) */
	sigemptyset(&ctx.stop_mask);
	sigaddset(&ctx.stop_mask, pc->stop_signal);
	sigprocmask(SIG_BLOCK, &ctx.stop_mask, NULL);
	signal(pc->stop_signal, on_stop_signal);

	/* worker = corral._new_worker(pool, id, generation, pid) */
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "loaded");
	lua_getfield(L, -1, "corral");
	lua_getfield(L, -1, "_new_worker");
	lua_replace(L, 1);
	lua_settop(L, 1);
	lua_rawgeti(L, LUA_REGISTRYINDEX, pc->ref_object);
	lua_pushinteger(L, id);
	lua_pushinteger(L, generation);
	lua_pushinteger(L, getpid());
	if (cr_lua_pcall(L, 4, 1) != 0) {
		log_hook_error("worker", lua_tostring(L, -1));
		worker_exit(1);
	}
	worker = lua_gettop(L);

	if (pc->ref_setup != CR_NOREF) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, pc->ref_setup);
		lua_pushvalue(L, worker);
		if (cr_lua_pcall(L, 1, 0) != 0) {
			log_hook_error("setup", lua_tostring(L, -1));
			/* not started: corrald must not count it ready */
			cr_spawn_chan_send(chan, CR_CHAN_ERROR, CR_STEP_HOOK, 0);
			worker_exit(1);
		}
	}
	if (pc->ref_start == CR_NOREF) {
		fflush(NULL);
		cr_spawn_exec(pc->argv);
		cr_spawn_chan_send(chan, CR_CHAN_ERROR, CR_STEP_EXEC, errno);
		worker_exit(127);
	}
	ctx.phase = PHASE_START;
	cr_spawn_chan_send(chan, CR_CHAN_STARTED, 0, 0);
	lua_rawgeti(L, LUA_REGISTRYINDEX, pc->ref_start);
	lua_pushvalue(L, worker);
	if (cr_lua_pcall(L, 1, 0) != 0) {
		log_hook_error("start", lua_tostring(L, -1));
		worker_exit(1);
	}
	worker_exit(0);
}
