/* crlua.h: the Lua state of corrald and the one protected call path. */
#ifndef CR_CRLUA_H
#define CR_CRLUA_H

typedef struct lua_State lua_State;
struct cr_pool_conf;

/* Where corral's Lua modules live: the source tree when run from it, else
 * the installed data directory. */
const char *cr_lua_dir(void);

/* A fresh state with the standard libraries, corral.core and the module
 * path set, JIT off (code run inside corrald has a time budget, enforced by
 * a count hook that compiled code would skip). NULL on allocation failure. */
lua_State *cr_lua_new(void);

/* Call the function under nargs arguments with a traceback handler.
 * On error returns -1 and leaves the message (first line: file:line) on the
 * stack in place of the results. */
int cr_lua_pcall(lua_State *L, int nargs, int nresults);

/* Pushes corral[name] (the module's internal entry points) for a call
 * from corrald at run time; -1 (nothing pushed) if it is missing. */
int cr_lua_plugin_fn(lua_State *L, const char *name);
/* Calls it, inside corrald: a time budget, JIT off, the "plugin" phase;
 * an error is logged naming what was being called. */
void cr_lua_plugin_call(lua_State *L, int nargs, const char *what);

/* In a prototype: runs the pool's prefork hook, if any, and keeps what it
 * returns as the pool's state. 0, or -1 after logging the error. */
int cr_lua_prefork(const struct cr_pool_conf *pc);

/* In a new worker: runs setup(worker), then start(worker) or the pool's
 * command. Never returns. */
void cr_lua_worker(const struct cr_pool_conf *pc, unsigned id, unsigned generation,
		   int chan) __attribute__((noreturn));

#endif
