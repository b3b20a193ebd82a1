/*
 * sessions: process groups and sessions with Linux's permission rules,
 * the parent-death signal, child subreapers, and the SIGHUP+SIGCONT an
 * orphaned process group with a stopped member receives.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../veiltest.h"

static void groups(void)
{
	int status;
	int go[2];
	pipe(go);
	pid_t child = fork();
	if (child == 0) {
		char c;
		read(go[0], &c, 1);
		_exit(0);
	}
	report("getpgid(child) is ours: %d", getpgid(child) == getpgrp());
	report("getsid(child) is ours: %d", getsid(child) == getsid(0));
	report("setpgid child own group: %s", RES(setpgid(child, child)));
	report("getpgid(child) is child: %d", getpgid(child) == child);
	report("setpgid child back: %s", RES(setpgid(child, getpgrp())));
	report("setpgid to missing group: %s", RES(setpgid(child, 999999)));
	report("setpgid negative: %s", RES(setpgid(child, -1)));
	report("setpgid missing process: %s", RES(setpgid(999998, 0)));
	report("getpgid missing: %s", RES(getpgid(999999)));
	report("getsid missing: %s", RES(getsid(999999)));
	write(go[1], "x", 1);
	waitpid(child, &status, 0);

	child = fork();
	if (child == 0) {
		report("setpgid on parent: %s", RES(setpgid(getppid(), 0)));
		_exit(0);
	}
	waitpid(child, &status, 0);

	/* After exec, the parent may no longer move the child. */
	child = fork();
	if (child == 0) {
		close(go[1]);
		execl("/bin/sh", "sh", "-c", "read x", (char *)NULL);
		_exit(127);
	}
	close(go[0]);
	usleep(200000);
	report("setpgid after exec: %s", RES(setpgid(child, child)));
	close(go[1]);
	waitpid(child, &status, 0);
	report_status("exec'd child", status);

	child = fork();
	if (child == 0) {
		pid_t sid = setsid();
		report("setsid: new session led by me: %d", sid == getpid() && getsid(0) == getpid());
		report("setsid again: %s", RES(setsid()));
		report("leader setpgid: %s", RES(setpgid(0, 0)));
		_exit(0);
	}
	waitpid(child, &status, 0);
	report_status("session leader", status);

	/* A group leader cannot found a session. */
	child = fork();
	if (child == 0) {
		setpgid(0, 0);
		report("group leader setsid: %s", RES(setsid()));
		_exit(0);
	}
	waitpid(child, &status, 0);
}

static void on_hup(int sig)
{
	(void)sig;
	report("orphan: got SIGHUP, continued");
	_exit(5);
}

static void reapers_and_orphans(void)
{
	int status;
	report("subreaper on: %s", RES(prctl(PR_SET_CHILD_SUBREAPER, 1)));
	int on = 0;
	prctl(PR_GET_CHILD_SUBREAPER, &on);
	report("subreaper get: %d", on);
	pid_t me = getpid();

	int p[2];
	pipe(p);
	pid_t middle = fork();
	if (middle == 0) {
		pid_t grandchild = fork();
		if (grandchild == 0) {
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			int sig = 0;
			prctl(PR_GET_PDEATHSIG, &sig);
			report("pdeathsig get: %d", sig);
			write(p[1], "x", 1);
			for (;;)
				pause();
		}
		char c;
		read(p[0], &c, 1);
		_exit(0);
	}
	waitpid(middle, &status, 0);
	report_status("middle", status);
	pid_t got = wait(&status);
	report("grandchild reaped by subreaper: %d", got > 0);
	report_status("grandchild after parent death", status);

	middle = fork();
	if (middle == 0) {
		setsid();
		pid_t stopped = fork();
		if (stopped == 0) {
			setpgid(0, 0);
			signal(SIGHUP, on_hup);
			raise(SIGSTOP);
			report("orphan: resumed without SIGHUP");
			_exit(6);
		}
		waitpid(stopped, &status, WUNTRACED);
		report_status("member before orphaning", status);
		_exit(0);
	}
	waitpid(middle, &status, 0);
	got = wait(&status);
	report("orphan reaped by subreaper: %d", got > 0);
	report_status("orphaned member", status);

	/* Without a parent left to adopt it, a child reports its new one. */
	middle = fork();
	if (middle == 0) {
		pid_t grandchild = fork();
		if (grandchild == 0) {
			usleep(100000);
			report("reparented to subreaper: %d", getppid() == me);
			_exit(0);
		}
		_exit(0);
	}
	waitpid(middle, &status, 0);
	while (wait(&status) > 0)
		;
	prctl(PR_SET_CHILD_SUBREAPER, 0);
}

int main(void)
{
	groups();
	reapers_and_orphans();
	return finish();
}
