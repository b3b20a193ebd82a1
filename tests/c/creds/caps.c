/*
 * caps: capget/capset version negotiation and errors, the bounding set,
 * ambient capabilities, securebits, no_new_privs, and the capabilities
 * execve computes for root and for other users (argv[1] "show" is the
 * re-executed program printing what it got).
 */
#define _GNU_SOURCE
#include <sys/wait.h>

#include "../veiltest.h"
#include "../caps.h"

#define TRY(step, call)                                          \
	do {                                                     \
		long _r = (call);                                \
		report("%-34s = %s", step, res(_r, errno));      \
	} while (0)

static const char *self;

static void versions(void)
{
	struct __user_cap_header_struct h;
	struct __user_cap_data_struct d[2];
	unsigned v[] = { _LINUX_CAPABILITY_VERSION_1, _LINUX_CAPABILITY_VERSION_2,
			 _LINUX_CAPABILITY_VERSION_3 };
	for (int i = 0; i < 3; i++) {
		memset(d, 0xff, sizeof d);
		h.version = v[i];
		h.pid = 0;
		long r = syscall(SYS_capget, &h, d);
		report("capget v%d = %s eff=%x/%x", i + 1, res(r, errno), d[0].effective,
		       d[1].effective);
	}
	h.version = 0x12345678;
	h.pid = 0;
	TRY("capget bad version", syscall(SYS_capget, &h, d));
	report("version written back %s", h.version == _LINUX_CAPABILITY_VERSION_3 ? "v3" : "other");
	h.version = 0;
	TRY("capget bad version NULL data", syscall(SYS_capget, &h, NULL));
	report("version written back %s", h.version == _LINUX_CAPABILITY_VERSION_3 ? "v3" : "other");
	h.version = _LINUX_CAPABILITY_VERSION_3;
	TRY("capget NULL data", syscall(SYS_capget, &h, NULL));
	TRY("capget NULL header", syscall(SYS_capget, NULL, d));
	h.pid = -1;
	TRY("capget pid -1", syscall(SYS_capget, &h, d));
	h.pid = getpid();
	TRY("capget own pid", syscall(SYS_capget, &h, d));
	h.version = 0x1;
	TRY("capset bad version", syscall(SYS_capset, &h, d));
	h.version = _LINUX_CAPABILITY_VERSION_3;
	h.pid = getpid() + 1000;
	TRY("capset other pid", syscall(SYS_capset, &h, d));
	TRY("capset bad data", ({
		    h.pid = 0;
		    syscall(SYS_capset, &h, (void *)8);
	    }));
}

static void capset_rules(void)
{
	TRY("capset eff not in prm", cap_set(CAPBIT(CAP_KILL), CAPBIT(CAP_SETUID), 0));
	TRY("capset shrink", cap_set(CAPBIT(CAP_SETPCAP), KNOWN_CAPS & ~CAPBIT(CAP_KILL), 0));
	report("after shrink %s", caps_str());
	TRY("capset regrow", cap_set(0, KNOWN_CAPS, 0));
	TRY("capset inh from bounding", cap_set(CAPBIT(CAP_SETPCAP), KNOWN_CAPS & ~CAPBIT(CAP_KILL),
						CAPBIT(CAP_KILL)));
	report("inheritable %s", caps_str());
	TRY("capset inh beyond bounding",
	    cap_set(0, KNOWN_CAPS & ~CAPBIT(CAP_KILL), CAPBIT(CAP_SYS_ADMIN)));
	TRY("capset drop SETPCAP", cap_set(0, KNOWN_CAPS & ~CAPBIT(CAP_KILL), CAPBIT(CAP_KILL)));
	TRY("capset inh not permitted", cap_set(0, CAPBIT(CAP_CHOWN), CAPBIT(CAP_KILL) | CAPBIT(CAP_MKNOD)));
	TRY("PR_CAPBSET_DROP w/o SETPCAP", prctl(PR_CAPBSET_DROP, CAP_CHOWN, 0, 0, 0));
	TRY("PR_SET_SECUREBITS w/o SETPCAP", prctl(PR_SET_SECUREBITS, 0, 0, 0, 0));
}

