/* bindings.h: the C functions corral.core offers beyond lua.c's own. */
#ifndef CR_BINDINGS_H
#define CR_BINDINGS_H

typedef struct lua_State lua_State;

/* Adds them to the corral.core table on top of L (give it to
 * cr_lua_init). */
void cr_bindings_open(lua_State *L);

#endif
