/* unixmsg.h: messages over unix sockets between corral's processes. */
#ifndef CR_UNIXMSG_H
#define CR_UNIXMSG_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Descriptors one message may carry; more are closed on receipt. */
#define CR_UNIXMSG_MAX_FDS 16

/* Sends buf with nfds descriptors (SCM_RIGHTS); retries EINTR, never
 * raises SIGPIPE. Bytes sent, or -1 with errno. */
ssize_t cr_unixmsg_send(int sock, const void *buf, size_t len, const int *fds, int nfds, int flags);

/* What came with a message besides its bytes. */
struct cr_unixmsg_extra {
	int fds[CR_UNIXMSG_MAX_FDS];	/* close-on-exec, owned by the caller */
	int nfds;
	struct ucred cred;		/* pid 0: no credentials came */
	int truncated;			/* bytes or control data were cut */
};

/* Receives one message into buf. Descriptors beyond keep_fds are closed
 * at once (0: all of them; that also releases a sender that waits for its
 * fd to be closed, like BARRIER=1). Returns the message's length (more
 * than len when it was cut, with MSG_TRUNC in flags), 0 at EOF, or -1
 * with errno; retries EINTR. */
ssize_t cr_unixmsg_recv(int sock, void *buf, size_t len, int keep_fds, struct cr_unixmsg_extra *x, int flags);
void cr_unixmsg_close_fds(struct cr_unixmsg_extra *x);

/* ---- the worker's channel to corrald: a SOCK_SEQPACKET pair whose
 * worker end is close-on-exec, so EOF without an error means it exec'd */

enum cr_chan_type {
	CR_CHAN_ERROR = 1,	/* could not start: step, err */
	CR_CHAN_STARTED,	/* its Lua start hook is running */
	CR_CHAN_READY,		/* corral.ready() */
	CR_CHAN_BUSY,		/* corral.busy() */
	CR_CHAN_IDLE,		/* corral.idle() */
	CR_CHAN_REQUESTS,	/* corral.request_done(count) */
};

struct cr_chan_msg {
	int type;
	int step;		/* enum cr_spawn_step, for CR_CHAN_ERROR */
	int err;		/* errno, for CR_CHAN_ERROR */
	unsigned count;		/* requests, for CR_CHAN_REQUESTS */
};

/* Sends one message on a worker's channel; 0 or -errno. */
int cr_chan_send(int chan, int type, int step, int err);
/* The same, a message built by the caller. */
int cr_chan_send_msg(int chan, const struct cr_chan_msg *m);

#endif
