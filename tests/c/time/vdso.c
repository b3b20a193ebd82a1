/*
 * vdso: the vDSO is there (AT_SYSINFO_EHDR, [vvar] and [vdso] in
 * /proc/self/maps, linux-vdso.so.1 among the loaded objects), and its
 * clocks agree with the system calls: no clock goes backwards when vDSO
 * reads and system calls alternate, CLOCK_REALTIME, gettimeofday and time
 * tell the same time, a sleep measures as long as it was, getcpu answers,
 * and the time page cannot be written.
 */
#define _GNU_SOURCE
#include <link.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "../veiltest.h"

static int64_t ns(struct timespec t)
{
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int saw_vdso_object;

static int object(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	(void)data;
	if (info->dlpi_name && strstr(info->dlpi_name, "linux-vdso.so.1"))
		saw_vdso_object = 1;
	return 0;
}

static sigjmp_buf fault;

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(fault, 1);
}

int main(void)
{
	unsigned long ehdr = getauxval(AT_SYSINFO_EHDR);
	check(ehdr != 0 && memcmp((void *)ehdr, "\177ELF", 4) == 0, "AT_SYSINFO_EHDR", NULL);

	FILE *maps = fopen("/proc/self/maps", "r");
	char line[512];
	unsigned long vvar_start = 0, vdso_start = 0, end;
	char perms[8];
	while (maps && fgets(line, sizeof line, maps)) {
		unsigned long start;
		if (sscanf(line, "%lx-%lx %7s", &start, &end, perms) != 3)
			continue;
		if (strstr(line, "[vvar]"))
			vvar_start = start;
		if (strstr(line, "[vdso]")) {
			vdso_start = start;
			check(strcmp(perms, "r-xp") == 0, "vdso mapping", "%s", perms);
		}
	}
	check(vdso_start == ehdr, "[vdso] at AT_SYSINFO_EHDR", NULL);
	check(vvar_start != 0 && vvar_start < vdso_start, "[vvar] before [vdso]", NULL);

	dl_iterate_phdr(object, NULL);
	/* A static binary's dl_iterate_phdr lists no vDSO object. */
	report("linux-vdso.so.1 listed: %s", saw_vdso_object ? "yes" : "no");

	const clockid_t clocks[] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME,
				    CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE};
	const char *names[] = {"realtime", "monotonic", "boottime", "realtime_coarse",
			       "monotonic_coarse"};
	for (unsigned c = 0; c < sizeof clocks / sizeof clocks[0]; c++) {
		int64_t prev = 0, back = 0;
		for (int i = 0; i < 3000; i++) {
			struct timespec t;
			if (i % 3 == 0)
				syscall(SYS_clock_gettime, clocks[c], &t);
			else
				clock_gettime(clocks[c], &t);
			int64_t now = ns(t);
			/* The coarse clocks tick: a fine read may run ahead of them. */
			int coarse = clocks[c] == CLOCK_REALTIME_COARSE || clocks[c] == CLOCK_MONOTONIC_COARSE;
			if (!coarse && now < prev)
				back++;
			prev = now;
		}
		check(back == 0, names[c], "went backwards %lld times", (long long)back);
	}

	struct timespec rt, sys_rt, mono, boot;
	struct timeval tv;
	clock_gettime(CLOCK_REALTIME, &rt);
	gettimeofday(&tv, NULL);
	time_t secs = time(NULL);
	syscall(SYS_clock_gettime, CLOCK_REALTIME, &sys_rt);
	int64_t tv_ns = (int64_t)tv.tv_sec * 1000000000 + (int64_t)tv.tv_usec * 1000;
	check(tv_ns >= ns(rt) - 1000 && tv_ns - ns(rt) < 50000000, "gettimeofday", NULL);
	check(secs >= rt.tv_sec && secs <= sys_rt.tv_sec, "time", NULL);
	check(ns(sys_rt) >= ns(rt) && ns(sys_rt) - ns(rt) < 50000000, "realtime syscall", NULL);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_BOOTTIME, &boot);
	check(ns(boot) >= ns(mono), "boottime >= monotonic", NULL);

	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	usleep(100000);
	clock_gettime(CLOCK_MONOTONIC, &b);
	int64_t slept = ns(b) - ns(a);
	check(slept >= 100000000 && slept < 1000000000, "a 100 ms sleep", slept >= 100000000 && slept < 1000000000 ? NULL : "%lld ns", (long long)slept);

	/* An absolute timer set from a vDSO reading fires no earlier than
	 * the vDSO says it should. */
	int tfd = timerfd_create(CLOCK_MONOTONIC, 0);
	struct timespec start, fired;
	clock_gettime(CLOCK_MONOTONIC, &start);
	int64_t due = ns(start) + 50000000;
	struct itimerspec its = {{0, 0}, {due / 1000000000, due % 1000000000}};
	timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
	uint64_t ticks = 0;
	ssize_t got = read(tfd, &ticks, sizeof ticks);
	clock_gettime(CLOCK_MONOTONIC, &fired);
	check(got == 8 && ticks == 1 && ns(fired) >= due, "an absolute timerfd", NULL);
	close(tfd);

	unsigned cpu = ~0u, node = ~0u;
	check(getcpu(&cpu, &node) == 0 && cpu < 4096 && node < 1024, "getcpu", NULL);
	check(sched_getcpu() >= 0, "sched_getcpu", NULL);

	/* The time page is the whole sandbox's: a process may not write it. */
	if (vvar_start) {
		signal(SIGSEGV, on_segv);
		if (sigsetjmp(fault, 1) == 0) {
			*(volatile char *)vvar_start = 1;
			check(0, "writing the time page", "succeeded");
		} else {
			check(1, "writing the time page", "faults");
		}
		errno = 0;
		int r = mprotect((void *)vvar_start, 4096, PROT_READ | PROT_WRITE);
		report("mprotect of the time page writable: %s", res(r, errno));
	}
	return finish();
}
