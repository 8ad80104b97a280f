/*
 * proctitle.c: rewrites the argv area so that /proc/PID/cmdline and ps show
 * a process's role ("corral: prototype web"). The kernel reports the bytes
 * from argv[0] to the end of the original argv and environ strings, so the
 * environment is first copied to the heap and the whole span reused.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "proctitle.h"

extern char **environ;

static char *area;
static size_t area_len;
/* the copies, also when unsetenv() or setenv() drop them from environ */
static char **volatile env_strings, **volatile env_array;

void cr_proctitle_init(int argc, char **argv)
{
	char *end = argv[0] + strlen(argv[0]) + 1;
	size_t n = 0;
	char **copy;

	for (int i = 1; i < argc; i++)
		if (argv[i] == end)
			end = argv[i] + strlen(argv[i]) + 1;
	for (char **e = environ; *e; e++)
		n++;
	copy = calloc(n + 1, sizeof *copy);
	if (!copy)
		return;	/* keep the original title: harmless */
	env_strings = calloc(n + 1, sizeof *env_strings);
	if (!env_strings)
		return;
	for (size_t i = 0; i < n; i++) {
		if (environ[i] == end)
			end = environ[i] + strlen(environ[i]) + 1;
		copy[i] = env_strings[i] = strdup(environ[i]);
		if (!copy[i])
			return;	/* keep the original title: harmless */
	}
	environ = env_array = copy;
	/* argv strings other than argv[0] are about to be overwritten */
	for (int i = 1; i < argc; i++)
		argv[i] = strdup(argv[i]);
	area = argv[0];
	area_len = (size_t)(end - argv[0]);
}

void cr_proctitle_set(const char *fmt, ...)
{
	char title[256];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(title, sizeof title, fmt, ap);
	va_end(ap);
	prctl(PR_SET_NAME, title + (strncmp(title, "corral: ", 8) ? 0 : 8), 0, 0, 0);
	if (!area || area_len < 2)
		return;
	n = strlen(title);
	if (n > area_len - 1)
		n = area_len - 1;
	memcpy(area, title, n);
	memset(area + n, 0, area_len - n);
}
