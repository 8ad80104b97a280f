/*
 * isolate.c: a pool's isolation. corrald clones the prototype into the
 * namespaces asked for and writes its uid/gid maps; the prototype then
 * sets up what is inside them (hostname, loopback, mounts, its root),
 * its limits and no_new_privs, once, before prefork. Workers forked from
 * it inherit all of that; each does only what cannot be inherited: its
 * own cgroup namespace, and dropping its credentials and capabilities.
 *
 * Every failure names the config key it comes from, so that the log line
 * says what to change.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config.h"
#include "isolate.h"
#include "notify.h"

/* ---- corrald's side -------------------------------------------------------- */

int cr_isolate_clone_flags(const struct cr_pool_conf *pc)
{
	/* the cgroup namespace is each worker's own, made at its birth */
	return pc->isolation.namespaces & ~CLONE_NEWCGROUP;
}

static int has_userns(const struct cr_pool_conf *pc)
{
	return (pc->isolation.namespaces & CLONE_NEWUSER) != 0;
}

/* The default map: the pool's user (or group), else corrald's, as 0. */
static struct cr_idmap default_map(const struct cr_pool_conf *pc, int gid)
{
	struct cr_idmap m = { .inside = 0, .count = 1 };

	if (gid)
		m.outside = pc->set_gid ? pc->gid : getegid();
	else
		m.outside = pc->set_uid ? pc->uid : geteuid();
	return m;
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), e;
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	e = errno;
	close(fd);
	if (n < 0)
		return -e;
	return n == (ssize_t)strlen(text) ? 0 : -EIO;
}

static int write_map(pid_t child, const char *file, const struct cr_idmap *v, unsigned n,
		     struct cr_idmap dflt, char *err, size_t len, const char *key)
{
	char path[64], text[4096];
	size_t off = 0;
	int rc;

	if (n == 0) {
		v = &dflt;
		n = 1;
	}
	for (unsigned i = 0; i < n && off < sizeof text; i++)
		off += (size_t)snprintf(text + off, sizeof text - off, "%u %u %u\n", v[i].inside, v[i].outside,
					v[i].count);
	snprintf(path, sizeof path, "/proc/%d/%s", (int)child, file);
	if ((rc = write_file(path, text)) < 0) {
		snprintf(err, len, "%s: the kernel refused \"%.*s\" in %s: %s%s", key, (int)strcspn(text, "\n"),
			 text, file, strerror(-rc),
			 rc == -EPERM && geteuid() != 0 ? " (without root, only corrald's own id may be mapped)" : "");
		return -1;
	}
	return 0;
}

int cr_isolate_write_maps(const struct cr_pool_conf *pc, pid_t child, char *err, size_t len)
{
	const struct cr_isolation *iso = &pc->isolation;
	char path[64];
	int rc;

	if (!has_userns(pc))
		return 0;
	if (write_map(child, "uid_map", iso->uidmap, iso->nuidmap, default_map(pc, 0), err, len,
		      "isolation.uidmap") < 0)
		return -1;
	/* without CAP_SETGID outside, the kernel takes a gid_map only once
	 * setgroups is denied; with it, the prototype drops its groups */
	if (geteuid() != 0) {
		snprintf(path, sizeof path, "/proc/%d/setgroups", (int)child);
		if ((rc = write_file(path, "deny")) < 0) {
			snprintf(err, len, "isolation.gidmap: unable to deny setgroups: %s", strerror(-rc));
			return -1;
		}
	}
	return write_map(child, "gid_map", iso->gidmap, iso->ngidmap, default_map(pc, 1), err, len,
			 "isolation.gidmap");
}

/* The id inside the prototype takes: 0 where the map has it, else the
 * first one mapped. */
static uint32_t inside_id(const struct cr_idmap *v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (v[i].inside == 0)
			return 0;
	return n ? v[0].inside : 0;
}

