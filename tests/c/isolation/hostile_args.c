/*
 * hostile_args: calls every x86-64 system call number with hostile
 * arguments (NULL, small integers, -1, huge sizes, kernel and
 * non-canonical addresses, pointers into a small buffer) and then prints
 * "survived". It runs ONLY under veil: the sentry must answer every call
 * without crashing, hanging or misbehaving.
 *
 * Skipped: calls that end or replace the process, change its memory map
 * or TLS, deliver signals to it, or block by design (their blocking is
 * the application's business, not a sentry failure).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../veiltest.h"

static const int skipped[] = {
	SYS_read, SYS_close, SYS_poll, SYS_mmap, SYS_mprotect, SYS_munmap,
	SYS_brk, SYS_rt_sigreturn, SYS_pipe, SYS_select, SYS_mremap,
	SYS_madvise, SYS_pause, SYS_nanosleep, SYS_alarm, SYS_setitimer,
	SYS_dup2, SYS_accept, SYS_recvfrom, SYS_recvmsg, SYS_clone, SYS_fork,
	SYS_vfork, SYS_execve, SYS_exit, SYS_wait4, SYS_kill, SYS_semop,
	SYS_msgrcv, SYS_fcntl, SYS_flock, SYS_connect, SYS_rt_sigsuspend,
	SYS_rt_sigtimedwait, SYS_arch_prctl, SYS_remap_file_pages, SYS_tkill,
	SYS_futex, SYS_io_getevents, SYS_timer_settime, SYS_clock_nanosleep,
	SYS_exit_group, SYS_epoll_wait, SYS_tgkill, SYS_waitid,
	SYS_pselect6, SYS_ppoll, SYS_epoll_pwait, SYS_accept4, SYS_dup3,
	SYS_pipe2, SYS_recvmmsg, SYS_semtimedop, SYS_mq_timedreceive,
	SYS_execveat, SYS_pkey_mprotect, SYS_io_pgetevents, SYS_clone3,
	SYS_close_range, SYS_pidfd_send_signal, SYS_epoll_pwait2,
	SYS_rt_sigqueueinfo, SYS_rt_tgsigqueueinfo, SYS_setrlimit,
	SYS_prlimit64, SYS_timer_create, 449 /* futex_waitv */,
};

static uint64_t state = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
	state ^= state << 13;
	state ^= state >> 7;
	state ^= state << 17;
	return state;
}

int main(void)
{
	static char buf[256];
	const uint64_t values[] = {
		0, 1, 2, 3, 4096, (uint64_t)-1, 0xffffffffull, 0x7fffffffffffull,
		0xffff800000000000ull, 0x0000800000000000ull, 0xdead0000ull,
		(uint64_t)(uintptr_t)buf, (uint64_t)(uintptr_t)buf + 200,
		(uint64_t)1 << 40, (uint64_t)-100 /* AT_FDCWD */,
	};
	const int nvalues = sizeof values / sizeof values[0];
	long calls = 0;
	for (int round = 0; round < 4; round++) {
		for (long nr = 0; nr <= 460; nr++) {
			int skip = 0;
			for (size_t i = 0; i < sizeof skipped / sizeof skipped[0]; i++)
				skip |= skipped[i] == nr;
			if (skip)
				continue;
			uint64_t a[6];
			for (int i = 0; i < 6; i++)
				a[i] = values[next() % nvalues];
			/* Keep the buffer a valid, NUL-terminated path. */
			memcpy(buf, "/tmp/veil-hostile", 18);
			syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
			calls++;
		}
	}
	report("calls %ld", calls > 0 ? 1L : 0L);
	report("survived");
	return 0;
}
