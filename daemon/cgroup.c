/*
 * cgroup.c: the cgroup v2 filesystem, as files and directories. Knows
 * nothing of pools or workers; supervisor.c decides what goes where.
 * Every function returns 0 (or a count) on success and -errno on error.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"

int cr_cgroup_mount(char *buf, size_t n)
{
	char line[4096];
	FILE *f = fopen("/proc/self/mountinfo", "re");
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof line, f)) {
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS...] - FSTYPE SRC SUPEROPTS */
		char *sep = strstr(line, " - "), mnt[PATH_MAX];
		if (!sep || strncmp(sep + 3, "cgroup2 ", 8) != 0)
			continue;
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1)
			continue;
		if ((size_t)snprintf(buf, n, "%s", mnt) >= n) {
			rc = -ENAMETOOLONG;
			break;
		}
		rc = 0;
		break;
	}
	fclose(f);
	return rc;
}

int cr_cgroup_of(pid_t pid, char *buf, size_t n)
{
	char path[64], line[PATH_MAX + 16];
	FILE *f;
	int rc = -ENOENT;

	snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "0::", 3) != 0)
			continue;
		line[strcspn(line, "\n")] = 0;
		rc = (size_t)snprintf(buf, n, "%s", line + 3) >= n ? -ENAMETOOLONG : 0;
		break;
	}
	fclose(f);
	return rc;
}

int cr_cgroup_delegated(const char *dir)
{
	char v[8];
	ssize_t n = getxattr(dir, "trusted.delegate", v, sizeof v);

	if (n <= 0)
		n = getxattr(dir, "user.delegate", v, sizeof v);
	return n > 0 && v[0] == '1';
}

int cr_cgroup_owned(const char *dir)
{
	char procs[PATH_MAX];
	struct stat st;

	snprintf(procs, sizeof procs, "%s/cgroup.procs", dir);
	return stat(dir, &st) == 0 && st.st_uid == geteuid() && stat(procs, &st) == 0 && st.st_uid == geteuid();
}

int cr_cgroup_mkdir(const char *dir)
{
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int cr_cgroup_chown(const char *dir, const char *file, uid_t uid)
{
	char path[PATH_MAX];

	snprintf(path, sizeof path, "%s/%s", dir, file);
	return chown(path, uid, (gid_t)-1) < 0 ? -errno : 0;
}

int cr_cgroup_rmdir(const char *dir)
{
	if (rmdir(dir) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int cr_cgroup_open(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

static int file_path(char *buf, size_t n, const char *dir, const char *file)
{
	return (size_t)snprintf(buf, n, "%s/%s", dir, file) >= n ? -ENAMETOOLONG : 0;
}

int cr_cgroup_write(const char *dir, const char *file, const char *value)
{
	char path[PATH_MAX];
	size_t len = strlen(value);
	ssize_t w;
	int fd, rc;

	if ((rc = file_path(path, sizeof path, dir, file)) < 0)
		return rc;
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	w = write(fd, value, len);
	rc = w < 0 ? -errno : (size_t)w != len ? -EIO : 0;
	close(fd);
	return rc;
}

ssize_t cr_cgroup_read(const char *dir, const char *file, char *buf, size_t n)
{
	char path[PATH_MAX];
	size_t got = 0;
	ssize_t r;
	int fd, rc;

	if (n == 0)
		return -EINVAL;
	if ((rc = file_path(path, sizeof path, dir, file)) < 0)
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (got < n - 1 && (r = read(fd, buf + got, n - 1 - got)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			close(fd);
			return rc;
		}
		got += (size_t)r;
	}
	close(fd);
	buf[got] = 0;
	return (ssize_t)got;
}

int cr_cgroup_key(const char *dir, const char *file, const char *key, long long *value)
{
	char buf[4096];
	size_t klen = strlen(key);
	ssize_t n = cr_cgroup_read(dir, file, buf, sizeof buf);

	if (n < 0)
		return (int)n;
	for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
			*value = strtoll(line + klen + 1, NULL, 10);
			return 0;
		}
	}
	return -ENOENT;
}

int cr_cgroup_attach(const char *dir, pid_t pid)
{
	char v[24];

	snprintf(v, sizeof v, "%d", (int)pid);
	return cr_cgroup_write(dir, "cgroup.procs", v);
}

int cr_cgroup_populated(const char *dir)
{
	long long v;
	int rc = cr_cgroup_key(dir, "cgroup.events", "populated", &v);

	return rc < 0 ? rc : v != 0;
}

int cr_cgroup_kill(const char *dir)
{
	char buf[65536];
	int rc = cr_cgroup_write(dir, "cgroup.kill", "1");

	if (rc != -ENOENT)
		return rc;
	/* before 5.14: kill what is listed until nothing is (new forks race
	 * with us, so go round again while anything was found) */
	for (int round = 0; round < 100; round++) {
		ssize_t n = cr_cgroup_read(dir, "cgroup.procs", buf, sizeof buf);
		int found = 0;
		if (n < 0)
			return (int)n;
		for (char *p = buf; *p;) {
			char *end;
			long pid = strtol(p, &end, 10);
			if (end == p)
				break;
			if (pid > 0 && kill((pid_t)pid, SIGKILL) == 0)
				found = 1;
			p = end + (*end == '\n');
		}
		if (!found)
			return 0;
	}
	return -EBUSY;
}

/* Removes dir's children first, then dir; kills what is in each. */
static int destroy(const char *dir, int *count)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char sub[PATH_MAX];
	int rc = 0;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d))) {
		if (e->d_type != DT_DIR || e->d_name[0] == '.')
			continue;
		if (file_path(sub, sizeof sub, dir, e->d_name) == 0) {
			int r = destroy(sub, count);
			if (r < 0)
				rc = r;
		}
	}
	closedir(d);
	cr_cgroup_kill(dir);
	/* processes leave their cgroup when they exit, zombie or not; wait
	 * a bounded while for that */
	for (int i = 0; i < 200 && cr_cgroup_populated(dir) > 0; i++)
		nanosleep(&(struct timespec){ 0, 5 * 1000 * 1000 }, NULL);
	if (rmdir(dir) == 0)
		(*count)++;
	else if (errno != ENOENT)
		rc = -errno;
	return rc;
}