/* The outside uid of the prototype's inside one. */
long cr_isolate_delegate_uid(const struct cr_pool_conf *pc)
{
	const struct cr_isolation *iso = &pc->isolation;
	uint32_t in;

	if (!has_userns(pc))
		return -1;
	if (iso->nuidmap == 0)
		return (long)default_map(pc, 0).outside;
	in = inside_id(iso->uidmap, iso->nuidmap);
	for (unsigned i = 0; i < iso->nuidmap; i++)
		if (in >= iso->uidmap[i].inside && in - iso->uidmap[i].inside < iso->uidmap[i].count)
			return (long)(iso->uidmap[i].outside + (in - iso->uidmap[i].inside));
	return -1;
}

int cr_isolate_notify_by_path(const struct cr_pool_conf *pc)
{
	return (pc->isolation.namespaces & CLONE_NEWNET) || pc->isolation.rootfs;
}

/* ---- in the prototype -------------------------------------------------------- */

#define FAIL(...)                                    \
	do {                                         \
		snprintf(err, len, __VA_ARGS__);     \
		return -1;                           \
	} while (0)

static int mkdir_all(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n >= sizeof buf)
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* A mount point for source at target: a directory, or an empty file for
 * a file (a bind mount needs the same kind). */
static int make_mount_point(const char *source, const char *target)
{
	struct stat st;
	char dir[PATH_MAX];
	char *slash;
	int fd, rc;

	if (stat(source, &st) < 0)	/* "/proc/self/fd/N": what it holds */
		return -errno;
	if (S_ISDIR(st.st_mode))
		return mkdir_all(target, 0755);
	snprintf(dir, sizeof dir, "%s", target);
	if ((slash = strrchr(dir, '/')) && slash != dir) {
		*slash = 0;
		if ((rc = mkdir_all(dir, 0755)) < 0)
			return rc;
	}
	fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0 && errno != EEXIST)
		return -errno;
	if (fd >= 0)
		close(fd);
	return 0;
}

/* The flags a read-only remount must keep: inside a user namespace the
 * kernel refuses to clear ones the host's mount has (they are locked). */
static unsigned long kept_flags(const char *path)
{
	struct statvfs sv;
	unsigned long f = 0;

	if (statvfs(path, &sv) < 0)
		return 0;
	if (sv.f_flag & ST_NOSUID)
		f |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV)
		f |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		f |= MS_NOEXEC;
	if (sv.f_flag & ST_NOATIME)
		f |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME)
		f |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME)
		f |= MS_RELATIME;
	return f;
}

/* host: the target is on the host's own tree, where nothing is created */
/* mount_setattr(2) (Linux 5.12): glibc 2.36 has no wrapper, and
 * <linux/mount.h> fights <sys/mount.h> */
struct attr {
	uint64_t attr_set, attr_clr, propagation, userns_fd;
};
#define ATTR_RDONLY 0x00000001
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

/* Read-only, the mounts below it too: a remount changes only the top
 * one, and a bind of a tree with mounts in it would leave them writable. */
static int make_readonly(const char *target)
{
	struct attr a = { .attr_set = ATTR_RDONLY };

	if (syscall(SYS_mount_setattr, AT_FDCWD, target, AT_RECURSIVE, &a, sizeof a) == 0)
		return 0;
	if (errno != ENOSYS)
		return -1;
	/* an older kernel: the top mount only */
	return mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | kept_flags(target), NULL);
}

static int bind_mount(const char *source, const char *target, int readonly, int host, const char *key,
		      char *err, size_t len)
{
	int rc;

	if (host && access(target, F_OK) < 0)
		FAIL("%s: %s does not exist (without a rootfs, mount points are not made on the host's "
		     "tree, but for under /tmp)", key, target);
	if (!host && (rc = make_mount_point(source, target)) < 0)
		FAIL("%s: unable to make the mount point %s: %s", key, target, strerror(-rc));
	if (mount(source, target, NULL, MS_BIND | MS_REC, NULL) < 0)
		FAIL("%s: unable to bind %s on %s: %s", key, source, target, strerror(errno));
	if (readonly && make_readonly(target) < 0)
		FAIL("%s: unable to make %s read-only: %s", key, target, strerror(errno));
	return 0;
}

