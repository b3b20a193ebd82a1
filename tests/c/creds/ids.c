/*
 * ids: the user and group ID state machine of a root process dropping
 * privileges (setresuid and friends, saved and filesystem IDs), the
 * capability changes that follow, supplementary groups, and file access
 * checks made with the filesystem IDs and capabilities.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <grp.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../veiltest.h"
#include "../caps.h"

static void show(const char *step)
{
	uid_t r, e, s;
	gid_t gr, ge, gs;
	getresuid(&r, &e, &s);
	getresgid(&gr, &ge, &gs);
	report("%-28s uid=%u/%u/%u fsuid=%d gid=%u/%u/%u fsgid=%d %s", step, r, e, s,
	       setfsuid(-1), gr, ge, gs, setfsgid(-1), caps_str());
}

#define TRY(step, call)                                          \
	do {                                                     \
		long _r = (call);                                \
		report("%-28s = %s", step, res(_r, errno));      \
	} while (0)

static void groups(void)
{
	gid_t set[] = { 50, 3, 20 }, got[8];
	TRY("setgroups(3)", setgroups(3, set));
	int n = getgroups(0, NULL);
	report("getgroups(0) = %d", n);
	n = getgroups(8, got);
	report("getgroups = %d: %u %u %u", n, got[0], got[1], got[2]);
	TRY("getgroups(too small)", getgroups(1, got));
	TRY("getgroups(-1)", syscall(SYS_getgroups, -1, got));
	TRY("setgroups(65537)", syscall(SYS_setgroups, 65537, set));
	TRY("setgroups(-1)", syscall(SYS_setgroups, -1, set));
	TRY("setgroups(bad pointer)", syscall(SYS_setgroups, 2, (void *)8));
	TRY("setgroups(0)", setgroups(0, NULL));
	report("getgroups(0) = %d", getgroups(0, NULL));
}

/* A walk through root's ways of giving up its identity. */
static void walk(void)
{
	show("start");
	TRY("setresgid(100,200,300)", setresgid(100, 200, 300));
	show("gids set");
	TRY("setfsgid(300) old", setfsgid(300));
	show("fsgid 300");
	TRY("setresuid(1000,0,0)", setresuid(1000, 0, 0));
	show("real 1000");
	TRY("setresuid(-1,1000,-1)", setresuid(-1, 1000, -1));
	show("effective 1000");
	TRY("setresuid(-1,0,-1)", setresuid(-1, 0, -1));
	show("effective root again");
	TRY("setfsuid(1000) old", setfsuid(1000));
	show("fsuid 1000");
	TRY("setfsuid(0) old", setfsuid(0));
	show("fsuid 0");
	TRY("setreuid(-1,2000)", setreuid(-1, 2000));
	show("setreuid(-1,2000)");
	TRY("setreuid(0,-1)", setreuid(0, -1));
	show("setreuid(0,-1)");
	TRY("setuid(1000)", setuid(1000));
	show("setuid(1000) as root");
	TRY("setuid(0)", setuid(0));
	TRY("setuid(-1)", syscall(SYS_setuid, -1));
	TRY("setresuid(0,-1,-1)", setresuid(0, -1, -1));
	TRY("setreuid(-1,0)", setreuid(-1, 0));
	TRY("setreuid(1000,1000)", setreuid(1000, 1000));
	TRY("setgid(0)", setgid(0));
	TRY("setgid(200)", setgid(200));
	show("setgid(200)");
	TRY("setregid(300,-1)", setregid(300, -1));
	show("setregid(300,-1)");
	TRY("setresgid(1,-1,-1)", setresgid(1, -1, -1));
	TRY("setgroups as user", setgroups(0, NULL));
	TRY("setfsuid(0) old", setfsuid(0));
	TRY("setfsgid(0) old", setfsgid(0));
	TRY("capset raise", cap_set(KNOWN_CAPS, KNOWN_CAPS, 0));
	show("end");
}

