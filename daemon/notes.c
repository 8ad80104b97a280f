/*
 * notes.c: what plugins say of a pool or worker, for status. A note is a
 * key (a name, as a command's) and a line of text; a few per pool or
 * worker, kept in a short list in the order they were first set.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "notes.h"
#include "text.h"

static int key_ok(const char *k)
{
	size_t n = strlen(k);

	if (n == 0 || n > CR_NOTE_KEY_MAX || k[0] < 'a' || k[0] > 'z')
		return 0;
	for (; *k; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') || *k == '_' || *k == '-'))
			return 0;
	return 1;
}

int cr_note_set(struct cr_note **list, const char *key, const char *value)
{
	struct cr_note **at, *n;
	size_t count = 0, len = 0;

	if (!key_ok(key) || (value && (len = strlen(value)) > CR_NOTE_VALUE_MAX))
		return -EINVAL;
	for (at = list; *at && strcmp((*at)->key, key); at = &(*at)->next)
		count++;
	if (!value) {
		if ((n = *at)) {
			*at = n->next;
			free(n);
		}
		return 0;
	}
	if (!*at && count >= CR_NOTES_MAX)
		return -E2BIG;
	if (!(n = malloc(sizeof *n + len + 1)))
		return -ENOMEM;
	memcpy(n->key, key, strlen(key) + 1);
	memcpy(n->value, value, len + 1);
	if (*at) {	/* in place: the order stays */
		n->next = (*at)->next;
		free(*at);
	} else {
		n->next = NULL;
	}
	*at = n;
	return 0;
}

void cr_notes_free(struct cr_note **list)
{
	struct cr_note *n, *next;

	for (n = *list; n; n = next) {
		next = n->next;
		free(n);
	}
	*list = NULL;
}

void cr_notes_json(struct cr_buf *b, const struct cr_note *list)
{
	cr_buf_lit(b, ",\"notes\":{");
	for (const struct cr_note *n = list; n; n = n->next) {
		if (n != list)
			cr_buf_lit(b, ",");
		cr_buf_json_string(b, n->key);
		cr_buf_lit(b, ":");
		cr_buf_json_string(b, n->value);
	}
	cr_buf_lit(b, "}");
}

void cr_notes_text(struct cr_buf *b, const struct cr_note *list, const char *before, const char *after)
{
	for (const struct cr_note *n = list; n; n = n->next) {
		char *e = cr_text_escape_dup(n->value, 0);
		if (!e) {
			b->failed = 1;
			return;
		}
		cr_buf_printf(b, "%s%s: %s%s", before, n->key, e, after);
		free(e);
	}
}
