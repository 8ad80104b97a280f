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

/* Binds and listens per spec; -errno, with *why. */
static int bind_spec(const char *spec, const char **why)
{
	int fd = -1, one = 1, rc;

	if (!strncmp(spec, "unix:", 5)) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		const char *path = spec + 5;
		if (path[0] != '/' || strlen(path) >= sizeof sa.sun_path) {
			*why = "a unix socket needs an absolute path that fits sun_path";
			return -EINVAL;
		}
		strcpy(sa.sun_path, path);
		struct stat st;
		/* a stale socket of an earlier run goes; anything else there
		 * is not ours to remove */
		if (lstat(path, &st) == 0) {
			if (!S_ISSOCK(st.st_mode)) {
				*why = "something that is not a socket is at that path";
				return -EEXIST;
			}
			unlink(path);
		}
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		/* like systemd's SocketMode= default: who may connect is the
		 * directory's business */
		if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || chmod(path, 0666) < 0 ||
		    listen(fd, BACKLOG) < 0)
			goto fail;
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
			unlink(s->spec + 5);
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
			unlink(s->spec + 5);
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
			unlink(s->spec + 5);
		close(s->fd);
		free(s->spec);
		free(s);
	}
}