/* Whether a path inside the new root (root + inside) goes through a
 * symbolic link: resolved before pivot_root, it would lead onto the
 * host's tree (an absolute link) instead of into the root. */
static int through_link(const char *root, const char *inside)
{
	char path[PATH_MAX];
	struct stat st;
	size_t n = strlen(root);

	if (!*root)
		return 0;
	snprintf(path, sizeof path, "%s%s", root, inside);
	for (char *p = path + n + 1; ; p++) {
		if (*p == '/' || !*p) {
			char c = *p;
			*p = 0;
			if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
				return 1;
			if (!c)
				return 0;
			*p = c;
		}
	}
}

/* Whether a path inside is under the private /tmp. */
static int under_tmp(const char *path)
{
	return !strncmp(path, "/tmp/", 5);
}

/* root: "" for the host's, else the new root's path, before pivot_root. */
static int mount_proc(const struct cr_pool_conf *pc, const char *root, char *err, size_t len)
{
	char target[PATH_MAX];
	int rc;

	snprintf(target, sizeof target, "%s/proc", root);
	if (through_link(root, "/proc"))
		FAIL("isolation.rootfs: /proc in it is a symbolic link");
	if ((rc = mkdir_all(target, 0555)) < 0)
		FAIL("isolation.namespaces: unable to make %s: %s", target, strerror(-rc));
	if (mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0)
		return 0;
	/* a pid namespace owned by another user namespace: its /proc may
	 * only be the host's, bound */
	if (!(pc->isolation.namespaces & CLONE_NEWPID) && *root &&
	    mount("/proc", target, NULL, MS_BIND | MS_REC, NULL) == 0)
		return 0;
	FAIL("isolation.namespaces: unable to mount /proc: %s", strerror(errno));
}

static int mount_tmpfs(const char *root, const char *where, const char *mode, char *err, size_t len)
{
	char target[PATH_MAX];
	int rc;

	snprintf(target, sizeof target, "%s%s", root, where);
	if (through_link(root, where))
		FAIL("isolation.rootfs: %s in it is a symbolic link", where);
	if ((rc = mkdir_all(target, 0755)) < 0)
		FAIL("isolation.namespaces: unable to make %s: %s", target, strerror(-rc));
	if (mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, mode) < 0)
		FAIL("isolation.namespaces: unable to mount a tmpfs on %s: %s", where, strerror(errno));
	return 0;
}

/* A minimal /dev for a root of the pool's own: the harmless devices,
 * bound from the host's, a /dev/shm and the usual links. */
static int mount_dev(const char *root, char *err, size_t len)
{
	static const char *const nodes[] = { "null", "zero", "full", "random", "urandom", "tty" };
	static const char *const links[][2] = {
		{ "/proc/self/fd", "fd" }, { "/proc/self/fd/0", "stdin" },
		{ "/proc/self/fd/1", "stdout" }, { "/proc/self/fd/2", "stderr" },
	};
	char source[64], target[PATH_MAX];

	if (mount_tmpfs(root, "/dev", "mode=755", err, len) < 0)
		return -1;
	for (unsigned i = 0; i < sizeof nodes / sizeof *nodes; i++) {
		snprintf(source, sizeof source, "/dev/%s", nodes[i]);
		snprintf(target, sizeof target, "%s/dev/%s", root, nodes[i]);
		if (access(source, F_OK) == 0 && bind_mount(source, target, 0, 0, "isolation.rootfs", err, len) < 0)
			return -1;
	}
	for (unsigned i = 0; i < sizeof links / sizeof *links; i++) {
		snprintf(target, sizeof target, "%s/dev/%s", root, links[i][1]);
		if (symlink(links[i][0], target) < 0)
			FAIL("isolation.rootfs: unable to make %s: %s", target, strerror(errno));
	}
	return mount_tmpfs(root, "/dev/shm", "mode=1777", err, len);
}

