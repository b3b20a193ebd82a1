/*
 * Pseudo-terminals: posix_openpt/grantpt/unlockpt/ptsname, the line
 * discipline (canonical editing, echo, ONLCR, raw mode with VMIN), signal
 * characters and SIGWINCH for the foreground group of a controlling pty,
 * /dev/tty, and what each end sees once the other is closed.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include "../veiltest.h"

/* Reads from the master until `want` has been seen (or EOF/error), and
 * prints what came, with control characters escaped. */
static void read_until(int m, const char *want, const char *what)
{
	char buf[256];
	size_t len = 0;
	while (len < sizeof buf - 1) {
		ssize_t n = read(m, buf + len, sizeof buf - 1 - len);
		if (n <= 0)
			break;
		len += n;
		buf[len] = 0;
		if (strstr(buf, want))
			break;
	}
	buf[len] = 0;
	char esc[1024];
	size_t j = 0;
	for (size_t i = 0; i < len && j < sizeof esc - 5; i++) {
		unsigned char c = buf[i];
		if (c < 0x20 || c == 0x7f)
			j += snprintf(esc + j, sizeof esc - j, "\\x%02x", c);
		else
			esc[j++] = c;
	}
	esc[j] = 0;
	report("%s: \"%s\"", what, esc);
}

static int open_master(char *name, size_t len)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m < 0 || grantpt(m) || unlockpt(m) || ptsname_r(m, name, len)) {
		report("openpt failed: %s", errname(errno));
		exit(1);
	}
	return m;
}

static void basics(void)
{
	char name[64];
	int m = open_master(name, sizeof name);
	check(strncmp(name, "/dev/pts/", 9) == 0, "ptsname prefix", "%.9s", name);
	unsigned n;
	check(ioctl(m, TIOCGPTN, &n) == 0 && strtoul(name + 9, NULL, 10) == n, "TIOCGPTN", NULL);
	check(isatty(m), "master isatty", NULL);
	struct stat st;
	int r0 = stat(name, &st);
	check(r0 == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 136, "slave node", "mode %o",
	      st.st_mode & 07777);
	r0 = stat("/dev/ptmx", &st);
	check(r0 == 0 && st.st_rdev == makedev(5, 2), "/dev/ptmx", "mode %o", st.st_mode & 07777);
	r0 = stat("/dev/pts/ptmx", &st);
	check(r0 == 0 && st.st_rdev == makedev(5, 2), "/dev/pts/ptmx", "mode %o",
	      st.st_mode & 07777);
	r0 = stat("/dev/pts", &st);
	check(r0 == 0 && S_ISDIR(st.st_mode), "/dev/pts", "mode %o", st.st_mode & 07777);

	int s = open(name, O_RDWR | O_NOCTTY);
	struct termios t;
	tcgetattr(s, &t);
	report("slave termios iflag %x oflag %x cflag %x lflag %x", t.c_iflag, t.c_oflag, t.c_cflag,
	       t.c_lflag);
	tcgetattr(m, &t);
	report("master termios lflag %x", t.c_lflag);

	/* Canonical input: erase and kill, echoed on the master; a read
	 * returns one line. */
	write(m, "ab\x7f" "c\rxy\x15q\n", 10);
	char buf[64] = "";
	ssize_t r = read(s, buf, sizeof buf);
	check(r == 3 && memcmp(buf, "ac\n", 3) == 0, "canonical line 1", "%zd", r);
	r = read(s, buf, sizeof buf);
	check(r == 2 && memcmp(buf, "q\n", 2) == 0, "canonical line 2", "%zd", r);
	read_until(m, "q\r\n", "echo");
	write(m, "one\ntwo\x04", 8);
	r = read(s, buf, 2);
	report("partial read %zd", r);
	r = read(s, buf, sizeof buf);
	report("rest of line %zd", r);
	r = read(s, buf, sizeof buf);
	report("EOF-terminated line %zd", r);
	read_until(m, "two", "echo 2");

	/* Output processing. */
	write(s, "out\n", 4);
	read_until(m, "\n", "ONLCR");
	t.c_oflag &= ~OPOST;
	tcsetattr(s, TCSANOW, &t);
	write(s, "raw\n", 4);
	read_until(m, "\n", "no OPOST");

	/* Raw mode: VMIN=1, no echo. */
	tcgetattr(s, &t);
	cfmakeraw(&t);
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	tcsetattr(s, TCSANOW, &t);
	write(m, "\x03z\r", 3);
	r = read(s, buf, sizeof buf);
	check(r == 3 && memcmp(buf, "\x03z\r", 3) == 0, "raw read", "%zd", r);
	struct pollfd p = {m, POLLIN, 0};
	report("master poll after raw input: %d", poll(&p, 1, 0));
	p.fd = s;
	report("slave poll empty: %d", poll(&p, 1, 0));
	fcntl(s, F_SETFL, O_NONBLOCK);
	report("slave nonblocking read: %s", RES(read(s, buf, sizeof buf)));

	/* Last slave closed: the master reads what is left, then EIO. */
	write(s, "bye", 3);
	close(s);
	report("master read: %s", RES(read(m, buf, sizeof buf)));
	p.fd = m;
	p.events = POLLIN;
	poll(&p, 1, 1000);
	report("master poll after slave close: %x", p.revents);
	report("master read again: %s", RES(read(m, buf, sizeof buf)));

	/* Master closed: the slave hangs up. */
	s = open(name, O_RDWR | O_NOCTTY);
	check(s >= 0, "reopen slave", NULL);
	close(m);
	report("slave read after hangup: %s", RES(read(s, buf, sizeof buf)));
	report("slave write after hangup: %s", RES(write(s, "x", 1)));
	p.fd = s;
	p.events = POLLIN | POLLOUT;
	poll(&p, 1, 0);
	report("slave poll after hangup: %x", p.revents);
	report("node after master close: %s", RES(stat(name, &st)));
	close(s);

	/* A locked slave cannot be opened. */
	m = posix_openpt(O_RDWR | O_NOCTTY);
	ptsname_r(m, name, sizeof name);
	report("open locked: %s", RES(open(name, O_RDWR | O_NOCTTY)));
	report("peer locked: %s", RES(ioctl(m, TIOCGPTPEER, O_RDWR)));
	unlockpt(m);
	s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY);
	check(s >= 0 && isatty(s), "TIOCGPTPEER", NULL);
	write(s, "peer\n", 5);
	read_until(m, "\n", "from peer");
	close(s);
	close(m);
}

