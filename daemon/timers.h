/* timers.h: plugin timers and PSI triggers, by owner and id. */
#ifndef CR_TIMERS_H
#define CR_TIMERS_H

#include <ev.h>

/* fire(owner, id) is called when a timer or trigger of owner fires. */
void cr_timers_init(struct ev_loop *loop, void (*fire)(void *owner, int id));
void cr_timers_finish(void);

/* A timer of owner; its id, or -errno. A one-shot timer is gone once it
 * has fired. */
int cr_timers_add(void *owner, double seconds, int repeat);
/* Writes spec ("some 150000 2000000") to the pressure file at path and
 * fires each time the kernel signals it; its id, or -errno. */
int cr_timers_add_psi(void *owner, const char *path, const char *spec);
/* Fires when a connection waits in the backlog of the listening socket
 * fd (a dup is watched: fd may be closed after), at most once per pause
 * seconds while it waits: after firing the watch rests for pause. Its id,
 * or -errno. */
int cr_timers_add_listen(void *owner, int fd, double pause);
/* Cancels owner's timer or trigger id (another owner's is left alone). */
void cr_timers_cancel(void *owner, int id);
/* Drops every timer and trigger of owner. */
void cr_timers_forget(void *owner);

#endif
