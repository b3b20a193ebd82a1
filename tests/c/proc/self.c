/*
 * self: /proc describes the calling process as its own syscalls do —
 * stat, status, comm, exe/cwd/root, fd links, task/, thread-self, the
 * /proc listing, a child's entries while it runs, as a zombie and after
 * it is reaped, limits and the system files that mirror uname.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../veiltest.h"

static char *slurp(const char *path)
{
	static char buf[8192];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return NULL;
	size_t n = 0;
	ssize_t r;
	/* Small reads: the file is a snapshot read at increasing offsets. */
	while (n < sizeof buf - 1 && (r = read(fd, buf + n, 7)) > 0)
		n += (size_t)r;
	close(fd);
	buf[n] = 0;
	return buf;
}

static const char *link_of(const char *path)
{
	static char buf[PATH_MAX];
	ssize_t n = readlink(path, buf, sizeof buf - 1);
	if (n < 0)
		return "(error)";
	buf[n] = 0;
	return buf;
}

static int dir_has(const char *dir, const char *name)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int found = 0;
	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (!strcmp(e->d_name, name))
			found = 1;
	closedir(d);
	return found;
}

/* The status line "Key:\tvalue", value copied out. */
static const char *status_field(const char *status, const char *key)
{
	static char val[256];
	char pat[64];
	snprintf(pat, sizeof pat, "\n%s:\t", key);
	const char *p = strstr(status, pat);
	if (!p && !strncmp(status, pat + 1, strlen(pat + 1)))
		p = status - 1;
	if (!p)
		return "(missing)";
	p += strlen(pat);
	size_t n = strcspn(p, "\n");
	snprintf(val, sizeof val, "%.*s", (int)n, p);
	return val;
}

static void check_stat(const char *name, const char *path, int pid, int ppid, const char *comm, char want_state)
{
	char *s = slurp(path);
	if (!s) {
		check(0, name, "open failed");
		return;
	}
	int fpid, fppid, pgrp, sid, fields = 0;
	char state;
	char *close_paren = strrchr(s, ')');
	char *open_paren = strchr(s, '(');
	int comm_ok = open_paren && close_paren &&
		      (size_t)(close_paren - open_paren - 1) == strlen(comm) &&
		      !strncmp(open_paren + 1, comm, strlen(comm));
	for (char *p = s; *p; p++)
		if (*p == ' ')
			fields++;
	sscanf(s, "%d", &fpid);
	int n = close_paren ? sscanf(close_paren + 2, "%c %d %d %d", &state, &fppid, &pgrp, &sid) : 0;
	check(n == 4 && fpid == pid && fppid == ppid && comm_ok && state == want_state &&
		      fields == 51,
	      name, "pid=%d ppid=%d comm=%d state=%c fields=%d", fpid == pid, fppid == ppid,
	      comm_ok, n == 4 ? state : '?', fields + 1);
	if (pid == getpid())
		check(pgrp == getpgrp() && sid == getsid(0), "stat pgrp/session", NULL);
}

static void *thread_main(void *arg)
{
	const char *comm = arg;
	char want[64];
	snprintf(want, sizeof want, "%d/task/%d", getpid(), gettid());
	check(!strcmp(link_of("/proc/thread-self"), want), "thread-self in thread", NULL);
	char tid[16];
	snprintf(tid, sizeof tid, "%d", gettid());
	check(dir_has("/proc/self/task", tid), "task/ lists the thread", NULL);
	char path[64];
	snprintf(path, sizeof path, "/proc/self/task/%d/stat", gettid());
	check_stat("thread stat", path, gettid(), getppid(), comm, 'R');
	return NULL;
}

