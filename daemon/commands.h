/* commands.h: what corralctl and plugins may ask of a pool. Each returns
 * 0 (signal: how many were signalled) or -ENOENT for an unknown pool,
 * -ESRCH for an unknown worker, -ERANGE for a count out of range; scale
 * -EMFILE for more workers than corrald's open files limit holds (why:
 * cr_pool_scale_refusal()). */
#ifndef CR_COMMANDS_H
#define CR_COMMANDS_H

/* keep: the target outlives reloads that leave the config's workers as
 * it was (a plugin's; corralctl's lasts until the next reload). */
int cr_pool_scale(const char *pool, unsigned n, int keep);
const char *cr_pool_scale_refusal(void);
/* How a restart is done, and why (the exit reason its workers get). */
struct cr_restart_how {
	int all_at_once;		/* the whole pool: every worker at once */
	int rolling;			/* one worker: its replacement started, and
					 * ready, before it is stopped */
	const char *reason;		/* requested, recycled or unhealthy (static) */
};
/* id 0: the whole pool (new prototype, then workers one by one, or all
 * at once); else that worker. how: NULL for a plain requested restart. */
int cr_pool_restart(const char *pool, unsigned id, const struct cr_restart_how *how);
/* The exit reasons a restart may give (NULL-terminated), and the static
 * string for name, or NULL. */
extern const char *const cr_restart_reasons[];
const char *cr_restart_reason(const char *name);
int cr_pool_stop(const char *pool);
int cr_pool_start(const char *pool);
int cr_pool_signal(const char *pool, unsigned id, int sig);
/* A plugin's note on the pool (id 0) or a live worker; value NULL removes
 * it. Also -EINVAL, -E2BIG, -ENOMEM (notes.h). */
int cr_pool_note(const char *pool, unsigned id, const char *key, const char *value);

#endif
