/*
 * The syscall-path micro-benchmarks of bench/suite.sh: each prints
 * "name ns_per_op". Run natively, under runsc and under veil; the ratios
 * between the runs are what matter.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

#define BENCH(name, n, body)                                               \
	do {                                                               \
		long n_ = (n);                                             \
		double t0_ = now_ns();                                     \
		for (long i_ = 0; i_ < n_; i_++) {                         \
			body;                                              \
		}                                                          \
		printf("%-16s %12.1f\n", name, (now_ns() - t0_) / n_);    \
		fflush(stdout);                                            \
	} while (0)

/* Two threads hand a token back and forth through futexes. */
static atomic_int turn;
static long rounds;

static void futex_wait(atomic_int *addr, int val)
{
	syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(atomic_int *addr)
{
	syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *partner(void *arg)
{
	(void)arg;
	for (long i = 0; i < rounds; i++) {
		while (atomic_load(&turn) != 1)
			futex_wait(&turn, 0);
		atomic_store(&turn, 0);
		futex_wake(&turn);
	}
	return NULL;
}

static void pingpong(long n)
{
	pthread_t t;
	rounds = n;
	atomic_store(&turn, 0);
	double t0 = now_ns();
	pthread_create(&t, NULL, partner, NULL);
	for (long i = 0; i < n; i++) {
		atomic_store(&turn, 1);
		futex_wake(&turn);
		while (atomic_load(&turn) != 0)
			futex_wait(&turn, 1);
	}
	pthread_join(t, NULL);
	printf("%-16s %12.1f\n", "futex_pingpong", (now_ns() - t0) / n);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	long scale = argc > 1 ? atol(argv[1]) : 1;
	BENCH("getpid", 20000 * scale, syscall(SYS_getpid));
	BENCH("clock_gettime", 200000 * scale, {
		struct timespec t;
		clock_gettime(CLOCK_MONOTONIC, &t);
	});
	BENCH("open_close", 5000 * scale, {
		int fd = open("/etc/hostname", O_RDONLY);
		close(fd);
	});
	char buf[4096];
	int fd = open("/dev/zero", O_RDONLY);
	BENCH("read_4k", 10000 * scale, read(fd, buf, sizeof buf));
	close(fd);
	int p[2];
	if (pipe(p))
		return 1;
	BENCH("pipe_rw_64", 10000 * scale, {
		write(p[1], buf, 64);
		read(p[0], buf, 64);
	});
	BENCH("mmap_munmap", 5000 * scale, {
		char *m = mmap(0, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		m[0] = 1;
		munmap(m, 65536);
	});
	BENCH("fork_wait", 200 * scale, {
		pid_t c = fork();
		if (c == 0)
			_exit(0);
		waitpid(c, NULL, 0);
	});
	BENCH("fork_exec_true", 100 * scale, {
		pid_t c = fork();
		if (c == 0) {
			execl("/bin/true", "true", (char *)0);
			_exit(127);
		}
		waitpid(c, NULL, 0);
	});
	pingpong(5000 * scale);
	return 0;
}
