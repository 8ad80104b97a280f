/*
 * sockets.c: the listening sockets of pools. corrald holds them for as
 * long as some pool uses them, so workers can be replaced and the config
 * reloaded without a refused connection; workers get them by the
 * socket-activation protocol (LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID).
 *
 * A pool's `listen = { NAME = SPEC }` names each socket: "tcp:HOST:PORT",
 * "tcp:[V6]:PORT", "unix:/path", or "systemd" for one that systemd passed
 * with FileDescriptorName=NAME. Sockets corrald binds itself go into
 * systemd's fd store (FDSTORE=1, where the unit allows it), so that even a
 * restart of corrald finds them again at startup.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "config.h"
#include "log.h"
#include "notify.h"
#include "sockets.h"

#define BACKLOG 511

struct sock {
	char *spec;		/* "tcp:127.0.0.1:8080", or "systemd:NAME" */
	int fd;
	int used;		/* by the config being opened or running */
	int fresh;		/* bound by the cr_sockets_open() under way */
	struct sock *next;
};

static struct sock *socks;

/* systemd's FDNAME may not hold ':' */
static void store_name(const char *spec, char *buf, size_t n)
{
	snprintf(buf, n, "corral@%s", spec);
	for (char *p = buf; *p; p++)
		if (*p == ':')
			*p = '@';
}

static struct sock *find(const char *spec)
{
	for (struct sock *s = socks; s; s = s->next)
		if (!strcmp(s->spec, spec))
			return s;
	return NULL;
}

static struct sock *add(const char *spec, int fd)
{
	struct sock *s = calloc(1, sizeof *s);

	if (!s || !(s->spec = strdup(spec))) {
		free(s);
		return NULL;
	}
	s->fd = fd;
	s->next = socks;
	socks = s;
	return s;
}

void cr_sockets_init(void)
{
	char **names = NULL;
	int n = sd_listen_fds_with_names(1, &names);

	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		const char *name = names && names[i] ? names[i] : "unknown";
		char spec[300];

		/* ours, back from the fd store, are matched by store name
		 * (see cr_sockets_open); others are systemd's, by FDNAME */
		if (!strncmp(name, "corral@", 7)) {
			snprintf(spec, sizeof spec, "stored:%s", name);
		} else {
			snprintf(spec, sizeof spec, "systemd:%s", name);
		}
		if (!add(spec, fd))
			close(fd);
		else
			cr_info(NULL, "sockets: took fd %d from systemd (%s)", fd, name);
	}
	if (names) {
		for (int i = 0; i < n; i++)
			free(names[i]);
		free(names);
	}
}

/*
 * Unix sockets by path, safe against the other users of the machine.
 *
 * Everything corrald does to a socket's path as root (remove a stale
 * socket, create the socket, give it its group) must reach what corrald
 * means, not what a local user swapped in (a symlink to /etc/shadow, say).
 * Rather than narrow the races, cr_unix_listen() closes them by
 * construction: the socket's directory and every directory above it must
 * be owned by root or corrald's user and be writable by no one else, or
 * be sticky (like /tmp, where no one may rename or remove another user's
 * entry). Then no other user can put or replace anything at the path
 * between our lstat, unlink, bind and lchown. Besides:
 *  - the mode is set by the bind itself (a umask around it), never by a
 *    chmod of the path; corrald has one thread, so the umask is its own;
 *  - the group is set with lchown, which never follows a symlink, after
 *    an lstat that shows a socket of corrald's user there;
 *  - what is at the path already is removed only if it is a socket of
 *    corrald's user (that no one listens on, unless live_ok); a file, a
 *    symlink or a socket of another user is an error and is left alone.
 */
static int owner_ok(uid_t uid)
{
	return uid == 0 || uid == geteuid();
}

