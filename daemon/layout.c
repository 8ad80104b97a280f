/*
 * layout.c: corral's cgroup tree. The base is systemd's delegated unit
 * cgroup or a path of our own; corrald lives in <base>/corrald (the no-
 * internal-processes rule: <base> itself holds only cgroups), each pool
 * in <base>/<pool>, its prototype in <pool>/prototype and each worker in
 * <pool>/<id>. Pool names have no dot, so none collides with a kernel
 * file. Only directories this file creates are ever written or removed.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroup.h"
#include "config.h"
#include "layout.h"
#include "log.h"

static char mount_point[PATH_MAX];
static char base[PATH_MAX];
static char origin[PATH_MAX];	/* where corrald was before its leaf */
static int base_is_ours;	/* we created base: remove it at exit */
/* cgroups in base that are not corral's, left alone at start: what keeps
 * the base at exit when nothing else does */
#define MAX_FOREIGN 16
static char foreign[MAX_FOREIGN][256];
static unsigned nforeign;

const char *cr_layout_base(void)
{
	return base;
}

static int path_join(char *buf, size_t n, const char *a, const char *b)
{
	return (size_t)snprintf(buf, n, "%s/%s", a, b) >= n ? -ENAMETOOLONG : 0;
}

int cr_layout_pool_dir(char *buf, size_t n, const char *pool)
{
	return path_join(buf, n, base, pool);
}

int cr_layout_proto_dir(char *buf, size_t n, const char *pool)
{
	return (size_t)snprintf(buf, n, "%s/%s/prototype", base, pool) >= n ? -ENAMETOOLONG : 0;
}

int cr_layout_proto_aside_dir(char *buf, size_t n, const char *pool, unsigned seq)
{
	return (size_t)snprintf(buf, n, "%s/%s/prototype.%u", base, pool, seq) >= n ? -ENAMETOOLONG : 0;
}

int cr_layout_worker_dir(char *buf, size_t n, const char *pool, unsigned id)
{
	return (size_t)snprintf(buf, n, "%s/%s/%u", base, pool, id) >= n ? -ENAMETOOLONG : 0;
}

/* A live corrald other than us in <base>/corrald: two supervisors must
 * never share a tree. */
static pid_t other_corrald(const char *leaf)
{
	char buf[4096];
	ssize_t n = cr_cgroup_read(leaf, "cgroup.procs", buf, sizeof buf);

	if (n <= 0)
		return 0;
	for (char *p = buf; *p;) {
		char *end;
		long pid = strtol(p, &end, 10);
		if (end == p)
			break;
		if (pid > 0 && pid != getpid() && kill((pid_t)pid, 0) == 0)
			return (pid_t)pid;
		p = end + (*end == '\n');
	}
	return 0;
}

/* A pool's cgroup holds prototype/ or workers' (numbered) cgroups; the
 * prototype's comes and goes with each prototype. */
static int looks_like_pool(const char *dir)
{
	struct dirent *e;
	int found = 0;
	DIR *d = opendir(dir);

	if (!d)
		return 0;
	while (!found && (e = readdir(d)))
		found = e->d_type == DT_DIR && (!strcmp(e->d_name, "prototype") ||
			(e->d_name[0] >= '1' && e->d_name[0] <= '9' &&
			 strspn(e->d_name, "0123456789") == strlen(e->d_name)));
	closedir(d);
	return found;
}

/* Pools of an earlier corrald that was killed: kill what runs in them
 * and remove them. */
static int remove_leftovers(void)
{
	char sub[PATH_MAX];
	struct dirent *e;
	int removed = 0, failed = 0;
	DIR *d = opendir(base);

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (e->d_type != DT_DIR || e->d_name[0] == '.' || !strcmp(e->d_name, "corrald"))
			continue;
		if (path_join(sub, sizeof sub, base, e->d_name) < 0)
			continue;
		/* only what looks like a pool of ours (it has a prototype/):
		 * a base shared by mistake must not cost others their cgroups.
		 * A corrald killed while a pool had neither leaves POOL/
		 * empty. rmdir takes only an empty cgroup, one with no process
		 * and no child cgroup: that holds nothing of anyone's. */
		if (!looks_like_pool(sub)) {
			if (rmdir(sub) == 0)
				removed++;
			else {
				cr_warn(NULL, "cgroup: %s is not a pool of corral's, left alone", sub);
				if (nforeign < MAX_FOREIGN)
					snprintf(foreign[nforeign++], sizeof *foreign, "%s", e->d_name);
			}
			continue;
		}
		int rc = cr_cgroup_destroy(sub);
		if (rc < 0) {
			cr_error(NULL, "cgroup: unable to remove the leftover %s: %s", sub, strerror(-rc));
			failed++;
		} else {
			removed += rc;
		}
	}
	closedir(d);
	if (removed)
		cr_notice(NULL, "cgroup: removed %d cgroups left under %s by an earlier corrald", removed, base);
	return failed ? -EBUSY : 0;
}

