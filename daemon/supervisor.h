/* supervisor.h: pools and workers, and the events that drive them. */
#ifndef CR_SUPERVISOR_H
#define CR_SUPERVISOR_H

#include <ev.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

struct cr_config;
struct cr_proto;

/* Takes ownership of conf and starts every pool. */
int cr_supervisor_start(struct ev_loop *loop, struct cr_config *conf, int verbose);

/* Freezes (on) or thaws a pool through cgroup.freeze; "pool frozen" is
 * logged (and the frozen event sent) once cgroup.events confirms it.
 * 0, or -ENOENT for an unknown pool, or -errno. */
int cr_supervisor_freeze(const char *pool, int on);

/* The i-th running pool's name, NULL past the last. */
const char *cr_supervisor_pool_name(unsigned i);
int cr_supervisor_pool_exists(const char *name);

/* Control (corralctl and plugins). Each returns 0 (signal: how many were
 * signalled) or -ENOENT for an unknown pool, -ESRCH for an unknown worker. */
struct cr_buf;
int cr_supervisor_scale(const char *pool, unsigned n);
/* id 0: the whole pool (new prototype, then workers one by one, or all
 * at once); else that worker. */
int cr_supervisor_restart(const char *pool, unsigned id, int all_at_once);
int cr_supervisor_pool_stop(const char *pool);
int cr_supervisor_pool_start(const char *pool);
int cr_supervisor_signal(const char *pool, unsigned id, int sig);
/* 0 with a summary in msg, or -1 with the error (file:line) in msg. */
int cr_supervisor_reload(char *msg, size_t msglen);
/* The pools as a JSON array, or as a table for people. */
int cr_supervisor_status(struct cr_buf *b, const char *pool, int json);

/* Frees what is left once the loop has returned. */
void cr_supervisor_finish(void);

/* Events from proto.c. */
void cr_supervisor_on_proto_ready(struct cr_proto *p);
void cr_supervisor_on_spawned(struct cr_proto *p, uint32_t serial, pid_t pid, int pidfd, int chan);
void cr_supervisor_on_spawn_failed(struct cr_proto *p, uint32_t serial, int err);
void cr_supervisor_on_exited(struct cr_proto *p, pid_t pid, int status);
void cr_supervisor_on_proto_lost(struct cr_proto *p);

/* A notification from a process (notify.c); attributed by its cgroup. */
struct cr_notify_msg;
void cr_supervisor_on_notify(pid_t sender, const struct cr_notify_msg *m);

/* What corrald exits with once its loop returns: 1 when a pool failed
 * before it was ever ready (a failed start), else 0. */
int cr_supervisor_exit_code(void);

#endif
