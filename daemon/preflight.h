/* preflight.h: a config tried in a child process, with a time limit,
 * before corrald runs it (see preflight.c). */
#ifndef CR_PREFLIGHT_H
#define CR_PREFLIGHT_H

/* 0 when the child loaded it (or no child could be made); 1 with *err
 * (free it) when its load ended with the config's errors; -1 with *err
 * when it hung past `seconds` or crashed. */
int cr_preflight(const char *path, double seconds, char **err);

#endif
