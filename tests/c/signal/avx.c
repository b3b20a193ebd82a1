/*
 * avx: signal frames carry the whole XSAVE state. A handler that clobbers
 * the AVX registers leaves the interrupted code's YMM values intact; the
 * frame is marked UC_FP_XSTATE with Linux's magic numbers; and an XMM
 * value the handler writes into the frame is what sigreturn restores.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <signal.h>
#include <stdint.h>
#include <ucontext.h>
#include <unistd.h>

#include "../veiltest.h"

static volatile int frame_xstate, frame_magic1, frame_magic2;

static void clobber_ymm(void)
{
	static const uint8_t junk[32] = {[0 ... 31] = 0xee};
	__asm__ volatile("vmovdqu %0, %%ymm0\n\tvmovdqu %0, %%ymm1" : : "m"(junk) : "xmm0", "xmm1");
}

static void on_usr1(int sig, siginfo_t *si, void *ucv)
{
	(void)sig;
	(void)si;
	ucontext_t *uc = ucv;
	uint8_t *fp = (uint8_t *)uc->uc_mcontext.fpregs;
	frame_xstate = (uc->uc_flags & 1) != 0;
	uint32_t magic1, size;
	memcpy(&magic1, fp + 464, 4);
	memcpy(&size, fp + 464 + 16, 4);
	frame_magic1 = magic1 == 0x46505853;
	uint32_t magic2 = 0;
	if (frame_magic1)
		memcpy(&magic2, fp + size, 4);
	frame_magic2 = magic2 == 0x46505845;
	clobber_ymm();
}

static void on_usr2(int sig, siginfo_t *si, void *ucv)
{
	(void)sig;
	(void)si;
	ucontext_t *uc = ucv;
	/* xmm1 of the interrupted code becomes 0x42 bytes on return. */
	memset(uc->uc_mcontext.fpregs->_xmm[1].element, 0x42, 16);
	clobber_ymm();
}

int main(void)
{
	unsigned a = 0, b = 0, c = 0, d = 0;
	__get_cpuid(1, &a, &b, &c, &d);
	if (!(c & (1u << 28)) || !(c & (1u << 27))) {
		report("no AVX: nothing to check");
		return finish();
	}
	struct sigaction sa = {0};
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_sigaction = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);

	uint8_t pattern[32], after[32];
	for (int i = 0; i < 32; i++)
		pattern[i] = (uint8_t)(i * 7 + 1);
	/* Load ymm0, take a signal whose handler clobbers it, read it back,
	 * all without a call that could itself touch ymm0. */
	long pid = getpid();
	long nr = 62 /* kill */, sig = SIGUSR1, ret;
	__asm__ volatile("vmovdqu %[pat], %%ymm0\n\t"
			 "syscall\n\t"
			 "vmovdqu %%ymm0, %[out]"
			 : "=a"(ret), [out] "=m"(after)
			 : "a"(nr), "D"(pid), "S"(sig), [pat] "m"(pattern)
			 : "rcx", "r11", "memory", "xmm0");
	check(ret == 0 && memcmp(pattern, after, 32) == 0, "ymm0_preserved_across_handler", NULL);
	check(frame_xstate && frame_magic1 && frame_magic2, "frame_has_xstate", "flag=%d magic1=%d magic2=%d",
	      frame_xstate, frame_magic1, frame_magic2);

	uint8_t x1[16];
	sig = SIGUSR2;
	__asm__ volatile("vmovdqu %[pat], %%ymm1\n\t"
			 "syscall\n\t"
			 "vmovdqu %%xmm1, %[out]"
			 : "=a"(ret), [out] "=m"(x1)
			 : "a"(nr), "D"(pid), "S"(sig), [pat] "m"(pattern)
			 : "rcx", "r11", "memory", "xmm1");
	int all42 = 1;
	for (int i = 0; i < 16; i++)
		all42 &= x1[i] == 0x42;
	check(all42, "xmm1_from_frame_restored", NULL);
	return finish();
}
