/*
 * vsyscall: calls the three entries of the legacy vsyscall page. The host
 * kernel emulates them without ptrace seeing them; under veil the stub's
 * seccomp filter traps them and the sentry serves them.
 */
#include "../veiltest.h"
#include <sys/time.h>
#include <time.h>

typedef long (*gettimeofday_fn)(struct timeval *, void *);
typedef long (*time_fn)(long *);
typedef long (*getcpu_fn)(unsigned *, unsigned *, void *);

int main(void)
{
	long now = (long)time(NULL);
	struct timeval tv = {0};
	long r = ((gettimeofday_fn)0xffffffffff600000UL)(&tv, NULL);
	report("gettimeofday = %ld, close %d", r, tv.tv_sec >= now && tv.tv_sec - now < 5);
	long stored = 0;
	long t = ((time_fn)0xffffffffff600400UL)(&stored);
	report("time close %d, stored %d", t >= now && t - now < 5, stored == t);
	unsigned cpu = ~0u, node = ~0u;
	r = ((getcpu_fn)0xffffffffff600800UL)(&cpu, &node, NULL);
	report("getcpu = %ld, cpu set %d, node set %d", r, cpu != ~0u, node != ~0u);
	return finish();
}
