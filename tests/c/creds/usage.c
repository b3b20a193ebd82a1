/*
 * usage: CPU time charged to a busy process and thread (getrusage,
 * times, the CPU-time clocks), and children's time that reaches the
 * parent only once it waits. Prints facts, never amounts.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/times.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../veiltest.h"

#define TRY(step, call)                                          \
	do {                                                     \
		long _r = (call);                                \
		report("%s = %s", step, res(_r, errno));         \
	} while (0)

static volatile unsigned long sink;

static void spin(long ms)
{
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	do {
		for (int i = 0; i < 100000; i++)
			sink += i;
		clock_gettime(CLOCK_MONOTONIC, &b);
	} while ((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < ms);
}

static long us(struct timeval tv)
{
	return tv.tv_sec * 1000000 + tv.tv_usec;
}

static long ns(clockid_t c)
{
	struct timespec ts;
	if (clock_gettime(c, &ts))
		return -1;
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

int main(void)
{
	struct rusage self, thread, children;
	long p0 = ns(CLOCK_PROCESS_CPUTIME_ID);
	spin(300);
	/* The thread first: the process's total, read later, includes it. */
	check(getrusage(RUSAGE_THREAD, &thread) == 0, "getrusage thread", NULL);
	check(getrusage(RUSAGE_SELF, &self) == 0, "getrusage self", NULL);
	report("self user time > 0: %d", us(self.ru_utime) > 0);
	report("thread user time > 0: %d", us(thread.ru_utime) > 0);
	/* Linux splits each total into user and system time separately for the
	 * thread and the process, so only the totals are ordered. */
	report("thread <= self: %d", us(thread.ru_utime) + us(thread.ru_stime) <=
					     us(self.ru_utime) + us(self.ru_stime) + 1000);
	report("maxrss > 0: %d", self.ru_maxrss > 0);
	long t1 = ns(CLOCK_THREAD_CPUTIME_ID);
	long p1 = ns(CLOCK_PROCESS_CPUTIME_ID);
	report("process clock advanced: %d", p1 > p0);
	report("thread clock within process clock: %d", t1 > 0 && t1 <= p1);
	clockid_t cid;
	check(clock_getcpuclockid(0, &cid) == 0, "clock_getcpuclockid", NULL);
	report("getcpuclockid(0) reads: %d", ns(cid) >= p1);
	check(pthread_getcpuclockid(pthread_self(), &cid) == 0, "pthread_getcpuclockid", NULL);
	report("thread cpu clock reads: %d", ns(cid) >= t1);
	struct timespec r = { 0, 0 };
	TRY("getres process", clock_getres(CLOCK_PROCESS_CPUTIME_ID, &r));
	report("resolution %ld", r.tv_nsec);
	TRY("bad cpu clock", syscall(SYS_clock_gettime, -8 | 3, &r));
	TRY("cpu clock of no such pid",
	    syscall(SYS_clock_gettime, (int)((unsigned)~99999 << 3) | 2, &r));
	TRY("RUSAGE bad", getrusage(5, &self));
	TRY("RUSAGE bad pointer", syscall(SYS_getrusage, RUSAGE_SELF, 8));

	struct tms t;
	clock_t c = times(&t);
	report("times: ticks %d, utime > 0: %d, cutime 0: %d", c != (clock_t)-1, t.tms_utime > 0,
	       t.tms_cutime == 0);

	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		spin(300);
		_exit(0);
	}
	/* Before the wait the child's time is not the parent's. */
	sleep(1);
	getrusage(RUSAGE_CHILDREN, &children);
	report("children before wait zero: %d", us(children.ru_utime) == 0);
	struct rusage ru;
	int status;
	check(wait4(pid, &status, 0, &ru) == pid, "wait4", NULL);
	report("wait4 rusage user > 0: %d", us(ru.ru_utime) > 0);
	getrusage(RUSAGE_CHILDREN, &children);
	report("children after wait > 0: %d", us(children.ru_utime) > 0);
	report("children maxrss > 0: %d", children.ru_maxrss > 0);
	times(&t);
	report("times cutime > 0: %d", t.tms_cutime > 0);
	return finish();
}
