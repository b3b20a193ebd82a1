/*
 * sched: CPU affinity, scheduling policies and parameters, sched_attr,
 * nice values through the raw getpriority convention, and the permission
 * rules of an unprivileged user.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../veiltest.h"
#include "../caps.h"

#define TRY(step, call)                                          \
	do {                                                     \
		long _r = (call);                                \
		report("%-36s = %s", step, res(_r, errno));      \
	} while (0)

struct attr {
	uint32_t size, policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime, deadline, period;
	uint32_t util_min, util_max;
};

static void affinity(void)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	long n = syscall(SYS_sched_getaffinity, 0, sizeof set, &set);
	/* The size is the kernel's mask size, which depends on its build. */
	report("getaffinity size ok %d, cpus match nproc: %d", n > 0 && n % 8 == 0,
	       CPU_COUNT(&set) == sysconf(_SC_NPROCESSORS_ONLN));
	unsigned long small;
	TRY("getaffinity 8 bytes", syscall(SYS_sched_getaffinity, 0, 8, &small));
	TRY("getaffinity 4 bytes", syscall(SYS_sched_getaffinity, 0, 4, &small));
	TRY("getaffinity 12 bytes", syscall(SYS_sched_getaffinity, 0, 12, &set));
	TRY("getaffinity bad pointer", syscall(SYS_sched_getaffinity, 0, 8, (void *)8));
	TRY("getaffinity no such pid", syscall(SYS_sched_getaffinity, 99999, 8, &small));
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	TRY("setaffinity {0}", sched_setaffinity(0, sizeof one, &one));
	CPU_ZERO(&set);
	sched_getaffinity(0, sizeof set, &set);
	report("now %d cpus, cpu0=%d", CPU_COUNT(&set), CPU_ISSET(0, &set));
	unsigned cpu = 77, node = 77;
	TRY("getcpu", syscall(SYS_getcpu, &cpu, &node, NULL));
	report("getcpu cpu=%u node=%u", cpu, node);
	CPU_ZERO(&one);
	CPU_SET(1000, &one);
	TRY("setaffinity {1000}", sched_setaffinity(0, sizeof one, &one));
	TRY("setaffinity empty", sched_setaffinity(0, sizeof one, &(cpu_set_t){ 0 }));
	TRY("setaffinity bad pointer", syscall(SYS_sched_setaffinity, 0, 128, (void *)8));
	TRY("yield", sched_yield());
}

static void show_sched(const char *what)
{
	struct sched_param p = { 77 };
	int pol = sched_getscheduler(0);
	sched_getparam(0, &p);
	errno = 0;
	int prio = getpriority(PRIO_PROCESS, 0);
	report("%-24s policy=%#x param=%d nice=%d raw=%ld", what, pol, p.sched_priority, prio,
	       syscall(SYS_getpriority, PRIO_PROCESS, 0));
}

