/* json.h: just enough JSON for the control protocol. */
#ifndef CR_JSON_H
#define CR_JSON_H

#include <stddef.h>

/* A growing buffer to write JSON (or text) into. */
struct cr_buf {
	char *data;
	size_t len, cap;
	int failed;		/* out of memory: the content is incomplete */
};

void cr_buf_add(struct cr_buf *b, const char *s, size_t n);
/* A string literal, its length counted by the compiler. */
#define cr_buf_lit(b, lit) cr_buf_add((b), "" lit, sizeof(lit) - 1)
void cr_buf_printf(struct cr_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string literal, escaped. */
void cr_buf_json_string(struct cr_buf *b, const char *s);
void cr_buf_free(struct cr_buf *b);

/* A request: one JSON object of string, number, boolean or null values,
 * or objects of such values one level down (kept as their raw text, for
 * Lua to decode: a plugin command's args). At most CR_JSON_MAX_KEYS keys
 * in each. */
#define CR_JSON_MAX_KEYS 16

struct cr_json_field {
	char key[32];
	enum { CR_JSON_STRING, CR_JSON_NUMBER, CR_JSON_BOOL, CR_JSON_NULL, CR_JSON_OBJECT } type;
	char str[256];
	double num;
	int boolean;
	const char *raw;	/* an object: its text, in the request parsed */
	size_t rawlen;
};

struct cr_json_object {
	struct cr_json_field f[CR_JSON_MAX_KEYS];
	unsigned n;
};

/* Parses text (n bytes, no NUL needed). 0, or -1 with *why saying what is
 * wrong and where. */
int cr_json_parse_object(const char *text, size_t n, struct cr_json_object *o, char *why, size_t whylen);
const struct cr_json_field *cr_json_get(const struct cr_json_object *o, const char *key);

#endif
