/* runtime.h: Lua inside corrald while it runs: events, timers, PSI. */
#ifndef CR_RUNTIME_H
#define CR_RUNTIME_H

#include <ev.h>
#include <sys/types.h>

typedef struct lua_State lua_State;

/* What an event is about; unset fields are left out of the Lua table. */
struct cr_event {
	const char *pool;
	unsigned worker;
	pid_t pid;
	int exited, code, signal, oom;	/* worker_exited */
	const char *message;
};

void cr_runtime_init(struct ev_loop *loop);
/* Makes L (a config's state) the one events go to: timers and triggers of
 * the previous one are cancelled, and the "config" event is sent. */
void cr_runtime_activate(lua_State *L);
/* Drops every timer and trigger of L (before it is closed). */
void cr_runtime_forget(lua_State *L);
void cr_runtime_finish(void);

void cr_runtime_emit(const char *event, const struct cr_event *ev);
void cr_runtime_emit_pool(const char *event, const char *pool);

/* Adds the run-time primitives to corral.core (the table on top of L). */
void cr_runtime_register(lua_State *L);

#endif
