/*
 * sigwait for a signal whose default action is to ignore it (SIGWINCH,
 * SIGCHLD) and that arrives while the waiter sleeps: blocked before the
 * wait, it must be queued, not dropped as ignored.
 */
#include <signal.h>
#include <unistd.h>

#include "../veiltest.h"

int main(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGWINCH);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int ready[2];
	pipe(ready);
	pid_t pid = fork();
	if (pid == 0) {
		close(ready[0]);
		write(ready[1], "x", 1);
		int sig = 0;
		sigwait(&set, &sig);
		report("child took signal %d", sig);
		_exit(0);
	}
	char c;
	read(ready[0], &c, 1);
	/* Long enough for the child to be asleep in sigwait. */
	usleep(200 * 1000);
	kill(pid, SIGWINCH);
	int status;
	waitpid(pid, &status, 0);
	report_status("child", status);
	return finish();
}
