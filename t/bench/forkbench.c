/*
 * forkbench.c: the baseline for t/bench/spawn.pl. Forks N children from
 * this small process, each of which writes one byte to a pipe once it
 * runs and then waits to be killed; prints the milliseconds from the
 * first fork to the last byte read. Usage: forkbench N
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1000, fds[2];
	pid_t *pids = calloc((size_t)n, sizeof *pids);
	double t0;
	char c;

	if (!pids || n <= 0 || pipe(fds) < 0)
		return 1;
	t0 = now_ms();
	for (int i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			return 1;
		if (pids[i] == 0) {
			close(fds[0]);
			if (write(fds[1], "x", 1) != 1)
				_exit(1);
			pause();
			_exit(0);
		}
	}
	for (int i = 0; i < n; i++)
		if (read(fds[0], &c, 1) != 1)
			return 1;
	printf("%.3f\n", now_ms() - t0);
	for (int i = 0; i < n; i++)
		kill(pids[i], SIGKILL);
	for (int i = 0; i < n; i++)
		waitpid(pids[i], NULL, 0);
	return 0;
}
