/* luapat.h: string.find, match, gmatch and gsub with a time budget, for
 * Lua run inside corrald (see luapat.c). */
#ifndef CR_LUAPAT_H
#define CR_LUAPAT_H

#include <lua.h>

/* over() returns the budget in seconds once it is spent, else 0. */
void cr_luapat_budget(double (*over)(void));
/* Puts the bounded functions in L's string table, keeping LuaJIT's. */
void cr_luapat_install(lua_State *L);
/* A lua_CFunction: LuaJIT's own back (in prototypes and workers). */
int cr_luapat_uninstall(lua_State *L);

#endif
