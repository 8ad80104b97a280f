/* sockets.h: listening sockets that corrald holds for its pools. */
#ifndef CR_SOCKETS_H
#define CR_SOCKETS_H

#include <sys/types.h>

struct cr_config;

/* Takes the sockets systemd passed (LISTEN_FDS, named with FileDescriptor
 * Name= or stored earlier with FDSTORE=1). Call once at startup. */
void cr_sockets_init(void);
/* Gives every pool's listen entries an fd: one already open for the same
 * spec is reused (so nothing is refused across reloads), a "systemd" one
 * comes from systemd, others are bound now and offered to systemd's fd
 * store. Sockets that no pool of conf uses are closed by cr_sockets_commit.
 * On error returns -1 with a message in err; nothing of conf is kept. */
int cr_sockets_open(struct cr_config *conf, char *err, size_t errlen);
/* conf became the running config: close what it does not use. */
void cr_sockets_commit(const struct cr_config *conf);
void cr_sockets_finish(void);

/* A listening unix socket at path (socket() flags: SOCK_NONBLOCK or 0),
 * made with mode and, unless gid is (gid_t)-1, that group; its directory
 * made if missing. Refused (see sockets.c) unless its directories are
 * safe from other users. A socket of ours at path is replaced if no one
 * listens on it (else -EADDRINUSE), or even then with live_ok; anything
 * else there is left alone. The fd, or -errno with why set. */
int cr_unix_listen(const char *path, int flags, int live_ok, mode_t mode, gid_t gid, int backlog,
		   char *why, size_t n);
/* Removes path if it is a socket of corrald's user. */
void cr_unix_unlink(const char *path);

#endif
