/*
 * unimplemented: calls kcmp(2), a syscall the sentry does not implement, to
 * show that application syscalls never run on the host kernel.
 *
 * Natively kcmp(getpid(), getpid(), KCMP_FILE, 0, 0) compares a process's
 * descriptor 0 with itself and returns 0: it only reads, so it is safe to
 * call. Under veil the sentry answers every syscall itself and kcmp fails
 * with ENOSYS, which proves the call did not reach the host.
 */
#define _GNU_SOURCE
#include <sys/syscall.h>
#include <unistd.h>

#include "../veiltest.h"

int main(void)
{
	errno = 0;
	long r = syscall(SYS_kcmp, getpid(), getpid(), 0 /* KCMP_FILE */, 0, 0);
	report("kcmp = %s", res(r, errno));
	return 0;
}