static void bounding_and_ambient(void)
{
	report("bounding %llx", (unsigned long long)bounding());
	TRY("PR_CAPBSET_READ(CAP_SETUID)", prctl(PR_CAPBSET_READ, CAP_SETUID, 0, 0, 0));
	TRY("PR_CAPBSET_READ(last+1)", prctl(PR_CAPBSET_READ, CAP_LAST_CAP + 1, 0, 0, 0));
	TRY("PR_CAPBSET_READ(-1)", prctl(PR_CAPBSET_READ, -1L, 0, 0, 0));
	TRY("PR_CAPBSET_DROP(CAP_FSETID)", prctl(PR_CAPBSET_DROP, CAP_FSETID, 0, 0, 0));
	TRY("PR_CAPBSET_DROP(last+1)", prctl(PR_CAPBSET_DROP, CAP_LAST_CAP + 1, 0, 0, 0));
	report("bounding %llx", (unsigned long long)bounding());

	TRY("ambient raise, not inheritable", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_KILL, 0, 0));
	TRY("capset inh=KILL", cap_set(KNOWN_CAPS, KNOWN_CAPS, CAPBIT(CAP_KILL)));
	TRY("ambient raise KILL", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_KILL, 0, 0));
	TRY("ambient is_set KILL", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_KILL, 0, 0));
	TRY("ambient is_set CHOWN", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_CHOWN, 0, 0));
	TRY("ambient bad cap", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, 99, 0, 0));
	TRY("ambient bad arg4", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_KILL, 1, 0));
	TRY("ambient bad op", prctl(PR_CAP_AMBIENT, 9, CAP_KILL, 0, 0));
	TRY("ambient clear_all bad arg", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 1, 0, 0));
	TRY("ambient lower KILL", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, CAP_KILL, 0, 0));
	TRY("ambient is_set KILL", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_KILL, 0, 0));
	TRY("ambient raise KILL", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_KILL, 0, 0));
	TRY("capset inh=0 drops ambient", cap_set(KNOWN_CAPS, KNOWN_CAPS, 0));
	TRY("ambient is_set KILL", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_KILL, 0, 0));
	TRY("ambient clear_all", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0));
}

static void securebits(void)
{
	TRY("PR_GET_SECUREBITS", prctl(PR_GET_SECUREBITS, 0, 0, 0, 0));
	TRY("PR_SET_SECUREBITS(unknown)", prctl(PR_SET_SECUREBITS, 1 << 20, 0, 0, 0));
	TRY("PR_SET_SECUREBITS(KEEP_CAPS|LOCKED)", prctl(PR_SET_SECUREBITS, 0x30, 0, 0, 0));
	TRY("PR_GET_KEEPCAPS", prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0));
	TRY("PR_SET_KEEPCAPS(0) locked", prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0));
	TRY("PR_SET_SECUREBITS(unlock)", prctl(PR_SET_SECUREBITS, 0x10, 0, 0, 0));
	TRY("PR_GET_NO_NEW_PRIVS", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
	TRY("PR_SET_NO_NEW_PRIVS(2)", prctl(PR_SET_NO_NEW_PRIVS, 2, 0, 0, 0));
	TRY("PR_SET_NO_NEW_PRIVS(1)", prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
	TRY("PR_GET_NO_NEW_PRIVS", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
	TRY("PR_GET_NO_NEW_PRIVS(bad arg)", prctl(PR_GET_NO_NEW_PRIVS, 1, 0, 0, 0));
}

static void show_after_exec(void)
{
	uid_t r, e, s;
	getresuid(&r, &e, &s);
	report("  after exec: uid=%u/%u/%u %s amb(KILL)=%d keepcaps=%d nnp=%d", r, e, s,
	       caps_str(), prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_KILL, 0, 0),
	       prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0), prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
}

/* Runs `setup` in a child that then re-executes this program. */
static void exec_case(const char *name, void (*setup)(void))
{
	report("exec %s", name);
	pid_t pid = fork();
	if (pid == 0) {
		setup();
		execl(self, self, "show", (char *)NULL);
		_exit(99);
	}
	int status;
	waitpid(pid, &status, 0);
	report("  status %d", status);
}

static void root_reduced(void)
{
	cap_set(0, CAPBIT(CAP_KILL), CAPBIT(CAP_CHOWN));
}

static void user_plain(void)
{
	setresuid(1000, 1000, 1000);
}

static void user_ambient(void)
{
	prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
	setresuid(1000, 1000, 1000);
	cap_set(0, KNOWN_CAPS, CAPBIT(CAP_KILL));
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_KILL, 0, 0);
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

static void setuid_root_only(void)
{
	setresuid(0, 1000, 1000);
}

int main(int argc, char **argv)
{
	self = argv[0];
	if (argc > 1) {
		show_after_exec();
		return 0;
	}
	check(narrow_caps() == 0, "narrow capabilities", NULL);
	report("start %s", caps_str());
	versions();
	exec_case("root with reduced sets", root_reduced);
	exec_case("user", user_plain);
	exec_case("user with ambient KILL", user_ambient);
	exec_case("real root, effective user", setuid_root_only);
	bounding_and_ambient();
	securebits();
	capset_rules();
	return finish();
}