int cr_layout_init(const char *setting, char *err, size_t errlen)
{
	char self[PATH_MAX], leaf[PATH_MAX + 16];
	int rc, delegated = 0;
	pid_t other;

	if ((rc = cr_cgroup_mount(mount_point, sizeof mount_point)) < 0) {
		snprintf(err, errlen, "cgroup: unable to find a cgroup2 mount in /proc/self/mountinfo: %s",
			 strerror(-rc));
		return -1;
	}
	if ((rc = cr_cgroup_of(getpid(), self, sizeof self)) < 0) {
		snprintf(err, errlen, "cgroup: unable to read /proc/self/cgroup: %s", strerror(-rc));
		return -1;
	}
	if (!setting || !strcmp(setting, "auto")) {
		char own[PATH_MAX * 2];
		const char *in = self;
		size_t len = strlen(self);
		/* already in our leaf (a restart of corrald in place) */
		if (len >= 8 && !strcmp(self + len - 8, "/corrald"))
			len -= 8;
		snprintf(own, sizeof own, "%s%.*s", mount_point, (int)len, in);
		/* systemd marks a delegated cgroup (an xattr); a user's
		 * manager may not, but a cgroup a user owns was given to it */
		delegated = cr_cgroup_delegated(own) || (geteuid() != 0 && cr_cgroup_owned(own));
		if ((size_t)snprintf(base, sizeof base, "%s", delegated ? own : mount_point)
		    >= sizeof base - 8) {
			snprintf(err, errlen, "cgroup: path too long: %s", own);
			return -1;
		}
		if (!delegated)
			strcat(base, "/corral");
	} else if ((size_t)snprintf(base, sizeof base, "%s%s", mount_point, setting) >= sizeof base) {
		snprintf(err, errlen, "cgroup: path too long: %s", setting);
		return -1;
	}
	/* a base systemd delegated stays; one of our own goes at exit, even
	 * one an earlier corrald made */
	base_is_ours = !delegated;
	if ((rc = cr_cgroup_mkdir(base)) < 0) {
		snprintf(err, errlen, "cgroup: unable to create %s: %s", base, strerror(-rc));
		return -1;
	}
	snprintf(leaf, sizeof leaf, "%s/corrald", base);
	if ((other = other_corrald(leaf))) {
		snprintf(err, errlen, "cgroup: %s is in use by another corrald (pid %d); "
			 "give each its own with settings { cgroup = ... } or -g", base, (int)other);
		return -1;
	}
	remove_leftovers();
	if ((size_t)snprintf(origin, sizeof origin, "%s%s", mount_point, self) >= sizeof origin)
		origin[0] = 0;
	if ((rc = cr_cgroup_mkdir(leaf)) < 0 || (rc = cr_cgroup_attach(leaf, getpid())) < 0) {
		snprintf(err, errlen, "cgroup: unable to move corrald into %s: %s", leaf, strerror(-rc));
		return -1;
	}
	cr_info(NULL, "cgroup: base %s", base);
	return 0;
}

int cr_layout_attribute(const char *cgpath, char *pool, size_t n, unsigned *id)
{
	size_t mlen = strlen(mount_point), blen = strlen(base);
	const char *rel, *slash, *end;
	char *endnum;
	unsigned long v;

	/* base is <mount><rel>; cgpath is relative to the mount */
	if (blen < mlen)
		return -1;
	rel = base + mlen;
	if (strncmp(cgpath, rel, blen - mlen) != 0 || cgpath[blen - mlen] != '/')
		return -1;
	cgpath += blen - mlen + 1;
	slash = strchr(cgpath, '/');
	if (!slash || slash == cgpath || (size_t)(slash - cgpath) >= n)
		return -1;
	end = slash + 1;
	v = strtoul(end, &endnum, 10);
	if (endnum == end || (*endnum && *endnum != '/') || v == 0 || v > 0xffffffffUL)
		return -1;
	memcpy(pool, cgpath, (size_t)(slash - cgpath));
	pool[slash - cgpath] = 0;
	*id = (unsigned)v;
	return 0;
}

