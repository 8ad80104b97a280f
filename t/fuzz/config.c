/*
 * config.c (t/fuzz): the config validator, corral.config.load, the
 * function corrald runs a config file through. The input is decoded into
 * Lua tables (decode() below: pools, settings and plugins whose options
 * are nested tables, with keys mostly from the real vocabulary and values
 * of every type), and config-file.lua declares them.
 *
 * The property: load() returns a config that config-check.lua finds
 * sound, or one clean validation error, "CONFIG:LINE: what: key: msg"
 * (or a plugin's own error). A Lua runtime error inside the validator
 * ("attempt to index a nil value", "bad argument") is a bug.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "timers.h"
#include "fuzz.h"

#define CONFIG_FILE CR_FUZZ_DIR "/config-file.lua"

struct input {
	const uint8_t *p;
	size_t n;
};

static unsigned byte(struct input *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

/* Words a config is made of: keys at every level, values the checkers
 * know, and near misses. */
static const char *const words[] = {
	/* pool keys */
	"command", "workers", "env", "env_inherit", "directory", "user", "group", "stop_signal",
	"stop_timeout", "restart", "backoff", "crash_limit", "ready", "watchdog", "output", "listen",
	"syslog_identifier", "ready_timeout", "prefork", "setup", "start", "prefork_timeout", "limits",
	"worker_limits",
	/* settings */
	"log_level", "cgroup", "control", "control_group", "monitor_group", "limits_required",
	/* inside backoff, crash_limit, plugins */
	"initial", "max", "reset", "failures", "interval",
	/* limits */
	"memory_max", "memory_high", "memory_low", "memory_swap_max", "cpu_weight", "io_weight",
	"pids_max", "cpu_max", "memory.low", "io.max", "cgroup.procs", "memory.oom.group", "Memory.x",
	/* values */
	"always", "on-failure", "never", "started", "lua", "notify", "auto", "journal", "inherit", "null",
	"debug", "info", "warn", "TERM", "SIGKILL", "sigint", "15", "0", "infinity", "150%", "0.5%",
	"1000 100000", "512M", "1.5G", "64KiB", "250ms", "1m30s", "1.5", "-1", "1e999", "root", "nobody",
	"daemon", "/", "/tmp", "/a/../b", "//x", "/sys/fs/cgroup/x", "tcp::8080", "tcp:127.0.0.1:80",
	"tcp:[::1]:80", "tcp:host:80", "unix:/run/x.sock", "systemd", "web", "pool-stats",
	"PATH", "HOME", "NOTIFY_SOCKET", "LISTEN_FDS", "A=B", "1x", "",
};

static void push_value(lua_State *L, struct input *in, int depth);

static void push_string(lua_State *L, struct input *in)
{
	unsigned b = byte(in);

	if (b < 200) {
		lua_pushstring(L, words[b % (sizeof words / sizeof *words)]);
	} else {
		size_t len = byte(in);
		if (len > in->n)
			len = in->n;
		lua_pushlstring(L, (const char *)in->p, len);
		in->p += len, in->n -= len;
	}
}

static void push_number(lua_State *L, struct input *in)
{
	static const double special[] = { 0, 1, -1, 0.5, 1e-9, 999, 1000, 10000, 10001, 100000,
					  1e6, 4294967296.0, 9007199254740993.0, 1e300 };
	unsigned b = byte(in);

	switch (b % 4) {
	case 0:
		lua_pushnumber(L, (double)(int)(byte(in) - 16));
		break;
	case 1:
		lua_pushnumber(L, special[byte(in) % (sizeof special / sizeof *special)] * (b & 4 ? -1 : 1));
		break;
	case 2:
		lua_pushnumber(L, b & 4 ? INFINITY * (b & 8 ? -1 : 1) : NAN);
		break;
	default: {
		uint64_t bits = 0;
		double d;
		for (int i = 0; i < 8; i++)
			bits = bits << 8 | byte(in);
		memcpy(&d, &bits, sizeof d);
		lua_pushnumber(L, d);
	}
	}
}

/* Functions, from a small fixed set: hooks that do nothing, and a C one. */
static void push_function(lua_State *L, struct input *in)
{
	if (byte(in) & 1)
		lua_getglobal(L, "tostring");
	else
		luaL_loadstring(L, "return ...");
}

