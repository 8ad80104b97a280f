/*
 * spawn.c: how corral's processes are born. cr_spawn_clone() is the one
 * place that creates a process (prototypes and workers alike); the worker's
 * path from birth to exec is here too, run in the child, where it touches
 * nothing shared and reports a failure as (step, errno) on its channel.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>

#include <systemd/sd-journal.h>
#include <unistd.h>

#include "config.h"
#include "crlua.h"
#include "isolate.h"
#include "log.h"
#include "notify.h"
#include "output.h"
#include "spawn.h"
#include "unixmsg.h"

extern char **environ;

int cr_spawn_force_pipe_placement;

/* clone3 into the cgroup; -1 with errno when the kernel cannot. */
static pid_t clone_into(int *pidfd, int cgroup_fd, int ns_flags)
{
	struct clone_args args;

	memset(&args, 0, sizeof args);
	args.flags = CLONE_PIDFD | CLONE_INTO_CGROUP | (uint64_t)(unsigned)ns_flags;
	args.pidfd = (uint64_t)(uintptr_t)pidfd;
	args.exit_signal = SIGCHLD;
	args.cgroup = (uint64_t)cgroup_fd;
	return (pid_t)syscall(SYS_clone3, &args, sizeof args);
}

/* The fallback: the child waits on a pipe until the parent has written
 * it into cgroup.procs, so it runs none of its own code outside. */
static pid_t fork_then_place(int *pidfd, int cgroup_fd, int ns_flags)
{
	int gate[2], procs, e;
	char pidstr[24], c;
	pid_t pid;
	ssize_t n;

	if (pipe2(gate, O_CLOEXEC) < 0)
		return -1;
	/* a fork, into new namespaces when asked */
	pid = ns_flags ? (pid_t)syscall(SYS_clone, SIGCHLD | ns_flags, NULL, NULL, NULL, 0) : fork();
	if (pid < 0)
		goto fail_pipe;
	if (pid == 0) {
		close(gate[1]);
		while ((n = read(gate[0], &c, 1)) < 0 && errno == EINTR)
			;
		if (n != 1)
			_exit(127);	/* the parent could not place us */
		close(gate[0]);
		return 0;
	}
	close(gate[0]);
	*pidfd = pidfd_open(pid, 0);	/* not yet reaped: pid is ours */
	procs = openat(cgroup_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
	snprintf(pidstr, sizeof pidstr, "%d", (int)pid);
	if (*pidfd < 0 || procs < 0 || write(procs, pidstr, strlen(pidstr)) < 0) {
		e = errno;
		if (procs >= 0)
			close(procs);
		if (*pidfd >= 0)
			close(*pidfd);
		*pidfd = -1;
		close(gate[1]);	/* the child exits without running */
		waitpid(pid, NULL, 0);
		errno = e;
		return -1;
	}
	close(procs);
	(void)!write(gate[1], "g", 1);
	close(gate[1]);
	return pid;
fail_pipe:
	e = errno;
	close(gate[0]);
	close(gate[1]);
	errno = e;
	return -1;
}

pid_t cr_spawn_clone_ns(int *pidfd, int cgroup_fd, int ns_flags)
{
	static int no_clone_into;
	pid_t pid;

	*pidfd = -1;
	if (!no_clone_into && !cr_spawn_force_pipe_placement) {
		pid = clone_into(pidfd, cgroup_fd, ns_flags);
		if (pid >= 0 || (errno != ENOSYS && errno != E2BIG && errno != EINVAL))
			return pid;
		no_clone_into = 1;	/* an older kernel: use the pipe from now on */
	}
	return fork_then_place(pidfd, cgroup_fd, ns_flags);
}

pid_t cr_spawn_clone(int *pidfd, int cgroup_fd)
{
	return cr_spawn_clone_ns(pidfd, cgroup_fd, 0);
}

const char *cr_spawn_step_name(int step)
{
	static const char *const names[] = {
		[CR_STEP_SIGNALS] = "reset signals", [CR_STEP_SESSION] = "start a session",
		[CR_STEP_STDIN] = "set up stdin and fds", [CR_STEP_CHDIR] = "change directory",
		[CR_STEP_SETGROUPS] = "set groups", [CR_STEP_SETGID] = "set group id",
		[CR_STEP_SETUID] = "set user id", [CR_STEP_ENV] = "build the environment",
		[CR_STEP_EXEC] = "exec", [CR_STEP_HOOK] = "run a hook",
		[CR_STEP_OUTPUT] = "open the output",
		[CR_STEP_NAMESPACE] = "make its cgroup namespace (isolation.namespaces)",
		[CR_STEP_CAPS] = "set its capabilities (isolation.capabilities)",
	};

	if (step < 0 || step > CR_STEP_CAPS)
		return "start";
	return names[step];
}

static void __attribute__((noreturn)) fail(int chan, int step)
{
	cr_chan_send(chan, CR_CHAN_ERROR, step, errno);
	_exit(127);
}

static int reset_signals(void)
{
	struct sigaction sa = { .sa_handler = SIG_DFL };
	sigset_t none;

	sigemptyset(&none);
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &sa, NULL);	/* EINVAL for KILL/STOP: fine */
	return sigprocmask(SIG_SETMASK, &none, NULL);
}

