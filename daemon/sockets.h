/* sockets.h: listening sockets that corrald holds for its pools. */
#ifndef CR_SOCKETS_H
#define CR_SOCKETS_H

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

#endif
