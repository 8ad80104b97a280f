/*
 * bare.c: the baseline of the benchmarks (t/bench/bench.pl): the least a
 * supervisor must do to start a worker in its own cgroup and know it is
 * ready. Per child: mkdir of a cgroup below this program's own cgroup
 * directory, clone3(CLONE_INTO_CGROUP) into it, exec of PROG, and receipt
 * of the child's READY=1 datagram on this program's notify socket.
 *
 *   bare [-g CGROUP] spawn N PROG [ARGS]  start N children; print the
 *                                         milliseconds until N are ready
 *   bare [-g CGROUP] serve N PROG [ARGS]  keep N children, each exit
 *                                         refilled (new cgroup, clone3,
 *                                         exec); print "up MS" once N are
 *                                         ready; run until TERM or INT
 *
 * CGROUP is below the cgroup2 mount (default /corral-bench-bare-PID); it
 * is created here, and it and every child cgroup are removed at the end.
 * Children get NOTIFY_SOCKET, PATH and this program's BENCH_FIFO.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <mntent.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct child {
	pid_t pid;
	unsigned cg;            /* its cgroup: BASE/wCG */
};

static char base[4096];         /* this program's cgroup directory */
static struct child *kids;
static unsigned nkids, seq, nready;
static int notify_fd, sig_fd;
static char **child_argv, *child_env[4];
static unsigned *stale;         /* cgroups that would not go at once */
static unsigned nstale;