/* A session leader's first terminal becomes its controlling one; ^C on the
 * master kills the foreground group, a window size change sends
 * SIGWINCH. */
static void job_control(void)
{
	char name[64];
	int m = open_master(name, sizeof name);
	pid_t pid = fork();
	if (pid == 0) {
		close(m);
		setsid();
		report("child /dev/tty before: %s", RES(open("/dev/tty", O_RDWR)));
		int s = open(name, O_RDWR);
		int tty = open("/dev/tty", O_RDWR);
		sigset_t winch;
		sigemptyset(&winch);
		sigaddset(&winch, SIGWINCH);
		sigprocmask(SIG_BLOCK, &winch, NULL);
		dprintf(s, "ctty %d fg %d %d\n", tty >= 0, tcgetpgrp(s) == getpid(),
			tcgetpgrp(tty) == getpid());
		int sig = 0;
		sigwait(&winch, &sig);
		dprintf(s, "signal %d\n", sig);
		for (;;)
			pause();
	}
	read_until(m, "\n", "child");
	struct winsize ws = {.ws_row = 24, .ws_col = 80};
	ioctl(m, TIOCSWINSZ, &ws);
	read_until(m, "\n", "after TIOCSWINSZ");
	struct winsize got;
	ioctl(m, TIOCGWINSZ, &got);
	report("winsize %d x %d", got.ws_row, got.ws_col);
	write(m, "\x03", 1);
	int status;
	waitpid(pid, &status, 0);
	report_status("child", status);
	read_until(m, "^C", "echo of ^C");
	close(m);
}

int main(void)
{
	basics();
	job_control();
	return finish();
}
