/*
 * cross: signals between processes and interrupted system calls: kill of a
 * child blocked in read, SIGCHLD with sigsuspend, alarm interrupting
 * nanosleep (EINTR) and a pipe read restarted under SA_RESTART, process
 * group kill, and kill on a missing process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../veiltest.h"

static volatile sig_atomic_t chld, alarms;
static void on_chld(int s) { (void)s; chld++; }
static void on_alrm(int s) { (void)s; alarms++; }

static void install(int sig, void (*fn)(int), int flags)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = fn;
	sa.sa_flags = flags;
	sigaction(sig, &sa, NULL);
}

int main(void)
{
	int p[2];
	check(pipe(p) == 0, "pipe", NULL);
	pid_t child = fork();
	if (child == 0) {
		char c;
		(void)!read(p[0], &c, 1); /* blocks until killed */
		_exit(0);
	}
	usleep(50 * 1000);
	check(kill(child, SIGTERM) == 0, "kill_child", NULL);
	int status = 0;
	check(waitpid(child, &status, 0) == child, "reap_child", NULL);
	check(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "blocked_child_killed", "status=0x%x", status);

	install(SIGCHLD, on_chld, 0);
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, &old);
	child = fork();
	if (child == 0)
		_exit(3);
	while (!chld)
		sigsuspend(&old);
	sigprocmask(SIG_SETMASK, &old, NULL);
	check(chld == 1, "sigchld_via_sigsuspend", NULL);
	waitpid(child, &status, 0);
	check(WEXITSTATUS(status) == 3, "exit_code", NULL);

	install(SIGALRM, on_alrm, 0);
	alarm(1);
	struct timespec ts = { 5, 0 }, rem = { 0, 0 };
	int r = nanosleep(&ts, &rem);
	check(r == -1 && errno == EINTR && alarms == 1, "alarm_interrupts_nanosleep", "r=%d", r);
	check(rem.tv_sec >= 3 && rem.tv_sec <= 4, "nanosleep_remaining", NULL);

	install(SIGALRM, on_alrm, SA_RESTART);
	int q[2];
	check(pipe(q) == 0, "pipe2", NULL);
	child = fork();
	if (child == 0) {
		usleep(600 * 1000);
		(void)!write(q[1], "z", 1);
		_exit(0);
	}
	close(q[1]);
	struct itimerval it = { { 0, 0 }, { 0, 200 * 1000 } };
	setitimer(ITIMER_REAL, &it, NULL);
	char c = 0;
	ssize_t n = read(q[0], &c, 1);
	check(n == 1 && c == 'z' && alarms == 2, "sa_restart_restarts_read", "n=%zd alarms=%d", n, alarms);
	waitpid(child, NULL, 0);

	install(SIGALRM, on_alrm, 0);
	it.it_value.tv_usec = 100 * 1000;
	setitimer(ITIMER_REAL, &it, NULL);
	n = read(q[0], &c, 1);
	check(n == 0, "eof_after_writer_exit", "n=%zd", n);

	int r2[2];
	check(pipe(r2) == 0, "pipe3", NULL);
	child = fork();
	if (child == 0) {
		char x;
		(void)!read(r2[0], &x, 1);
		_exit(0);
	}
	alarm(1);
	n = read(r2[0], &c, 1);
	check(n == -1 && errno == EINTR, "read_interrupted_without_sa_restart", "n=%zd", n);
	kill(child, SIGKILL);
	waitpid(child, &status, 0);
	check(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "sigkill", NULL);

	errno = 0;
	check(kill(99999, SIGTERM) == -1 && errno == ESRCH, "kill_missing_esrch", NULL);
	check(kill(getpid(), 0) == 0, "kill_zero_probe", NULL);
	return finish();
}