/* Keepcaps keeps the permitted set across the drop. */
static void keepcaps(void)
{
	TRY("PR_GET_KEEPCAPS", prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0));
	TRY("PR_SET_KEEPCAPS(2)", prctl(PR_SET_KEEPCAPS, 2, 0, 0, 0));
	TRY("PR_SET_KEEPCAPS(1)", prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0));
	TRY("PR_GET_KEEPCAPS", prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0));
	TRY("setresuid(7,7,7)", setresuid(7, 7, 7));
	show("keepcaps drop");
	TRY("capset eff=prm", cap_set(CAPBIT(CAP_SETUID), KNOWN_CAPS, 0));
	show("raised CAP_SETUID");
	TRY("setuid(8) with CAP_SETUID", setuid(8));
	show("setuid(8)");
	TRY("PR_GET_SECUREBITS", prctl(PR_GET_SECUREBITS, 0, 0, 0, 0));
}

static char path_private[64], path_public[64], path_none[64];

static void access_checks(const char *who)
{
	const char *paths[] = { path_private, path_public, path_none };
	const char *names[] = { "0600", "0644", "0000" };
	for (int i = 0; i < 3; i++) {
		int fd = open(paths[i], O_RDONLY);
		int rerr = errno;
		if (fd >= 0)
			close(fd);
		int wfd = open(paths[i], O_WRONLY);
		int werr = errno;
		if (wfd >= 0)
			close(wfd);
		int acc = access(paths[i], R_OK) ? errno : 0;
		int eacc = faccessat(AT_FDCWD, paths[i], R_OK, AT_EACCESS) ? errno : 0;
		report("%s %s: access(R)=%s", who, names[i], errname(acc));
		report("%s %s: eaccess(R)=%s", who, names[i], errname(eacc));
		report("%s %s: open(R)=%s open(W)=%s", who, names[i], fd >= 0 ? "OK" : errname(rerr),
		       wfd >= 0 ? "OK" : errname(werr));
	}
}

static int child(void (*fn)(void))
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		fn();
		fflush(stdout);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	return status;
}

static void as_user(void)
{
	setresuid(1000, 1000, 1000);
	access_checks("uid 1000");
}

static void as_setuid_root(void)
{
	setresuid(1000, 0, 0);
	access_checks("ruid 1000 euid 0");
}

static void as_fsuid_user(void)
{
	setfsuid(1000);
	access_checks("fsuid 1000");
}

static void as_root_without_override(void)
{
	cap_set(KNOWN_CAPS & ~CAPBIT(CAP_DAC_OVERRIDE), KNOWN_CAPS, 0);
	access_checks("root w/o DAC_OVERRIDE");
}

int main(void)
{
	check(narrow_caps() == 0, "narrow capabilities", NULL);
	check(setgroups(0, NULL) == 0, "clear groups", NULL);
	groups();
	report("walk exit %d", child(walk));
	report("keepcaps exit %d", child(keepcaps));

	umask(0);
	snprintf(path_private, sizeof path_private, "/tmp/veil-ids-%d-a", getpid());
	snprintf(path_public, sizeof path_public, "/tmp/veil-ids-%d-b", getpid());
	snprintf(path_none, sizeof path_none, "/tmp/veil-ids-%d-c", getpid());
	int a = open(path_private, O_CREAT | O_EXCL | O_WRONLY, 0600);
	int b = open(path_public, O_CREAT | O_EXCL | O_WRONLY, 0644);
	int c = open(path_none, O_CREAT | O_EXCL | O_WRONLY, 0);
	check(a >= 0 && b >= 0 && c >= 0, "create files", NULL);
	close(a);
	close(b);
	close(c);
	access_checks("root");
	child(as_user);
	child(as_setuid_root);
	child(as_fsuid_user);
	child(as_root_without_override);
	unlink(path_private);
	unlink(path_public);
	unlink(path_none);
	return finish();
}
