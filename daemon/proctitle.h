/* proctitle.h: what `ps` shows for corral's own processes. */
#ifndef CR_PROCTITLE_H
#define CR_PROCTITLE_H

/* Call first thing in main: moves environ out of the way of argv. */
void cr_proctitle_init(int argc, char **argv);
void cr_proctitle_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
