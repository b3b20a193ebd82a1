/*
 * Pipes: capacity counted in page slots, packet mode (O_DIRECT), PIPE_BUF
 * atomicity with two writer processes, F_GETPIPE_SZ/F_SETPIPE_SZ, FIONREAD,
 * blocking writes larger than the pipe, and EPIPE/SIGPIPE.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../veiltest.h"

#define ERR(expr) do { errno = 0; long r_ = (expr); report("%s = %s", #expr, res(r_, errno)); } while (0)

static char buf[1 << 20];

static void capacity(void)
{
	int p[2];
	pipe2(p, O_NONBLOCK);
	int n = 0;
	while (write(p[1], buf, 100) == 100)
		n++;
	report("100-byte writes that fit: %d (%s)", n, errname(errno));
	int avail;
	ioctl(p[0], FIONREAD, &avail);
	report("FIONREAD %d", avail);
	close(p[0]);
	close(p[1]);

	pipe2(p, O_NONBLOCK);
	write(p[1], "hello", 5);
	read(p[0], buf, 3);
	ERR(write(p[1], buf, 100000));
	ERR(write(p[1], buf, 1));
	ERR(read(p[0], buf, 10));
	ERR(write(p[1], buf, 10));
	close(p[1]);
	ERR(read(p[0], buf, sizeof buf));
	ERR(read(p[0], buf, sizeof buf));
	close(p[0]);
}

static void packets(void)
{
	int p[2];
	ERR(pipe2(p, O_DIRECT | O_NONBLOCK));
	report("flags: read %x write %x", fcntl(p[0], F_GETFL), fcntl(p[1], F_GETFL));
	write(p[1], "one", 3);
	write(p[1], "three", 5);
	write(p[1], "sixteen-bytes...", 16);
	char b[64] = "";
	ERR(read(p[0], b, sizeof b));
	report("first packet '%.*s'", 3, b);
	ERR(read(p[0], b, 2));
	report("truncated '%.2s'", b);
	ERR(read(p[0], b, sizeof b));
	ERR(read(p[0], b, sizeof b));
	/* Each packet takes a slot: sixteen one-byte packets fill the pipe. */
	int n = 0;
	while (write(p[1], "x", 1) == 1)
		n++;
	report("one-byte packets that fit: %d", n);
	int avail;
	ioctl(p[0], FIONREAD, &avail);
	report("FIONREAD %d", avail);
	close(p[0]);
	close(p[1]);

	/* Large packet writes split into pages. */
	pipe2(p, O_DIRECT);
	ERR(write(p[1], buf, 4096 + 100));
	ERR(read(p[0], buf, sizeof buf));
	ERR(read(p[0], buf, sizeof buf));
	/* F_SETFL can turn packet mode off. */
	fcntl(p[1], F_SETFL, 0);
	write(p[1], "ab", 2);
	write(p[1], "cd", 2);
	ERR(read(p[0], buf, sizeof buf));
	close(p[0]);
	close(p[1]);
}

static void sizes(void)
{
	int p[2];
	pipe(p);
	ERR(fcntl(p[0], F_GETPIPE_SZ));
	ERR(fcntl(p[1], F_SETPIPE_SZ, 0));
	ERR(fcntl(p[1], F_SETPIPE_SZ, 5000));
	ERR(fcntl(p[0], F_GETPIPE_SZ));
	ERR(fcntl(p[0], F_SETPIPE_SZ, 1 << 20));
	ERR(fcntl(p[0], F_SETPIPE_SZ, (1u << 31) + 1));
	ERR(fcntl(p[0], F_SETPIPE_SZ, 4096));
	write(p[1], "a", 1);
	ERR(fcntl(p[0], F_SETPIPE_SZ, 4096));
	fcntl(p[1], F_SETFL, O_NONBLOCK);
	write(p[1], buf, 4096);
	ERR(fcntl(p[0], F_SETPIPE_SZ, 4096));
	ERR(write(p[1], buf, 1));
	/* Two slots in use: the pipe cannot shrink to one. */
	ERR(fcntl(p[0], F_SETPIPE_SZ, 8192));
	ERR(write(p[1], buf, 4096));
	ERR(fcntl(p[0], F_SETPIPE_SZ, 4096));
	ERR(fcntl(p[0], F_GETPIPE_SZ));
	ERR(fcntl(99, F_GETPIPE_SZ));
	int fd = open("/dev/null", O_RDONLY);
	ERR(fcntl(fd, F_GETPIPE_SZ));
	ERR(fcntl(fd, F_SETPIPE_SZ, 4096));
	close(fd);
	close(p[0]);
	close(p[1]);
}

