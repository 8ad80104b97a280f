/* reload.h: loading and applying a new configuration. */
#ifndef CR_RELOAD_H
#define CR_RELOAD_H

#include <ev.h>
#include <stddef.h>

/* SIGHUP reloads from now on. */
void cr_reload_init(struct ev_loop *loop);
void cr_reload_finish(void);
struct cr_buf;

/* Reloads now: 0 with a summary in msg, or -1 with the error (file:line)
 * in msg. msg may be NULL. detail (or NULL) gets the same as a JSON
 * object: {"added":[names],"changed":[..],"removed":[..],"unchanged":[..],
 * "rescaled":[..]} (rescaled: unchanged but for the count), or
 * {"errors":["a line of the error",...]}. */
int cr_reload(char *msg, size_t msglen, struct cr_buf *detail);
/* Reloads once the loop is back (from a plugin's handler). */
void cr_reload_later(void);

#endif
