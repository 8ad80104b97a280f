/*
 * control.c (t/fuzz): the control socket's request decoder, handle() in
 * daemon/control.c, on the bytes conn_cb hands it (up to the first
 * newline). handle() is static and tangled with the socket code, so the
 * file is included whole, and the commands it dispatches to are stubs
 * here whose answers depend on the pool name, so that every reply path
 * runs. Beyond not crashing: every reply is one JSON object (nested values only in its members) that
 * cr_json_parse_object reads back, with "ok" a boolean and "code" one of
 * the documented codes, whatever bytes the request held.
 */
#include "../../daemon/control.c"

#include <ctype.h>

#include "fuzz.h"

/* -ENOENT, -ESRCH, -ERANGE, -EOPNOTSUPP, -EIO or success, from the name */
static int outcome(const char *pool)
{
	static const int rcs[] = { 0, -ENOENT, -ESRCH, -ERANGE, -EOPNOTSUPP, -EIO, -EMFILE, 3 };

	return pool && *pool ? rcs[(unsigned char)pool[0] % (sizeof rcs / sizeof *rcs)] : 0;
}

int cr_pool_scale(const char *pool, unsigned n, int keep)
{
	if (keep)
		fuzz_fail("corralctl's scale kept across reloads");
	if (n > 10000)
		fuzz_fail("scale to %u passed the decoder", n);
	return outcome(pool);
}

int cr_pool_restart(const char *pool, unsigned id, const struct cr_restart_how *how)
{
	(void)id;
	if (!how || !how->reason)
		fuzz_fail("restart without a reason");
	return outcome(pool);
}

int cr_pool_stop(const char *pool)
{
	return outcome(pool);
}

int cr_pool_start(const char *pool)
{
	return outcome(pool);
}

int cr_pool_signal(const char *pool, unsigned id, int sig)
{
	(void)id;
	if (sig < 1 || sig >= NSIG)
		fuzz_fail("signal %d passed the decoder", sig);
	return outcome(pool);
}

int cr_supervisor_freeze(const char *pool, int on)
{
	(void)on;
	return outcome(pool);
}

/* null keeps the reply flat, so the check below can read it */
int cr_status_report(struct cr_buf *b, const char *pool, int json)
{
	if (outcome(pool) == -ENOENT)
		return -1;
	if (json)
		cr_buf_lit(b, "null");
	else
		cr_buf_printf(b, "pool %s: \x01 \xff text\n", pool ? pool : "(all)");
	return 0;
}

int cr_status_reports(struct cr_buf *json, struct cr_buf *text, const char *pool)
{
	if (outcome(pool) == -ENOENT)
		return -1;
	if (json)
		cr_buf_lit(json, "null");
	if (text)
		cr_buf_printf(text, "pool %s: \x01 \xff text\n", pool ? pool : "(all)");
	return 0;
}

/* sockets.c: the control socket is never opened here */
int cr_unix_listen(const char *path, int flags, int live_ok, mode_t mode, gid_t gid, int backlog,
		   char *why, size_t n)
{
	(void)path, (void)flags, (void)live_ok, (void)mode, (void)gid, (void)backlog;
	snprintf(why, n, "not in the fuzzer");
	return -1;
}

void cr_unix_unlink(const char *path)
{
	(void)path;
}

/* commands.c: why the last scale was refused for want of fds */
const char *cr_pool_scale_refusal(void)
{
	return "pool \"x\": too many workers for the open files limit";
}

int cr_reload(char *msg, size_t msglen, struct cr_buf *detail)
{
	snprintf(msg, msglen, "reloaded \"x\"\n\\");
	if (detail)
		cr_buf_lit(detail, "{\"added\":[\"x\\n\"],\"changed\":[],\"removed\":[],\"unchanged\":[],\"rescaled\":[]}");
	return 0;
}

/* lua.c: a plugin command's answer, or its failures, from the plugin's
 * name; the list when there is none */
int cr_lua_command(const char *plugin, const char *name, const char *args, size_t argslen, int text,
		   int may_change, unsigned uid, struct cr_buf *out)
{
	int rc = outcome(plugin);

	(void)name, (void)text, (void)may_change, (void)uid;
	if (args && (argslen < 2 || args[0] != '{' || args[argslen - 1] != '}'))
		fuzz_fail("plugin args are not an object's text");
	if (rc == -ENOENT || rc == -EIO)
		return rc;
	if (rc < 0)
		cr_buf_lit(out, "{\"ok\":false,\"code\":\"bad-request\",\"error\":\"x\"}");
	else
		cr_buf_lit(out, "{\"ok\":true,\"code\":\"ok\",\"result\":null}");
	return 0;
}

/* ---- a strict reader of the reply ---- */

/* The length of the UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	size_t len = s[0] < 0x80 ? 1 : s[0] >= 0xc2 && s[0] <= 0xdf ? 2 : s[0] >= 0xe0 && s[0] <= 0xef ? 3 :
		     s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : 0;
	unsigned cp;

	if (!len || len > n)
		return 0;
	if (len == 1)
		return 1;
	cp = s[0] & (0x7f >> len);
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* A JSON string at *p: valid UTF-8, no raw control character, known
 * escapes; its raw text (escapes and all) is copied to out when short. */