/* Two processes write PIPE_BUF-sized records into one pipe at once; every
 * record the reader sees must be whole. */
static void atomicity(void)
{
	int p[2];
	pipe(p);
	for (int w = 0; w < 2; w++) {
		if (fork() == 0) {
			close(p[0]);
			char rec[PIPE_BUF];
			memset(rec, 'a' + w, sizeof rec);
			for (int i = 0; i < 64; i++)
				write(p[1], rec, sizeof rec);
			_exit(0);
		}
	}
	close(p[1]);
	char rec[PIPE_BUF];
	int records = 0, torn = 0, counts[2] = { 0 };
	for (;;) {
		size_t got = 0;
		while (got < sizeof rec) {
			ssize_t n = read(p[0], rec + got, sizeof rec - got);
			if (n <= 0)
				break;
			got += n;
		}
		if (got == 0)
			break;
		records++;
		for (size_t i = 1; i < got; i++)
			torn |= rec[i] != rec[0];
		torn |= got != sizeof rec;
		if (rec[0] == 'a' || rec[0] == 'b')
			counts[rec[0] - 'a']++;
	}
	while (wait(NULL) > 0)
		;
	report("records %d torn %d per writer %d %d", records, torn, counts[0], counts[1]);
	close(p[0]);
}

static void big_blocking_write(void)
{
	int p[2];
	pipe(p);
	pid_t child = fork();
	if (child == 0) {
		close(p[1]);
		long total = 0;
		ssize_t n;
		usleep(10000);
		while ((n = read(p[0], buf, 3000)) > 0)
			total += n;
		_exit(total == 300000 ? 0 : 1);
	}
	close(p[0]);
	ERR(write(p[1], buf, 300000));
	close(p[1]);
	int status;
	waitpid(child, &status, 0);
	report("reader got everything: %d", WEXITSTATUS(status) == 0);
}

/* readv returns what the pipe holds once a buffer got some: it does not
 * wait to fill the next one. */
static void readv_takes_what_is_there(void)
{
	int p[2];
	pipe(p);
	write(p[1], "hello", 5);
	char a[5], b[10];
	struct iovec iov[2] = { { a, sizeof a }, { b, sizeof b } };
	ERR(readv(p[0], iov, 2));
	write(p[1], "world!", 6);
	ERR(readv(p[0], iov, 2));
	report("split '%.5s' '%.1s'", a, b);
	close(p[0]);
	close(p[1]);
}

static void epipe(void)
{
	int p[2];
	pipe(p);
	signal(SIGPIPE, SIG_IGN);
	close(p[0]);
	ERR(write(p[1], "x", 1));
	ERR(write(p[1], "x", 0));
	close(p[1]);
}

static volatile int sigpipes;

static void count_sigpipe(int sig)
{
	(void)sig;
	sigpipes++;
}

/* A blocking write whose reader leaves midway returns what it wrote, and
 * the writer still gets SIGPIPE. */
static void reader_leaves_midway(void)
{
	signal(SIGPIPE, count_sigpipe);
	int p[2];
	pipe(p);
	static char big[200000];
	pid_t child = fork();
	if (child == 0) {
		close(p[1]);
		char b[1000];
		read(p[0], b, sizeof b);
		_exit(0);
	}
	close(p[0]);
	ssize_t n = write(p[1], big, sizeof big);
	report("partial write: %d, SIGPIPE: %d", n > 0 && n < (ssize_t)sizeof big, sigpipes);
	waitpid(child, NULL, 0);
	close(p[1]);
	signal(SIGPIPE, SIG_DFL);
}

int main(void)
{
	capacity();
	packets();
	sizes();
	atomicity();
	big_blocking_write();
	readv_takes_what_is_there();
	epipe();
	reader_leaves_midway();
	return finish();
}
