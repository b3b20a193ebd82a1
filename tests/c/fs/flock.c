/*
 * flock: whole-file locks of open file descriptions, natively vs under
 * veil. Conflicts between descriptions of one process and between a parent
 * and a forked child, conversion, release on the last close, a blocked
 * request that a release or a signal ends.
 *
 * Works on a file it creates under /tmp and removes again.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/time.h>
#include <unistd.h>

#include "../veiltest.h"

static char path[64];

static void on_alarm(int sig)
{
	(void)sig;
}

int main(void)
{
	strcpy(path, "/tmp/veil-flock-XXXXXX");
	int a = mkstemp(path);
	if (a < 0) {
		report("mkstemp: %s", errname(errno));
		return 1;
	}
	int b = open(path, O_RDONLY);
	int pathfd = open(path, O_PATH);

	report("a LOCK_SH = %s", RES(flock(a, LOCK_SH)));
	report("b LOCK_SH|NB = %s", RES(flock(b, LOCK_SH | LOCK_NB)));
	report("b LOCK_EX|NB (a shares; b loses its lock) = %s", RES(flock(b, LOCK_EX | LOCK_NB)));
	report("a LOCK_EX|NB (b holds none) = %s", RES(flock(a, LOCK_EX | LOCK_NB)));
	report("b LOCK_EX|NB = %s", RES(flock(b, LOCK_EX | LOCK_NB)));
	report("a LOCK_SH|NB = %s", RES(flock(a, LOCK_SH | LOCK_NB)));
	report("b LOCK_UN = %s", RES(flock(b, LOCK_UN)));
	report("a LOCK_EX|NB = %s", RES(flock(a, LOCK_EX | LOCK_NB)));
	report("bad cmd = %s", RES(flock(a, 0)));
	report("bad cmd 3 = %s", RES(flock(a, 3)));
	report("bad fd = %s", RES(flock(999, LOCK_SH)));
	report("O_PATH = %s", RES(flock(pathfd, LOCK_SH | LOCK_NB)));

	/* dup shares the description, and so the lock. */
	int a2 = dup(a);
	close(a);
	report("b LOCK_SH|NB after closing a (dup keeps it) = %s", RES(flock(b, LOCK_SH | LOCK_NB)));
	close(a2);
	report("b LOCK_EX|NB after last close = %s", RES(flock(b, LOCK_EX | LOCK_NB)));

	/* A child: its own open conflicts, the inherited description is ours. */
	int p[2], q[2];
	pipe(p);
	pipe(q);
	pid_t pid = fork();
	if (pid == 0) {
		int c = open(path, O_RDWR);
		report("child own LOCK_SH|NB = %s", RES(flock(c, LOCK_SH | LOCK_NB)));
		report("child inherited LOCK_EX|NB = %s", RES(flock(b, LOCK_EX | LOCK_NB)));
		close(b);
		char x = 0;
		write(p[1], &x, 1);
		read(q[0], &x, 1);
		report("child own LOCK_EX (blocks until the parent unlocks) = %s",
		       RES(flock(c, LOCK_EX)));
		write(p[1], &x, 1);
		read(q[0], &x, 1);
		_exit(0);
	}
	char x;
	read(p[0], &x, 1);
	write(q[1], &x, 1);
	usleep(100000);
	const char *un = RES(flock(b, LOCK_UN));
	read(p[0], &x, 1);
	report("parent LOCK_UN = %s", un);
	report("parent LOCK_SH|NB while the child holds it = %s", RES(flock(b, LOCK_SH | LOCK_NB)));

	struct sigaction sa = { .sa_handler = on_alarm };
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = { .it_value = { 0, 50000 } };
	setitimer(ITIMER_REAL, &it, NULL);
	report("parent LOCK_SH interrupted by a signal = %s", RES(flock(b, LOCK_SH)));

	write(q[1], &x, 1);
	int status;
	waitpid(pid, &status, 0);
	report_status("child", status);
	report("parent LOCK_SH after the child exits = %s", RES(flock(b, LOCK_SH)));

	close(b);
	close(pathfd);
	unlink(path);
	return finish();
}
