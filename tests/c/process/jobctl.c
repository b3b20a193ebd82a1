/*
 * jobctl: job control on a terminal (stdin, stdout and stderr must be one).
 * A new session takes the terminal as its controlling terminal; background
 * groups reading it get SIGTTIN, writing it with TOSTOP or changing its
 * settings get SIGTTOU, unless the signal is ignored or blocked; tcsetpgrp
 * checks its group; TIOCNOTTY gives the terminal up.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "../veiltest.h"

/* Runs `job` in a new background process group of this session and
 * reports how it ends (or stops, which is then ended with SIGKILL). */
static void background(const char *what, int (*job)(void))
{
	pid_t pid = fork();
	if (pid == 0) {
		setpgid(0, 0);
		_exit(job());
	}
	setpgid(pid, pid);
	int status;
	waitpid(pid, &status, WUNTRACED);
	report_status(what, status);
	if (WIFSTOPPED(status)) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
}

static int read_tty(void)
{
	char c;
	return read(0, &c, 1) < 0 ? 100 + errno : 0;
}

static int read_tty_ignoring(void)
{
	signal(SIGTTIN, SIG_IGN);
	return read_tty();
}

static int write_tty(void)
{
	return write(1, "background write\n", 17) == 17 ? 0 : 100 + errno;
}

static int set_attr(void)
{
	struct termios t;
	tcgetattr(0, &t);
	return tcsetattr(0, TCSANOW, &t) == 0 ? 0 : 100 + errno;
}

static int take_foreground_blocked(void)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGTTOU);
	sigprocmask(SIG_BLOCK, &s, NULL);
	pid_t fg_before = tcgetpgrp(0);
	if (tcsetpgrp(0, getpgrp()) != 0)
		return 100 + errno;
	int mine = tcgetpgrp(0) == getpgrp();
	tcsetpgrp(0, fg_before);
	return mine ? 0 : 1;
}

static void session(void)
{
	report("setsid: %d", setsid() == getpid());
	report("TIOCSCTTY: %s", RES(ioctl(0, TIOCSCTTY, 1)));
	report("foreground is ours: %d", tcgetpgrp(0) == getpgrp());
	pid_t sid = 0;
	ioctl(0, TIOCGSID, &sid);
	report("TIOCGSID is ours: %d", sid == getsid(0));

	background("background read", read_tty);
	background("background read, SIGTTIN ignored", read_tty_ignoring);
	background("background write", write_tty);
	background("background tcsetattr", set_attr);
	background("background tcsetpgrp, SIGTTOU blocked", take_foreground_blocked);

	struct termios t;
	tcgetattr(0, &t);
	t.c_lflag |= TOSTOP;
	report("set TOSTOP: %s", RES(tcsetattr(0, TCSANOW, &t)));
	background("background write with TOSTOP", write_tty);
	t.c_lflag &= ~TOSTOP;
	tcsetattr(0, TCSANOW, &t);

	report("tcsetpgrp missing group: %s", RES(tcsetpgrp(0, 999999)));
	report("tcsetpgrp other session: %s", RES(tcsetpgrp(0, getpgid(getppid()))));
	report("tcsetpgrp negative: %s", RES(tcsetpgrp(0, -5)));

	signal(SIGHUP, SIG_IGN);
	report("TIOCNOTTY: %s", RES(ioctl(0, TIOCNOTTY)));
	report("tcgetpgrp after: %s", RES(tcgetpgrp(0)));
}

int main(void)
{
	if (!isatty(0)) {
		report("stdin is not a terminal");
		return 1;
	}
	pid_t pid = fork();
	if (pid == 0) {
		session();
		_exit(finish());
	}
	int status;
	waitpid(pid, &status, 0);
	report_status("session", status);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
