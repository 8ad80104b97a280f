/*
 * lua.c: creates corrald's LuaJIT states, gives them the C primitives that
 * lua/corral/ builds the config API on (corral.core), and owns the single
 * protected call path. What the config means is config.c's business.
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>
#include <luajit.h>

#include "crlua.h"
#include "log.h"

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

/* corral.core.log(level, message) */
static int l_log(lua_State *L)
{
	int level = cr_log_level_parse(luaL_checkstring(L, 1));

	cr_log(level < 0 ? CR_INFO : (enum cr_level)level, NULL, "%s", luaL_checkstring(L, 2));
	return 0;
}

static double budget_deadline;

static void budget_hook(lua_State *L, lua_Debug *ar)
{
	if (monotonic() <= budget_deadline)
		return;
	lua_getinfo(L, "Sl", ar);
	luaL_error(L, "%s:%d: took longer than %.0fs, stopped", ar->short_src,
		   ar->currentline, BUDGET_SECONDS);
}

/* corral.core.budget_call(f, ...) -> true, results... | false, message
 * Runs f with a wall-clock budget. The JIT is off in corrald's states, so
 * the count hook is reached even in a tight loop. */
static int l_budget_call(lua_State *L)
{
	int n = lua_gettop(L), rc;

	luaL_checktype(L, 1, LUA_TFUNCTION);
	budget_deadline = monotonic() + BUDGET_SECONDS;
	lua_sethook(L, budget_hook, LUA_MASKCOUNT, 10000);
	rc = cr_lua_pcall(L, n - 1, LUA_MULTRET);
	lua_sethook(L, NULL, 0, 0);
	lua_pushboolean(L, rc == 0);
	lua_insert(L, 1);
	return lua_gettop(L);
}

static const luaL_Reg core_funcs[] = {
	{ "signum", l_signum },
	{ "getpwnam", l_getpwnam },
	{ "getgrnam", l_getgrnam },
	{ "environ", l_environ },
	{ "log", l_log },
	{ "budget_call", l_budget_call },
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
	lua_pushfstring(L, "%s/?.lua", dir);
	lua_setfield(L, -2, "path");
	lua_pushstring(L, "");
	lua_setfield(L, -2, "cpath");
	lua_getfield(L, -1, "loaded");
	lua_newtable(L);
	luaL_register(L, NULL, core_funcs);
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
