/* veil's vDSO: clock_gettime, gettimeofday, time and getcpu without a
 * trap into the sentry. Time comes from the TSC, scaled by the parameters
 * the sentry keeps in the time page (see lib.rs's TimePage) under a
 * sequence lock; whatever the page cannot answer goes to the kernel, the
 * sentry, with a system call. Freestanding: no libc, no relocations. */

typedef unsigned long u64;
typedef long s64;

struct kernel_timespec {
    s64 tv_sec;
    s64 tv_nsec;
};

struct kernel_timeval {
    s64 tv_sec;
    s64 tv_usec;
};

struct kernel_timezone {
    int tz_minuteswest;
    int tz_dsttime;
};

/* Mirrors lib.rs's TimePage. */
struct time_page {
    u64 seq;
    u64 base_tsc;
    u64 mono_base_ns;
    u64 real_base_ns;
    u64 boot_offset_ns;
    u64 mult;
    u64 shift;
    u64 max_delta;
};

/* The page right before the image (vdso.lds). */
extern const volatile struct time_page veil_time_page __attribute__((visibility("hidden")));

enum { REALTIME, MONOTONIC, BOOTTIME };

#define NSEC_PER_SEC 1000000000UL

static inline u64 rdtsc_ordered(void)
{
    unsigned int lo, hi;
    __asm__ volatile("lfence\n\trdtsc" : "=a"(lo), "=d"(hi) : : "memory");
    return ((u64)hi << 32) | lo;
}

static inline long syscall2(long nr, long a, long b)
{
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "0"(nr), "D"(a), "S"(b) : "rcx", "r11", "memory");
    return ret;
}

/* Nanoseconds on `clock`; -1 when the page cannot say (not set up yet, or
 * the TSC moved further than the sentry vouches for). */
static int read_ns(int clock, u64 *ns)
{
    const volatile struct time_page *p = &veil_time_page;
    for (;;) {
        u64 seq = p->seq;
        __asm__ volatile("" : : : "memory");
        if (seq & 1) {
            __asm__ volatile("pause");
            continue;
        }
        u64 base_tsc = p->base_tsc, mult = p->mult, shift = p->shift;
        u64 max_delta = p->max_delta;
        u64 base = clock == REALTIME ? p->real_base_ns : p->mono_base_ns;
        if (clock == BOOTTIME)
            base += p->boot_offset_ns;
        u64 tsc = rdtsc_ordered();
        __asm__ volatile("" : : : "memory");
        if (p->seq != seq)
            continue;
        u64 delta = tsc - base_tsc;
        if (mult == 0 || (s64)delta < 0 || delta > max_delta)
            return -1;
        *ns = base + (u64)(((unsigned __int128)delta * mult) >> shift);
        return 0;
    }
}

int __vdso_clock_gettime(int clock, struct kernel_timespec *ts)
{
    int which;
    switch (clock) {
    case 0: /* CLOCK_REALTIME */
    case 5: /* CLOCK_REALTIME_COARSE */
        which = REALTIME;
        break;
    case 1: /* CLOCK_MONOTONIC */
    case 6: /* CLOCK_MONOTONIC_COARSE */
        which = MONOTONIC;
        break;
    case 7: /* CLOCK_BOOTTIME */
        which = BOOTTIME;
        break;
    default:
        return syscall2(228, clock, (long)ts);
    }
    u64 ns;
    if (read_ns(which, &ns))
        return syscall2(228, clock, (long)ts);
    ts->tv_sec = ns / NSEC_PER_SEC;
    ts->tv_nsec = ns % NSEC_PER_SEC;
    return 0;
}
int clock_gettime(int, struct kernel_timespec *) __attribute__((weak, alias("__vdso_clock_gettime")));

int __vdso_gettimeofday(struct kernel_timeval *tv, struct kernel_timezone *tz)
{
    if (tv) {
        u64 ns;
        if (read_ns(REALTIME, &ns))
            return syscall2(96, (long)tv, (long)tz);
        tv->tv_sec = ns / NSEC_PER_SEC;
        tv->tv_usec = ns % NSEC_PER_SEC / 1000;
    }
    if (tz) {
        /* UTC, as the sentry reports it. */
        tz->tz_minuteswest = 0;
        tz->tz_dsttime = 0;
    }
    return 0;
}
int gettimeofday(struct kernel_timeval *, struct kernel_timezone *)
    __attribute__((weak, alias("__vdso_gettimeofday")));

s64 __vdso_time(s64 *t)
{
    u64 ns;
    if (read_ns(REALTIME, &ns))
        return syscall2(201, (long)t, 0);
    s64 secs = ns / NSEC_PER_SEC;
    if (t)
        *t = secs;
    return secs;
}
s64 time(s64 *) __attribute__((weak, alias("__vdso_time")));

/* Linux keeps (node << 12) | cpu in TSC_AUX, which rdtscp reads. */
long __vdso_getcpu(unsigned int *cpu, unsigned int *node, void *unused)
{
    unsigned int lo, hi, aux;
    (void)unused;
    __asm__ volatile("rdtscp" : "=a"(lo), "=d"(hi), "=c"(aux));
    (void)lo;
    (void)hi;
    if (cpu)
        *cpu = aux & 0xfff;
    if (node)
        *node = aux >> 12;
    return 0;
}
long getcpu(unsigned int *, unsigned int *, void *) __attribute__((weak, alias("__vdso_getcpu")));
