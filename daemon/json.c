/*
 * json.c: the little JSON the control socket needs. Requests are one flat
 * object (no nesting: strings, numbers, booleans, null), parsed strictly
 * with bounded sizes; responses are written with cr_buf.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

void cr_buf_add(struct cr_buf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *d;
		while (cap < b->len + n + 1)
			cap *= 2;
		d = realloc(b->data, cap);
		if (!d) {
			b->failed = 1;
			return;
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = 0;
}

void cr_buf_printf(struct cr_buf *b, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof small) {
		cr_buf_add(b, small, (size_t)n);
		return;
	}
	char *big = malloc((size_t)n + 1);
	if (!big) {
		b->failed = 1;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	cr_buf_add(b, big, (size_t)n);
	free(big);
}

/* The length of the valid UTF-8 sequence at s, or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : 0;

	if (s[0] >= 0xf5)
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((n == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (n == 3 && s[0] == 0xed && s[1] >= 0xa0) ||
	    (n == 4 && s[0] == 0xf0 && s[1] < 0x90) || (n == 4 && s[0] == 0xf4 && s[1] >= 0x90))
		return 0;	/* overlong, surrogate, beyond U+10FFFF */
	return n;
}

/* A JSON string; bytes that are not UTF-8 (a worker's STATUS= may hold
 * anything) become U+FFFD, so the answer stays valid JSON. Every control
 * character is escaped, DEL and C1 too (JSON needs only C0): the answer
 * printed as it is (corralctl --json) cannot drive a terminal. */
void cr_buf_json_string(struct cr_buf *b, const char *s)
{
	cr_buf_add(b, "\"", 1);
	while (s && *s) {
		unsigned char c = (unsigned char)*s;
		size_t n;
		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };
			cr_buf_add(b, e, 2);
			s++;
		} else if (c < 0x20 || c == 0x7f) {
			cr_buf_printf(b, "\\u%04x", c);
			s++;
		} else if (c == 0xc2 && (unsigned char)s[1] >= 0x80 && (unsigned char)s[1] < 0xa0) {
			cr_buf_printf(b, "\\u%04x", (unsigned char)s[1]);
			s += 2;
		} else if (c < 0x80) {
			/* a run of plain ASCII at once: a status table is long */
			for (n = 1; (unsigned char)s[n] >= 0x20 && (unsigned char)s[n] < 0x7f && s[n] != '"' &&
				    s[n] != '\\'; n++)
				;
			cr_buf_add(b, s, n);
			s += n;
		} else if ((n = utf8_len((const unsigned char *)s))) {
			cr_buf_add(b, s, n);
			s += n;
		} else {
			cr_buf_add(b, "\\ufffd", 6);
			s++;
		}
	}
	cr_buf_add(b, "\"", 1);
}

void cr_buf_free(struct cr_buf *b)
{
	free(b->data);
	*b = (struct cr_buf){ 0 };
}

/* ---- parsing ------------------------------------------------------------ */

struct cursor {
	const char *start, *p, *end;
	char *why;
	size_t whylen;
};

static int failf(struct cursor *c, const char *what)
{
	snprintf(c->why, c->whylen, "%s at byte %zu", what, (size_t)(c->p - c->start));
	return -1;
}

