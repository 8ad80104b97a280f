/* manager.h: what the service manager is told about corrald's progress. */
#ifndef CR_MANAGER_H
#define CR_MANAGER_H

#include <ev.h>

/* The supervisor's counts, as the service manager sees them. */
struct cr_manager_view {
	unsigned pools, want, ready;	/* pools not removed; their workers */
	unsigned live;			/* worker processes still alive */
	unsigned nfailed;
	const char *failed;		/* the first failed pool's name */
	int all_ready;			/* every pool has all its workers ready */
	int stopping;
};

void cr_manager_init(struct ev_loop *loop);
void cr_manager_finish(void);
/* A STATUS= line when it changes, READY=1 once everything is ready.
 * Returns 1 when the start has failed (a pool failed before READY=1 under
 * a service manager): the caller stops, with why. */
int cr_manager_update(const struct cr_manager_view *v, char *why, size_t n);
void cr_manager_stopping(void);
void cr_manager_reloading(void);
void cr_manager_reloaded(void);
/* 1 after a failed start, else 0: what corrald exits with. */
int cr_manager_exit_code(void);

#endif
