/*
 * faults: synchronous signals from the faulting instruction, with Linux's
 * siginfo: SIGSEGV (unmapped and read-only, si_addr the address), SIGBUS
 * (a file mapping past its end), SIGFPE (integer division by zero),
 * SIGILL (ud2) and SIGTRAP (int3); and the wait status of each when not
 * caught.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../veiltest.h"

static sigjmp_buf recover;
static volatile int got_sig, got_code;
static void *volatile got_addr;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	got_sig = sig;
	got_code = si->si_code;
	got_addr = si->si_addr;
	siglongjmp(recover, 1);
}

static void expect(const char *what, void (*fault)(void), void *addr)
{
	got_sig = 0;
	if (sigsetjmp(recover, 1) == 0) {
		fault();
		report("%s: no signal", what);
		return;
	}
	report("%s: sig=%d code=%d addr_ok=%d", what, got_sig, got_code, addr == NULL || got_addr == addr);
}

static char *page;
static volatile int zero;
static int dummy_result;

#define UNMAPPED ((char *)0x10)
static void read_unmapped(void) { dummy_result = *(volatile char *)UNMAPPED; }
static void write_readonly(void) { *(volatile char *)page = 1; }
static void divide(void)
{
	int q, d = zero;
	__asm__ volatile("cltd\n\tidivl %2" : "=a"(q) : "a"(1), "r"(d) : "edx");
	dummy_result = q;
}
static void undefined(void) { __asm__ volatile("ud2"); }
static void breakpoint(void) { __asm__ volatile("int3"); }

static char *beyond;
static void read_beyond_eof(void) { dummy_result = *(volatile char *)beyond; }

static void die_by(const char *what, void (*fault)(void))
{
	pid_t pid = fork();
	if (pid == 0) {
		struct rlimit none = {0, 0};
		setrlimit(RLIMIT_CORE, &none);
		signal(SIGSEGV, SIG_DFL);
		signal(SIGBUS, SIG_DFL);
		signal(SIGFPE, SIG_DFL);
		signal(SIGILL, SIG_DFL);
		signal(SIGTRAP, SIG_DFL);
		fault();
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	report("%s uncaught: signaled=%d sig=%d", what, WIFSIGNALED(status), WTERMSIG(status));
}

int main(void)
{
	struct sigaction sa = {0};
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO;
	for (int s = 1; s < 32; s++)
		if (s == SIGSEGV || s == SIGBUS || s == SIGFPE || s == SIGILL || s == SIGTRAP)
			sigaction(s, &sa, NULL);

	page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	expect("write read-only", write_readonly, page);
	munmap(page, 4096);
	expect("read unmapped", read_unmapped, UNMAPPED);
	expect("divide by zero", divide, NULL);
	expect("ud2", undefined, NULL);
	expect("int3", breakpoint, NULL);

	/* A private mapping of a 100-byte file: its second page is past EOF. */
	int fd = open("/etc/hostname", O_RDONLY);
	if (fd < 0)
		fd = open("/etc/passwd", O_RDONLY);
	char *map = mmap(NULL, 2 * 4096 + 4096 * 64, PROT_READ, MAP_PRIVATE, fd, 0);
	off_t size = lseek(fd, 0, SEEK_END);
	beyond = map + ((size + 4095) / 4096) * 4096 + 16;
	expect("read past end of file", read_beyond_eof, beyond);
	close(fd);

	die_by("segv", read_unmapped);
	die_by("fpe", divide);
	die_by("ill", undefined);
	die_by("trap", breakpoint);
	die_by("bus", read_beyond_eof);
	return finish();
}
