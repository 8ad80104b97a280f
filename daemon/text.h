/* text.h: how corral writes durations, sizes and wait statuses, and reads
 * signal names: one spelling for log lines, status, control and Lua. */
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

#endif
