/*
 * confcheck.c: `corrald -t` also checks what a config names on this
 * system: the program each pool runs (found as execvp would find it,
 * with the pool's PATH, from its directory), the directory, and the
 * cgroup files that limits.cgroup writes by name. Only with -t: at start
 * and reload corrald does not touch the file systems these live on
 * (a hung mount would block it); a missing program shows there as the
 * pool's workers failing to start. (isolation's root and mount sources
 * are the exception: config.c checks them at every load, isolcheck.c,
 * so -t reports them as load errors before it gets here.)
 * A config with errors is checked too, the pools that had none: its
 * errors and these findings come out together, in file order.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "config.h"
#include "confcheck.h"

struct finding {
	int line, seq, error;
	char *text;
};

struct findings {
	struct finding *v;
	int n, cap, errors;
};

/* As config.lua reports them: at most this many lines, then a count. */
#define MAX_LINES 20

static void add_text(struct findings *f, int line, int seq, int error, const char *text)
{
	if (f->n == f->cap) {
		int cap = f->cap ? f->cap * 2 : 16;
		struct finding *v = realloc(f->v, (size_t)cap * sizeof *v);
		if (!v)
			return;
		f->v = v;
		f->cap = cap;
	}
	f->v[f->n] = (struct finding){ line, seq, error, strdup(text) };
	if (f->v[f->n].text)
		f->n++;
	f->errors += error;
}

static void add(struct findings *f, const struct cr_pool_conf *pc, int line, int error,
		const char *key, const char *what)
{
	char text[PATH_MAX * 4 + 512];

	snprintf(text, sizeof text, "%s:%d: pool \"%s\": %s: %s%s", pc->file, line, pc->name, key,
		 error ? "" : "warning: ", what);
	/* after the config's own errors at the same line */
	add_text(f, line, INT_MAX / 2 + f->n, error, text);
}

/* The config's errors, a line each, "FILE:LINE: ..." (a line without
 * one sorts last), and its "FILE: and N more errors": N. */
static int add_errors(struct findings *f, char *errors)
{
	int more = 0;

	for (char *line = errors, *nl; line && *line; line = nl ? nl + 1 : NULL) {
		char *colon = strchr(line, ':'), *end;
		long n = -1;

		if ((nl = strchr(line, '\n')))
			*nl = 0;
		if (colon && sscanf(colon, ": and %d more errors", &more) == 1 && !nl)
			break;
		if (colon && colon[1] >= '0' && colon[1] <= '9') {
			n = strtol(colon + 1, &end, 10);
			if (*end != ':' || n > INT_MAX / 2)
				n = -1;
		}
		add_text(f, n < 0 ? INT_MAX : (int)n, f->n, 1, line);
	}
	return more;
}

static const char *env_get(char **envp, const char *name)
{
	size_t n = strlen(name);

	for (; envp && *envp; envp++)
		if (!strncmp(*envp, name, n) && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

/* 0 if path is an executable file, else an errno-like reason. */
static int executable(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return errno;
	if (!S_ISREG(st.st_mode))
		return EISDIR;
	return access(path, X_OK) < 0 ? errno : 0;
}

/* A relative path is looked up from the pool's directory, where the
 * worker runs. */
static void resolve(char *buf, size_t n, const char *dir, const char *path)
{
	if (path[0] == '/')
		snprintf(buf, n, "%s", path);
	else
		snprintf(buf, n, "%s/%s", dir, path);
}

static void check_program(struct findings *f, const struct cr_pool_conf *pc)
{
	const char *prog = pc->argv ? pc->argv[0] : NULL, *path;
	char full[PATH_MAX * 2], what[PATH_MAX * 3];
	int rc;

	if (!prog || !*prog)
		return;	/* a pool of start functions only */
	if (strchr(prog, '/')) {
		resolve(full, sizeof full, pc->directory, prog);
		if ((rc = executable(full))) {
			snprintf(what, sizeof what, "%s: %s", prog,
				 rc == EISDIR ? "not a regular file" : strerror(rc));
			add(f, pc, pc->command_line, 1, "command", what);
		}
		return;
	}
	/* execvp's search: the worker's PATH, else the C library's default */
	path = env_get(pc->envp, "PATH");
	if (!path)
		path = "/bin:/usr/bin";
	for (const char *p = path;; ) {
		size_t len = strcspn(p, ":");
		char dir[PATH_MAX];

		snprintf(dir, sizeof dir, "%.*s", (int)(len < sizeof dir ? len : sizeof dir - 1), p);
		resolve(full, sizeof full, pc->directory, dir[0] ? dir : ".");
		snprintf(full + strlen(full), sizeof full - strlen(full), "/%s", prog);
		if (executable(full) == 0)
			return;
		if (!p[len])
			break;
		p += len + 1;
	}
	snprintf(what, sizeof what, "%s: no executable of that name in PATH (%s)", prog, path);
	add(f, pc, pc->command_line, 1, "command", what);
}

static void check_directory(struct findings *f, const struct cr_pool_conf *pc)
{
	struct stat st;
	char what[PATH_MAX + 128];

	if (stat(pc->directory, &st) < 0)
		snprintf(what, sizeof what, "%s: %s", pc->directory, strerror(errno));
	else if (!S_ISDIR(st.st_mode))
		snprintf(what, sizeof what, "%s: not a directory", pc->directory);
	else
		return;
	add(f, pc, pc->directory_line, 1, "directory", what);
}

static int exists_in(const char *dir, const char *file)
{
	char path[PATH_MAX * 3];

	if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, file) >= sizeof path)
		return 0;
	return access(path, F_OK) == 0;
}

