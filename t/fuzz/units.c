/*
 * units.c (t/fuzz): the parsers of sizes, durations, percentages and
 * signals that configs and requests are written with: cr_text_signal in
 * C, and in Lua corral.units (duration, size), corral.core.signum and the
 * checkers of corral.config that use them (stop_signal, stop_timeout,
 * the limits with their "150%" CPU and "512M" sizes, listen specs, the
 * cgroup setting). The first byte picks the parser, the rest is its
 * input; t/fuzz/units.lua says what each must return.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <lauxlib.h>
#include <lua.h>

#include "text.h"
#include "fuzz.h"

/* cr_text_signal: -1, or a signal whose name (or number) was given */
static void check_text_signal(const char *s)
{
	int sig = cr_text_signal(s);
	const char *name = !strncasecmp(s, "SIG", 3) ? s + 3 : s;

	if (sig == -1)
		return;
	if (sig < 1 || sig >= NSIG)
		fuzz_fail("cr_text_signal(\"%s\") = %d", s, sig);
	if (strtol(s, NULL, 10) != sig && (!sigabbrev_np(sig) || strcasecmp(name, sigabbrev_np(sig))))
		fuzz_fail("cr_text_signal(\"%s\") = %d, which is %s", s, sig, sigabbrev_np(sig));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static lua_State *L;
	static int check;	/* the checks' function, in the registry */
	char *text;

	if (size < 1 || size > 4096)
		return 0;
	if (!L) {
		/* pure functions: one state for every input */
		L = fuzz_lua_new();
		if (luaL_loadfile(L, CR_FUZZ_DIR "/units.lua") || lua_pcall(L, 0, 1, 0))
			fuzz_fail("units.lua: %s", lua_tostring(L, -1));
		check = luaL_ref(L, LUA_REGISTRYINDEX);
	}
	if (!(text = malloc(size)))
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = 0;
	check_text_signal(text);
	free(text);

	lua_rawgeti(L, LUA_REGISTRYINDEX, check);
	lua_pushinteger(L, data[0]);
	lua_pushlstring(L, (const char *)data + 1, size - 1);
	if (lua_pcall(L, 2, 1, 0))
		fuzz_fail("a Lua error escaped: %s", lua_tostring(L, -1));
	if (!lua_isnil(L, -1))
		fuzz_fail("selector %u: %s", data[0], lua_tostring(L, -1));
	lua_settop(L, 0);
	return 0;
}
