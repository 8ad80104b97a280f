/*
 * fdneed.c: the open files corrald holds for the pools it runs, against
 * its soft RLIMIT_NOFILE (raised to the hard limit at start: spawn.c). A
 * config, at start or reload, or a scale that would run corrald out of
 * file descriptors is refused, naming the pool, the fds it needs and the
 * limit: running out later would fail spawns one by one, far from why.
 *
 * What corrald holds (worker.c, proto.c): per worker its pidfd, its
 * cgroup's cpu.stat (for status), and its
 * channel while it starts, or for good when its body is Lua (start), and
 * the pipe of its output when corrald pumps it (output.c);
 * per pool its prototype's socket and pidfd (and a retired one's while it
 * goes) and its listening sockets. The base is corrald's own: stdio, the
 * log, the event loop, inotify, the notify and control sockets and up to
 * 128 control connections, plugins' files and PSI triggers.
 */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "config.h"
#include "fdneed.h"
#include "output.h"
#include "pool.h"

#define FDS_BASE 192
/* a prototype's socket and pidfd, and a retired one's */
#define FDS_PER_POOL 4
/* spawn requests in flight per prototype (supervisor.c's MAX_INFLIGHT) */
#define INFLIGHT 32

static unsigned long long pool_need(const struct cr_pool_conf *pc, unsigned workers)
{
	/* one worker above the count during a rolling replacement */
	unsigned long long w = workers + 1ULL;
	/* channels: every worker's with a Lua body, else those starting */
	unsigned long long chans = pc->ref_start != CR_NOREF ? w : w < INFLIGHT ? w : INFLIGHT;

	/* its output's pipes, and the file they go to */
	unsigned long long out = cr_output_kind(pc) == CR_OUTPUT_DIRECT ? 0
			       : w + (cr_output_kind(pc) == CR_OUTPUT_FILE);

	/* pidfds and cpu.stat files */
	return FDS_PER_POOL + pc->nlisten + 2 * w + chans + out;
}

static unsigned long long limit(void)
{
	struct rlimit rl;

	return getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ? ~0ULL : rl.rlim_cur;
}

static int refuse(const char *pool, unsigned workers, unsigned long long need,
		  unsigned long long max, char *err, size_t n)
{
	snprintf(err, n, "pool \"%s\": %u worker%s would need about %llu open files in corrald, above its "
		 "limit of %llu (RLIMIT_NOFILE; corrald raises its soft limit to the hard one): raise the "
		 "hard limit (LimitNOFILE= in the unit, ulimit -Hn, prlimit) or run fewer workers",
		 pool, workers, workers == 1 ? "" : "s", need, max);
	return -1;
}

int cr_fdneed_config(const struct cr_config *conf, char *err, size_t n)
{
	unsigned long long need = FDS_BASE, max = limit();

	for (unsigned i = 0; i < conf->npools; i++) {
		need += pool_need(conf->pools[i], conf->pools[i]->workers);
		if (need > max)
			return refuse(conf->pools[i]->name, conf->pools[i]->workers, need, max, err, n);
	}
	return 0;
}

int cr_fdneed_scale(const char *name, unsigned workers, char *err, size_t n)
{
	unsigned long long need = FDS_BASE, max = limit();
	struct cr_pool *pool;

	TAILQ_FOREACH(pool, &cr_sv.pools, link) {
		/* a removed pool holds its workers' until they are gone */
		unsigned w = !strcmp(pool->name, name) ? workers
			   : pool->state == POOL_REMOVED ? pool->nworkers : pool->target;
		need += pool_need(pool->conf, w);
	}
	return need > max ? refuse(name, workers, need, max, err, n) : 0;
}