/* A cgroup file is there in every cgroup below one whose subtree_control
 * enables its controller ("memory" of "memory.low"; "cgroup" files are
 * core). Look from corrald's own cgroup up to the root for one that has
 * it, or where the controller is on and it is not. */
static void check_cgroup_file(struct findings *f, const struct cr_pool_conf *pc,
			      const struct cr_limit *l, const char *mount, const char *own)
{
	char dir[PATH_MAX * 2], ctrl[64], what[PATH_MAX + 256], *slash;
	size_t mlen = strlen(mount);
	int enabled = 0;

	if (!strstr(l->key, ".cgroup."))
		return;	/* a named limit: corral knows its file */
	snprintf(ctrl, sizeof ctrl, "%.*s", (int)strcspn(l->file, "."), l->file);
	snprintf(dir, sizeof dir, "%s%s", mount, own);
	while (!enabled && strlen(dir) > mlen) {
		if (exists_in(dir, l->file))
			return;
		slash = strrchr(dir, '/');
		*slash = 0;
		/* dir is the parent now: does it give the controller down? */
		enabled = !strcmp(ctrl, "cgroup") || cr_cgroup_has_controller(dir[0] ? dir : "/",
									     "cgroup.subtree_control", ctrl);
	}
	if (!enabled && exists_in(mount, l->file))
		return;
	if (enabled || !strcmp(ctrl, "cgroup")) {
		add(f, pc, l->line, 1, l->key, "no such file in the cgroup v2 interface");
		return;
	}
	if (!cr_cgroup_has_controller(mount, "cgroup.controllers", ctrl))
		snprintf(what, sizeof what, "%s: not checked: this system has no %s controller", l->file, ctrl);
	else
		snprintf(what, sizeof what, "%s: not checked: the %s controller is not enabled above "
			 "corrald's cgroup", l->file, ctrl);
	add(f, pc, l->line, 0, l->key, what);
}

static void check_limits(struct findings *f, const struct cr_pool_conf *pc, const struct cr_limits *ls,
			 const char *mount, const char *own)
{
	char what[PATH_MAX + 64];

	for (unsigned i = 0; i < ls->n; i++) {
		if (!strstr(ls->v[i].key, ".cgroup."))
			continue;
		if (!mount[0]) {
			snprintf(what, sizeof what, "%s: not checked: no cgroup2 mount", ls->v[i].file);
			add(f, pc, ls->v[i].line, 0, ls->v[i].key, what);
			continue;
		}
		check_cgroup_file(f, pc, &ls->v[i], mount, own);
	}
}

static int by_line(const void *a, const void *b)
{
	const struct finding *x = a, *y = b;

	return x->line != y->line ? (x->line > y->line) - (x->line < y->line) : x->seq - y->seq;
}

int cr_confcheck(const struct cr_config *conf, char *errors, const char *file, FILE *out)
{
	struct findings f = { 0 };
	char mount[PATH_MAX] = "", own[PATH_MAX] = "";
	int more = add_errors(&f, errors);

	if (cr_cgroup_mount(mount, sizeof mount) < 0 || cr_cgroup_of(getpid(), own, sizeof own) < 0)
		mount[0] = 0;
	if (!strcmp(own, "/"))
		own[0] = 0;
	for (unsigned i = 0; conf && i < conf->npools; i++) {
		const struct cr_pool_conf *pc = conf->pools[i];

		if (pc->isolation.rootfs) {
			/* they are looked up inside the pool's root, with its
			 * mounts, which -t does not make */
			if (pc->argv && pc->argv[0] && *pc->argv[0])
				add(&f, pc, pc->command_line, 0, "command",
				    "not checked: it runs inside isolation.rootfs, which -t does not enter");
		} else {
			check_program(&f, pc);
			check_directory(&f, pc);
		}
		check_limits(&f, pc, &pc->limits, mount, own);
		check_limits(&f, pc, &pc->worker_limits, mount, own);
	}
	if (f.n > 1)
		qsort(f.v, (size_t)f.n, sizeof *f.v, by_line);
	for (int i = 0; i < f.n; i++) {
		if (i < MAX_LINES)
			fprintf(out, "corrald: %s\n", f.v[i].text);
		else
			more++;
		free(f.v[i].text);
	}
	if (more > 0)
		fprintf(out, "corrald: %s: and %d more errors\n", file, more);
	free(f.v);
	return f.errors;
}
