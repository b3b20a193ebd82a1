/*
 * threads: pthreads on futexes: a mutex-protected counter across threads,
 * a condition variable hand-off, join (CLONE_CHILD_CLEARTID), thread IDs
 * distinct from the PID, a thread spinning without system calls while the
 * others go on, and exit_group from a non-main thread.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../veiltest.h"

#define THREADS 4
#define ROUNDS 20000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static long counter;
static int turn;
static pid_t tids[THREADS];

static void *add(void *arg)
{
	long i = (long)arg;
	tids[i] = (pid_t)syscall(SYS_gettid);
	for (int r = 0; r < ROUNDS; r++) {
		pthread_mutex_lock(&lock);
		counter++;
		pthread_mutex_unlock(&lock);
	}
	return (void *)(i * 10);
}

static void *ping(void *arg)
{
	(void)arg;
	for (int r = 0; r < 200; r++) {
		pthread_mutex_lock(&lock);
		while (turn != 1)
			pthread_cond_wait(&cond, &lock);
		turn = 0;
		pthread_cond_signal(&cond);
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

static volatile int flag;

/* Spins in application code, making no system call, until released. */
static void *spinner(void *arg)
{
	(void)arg;
	while (!flag)
		;
	return NULL;
}

static void *quit(void *arg)
{
	(void)arg;
	exit(42);
}

int main(void)
{
	pthread_t t[THREADS];
	for (long i = 0; i < THREADS; i++)
		check(pthread_create(&t[i], NULL, add, (void *)i) == 0, "create", NULL);
	long sum = 0;
	for (int i = 0; i < THREADS; i++) {
		void *ret;
		pthread_join(t[i], &ret);
		sum += (long)ret;
	}
	check(counter == (long)THREADS * ROUNDS, "mutex_counter", "counter=%ld", counter);
	check(sum == 60, "join_values", NULL);
	int distinct = 1;
	for (int i = 0; i < THREADS; i++)
		distinct &= tids[i] != getpid() && tids[i] > 0;
	check(distinct, "thread_ids_distinct_from_pid", NULL);

	pthread_t p;
	pthread_create(&p, NULL, ping, NULL);
	for (int r = 0; r < 200; r++) {
		pthread_mutex_lock(&lock);
		turn = 1;
		pthread_cond_signal(&cond);
		while (turn != 0)
			pthread_cond_wait(&cond, &lock);
		pthread_mutex_unlock(&lock);
	}
	pthread_join(p, NULL);
	check(1, "condvar_pingpong", NULL);

	pthread_t s;
	pthread_create(&s, NULL, spinner, NULL);
	usleep(20 * 1000);
	flag = 1;
	pthread_join(s, NULL);
	check(1, "others_run_while_one_spins", NULL);

	pid_t child = fork();
	if (child == 0) {
		pthread_t q;
		pthread_create(&q, NULL, quit, NULL);
		for (;;)
			pause();
	}
	int status = 0;
	waitpid(child, &status, 0);
	check(WIFEXITED(status) && WEXITSTATUS(status) == 42, "exit_from_thread_ends_process", "status=0x%x", status);
	return finish();
}
