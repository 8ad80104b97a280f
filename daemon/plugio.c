/*
 * plugio.c: network I/O for plugins. HTTP is the libraries' work:
 * libmicrohttpd serves (external polling: its epoll set is one fd that
 * libev watches, and its timeout a libev timer) and libcurl's multi
 * interface makes requests and TCP connects (its sockets are libev
 * watchers, its timer a libev timer). No thread, nothing blocking: a
 * handler's answer is made while MHD runs, a request's result is handed
 * over when curl says it is done. What belongs to a Lua state goes with
 * it at a reload (cr_plugio_forget).
 *
 * Bounds: a server takes at most MAX_CONNS connections, a request body of
 * at most MAX_BODY; a client request keeps at most MAX_BODY of the
 * answer (the rest is dropped and the result says so).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <dlfcn.h>

/* the libraries' own names, as plain functions: they are called through
 * pointers (below) */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <microhttpd.h>

#include "log.h"
#include "plugio.h"
#include "sockets.h"

/* libmicrohttpd and libcurl are loaded when a plugin first serves or
 * asks (dlopen): a corrald whose plugins do neither maps neither, nor
 * what they pull in (TLS and more), and forks that much less. */
#define MHD_FUNCS(X) X(MHD_add_response_header) X(MHD_create_response_from_buffer) X(MHD_destroy_response) X(MHD_get_connection_info) X(MHD_get_connection_values) X(MHD_get_daemon_info) X(MHD_get_timeout) X(MHD_queue_response) X(MHD_quiesce_daemon) X(MHD_run) X(MHD_start_daemon) X(MHD_stop_daemon)
#define CURL_FUNCS(X) X(curl_easy_cleanup) X(curl_easy_getinfo) X(curl_easy_init) X(curl_easy_setopt) X(curl_easy_strerror) X(curl_global_cleanup) X(curl_global_init) X(curl_multi_add_handle) X(curl_multi_assign) X(curl_multi_cleanup) X(curl_multi_info_read) X(curl_multi_init) X(curl_multi_remove_handle) X(curl_multi_setopt) X(curl_multi_socket_action) X(curl_multi_strerror) X(curl_slist_append) X(curl_slist_free_all)
#define POINTER(f) __typeof__(&f) f;
static struct { MHD_FUNCS(POINTER) } M;
static struct { CURL_FUNCS(POINTER) } C;
#undef POINTER

static int loaded_mhd, loaded_curl;

/* Loads library file and fills the table; 0, or -1 with err. */
static int load(const char *file, const char *package, void **table, const char *const *names, size_t n,
		char *err, size_t len)
{
	void *h = dlopen(file, RTLD_NOW | RTLD_LOCAL);

	if (!h) {
		snprintf(err, len, "unable to load %s (Debian package %s): %s", file, package, dlerror());
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (!(table[i] = dlsym(h, names[i]))) {
			snprintf(err, len, "%s has no %s: too old?", file, names[i]);
			dlclose(h);
			return -1;
		}
	}
	return 0;	/* kept loaded for the rest of corrald's life */
}

#define NAME(f) #f,
static const char *const mhd_names[] = { MHD_FUNCS(NAME) };
static const char *const curl_names[] = { CURL_FUNCS(NAME) };
#undef NAME

static int need_mhd(char *err, size_t len)
{
	if (!loaded_mhd && load("libmicrohttpd.so.12", "libmicrohttpd12", (void **)&M, mhd_names,
				 sizeof mhd_names / sizeof *mhd_names, err, len) == 0)
		loaded_mhd = 1;
	return loaded_mhd ? 0 : -1;
}

static int need_curl(char *err, size_t len)
{
	if (!loaded_curl && load("libcurl.so.4", "libcurl4", (void **)&C, curl_names,
				  sizeof curl_names / sizeof *curl_names, err, len) == 0)
		loaded_curl = 1;
	return loaded_curl ? 0 : -1;
}

#define MAX_CONNS 64
#define MAX_BODY (1024 * 1024)
#define CONN_TIMEOUT 10		/* seconds a server connection may idle */

struct server {
	int id;
	void *owner;
	struct MHD_Daemon *mhd;
	ev_io io;		/* on MHD's epoll fd */
	ev_timer timer;
	char *unix_path;	/* to remove at the end */
	struct server *next;
};

struct request {
	int id;
	void *owner;
	CURL *easy;
	struct curl_slist *headers;
	char *body;		/* the answer so far */
	size_t len;
	int truncated;
	char errbuf[CURL_ERROR_SIZE];
	double timeout;
	struct request *next;
};

