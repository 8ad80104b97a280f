/* cgroup.h: cgroup v2 files and directories; nothing about pools. */
#ifndef CR_CGROUP_H
#define CR_CGROUP_H

#include <stddef.h>
#include <sys/types.h>

/* The cgroup2 mount point, from /proc/self/mountinfo. 0 or -errno. */
int cr_cgroup_mount(char *buf, size_t n);
/* The cgroup of pid, as a path below the mount ("/a/b"). 0 or -errno. */
int cr_cgroup_of(pid_t pid, char *buf, size_t n);
/* Whether systemd delegated dir to us (trusted.delegate / user.delegate). */
int cr_cgroup_delegated(const char *dir);

int cr_cgroup_mkdir(const char *dir);
/* Whether corrald's user owns the cgroup and its cgroup.procs: given to
 * it (a delegation without the xattr that says so). */
int cr_cgroup_owned(const char *dir);
/* Gives a file of the cgroup to uid (a delegation). 0 or -errno. */
int cr_cgroup_chown(const char *dir, const char *file, uid_t uid);
int cr_cgroup_rmdir(const char *dir);
/* A directory fd for clone3(CLONE_INTO_CGROUP). */
int cr_cgroup_open(const char *dir);
int cr_cgroup_write(const char *dir, const char *file, const char *value);
/* Reads a file whole into buf (NUL-terminated); bytes read or -errno. */
ssize_t cr_cgroup_read(const char *dir, const char *file, char *buf, size_t n);
/* The value of "key N" in a flat-keyed file such as cgroup.events. */
int cr_cgroup_key(const char *dir, const char *file, const char *key, long long *value);
int cr_cgroup_attach(const char *dir, pid_t pid);
int cr_cgroup_populated(const char *dir);
/* Kills every process in dir: cgroup.kill, or SIGKILL to each pid in
 * cgroup.procs until it is empty on kernels without it. */
int cr_cgroup_kill(const char *dir);
/* Kills and removes dir and every cgroup below it; waits (bounded) for
 * them to empty. Returns the number of cgroups removed or -errno. */
int cr_cgroup_destroy(const char *dir);
/* Whether the controller (e.g. "memory") is listed in dir's file
 * (cgroup.controllers or cgroup.subtree_control). */
int cr_cgroup_has_controller(const char *dir, const char *file, const char *controller);

/* What a cgroup has used; -1 where the kernel does not say. */
struct cr_cgroup_stats {
	long long memory_current, memory_peak;
	long long cpu_usage_usec, cpu_user_usec, cpu_system_usec;
	long long pids_current, oom_kills;
};

/* Which stats to read, by the files they come from. */
#define CR_STAT_CPU 1u		/* cpu.stat: every cgroup has it */
#define CR_STAT_MEMORY 2u	/* memory.current */
#define CR_STAT_MEMORY_MORE 4u	/* memory.peak, memory.events */
#define CR_STAT_PIDS 8u		/* pids.current */

/* The stats of dir: those its controllers give (cgroup.controllers). */
void cr_cgroup_stats(const char *dir, struct cr_cgroup_stats *st);
/* The stats whose files exist in the cgroup sub below dirfd ("." for
 * dirfd's own) as file says: "cgroup.controllers" for sub itself,
 * "cgroup.subtree_control" for its children. */
unsigned cr_cgroup_stats_enabled(int dirfd, const char *sub, const char *file);
/* The wanted stats of the cgroup sub below dirfd, the others -1: no
 * file that is not there is looked for, and no path walked from "/". */
void cr_cgroup_stats_at(int dirfd, const char *sub, unsigned want, struct cr_cgroup_stats *st);
/* usage_usec of a cpu.stat file kept open (read again from its start:
 * no path lookup), or -1. */
long long cr_cgroup_cpu_usage_fd(int fd);

#endif
