/* reload.h: loading and applying a new configuration. */
#ifndef CR_RELOAD_H
#define CR_RELOAD_H

#include <ev.h>
#include <stddef.h>

/* SIGHUP reloads from now on. */
void cr_reload_init(struct ev_loop *loop);
void cr_reload_finish(void);
/* Reloads now: 0 with a summary in msg, or -1 with the error (file:line)
 * in msg. msg may be NULL. */
int cr_reload(char *msg, size_t msglen);
/* Reloads once the loop is back (from a plugin's handler). */
void cr_reload_later(void);

#endif
