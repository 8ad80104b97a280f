/* fdneed.h: whether corrald's open files limit holds what its pools need. */
#ifndef CR_FDNEED_H
#define CR_FDNEED_H

#include <stddef.h>

struct cr_config;

/* 0, or -1 with a message in err naming the pool that goes over. */
int cr_fdneed_config(const struct cr_config *conf, char *err, size_t n);
/* The running pools, with pool scaled to workers. */
int cr_fdneed_scale(const char *pool, unsigned workers, char *err, size_t n);

#endif
