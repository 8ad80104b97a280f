/* commands.h: what corralctl and plugins may ask of a pool. Each returns
 * 0 (signal: how many were signalled) or -ENOENT for an unknown pool,
 * -ESRCH for an unknown worker, -ERANGE for a count out of range; scale
 * -EMFILE for more workers than corrald's open files limit holds (why:
 * cr_pool_scale_refusal()). */
#ifndef CR_COMMANDS_H
#define CR_COMMANDS_H

int cr_pool_scale(const char *pool, unsigned n);
const char *cr_pool_scale_refusal(void);
/* id 0: the whole pool (new prototype, then workers one by one, or all
 * at once); else that worker. */
int cr_pool_restart(const char *pool, unsigned id, int all_at_once);
int cr_pool_stop(const char *pool);
int cr_pool_start(const char *pool);
int cr_pool_signal(const char *pool, unsigned id, int sig);

#endif
