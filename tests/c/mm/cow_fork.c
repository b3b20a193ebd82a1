/*
 * cow_fork: private memory after fork is copy-on-write. Parent and child
 * write the same pages (data, heap from brk, mmap, stack) and each sees
 * only its own values; also when the parent exits first, when a parent
 * thread keeps writing during and after the fork, and when the kernel
 * writes into a copy-on-write page (read(), a syscall's output argument).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../veiltest.h"

static int data_word = 1;
static char big[64 * 4096] = {1};
static char read_target[3 * 4096] = {1};

static void wait_child(pid_t pid, const char *name)
{
	int status = 0;
	waitpid(pid, &status, 0);
	check(WIFEXITED(status) && WEXITSTATUS(status) == 0, name, "status 0x%x", status);
}

static void both_write(void)
{
	char *heap = sbrk(0);
	check(sbrk(8192) == heap, "sbrk", NULL);
	heap[0] = 'p';
	heap[4096] = 'P';
	char *anon = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(anon, 'a', 1 << 20);
	volatile char stack[8192];
	stack[0] = 's';
	stack[8191] = 'S';
	for (size_t i = 0; i < sizeof big; i += 4096)
		big[i] = (char)i;

	pid_t pid = fork();
	if (pid == 0) {
		data_word = 2;
		heap[0] = 'c';
		anon[12345] = 'c';
		stack[0] = 'c';
		big[4096 * 7] = 'c';
		usleep(50000); /* the parent writes meanwhile */
		int ok = data_word == 2 && heap[0] == 'c' && heap[4096] == 'P' && anon[12345] == 'c' &&
			 anon[0] == 'a' && anon[(1 << 20) - 1] == 'a' && stack[0] == 'c' &&
			 stack[8191] == 'S' && big[4096 * 7] == 'c' && big[4096 * 8] == (char)(4096 * 8);
		_exit(ok ? 0 : 1);
	}
	data_word = 3;
	heap[0] = 'q';
	anon[12345] = 'q';
	stack[0] = 'q';
	big[4096 * 7] = 'q';
	wait_child(pid, "child_sees_its_own_writes");
	check(data_word == 3 && heap[0] == 'q' && anon[12345] == 'q' && stack[0] == 'q' &&
		      big[4096 * 7] == 'q' && big[4096 * 9] == (char)(4096 * 9),
	      "parent_sees_its_own_writes", NULL);
	munmap(anon, 1 << 20);
	sbrk(-8192);
}

/* The middle process forks and exits at once; its child, reparented,
 * then writes the inherited pages and reports through a pipe. */
static void parent_exits_first(void)
{
	int p[2];
	pipe(p);
	data_word = 10;
	pid_t mid = fork();
	if (mid == 0) {
		pid_t grandchild = fork();
		if (grandchild == 0) {
			close(p[0]);
			usleep(50000);
			int before = data_word;
			data_word = 11;
			big[100] = 'g';
			char verdict = before == 10 && data_word == 11 && big[100] == 'g' ? 'y' : 'n';
			write(p[1], &verdict, 1);
			_exit(0);
		}
		data_word = 12;
		_exit(0);
	}
	close(p[1]);
	wait_child(mid, "middle_exits");
	char verdict = 0;
	check(read(p[0], &verdict, 1) == 1 && verdict == 'y', "orphan_keeps_its_copy", "%c", verdict);
	close(p[0]);
	check(data_word == 10, "parent_unchanged_by_orphan", "%d", data_word);
}

static volatile int stop;
static volatile uint64_t spin_counter;

static void *spinner(void *arg)
{
	(void)arg;
	while (!stop)
		spin_counter++;
	return NULL;
}

/* A thread keeps writing while the main thread forks: the child's copy is
 * a snapshot that never moves, and the parent's keeps moving. */
static void thread_writes_during_fork(void)
{
	pthread_t th;
	pthread_create(&th, NULL, spinner, NULL);
	while (spin_counter < 1000)
		;
	pid_t pid = fork();
	if (pid == 0) {
		uint64_t a = spin_counter;
		usleep(30000);
		uint64_t b = spin_counter;
		_exit(a == b ? 0 : 1);
	}
	uint64_t a = spin_counter;
	usleep(30000);
	uint64_t b = spin_counter;
	wait_child(pid, "child_snapshot_is_stable");
	check(b > a, "parent_thread_keeps_writing", NULL);
	stop = 1;
	pthread_join(th, NULL);
}

/* The kernel writes into a copy-on-write page on the process's behalf. */
static void kernel_writes_cow_page(void)
{
	memset(read_target, 'x', sizeof read_target);
	int p[2];
	pipe(p);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[1]);
		/* Spans a page boundary; the child has not touched these pages. */
		ssize_t n = read(p[0], read_target + 4090, 12);
		clock_gettime(CLOCK_MONOTONIC, (struct timespec *)(read_target + 8192));
		int ok = n == 12 && memcmp(read_target + 4090, "from-parent!", 12) == 0 &&
			 read_target[4089] == 'x' && read_target[4102] == 'x';
		_exit(ok ? 0 : 1);
	}
	close(p[0]);
	write(p[1], "from-parent!", 12);
	close(p[1]);
	wait_child(pid, "read_into_cow_page");
	int clean = 1;
	for (size_t i = 0; i < sizeof read_target; i++)
		clean &= read_target[i] == 'x';
	check(clean, "parent_page_untouched_by_child_read", NULL);
	/* And the parent's own kernel writes into its (now shared) pages. */
	pid = fork();
	if (pid == 0) {
		usleep(30000);
		_exit(read_target[0] == 'x' && read_target[4096] == 'x' ? 0 : 1);
	}
	int q[2];
	pipe(q);
	write(q[1], "PP", 2);
	read(q[0], read_target, 2);
	pipe((int *)(read_target + 4096));
	wait_child(pid, "child_untouched_by_parent_read");
	check(read_target[0] == 'P' && read_target[1] == 'P', "parent_read_lands", NULL);
}

/* Many generations of forks, each writing: every copy stays its own. */
static void generations(void)
{
	data_word = 0;
	for (int i = 0; i < 5; i++) {
		pid_t pid = fork();
		if (pid != 0) {
			int status = 0;
			waitpid(pid, &status, 0);
			if (data_word != i)
				_exit(1);
			if (i > 0)
				_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
			check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "generations", "0x%x", status);
			return;
		}
		data_word = i + 1;
		big[4096 * i] = (char)i;
	}
	_exit(data_word == 5 ? 0 : 1);
}

int main(void)
{
	both_write();
	parent_exits_first();
	thread_writes_during_fork();
	kernel_writes_cow_page();
	generations();
	return finish();
}
