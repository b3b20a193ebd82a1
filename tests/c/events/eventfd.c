/*
 * eventfd: counter and semaphore reads, the 8-byte rules, overflow, and
 * blocking reads and writes woken by another process.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../veiltest.h"

#define ERR(expr) do { errno = 0; long r_ = (expr); report("%s = %s", #expr, res(r_, errno)); } while (0)

static int readiness(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT };
	poll(&p, 1, 0);
	return p.revents;
}

int main(void)
{
	uint64_t v = 0, one = 1;
	int fd = eventfd(5, EFD_NONBLOCK);
	report("initial readiness %x", readiness(fd));
	ERR(read(fd, &v, 8));
	report("value %llu", (unsigned long long)v);
	ERR(read(fd, &v, 8));
	report("empty readiness %x", readiness(fd));
	char small[7];
	ERR(read(fd, small, sizeof small));
	ERR(write(fd, small, sizeof small));
	uint64_t max = UINT64_MAX;
	ERR(write(fd, &max, 8));
	max = UINT64_MAX - 1;
	ERR(write(fd, &max, 8));
	report("full readiness %x", readiness(fd));
	ERR(write(fd, &one, 8));
	ERR(write(fd, &(uint64_t){ 0 }, 8));
	char big[16] = { 0 };
	ERR(read(fd, big, sizeof big));
	report("read 16-byte buffer value %llu", (unsigned long long)*(uint64_t *)big);
	close(fd);

	fd = eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC);
	for (int i = 0; i < 4; i++) {
		errno = 0;
		v = 0;
		long r = read(fd, &v, 8);
		report("semaphore read %d: %s value %llu", i, res(r, errno), (unsigned long long)v);
	}
	report("cloexec %d", fcntl(fd, F_GETFD));
	close(fd);

	ERR(eventfd(0, 0x10));

	/* A blocking read waits for a writer. */
	fd = eventfd(0, 0);
	pid_t child = fork();
	if (child == 0) {
		usleep(20000);
		uint64_t seven = 7;
		write(fd, &seven, 8);
		_exit(0);
	}
	ERR(read(fd, &v, 8));
	report("woken with %llu", (unsigned long long)v);
	waitpid(child, NULL, 0);

	/* A blocking write that would overflow waits for a reader. */
	max = UINT64_MAX - 1;
	write(fd, &max, 8);
	child = fork();
	if (child == 0) {
		usleep(20000);
		uint64_t got;
		read(fd, &got, 8);
		_exit(got == UINT64_MAX - 1 ? 0 : 1);
	}
	ERR(write(fd, &one, 8));
	int status;
	waitpid(child, &status, 0);
	report("reader status %d", WEXITSTATUS(status));
	ERR(read(fd, &v, 8));
	report("after blocked write %llu", (unsigned long long)v);
	close(fd);
	return finish();
}