static int check_dir(const char *p, struct stat *st, char *why, size_t n)
{
	if (lstat(p, st) < 0) {
		int e = errno;
		snprintf(why, n, "%s: %s", p, strerror(e));
		return -e;
	}
	if (!S_ISDIR(st->st_mode)) {
		snprintf(why, n, "%s is not a directory", p);
		return -ENOTDIR;
	}
	if (!owner_ok(st->st_uid) || ((st->st_mode & 022) && !(st->st_mode & S_ISVTX))) {
		snprintf(why, n, "%s is owned by uid %u with mode %04o: a socket's directories must be owned "
			 "by root (or corrald's user) and writable by no one else (or be sticky, like /tmp)",
			 p, (unsigned)st->st_uid, (unsigned)(st->st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

/* The directory of path: made (0755) if missing, then it and all above
 * it checked as said. */
static int safe_dir(const char *path, char *why, size_t n)
{
	char dir[PATH_MAX], real[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t len = slash == path ? 1 : (size_t)(slash - path);
	struct stat st;
	mode_t old;
	int rc, e;

	if (len >= sizeof dir) {
		snprintf(why, n, "path too long");
		return -ENAMETOOLONG;
	}
	memcpy(dir, path, len);
	dir[len] = 0;
	old = umask(022);
	rc = mkdir(dir, 0755);
	e = errno;
	umask(old);
	if (rc < 0 && e != EEXIST) {
		snprintf(why, n, "unable to create %s: %s", dir, strerror(e));
		return -e;
	}
	if (!realpath(dir, real)) {
		e = errno;
		snprintf(why, n, "%s: %s", dir, strerror(e));
		return -e;
	}
	/* "/", "/a", "/a/b", ...: with lstat, so that a symlink put there
	 * since realpath() is an error too */
	for (size_t i = 0, end = strlen(real); i <= end; i++) {
		char save;
		if (i > 0 && i < end && real[i] != '/')
			continue;
		if (i > 0 && end == 1)
			break;
		save = real[i > 0 ? i : 1];
		real[i > 0 ? i : 1] = 0;
		rc = check_dir(real, &st, why, n);
		real[i > 0 ? i : 1] = save;
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* What is at path now: nothing, or a socket of ours (removed; unless
 * live_ok, only one that no one listens on). */
static int clear_path(const char *path, const struct sockaddr_un *sa, int live_ok, char *why, size_t n)
{
	struct stat st;
	int fd, live;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		int e = errno;
		snprintf(why, n, "%s", strerror(e));
		return -e;
	}
	if (st.st_uid != geteuid()) {
		snprintf(why, n, "%s is owned by uid %u, not corrald's user: not removing it", path,
			 (unsigned)st.st_uid);
		return -EEXIST;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(why, n, "something that is not a socket is at that path");
		return -EEXIST;
	}
	if (live_ok)
		goto remove;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		int e = errno;
		snprintf(why, n, "%s", strerror(e));
		return -e;
	}
	/* EAGAIN: live, its backlog full */
	live = connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0 || errno == EAGAIN;
	close(fd);
	if (live) {
		snprintf(why, n, "a live socket is at that path");
		return -EADDRINUSE;
	}
remove:
	if (unlink(path) < 0 && errno != ENOENT) {
		int e = errno;
		snprintf(why, n, "unable to remove the stale socket: %s", strerror(e));
		return -e;
	}
	return 0;
}

int cr_unix_listen(const char *path, int flags, int live_ok, mode_t mode, gid_t gid, int backlog,
		   char *why, size_t n)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old;
	int fd, rc, e;

	if (path[0] != '/' || strlen(path) >= sizeof sa.sun_path) {
		snprintf(why, n, "a unix socket needs an absolute path that fits sun_path");
		return -EINVAL;
	}
	strcpy(sa.sun_path, path);
	if ((rc = safe_dir(path, why, n)) < 0 || (rc = clear_path(path, &sa, live_ok, why, n)) < 0)
		return rc;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
	if (fd < 0)
		goto fail;
	old = umask(~mode & 0777);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	e = errno;
	umask(old);
	errno = e;
	if (rc < 0)
		goto fail;
	if (gid != (gid_t)-1) {
		if (lstat(path, &st) < 0)
			goto fail_bound;
		if (!S_ISSOCK(st.st_mode) || st.st_uid != geteuid()) {
			errno = EEXIST;
			goto fail_bound;
		}
		if (lchown(path, (uid_t)-1, gid) < 0)
			goto fail_bound;
	}
	if (listen(fd, backlog) < 0)
		goto fail_bound;
	return fd;
fail_bound:
	e = errno;
	cr_unix_unlink(path);
	errno = e;
fail:
	e = errno;
	snprintf(why, n, "%s", strerror(e));
	if (fd >= 0)
		close(fd);
	return -e;
}

void cr_unix_unlink(const char *path)
{
	struct stat st;

	/* only a socket of ours: the directory is safe, but it costs little */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_uid == geteuid())
		unlink(path);
}

/* Binds and listens per spec; -errno, with *why. */
static int bind_spec(const char *spec, const char **why)
{
	int fd = -1, one = 1, rc;

	if (!strncmp(spec, "unix:", 5)) {
		static char buf[400];
		/* like systemd's SocketMode= default: who may connect is the
		 * directory's business. One of ours still live is taken
		 * over, as before: a worker of a corrald killed outright
		 * may hold it still. */
		fd = cr_unix_listen(spec + 5, 0, 1, 0666, (gid_t)-1, BACKLOG, buf, sizeof buf);
		if (fd < 0)
			*why = buf;
		return fd;
	}
	if (!strncmp(spec, "tcp:", 4)) {
		char host[256];
		const char *h = spec + 4, *colon = strrchr(h, ':');
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV }, *ai;
		size_t hl;

		if (!colon || !colon[1]) {
			*why = "expected tcp:HOST:PORT";
			return -EINVAL;
		}
		hl = (size_t)(colon - h);
		if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
			h++;
			hl -= 2;
		}
		if (hl >= sizeof host) {
			*why = "host too long";
			return -EINVAL;
		}
		memcpy(host, h, hl);
		host[hl] = 0;
		if ((rc = getaddrinfo(hl ? host : NULL, colon + 1, &hints, &ai)) != 0) {
			*why = "expected a numeric address and port";
			return -EINVAL;
		}
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			rc = -errno;
			freeaddrinfo(ai);
			return rc;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, BACKLOG) < 0) {
			freeaddrinfo(ai);
			goto fail;
		}
		freeaddrinfo(ai);
		return fd;
	}
	*why = "expected tcp:HOST:PORT, unix:/PATH or systemd";
	return -EINVAL;
