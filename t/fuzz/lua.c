/*
 * lua.c (t/fuzz): the Lua state the Lua fuzz targets run in; see fuzz.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <lauxlib.h>
#include <lualib.h>
#include <luajit.h>

#include "bindings.h"
#include "crlua.h"
#include "timers.h"
#include "fuzz.h"

#ifdef CR_FUZZ_LIBFUZZER
/* libFuzzer reads counters in this section as coverage, next to the
 * compiler's own: here, pairs of Lua lines run one after the other
 * (hashed), since the interpreter's C code says little about which
 * branch of a Lua parser an input took. */
__attribute__((section("__libfuzzer_extra_counters"), used))
static uint8_t lua_edges[1 << 14];

static void line_hook(lua_State *L, lua_Debug *ar)
{
	static const char *last_src;
	static uint32_t src_hash, prev;
	uint32_t h;

	if (!lua_getinfo(L, "S", ar))
		return;
	if (ar->source != last_src) {	/* the same chunk: the same string */
		src_hash = 2166136261u;
		for (const char *s = ar->source; *s; s++)
			src_hash = (src_hash ^ (uint8_t)*s) * 16777619u;
		last_src = ar->source;
	}
	h = src_hash ^ ((uint32_t)ar->currentline * 2654435761u);
	lua_edges[(h ^ prev) & (sizeof lua_edges - 1)]++;
	prev = h >> 1;
}
#endif

/* corral.core.budget_call without the time budget: the inputs run no
 * code of their own, only corral's. */
static int budget_call(lua_State *L)
{
	int rc;

	luaL_checktype(L, 1, LUA_TFUNCTION);
	rc = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
	lua_pushboolean(L, rc == 0);
	lua_insert(L, 1);
	return lua_gettop(L);
}

static const struct cr_lua_fn fuzz_fns[] = {
	{ "budget_call", budget_call, CR_IN(CR_PHASE_CONFIG) },
	{ NULL, NULL, 0 },
};

lua_State *fuzz_lua_new(void)
{
	static int once;
	lua_State *L;

	if (!once) {
		/* plugins may add timers; they never fire here */
		cr_lua_init(CR_FUZZ_LUADIR, cr_bindings_open);
		cr_timers_init(ev_default_loop(0), NULL);
		once = 1;
	}
	if (!(L = luaL_newstate()))
		fuzz_fail("out of memory");
	luaL_openlibs(L);
	luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
	lua_getglobal(L, "package");
	lua_pushstring(L, CR_FUZZ_LUADIR "/?.lua;" CR_FUZZ_LUADIR "/?/init.lua");
	lua_setfield(L, -2, "path");
	lua_pushstring(L, "");
	lua_setfield(L, -2, "cpath");
	lua_getfield(L, -1, "loaded");
	lua_newtable(L);
	cr_lua_register(L, fuzz_fns);
	cr_bindings_open(L);
	lua_pushstring(L, "fuzz");
	lua_setfield(L, -2, "version");
	lua_setfield(L, -2, "corral.core");
	lua_settop(L, 0);
#ifdef CR_FUZZ_LIBFUZZER
	lua_sethook(L, line_hook, LUA_MASKLINE, 0);
#endif
	return L;
}
