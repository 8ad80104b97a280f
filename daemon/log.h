/* log.h: one logging call for every process of corral. */
#ifndef CR_LOG_H
#define CR_LOG_H

#include <sys/types.h>

enum cr_level { CR_DEBUG, CR_INFO, CR_NOTICE, CR_WARN, CR_ERR, CR_ALERT };

/* Who a line concerns: any field may be empty (NULL, 0). */
struct cr_who {
	const char *pool;
	unsigned worker;
	pid_t pid;
};

extern enum cr_level cr_log_level;
extern int cr_log_journal;	/* lines go to the journal, with fields */

/* Whether stderr is the journal (JOURNAL_STREAM); sets cr_log_journal. */
int cr_log_detect_journal(void);

void cr_log(enum cr_level level, const struct cr_who *who, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int cr_log_level_parse(const char *name);

/* The time as log lines start with it: RFC 3339, local, to the ms,
 * "2026-12-05T14:45:01.123+01:00". Returns its length. */
size_t cr_log_stamp(char *buf, size_t n);
/* In corrald: the fd its stderr lines go to (its own non-blocking
 * description of a pipe or terminal, else 2). */
int cr_log_stderr_fd(void);
/* In a worker whose stderr is a pipe to corrald: corral's own lines (a
 * Lua worker's) go to fd instead, corrald's stderr kept as it was. */
void cr_log_keep_stderr(int fd);

#define cr_debug(who, ...) do { if (cr_log_level <= CR_DEBUG) cr_log(CR_DEBUG, who, __VA_ARGS__); } while (0)
#define cr_info(who, ...) cr_log(CR_INFO, who, __VA_ARGS__)
#define cr_notice(who, ...) cr_log(CR_NOTICE, who, __VA_ARGS__)
#define cr_warn(who, ...) cr_log(CR_WARN, who, __VA_ARGS__)
#define cr_error(who, ...) cr_log(CR_ERR, who, __VA_ARGS__)
#define cr_alert(who, ...) cr_log(CR_ALERT, who, __VA_ARGS__)

#endif