/* after_lua: the Lua body ran and may have changed signal handling */
static void exec_argv(char *const *argv, int after_lua)
{
	fflush(NULL);
	if (after_lua && reset_signals() < 0)
		return;
	execvp(argv[0], argv);	/* searches the worker's own PATH */
}

/* The pool's environment and CORRAL_WORKER, as this process's own, so
 * that Lua hooks see it too (os.getenv) and exec passes it on. */
static int set_environment(const struct cr_pool_conf *pc, unsigned id)
{
	static char idvar[32], notify[96], wdpid[32], lfds[32], lpid[32];
	size_t n = 0;
	char **envp;

	while (pc->envp[n])
		n++;
	envp = calloc(n + 8, sizeof *envp);
	if (!envp)
		return -1;
	memcpy(envp, pc->envp, n * sizeof *envp);
	snprintf(idvar, sizeof idvar, "CORRAL_WORKER=%u", id);
	envp[n++] = idvar;
	/* corrald's own socket, never its service manager's: by a path
	 * where its abstract name cannot be reached */
	if (cr_notify_socket()) {
		const char *sock = !cr_isolate_notify_by_path(pc) ? cr_notify_socket()
				   : pc->isolation.rootfs ? CR_ISOLATE_NOTIFY_INSIDE : cr_notify_path();
		snprintf(notify, sizeof notify, "NOTIFY_SOCKET=%s", sock ? sock : "");
		envp[n++] = notify;
	}
	if (pc->watchdog > 0) {
		snprintf(wdpid, sizeof wdpid, "WATCHDOG_PID=%d", (int)getpid());
		envp[n++] = wdpid;
	}
	if (pc->nlisten > 0) {
		size_t len = 16;
		char *names;
		for (unsigned i = 0; i < pc->nlisten; i++)
			len += strlen(pc->listen_names[i]) + 1;
		names = malloc(len);
		if (!names)
			return -1;
		strcpy(names, "LISTEN_FDNAMES=");
		for (unsigned i = 0; i < pc->nlisten; i++) {
			if (i)
				strcat(names, ":");
			strcat(names, pc->listen_names[i]);
		}
		snprintf(lfds, sizeof lfds, "LISTEN_FDS=%u", pc->nlisten);
		snprintf(lpid, sizeof lpid, "LISTEN_PID=%d", (int)getpid());
		envp[n++] = lfds;
		envp[n++] = names;
		envp[n++] = lpid;
	}
	environ = envp;
	return 0;
}

/* Moves everything to fresh fds above the target range first, then into
 * place: no move can clobber an fd still to be moved. *logfd (corrald's
 * stderr kept for corral's own lines, or -1) goes after the channel,
 * close-on-exec. Returns the channel's new fd, or -(old chan) - 1 on
 * error. */
static int place_fds(const struct cr_pool_conf *pc, int chan, int *logfd)
{
	unsigned n = pc->nlisten;
	int hi[n + 1], c, l = -1;

	for (unsigned i = 0; i < n; i++)
		if ((hi[i] = fcntl(pc->listen_fds[i], F_DUPFD_CLOEXEC, (int)n + 5)) < 0)
			return -chan - 1;
	if ((c = fcntl(chan, F_DUPFD_CLOEXEC, (int)n + 5)) < 0)
		return -chan - 1;
	if (*logfd >= 0 && (l = fcntl(*logfd, F_DUPFD_CLOEXEC, (int)n + 5)) < 0)
		return -c - 1;
	for (unsigned i = 0; i < n; i++)
		if (dup2(hi[i], 3 + (int)i) < 0)	/* dup2: not close-on-exec */
			return -c - 1;
	if (dup3(c, 3 + (int)n, O_CLOEXEC) < 0)
		return -c - 1;
	if (l >= 0 && dup3(l, 4 + (int)n, O_CLOEXEC) < 0)
		return -c - 1;
	*logfd = l >= 0 ? 4 + (int)n : -1;
	close_range(l >= 0 ? 5 + n : 4 + n, ~0U, 0);
	return 3 + (int)n;
}

/* The pipe to corrald as stdout and stderr; for inherit, corrald's
 * stderr is kept (*logfd) for corral's own lines (a Lua worker's), which
 * go there as they are, not as the worker's output. */
