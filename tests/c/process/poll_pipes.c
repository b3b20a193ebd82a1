/*
 * poll_pipes: poll, ppoll, select and pselect on pipes: readiness after
 * writes and closes, POLLNVAL and EBADF, timeouts, and a wait woken by a
 * child process writing later.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../veiltest.h"

static int poll1(int fd, short events, int timeout)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r = poll(&p, 1, timeout);
	return r < 0 ? -1 : p.revents;
}

int main(void)
{
	int p[2];
	check(pipe2(p, O_CLOEXEC) == 0, "pipe", NULL);
	report("empty read end: revents=0x%x", poll1(p[0], POLLIN, 0));
	report("write end: revents=0x%x", poll1(p[1], POLLOUT, 0));
	check(write(p[1], "x", 1) == 1, "write", NULL);
	report("after write: revents=0x%x", poll1(p[0], POLLIN, 0));

	struct pollfd many[3] = { { .fd = -1, .events = POLLIN }, { .fd = 999, .events = POLLIN },
				  { .fd = p[0], .events = POLLIN } };
	int r = poll(many, 3, 0);
	report("mixed: ret=%d revents=0x%x,0x%x,0x%x", r, many[0].revents, many[1].revents, many[2].revents);

	fd_set rd, wr;
	FD_ZERO(&rd);
	FD_ZERO(&wr);
	FD_SET(p[0], &rd);
	FD_SET(p[1], &wr);
	struct timeval tv = { 0, 0 };
	r = select(p[1] + 1, &rd, &wr, NULL, &tv);
	report("select: ret=%d rd=%d wr=%d", r, FD_ISSET(p[0], &rd), FD_ISSET(p[1], &wr));

	int closed = dup(p[0]);
	close(closed);
	FD_ZERO(&rd);
	FD_SET(closed, &rd);
	tv = (struct timeval){ 0, 0 };
	r = select(closed + 1, &rd, NULL, NULL, &tv);
	report("select bad fd: %s", res(r, errno));

	char c;
	check(read(p[0], &c, 1) == 1, "drain", NULL);
	tv = (struct timeval){ 0, 50 * 1000 };
	FD_ZERO(&rd);
	FD_SET(p[0], &rd);
	r = select(p[0] + 1, &rd, NULL, NULL, &tv);
	report("select timeout: ret=%d tv=%ld.%06ld", r, (long)tv.tv_sec, (long)tv.tv_usec);

	struct timespec ts = { 0, 20 * 1000 * 1000 };
	struct pollfd one = { .fd = p[0], .events = POLLIN };
	report("ppoll timeout: ret=%d", ppoll(&one, 1, &ts, NULL));

	pid_t child = fork();
	if (child == 0) {
		usleep(100 * 1000);
		(void)!write(p[1], "late", 4);
		_exit(0);
	}
	report("woken by child: revents=0x%x", poll1(p[0], POLLIN, 5000));
	waitpid(child, NULL, 0);
	char buf[8];
	check(read(p[0], buf, sizeof buf) == 4, "read_late", NULL);

	close(p[1]);
	report("writer closed: revents=0x%x", poll1(p[0], POLLIN, 0));
	int q[2];
	check(pipe(q) == 0, "pipe2", NULL);
	close(q[0]);
	signal(SIGPIPE, SIG_IGN);
	report("reader closed: revents=0x%x", poll1(q[1], POLLOUT, 0));
	return finish();
}
