/*
 * timers: POSIX timers. Signals with SI_TIMER siginfo (ID, value,
 * overruns) to the process or a thread, one pending signal per timer with
 * overruns counted, SIGEV_NONE, absolute times, glibc's SIGEV_THREAD,
 * deletion, argument errors, and no inheritance across fork.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../veiltest.h"

static void arm(timer_t id, long first_ns, long every_ns, int flags)
{
	struct itimerspec its = {{0, every_ns}, {first_ns / 1000000000, first_ns % 1000000000}};
	if (timer_settime(id, flags, &its, NULL) != 0)
		report("timer_settime failed: %s", errname(errno));
}

static void default_notification(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGALRM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	timer_t id;
	report("create (no sigevent): %s", RES(timer_create(CLOCK_MONOTONIC, NULL, &id)));
	arm(id, 20000000, 0, 0);
	siginfo_t si;
	int sig = sigwaitinfo(&set, &si);
	report("signal=%d code_is_timer=%d value_is_id=%d overrun=%d", sig, si.si_code == SI_TIMER,
	       si.si_value.sival_int == (int)(long)id, si.si_overrun);
	struct itimerspec its;
	timer_gettime(id, &its);
	report("one-shot disarmed: %d", its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0);
	timer_delete(id);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
}

static void overruns(void)
{
	int sig = SIGRTMIN + 2;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_BLOCK, &set, NULL);
	struct sigevent ev = {0};
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = sig;
	ev.sigev_value.sival_int = 77;
	timer_t id;
	timer_create(CLOCK_MONOTONIC, &ev, &id);
	arm(id, 5000000, 5000000, 0);
	usleep(80000);
	siginfo_t si;
	struct timespec zero = {0, 0};
	int got = sigtimedwait(&set, &si, &zero);
	report("periodic, blocked: signal_ok=%d value=%d overruns_counted=%d", got == sig, si.si_value.sival_int,
	       si.si_overrun >= 5);
	/* Re-arming drops a signal of the old setting still pending. */
	usleep(20000);
	arm(id, 0, 0, 0);
	report("re-armed timer's stale signal gone: %s", RES(sigtimedwait(&set, &si, &zero)));
	/* Deleting a timer takes back its pending signal. */
	arm(id, 1000000, 0, 0);
	usleep(20000);
	timer_delete(id);
	report("deleted timer's signal gone: %s", RES(sigtimedwait(&set, &si, &zero)));
	sigprocmask(SIG_UNBLOCK, &set, NULL);
}

static pid_t target_tid;
static volatile int thread_got;

static void *thread_waiter(void *arg)
{
	(void)arg;
	target_tid = (pid_t)syscall(SYS_gettid);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	siginfo_t si;
	int sig = sigwaitinfo(&set, &si);
	thread_got = sig == SIGUSR1 && si.si_code == SI_TIMER && si.si_value.sival_int == 5;
	return NULL;
}

static void thread_target(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	pthread_t th;
	pthread_create(&th, NULL, thread_waiter, NULL);
	while (!target_tid)
		usleep(1000);
	struct sigevent ev = {0};
	ev.sigev_notify = SIGEV_THREAD_ID;
	ev.sigev_signo = SIGUSR1;
	ev.sigev_value.sival_int = 5;
	ev._sigev_un._tid = target_tid;
	timer_t id;
	report("create thread-directed: %s", RES(timer_create(CLOCK_MONOTONIC, &ev, &id)));
	arm(id, 20000000, 0, 0);
	pthread_join(th, NULL);
	report("thread got its timer signal: %d", thread_got);
	timer_delete(id);
	ev._sigev_un._tid = 999999;
	report("thread-directed to a stranger: %s", RES(timer_create(CLOCK_MONOTONIC, &ev, &id)));
	sigprocmask(SIG_UNBLOCK, &set, NULL);
}

static void no_signal_and_absolute(void)
{
	struct sigevent ev = {0};
	ev.sigev_notify = SIGEV_NONE;
	timer_t id;
	timer_create(CLOCK_MONOTONIC, &ev, &id);
	arm(id, 500000000, 250000000, 0);
	struct itimerspec its;
	timer_gettime(id, &its);
	report("SIGEV_NONE: left_ok=%d interval_ns=%ld", its.it_value.tv_sec == 0 && its.it_value.tv_nsec > 0,
	       its.it_interval.tv_nsec);
	timer_delete(id);

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = SIGUSR2;
	timer_create(CLOCK_REALTIME, &ev, &id);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	long at = now.tv_nsec + 30000000;
	struct itimerspec abs = {{0, 0}, {now.tv_sec + at / 1000000000, at % 1000000000}};
	timer_settime(id, TIMER_ABSTIME, &abs, NULL);
	struct timespec limit = {2, 0};
	siginfo_t si;
	report("absolute realtime timer fired: %d", sigtimedwait(&set, &si, &limit) == SIGUSR2);
	/* A time already past fires at once. */
	abs.it_value.tv_sec -= 10;
	timer_settime(id, TIMER_ABSTIME, &abs, NULL);
	report("past absolute time fires: %d", sigtimedwait(&set, &si, &limit) == SIGUSR2);
	timer_delete(id);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
}

