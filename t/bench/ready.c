/*
 * ready.c: the worker of the benchmarks (t/bench/bench.pl), run the same
 * way by corrald and by bare.c. It sends READY=1 to $NOTIFY_SOCKET, as
 * sd_notify(3) does, then writes its pid and a newline to the FIFO named
 * by $BENCH_FIFO (if set; one small write, so atomic), then waits to be
 * killed. Usage: ready [exit]  (exit: exit at once after the FIFO write).
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* READY=1 to the datagram socket NAME: a path, or '@' for abstract. */
static int notify_ready(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(name);
	socklen_t salen;
	int fd, rc;

	if (len == 0 || len >= sizeof sa.sun_path)
		return -1;
	memcpy(sa.sun_path, name, len);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	rc = sendto(fd, "READY=1", 7, 0, (struct sockaddr *)&sa, salen) == 7 ? 0 : -1;
	close(fd);
	return rc;
}

/* "PID\n" to the FIFO PATH; a harness that reads it takes the time. */
static void tell_fifo(const char *path)
{
	char line[32];
	int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	int n = snprintf(line, sizeof line, "%d\n", (int)getpid());

	if (fd < 0)
		return;
	if (write(fd, line, (size_t)n) != n)
		perror("ready: fifo");
	close(fd);
}

int main(int argc, char **argv)
{
	const char *sock = getenv("NOTIFY_SOCKET"), *fifo = getenv("BENCH_FIFO");

	if (!sock || notify_ready(sock) < 0) {
		fprintf(stderr, "ready: cannot notify %s\n", sock ? sock : "(no NOTIFY_SOCKET)");
		return 1;
	}
	if (fifo)
		tell_fifo(fifo);
	if (argc > 1 && strcmp(argv[1], "exit") == 0)
		return 0;
	for (;;)
		pause();
}
