/* crlua.h: corral's Lua states, seen from C. lua.c and bindings.c (and
 * luapat.c, a library of string functions) are the only files that use
 * the Lua C API; everything else gets plain C values from here. */
#ifndef CR_CRLUA_H
#define CR_CRLUA_H

#include <stddef.h>
#include <sys/types.h>

typedef struct lua_State lua_State;
typedef int (*lua_CFunction)(lua_State *L);
struct cr_pool_conf;
struct cr_who;

/* A config's Lua state and what corrald keeps of it. */
struct cr_lua;

/* Where Lua runs in this process, and on whose behalf. corrald runs the
 * config and plugins; a prototype runs prefork; a worker setup and start. */
enum cr_phase { CR_PHASE_CONFIG, CR_PHASE_PLUGIN, CR_PHASE_PREFORK, CR_PHASE_SETUP, CR_PHASE_START };
#define CR_IN(phase) (1u << (phase))
#define CR_IN_ANY 0x1fu
#define CR_IN_WORKER (CR_IN(CR_PHASE_SETUP) | CR_IN(CR_PHASE_START))

const char *cr_lua_phase_name(void);
/* Whom the Lua code of this process runs for (pool, worker), for log
 * lines; NULL inside corrald. */
const struct cr_who *cr_lua_who(void);
/* Seconds on the monotonic clock. */
double cr_lua_now(void);

/* A C function for corral.core, and the phases that may call it; the
 * check is made before fn runs, with an error naming both. */
struct cr_lua_fn {
	const char *name;
	lua_CFunction fn;
	unsigned phases;
};
/* Adds fns (up to a NULL name) to the table on top of L. */
void cr_lua_register(lua_State *L, const struct cr_lua_fn *fns);

/* Once, before any state is made: where corral's Lua modules are, and
 * more of corral.core, added to every new state (bindings.c's). */
void cr_lua_init(const char *dir, void (*open_more)(lua_State *L));
const char *cr_lua_dir(void);

/* A plain C copy of a Lua value. Functions stay in the state, as registry
 * refs; everything else is copied. */
enum cr_value_type { CR_V_NIL, CR_V_BOOLEAN, CR_V_NUMBER, CR_V_STRING, CR_V_TABLE, CR_V_FUNCTION };

struct cr_value_entry;

struct cr_value {
	enum cr_value_type type;
	double number;		/* also 0/1 for a boolean */
	char *string;		/* NUL-terminated; len bytes (may hold NULs) */
	size_t len;
	int ref;		/* a function: its registry ref */
	unsigned n;		/* a table: items 1..n, then named fields */
	unsigned nitems;
	struct cr_value_entry *entries;
};

struct cr_value_entry {
	char *key;		/* NULL for item i (entries[i-1]) */
	struct cr_value value;
};

/* Runs corral.config.load(path) in a new state and copies its result.
 * NULL on error, with *err set to the errors, a line each naming file
 * and line (free it). With partial, a config with errors still gives
 * the state and *result, of the pools that had none, and *err is set
 * (corrald -t checks those pools on the system too). */
struct cr_lua *cr_lua_load_config(const char *path, struct cr_value **result, char **err, int partial);
void cr_lua_value_free(struct cr_value *v);
/* Drops its timers and triggers and closes it. */
void cr_lua_close(struct cr_lua *lua);

/* Makes lua the state that events and timers run in; the previous one's
 * timers and triggers are dropped. */
void cr_lua_activate(struct cr_lua *lua);
/* The active state, or NULL. */
struct cr_lua *cr_lua_active(void);

/* A supervisor event, as the handlers that corral.on registered get it.
 * Unset fields are left out of the Lua table. */
struct cr_event {
	const char *name;	/* a static string: "worker_exited", ... */
	char pool[65];
	unsigned worker;
	pid_t pid;
	int exited, code, signal, oom;
	const char *reason;	/* worker_exited, oom: a static string, or NULL */
};

/* Calls the active state's handlers for ev, inside corrald's budget. */
void cr_lua_emit(const struct cr_event *ev);
/* A timer or trigger of lua's fired: its callback runs (timers.c calls
 * this, as the owner's fire function). */
void cr_lua_fire(void *lua, int id);
/* plugio.c's callbacks: a request to a plugin's HTTP server (its answer
 * in out), and a network request's end. */
struct cr_http_in;
struct cr_http_out;
struct cr_http_res;
void cr_lua_http_serve(void *lua, int id, const struct cr_http_in *in, struct cr_http_out *out);
void cr_lua_io_done(void *lua, int id, const struct cr_http_res *res);

/* A control request for a plugin command (plugin NULL: the list of them),
 * run in the active state with the plugin budget: the whole answer, a
 * JSON object, is added to out. args: the raw JSON object, or NULL.
 * text: add a "text" rendering. may_change: the client is of the control
 * group (else, uid for the message, only read-only commands run). 0, or
 * -ENOENT with no state, -ENOMEM, -EIO when the call itself failed. */
struct cr_buf;
int cr_lua_command(const char *plugin, const char *name, const char *args, size_t argslen, int text,
		   int may_change, unsigned uid, struct cr_buf *out);

/* In a prototype: runs the pool's prefork hook, if any, and keeps what it
 * returns as the pool's state. 0, or -1 after logging the error. */
int cr_lua_prefork(const struct cr_pool_conf *pc);

/* In a new worker: runs setup(worker), then start(worker). Returns only
 * when the worker is to exec: NULL for the pool's command, or the argv
 * that worker:exec() named. Exits the process when start returns or a
 * hook fails, or (status 0) when stopping() says a stop came during setup:
 * start is not run then. */
char *const *cr_lua_worker(const struct cr_pool_conf *pc, unsigned id, unsigned generation, int chan,
			   int (*stopping)(void));

#endif