int main(int argc, char **argv)
{
	(void)argc;
	char comm[16] = "";
	prctl(PR_GET_NAME, comm);
	char pidstr[16];
	snprintf(pidstr, sizeof pidstr, "%d", getpid());

	check(!strcmp(link_of("/proc/self"), pidstr), "self link", NULL);
	check(dir_has("/proc", pidstr), "/proc lists us", NULL);
	check(dir_has("/proc", "self") && dir_has("/proc", "thread-self"), "/proc lists self", NULL);
	check_stat("self stat", "/proc/self/stat", getpid(), getppid(), comm, 'R');

	char *st = slurp("/proc/self/status");
	char want[128];
	check(!strcmp(status_field(st, "Name"), comm), "status Name", NULL);
	check(!strcmp(status_field(st, "State"), "R (running)"), "status State", "%s",
	      status_field(st, "State"));
	check(atoi(status_field(st, "Pid")) == getpid(), "status Pid", NULL);
	check(atoi(status_field(st, "Tgid")) == getpid(), "status Tgid", NULL);
	check(atoi(status_field(st, "PPid")) == getppid(), "status PPid", NULL);
	snprintf(want, sizeof want, "%d\t%d\t%d\t%d", getuid(), geteuid(), getuid(), geteuid());
	check(!strcmp(status_field(st, "Uid"), want), "status Uid", "%s", status_field(st, "Uid"));
	snprintf(want, sizeof want, "%d\t%d\t%d\t%d", getgid(), getegid(), getgid(), getegid());
	check(!strcmp(status_field(st, "Gid"), want), "status Gid", NULL);
	check(atoi(status_field(st, "Threads")) == 1, "status Threads", NULL);

	snprintf(want, sizeof want, "%s\n", comm);
	check(!strcmp(slurp("/proc/self/comm"), want), "comm", NULL);
	prctl(PR_SET_NAME, "renamed");
	check(!strcmp(slurp("/proc/self/comm"), "renamed\n"), "comm after PR_SET_NAME", NULL);
	prctl(PR_SET_NAME, comm);

	char real[PATH_MAX];
	check(realpath(argv[0], real) && !strcmp(link_of("/proc/self/exe"), real), "exe link",
	      NULL);
	char cwd[PATH_MAX];
	check(getcwd(cwd, sizeof cwd) && !strcmp(link_of("/proc/self/cwd"), cwd), "cwd link", NULL);
	check(!strcmp(link_of("/proc/self/root"), "/"), "root link", NULL);
	struct stat a, b;
	check(stat("/proc/self/exe", &a) == 0 && stat(real, &b) == 0 && a.st_ino == b.st_ino,
	      "exe follows to the binary", NULL);

	int p[2];
	pipe(p);
	struct stat ps;
	fstat(p[0], &ps);
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", p[0]);
	snprintf(want, sizeof want, "pipe:[%lu]", (unsigned long)ps.st_ino);
	check(!strcmp(link_of(path), want), "fd link of a pipe", "%.6s", link_of(path));
	int efd = eventfd(0, 0);
	snprintf(path, sizeof path, "/proc/self/fd/%d", efd);
	check(!strcmp(link_of(path), "anon_inode:[eventfd]"), "fd link of an eventfd", NULL);
	int nfd = open("/dev/null", O_RDONLY);
	snprintf(path, sizeof path, "/proc/self/fd/%d", nfd);
	check(!strcmp(link_of(path), "/dev/null"), "fd link of /dev/null", NULL);
	snprintf(want, sizeof want, "%d", nfd);
	check(dir_has("/proc/self/fd", want), "fd/ lists it", NULL);
	close(nfd);
	report("readlink of a closed fd: %s", RES(readlink(path, real, sizeof real)));

	char *lim = slurp("/proc/self/limits");
	const char *head =
		"Limit                     Soft Limit           Hard Limit           Units     \n";
	check(!strncmp(lim, head, strlen(head)), "limits header", NULL);
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	snprintf(want, sizeof want, "Max open files            %-20lu %-20lu files     \n",
		 (unsigned long)rl.rlim_cur, (unsigned long)rl.rlim_max);
	check(strstr(lim, want) != NULL, "limits open files", NULL);

	struct utsname u;
	uname(&u);
	snprintf(want, sizeof want, "%s\n", u.release);
	check(!strcmp(slurp("/proc/sys/kernel/osrelease"), want), "osrelease", NULL);
	snprintf(want, sizeof want, "%s\n", u.nodename);
	check(!strcmp(slurp("/proc/sys/kernel/hostname"), want), "hostname", NULL);
	check(!strncmp(slurp("/proc/version"), "Linux version ", 14), "version", NULL);
	double up = -1;
	sscanf(slurp("/proc/uptime"), "%lf", &up);
	check(up >= 0, "uptime", NULL);

	snprintf(want, sizeof want, "%s/task/%d", pidstr, gettid());
	check(!strcmp(link_of("/proc/thread-self"), want), "thread-self", NULL);
	pthread_t th;
	pthread_create(&th, NULL, thread_main, comm);
	pthread_join(th, NULL);

	int go[2], back[2];
	pipe(go);
	pipe(back);
	pid_t child = fork();
	if (child == 0) {
		char c;
		prctl(PR_SET_NAME, "kid");
		write(back[1], "r", 1);
		read(go[0], &c, 1);
		_exit(3);
	}
	char c;
	read(back[0], &c, 1);
	snprintf(path, sizeof path, "/proc/%d/comm", child);
	check(!strcmp(slurp(path), "kid\n"), "child comm", NULL);
	snprintf(path, sizeof path, "/proc/%d/stat", child);
	char *cs = slurp(path);
	int cppid = 0;
	char *cp = strrchr(cs, ')');
	sscanf(cp + 4, "%d", &cppid);
	check(cppid == getpid(), "child stat ppid", NULL);
	write(go[1], "x", 1);
	siginfo_t si;
	waitid(P_PID, child, &si, WEXITED | WNOWAIT);
	check_stat("zombie stat", path, child, getpid(), "kid", 'Z');
	waitpid(child, NULL, 0);
	report("stat of a reaped child: %s", RES(open(path, O_RDONLY)));
	snprintf(want, sizeof want, "%d", child);
	check(!dir_has("/proc", want), "/proc forgets the reaped child", NULL);
	return finish();
}
