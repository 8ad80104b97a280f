/*
 * text.c: the few formats corral prints and reads in more than one place.
 * Durations and sizes are written the way a config writes them, so what
 * a log line or `corralctl status` shows can be pasted back into a config
 * (lua/corral/units.lua formats through the same function, core.duration).
 * Text that comes from workers is escaped before it reaches a terminal.
 * corralctl links this file too: no libm.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>

#include "text.h"

void cr_text_duration(char *buf, size_t n, double s)
{
	if (s < 1)
		snprintf(buf, n, "%.0fms", s * 1e3);
	else if (s < 100000)
		snprintf(buf, n, "%gs", (double)(long long)(s * 1000 + 0.5) / 1000);	/* to the ms */
	else
		snprintf(buf, n, "%.0fs", s);
}

void cr_text_bytes(char *buf, size_t n, long long v)
{
	if (v < 0)
		snprintf(buf, n, "-");
	else if (v >= 1LL << 30)
		snprintf(buf, n, "%.1fG", (double)v / (1 << 30));
	else if (v >= 1LL << 20)
		snprintf(buf, n, "%.1fM", (double)v / (1 << 20));
	else
		snprintf(buf, n, "%.0fK", (double)v / 1024);
}

void cr_text_wait_status(char *buf, size_t n, int status)
{
	if (WIFEXITED(status))
		snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, n, "killed by signal %d (%s)%s", WTERMSIG(status),
			 sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?",
			 WCOREDUMP(status) ? " (core dumped)" : "");
	else
		snprintf(buf, n, "ended with wait status %#x", status);
}

int cr_text_signal(const char *name)
{
	char *end;
	long n = strtol(name, &end, 10);

	if (*name && !*end)
		return n > 0 && n < NSIG ? (int)n : -1;
	if (!strncasecmp(name, "SIG", 3))
		name += 3;
	for (int i = 1; i < NSIG; i++)
		if (sigabbrev_np(i) && !strcasecmp(name, sigabbrev_np(i)))
			return i;
	return -1;
}

/* The length of the UTF-8 sequence at s if it is a valid one (shortest
 * form, no surrogate, at most U+10FFFF), else 0. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n = s[0] >= 0xc2 && s[0] <= 0xdf ? 2 : s[0] >= 0xe0 && s[0] <= 0xef ? 3
		 : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : 0;

	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((n == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (n == 3 && s[0] == 0xed && s[1] >= 0xa0) ||
	    (n == 4 && s[0] == 0xf0 && s[1] < 0x90) || (n == 4 && s[0] == 0xf4 && s[1] >= 0x90))
		return 0;
	return n;
}

size_t cr_text_escape(char *buf, size_t n, const char *s, int keep)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = 0, kept = 0;
	int full = 0;

	while (p && *p) {
		char e[8];
		size_t k = 0, u;

		if ((*p == '\t' && (keep & CR_TEXT_KEEP_TAB)) || (*p == '\n' && (keep & CR_TEXT_KEEP_NEWLINE))) {
			e[k++] = (char)*p++;
		} else if (*p < 0x20 || *p == 0x7f) {
			const char *named = *p == '\n' ? "\\n" : *p == '\t' ? "\\t" : *p == '\r' ? "\\r"
					  : *p == 0x1b ? "\\e" : NULL;
			k = named ? (size_t)snprintf(e, sizeof e, "%s", named) : (size_t)snprintf(e, sizeof e, "\\x%02x", *p);
			p++;
		} else if (*p < 0x80) {
			e[k++] = (char)*p++;
		} else if ((u = utf8_len(p)) == 2 && p[0] == 0xc2 && p[1] < 0xa0) {
			k = (size_t)snprintf(e, sizeof e, "\\u%04x", p[1]);	/* C1: CSI and the like */
			p += 2;
		} else if (u) {
			memcpy(e, p, u);
			k = u;
			p += u;
		} else {
			k = (size_t)snprintf(e, sizeof e, "\\x%02x", *p++);
		}
		if (!full && len + k < n) {
			memcpy(buf + len, e, k);
			kept = len + k;
		} else {
			full = 1;	/* cut at a whole escape */
		}
		len += k;
	}
	if (n)
		buf[kept] = 0;
	return len;
}

char *cr_text_escape_dup(const char *s, int keep)
{
	size_t len = cr_text_escape(NULL, 0, s, keep);
	char *out = malloc(len + 1);

	if (out)
		cr_text_escape(out, len + 1, s, keep);
	return out;
}