/* corrald's notify socket and the journal's sockets, reachable inside a
 * root of the pool's own, under the /run it gets. */
static int mount_run(const char *root, char *err, size_t len)
{
	char target[PATH_MAX];
	const char *sock = cr_notify_path();

	if (mount_tmpfs(root, "/run", "mode=755", err, len) < 0)
		return -1;
	if (sock) {
		snprintf(target, sizeof target, "%s%s", root, CR_ISOLATE_NOTIFY_INSIDE);
		if (bind_mount(sock, target, 0, 0, "isolation.rootfs", err, len) < 0)
			return -1;
	}
	if (access("/run/systemd/journal", F_OK) == 0) {
		snprintf(target, sizeof target, "%s/run/systemd/journal", root);
		if (bind_mount("/run/systemd/journal", target, 0, 0, "isolation.rootfs", err, len) < 0)
			return -1;
	}
	return 0;
}

static int set_up_mounts(const struct cr_pool_conf *pc, const int *sources, char *err, size_t len)
{
	const struct cr_isolation *iso = &pc->isolation;
	const char *root = iso->rootfs ? iso->rootfs : "";
	char target[PATH_MAX], key[48];

	/* nothing done here is seen outside, nor anything later done outside */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		FAIL("isolation.namespaces: unable to make the mounts private: %s", strerror(errno));
	if (iso->rootfs && mount(iso->rootfs, iso->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
		FAIL("isolation.rootfs: unable to bind %s: %s", iso->rootfs, strerror(errno));
	if ((iso->namespaces & CLONE_NEWPID) || iso->rootfs)
		if (mount_proc(pc, root, err, len) < 0)
			return -1;
	if (mount_tmpfs(root, "/tmp", "mode=1777", err, len) < 0)
		return -1;
	if (iso->rootfs && (mount_dev(root, err, len) < 0 || mount_run(root, err, len) < 0))
		return -1;
	/* the config's own last: they may go into /tmp and the rest; their
	 * sources as they were found before (a /tmp of its own hides the
	 * host's), through the fds */
	for (unsigned i = 0; i < iso->nmounts; i++) {
		const struct cr_mount *m = &iso->mounts[i];
		char source[64];
		snprintf(key, sizeof key, "isolation.mounts[%u]", i + 1);
		snprintf(target, sizeof target, "%s%s", root, m->target);
		snprintf(source, sizeof source, "/proc/self/fd/%d", sources[i]);
		if (through_link(root, m->target))
			FAIL("%s: %s goes through a symbolic link in the rootfs: name the real path", key,
			     m->target);
		if (bind_mount(source, target, m->readonly, !iso->rootfs && !under_tmp(m->target), key, err,
			       len) < 0)
			return -1;
	}
	if (iso->rootfs) {
		/* the old root goes under the new one, then away: what the
		 * workers see is the new root and nothing of the host's */
		if (chdir(iso->rootfs) < 0)
			FAIL("isolation.rootfs: %s: %s", iso->rootfs, strerror(errno));
		if (syscall(SYS_pivot_root, ".", ".") < 0)
			FAIL("isolation.rootfs: pivot_root to %s: %s", iso->rootfs, strerror(errno));
		if (umount2(".", MNT_DETACH) < 0)
			FAIL("isolation.rootfs: unable to detach the old root: %s", strerror(errno));
		if (chdir("/") < 0)
			FAIL("isolation.rootfs: chdir /: %s", strerror(errno));
	}
	return 0;
}

static int loopback_up(char *err, size_t len)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		FAIL("isolation.network: socket: %s", strerror(errno));
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0 ||
	    (ifr.ifr_flags |= IFF_UP | IFF_RUNNING, ioctl(s, SIOCSIFFLAGS, &ifr) < 0)) {
		int e = errno;
		close(s);
		FAIL("isolation.network: unable to bring lo up: %s", strerror(e));
	}
	close(s);
	return 0;
}