static volatile int thread_callbacks;

static void callback(union sigval v)
{
	__atomic_fetch_add(&thread_callbacks, v.sival_int, __ATOMIC_RELAXED);
}

static void glibc_thread_notification(void)
{
	struct sigevent ev = {0};
	ev.sigev_notify = SIGEV_THREAD;
	ev.sigev_notify_function = callback;
	ev.sigev_value.sival_int = 1;
	timer_t id;
	report("SIGEV_THREAD create: %s", RES(timer_create(CLOCK_MONOTONIC, &ev, &id)));
	arm(id, 10000000, 10000000, 0);
	for (int i = 0; i < 200 && thread_callbacks < 3; i++)
		usleep(10000);
	timer_delete(id);
	report("SIGEV_THREAD callbacks ran: %d", thread_callbacks >= 3);
}

static void errors_and_fork(void)
{
	timer_t id;
	report("bad clock: %s", RES(timer_create(12345, NULL, &id)));
	struct sigevent ev = {0};
	ev.sigev_notify = 77;
	report("bad notify: %s", RES(timer_create(CLOCK_MONOTONIC, &ev, &id)));
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = 99;
	report("bad signal: %s", RES(timer_create(CLOCK_MONOTONIC, &ev, &id)));
	report("efault: %s", RES(syscall(SYS_timer_create, CLOCK_MONOTONIC, NULL, (void *)8)));
	ev.sigev_signo = SIGUSR1;
	timer_create(CLOCK_MONOTONIC, &ev, &id);
	struct itimerspec bad = {{0, 0}, {0, 2000000000}};
	report("bad time: %s", RES(timer_settime(id, 0, &bad, NULL)));
	pid_t pid = fork();
	if (pid == 0) {
		struct itimerspec its;
		_exit(syscall(SYS_timer_gettime, id, &its) == -1 && errno == EINVAL ? 0 : 1);
	}
	int status;
	waitpid(pid, &status, 0);
	report("fork child has no timers: %d", WIFEXITED(status) && WEXITSTATUS(status) == 0);
	report("delete: %s", RES(timer_delete(id)));
	report("delete again: %s", RES(timer_delete(id)));
	report("gettime deleted: %s", RES(syscall(SYS_timer_gettime, id, &bad)));
	report("getoverrun deleted: %s", RES(syscall(SYS_timer_getoverrun, id)));
}

static volatile int vtalrms, profs;

static void on_cpu_timer(int sig)
{
	if (sig == SIGVTALRM)
		vtalrms++;
	else
		profs++;
}

/* ITIMER_VIRTUAL and ITIMER_PROF fire as a busy loop uses CPU time. */
static void cpu_itimers(void)
{
	signal(SIGVTALRM, on_cpu_timer);
	signal(SIGPROF, on_cpu_timer);
	struct itimerval every = {{0, 20000}, {0, 20000}};
	report("setitimer virtual: %s", RES(setitimer(ITIMER_VIRTUAL, &every, NULL)));
	report("setitimer prof: %s", RES(setitimer(ITIMER_PROF, &every, NULL)));
	struct itimerval cur;
	getitimer(ITIMER_VIRTUAL, &cur);
	report("virtual armed: %d interval_us=%ld", cur.it_value.tv_sec > 0 || cur.it_value.tv_usec > 0,
	       (long)cur.it_interval.tv_usec);
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	volatile unsigned long spin = 0;
	do {
		for (int i = 0; i < 100000; i++)
			spin++;
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while ((vtalrms < 3 || profs < 3) && now.tv_sec - start.tv_sec < 20);
	struct itimerval off = {{0, 0}, {0, 0}};
	setitimer(ITIMER_VIRTUAL, &off, NULL);
	setitimer(ITIMER_PROF, &off, NULL);
	report("busy loop got SIGVTALRM and SIGPROF: %d", vtalrms >= 3 && profs >= 3);
	getitimer(ITIMER_PROF, &cur);
	report("prof disarmed: %d", cur.it_value.tv_sec == 0 && cur.it_value.tv_usec == 0);
	report("bad which: %s", RES(setitimer(7, &off, NULL)));
	signal(SIGVTALRM, SIG_DFL);
	signal(SIGPROF, SIG_DFL);
}

int main(void)
{
	default_notification();
	overruns();
	thread_target();
	no_signal_and_absolute();
	glibc_thread_notification();
	errors_and_fork();
	cpu_itimers();
	return finish();
}
