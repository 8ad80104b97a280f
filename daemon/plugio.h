/* plugio.h: network I/O for plugins, driven by corrald's loop: HTTP
 * servers (libmicrohttpd) and HTTP requests and TCP connects (libcurl's
 * multi interface), each belonging to an owner (a config's Lua state)
 * and named by an id, like timers. Nothing here blocks. */
#ifndef CR_PLUGIO_H
#define CR_PLUGIO_H

#include <ev.h>
#include <stddef.h>

struct lua_State;

/* Ids of this file's servers and requests start here (timers.c has the
 * smaller ones): one corral.cancel() for both. */
#define CR_PLUGIO_FIRST_ID 1000000000

/* An HTTP request to a plugin's server, as its handler sees it. */
struct cr_http_in {
	const char *method, *path, *query, *body;
	size_t body_len;
	const char *peer;	/* "127.0.0.1:53422", or "unix" */
};

/* What a handler answers. */
struct cr_http_out {
	int status;		/* 0: no answer (the handler failed): 500 */
	char *body;		/* malloc'd */
	size_t body_len;
	char *content_type;	/* malloc'd, or NULL: text/plain */
};

/* The result of a client request. */
struct cr_http_res {
	int ok;
	long status;		/* HTTP status; 0 for a TCP connect */
	const char *body;
	size_t body_len;
	const char *content_type;
	const char *error;	/* when !ok: why ("timed out after 2s", ...) */
	double seconds;
};

/* serve(owner, id, in, out): a request to server id; fills out.
 * done(owner, id, res): request id is over. */
void cr_plugio_init(struct ev_loop *loop,
		    void (*serve)(void *owner, int id, const struct cr_http_in *in, struct cr_http_out *out),
		    void (*done)(void *owner, int id, const struct cr_http_res *res));
void cr_plugio_finish(void);

/* An HTTP server on "HOST:PORT" (numeric, [v6]) or "unix:/PATH". Its id,
 * or -1 with a message in err. */
int cr_plugio_serve(void *owner, const char *address, char *err, size_t len);
/* An HTTP request (method, url, body or NULL, headers "Name: value" or
 * NULL-terminated, or NULL) or, with connect_only, a TCP connect to url
 * ("tcp://HOST:PORT"); timeout in seconds. Its id, or -1 with err. */
int cr_plugio_request(void *owner, const char *method, const char *url, const char *body, size_t body_len,
		      const char *const *headers, double timeout, int connect_only, char *err, size_t len);
/* Stops a server or abandons a request of owner's (its done is not called). */
void cr_plugio_cancel(void *owner, int id);
/* Drops everything of owner's. */
void cr_plugio_forget(void *owner);

/* The bound address of server id ("127.0.0.1:9100"), for a port of 0. */
int cr_plugio_address(void *owner, int id, char *buf, size_t len);

#endif