int cr_cgroup_destroy(const char *dir)
{
	int count = 0, rc = destroy(dir, &count);

	return rc < 0 ? rc : count;
}

int cr_cgroup_has_controller(const char *dir, const char *file, const char *controller)
{
	char buf[512];
	size_t n = strlen(controller);
	ssize_t r = cr_cgroup_read(dir, file, buf, sizeof buf);

	if (r < 0)
		return 0;
	for (char *p = buf; (p = strstr(p, controller)); p += n) {
		if ((p == buf || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\n' || p[n] == 0))
			return 1;
	}
	return 0;
}

/* A small file of the cgroup sub below dirfd ("." for dirfd's own), read
 * whole: its length, or -errno. One read is enough when it comes back
 * short: kernfs answers a read of a file this small from one snapshot. */
static ssize_t read_at(int dirfd, const char *sub, const char *file, char *buf, size_t n)
{
	char path[PATH_MAX];
	size_t got = 0;
	ssize_t r;
	int fd;

	if ((size_t)snprintf(path, sizeof path, "%s/%s", sub, file) >= sizeof path)
		return -ENAMETOOLONG;
	if ((fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	while (got < n - 1) {
		r = read(fd, buf + got, n - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
		if (got < n - 1)
			break;
	}
	close(fd);
	buf[got] = 0;
	return (ssize_t)got;
}

static long long number_at(int dirfd, const char *sub, const char *file)
{
	char buf[64];
	ssize_t n = read_at(dirfd, sub, file, buf, sizeof buf);

	return n > 0 && buf[0] >= '0' && buf[0] <= '9' ? strtoll(buf, NULL, 10) : -1;
}

/* The value of "key N" in a flat-keyed file's text, or -1. */
static long long key_in(const char *text, const char *key)
{
	size_t klen = strlen(key);

	for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
		if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
			return strtoll(line + klen + 1, NULL, 10);
	return -1;
}

unsigned cr_cgroup_stats_enabled(int dirfd, const char *sub, const char *file)
{
	char buf[512], *save;
	unsigned mask = CR_STAT_CPU;

	if (read_at(dirfd, sub, file, buf, sizeof buf) < 0)
		return mask;
	for (char *w = strtok_r(buf, " \n", &save); w; w = strtok_r(NULL, " \n", &save)) {
		if (!strcmp(w, "memory"))
			mask |= CR_STAT_MEMORY | CR_STAT_MEMORY_MORE;
		else if (!strcmp(w, "pids"))
			mask |= CR_STAT_PIDS;
	}
	return mask;
}

void cr_cgroup_stats_at(int dirfd, const char *sub, unsigned want, struct cr_cgroup_stats *st)
{
	char buf[1024];

	*st = (struct cr_cgroup_stats){ -1, -1, -1, -1, -1, -1, -1 };
	if (want & CR_STAT_MEMORY)
		st->memory_current = number_at(dirfd, sub, "memory.current");
	if (want & CR_STAT_MEMORY_MORE) {
		st->memory_peak = number_at(dirfd, sub, "memory.peak");
		if (read_at(dirfd, sub, "memory.events", buf, sizeof buf) >= 0)
			st->oom_kills = key_in(buf, "oom_kill");
	}
	if (want & CR_STAT_PIDS)
		st->pids_current = number_at(dirfd, sub, "pids.current");
	/* every cgroup has cpu.stat: its usage keys whatever the controllers */
	if ((want & CR_STAT_CPU) && read_at(dirfd, sub, "cpu.stat", buf, sizeof buf) >= 0) {
		st->cpu_usage_usec = key_in(buf, "usage_usec");
		st->cpu_user_usec = key_in(buf, "user_usec");
		st->cpu_system_usec = key_in(buf, "system_usec");
	}
}

long long cr_cgroup_cpu_usage_fd(int fd)
{
	char buf[1024];
	ssize_t n;

	do
		n = pread(fd, buf, sizeof buf - 1, 0);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	return key_in(buf, "usage_usec");
}

void cr_cgroup_stats(const char *dir, struct cr_cgroup_stats *st)
{
	int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);

	cr_cgroup_stats_at(fd, ".", fd < 0 ? 0 : cr_cgroup_stats_enabled(fd, ".", "cgroup.controllers"), st);
	if (fd >= 0)
		close(fd);
}
