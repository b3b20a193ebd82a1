/*
 * Signals to a host process (argv[1] is the host PID of a sleep the test
 * started) and to its process group, and kill(-1), from init.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "../escape.h"

int main(int argc, char **argv)
{
	if (argc != 2) {
		report("usage: kill HOSTPID");
		return 2;
	}
	pid_t host = atoi(argv[1]);
	siginfo_t si = {.si_signo = SIGKILL, .si_code = SI_QUEUE};
	report("kill 0 = %s", RES(kill(host, 0)));
	report("kill SIGKILL = %s", RES(kill(host, SIGKILL)));
	report("kill SIGSTOP = %s", RES(kill(host, SIGSTOP)));
	report("kill group SIGKILL = %s", RES(kill(-host, SIGKILL)));
	report("tkill = %s", RES(syscall(SYS_tkill, host, SIGKILL)));
	report("tgkill = %s", RES(syscall(SYS_tgkill, host, host, SIGKILL)));
	report("rt_sigqueueinfo = %s", RES(syscall(SYS_rt_sigqueueinfo, host, SIGKILL, &si)));
	report("pidfd_open = %s", RES(syscall(SYS_pidfd_open, host, 0)));
	report("getpgid = %s", RES(getpgid(host)));
	report("setpgid = %s", RES(setpgid(host, host)));
	report("setpriority = %s", RES(setpriority(PRIO_PROCESS, host, 19)));
	report("prlimit = %s", RES(prlimit(host, RLIMIT_NOFILE, NULL, NULL)));
	report("kill -1 SIGKILL = %s", RES(kill(-1, SIGKILL)));
	return 0;
}
