/*
 * ctljson.c: corralctl's reader of corrald's answers: a whole answer
 * parsed into a tree of values (what a wait and is-ready decide on), and
 * a quick look at one string member. Linked into corralctl only; corrald
 * reads requests with json.c, which takes flat objects alone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctljson.h"
#include "json.h"

/* A code point as UTF-8 (a surrogate, which corrald never sends alone,
 * as U+FFFD). */
static void add_utf8(struct cr_buf *b, unsigned v)
{
	char u[3];

	if (v >= 0xd800 && v <= 0xdfff)
		v = 0xfffd;
	if (v < 0x80) {
		u[0] = (char)v;
		cr_buf_add(b, u, 1);
	} else if (v < 0x800) {
		u[0] = (char)(0xc0 | v >> 6);
		u[1] = (char)(0x80 | (v & 0x3f));
		cr_buf_add(b, u, 2);
	} else {
		u[0] = (char)(0xe0 | v >> 12);
		u[1] = (char)(0x80 | (v >> 6 & 0x3f));
		u[2] = (char)(0x80 | (v & 0x3f));
		cr_buf_add(b, u, 3);
	}
}

/* The 4 hex digits of a \u escape (not sscanf: it would measure the
 * whole rest of the answer, at every newline of a status table). */
static int hex4(const char *p, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		char c = (char)(p[i] | 0x20);
		int d = p[i] >= '0' && p[i] <= '9' ? p[i] - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (d < 0)
			return -1;
		*v = *v << 4 | (unsigned)d;
	}
	return 0;
}

/* A JSON string from p, past its opening quote, unescaped into out; p
 * ends past the closing quote. -1 when the text ends first. */
static int read_string(const char **pp, struct cr_buf *out)
{
	const char *p;

	cr_buf_lit(out, "");	/* "" rather than NULL when empty */
	for (p = *pp; *p && *p != '"'; p++) {
		char ch = *p;
		size_t run = strcspn(p, "\"\\");
		if (run > 1) {	/* what needs no unescaping, at once */
			cr_buf_add(out, p, run);
			p += run - 1;
			continue;
		}
		if (ch == '\\' && p[1]) {
			p++;
			switch (*p) {
			case 'n': ch = '\n'; break;
			case 't': ch = '\t'; break;
			case 'r': ch = '\r'; break;
			case 'b': ch = '\b'; break;
			case 'f': ch = '\f'; break;
			case 'u': {
				unsigned v;
				if (hex4(p + 1, &v) == 0)
					p += 4;
				else
					v = 0xfffd;
				add_utf8(out, v);
				continue;
			}
			default: ch = *p;
			}
		}
		cr_buf_add(out, &ch, 1);
	}
	*pp = *p ? p + 1 : p;
	return *p ? 0 : -1;
}

/* The value of a top-level string field of the answer, unescaped. */
char *cr_jv_field(const char *json, const char *key)
{
	char pat[64];
	const char *p;
	struct cr_buf out = { 0 };

	snprintf(pat, sizeof pat, "\"%s\":\"", key);
	if (!(p = strstr(json, pat)))
		return NULL;
	p += strlen(pat);
	read_string(&p, &out);
	return out.data ? out.data : strdup("");
}

#define JSON_DEPTH 16

void cr_jv_free(struct jval *v)
{
	for (size_t i = 0; i < v->n; i++)
		cr_jv_free(&v->items[i]);
	free(v->items);
	free(v->str);
	free(v->key);
}

static void skip_space(const char **p)
{
	while (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r')
		(*p)++;
}

static int parse_value(const char **p, struct jval *v, int depth);

/* The items of an array or object, from its opening bracket. */
static int parse_items(const char **p, struct jval *v, int depth, char close)
{
	(*p)++;
	skip_space(p);
	if (**p == close) {
		(*p)++;
		return 0;
	}
	for (;;) {
		struct jval item = { 0 }, *grown;
		skip_space(p);
		if (close == '}') {
			struct cr_buf key = { 0 };
			if (**p != '"')
				return -1;
			(*p)++;
			if (read_string(p, &key) < 0 || key.failed) {
				cr_buf_free(&key);
				return -1;
			}
			item.key = key.data;
			skip_space(p);
			if (**p != ':') {
				cr_jv_free(&item);
				return -1;
			}
			(*p)++;
		}
		if (parse_value(p, &item, depth + 1) < 0) {
			cr_jv_free(&item);
			return -1;
		}
		/* room doubled when full (n a power of two): a long array
		 * is not copied over and over */
		if ((v->n & (v->n - 1)) == 0) {
			if (!(grown = realloc(v->items, (v->n ? 2 * v->n : 1) * sizeof *grown))) {
				cr_jv_free(&item);
				return -1;
			}
			v->items = grown;
		}
		v->items[v->n++] = item;
		skip_space(p);
		if (**p == close) {
			(*p)++;
			return 0;
		}
		if (**p != ',')
			return -1;
		(*p)++;
	}
}

static int parse_value(const char **p, struct jval *v, int depth)
{
	char *end;

	if (depth > JSON_DEPTH)
		return -1;
	skip_space(p);
	switch (**p) {
	case '{':
		v->type = J_OBJ;
		return parse_items(p, v, depth, '}');
	case '[':
		v->type = J_ARR;
		return parse_items(p, v, depth, ']');
	case '"': {
		struct cr_buf b = { 0 };
		(*p)++;
		v->type = J_STR;
		if (read_string(p, &b) < 0 || b.failed) {
			cr_buf_free(&b);
			return -1;
		}
		v->str = b.data;
		return 0;
	}
	}
	if (!strncmp(*p, "null", 4) || !strncmp(*p, "true", 4) || !strncmp(*p, "false", 5)) {
		v->type = **p == 'n' ? J_NULL : J_BOOL;
		v->num = **p == 't';
		*p += **p == 'f' ? 5 : 4;
		return 0;
	}
	v->type = J_NUM;
	v->num = strtod(*p, &end);
	if (end == *p)
		return -1;
	*p = end;
	return 0;
}

const struct jval *cr_jv_get(const struct jval *o, const char *key)
{
	for (size_t i = 0; o && o->type == J_OBJ && i < o->n; i++)
		if (!strcmp(o->items[i].key, key))
			return &o->items[i];
	return NULL;
}

/* A member's value as a string, a number, a truth: or what is given
 * when it is missing or of another type. */
const char *cr_jv_str(const struct jval *o, const char *key, const char *missing)
{
	const struct jval *v = cr_jv_get(o, key);

	return v && v->type == J_STR ? v->str : missing;
}

double cr_jv_num(const struct jval *o, const char *key, double missing)
{
	const struct jval *v = cr_jv_get(o, key);

	return v && (v->type == J_NUM || v->type == J_BOOL) ? v->num : missing;
}

size_t cr_jv_len(const struct jval *o, const char *key)
{
	const struct jval *v = cr_jv_get(o, key);

	return v && v->type == J_ARR ? v->n : 0;
}

int cr_jv_parse(const char *text, struct jval *v)
{
	const char *p = text;

	memset(v, 0, sizeof *v);
	return parse_value(&p, v, 0);
}
