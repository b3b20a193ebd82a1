/*
 * queue: process- and thread-directed signals in multi-threaded processes,
 * real-time signal queueing with values, sigqueue permission rules,
 * sigtimedwait/sigwaitinfo, and pending signals discarded by SIG_IGN.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <sys/select.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../veiltest.h"

static volatile int rt_values[8];
static volatile int rt_count;
static volatile int rt_code;

static void on_rt(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (rt_count < 8)
		rt_values[rt_count] = si->si_value.sival_int;
	rt_code = si->si_code;
	rt_count++;
}

static void realtime_queueing(void)
{
	struct sigaction sa = {0};
	sa.sa_sigaction = on_rt;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGRTMIN + 1, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN + 1);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	for (int i = 1; i <= 3; i++) {
		union sigval v = {.sival_int = i * 10};
		sigqueue(getpid(), SIGRTMIN + 1, v);
		sigqueue(getpid(), SIGUSR1, v);
	}
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	report("queued: count=%d first=%d second=%d third=%d fourth=%d code_is_queue=%d", rt_count,
	       rt_values[0], rt_values[1], rt_values[2], rt_values[3], rt_code == SI_QUEUE);
	signal(SIGRTMIN + 1, SIG_DFL);
	signal(SIGUSR1, SIG_DFL);
}

static void sigqueue_rules(void)
{
	siginfo_t si = {0};
	si.si_code = SI_USER;
	pid_t child = fork();
	if (child == 0) {
		pause();
		_exit(0);
	}
	report("forged SI_USER to other: %s", RES(syscall(SYS_rt_sigqueueinfo, child, SIGUSR1, &si)));
	si.si_code = SI_QUEUE;
	report("SI_QUEUE to other: %s", RES(syscall(SYS_rt_sigqueueinfo, child, SIGTERM, &si)));
	int status;
	waitpid(child, &status, 0);
	report("child: signaled=%d sig=%d", WIFSIGNALED(status), WTERMSIG(status));
	report("sigqueue missing pid: %s", RES(syscall(SYS_rt_sigqueueinfo, 999999, SIGUSR1, &si)));
	report("tgsigqueue bad tid: %s", RES(syscall(SYS_rt_tgsigqueueinfo, getpid(), 999999, SIGUSR1, &si)));
}

static void timed_waits(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	struct timespec ts = {0, 20 * 1000 * 1000};
	siginfo_t si;
	report("sigtimedwait timeout: %s", RES(sigtimedwait(&set, &si, &ts)));
	pid_t parent = getpid();
	pid_t child = fork();
	if (child == 0) {
		usleep(50000);
		kill(parent, SIGUSR2);
		_exit(0);
	}
	int sig = sigwaitinfo(&set, &si);
	report("sigwaitinfo: sig=%d from_child=%d code=%d", sig, si.si_pid == child, si.si_code);
	waitpid(child, NULL, 0);
	/* Already pending: returned at once, even with a zero timeout. */
	raise(SIGUSR2);
	struct timespec zero = {0, 0};
	report("pending with zero timeout: %d", sigtimedwait(&set, &si, &zero));
	report("bad timeout: %s", RES(sigtimedwait(&set, &si, &(struct timespec){0, 2000000000})));
	sigprocmask(SIG_UNBLOCK, &set, NULL);
}

static volatile pid_t handled_by;

static void on_usr1(int sig)
{
	(void)sig;
	handled_by = (pid_t)syscall(SYS_gettid);
}

static pid_t worker_tid;
static pthread_barrier_t barrier;

static void *worker(void *arg)
{
	(void)arg;
	worker_tid = (pid_t)syscall(SYS_gettid);
	pthread_barrier_wait(&barrier);
	while (!handled_by)
		usleep(1000);
	pthread_barrier_wait(&barrier);
	return NULL;
}

static void threads_and_targets(void)
{
	signal(SIGUSR1, on_usr1);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_barrier_init(&barrier, NULL, 2);
	pthread_t th;
	handled_by = 0;
	pthread_create(&th, NULL, worker, NULL);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_barrier_wait(&barrier);
	/* The main thread blocks it: the worker takes the process's signal. */
	kill(getpid(), SIGUSR1);
	pthread_barrier_wait(&barrier);
	report("process signal handled by worker: %d", handled_by == worker_tid);
	pthread_join(th, NULL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	handled_by = 0;
	pthread_create(&th, NULL, worker, NULL);
	pthread_barrier_wait(&barrier);
	syscall(SYS_tgkill, getpid(), worker_tid, SIGUSR1);
	pthread_barrier_wait(&barrier);
	report("tgkill handled by target: %d", handled_by == worker_tid);
	pthread_join(th, NULL);
	report("tgkill wrong group: %s", RES(syscall(SYS_tgkill, getpid() + 100000, getpid(), SIGUSR1)));
	report("tgkill zero: %s", RES(syscall(SYS_tgkill, 0, getpid(), 0)));
	report("tkill missing: %s", RES(syscall(SYS_tkill, 999999, SIGUSR1)));
	report("tkill self probe: %s", RES(syscall(SYS_tkill, syscall(SYS_gettid), 0)));
	signal(SIGUSR1, SIG_DFL);
}

static void ignore_discards(void)
{
	sigset_t set, pending;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGUSR2, SIG_IGN);
	raise(SIGUSR2);
	sigpending(&pending);
	report("blocked ignored signal stays pending: %d", sigismember(&pending, SIGUSR2));
	signal(SIGUSR2, SIG_DFL);
	raise(SIGUSR2);
	sigpending(&pending);
	report("pending before SIG_IGN: %d", sigismember(&pending, SIGUSR2));
	signal(SIGUSR2, SIG_IGN);
	sigpending(&pending);
	report("pending after SIG_IGN: %d", sigismember(&pending, SIGUSR2));
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	signal(SIGUSR2, SIG_DFL);
	/* SIGCHLD's default is to ignore: an unblocked one is dropped. */
	raise(SIGCHLD);
	sigpending(&pending);
	report("default-ignored dropped: %d", !sigismember(&pending, SIGCHLD));
}

static volatile int usr1_seen;

static void count_usr1(int sig)
{
	(void)sig;
	usr1_seen++;
}

/* ppoll and pselect run with the mask they are given, and put the old one
 * back after the handler of the signal that interrupted them. */
static void temporary_masks(void)
{
	signal(SIGUSR1, count_usr1);
	sigset_t block, open_mask, now;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, NULL);
	sigemptyset(&open_mask);
	pid_t parent = getpid();
	for (int round = 0; round < 2; round++) {
		pid_t child = fork();
		if (child == 0) {
			usleep(50000);
			kill(parent, SIGUSR1);
			_exit(0);
		}
		struct timespec ts = {5, 0};
		const char *r = round == 0 ? RES(ppoll(NULL, 0, &ts, &open_mask))
					   : RES(pselect(0, NULL, NULL, NULL, &ts, &open_mask));
		sigprocmask(SIG_BLOCK, NULL, &now);
		report("%s with open mask: %s handled=%d blocked_again=%d", round == 0 ? "ppoll" : "pselect", r,
		       usr1_seen, sigismember(&now, SIGUSR1));
		waitpid(child, NULL, 0);
	}
	sigprocmask(SIG_UNBLOCK, &block, NULL);
	signal(SIGUSR1, SIG_DFL);
}

int main(void)
{
	realtime_queueing();
	sigqueue_rules();
	timed_waits();
	threads_and_targets();
	ignore_discards();
	temporary_masks();
	return finish();
}
