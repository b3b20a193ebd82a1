/*
 * setxid_threads: glibc makes setuid, setgid and setgroups process-wide
 * by signalling every thread (SIGSETXID, via tgkill) and having each one
 * make the system call; the kernel keeps credentials per thread. Each
 * thread reports its own IDs with raw system calls.
 */
#define _GNU_SOURCE
#include <grp.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../veiltest.h"

#define THREADS 4

static pthread_barrier_t ready, changed, done;

static void ids(const char *who, int i)
{
	gid_t groups[4] = { 0 };
	long n = syscall(SYS_getgroups, 4, groups);
	report("%s %d: uid=%ld euid=%ld gid=%ld egid=%ld groups=%ld[%u]", who, i,
	       syscall(SYS_getuid), syscall(SYS_geteuid), syscall(SYS_getgid),
	       syscall(SYS_getegid), n, n > 0 ? groups[0] : 0);
}

static pthread_mutex_t print = PTHREAD_MUTEX_INITIALIZER;
static int order;

static void *worker(void *arg)
{
	int i = (int)(long)arg;
	pthread_barrier_wait(&ready);
	pthread_barrier_wait(&changed);
	/* Report in a fixed order. */
	for (;;) {
		pthread_mutex_lock(&print);
		if (order == i) {
			ids("thread", i);
			order++;
			pthread_mutex_unlock(&print);
			break;
		}
		pthread_mutex_unlock(&print);
		sched_yield();
	}
	pthread_barrier_wait(&done);
	return NULL;
}

int main(void)
{
	pthread_t t[THREADS];
	pthread_barrier_init(&ready, NULL, THREADS + 1);
	pthread_barrier_init(&changed, NULL, THREADS + 1);
	pthread_barrier_init(&done, NULL, THREADS + 1);
	for (long i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, worker, (void *)i);
	pthread_barrier_wait(&ready);
	gid_t g = 77;
	check(setgroups(1, &g) == 0, "setgroups", "%s", errname(errno));
	check(setgid(55) == 0, "setgid", "%s", errname(errno));
	check(setuid(1234) == 0, "setuid", "%s", errname(errno));
	check(setuid(0) == -1 && errno == EPERM, "setuid(0) refused", NULL);
	pthread_barrier_wait(&changed);
	pthread_barrier_wait(&done);
	ids("main", 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	return finish();
}
