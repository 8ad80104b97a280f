/* text.h: how corral writes durations, sizes and wait statuses, and reads
 * signal names: one spelling for log lines, status, control and Lua; and
 * how text from workers is made safe for a terminal. */
#ifndef CR_TEXT_H
#define CR_TEXT_H

#include <stddef.h>

/* Seconds as a config would write them: "250ms", "1.5s", "120s". */
void cr_text_duration(char *buf, size_t n, double seconds);
/* Bytes as a config would write them: "512K", "1.5M", "2.0G"; "-" when
 * negative (unknown). */
void cr_text_bytes(char *buf, size_t n, long long bytes);
/* "exited with status 3", "killed by signal 9 (KILL) (core dumped)" */
void cr_text_wait_status(char *buf, size_t n, int status);
/* "TERM", "SIGTERM", "term" or "15" -> 15; -1 when it names no signal. */
int cr_text_signal(const char *name);
/* s with what a terminal would act on escaped: control characters (C0,
 * DEL, and C1 as UTF-8) become \n \t \r \e \xNN or \u00NN, bytes that are
 * not UTF-8 \xNN; but what keep says (CR_TEXT_KEEP_*) stays. Writes at
 * most n bytes with the NUL, cut before an escape that does not fit;
 * returns the length of the whole result, as snprintf does. */
#define CR_TEXT_KEEP_TAB 1
#define CR_TEXT_KEEP_NEWLINE 2
size_t cr_text_escape(char *buf, size_t n, const char *s, int keep);
/* The same, allocated (free it); NULL when out of memory. */
char *cr_text_escape_dup(const char *s, int keep);

#endif
