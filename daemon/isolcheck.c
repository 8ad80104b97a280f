/*
 * isolcheck.c: what isolation = { ... } asks of the system that the
 * config alone cannot show: the pool's root and its mount sources, user
 * namespaces, and the capabilities its workers keep. Checked at every
 * load (start, reload, -t), so that a reload naming a root that is not
 * there is refused with the running pools untouched, instead of its
 * prototypes failing one by one. What only the kernel can tell (a map
 * or a mount it refuses) shows at the prototype's start.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "isolcheck.h"

#define USERNS_MAX "/proc/sys/user/max_user_namespaces"

struct problem {
	int line, seq;
	char *text;
};

struct problems {
	struct problem *v;
	int n, cap, oom;
};

static void add(struct problems *p, const struct cr_pool_conf *pc, int line, const char *key,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void add(struct problems *p, const struct cr_pool_conf *pc, int line, const char *key,
		const char *fmt, ...)
{
	char what[PATH_MAX + 256];
	va_list ap;
	char *text;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (asprintf(&text, "%s:%d: pool \"%s\": %s: %s", pc->file, line, pc->name, key, what) < 0) {
		p->oom = 1;
		return;
	}
	if (p->n == p->cap) {
		int cap = p->cap ? p->cap * 2 : 8;
		struct problem *v = realloc(p->v, (size_t)cap * sizeof *v);
		if (!v) {
			free(text);
			p->oom = 1;
			return;
		}
		p->v = v;
		p->cap = cap;
	}
	p->v[p->n] = (struct problem){ line, p->n, text };
	p->n++;
}

/* Whether user namespaces can be made here: "" if so, else why not. */
static const char *userns_refusal(void)
{
	FILE *f = fopen(USERNS_MAX, "re");
	long max = -1;

	if (!f)
		return errno == ENOENT ? "this kernel has no user namespaces (no " USERNS_MAX ")"
				       : "unable to read " USERNS_MAX;
	if (fscanf(f, "%ld", &max) != 1)
		max = -1;
	fclose(f);
	if (max < 0)
		return "unable to read " USERNS_MAX;
	if (max == 0)
		return "user namespaces are disabled on this system (" USERNS_MAX " is 0)";
	return "";
}

/* "CAP_NET_BIND_SERVICE" for 10 */
static void cap_name(char *buf, size_t n, unsigned cap)
{
	char *name = cap_to_name((cap_value_t)cap);

	snprintf(buf, n, "%s", name ? name : "?");
	cap_free(name);
	for (char *c = buf; *c; c++)
		*c = (char)toupper((unsigned char)*c);
}

/* Without root (a user service), corrald gives its pools nothing it does
 * not have: its own ids, and what a user namespace of their own allows. */
static void check_unprivileged(struct problems *p, const struct cr_pool_conf *pc)
{
	const struct cr_isolation *iso = &pc->isolation;
	int userns = (iso->namespaces & CLONE_NEWUSER) != 0;
	uid_t uid = geteuid();
	gid_t gid = getegid();

	if (pc->set_uid && pc->uid != uid)
		add(p, pc, pc->line, "user", "corrald runs without root (uid %u): its workers run as its own "
		    "user, or as root inside a user namespace (isolation.namespaces = { \"user\", ... })",
		    (unsigned)uid);
	else if (pc->set_gid && pc->gid != gid)
		add(p, pc, pc->line, "group", "corrald runs without root (gid %u): its workers keep its own group",
		    (unsigned)gid);
	if (iso->namespaces && !userns)
		add(p, pc, pc->iso_namespaces_line, "isolation.namespaces", "corrald runs without root: "
		    "other namespaces need \"user\" too (a user namespace owns them)");
	if (iso->set_caps && iso->caps && !userns)
		add(p, pc, pc->iso_caps_line, "isolation.capabilities", "corrald runs without root: only "
		    "a pool in a user namespace keeps capabilities (inside it)");
	if (iso->nuidmap > 1 || (iso->nuidmap == 1 && (iso->uidmap[0].outside != uid || iso->uidmap[0].count != 1)))
		add(p, pc, pc->iso_namespaces_line, "isolation.uidmap", "corrald runs without root: only its "
		    "own uid (%u) may be mapped, once: { { INSIDE, %u, 1 } }", (unsigned)uid, (unsigned)uid);
	if (iso->ngidmap > 1 || (iso->ngidmap == 1 && (iso->gidmap[0].outside != gid || iso->gidmap[0].count != 1)))
		add(p, pc, pc->iso_namespaces_line, "isolation.gidmap", "corrald runs without root: only its "
		    "own gid (%u) may be mapped, once: { { INSIDE, %u, 1 } }", (unsigned)gid, (unsigned)gid);
}

