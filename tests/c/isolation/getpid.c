/*
 * getpid: prints the process's view of its own identity.
 *
 * Under veil the application is the init process of the sandbox's PID
 * namespace: getpid() and gettid() are 1, and getppid() is 0 (its parent is
 * outside the namespace), whatever the host PID of the stub process running
 * it. Natively the numbers are whatever the host says; the test only checks
 * them under veil.
 */
#define _GNU_SOURCE
#include <sys/syscall.h>
#include <unistd.h>

#include "../veiltest.h"

int main(void)
{
	report("getpid %ld", (long)getpid());
	report("getppid %ld", (long)getppid());
	/* The raw syscalls too, bypassing any caching in libc. */
	report("sys_getpid %ld", syscall(SYS_getpid));
	report("sys_gettid %ld", syscall(SYS_gettid));
	return 0;
}
