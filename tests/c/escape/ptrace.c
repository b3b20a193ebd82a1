/*
 * ptrace of init, of a host process (argv[1] is the host PID of a sleep
 * the test started) and of the program's own child, and PTRACE_TRACEME.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <sys/ptrace.h>

#include "../escape.h"

int main(int argc, char **argv)
{
	if (argc != 2) {
		report("usage: ptrace HOSTPID");
		return 2;
	}
	pid_t host = atoi(argv[1]);
	pid_t child = fork();
	if (child == 0) {
		pause();
		_exit(0);
	}
	report("attach init = %s", RES(ptrace(PTRACE_ATTACH, 1, 0, 0)));
	report("seize init = %s", RES(ptrace(PTRACE_SEIZE, 1, 0, 0)));
	report("attach host pid = %s", RES(ptrace(PTRACE_ATTACH, host, 0, 0)));
	report("seize host pid = %s", RES(ptrace(PTRACE_SEIZE, host, 0, 0)));
	report("interrupt host pid = %s", RES(ptrace(PTRACE_INTERRUPT, host, 0, 0)));
	report("peek host pid = %s", RES(ptrace(PTRACE_PEEKDATA, host, 0x400000, 0)));
	report("attach child = %s", RES(ptrace(PTRACE_ATTACH, child, 0, 0)));
	report("seize child = %s", RES(ptrace(PTRACE_SEIZE, child, 0, 0)));
	pid_t tracee = fork();
	if (tracee == 0) {
		report("traceme = %s", RES(ptrace(PTRACE_TRACEME, 0, 0, 0)));
		_exit(0);
	}
	int status;
	waitpid(tracee, &status, 0);
	report_status("traceme child", status);
	kill(child, SIGKILL);
	waitpid(child, &status, 0);
	report_status("paused child", status);
	return 0;
}
