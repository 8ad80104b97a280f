/*
 * unixmsg.c: one message at a time over unix sockets, with the file
 * descriptors and credentials that ride along. The prototype protocol
 * (proto.c), the workers' notify socket (notify.c) and the workers'
 * channel all go through here, so descriptors are harvested, and closed
 * when unwanted, in one place.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "unixmsg.h"

ssize_t cr_unixmsg_send(int sock, const void *buf, size_t len, const int *fds, int nfds, int flags)
{
	union {
		char buf[CMSG_SPACE(CR_UNIXMSG_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = (void *)(uintptr_t)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (nfds > CR_UNIXMSG_MAX_FDS) {
		errno = EINVAL;
		return -1;
	}
	if (nfds > 0) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof u);
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	}
	while ((n = sendmsg(sock, &mh, flags | MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	return n;
}

void cr_unixmsg_close_fds(struct cr_unixmsg_extra *x)
{
	for (int i = 0; i < x->nfds; i++)
		close(x->fds[i]);
	x->nfds = 0;
}

ssize_t cr_unixmsg_recv(int sock, void *buf, size_t len, int keep_fds, struct cr_unixmsg_extra *x, int flags)
{
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(CR_UNIXMSG_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof u.buf,
	};
	ssize_t n;

	memset(x, 0, sizeof *x);
	while ((n = recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (n < 0)
		return n;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET)
			continue;
		if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len == CMSG_LEN(sizeof x->cred)) {
			memcpy(&x->cred, CMSG_DATA(c), sizeof x->cred);
		} else if (c->cmsg_type == SCM_RIGHTS) {
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k; i++) {
				int fd;
				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
				if (x->nfds < keep_fds && x->nfds < CR_UNIXMSG_MAX_FDS)
					x->fds[x->nfds++] = fd;
				else
					close(fd);
			}
		}
	}
	x->truncated = (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
	return n;
}

int cr_chan_send(int chan, int type, int step, int err)
{
	struct cr_chan_msg m = { .type = type, .step = step, .err = err };

	return cr_chan_send_msg(chan, &m);
}

int cr_chan_send_msg(int chan, const struct cr_chan_msg *m)
{
	while (send(chan, m, sizeof *m, MSG_NOSIGNAL) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}
