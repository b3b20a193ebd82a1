/*
 * reclock: fcntl record locks (F_SETLK, F_SETLKW, F_GETLK and the OFD
 * forms), natively vs under veil: byte ranges, splitting, conflicts between
 * a parent and a forked child, a process's locks released by closing any
 * descriptor of the file, OFD locks conflicting within one process, a
 * blocked request ended by a release or a signal, and errors by name.
 *
 * Works on a file it creates under /tmp and removes again. PIDs are only
 * compared, never printed.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <sys/time.h>
#include <unistd.h>

#include "../veiltest.h"

static char path[64];
static pid_t parent;

static void on_alarm(int sig)
{
	(void)sig;
}

static const char *lk(int fd, int cmd, short type, short whence, off_t start, off_t len)
{
	struct flock fl = { .l_type = type, .l_whence = whence, .l_start = start, .l_len = len };
	return RES(fcntl(fd, cmd, &fl));
}

/* F_GETLK (or F_OFD_GETLK) of a range: what conflicts, if anything. */
static void getlk(const char *what, int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };
	if (fcntl(fd, cmd, &fl)) {
		report("%s: %s", what, errname(errno));
		return;
	}
	if (fl.l_type == F_UNLCK) {
		report("%s: unlocked", what);
		return;
	}
	const char *who = fl.l_pid == -1 ? "ofd" : fl.l_pid == parent ? "parent" : "other";
	report("%s: %s start %ld len %ld by %s", what, fl.l_type == F_RDLCK ? "read" : "write",
	       (long)fl.l_start, (long)fl.l_len, who);
}

int main(void)
{
	parent = getpid();
	strcpy(path, "/tmp/veil-reclock-XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0) {
		report("mkstemp: %s", errname(errno));
		return 1;
	}
	char buf[100] = { 0 };
	write(fd, buf, sizeof buf);
	int ro = open(path, O_RDONLY);
	int wo = open(path, O_WRONLY);

	report("write 0..10 = %s", lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 0, 10));
	report("read 20..30 = %s", lk(fd, F_SETLK, F_RDLCK, SEEK_SET, 20, 10));
	report("write 80..EOF = %s", lk(fd, F_SETLK, F_WRLCK, SEEK_END, -20, 0));
	report("unlock 84..86 = %s", lk(fd, F_SETLK, F_UNLCK, SEEK_SET, 84, 2));
	report("own locks never conflict = %s", lk(ro, F_SETLK, F_RDLCK, SEEK_SET, 0, 5));
	report("and replace: write 0..10 again = %s", lk(wo, F_SETLK, F_WRLCK, SEEK_SET, 0, 10));
	getlk("own view 0..100", fd, F_GETLK, F_WRLCK, 0, 100);

	report("bad type = %s", lk(fd, F_SETLK, 7, SEEK_SET, 0, 1));
	report("bad whence = %s", lk(fd, F_SETLK, F_RDLCK, 9, 0, 1));
	report("negative start = %s", lk(fd, F_SETLK, F_RDLCK, SEEK_SET, -1, 1));
	report("negative len before 0 = %s", lk(fd, F_SETLK, F_RDLCK, SEEK_SET, 2, -5));
	report("read lock on O_WRONLY = %s", lk(wo, F_SETLK, F_RDLCK, SEEK_SET, 0, 1));
	report("write lock on O_RDONLY = %s", lk(ro, F_SETLK, F_WRLCK, SEEK_SET, 0, 1));
	report("F_GETLK of F_UNLCK = %s", lk(fd, F_GETLK, F_UNLCK, SEEK_SET, 0, 1));
	report("bad fd = %s", lk(999, F_SETLK, F_RDLCK, SEEK_SET, 0, 1));
	struct flock pidset = { .l_type = F_RDLCK, .l_pid = 1 };
	report("F_OFD_SETLK with l_pid = %s", RES(fcntl(fd, F_OFD_SETLK, &pidset)));

	int p[2], q[2];
	pipe(p);
	pipe(q);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		int c = open(path, O_RDWR);
		getlk("child sees 0..100 (write)", c, F_GETLK, F_WRLCK, 0, 100);
		getlk("child sees 20..30 (read)", c, F_GETLK, F_RDLCK, 20, 10);
		getlk("child sees 84..86 (write)", c, F_GETLK, F_WRLCK, 84, 2);
		getlk("child sees 86..87 (write)", c, F_GETLK, F_WRLCK, 86, 1);
		report("child write 5..6 = %s", lk(c, F_SETLK, F_WRLCK, SEEK_SET, 5, 1));
		report("child read 25..26 = %s", lk(c, F_SETLK, F_RDLCK, SEEK_SET, 25, 1));
		char x = 0;
		write(p[1], &x, 1);
		read(q[0], &x, 1);
		getlk("child after parent closed a descriptor", c, F_GETLK, F_WRLCK, 0, 100);
		report("child write 0..10 (blocks until the parent unlocks) = %s",
		       lk(c, F_SETLKW, F_WRLCK, SEEK_SET, 0, 10));
		write(p[1], &x, 1);
		read(q[0], &x, 1);
		_exit(0);
	}
	char x;
	read(p[0], &x, 1);
	getlk("parent sees the child's read lock", fd, F_GETLK, F_WRLCK, 25, 1);
	/* Closing any descriptor of the file releases the process's locks. */
	close(ro);
	report("parent write 0..10 again = %s", lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 0, 10));
	write(q[1], &x, 1);
	usleep(100000);
	const char *un = lk(fd, F_SETLK, F_UNLCK, SEEK_SET, 0, 0);
	read(p[0], &x, 1);
	report("parent unlock all = %s", un);
	report("parent write 0..1 while the child holds it = %s",
	       lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 0, 1));

	struct sigaction sa = { .sa_handler = on_alarm };
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = { .it_value = { 0, 50000 } };
	setitimer(ITIMER_REAL, &it, NULL);
	report("parent F_SETLKW interrupted by a signal = %s",
	       lk(fd, F_SETLKW, F_WRLCK, SEEK_SET, 0, 1));
	write(q[1], &x, 1);
	int status;
	waitpid(pid, &status, 0);
	report_status("child", status);
	getlk("after the child exits", fd, F_GETLK, F_WRLCK, 0, 0);

	/* OFD locks belong to the description: they conflict within a process. */
	int o1 = open(path, O_RDWR), o2 = open(path, O_RDWR);
	report("ofd write 60..70 = %s", lk(o1, F_OFD_SETLK, F_WRLCK, SEEK_SET, 60, 10));
	report("ofd write 65..66 on another description = %s",
	       lk(o2, F_OFD_SETLK, F_WRLCK, SEEK_SET, 65, 1));
	report("classic write 65..66 by the same process = %s",
	       lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 65, 1));
	getlk("ofd getlk", o2, F_OFD_GETLK, F_RDLCK, 0, 0);
	close(fd);
	report("ofd lock survives closing another descriptor = %s",
	       lk(o2, F_OFD_SETLK, F_WRLCK, SEEK_SET, 65, 1));
	close(o1);
	report("ofd lock goes with its description = %s",
	       lk(o2, F_OFD_SETLK, F_WRLCK, SEEK_SET, 65, 1));
	close(o2);
	close(wo);
	unlink(path);
	return finish();
}
