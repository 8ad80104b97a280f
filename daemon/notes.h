/* notes.h: short notes plugins attach to a pool or a worker (corral.note):
 * "autoscale" on a pool, "health" on a worker. Shown by status, in the
 * table and the JSON; gone with their worker, and all of them at a reload
 * (the plugins that wrote them start again). */
#ifndef CR_NOTES_H
#define CR_NOTES_H

struct cr_buf;

#define CR_NOTE_KEY_MAX 31
#define CR_NOTE_VALUE_MAX 200
#define CR_NOTES_MAX 16

struct cr_note {
	struct cr_note *next;
	char key[CR_NOTE_KEY_MAX + 1];
	char value[];
};

/* Sets key to value (NULL: removes it); the list stays in the order keys
 * were first set. -EINVAL for a key or value out of bounds, -E2BIG for a
 * new key past CR_NOTES_MAX, -ENOMEM. */
int cr_note_set(struct cr_note **list, const char *key, const char *value);
void cr_notes_free(struct cr_note **list);
/* ,"notes":{"key":"value",...} */
void cr_notes_json(struct cr_buf *b, const struct cr_note *list);
/* BEFOREkey: valueAFTER for each (the value escaped: a terminal shows it). */
void cr_notes_text(struct cr_buf *b, const struct cr_note *list, const char *before, const char *after);

#endif