static const char *rlimit_name(int r)
{
	switch (r) {
	case RLIMIT_AS: return "as";
	case RLIMIT_CORE: return "core";
	case RLIMIT_CPU: return "cpu";
	case RLIMIT_DATA: return "data";
	case RLIMIT_FSIZE: return "fsize";
	case RLIMIT_LOCKS: return "locks";
	case RLIMIT_MEMLOCK: return "memlock";
	case RLIMIT_MSGQUEUE: return "msgqueue";
	case RLIMIT_NICE: return "nice";
	case RLIMIT_NOFILE: return "nofile";
	case RLIMIT_NPROC: return "nproc";
	case RLIMIT_RSS: return "rss";
	case RLIMIT_RTPRIO: return "rtprio";
	case RLIMIT_RTTIME: return "rttime";
	case RLIMIT_SIGPENDING: return "sigpending";
	case RLIMIT_STACK: return "stack";
	default: return "?";
	}
}

static int set_limits(const struct cr_pool_conf *pc, char *err, size_t len)
{
	const struct cr_isolation *iso = &pc->isolation;

	for (unsigned i = 0; i < iso->nrlimits; i++)
		if (setrlimit(iso->rlimits[i].resource, &iso->rlimits[i].value) < 0)
			FAIL("isolation.rlimits.%s: %s%s", rlimit_name(iso->rlimits[i].resource), strerror(errno),
			     errno == EPERM ? " (raising a hard limit needs root outside any user namespace)" : "");
	if (iso->umask >= 0)
		umask((mode_t)iso->umask);
	if (iso->set_nice && setpriority(PRIO_PROCESS, 0, iso->nice) < 0)
		FAIL("isolation.nice: %s", strerror(errno));
	if (iso->set_oom_score_adj) {
		char v[16];
		int rc;
		snprintf(v, sizeof v, "%d", iso->oom_score_adj);
		if ((rc = write_file("/proc/self/oom_score_adj", v)) < 0)
			FAIL("isolation.oom_score_adjust: %s", strerror(-rc));
	}
	return 0;
}

/* Root inside the user namespace, without the groups corrald had. */
static int become_inside_root(const struct cr_pool_conf *pc, char *err, size_t len)
{
	const struct cr_isolation *iso = &pc->isolation;
	gid_t g = inside_id(iso->gidmap, iso->ngidmap);
	uid_t u = inside_id(iso->uidmap, iso->nuidmap);

	char deny[16] = "";
	int fd;

	/* denied (corrald without root wrote "deny"): corrald's groups are
	 * not root's, and cannot be dropped; else they must go */
	if ((fd = open("/proc/self/setgroups", O_RDONLY | O_CLOEXEC)) >= 0) {
		ssize_t n = read(fd, deny, sizeof deny - 1);
		deny[n > 0 ? n : 0] = 0;
		close(fd);
	}
	if (setgroups(0, NULL) < 0 && !(errno == EPERM && !strncmp(deny, "deny", 4)))
		FAIL("isolation.gidmap: unable to drop the supplementary groups: %s", strerror(errno));
	if (setresgid(g, g, g) < 0)
		FAIL("isolation.gidmap: unable to become gid %u inside: %s", (unsigned)g, strerror(errno));
	if (setresuid(u, u, u) < 0)
		FAIL("isolation.uidmap: unable to become uid %u inside: %s", (unsigned)u, strerror(errno));
	return 0;
}

