/* ctljson.h: corralctl's reader of corrald's answers (not part of corrald). */
#ifndef CR_CTLJSON_H
#define CR_CTLJSON_H

#include <stddef.h>

/* A JSON value, read whole. */
struct jval {
	enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } type;
	double num;		/* a number; a boolean as 0 or 1 */
	char *str;		/* a string */
	char *key;		/* its name, as a member of an object */
	struct jval *items;	/* an array's or an object's */
	size_t n;
};

/* Parses the JSON text (of at most 16 levels) into v: 0, or -1 (free v
 * all the same). */
int cr_jv_parse(const char *text, struct jval *v);
void cr_jv_free(struct jval *v);
/* A member of an object, or NULL. */
const struct jval *cr_jv_get(const struct jval *o, const char *key);
/* A member's value as a string, a number (a boolean as 0 or 1), an
 * array's length: or what is given when it is missing or of another type. */
const char *cr_jv_str(const struct jval *o, const char *key, const char *missing);
double cr_jv_num(const struct jval *o, const char *key, double missing);
size_t cr_jv_len(const struct jval *o, const char *key);
/* The value of a top-level string member of a JSON text, unescaped (free
 * it), or NULL when there is none: a quick look, without parsing it all. */
char *cr_jv_field(const char *json, const char *key);

#endif
