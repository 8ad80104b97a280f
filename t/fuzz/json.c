/*
 * json.c (t/fuzz): the control protocol's JSON parser,
 * cr_json_parse_object. Beyond not crashing: what it accepts is one
 * object of at most CR_JSON_MAX_KEYS distinct keys, with no NUL byte in
 * the text (JSON has none outside strings and none unescaped inside), and
 * writing it back out with cr_buf_json_string parses to the same object.
 * An object as a value (one level down) is kept as its raw text: a span
 * of the input from { to }, which parses on its own, written back as is.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "fuzz.h"

static void same(const struct cr_json_object *a, const struct cr_json_object *b)
{
	if (a->n != b->n)
		fuzz_fail("round trip: %u keys, then %u", a->n, b->n);
	for (unsigned i = 0; i < a->n; i++) {
		const struct cr_json_field *x = &a->f[i], *y = &b->f[i];
		if (strcmp(x->key, y->key) || x->type != y->type)
			fuzz_fail("round trip: key %u \"%s\" changed", i, x->key);
		if (x->type == CR_JSON_STRING && strcmp(x->str, y->str))
			fuzz_fail("round trip: value of \"%s\" changed", x->key);
		if (x->type == CR_JSON_NUMBER && x->num != y->num)
			fuzz_fail("round trip: %.17g became %.17g", x->num, y->num);
		if (x->type == CR_JSON_BOOL && x->boolean != y->boolean)
			fuzz_fail("round trip: boolean \"%s\" changed", x->key);
		if (x->type == CR_JSON_OBJECT && (x->rawlen != y->rawlen || memcmp(x->raw, y->raw, x->rawlen)))
			fuzz_fail("round trip: object \"%s\" changed", x->key);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct cr_json_object o, back;
	struct cr_buf b = { 0 };
	char why[128];
	int plain = 1;	/* every string is valid UTF-8: it comes back as is */

	if (cr_json_parse_object(text, size, &o, why, sizeof why) < 0) {
		if (!memchr(why, 0, sizeof why))
			fuzz_fail("the reason is not terminated");
		return 0;
	}
	if (memchr(text, 0, size))
		fuzz_fail("accepted a text with a NUL byte");
	if (o.n > CR_JSON_MAX_KEYS)
		fuzz_fail("%u keys", o.n);
	cr_buf_lit(&b, "{");
	for (unsigned i = 0; i < o.n; i++) {
		const struct cr_json_field *f = &o.f[i];
		if (!memchr(f->key, 0, sizeof f->key) || !memchr(f->str, 0, sizeof f->str))
			fuzz_fail("a string is not terminated");
		for (unsigned k = 0; k < i; k++)
			if (!strcmp(o.f[k].key, f->key))
				fuzz_fail("duplicate key \"%s\" accepted", f->key);
		if (i)
			cr_buf_lit(&b, ",");
		cr_buf_json_string(&b, f->key);
		cr_buf_lit(&b, ":");
		switch (f->type) {
		case CR_JSON_STRING:
			cr_buf_json_string(&b, f->str);
			break;
		case CR_JSON_NUMBER:
			if (!isfinite(f->num))
				plain = 0;	/* 1e999: JSON cannot write it back */
			cr_buf_printf(&b, "%.17g", f->num);
			break;
		case CR_JSON_BOOL:
			cr_buf_printf(&b, "%s", f->boolean ? "true" : "false");
			break;
		case CR_JSON_NULL:
			cr_buf_lit(&b, "null");
			break;
		case CR_JSON_OBJECT: {
			struct cr_json_object inner;
			if (f->raw < text || f->raw + f->rawlen > text + size || f->rawlen < 2 || f->raw[0] != '{' ||
			    f->raw[f->rawlen - 1] != '}')
				fuzz_fail("object \"%s\": its text is not a span of the input from { to }", f->key);
			if (cr_json_parse_object(f->raw, f->rawlen, &inner, why, sizeof why) < 0)
				fuzz_fail("object \"%s\" does not parse on its own: %s", f->key, why);
			for (unsigned k = 0; k < inner.n; k++)
				if (inner.f[k].type == CR_JSON_OBJECT)
					fuzz_fail("object \"%s\" holds an object", f->key);
			cr_buf_add(&b, f->raw, f->rawlen);
			break;
		}
		default:
			fuzz_fail("field \"%s\" has type %d", f->key, (int)f->type);
		}
	}
	cr_buf_lit(&b, "}");
	if (b.failed)
		fuzz_fail("out of memory");
	/* bytes that are not UTF-8 are written as U+FFFD, which the parser
	 * (ASCII escapes only) refuses: such objects do not come back */
	if (strstr(b.data, "\\ufffd"))
		plain = 0;
	if (cr_json_parse_object(b.data, b.len, &back, why, sizeof why) < 0) {
		if (plain)
			fuzz_fail("round trip: %s does not parse: %s", b.data, why);
	} else {
		same(&o, &back);
	}
	cr_buf_free(&b);
	return 0;
}