int cr_isolate_prototype(const struct cr_pool_conf *pc, char *err, size_t len)
{
	const struct cr_isolation *iso = &pc->isolation;

	/* first: /proc/self is still the host's, and ours (once root inside
	 * a user namespace, the process is no longer dumpable) */
	if (set_limits(pc, err, len) < 0)
		return -1;
	if (has_userns(pc) && become_inside_root(pc, err, len) < 0)
		return -1;
	if ((iso->namespaces & CLONE_NEWUTS) && iso->hostname &&
	    sethostname(iso->hostname, strlen(iso->hostname)) < 0)
		FAIL("isolation.hostname: %s", strerror(errno));
	if ((iso->namespaces & CLONE_NEWNET) && iso->loopback && loopback_up(err, len) < 0)
		return -1;
	if (iso->namespaces & CLONE_NEWNS) {
		int sources[iso->nmounts + 1], rc = 0;

		sources[iso->nmounts] = -1;
		unsigned n;
		for (n = 0; n < iso->nmounts; n++) {
			if ((sources[n] = open(iso->mounts[n].source, O_PATH | O_CLOEXEC)) < 0) {
				snprintf(err, len, "isolation.mounts[%u]: %s: %s", n + 1, iso->mounts[n].source,
					 strerror(errno));
				rc = -1;
				break;
			}
		}
		if (rc == 0)
			rc = set_up_mounts(pc, sources, err, len);
		while (n > 0)
			close(sources[--n]);
		if (rc < 0)
			return -1;
	}
	if (iso->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		FAIL("isolation.no_new_privs: %s", strerror(errno));
	return 0;
}

/* ---- in a worker ------------------------------------------------------------ */

int cr_isolate_worker_early(const struct cr_pool_conf *pc)
{
	if (pc->isolation.namespaces & CLONE_NEWCGROUP)
		return unshare(CLONE_NEWCGROUP);
	return 0;
}

/* The capabilities a worker keeps (*keep): those listed; with a user
 * namespace and no list, none (root inside, without its powers).
 * 0: unchanged. */
static int kept_caps(const struct cr_pool_conf *pc, uint64_t *keep)
{
	*keep = pc->isolation.caps;
	if (pc->isolation.set_caps)
		return 1;
	*keep = 0;
	return has_userns(pc);
}

int cr_isolate_worker_bound(const struct cr_pool_conf *pc)
{
	uint64_t keep;

	if (!kept_caps(pc, &keep))
		return 0;
	/* every capability this kernel has, newer ones than the build's too */
	for (cap_value_t c = 0; c < 64 && CAP_IS_SUPPORTED(c); c++)
		if (!(keep & (UINT64_C(1) << c)) && cap_drop_bound(c) < 0)
			return -1;
	/* the capabilities survive the change of uid that follows */
	return prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
}

int cr_isolate_worker_caps(const struct cr_pool_conf *pc)
{
	uint64_t keep;
	cap_value_t list[64];
	int n = 0, rc = 0, e;
	cap_t caps;

	if (!kept_caps(pc, &keep))
		return 0;
	for (cap_value_t c = 0; c < 64; c++)
		if (keep & (UINT64_C(1) << c))
			list[n++] = c;
	if (!(caps = cap_init()))
		return -1;
	if (n > 0 && (cap_set_flag(caps, CAP_PERMITTED, n, list, CAP_SET) < 0 ||
		      cap_set_flag(caps, CAP_EFFECTIVE, n, list, CAP_SET) < 0 ||
		      cap_set_flag(caps, CAP_INHERITABLE, n, list, CAP_SET) < 0))
		rc = -1;
	if (rc == 0)
		rc = cap_set_proc(caps);
	e = errno;
	cap_free(caps);
	errno = e;
	if (rc < 0)
		return -1;
	/* ambient: an exec'd program keeps them too, without file caps */
	for (int i = 0; i < n; i++)
		if (cap_set_ambient(list[i], CAP_SET) < 0)
			return -1;
	return prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
}