/* Whether a map (or, none given, the default one: the pool's id, else
 * corrald's) takes in outside id 0. */
static int maps_zero(const struct cr_idmap *v, unsigned n, int set, unsigned id)
{
	if (n == 0)
		return !set || id == 0;
	for (unsigned i = 0; i < n; i++)
		if (v[i].outside == 0)
			return 1;
	return 0;
}

/* Root's ids mapped into a pool's user namespace would give its
 * processes root's power over the host's files (ownership is by id). */
static void check_root_maps(struct problems *p, const struct cr_pool_conf *pc)
{
	const struct cr_isolation *iso = &pc->isolation;

	if (maps_zero(iso->uidmap, iso->nuidmap, pc->set_uid, pc->uid))
		add(p, pc, pc->iso_namespaces_line, "isolation.uidmap", "the host's root (uid 0) would be mapped "
		    "into the pool's user namespace, and own the host's files there: name a user, or map other "
		    "ids");
	if (maps_zero(iso->gidmap, iso->ngidmap, pc->set_gid, pc->gid))
		add(p, pc, pc->iso_namespaces_line, "isolation.gidmap", "the host's root group (gid 0) would be "
		    "mapped into the pool's user namespace: name a user or group, or map other ids");
}

static void check_pool(struct problems *p, const struct cr_pool_conf *pc, const char **userns)
{
	const struct cr_isolation *iso = &pc->isolation;
	struct stat st;
	char key[64], name[64];

	if (iso->namespaces & CLONE_NEWUSER) {
		if (!*userns)
			*userns = userns_refusal();
		if (**userns)
			add(p, pc, pc->iso_namespaces_line, "isolation.namespaces", "\"user\": %s", *userns);
	}
	if (iso->rootfs) {
		if (stat(iso->rootfs, &st) < 0)
			add(p, pc, pc->iso_rootfs_line, "isolation.rootfs", "%s: %s", iso->rootfs, strerror(errno));
		else if (!S_ISDIR(st.st_mode))
			add(p, pc, pc->iso_rootfs_line, "isolation.rootfs", "%s: not a directory", iso->rootfs);
	}
	for (unsigned i = 0; i < iso->nmounts; i++) {
		snprintf(key, sizeof key, "isolation.mounts[%u]", i + 1);
		if (stat(iso->mounts[i].source, &st) < 0)
			add(p, pc, pc->iso_mounts_line, key, "source %s: %s", iso->mounts[i].source,
			    strerror(errno));
	}
	if (geteuid() != 0)
		check_unprivileged(p, pc);
	if (geteuid() == 0 && (iso->namespaces & CLONE_NEWUSER))
		check_root_maps(p, pc);
	/* corrald cannot give its workers what it does not have itself (in
	 * a user namespace of the pool's own, they are that namespace's) */
	for (unsigned cap = 0; iso->set_caps && !(iso->namespaces & CLONE_NEWUSER) && cap < 64; cap++) {
		int rc;

		if (!(iso->caps & (UINT64_C(1) << cap)))
			continue;
		rc = prctl(PR_CAPBSET_READ, (unsigned long)cap, 0L, 0L, 0L);
		if (rc == 1)
			continue;
		cap_name(name, sizeof name, cap);
		add(p, pc, pc->iso_caps_line, "isolation.capabilities", "%s: %s", name,
		    rc == 0 ? "not in corrald's capability bounding set"
			    : "not known to this kernel");
	}
}

static int by_line(const void *a, const void *b)
{
	const struct problem *x = a, *y = b;

	return x->line != y->line ? (x->line > y->line) - (x->line < y->line) : x->seq - y->seq;
}

int cr_isolcheck(const struct cr_config *conf, char **err)
{
	struct problems p = { 0 };
	const char *userns = NULL;	/* read once, when a pool asks */
	size_t len = 0;
	char *out = NULL;
	FILE *f;

	for (unsigned i = 0; i < conf->npools; i++)
		check_pool(&p, conf->pools[i], &userns);
	if (!p.n && !p.oom)
		return 0;
	if (p.n > 1)
		qsort(p.v, (size_t)p.n, sizeof *p.v, by_line);
	if ((f = open_memstream(&out, &len))) {
		for (int i = 0; i < p.n; i++)
			fprintf(f, "%s%s", i ? "\n" : "", p.v[i].text);
		if (fclose(f) != 0) {
			free(out);
			out = NULL;
		}
	}
	for (int i = 0; i < p.n; i++)
		free(p.v[i].text);
	free(p.v);
	if (!out || p.oom) {
		free(out);
		out = strdup("out of memory");
	}
	*err = out;
	return -1;
}