static void skip_ws(struct cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

/* A string into out (UTF-8 kept as is; \u escapes below 0x80 only). */
static int parse_string(struct cursor *c, char *out, size_t cap)
{
	size_t n = 0;

	if (c->p >= c->end || *c->p != '"')
		return failf(c, "expected a string");
	c->p++;
	while (c->p < c->end && *c->p != '"') {
		char ch = *c->p++;
		if ((unsigned char)ch < 0x20)
			return failf(c, "control character in a string");
		if (ch == '\\') {
			if (c->p >= c->end)
				return failf(c, "unfinished escape");
			ch = *c->p++;
			switch (ch) {
			case '"': case '\\': case '/': break;
			case 'n': ch = '\n'; break;
			case 't': ch = '\t'; break;
			case 'r': ch = '\r'; break;
			case 'b': ch = '\b'; break;
			case 'f': ch = '\f'; break;
			case 'u': {
				unsigned v = 0;
				for (int i = 0; i < 4; i++) {
					if (c->p >= c->end || !isxdigit((unsigned char)*c->p))
						return failf(c, "bad \\u escape");
					char h = *c->p++;
					v = v * 16 + (unsigned)(isdigit((unsigned char)h) ? h - '0' : (tolower((unsigned char)h) - 'a' + 10));
				}
				if (v == 0 || v >= 0x80)
					return failf(c, "\\u escape outside ASCII or NUL");
				ch = (char)v;
				break;
			}
			default:
				return failf(c, "bad escape");
			}
		}
		if (n + 1 >= cap)
			return failf(c, "string too long");
		out[n++] = ch;
	}
	if (c->p >= c->end)
		return failf(c, "unfinished string");
	c->p++;
	out[n] = 0;
	return 0;
}

static int parse_members(struct cursor *c, struct cr_json_object *o, int depth);

static int parse_value(struct cursor *c, struct cr_json_field *f, int depth)
{
	if (c->p >= c->end)
		return failf(c, "expected a value");
	if (*c->p == '"') {
		f->type = CR_JSON_STRING;
		return parse_string(c, f->str, sizeof f->str);
	}
	if (c->end - c->p >= 4 && !memcmp(c->p, "true", 4)) {
		f->type = CR_JSON_BOOL, f->boolean = 1, c->p += 4;
		return 0;
	}
	if (c->end - c->p >= 5 && !memcmp(c->p, "false", 5)) {
		f->type = CR_JSON_BOOL, f->boolean = 0, c->p += 5;
		return 0;
	}
	if (c->end - c->p >= 4 && !memcmp(c->p, "null", 4)) {
		f->type = CR_JSON_NULL, c->p += 4;
		return 0;
	}
	if (*c->p == '-' || isdigit((unsigned char)*c->p)) {
		char num[64];
		size_t n = 0;
		char *endp;
		/* *c->p first: strchr() finds the terminator, and a NUL byte
		 * would pass as part of the number (strtod stops at it) */
		while (c->p < c->end && n < sizeof num - 1 && *c->p &&
		       (isdigit((unsigned char)*c->p) || strchr("+-.eE", *c->p)))
			num[n++] = *c->p++;
		num[n] = 0;
		f->num = strtod(num, &endp);
		if (*endp || n == 0)
			return failf(c, "bad number");
		f->type = CR_JSON_NUMBER;
		return 0;
	}
	if (*c->p == '{' && depth == 0) {
		/* one level down, of scalars: validated here, decoded by Lua */
		struct cr_json_object inner;
		f->raw = c->p;
		if (parse_members(c, &inner, depth + 1) < 0)
			return -1;
		f->rawlen = (size_t)(c->p - f->raw);
		f->type = CR_JSON_OBJECT;
		return 0;
	}
	if (*c->p == '{' || *c->p == '[')
		return failf(c, "nested values are not understood");
	return failf(c, "expected a value");
}

/* An object's members, from its '{' to past its '}'. */
static int parse_members(struct cursor *cp, struct cr_json_object *o, int depth)
{
	struct cursor c = *cp;

	o->n = 0;
	if (c.p >= c.end || *c.p != '{')
		return failf(&c, "expected a JSON object");
	c.p++;
	skip_ws(&c);
	if (c.p < c.end && *c.p == '}') {
		c.p++;
		goto done;
	}
	for (;;) {
		struct cr_json_field *f;
		if (o->n == CR_JSON_MAX_KEYS)
			return failf(&c, "too many keys");
		f = &o->f[o->n];
		memset(f, 0, sizeof *f);
		skip_ws(&c);
		if (parse_string(&c, f->key, sizeof f->key) < 0)
			return -1;
		for (unsigned i = 0; i < o->n; i++)
			if (!strcmp(o->f[i].key, f->key))
				return failf(&c, "duplicate key");
		skip_ws(&c);
		if (c.p >= c.end || *c.p != ':')
			return failf(&c, "expected ':'");
		c.p++;
		skip_ws(&c);
		if (parse_value(&c, f, depth) < 0) {
			cp->p = c.p;
			return -1;
		}
		o->n++;
		skip_ws(&c);
		if (c.p < c.end && *c.p == ',') {
			c.p++;
			continue;
		}
		if (c.p < c.end && *c.p == '}') {
			c.p++;
			break;
		}
		return failf(&c, "expected ',' or '}'");
	}
done:
	cp->p = c.p;
	return 0;
}

int cr_json_parse_object(const char *text, size_t n, struct cr_json_object *o, char *why, size_t whylen)
{
	struct cursor c = { text, text, text + n, why, whylen };

	skip_ws(&c);
	if (parse_members(&c, o, 0) < 0)
		return -1;
	skip_ws(&c);
	if (c.p != c.end)
		return failf(&c, "text after the object");
	return 0;
}

const struct cr_json_field *cr_json_get(const struct cr_json_object *o, const char *key)
{
	for (unsigned i = 0; i < o->n; i++)
		if (!strcmp(o->f[i].key, key))
			return &o->f[i];
	return NULL;
}
