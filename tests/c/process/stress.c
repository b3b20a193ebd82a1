/*
 * stress: many threads and processes at once. Mutex and condition-variable
 * hand-offs, barriers and semaphores between threads must lose no wake-up;
 * forked children with threads of their own must all be reaped, leaving no
 * zombie behind.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <semaphore.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../veiltest.h"

enum { THREADS = 8, INCREMENTS = 20000, PINGPONG = 2000, BARRIER_ROUNDS = 300, CHILDREN = 16 };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;

static void *increment(void *arg)
{
	(void)arg;
	for (int i = 0; i < INCREMENTS; i++) {
		pthread_mutex_lock(&lock);
		counter++;
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

static pthread_cond_t turn_changed = PTHREAD_COND_INITIALIZER;
static int turn, rounds[2];

static void *pingpong(void *arg)
{
	int me = (int)(long)arg;
	for (int i = 0; i < PINGPONG; i++) {
		pthread_mutex_lock(&lock);
		while (turn != me)
			pthread_cond_wait(&turn_changed, &lock);
		rounds[me]++;
		turn = !me;
		pthread_cond_signal(&turn_changed);
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

static pthread_barrier_t barrier;
static long passes;

static void *barrier_rounds(void *arg)
{
	(void)arg;
	for (int i = 0; i < BARRIER_ROUNDS; i++) {
		if (pthread_barrier_wait(&barrier) == PTHREAD_BARRIER_SERIAL_THREAD)
			__atomic_fetch_add(&passes, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static sem_t items, slots;
static long produced_sum, consumed_sum;

static void *producer(void *arg)
{
	(void)arg;
	for (long i = 1; i <= 5000; i++) {
		sem_wait(&slots);
		__atomic_fetch_add(&produced_sum, i, __ATOMIC_RELAXED);
		sem_post(&items);
	}
	return NULL;
}

static void *consumer(void *arg)
{
	(void)arg;
	for (long i = 1; i <= 5000; i++) {
		sem_wait(&items);
		__atomic_fetch_add(&consumed_sum, i, __ATOMIC_RELAXED);
		sem_post(&slots);
	}
	return NULL;
}

static void *child_thread(void *arg)
{
	(void)arg;
	increment(NULL);
	return NULL;
}

static void run_threads(void *(*fn)(void *), int n)
{
	pthread_t th[THREADS];
	for (int i = 0; i < n; i++)
		pthread_create(&th[i], NULL, fn, (void *)(long)i);
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
}

int main(void)
{
	run_threads(increment, THREADS);
	check(counter == (long)THREADS * INCREMENTS, "mutex_counter", "counter=%ld", counter);

	run_threads(pingpong, 2);
	check(rounds[0] == PINGPONG && rounds[1] == PINGPONG, "condvar_pingpong", "%d/%d", rounds[0],
	      rounds[1]);

	pthread_barrier_init(&barrier, NULL, 4);
	run_threads(barrier_rounds, 4);
	check(passes == BARRIER_ROUNDS, "barrier_rounds", "passes=%ld", passes);

	sem_init(&items, 0, 0);
	sem_init(&slots, 0, 4);
	pthread_t p, c;
	pthread_create(&p, NULL, producer, NULL);
	pthread_create(&c, NULL, consumer, NULL);
	pthread_join(p, NULL);
	pthread_join(c, NULL);
	check(produced_sum == consumed_sum && consumed_sum == 5000L * 5001 / 2, "semaphores", "%ld/%ld",
	      produced_sum, consumed_sum);

	for (int i = 0; i < CHILDREN; i++) {
		if (fork() == 0) {
			counter = 0;
			pthread_t th[2];
			for (int j = 0; j < 2; j++)
				pthread_create(&th[j], NULL, child_thread, NULL);
			for (int j = 0; j < 2; j++)
				pthread_join(th[j], NULL);
			_exit(counter == 2L * INCREMENTS ? 0 : 1);
		}
	}
	int ok = 0, status;
	pid_t pid;
	while ((pid = wait(&status)) > 0)
		ok += WIFEXITED(status) && WEXITSTATUS(status) == 0;
	check(ok == CHILDREN, "children_with_threads", "ok=%d", ok);
	check(errno == ECHILD, "no_zombies_left", "%s", errname(errno));
	return finish();
}
