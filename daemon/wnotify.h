/* wnotify.h: the workers' notifications, attributed and applied. */
#ifndef CR_WNOTIFY_H
#define CR_WNOTIFY_H

#include <ev.h>

/* Opens the workers' notify socket (notify.c) with this file as its
 * receiver. 0 or -errno. */
int cr_wnotify_listen(struct ev_loop *loop);

#endif
