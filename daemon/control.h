/* control.h: the control socket that corralctl (and scripts) talk to. */
#ifndef CR_CONTROL_H
#define CR_CONTROL_H

#include <ev.h>
#include <stddef.h>
#include <sys/types.h>

/* Listens on path (its directory made 0755 if missing): mode 0600, or
 * 0660 and group gid when group is set (or the monitor group's, when it
 * alone is; 0666 when both are, and differ). -1 with a message on error. */
int cr_control_listen(struct ev_loop *loop, const char *path, int group, gid_t gid,
		      char *err, size_t errlen);
void cr_control_close(void);
/* settings.monitor_group, before cr_control_listen(): its members may run
 * the read-only commands (ping, version, status), and reach the socket. */
void cr_control_monitor(int set, gid_t gid);

#endif