static int reply_string(const char **p, const char *end, char *out, size_t cap)
{
	const char *s = *p;
	size_t n = 0;

	if (s >= end || *s++ != '"')
		return -1;
	while (s < end && *s != '"') {
		size_t len = 1;
		if ((unsigned char)*s < 0x20)
			return -1;
		if (*s == '\\') {
			if (s + 1 >= end || !strchr("\"\\/bfnrtu", s[1]))
				return -1;
			len = s[1] == 'u' ? 6 : 2;
			if (s + len > end)
				return -1;
			for (size_t i = 2; i < len; i++)
				if (!isxdigit((unsigned char)s[i]))
					return -1;
		} else if (!(len = utf8_seq((const unsigned char *)s, (size_t)(end - s)))) {
			return -1;
		}
		for (size_t i = 0; i < len && n + 1 < cap; i++)
			out[n++] = s[i];
		s += len;
	}
	if (s >= end)
		return -1;
	out[n] = 0;
	*p = s + 1;
	return 0;
}

static int read_object(const char **pp, const char *end, int depth, int *ok, char *code, size_t codelen);

/* A value nested in the reply (a reload's detail): strings, numbers,
 * booleans, null, and objects and arrays of them, at most 4 deep. */
static int read_value(const char **pp, const char *end, int depth)
{
	const char *p = *pp;
	char val[64];

	if (depth > 4 || p >= end)
		return -1;
	if (*p == '"') {
		if (reply_string(&p, end, val, sizeof val) < 0)
			return -1;
	} else if (*p == '{') {
		if (read_object(&p, end, depth + 1, NULL, NULL, 0) < 0)
			return -1;
	} else if (*p == '[') {
		p++;
		if (p < end && *p == ']') {
			p++;
		} else {
			for (;;) {
				if (read_value(&p, end, depth + 1) < 0 || p >= end)
					return -1;
				if (*p == ']') {
					p++;
					break;
				}
				if (*p++ != ',')
					return -1;
			}
		}
	} else if (end - p >= 4 && (!memcmp(p, "true", 4) || !memcmp(p, "null", 4))) {
		p += 4;
	} else if (end - p >= 5 && !memcmp(p, "false", 5)) {
		p += 5;
	} else if (*p == '-' || isdigit((unsigned char)*p)) {
		while (p < end && (isdigit((unsigned char)*p) || strchr("+-.eE", *p)) && *p)
			p++;
	} else {
		return -1;
	}
	*pp = p;
	return 0;
}

/* An object at *pp; at the top (ok not NULL) its "ok" (-1 if absent) and
 * "code" are returned, and they must be a boolean and a string. */
static int read_object(const char **pp, const char *end, int depth, int *ok, char *code, size_t codelen)
{
	const char *p = *pp;
	char key[64], val[64];

	if (ok) {
		*ok = -1;
		*code = 0;
	}
	if (p >= end || *p++ != '{')
		return -1;
	if (!ok && p < end && *p == '}') {
		*pp = p + 1;
		return 0;
	}
	for (;;) {
		if (reply_string(&p, end, key, sizeof key) < 0 || p >= end || *p++ != ':')
			return -1;
		if (ok && !strcmp(key, "code")) {
			if (reply_string(&p, end, val, sizeof val) < 0)
				return -1;
			snprintf(code, codelen, "%s", val);
		} else if (ok && !strcmp(key, "ok")) {
			if (end - p >= 4 && !memcmp(p, "true", 4))
				*ok = 1, p += 4;
			else if (end - p >= 5 && !memcmp(p, "false", 5))
				*ok = 0, p += 5;
			else
				return -1;
		} else if (read_value(&p, end, depth) < 0) {
			return -1;
		}
		if (p < end && *p == ',') {
			p++;
			continue;
		}
		if (p >= end || *p != '}')
			return -1;
		*pp = p + 1;
		return 0;
	}
}

/* The reply: one object; nested values only below its members. */
static int read_reply(const char *p, const char *end, int *ok, char *code, size_t codelen)
{
	if (read_object(&p, end, 0, ok, code, codelen) < 0)
		return -1;
	return p == end ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const codes[] = { "ok", "bad-request", "not-found", "failed", "refused" };
	struct conn *c;
	const uint8_t *nl;
	char code[64];
	size_t k;
	int ok;

	if (size > MAX_REQUEST || !(c = calloc(1, sizeof *c)))
		return 0;
	/* as conn_cb: the request is what comes before the first newline */
	if ((nl = memchr(data, '\n', size)))
		size = (size_t)(nl - data);
	c->allowed = 1;
	handle(c, (const char *)data, size);
	if (c->out.failed || !c->out.data)
		fuzz_fail("no reply");
	if (strlen(c->out.data) != c->out.len)
		fuzz_fail("a NUL byte in the reply");
	if (read_reply(c->out.data, c->out.data + c->out.len, &ok, code, sizeof code) < 0)
		fuzz_fail("the reply is not a JSON object in UTF-8: %s", c->out.data);
	for (k = 0; k < sizeof codes / sizeof *codes && strcmp(code, codes[k]); k++)
		;
	if (k == sizeof codes / sizeof *codes || ok != !strcmp(code, "ok"))
		fuzz_fail("reply with ok %d, code \"%s\": %s", ok, code, c->out.data);
	cr_buf_free(&c->out);
	free(c);
	return 0;
}