/* One libev watcher per socket curl asks about. */
struct csock {
	ev_io io;
	curl_socket_t fd;
};

static struct {
	struct ev_loop *loop;
	void (*serve)(void *owner, int id, const struct cr_http_in *in, struct cr_http_out *out);
	void (*done)(void *owner, int id, const struct cr_http_res *res);
	struct server *servers;
	struct request *requests;
	CURLM *multi;
	ev_timer curl_timer;
	int curl_inited;
	int next_id;
} P;

static int new_id(void)
{
	if (P.next_id < CR_PLUGIO_FIRST_ID)
		P.next_id = CR_PLUGIO_FIRST_ID;
	return P.next_id++;
}

static void fail(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

/* ---- serving ----------------------------------------------------------------- */

/* A request's body, gathered over MHD's calls. */
struct upload {
	char *data;
	size_t len;
	int too_big;
};

static enum MHD_Result reply(struct MHD_Connection *conn, int status, char *body, size_t len,
			     const char *type)
{
	struct MHD_Response *r = M.MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result rc;

	if (!r) {
		free(body);
		return MHD_NO;
	}
	M.MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type ? type : "text/plain; charset=utf-8");
	rc = M.MHD_queue_response(conn, (unsigned)status, r);
	M.MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, int status, const char *text)
{
	char *copy = strdup(text);

	return copy ? reply(conn, status, copy, strlen(copy), NULL) : MHD_NO;
}

static void peer_of(struct MHD_Connection *conn, char *buf, size_t n)
{
	const union MHD_ConnectionInfo *ci = M.MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;
	char host[INET6_ADDRSTRLEN] = "?";

	if (!sa || sa->sa_family == AF_UNIX) {
		snprintf(buf, n, "unix");
	} else if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
		snprintf(buf, n, "%s:%u", host, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
		snprintf(buf, n, "[%s]:%u", host, ntohs(in6->sin6_port));
	}
}

/* The query, made again from MHD's arguments: "a=1&b", decoded values. */
struct query {
	char buf[2048];
	size_t len;
};

static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct query *q = cls;
	int n;

	(void)kind;
	n = snprintf(q->buf + q->len, sizeof q->buf - q->len, "%s%s%s%s", q->len ? "&" : "", key, value ? "=" : "",
		     value ? value : "");
	if (n < 0 || (size_t)n >= sizeof q->buf - q->len)
		return MHD_NO;	/* the rest does not fit: cut */
	q->len += (size_t)n;
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *data, size_t *data_len, void **con_cls)
{
	struct server *s = cls;
	struct upload *u = *con_cls;
	struct cr_http_out out = { 0 };
	struct cr_http_in in;
	struct query query;
	char peer[INET6_ADDRSTRLEN + 16], *path, *q;

	(void)version;
	if (!u) {	/* the headers: a place for the body */
		if (!(u = calloc(1, sizeof *u)))
			return MHD_NO;
		*con_cls = u;
		return MHD_YES;
	}
	if (*data_len) {
		if (!u->too_big && u->len + *data_len <= MAX_BODY) {
			char *more = realloc(u->data, u->len + *data_len + 1);
			if (!more)
				return MHD_NO;
			memcpy(more + u->len, data, *data_len);
			u->data = more;
			u->len += *data_len;
			u->data[u->len] = 0;
		} else {
			u->too_big = 1;
		}
		*data_len = 0;
		return MHD_YES;
	}
	if (u->too_big)
		return reply_text(conn, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large\n");
	if (!(path = strdup(url)))
		return MHD_NO;
	if ((q = strchr(path, '?')))
		*q = 0;
	/* MHD keeps the query only parsed (and decoded): made again */
	query = (struct query){ 0 };
	M.MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_arg, &query);
	peer_of(conn, peer, sizeof peer);
	in = (struct cr_http_in){ .method = method, .path = path, .query = query.buf, .body = u->data ? u->data : "",
				  .body_len = u->len, .peer = peer };
	P.serve(s->owner, s->id, &in, &out);
	free(path);
	if (out.status < 100 || out.status > 599) {
		free(out.body);
		free(out.content_type);
		return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "the plugin's handler gave no answer\n");
	}
	{
		enum MHD_Result rc = reply(conn, out.status, out.body ? out.body : strdup(""),
					   out.body ? out.body_len : 0, out.content_type);
		free(out.content_type);
		return rc;
	}
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct upload *u = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (u) {
		free(u->data);
		free(u);
		*con_cls = NULL;
	}
}

