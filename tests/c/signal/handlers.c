/*
 * handlers: signal handlers sent to oneself: siginfo (si_code, si_pid,
 * si_addr), blocking and pending, SA_RESETHAND, alternate stacks, FP state
 * restored after a handler that clobbers it, recovery from SIGSEGV with
 * siglongjmp, and ignored signals.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../veiltest.h"

static volatile sig_atomic_t got, code, pid_ok, on_alt;
static sigjmp_buf jb;
static char *alt;
static const size_t alt_size = 64 * 1024;

static void on_usr1(int s, siginfo_t *si, void *uc)
{
	(void)uc;
	got = s;
	code = si->si_code;
	pid_ok = si->si_pid == getpid();
	char here;
	on_alt = &here >= alt && &here < alt + alt_size;
	/* Clobber the FP registers the interrupted code is using. */
	volatile double x = 3.25;
	for (int i = 0; i < 8; i++)
		x = x * 1.5 + 0.125;
	(void)x;
}

static volatile uintptr_t fault_addr;
static volatile int fault_code;

static void on_segv(int s, siginfo_t *si, void *uc)
{
	(void)s;
	(void)uc;
	fault_addr = (uintptr_t)si->si_addr;
	fault_code = si->si_code;
	siglongjmp(jb, 1);
}

static void install(int sig, void (*fn)(int, siginfo_t *, void *), int flags)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = fn;
	sa.sa_flags = SA_SIGINFO | flags;
	sigaction(sig, &sa, NULL);
}

int main(void)
{
	install(SIGUSR1, on_usr1, 0);
	volatile double keep = 1.5;
	raise(SIGUSR1);
	check(got == SIGUSR1 && code == SI_TKILL && pid_ok, "raise_runs_handler", "got=%d code=%d", got, code);
	check(keep * 2 == 3.0, "fp_state_restored", NULL);

	got = 0;
	kill(getpid(), SIGUSR1);
	check(got == SIGUSR1 && code == SI_USER, "kill_self_si_user", "code=%d", code);

	sigset_t set, pending;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	got = 0;
	raise(SIGUSR1);
	sigpending(&pending);
	check(got == 0 && sigismember(&pending, SIGUSR1), "blocked_stays_pending", NULL);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	check(got == SIGUSR1, "delivered_on_unblock", NULL);

	sigset_t now;
	sigprocmask(SIG_SETMASK, NULL, &now);
	check(!sigismember(&now, SIGUSR1), "mask_restored_after_handler", NULL);

	alt = malloc(alt_size);
	stack_t ss = { .ss_sp = alt, .ss_size = alt_size, .ss_flags = 0 };
	check(sigaltstack(&ss, NULL) == 0, "sigaltstack", NULL);
	install(SIGUSR1, on_usr1, SA_ONSTACK | SA_RESETHAND);
	got = 0;
	raise(SIGUSR1);
	check(got == SIGUSR1 && on_alt, "handler_on_altstack", "on_alt=%d", on_alt);
	struct sigaction cur;
	sigaction(SIGUSR1, NULL, &cur);
	check(cur.sa_handler == SIG_DFL, "sa_resethand", NULL);

	install(SIGSEGV, on_segv, 0);
	if (!sigsetjmp(jb, 1))
		*(volatile int *)16 = 1;
	check(fault_addr == 16 && fault_code == SEGV_MAPERR, "segv_siginfo", "addr=%lx code=%d",
	      (unsigned long)fault_addr, fault_code);

	signal(SIGUSR2, SIG_IGN);
	raise(SIGUSR2);
	check(1, "ignored_signal", NULL);
	return finish();
}