static int use_pipe(const struct cr_pool_conf *pc, int out, int *logfd)
{
	*logfd = -1;
	if (out < 0)
		return 0;
	if (cr_output_kind(pc) == CR_OUTPUT_TERMINAL &&
	    (*logfd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3)) < 0)
		return -1;
	if (dup2(out, STDOUT_FILENO) < 0 || dup2(out, STDERR_FILENO) < 0)
		return -1;
	close(out);
	return 0;
}

/* stdout and stderr: the journal (a stream per worker, tagged with the
 * pool), /dev/null, or the pipe corrald reads (output.c) for inherit and
 * a file. The file is corrald's to open, but the worker tries it first,
 * as root (systemd's way): one it cannot open is this worker's failed
 * start, said through its channel, not lines dropped later. */
static int set_output(const struct cr_pool_conf *pc, int pumped)
{
	const char *out = pc->output;
	int fd;

	if (!strcmp(out, "auto"))
		out = cr_log_journal ? "journal" : "inherit";
	if (!strcmp(out, "inherit"))
		return 0;
	if (!strcmp(out, "journal"))
		fd = sd_journal_stream_fd(pc->syslog_identifier, LOG_INFO, 1);
	else if (!strcmp(out, "null"))
		fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	else
		fd = cr_output_open_file(out);
	if (fd < 0) {
		errno = fd < -1 ? -fd : errno;
		return -1;
	}
	if (!pumped && (dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0))
		return -1;
	close(fd);
	return 0;
}

/* ---- a Lua worker's body: asked to stop, sleeping, ready ---- */

static struct {
	int chan;			/* to corrald */
	int stop_signal;		/* 0 outside a Lua worker */
	sigset_t stop_mask;		/* just the pool's stop signal */
} self = { .chan = -1 };

static volatile sig_atomic_t stop_requested;

/* ---- the open files limit ------------------------------------------------ */

/* The soft RLIMIT_NOFILE corrald was started with; its children get it
 * back, so that programs that select() or size tables by it see what they
 * would have without corrald in between. */
static struct rlimit nofile_orig;
static int nofile_raised;

void cr_spawn_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		cr_warn(NULL, "unable to read the open files limit: %s", strerror(errno));
		return;
	}
	nofile_orig = rl;
	if (rl.rlim_cur == rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		/* an infinite hard limit: the kernel allows fs.nr_open at most */
		unsigned long nr_open = 0;
		FILE *f = fopen("/proc/sys/fs/nr_open", "re");

		if (f) {
			if (fscanf(f, "%lu", &nr_open) != 1)
				nr_open = 0;
			fclose(f);
		}
		rl.rlim_cur = nr_open;
		if (nr_open <= nofile_orig.rlim_cur || setrlimit(RLIMIT_NOFILE, &rl) < 0) {
			cr_warn(NULL, "unable to raise the open files limit from %llu: %s",
				(unsigned long long)nofile_orig.rlim_cur, strerror(errno));
			return;
		}
	}
	nofile_raised = 1;
	cr_debug(NULL, "open files limit raised from %llu to %llu (children get %llu)",
		 (unsigned long long)nofile_orig.rlim_cur, (unsigned long long)rl.rlim_cur,
		 (unsigned long long)nofile_orig.rlim_cur);
}

/* Once: a pool's own rlimits, set after it, stay. */
int cr_spawn_restore_nofile(void)
{
	if (!nofile_raised)
		return 0;
	nofile_raised = 0;
	return setrlimit(RLIMIT_NOFILE, &nofile_orig);
}

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* The stop signal is blocked in a Lua worker and caught only while it
 * sleeps, so a pending one is seen here without a race. */
int cr_spawn_stopping(void)
{
	sigset_t pending;
	struct timespec zero = { 0, 0 };

	if (stop_requested || !self.stop_signal)
		return stop_requested;
	if (sigpending(&pending) == 0 && sigismember(&pending, self.stop_signal)) {
		sigtimedwait(&self.stop_mask, NULL, &zero);
		stop_requested = 1;
	}
	return stop_requested;
}

