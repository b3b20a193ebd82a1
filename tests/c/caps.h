/*
 * Capability helpers for the tests under tests/c/creds/. The host's root
 * may lack some capabilities (containers drop several), so each program
 * first narrows its sets to KNOWN_CAPS, which a container's root keeps,
 * and prints sets relative to that.
 */
#ifndef VEIL_CAPS_H
#define VEIL_CAPS_H

#include <linux/capability.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CAPBIT(c) (1ULL << (c))
#define KNOWN_CAPS (CAPBIT(CAP_CHOWN) | CAPBIT(CAP_DAC_OVERRIDE) | CAPBIT(CAP_FOWNER) | \
		    CAPBIT(CAP_FSETID) | CAPBIT(CAP_KILL) | CAPBIT(CAP_SETGID) |            \
		    CAPBIT(CAP_SETUID) | CAPBIT(CAP_SETPCAP))

struct capsets {
	uint64_t eff, prm, inh;
};

__attribute__((unused)) static int cap_get(int pid, struct capsets *s)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, pid };
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d))
		return -1;
	s->eff = d[0].effective | (uint64_t)d[1].effective << 32;
	s->prm = d[0].permitted | (uint64_t)d[1].permitted << 32;
	s->inh = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
	return 0;
}

__attribute__((unused)) static int cap_set(uint64_t eff, uint64_t prm, uint64_t inh)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = {
		{ (uint32_t)eff, (uint32_t)prm, (uint32_t)inh },
		{ (uint32_t)(eff >> 32), (uint32_t)(prm >> 32), (uint32_t)(inh >> 32) },
	};
	return (int)syscall(SYS_capset, &h, d);
}

/* "eff=... prm=... inh=..." of the calling thread, in hex. */
__attribute__((unused)) static const char *caps_str(void)
{
	static char buf[96];
	struct capsets s;
	if (cap_get(0, &s))
		return "capget failed";
	snprintf(buf, sizeof buf, "eff=%llx prm=%llx inh=%llx", (unsigned long long)s.eff,
		 (unsigned long long)s.prm, (unsigned long long)s.inh);
	return buf;
}

/* The bounding set as a mask, read with PR_CAPBSET_READ. */
__attribute__((unused)) static uint64_t bounding(void)
{
	uint64_t m = 0;
	for (int c = 0; c <= CAP_LAST_CAP; c++)
		if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1)
			m |= CAPBIT(c);
	return m;
}

/* Narrows every set to KNOWN_CAPS: returns 0 on success. */
__attribute__((unused)) static int narrow_caps(void)
{
	for (int c = 0; c <= CAP_LAST_CAP; c++)
		if (!(KNOWN_CAPS & CAPBIT(c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0))
			return -1;
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	return cap_set(KNOWN_CAPS, KNOWN_CAPS, 0);
}

#endif
