/* notify.h: sd_notify upward to systemd, and the workers' NOTIFY_SOCKET. */
#ifndef CR_NOTIFY_H
#define CR_NOTIFY_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- upward: corrald to its service manager (all no-ops without
 * NOTIFY_SOCKET) ---- */
void cr_notify_init(struct ev_loop *loop);	/* the watchdog, if asked for */
/* Whether a service manager is listening (NOTIFY_SOCKET was set). */
int cr_notify_managed(void);
void cr_notify_finish(void);
void cr_notify_ready(void);
void cr_notify_reloading(void);
void cr_notify_stopping(void);
void cr_notify_extend_timeout(uint64_t usec);
/* STATUS=..., sent only when it differs from the last one. */
void cr_notify_status(const char *status);

/* ---- inward: what workers send to the socket corrald gives them ---- */

#define CR_NOTIFY_STATUS_MAX 256

/* REQUESTS=N: N at most this (a count of requests since the last report). */
#define CR_NOTIFY_REQUESTS_MAX 4294967295ULL

enum { CR_LOAD_BUSY = 1, CR_LOAD_IDLE = 2 };

/* One datagram, parsed: a field is set when the message carried it. */
struct cr_notify_msg {
	int ready, stopping, reloading, watchdog, watchdog_trigger;
	int has_status;
	char status[CR_NOTIFY_STATUS_MAX];
	uint64_t extend_usec;		/* EXTEND_TIMEOUT_USEC, 0 if absent */
	uint64_t watchdog_usec;		/* WATCHDOG_USEC, 0 if absent */
	pid_t mainpid;			/* MAINPID, 0 if absent */
	int has_errno, errnum;
	/* load reports (corral's own keys): the last of BUSY=1 / IDLE=1, and
	 * the REQUESTS=N of the datagram added up (each N an increment) */
	int load;			/* 0, CR_LOAD_BUSY or CR_LOAD_IDLE */
	uint64_t requests;
	unsigned unknown;		/* assignments we do not understand */
};

/* Parses a datagram of n bytes (not NUL-terminated). 0, or -EINVAL with
 * *why naming the problem (the datagram is then ignored whole). */
int cr_notify_parse(const char *buf, size_t n, struct cr_notify_msg *m, const char **why);

/* Opens corrald's own notify socket (abstract, SO_PASSCRED). Each message
 * that parses is handed to on_message with the sender's pid. */
int cr_notify_listen(struct ev_loop *loop, void (*on_message)(pid_t sender, const struct cr_notify_msg *m));
/* Its address for NOTIFY_SOCKET ("@corral/PID/notify"). */
const char *cr_notify_socket(void);
/* The same socket bound to a path (made on first use, removed at close),
 * for workers that cannot reach an abstract name; NULL if it cannot be. */
const char *cr_notify_path(void);
/* Where that path goes without root: the directory of this file (the
 * control socket's, corrald's own). Root's is /run/corral. */
void cr_notify_set_dir(const char *file_in_it);
void cr_notify_close(void);

#endif