fail:
	rc = -errno;
	close(fd);
	return rc;
}

int cr_sockets_open(struct cr_config *conf, char *err, size_t errlen)
{
	for (struct sock *s = socks; s; s = s->next)
		s->used = s->fresh = 0;
	for (unsigned i = 0; i < conf->npools; i++) {
		struct cr_pool_conf *pc = conf->pools[i];

		for (unsigned j = 0; j < pc->nlisten; j++) {
			const char *spec = pc->listen_specs[j];
			char key[320], stored[320];
			struct sock *s;

			if (!strcmp(spec, "systemd"))
				snprintf(key, sizeof key, "systemd:%s", pc->listen_names[j]);
			else
				snprintf(key, sizeof key, "%s", spec);
			store_name(spec, stored, sizeof stored);
			s = find(key);
			if (!s && strcmp(spec, "systemd")) {
				char skey[330];
				snprintf(skey, sizeof skey, "stored:%s", stored);
				if ((s = find(skey))) {
					/* from systemd's fd store: ours again */
					free(s->spec);
					s->spec = strdup(key);
				}
			}
			if (!s) {
				const char *why = NULL;
				int fd;
				if (!strcmp(spec, "systemd")) {
					snprintf(err, errlen, "pool \"%s\": listen.%s: systemd passed no socket named %s "
						 "(FileDescriptorName= in the .socket unit)", pc->name,
						 pc->listen_names[j], pc->listen_names[j]);
					goto fail;
				}
				fd = bind_spec(spec, &why);
				if (fd < 0) {
					snprintf(err, errlen, "pool \"%s\": listen.%s: unable to listen on %s: %s",
						 pc->name, pc->listen_names[j], spec, why ? why : strerror(-fd));
					goto fail;
				}
				if (!(s = add(key, fd))) {
					close(fd);
					snprintf(err, errlen, "out of memory");
					goto fail;
				}
				s->fresh = 1;
			}
			s->used = 1;
			pc->listen_fds[j] = s->fd;
		}
	}
	/* offer what we bound to systemd's fd store; refused where the unit
	 * has no FileDescriptorStoreMax=, which is fine */
	for (struct sock *s = socks; s; s = s->next) {
		char name[320], msg[400];
		if (!s->fresh)
			continue;
		store_name(s->spec, name, sizeof name);
		snprintf(msg, sizeof msg, "FDSTORE=1\nFDNAME=%s", name);
		sd_pid_notify_with_fds(0, 0, msg, &s->fd, 1);
		cr_info(NULL, "sockets: listening on %s", s->spec);
	}
	return 0;
fail:
	/* nothing of this config is kept: close what it opened */
	for (struct sock **pp = &socks; *pp;) {
		struct sock *s = *pp;
		if (!s->fresh) {
			pp = &s->next;
			continue;
		}
		*pp = s->next;
		if (!strncmp(s->spec, "unix:", 5))
			cr_unix_unlink(s->spec + 5);
		close(s->fd);
		free(s->spec);
		free(s);
	}
	return -1;
}

void cr_sockets_commit(const struct cr_config *conf)
{
	(void)conf;
	for (struct sock **pp = &socks; *pp;) {
		struct sock *s = *pp;
		char name[320], msg[400];

		/* systemd's own stay: a later reload may name them again */
		if (s->used || !strncmp(s->spec, "systemd:", 8)) {
			pp = &s->next;
			continue;
		}
		*pp = s->next;
		if (!strncmp(s->spec, "unix:", 5))
			cr_unix_unlink(s->spec + 5);
		cr_info(NULL, "sockets: closed %s, no pool uses it", s->spec);
		/* and out of systemd's fd store, so the port is free */
		if (!strncmp(s->spec, "stored:", 7))
			snprintf(name, sizeof name, "%s", s->spec + 7);
		else
			store_name(s->spec, name, sizeof name);
		snprintf(msg, sizeof msg, "FDSTOREREMOVE=1\nFDNAME=%s", name);
		sd_notify(0, msg);
		close(s->fd);
		free(s->spec);
		free(s);
	}
}

void cr_sockets_finish(void)
{
	while (socks) {
		struct sock *s = socks;
		socks = s->next;
		/* under a service manager the socket may live on in its fd
		 * store: its file must stay for the next corrald */
		if (!strncmp(s->spec, "unix:", 5) && !cr_notify_managed())
			cr_unix_unlink(s->spec + 5);
		close(s->fd);
		free(s->spec);
		free(s);
	}
}
