/* status.h: the status report of pools and workers. */
#ifndef CR_STATUS_H
#define CR_STATUS_H

struct cr_buf;

/* status [POOL]: as JSON (the "pools" array of corralctl's answer) or as
 * the table corralctl prints. 0, or -ENOENT for an unknown pool. */
int cr_status_report(struct cr_buf *b, const char *pool, int json);
/* Both at once, each worker's process and cgroup looked at once for the
 * two: the JSON into json, the table into text (either may be NULL). */
int cr_status_reports(struct cr_buf *json, struct cr_buf *text, const char *pool);

/* A pool's (id 0) or a worker's load reports, for corral.stats(). */
struct cr_load {
	unsigned busy, idle;		/* a pool's workers now busy and idle */
	const char *load;		/* a worker's: "busy", "idle" or NULL */
	double load_for;		/* seconds in it, or -1 */
	unsigned long long requests;	/* reported served, in all */
	double last_request_ago;	/* seconds, or -1: none yet */
};
/* 0, -ENOENT (no such pool) or -ESRCH (no such worker). */
int cr_status_load(const char *pool, unsigned id, struct cr_load *out);

#endif
