/*
 * int80: makes a system call through the i386 `int 0x80` gate from 64-bit
 * code. Under veil the sentry must not misread the i386 number (20 is
 * getpid there, writev on x86-64); it answers ENOSYS.
 */
#include "../veiltest.h"

int main(void)
{
	long r;
	__asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
	report("int80 = %s", r < 0 ? res(-1, (int)-r) : "pid");
	return 0;
}