static double monotonic(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int cr_spawn_sleep(double seconds)
{
	double end = monotonic() + seconds, left;
	sigset_t during;

	sigprocmask(SIG_SETMASK, NULL, &during);
	if (self.stop_signal)
		sigdelset(&during, self.stop_signal);
	while (!cr_spawn_stopping() && (left = end - monotonic()) > 0) {
		struct timespec ts;
		if (left > 1e9)
			left = 1e9;	/* math.huge: sleep in long steps, not a bad timeout */
		ts.tv_sec = (time_t)left;
		ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
		ppoll(NULL, 0, &ts, &during);	/* EINTR when the stop signal comes */
	}
	return cr_spawn_stopping();
}

int cr_spawn_ready(void)
{
	return cr_chan_send(self.chan, CR_CHAN_READY, 0, 0);
}

int cr_spawn_load(int busy)
{
	return cr_chan_send(self.chan, busy ? CR_CHAN_BUSY : CR_CHAN_IDLE, 0, 0);
}

int cr_spawn_requests(unsigned n)
{
	struct cr_chan_msg m = { .type = CR_CHAN_REQUESTS, .count = n };

	return cr_chan_send_msg(self.chan, &m);
}

void cr_spawn_worker(const struct cr_pool_conf *pc, unsigned id, unsigned generation, int chan,
		     int out)
{
	char *const *argv = pc->argv;
	int fd, e, logfd;

	if (reset_signals() < 0)
		fail(chan, CR_STEP_SIGNALS);
	/* the prototype has done so already; this is for any other path */
	if (cr_spawn_restore_nofile() < 0)
		fail(chan, CR_STEP_SIGNALS);
	if (setsid() < 0)
		fail(chan, CR_STEP_SESSION);
	if (cr_isolate_worker_early(pc) < 0)
		fail(chan, CR_STEP_NAMESPACE);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || dup2(fd, STDIN_FILENO) < 0)
		fail(chan, CR_STEP_STDIN);
	if (fd != STDIN_FILENO)
		close(fd);
	if (use_pipe(pc, out, &logfd) < 0)
		fail(chan, CR_STEP_OUTPUT);
	/* nothing of the prototype's stays open: the pool's sockets become
	 * fds 3..3+n-1 (LISTEN_FDS), the channel the one after them, and
	 * with inherit corrald's stderr the next (both close-on-exec) */
	if ((chan = place_fds(pc, chan, &logfd)) < 0)
		fail(-chan - 1, CR_STEP_STDIN);
	if (logfd >= 0)
		cr_log_keep_stderr(logfd);
	if (set_output(pc, out >= 0) < 0)
		fail(chan, CR_STEP_OUTPUT);
	if (chdir(pc->directory) < 0)
		fail(chan, CR_STEP_CHDIR);
	if (cr_isolate_worker_bound(pc) < 0)
		fail(chan, CR_STEP_CAPS);
	/* in a user namespace the prototype took its credentials already;
	 * without root, the config may name only corrald's own (isolcheck.c) */
	if (!(pc->isolation.namespaces & CLONE_NEWUSER) && geteuid() == 0) {
		if ((pc->set_uid || pc->set_gid) && setgroups((size_t)pc->ngroups, pc->groups) < 0)
			fail(chan, CR_STEP_SETGROUPS);
		if (pc->set_gid && setresgid(pc->gid, pc->gid, pc->gid) < 0)
			fail(chan, CR_STEP_SETGID);
		if (pc->set_uid && setresuid(pc->uid, pc->uid, pc->uid) < 0)
			fail(chan, CR_STEP_SETUID);
	}
	if (cr_isolate_worker_caps(pc) < 0)
		fail(chan, CR_STEP_CAPS);
	if (set_environment(pc, id) < 0)
		fail(chan, CR_STEP_ENV);

	/* the Lua body returns here only to exec: the pool's command, or
	 * what worker:exec() named */
	if (pc->ref_setup != CR_NOREF || pc->ref_start != CR_NOREF) {
		/* the stop signal: blocked, and caught while sleeping */
		self.chan = chan;
		self.stop_signal = pc->stop_signal;
		sigemptyset(&self.stop_mask);
		sigaddset(&self.stop_mask, pc->stop_signal);
		sigprocmask(SIG_BLOCK, &self.stop_mask, NULL);
		signal(pc->stop_signal, on_stop_signal);
		argv = cr_lua_worker(pc, id, generation, chan, cr_spawn_stopping);
	}
	/* a stop the Lua took note of (a sleep it cut short) is not
	 * pending any more, so exec would not see it: nothing is run */
	if (self.stop_signal && cr_spawn_stopping()) {
		fflush(NULL);
		_exit(0);
	}
	if (!argv)
		argv = pc->argv;
	exec_argv(argv, self.stop_signal != 0);
	if (argv == pc->argv)
		fail(chan, CR_STEP_EXEC);
	/* a program of the worker's own choosing: it names it itself */
	e = errno;
	cr_error(&(struct cr_who){ .pool = pc->name, .worker = id, .pid = getpid() },
		 "worker:exec: unable to exec \"%s\": %s", argv[0], strerror(e));
	cr_chan_send(chan, CR_CHAN_ERROR, CR_STEP_HOOK, e);
	_exit(127);
}
