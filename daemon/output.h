/* output.h: workers' stdout and stderr, pumped through corrald. */
#ifndef CR_OUTPUT_H
#define CR_OUTPUT_H

#include <ev.h>

struct cr_pool_conf;
struct cr_output;

/* Where a pool's workers write, as the prototype arranges it. */
enum cr_output_kind {
	CR_OUTPUT_DIRECT,	/* journal, null: the worker's own fd, no pump */
	CR_OUTPUT_TERMINAL,	/* inherit (auto outside systemd): corrald's
				 * stderr, each line prefixed "pool/id | " */
	CR_OUTPUT_FILE,		/* a path: corrald appends whole lines to it */
};

enum cr_output_kind cr_output_kind(const struct cr_pool_conf *pc);
/* Opens a pool's output file as root: not through a symlink, nor a
 * regular file with another name (a hard link). fd, or -errno. */
int cr_output_open_file(const char *path);

void cr_output_init(struct ev_loop *loop);
/* Reads a worker's pipe (fd, corrald's from then on) until its EOF.
 * NULL when pc's output is not pumped or out of memory (fd closed). */
struct cr_output *cr_output_attach(int fd, const struct cr_pool_conf *pc, unsigned worker);
/* The worker's record goes: the pipe is read until EOF, or a few
 * seconds more at most (a process that kept it). NULL is fine. */
void cr_output_detach(struct cr_output *o);
/* SIGUSR1: every output file is opened again (logrotate). */
int cr_output_reopen(void);
/* What is left is read, written and closed. */
void cr_output_finish(void);

#endif
