/*
 * shared_anon: MAP_SHARED|MAP_ANONYMOUS memory (and MAP_SHARED /dev/zero)
 * is one object that forked processes share: a counter children
 * increment, writes seen both ways, madvise(MADV_DONTNEED) keeping the
 * data, mremap moving a shared mapping, and a futex handoff between
 * parent and child on a shared word (non-private FUTEX_WAIT/WAKE).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/futex.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../veiltest.h"

#define CHILDREN 8
#define ROUNDS 100

static void wait_all(int n, const char *name)
{
	int bad = 0;
	for (int i = 0; i < n; i++) {
		int status = 0;
		if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			bad++;
	}
	check(bad == 0, name, "%d bad", bad);
}

static void counter(void *mem, const char *name)
{
	volatile uint32_t *c = mem;
	*c = 0;
	for (int i = 0; i < CHILDREN; i++) {
		if (fork() == 0) {
			for (int j = 0; j < ROUNDS; j++)
				__atomic_fetch_add(c, 1, __ATOMIC_SEQ_CST);
			_exit(0);
		}
	}
	wait_all(CHILDREN, "children_exit");
	check(*c == CHILDREN * ROUNDS, name, "%u", *c);
}

static long futex(volatile uint32_t *addr, int op, uint32_t val)
{
	return syscall(SYS_futex, addr, op, val, NULL, NULL, 0);
}

/* Parent and child take turns: each waits until the word is its number,
 * then passes it on and wakes the other. */
static void futex_handoff(volatile uint32_t *word)
{
	*word = 0;
	pid_t pid = fork();
	if (pid == 0) {
		for (int i = 0; i < ROUNDS; i++) {
			while (__atomic_load_n(word, __ATOMIC_SEQ_CST) != 1)
				futex(word, FUTEX_WAIT, 0);
			__atomic_store_n(word, 0, __ATOMIC_SEQ_CST);
			futex(word, FUTEX_WAKE, 1);
		}
		_exit(0);
	}
	int waits = 0;
	for (int i = 0; i < ROUNDS; i++) {
		__atomic_store_n(word, 1, __ATOMIC_SEQ_CST);
		futex(word, FUTEX_WAKE, 1);
		while (__atomic_load_n(word, __ATOMIC_SEQ_CST) != 0) {
			futex(word, FUTEX_WAIT, 1);
			waits++;
		}
	}
	int status = 0;
	waitpid(pid, &status, 0);
	check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "futex_handoff", "0x%x", status);
	/* A sleeper in another process is woken by a non-private wake. */
	*word = 5;
	pid = fork();
	if (pid == 0) {
		int woke = 0;
		while (__atomic_load_n(word, __ATOMIC_SEQ_CST) == 5)
			if (futex(word, FUTEX_WAIT, 5) == 0)
				woke++;
		_exit(woke > 0 ? 0 : 1);
	}
	long woken = 0;
	for (int i = 0; i < 500 && woken == 0; i++) {
		usleep(10000);
		woken = futex(word, FUTEX_WAKE, 1);
	}
	__atomic_store_n(word, 6, __ATOMIC_SEQ_CST);
	futex(word, FUTEX_WAKE, 1);
	waitpid(pid, &status, 0);
	check(woken == 1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "futex_wake_across_processes",
	      "woken %ld status 0x%x", woken, status);
}

int main(void)
{
	size_t len = 4 * 4096;
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	check(m != MAP_FAILED, "mmap_shared_anon", NULL);
	check(m[0] == 0 && m[len - 1] == 0, "starts_zeroed", NULL);
	counter(m, "children_increment_shared_counter");

	/* Writes go both ways, and a private mapping stays private. */
	char *priv = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	priv[0] = 'p';
	m[4096] = 'p';
	pid_t pid = fork();
	if (pid == 0) {
		int ok = m[4096] == 'p';
		m[4097] = 'c';
		priv[0] = 'c';
		while (m[4098] != 'P')
			usleep(1000);
		_exit(ok ? 0 : 1);
	}
	while (m[4097] != 'c')
		usleep(1000);
	m[4098] = 'P';
	int status = 0;
	waitpid(pid, &status, 0);
	check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writes_seen_both_ways", NULL);
	check(priv[0] == 'p', "private_stays_private", "%c", priv[0]);

	/* DONTNEED drops the mapping's pages, not the shared data. */
	m[3 * 4096] = 'd';
	check(madvise(m + 3 * 4096, 4096, MADV_DONTNEED) == 0, "dontneed", NULL);
	check(m[3 * 4096] == 'd', "dontneed_keeps_shared_data", "%d", m[3 * 4096]);
	check(madvise(priv, 4096, MADV_DONTNEED) == 0 && priv[0] == 0, "dontneed_zeroes_private", NULL);

	/* A moved shared mapping is still the same object. */
	char *target = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *moved = mremap(m, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, target);
	check(moved == target, "mremap_fixed", NULL);
	pid = fork();
	if (pid == 0) {
		moved[4096 + 100] = 'm';
		_exit(0);
	}
	waitpid(pid, &status, 0);
	check(moved[4096 + 100] == 'm' && moved[4096] == 'p', "moved_mapping_still_shared", NULL);
	/* Past the object's size: SIGBUS, as on Linux. */
	char *grown = mremap(moved, len, 2 * len, MREMAP_MAYMOVE);
	check(grown != MAP_FAILED && grown[len - 1] == 0, "mremap_grow", NULL);
	pid = fork();
	if (pid == 0) {
		grown[len] = 1;
		_exit(0);
	}
	waitpid(pid, &status, 0);
	check(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS, "past_object_end_sigbus", "0x%x", status);

	futex_handoff((volatile uint32_t *)(grown + 2 * 4096));
	munmap(grown, 2 * len);

	int zero = open("/dev/zero", O_RDWR);
	char *z = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, zero, 0);
	close(zero);
	check(z != MAP_FAILED, "mmap_shared_dev_zero", NULL);
	counter(z, "dev_zero_shared_counter");
	return finish();
}