/* Whether all that keeps the base is what was not corral's at start. */
static int only_foreign_left(void)
{
	struct dirent *e;
	int ours = 0;
	DIR *d = opendir(base);

	if (!d)
		return 0;
	while (!ours && (e = readdir(d))) {
		unsigned i;
		if (e->d_type != DT_DIR || e->d_name[0] == '.')
			continue;
		for (i = 0; i < nforeign && strcmp(foreign[i], e->d_name); i++)
			;
		ours = i == nforeign;
	}
	closedir(d);
	return !ours;
}

/* Logs what keeps dir from going: it and each cgroup below it, with the
 * pids in each. */
static void report_left(const struct cr_who *who, const char *dir, int depth)
{
	char pids[1024], sub[PATH_MAX];
	ssize_t n = cr_cgroup_read(dir, "cgroup.procs", pids, sizeof pids);
	struct dirent *e;
	DIR *d;

	for (ssize_t i = 0; i < n; i++)
		if (pids[i] == '\n')
			pids[i] = i == n - 1 ? 0 : ' ';
	cr_error(who, "cgroup: left behind: %s (pids: %s)", dir, n > 0 ? pids : "none");
	if (depth > 8 || !(d = opendir(dir)))
		return;
	while ((e = readdir(d)))
		if (e->d_type == DT_DIR && e->d_name[0] != '.' && path_join(sub, sizeof sub, dir, e->d_name) == 0)
			report_left(who, sub, depth + 1);
	closedir(d);
}

int cr_layout_remove_pool(const char *pool)
{
	struct cr_who who = { .pool = pool };
	char dir[PATH_MAX];
	int rc;

	if (cr_layout_proto_dir(dir, sizeof dir, pool) == 0)
		cr_cgroup_rmdir(dir);
	if (cr_layout_pool_dir(dir, sizeof dir, pool) < 0 || (rc = cr_cgroup_rmdir(dir)) == 0)
		return 0;
	cr_error(&who, "cgroup: unable to remove the pool's cgroup %s: %s", dir, strerror(-rc));
	report_left(&who, dir, 0);
	return -1;
}

int cr_layout_finish(void)
{
	char leaf[PATH_MAX + 16];
	int rc;

	if (!base[0] || !origin[0])
		return 0;
	/* leave the tree as we found it: back where we came from, then our
	 * leaf and, when we made it, the base go */
	snprintf(leaf, sizeof leaf, "%s/corrald", base);
	if (strcmp(origin, leaf) == 0 || cr_cgroup_attach(origin, getpid()) < 0)
		return 0;
	if ((rc = cr_cgroup_rmdir(leaf)) < 0) {
		cr_error(NULL, "cgroup: unable to remove %s: %s", leaf, strerror(-rc));
		report_left(NULL, leaf, 0);
		return -1;
	}
	if (base_is_ours && (rc = cr_cgroup_rmdir(base)) < 0) {
		if (only_foreign_left()) {
			cr_warn(NULL, "cgroup: the base %s stays: it holds cgroups that are not corral's", base);
			return 0;
		}
		/* what is left in it was named already */
		cr_error(NULL, "cgroup: unable to remove the base %s: %s", base, strerror(-rc));
		return -1;
	}
	return 0;
}

/* "memory.max" -> "memory" */
static void controller_of(const char *file, char *buf, size_t n)
{
	size_t len = strcspn(file, ".");

	snprintf(buf, n, "%.*s", (int)(len < n ? len : n - 1), file);
}

static int enable(const char *dir, const char *controller)
{
	char v[64];

	if (cr_cgroup_has_controller(dir, "cgroup.subtree_control", controller))
		return 0;
	snprintf(v, sizeof v, "+%s", controller);
	return cr_cgroup_write(dir, "cgroup.subtree_control", v);
}