static void server_arm(struct server *s)
{
	MHD_UNSIGNED_LONG_LONG ms;

	ev_timer_stop(P.loop, &s->timer);
	if (M.MHD_get_timeout(s->mhd, &ms) == MHD_YES) {
		ev_timer_set(&s->timer, (double)ms / 1000.0, 0);
		ev_timer_start(P.loop, &s->timer);
	}
}

static void server_run(struct server *s)
{
	M.MHD_run(s->mhd);
	server_arm(s);
}

static void server_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	server_run(w->data);
}

static void server_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	server_run(w->data);
}

/* A listening socket for "HOST:PORT" or "unix:/PATH". */
static int listen_on(const char *address, char **unix_path, char *err, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon;
	unsigned long port;
	char *end;
	int fd, one = 1;

	*unix_path = NULL;
	if (!strncmp(address, "unix:", 5)) {
		char why[256];
		fd = cr_unix_listen(address + 5, SOCK_NONBLOCK, 0, 0660, (gid_t)-1, 64, why, sizeof why);
		if (fd < 0) {
			fail(err, len, "%s", why);
			return -1;
		}
		*unix_path = strdup(address + 5);
		return fd;
	}
	memset(&ss, 0, sizeof ss);
	if (!(colon = strrchr(address, ':')) || (size_t)(colon - address) >= sizeof host ||
	    (port = strtoul(colon + 1, &end, 10), *end || colon[1] == 0 || port > 65535)) {
		fail(err, len, "expected \"HOST:PORT\" (numeric) or \"unix:/PATH\", got \"%s\"", address);
		return -1;
	}
	snprintf(host, sizeof host, "%.*s", (int)(colon - address), address);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		host[strlen(host) - 1] = 0;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host + 1, &in6->sin6_addr) != 1)
			goto bad_host;
		sl = sizeof *in6;
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host[0] ? host : "127.0.0.1", &in->sin_addr) != 1)
			goto bad_host;
		sl = sizeof *in;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 64) < 0) {
		fail(err, len, "unable to listen on %s: %s", address, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
bad_host:
	fail(err, len, "\"%s\": not a numeric address", host);
	return -1;
}

int cr_plugio_serve(void *owner, const char *address, char *err, size_t len)
{
	const union MHD_DaemonInfo *info;
	struct server *s;
	int fd;

	if (need_mhd(err, len) < 0)
		return -1;
	if (!(s = calloc(1, sizeof *s))) {
		fail(err, len, "out of memory");
		return -1;
	}
	if ((fd = listen_on(address, &s->unix_path, err, len)) < 0) {
		free(s);
		return -1;
	}
	s->mhd = M.MHD_start_daemon(MHD_USE_EPOLL, 0, NULL, NULL, on_request, s,
				  MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNS,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONN_TIMEOUT,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
	info = s->mhd ? M.MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
	if (!info) {
		fail(err, len, "unable to start the HTTP server on %s", address);
		if (s->mhd)
			M.MHD_stop_daemon(s->mhd);
		close(fd);
		if (s->unix_path)
			cr_unix_unlink(s->unix_path);
		free(s->unix_path);
		free(s);
		return -1;
	}
	s->id = new_id();
	s->owner = owner;
	ev_io_init(&s->io, server_io_cb, info->epoll_fd, EV_READ);
	s->io.data = s;
	ev_io_start(P.loop, &s->io);
	ev_timer_init(&s->timer, server_timer_cb, 0, 0);
	s->timer.data = s;
	server_arm(s);
	s->next = P.servers;
	P.servers = s;
	return s->id;
}

int cr_plugio_address(void *owner, int id, char *buf, size_t len)
{
	for (struct server *s = P.servers; s; s = s->next) {
		const union MHD_DaemonInfo *info;
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		char host[INET6_ADDRSTRLEN];

		if (s->id != id || s->owner != owner)
			continue;
		if (s->unix_path) {
			snprintf(buf, len, "unix:%s", s->unix_path);
			return 0;
		}
		info = M.MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_LISTEN_FD);
		if (!info || getsockname(info->listen_fd, (struct sockaddr *)&ss, &sl) < 0)
			return -1;
		if (ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
			snprintf(buf, len, "[%s]:%u", host, ntohs(in6->sin6_port));
		} else {
			const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
			snprintf(buf, len, "%s:%u", host, ntohs(in->sin_port));
		}
		return 0;
	}
	return -1;
}

static void server_free(struct server *s)
{
	/* the listening socket back from MHD, closed here: MHD closes what
	 * it accepted */
	MHD_socket fd = M.MHD_quiesce_daemon(s->mhd);

	ev_io_stop(P.loop, &s->io);
	ev_timer_stop(P.loop, &s->timer);
	M.MHD_stop_daemon(s->mhd);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
	if (s->unix_path)
		cr_unix_unlink(s->unix_path);
	free(s->unix_path);
	free(s);
}

/* ---- requests ----------------------------------------------------------------- */

static void check_done(void);

static void curl_io_cb(struct ev_loop *loop, ev_io *w, int revents);

static int curl_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct csock *c = socketp;

	(void)easy;
	(void)userp;
	if (what == CURL_POLL_REMOVE) {
		if (c) {
			ev_io_stop(P.loop, &c->io);
			free(c);
			C.curl_multi_assign(P.multi, fd, NULL);
		}
		return 0;
	}
	if (!c) {
		if (!(c = calloc(1, sizeof *c)))
			return -1;
		c->fd = fd;
		C.curl_multi_assign(P.multi, fd, c);
	} else {
		ev_io_stop(P.loop, &c->io);
	}
	ev_io_init(&c->io, curl_io_cb, fd, (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0));
	ev_io_start(P.loop, &c->io);
	return 0;
}

