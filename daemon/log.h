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

#define cr_debug(who, ...) do { if (cr_log_level <= CR_DEBUG) cr_log(CR_DEBUG, who, __VA_ARGS__); } while (0)
#define cr_info(who, ...) cr_log(CR_INFO, who, __VA_ARGS__)
#define cr_notice(who, ...) cr_log(CR_NOTICE, who, __VA_ARGS__)
#define cr_warn(who, ...) cr_log(CR_WARN, who, __VA_ARGS__)
#define cr_error(who, ...) cr_log(CR_ERR, who, __VA_ARGS__)
#define cr_alert(who, ...) cr_log(CR_ALERT, who, __VA_ARGS__)

#endif