static int check_limits(const char *pool, const struct cr_limits *l, int required,
			char *err, size_t errlen)
{
	char ctl[32];
	struct cr_who who = { .pool = pool };

	for (unsigned i = 0; i < l->n; i++) {
		controller_of(l->v[i].file, ctl, sizeof ctl);
		if (!strcmp(ctl, "cgroup") || cr_cgroup_has_controller(base, "cgroup.controllers", ctl)) {
			int rc = strcmp(ctl, "cgroup") ? enable(base, ctl) : 0;
			if (rc < 0)
				cr_warn(&who, "cgroup: unable to enable the %s controller in %s: %s",
					ctl, base, strerror(-rc));
			continue;
		}
		if (required) {
			snprintf(err, errlen, "pool \"%s\": %s cannot be applied: the %s controller is not "
				 "available in %s (limits_required = true)", pool, l->v[i].key, ctl, base);
			return -1;
		}
		cr_warn(&who, "cgroup: %s cannot be applied: the %s controller is not available in %s",
			l->v[i].key, ctl, base);
	}
	return 0;
}

int cr_layout_controllers(const struct cr_config *conf, char *err, size_t errlen)
{
	/* per-worker memory and pids stats and OOM groups, where offered */
	if (cr_cgroup_has_controller(base, "cgroup.controllers", "memory"))
		enable(base, "memory");
	if (cr_cgroup_has_controller(base, "cgroup.controllers", "pids"))
		enable(base, "pids");
	for (unsigned i = 0; i < conf->npools; i++) {
		const struct cr_pool_conf *pc = conf->pools[i];
		if (check_limits(pc->name, &pc->limits, conf->limits_required, err, errlen) < 0 ||
		    check_limits(pc->name, &pc->worker_limits, conf->limits_required, err, errlen) < 0)
			return -1;
	}
	return 0;
}

static void controller_of(const char *file, char *buf, size_t n);

void cr_layout_apply(const char *dir, const struct cr_limits *limits, const struct cr_who *who)
{
	for (unsigned i = 0; i < limits->n; i++) {
		const struct cr_limit *l = &limits->v[i];
		int rc = cr_cgroup_write(dir, l->file, l->value);
		char ctl[32];
		/* ENOENT for a missing controller was reported once already;
		 * for one that is there, the file name is wrong */
		controller_of(l->file, ctl, sizeof ctl);
		if (rc == -ENOENT && strcmp(ctl, "cgroup") &&
		    !cr_cgroup_has_controller(dir, "cgroup.controllers", ctl))
			continue;
		if (rc < 0)
			cr_error(who, "cgroup: unable to set %s (%s = %s): %s", l->key, l->file,
				 l->value, strerror(-rc));
	}
}

int cr_layout_pool_has(const char *pool, const char *controller)
{
	char dir[PATH_MAX];

	return cr_layout_pool_dir(dir, sizeof dir, pool) == 0 &&
	       cr_cgroup_has_controller(dir, "cgroup.subtree_control", controller);
}

int cr_layout_pool(const char *pool, const struct cr_limits *limits,
		   const struct cr_limits *worker_limits)
{
	char dir[PATH_MAX], proto[PATH_MAX], ctl[32];
	struct cr_who who = { .pool = pool };
	static const char *const stats[] = { "memory", "pids" };
	int rc;

	if ((rc = cr_layout_pool_dir(dir, sizeof dir, pool)) < 0 ||
	    (rc = cr_layout_proto_dir(proto, sizeof proto, pool)) < 0 ||
	    (rc = cr_cgroup_mkdir(dir)) < 0 || (rc = cr_cgroup_mkdir(proto)) < 0) {
		cr_error(&who, "cgroup: unable to create the pool's cgroup %s: %s", dir, strerror(-rc));
		return rc;
	}
	/* the workers' controllers: what their limits need, and the cheap
	 * ones that give per-worker stats and OOM groups */
	for (unsigned i = 0; i < sizeof stats / sizeof *stats; i++)
		if (cr_cgroup_has_controller(dir, "cgroup.controllers", stats[i]))
			enable(dir, stats[i]);
	for (unsigned i = 0; i < worker_limits->n; i++) {
		controller_of(worker_limits->v[i].file, ctl, sizeof ctl);
		if (strcmp(ctl, "cgroup") && cr_cgroup_has_controller(dir, "cgroup.controllers", ctl) &&
		    (rc = enable(dir, ctl)) < 0)
			cr_warn(&who, "cgroup: unable to enable the %s controller for workers: %s",
				ctl, strerror(-rc));
	}
	cr_layout_apply(dir, limits, &who);
	return 0;
}