static void curl_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct csock *c = (struct csock *)w;
	int running;

	(void)loop;
	C.curl_multi_socket_action(P.multi, c->fd,
				 (revents & EV_READ ? CURL_CSELECT_IN : 0) | (revents & EV_WRITE ? CURL_CSELECT_OUT : 0),
				 &running);
	check_done();
}

static void curl_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	int running;

	(void)loop;
	(void)w;
	(void)revents;
	C.curl_multi_socket_action(P.multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done();
}

static int curl_timer_set(CURLM *multi, long ms, void *userp)
{
	(void)multi;
	(void)userp;
	ev_timer_stop(P.loop, &P.curl_timer);
	if (ms >= 0) {
		ev_timer_set(&P.curl_timer, (double)ms / 1000.0, 0);
		ev_timer_start(P.loop, &P.curl_timer);
	}
	return 0;
}

static size_t on_data(char *data, size_t size, size_t n, void *userp)
{
	struct request *r = userp;
	size_t len = size * n, keep = len;

	if (r->len + keep > MAX_BODY) {
		keep = MAX_BODY - r->len;
		r->truncated = 1;
	}
	if (keep) {
		char *more = realloc(r->body, r->len + keep + 1);
		if (!more)
			return 0;	/* curl fails the transfer */
		memcpy(more + r->len, data, keep);
		r->body = more;
		r->len += keep;
		r->body[r->len] = 0;
	}
	return len;
}

static void request_free(struct request *r)
{
	if (r->easy) {
		C.curl_multi_remove_handle(P.multi, r->easy);
		C.curl_easy_cleanup(r->easy);
	}
	C.curl_slist_free_all(r->headers);
	free(r->body);
	free(r);
}

static void unlink_request(struct request *r)
{
	for (struct request **p = &P.requests; *p; p = &(*p)->next) {
		if (*p == r) {
			*p = r->next;
			return;
		}
	}
}

/* Hands over each finished request. */
static void check_done(void)
{
	CURLMsg *m;
	int left;

	while ((m = C.curl_multi_info_read(P.multi, &left))) {
		struct request *r = NULL;
		struct cr_http_res res = { 0 };
		char *type = NULL, why[CURL_ERROR_SIZE + 64];
		double t = 0;

		if (m->msg != CURLMSG_DONE)
			continue;
		C.curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		if (!r)
			continue;
		unlink_request(r);
		C.curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME, &t);
		res.seconds = t;
		if (m->data.result == CURLE_OK) {
			res.ok = 1;
			C.curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &res.status);
			C.curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &type);
			res.body = r->body ? r->body : "";
			res.body_len = r->len;
			res.content_type = type;
			if (r->truncated)
				res.error = "answer cut at 1 MiB";
		} else {
			if (m->data.result == CURLE_OPERATION_TIMEDOUT)
				snprintf(why, sizeof why, "timed out after %gs", r->timeout);
			else
				snprintf(why, sizeof why, "%s", r->errbuf[0] ? r->errbuf : C.curl_easy_strerror(m->data.result));
			res.error = why;
		}
		P.done(r->owner, r->id, &res);
		request_free(r);
	}
}

/* libcurl, on the first request: a corrald whose plugins make none pays
 * nothing for it (TLS set up, memory) */
