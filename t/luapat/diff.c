/* The differential check of daemon/luapat.c against LuaJIT's own string
 * functions: runs t/luapat/diff.lua with `N` (LuaJIT's find, match, gmatch,
 * gsub) and `string` (luapat.c's, as corrald installs them). */
#include <stdio.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "luapat.h"

int main(int argc, char **argv)
{
	lua_State *L = luaL_newstate();

	if (argc != 2 || !L) {
		fprintf(stderr, "usage: luapat-diff FILE.lua\n");
		return 2;
	}
	luaL_openlibs(L);
	lua_getglobal(L, "string");
	lua_newtable(L);
	for (const char *const *n = (const char *const[]){ "find", "match", "gmatch", "gsub", NULL }; *n; n++) {
		lua_getfield(L, -2, *n);
		lua_setfield(L, -2, *n);
	}
	lua_setglobal(L, "N");
	lua_pop(L, 1);
	cr_luapat_install(L);
	if (luaL_dofile(L, argv[1])) {
		fprintf(stderr, "%s\n", lua_tostring(L, -1));
		return 1;
	}
	return 0;
}