static void push_table(lua_State *L, struct input *in, int depth)
{
	unsigned n = byte(in) % 32;

	lua_createtable(L, 0, (int)n);
	for (unsigned i = 0; i < n && in->n; i++) {
		unsigned k = byte(in) % 8;
		if (k < 4)
			push_string(L, in);		/* most keys are words */
		else if (k < 6)
			lua_pushnumber(L, i + 1);	/* a list */
		else
			push_value(L, in, depth + 1);	/* anything */
		if (lua_isnil(L, -1) || (lua_isnumber(L, -1) && lua_tonumber(L, -1) != lua_tonumber(L, -1))) {
			lua_pop(L, 1);	/* nil and NaN are no keys */
			continue;
		}
		push_value(L, in, depth + 1);
		lua_rawset(L, -3);
	}
}

static void push_value(lua_State *L, struct input *in, int depth)
{
	switch (byte(in) % 8) {
	case 0:
		lua_pushboolean(L, byte(in) & 1);
		break;
	case 1:
		push_number(L, in);
		break;
	case 2:
		push_function(L, in);
		break;
	case 3: case 4:
		if (depth < 5) {
			push_table(L, in, depth);
			break;
		}
		/* fall through */
	default:
		push_string(L, in);
	}
}

/* The list of declarations config-file.lua makes. */
static void decode(lua_State *L, struct input *in)
{
	static const char *const kinds[] = { "pool", "pool", "pool", "settings", "plugin", "pool-only" };

	lua_newtable(L);
	for (int i = 1; in->n && i <= 8; i++) {
		lua_createtable(L, 0, 3);
		lua_pushstring(L, kinds[byte(in) % (sizeof kinds / sizeof *kinds)]);
		lua_setfield(L, -2, "kind");
		if (byte(in) % 4)
			push_string(L, in);
		else
			push_value(L, in, 4);
		lua_setfield(L, -2, "name");
		if (byte(in) % 8)
			push_table(L, in, 0);
		else
			push_value(L, in, 4);
		lua_setfield(L, -2, "options");
		lua_rawseti(L, -2, i);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static lua_State *L;
	static int load, check;	/* corral.config.load and the checker, in the registry */
	struct input in = { data, size };
	const char *msg;

	if (size > 8192)
		return 0;
	if (!L) {
		/* one state for all inputs, as making one costs more than most
		 * inputs do: corral.config keeps nothing between loads */
		L = fuzz_lua_new();
		lua_getglobal(L, "require");
		lua_pushstring(L, "corral.config");
		if (lua_pcall(L, 1, 1, 0))
			fuzz_fail("corral.config: %s", lua_tostring(L, -1));
		lua_getfield(L, -1, "load");
		load = luaL_ref(L, LUA_REGISTRYINDEX);
		if (luaL_loadfile(L, CR_FUZZ_DIR "/config-check.lua") || lua_pcall(L, 0, 1, 0))
			fuzz_fail("config-check.lua: %s", lua_tostring(L, -1));
		check = luaL_ref(L, LUA_REGISTRYINDEX);
		lua_settop(L, 0);
	}
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "loaded");
	/* corral (init.lua) keeps the handlers plugins add: a new one each time */
	lua_pushnil(L);
	lua_setfield(L, -2, "corral");
	decode(L, &in);
	lua_setfield(L, -2, "fuzz.input");
	lua_settop(L, 0);

	lua_rawgeti(L, LUA_REGISTRYINDEX, load);
	lua_pushstring(L, CONFIG_FILE);
	if (lua_pcall(L, 1, 2, 0))
		fuzz_fail("load() raised an error: %s", lua_tostring(L, -1));
	if (lua_isnil(L, -2)) {
		if (!(msg = lua_tostring(L, -1)))
			fuzz_fail("load() failed without a message");
		if (getenv("FUZZ_VERBOSE"))	/* to see what a seed reaches */
			fprintf(stderr, "refused: %s\n", msg);
		/* ours: "CONFIG:LINE: ..."; a plugin's: 'plugin "NAME": ...' */
		if (strncmp(msg, CONFIG_FILE ":", strlen(CONFIG_FILE ":")) &&
		    strncmp(msg, "plugin \"", 8))
			fuzz_fail("not a validation error: %s", msg);
	} else {
		if (getenv("FUZZ_VERBOSE"))
			fprintf(stderr, "accepted\n");
		lua_pop(L, 1);
		lua_rawgeti(L, LUA_REGISTRYINDEX, check);
		lua_insert(L, -2);
		if (lua_pcall(L, 1, 1, 0))
			fuzz_fail("config-check.lua: %s", lua_tostring(L, -1));
		if (!lua_isnil(L, -1))
			fuzz_fail("load() accepted a config that is not sound: %s", lua_tostring(L, -1));
	}
	lua_settop(L, 0);
	cr_timers_forget(NULL);	/* a plugin's, added with no active state */
	return 0;
}