static int curl_start(char *err, size_t len)
{
	if (need_curl(err, len) < 0)
		return -1;
	if (C.curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -1;
	P.curl_inited = 1;
	if (!(P.multi = C.curl_multi_init()))
		return -1;
	C.curl_multi_setopt(P.multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb);
	C.curl_multi_setopt(P.multi, CURLMOPT_TIMERFUNCTION, curl_timer_set);
	return 0;
}

int cr_plugio_request(void *owner, const char *method, const char *url, const char *body, size_t body_len,
		      const char *const *headers, double timeout, int connect_only, char *err, size_t len)
{
	struct request *r;
	CURLMcode mc;

	if (!P.multi && curl_start(err, len) < 0) {
		if (loaded_curl)
			fail(err, len, "libcurl could not be set up");
		return -1;
	}
	r = calloc(1, sizeof *r);
	if (!r || !(r->easy = C.curl_easy_init())) {
		free(r);
		fail(err, len, "out of memory");
		return -1;
	}
	r->owner = owner;
	r->timeout = timeout;
	for (; headers && *headers; headers++) {
		struct curl_slist *h = C.curl_slist_append(r->headers, *headers);
		if (!h)
			goto oom;
		r->headers = h;
	}
	C.curl_easy_setopt(r->easy, CURLOPT_URL, url);
	C.curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
	C.curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
	C.curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000));
	C.curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
	/* no file://, no redirects elsewhere: a plugin talks to its own
	 * workers and services */
	C.curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, connect_only ? "telnet" : "http,https");
	C.curl_easy_setopt(r->easy, CURLOPT_FOLLOWLOCATION, 0L);
	if (connect_only) {
		C.curl_easy_setopt(r->easy, CURLOPT_CONNECT_ONLY, 1L);
	} else {
		C.curl_easy_setopt(r->easy, CURLOPT_CUSTOMREQUEST, method);
		if (!strcmp(method, "HEAD"))
			C.curl_easy_setopt(r->easy, CURLOPT_NOBODY, 1L);
		if (body) {
			C.curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE, (long)body_len);
			C.curl_easy_setopt(r->easy, CURLOPT_COPYPOSTFIELDS, body);
		}
		C.curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
		C.curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_data);
		C.curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
	}
	if ((mc = C.curl_multi_add_handle(P.multi, r->easy)) != CURLM_OK) {
		fail(err, len, "unable to start the request: %s", C.curl_multi_strerror(mc));
		request_free(r);
		return -1;
	}
	r->id = new_id();
	r->next = P.requests;
	P.requests = r;
	return r->id;
oom:
	fail(err, len, "out of memory");
	request_free(r);
	return -1;
}

/* ---- owners ----------------------------------------------------------------- */

void cr_plugio_cancel(void *owner, int id)
{
	for (struct server **p = &P.servers; *p; p = &(*p)->next) {
		if ((*p)->id == id && (*p)->owner == owner) {
			struct server *s = *p;
			*p = s->next;
			server_free(s);
			return;
		}
	}
	for (struct request **p = &P.requests; *p; p = &(*p)->next) {
		if ((*p)->id == id && (*p)->owner == owner) {
			struct request *r = *p;
			*p = r->next;
			request_free(r);
			return;
		}
	}
}

void cr_plugio_forget(void *owner)
{
	struct server **ps = &P.servers;
	struct request **pr = &P.requests;

	while (*ps) {
		if ((*ps)->owner == owner) {
			struct server *s = *ps;
			*ps = s->next;
			server_free(s);
		} else {
			ps = &(*ps)->next;
		}
	}
	while (*pr) {
		if ((*pr)->owner == owner) {
			struct request *r = *pr;
			*pr = r->next;
			request_free(r);
		} else {
			pr = &(*pr)->next;
		}
	}
}

void cr_plugio_init(struct ev_loop *loop,
		    void (*serve)(void *owner, int id, const struct cr_http_in *in, struct cr_http_out *out),
		    void (*done)(void *owner, int id, const struct cr_http_res *res))
{
	P.loop = loop;
	P.serve = serve;
	P.done = done;
	ev_timer_init(&P.curl_timer, curl_timer_cb, 0, 0);
}

void cr_plugio_finish(void)
{
	while (P.servers) {
		struct server *s = P.servers;
		P.servers = s->next;
		server_free(s);
	}
	while (P.requests) {
		struct request *r = P.requests;
		P.requests = r->next;
		request_free(r);
	}
	if (P.multi) {
		C.curl_multi_cleanup(P.multi);
		P.multi = NULL;
	}
	if (P.loop)
		ev_timer_stop(P.loop, &P.curl_timer);
	if (P.curl_inited)
		C.curl_global_cleanup();
	P.curl_inited = 0;
}