static void policies(void)
{
	show_sched("start");
	TRY("priority max FIFO", sched_get_priority_max(SCHED_FIFO));
	TRY("priority min RR", sched_get_priority_min(SCHED_RR));
	TRY("priority max OTHER", sched_get_priority_max(SCHED_OTHER));
	TRY("priority max 42", sched_get_priority_max(42));
	TRY("setscheduler FIFO 0", sched_setscheduler(0, SCHED_FIFO, &(struct sched_param){ 0 }));
	TRY("setscheduler FIFO 100", sched_setscheduler(0, SCHED_FIFO, &(struct sched_param){ 100 }));
	TRY("setscheduler OTHER 5", sched_setscheduler(0, SCHED_OTHER, &(struct sched_param){ 5 }));
	TRY("setscheduler 42", sched_setscheduler(0, 42, &(struct sched_param){ 0 }));
	TRY("setscheduler NULL", syscall(SYS_sched_setscheduler, 0, SCHED_OTHER, NULL));
	TRY("setscheduler pid -1", syscall(SYS_sched_setscheduler, -1, SCHED_OTHER, &(struct sched_param){ 0 }));
	TRY("setscheduler no such pid", sched_setscheduler(99999, SCHED_OTHER, &(struct sched_param){ 0 }));
	/* No CAP_SYS_NICE and RLIMIT_RTPRIO 0: real-time is refused. */
	TRY("setscheduler FIFO 10", sched_setscheduler(0, SCHED_FIFO, &(struct sched_param){ 10 }));
	TRY("setscheduler RR 1", sched_setscheduler(0, SCHED_RR, &(struct sched_param){ 1 }));
	TRY("setparam 20", sched_setparam(0, &(struct sched_param){ 20 }));
	TRY("getparam NULL", syscall(SYS_sched_getparam, 0, NULL));
	TRY("getscheduler -1", sched_getscheduler(-1));
	struct timespec ts;
	TRY("rr_get_interval bad pid", sched_rr_get_interval(-1, &ts));
	TRY("setscheduler BATCH|RESET_ON_FORK",
	    sched_setscheduler(0, SCHED_BATCH | SCHED_RESET_ON_FORK, &(struct sched_param){ 0 }));
	show_sched("BATCH reset-on-fork");
	struct attr a = { 0 };
	TRY("getattr", syscall(SYS_sched_getattr, 0, &a, sizeof a, 0));
	report("attr size=%u policy=%u flags=%llu nice=%d prio=%u", a.size, a.policy,
	       (unsigned long long)a.flags, a.nice, a.priority);
	TRY("getattr small", syscall(SYS_sched_getattr, 0, &a, 40, 0));
	TRY("getattr flags", syscall(SYS_sched_getattr, 0, &a, sizeof a, 1));
	TRY("setscheduler OTHER keeps reset", sched_setscheduler(0, SCHED_OTHER, &(struct sched_param){ 0 }));
	memset(&a, 0, sizeof a);
	a.size = 48;
	a.policy = SCHED_OTHER;
	a.flags = 1; /* SCHED_FLAG_RESET_ON_FORK */
	a.nice = 5;
	TRY("setattr OTHER nice 5", syscall(SYS_sched_setattr, 0, &a, 0));
	show_sched("setattr nice 5");
	char big[64] = { 0 };
	memcpy(big, &a, sizeof a);
	((struct attr *)big)->size = sizeof big;
	big[60] = 1;
	TRY("setattr too big", syscall(SYS_sched_setattr, 0, big, 0));
	report("size written back %u", ((struct attr *)big)->size);
	a.flags = 1 << 20;
	TRY("setattr bad flags", syscall(SYS_sched_setattr, 0, &a, 0));
	a.flags = 1;
	a.policy = SCHED_DEADLINE;
	a.runtime = 10000000;
	a.deadline = 30000000;
	a.period = 30000000;
	TRY("setattr DEADLINE", syscall(SYS_sched_setattr, 0, &a, 0));
	TRY("setpriority 3 (lower)", setpriority(PRIO_PROCESS, 0, 3));
	TRY("setpriority 8", setpriority(PRIO_PROCESS, 0, 8));
	show_sched("nice 8");
	TRY("setpriority 30 (clamped)", setpriority(PRIO_PROCESS, 0, 30));
	show_sched("nice 19");
	TRY("getpriority PGRP", syscall(SYS_getpriority, PRIO_PGRP, 0));
	TRY("getpriority bad which", syscall(SYS_getpriority, 7, 0));
	TRY("getpriority no such pid", syscall(SYS_getpriority, PRIO_PROCESS, 99999));
	TRY("setpriority no such pid", setpriority(PRIO_PROCESS, 99999, 1));
}

static void inherited(void)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		show_sched("child after reset");
		_exit(0);
	}
	waitpid(pid, NULL, 0);
}

static void unprivileged(void)
{
	pid_t parent = getpid();
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		setresuid(1000, 1000, 1000);
		show_sched("user");
		TRY("user setscheduler FIFO", sched_setscheduler(0, SCHED_FIFO, &(struct sched_param){ 1 }));
		TRY("user setpriority 19", setpriority(PRIO_PROCESS, 0, 19));
		TRY("user setpriority 5 (lower)", setpriority(PRIO_PROCESS, 0, 5));
		TRY("user setpriority on root", setpriority(PRIO_PROCESS, parent, 7));
		TRY("user getpriority on root", syscall(SYS_getpriority, PRIO_PROCESS, parent));
		TRY("user setscheduler IDLE", sched_setscheduler(0, SCHED_IDLE, &(struct sched_param){ 0 }));
		TRY("user setscheduler OTHER", sched_setscheduler(0, SCHED_OTHER, &(struct sched_param){ 0 }));
		cpu_set_t one;
		CPU_ZERO(&one);
		CPU_SET(0, &one);
		TRY("user setaffinity on root", sched_setaffinity(parent, sizeof one, &one));
		TRY("user setaffinity self", sched_setaffinity(0, sizeof one, &one));
		_exit(0);
	}
	waitpid(pid, NULL, 0);
}

int main(void)
{
	/* Without CAP_SYS_NICE (containers often lack it), and with no
	 * real-time or nice allowance, so that the host's limits do not
	 * matter. */
	check(narrow_caps() == 0, "narrow capabilities", NULL);
	/* Alone in a process group (under veil, init already is). */
	setpgid(0, 0);
	struct rlimit zero = { 0, 0 };
	check(setrlimit(RLIMIT_RTPRIO, &zero) == 0, "RLIMIT_RTPRIO 0", NULL);
	check(setrlimit(RLIMIT_NICE, &zero) == 0, "RLIMIT_NICE 0", NULL);
	affinity();
	policies();
	inherited();
	unprivileged();
	return finish();
}