static void die(const char *what)
{
	fprintf(stderr, "bare: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The cgroup2 mount point, from /proc/self/mounts. */
static int cgroup2_mount(char *out, size_t size)
{
	FILE *f = setmntent("/proc/self/mounts", "r");
	struct mntent *m;
	int found = -1;

	if (!f)
		return -1;
	while (found < 0 && (m = getmntent(f)))
		if (strcmp(m->mnt_type, "cgroup2") == 0 &&
		    (size_t)snprintf(out, size, "%s", m->mnt_dir) < size)
			found = 0;
	endmntent(f);
	return found;
}

static void cg_path(char *out, size_t size, unsigned cg)
{
	snprintf(out, size, "%s/w%u", base, cg);
}

/* rmdir of a child's cgroup; one still busy is retried at the end. */
static void cg_remove(unsigned cg)
{
	char path[4200];

	cg_path(path, sizeof path, cg);
	if (rmdir(path) < 0 && errno != ENOENT)
		stale[nstale++] = cg;
}

/* A fresh cgroup, clone3 into it, exec: the child in slot I. */
static void spawn(unsigned i)
{
	struct clone_args args;
	char path[4200];
	sigset_t none;
	int fd;
	pid_t pid;

	kids[i].cg = ++seq;
	cg_path(path, sizeof path, kids[i].cg);
	if (mkdir(path, 0755) < 0)
		die(path);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		die(path);
	memset(&args, 0, sizeof args);
	args.flags = CLONE_INTO_CGROUP;
	args.exit_signal = SIGCHLD;
	args.cgroup = (uint64_t)fd;
	pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
	if (pid < 0) {
		fprintf(stderr, "bare: clone3(CLONE_INTO_CGROUP) into %s failed: %s\n", path, strerror(errno));
		exit(1);
	}
	if (pid == 0) {
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execve(child_argv[0], child_argv, child_env);
		_exit(127);
	}
	close(fd);
	kids[i].pid = pid;
}

/* Every datagram waiting on the notify socket; counts READY=1. */
static void drain_notify(void)
{
	char buf[4097];
	ssize_t n;

	while ((n = recv(notify_fd, buf, sizeof buf - 1, 0)) >= 0) {
		buf[n] = '\0';
		if (strstr(buf, "READY=1"))
			nready++;
	}
	if (errno != EAGAIN)
		die("recv notify");
}

/* Reaps exited children, each refilled when REFILL; 1 on TERM/INT. */
static int handle_signals(int refill)
{
	struct signalfd_siginfo si;
	int status, stop = 0;
	pid_t pid;

	while (read(sig_fd, &si, sizeof si) == sizeof si)
		if (si.ssi_signo != SIGCHLD)
			stop = 1;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		for (unsigned i = 0; i < nkids; i++) {
			if (kids[i].pid != pid)
				continue;
			kids[i].pid = 0;
			cg_remove(kids[i].cg);
			if (refill && !stop)
				spawn(i);
			break;
		}
	return stop;
}

/* Waits for the notify socket or a signal; 1 on TERM/INT. */
static int wait_events(int refill)
{
	struct pollfd p[2] = { { notify_fd, POLLIN, 0 }, { sig_fd, POLLIN, 0 } };

	if (poll(p, 2, -1) < 0) {
		if (errno == EINTR)
			return 0;
		die("poll");
	}
	if (p[0].revents)
		drain_notify();
	return p[1].revents ? handle_signals(refill) : 0;
}

/* The notify socket, abstract: @corral-bench-bare/PID/notify. */
static void open_notify(char *name, size_t size)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len;

	snprintf(name, size, "@corral-bench-bare/%d/notify", (int)getpid());
	len = strlen(name);
	memcpy(sa.sun_path, name, len);
	sa.sun_path[0] = '\0';
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (notify_fd < 0 ||
	    bind(notify_fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
		die("notify socket");
}

/* Kills and reaps every child, removes every cgroup and the base. */
static void cleanup(void)
{
	for (unsigned i = 0; i < nkids; i++)
		if (kids[i].pid > 0)
			kill(kids[i].pid, SIGKILL);
	for (unsigned i = 0; i < nkids; i++)
		if (kids[i].pid > 0) {
			waitpid(kids[i].pid, NULL, 0);
			cg_remove(kids[i].cg);
		}
	for (int tries = 0; nstale > 0 && tries < 100; tries++) {
		unsigned n = nstale;

		nstale = 0;
		usleep(tries ? 10000 : 0);
		for (unsigned i = 0; i < n; i++)
			cg_remove(stale[i]);
	}
	if (nstale > 0)
		fprintf(stderr, "bare: %u cgroups left in %s\n", nstale, base);
	else if (rmdir(base) < 0)
		fprintf(stderr, "bare: rmdir %s: %s\n", base, strerror(errno));
}

static void usage(void)
{
	fprintf(stderr, "usage: bare [-g CGROUP] spawn|serve N PROG [ARGS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static char notify_env[200], fifo_env[4200], mount[1024];
	const char *rel = NULL, *fifo = getenv("BENCH_FIFO");
	int serve, stop = 0;
	sigset_t mask;
	double t0;
	long n;

	if (argc > 2 && strcmp(argv[1], "-g") == 0) {
		rel = argv[2];
		argv += 2;
		argc -= 2;
	}
	if (argc < 4)
		usage();
	serve = strcmp(argv[1], "serve") == 0;
	if (!serve && strcmp(argv[1], "spawn") != 0)
		usage();
	n = strtol(argv[2], NULL, 10);
	if (n <= 0 || n > 100000)
		usage();
	nkids = (unsigned)n;
	child_argv = argv + 3;

	if (cgroup2_mount(mount, sizeof mount) < 0) {
		fprintf(stderr, "bare: no cgroup2 mount\n");
		return 1;
	}
	if (rel)
		snprintf(base, sizeof base, "%s%s", mount, rel);
	else
		snprintf(base, sizeof base, "%s/corral-bench-bare-%d", mount, (int)getpid());
	kids = calloc(nkids, sizeof *kids);
	stale = calloc(nkids * 2 + 64, sizeof *stale);
	if (!kids || !stale)
		die("calloc");

	open_notify(notify_env + 14, sizeof notify_env - 14);
	memcpy(notify_env, "NOTIFY_SOCKET=", 14);
	child_env[0] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	child_env[1] = notify_env;
	if (fifo) {
		snprintf(fifo_env, sizeof fifo_env, "BENCH_FIFO=%s", fifo);
		child_env[2] = fifo_env;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sig_fd < 0)
		die("signalfd");
	if (mkdir(base, 0755) < 0)
		die(base);

	/* start N, reading READY datagrams as they come */
	t0 = now_ms();
	for (unsigned i = 0; i < nkids; i++) {
		spawn(i);
		drain_notify();
	}
	while (!stop && nready < nkids)
		stop = wait_events(serve);
	if (!serve)
		printf("%.3f\n", now_ms() - t0);
	else if (!stop)
		printf("up %.3f\n", now_ms() - t0);
	fflush(stdout);
	while (serve && !stop)
		stop = wait_events(1);
	cleanup();
	return 0;
}
