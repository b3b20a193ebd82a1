/*
 * wait_stop: every wait status and waitid report: exits, kills, stops and
 * continues (WUNTRACED, WSTOPPED, WCONTINUED, WNOWAIT, WNOHANG), P_PID,
 * P_PGID and P_ALL, __WCLONE/__WALL selection, SIGCHLD's siginfo for stops
 * (and SA_NOCLDSTOP), group stops of multi-threaded children, and a
 * blocking read that a stop interrupts and SIGCONT resumes.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../veiltest.h"

static void describe_info(const char *what, const siginfo_t *si, pid_t pid)
{
	report("%s: signo=%d code=%d status=%d pid_ok=%d", what, si->si_signo, si->si_code,
	       si->si_status, si->si_pid == pid);
}

static pid_t spawn_sleeper(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		for (;;)
			pause();
	}
	return pid;
}

static volatile sig_atomic_t chld_code, chld_status, chld_count;

static void on_chld(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	chld_code = si->si_code;
	chld_status = si->si_status;
	chld_count++;
}

static void wait_for_chld(int n)
{
	while (chld_count < n)
		usleep(1000);
}

static void exits_and_kills(void)
{
	int status;
	pid_t pid = fork();
	if (pid == 0)
		_exit(3);
	siginfo_t si = {0};
	check(waitid(P_PID, pid, &si, WEXITED | WNOWAIT) == 0, "waitid_nowait", NULL);
	describe_info("exit nowait", &si, pid);
	memset(&si, 0, sizeof si);
	check(waitid(P_PID, pid, &si, WEXITED) == 0, "waitid_exit", NULL);
	describe_info("exit", &si, pid);
	report("reaped again: %s", RES(waitpid(pid, &status, 0)));

	pid = fork();
	if (pid == 0) {
		struct rlimit no_core = {0, 0};
		setrlimit(RLIMIT_CORE, &no_core);
		abort();
	}
	memset(&si, 0, sizeof si);
	waitid(P_ALL, 0, &si, WEXITED);
	describe_info("abort", &si, pid);

	pid = spawn_sleeper();
	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
	report_status("sigterm", status);
}

static void stops_and_continues(void)
{
	int status;
	pid_t pid = spawn_sleeper();
	kill(pid, SIGSTOP);
	check(waitpid(pid, &status, WUNTRACED) == pid, "wait_stopped", NULL);
	report_status("sigstop", status);
	report("stop reported once: %s", RES(waitpid(pid, &status, WUNTRACED | WNOHANG)));
	kill(pid, SIGCONT);
	check(waitpid(pid, &status, WCONTINUED) == pid, "wait_continued", NULL);
	report_status("sigcont", status);

	/* waitid: the stop is seen with WNOWAIT, then consumed. */
	kill(pid, SIGSTOP);
	siginfo_t si = {0};
	waitid(P_PID, pid, &si, WSTOPPED | WNOWAIT);
	describe_info("waitid stopped nowait", &si, pid);
	memset(&si, 0, sizeof si);
	waitid(P_PID, pid, &si, WSTOPPED);
	describe_info("waitid stopped", &si, pid);
	memset(&si, 0xff, sizeof si);
	report("waitid nohang: %s", RES(waitid(P_PID, pid, &si, WSTOPPED | WNOHANG)));
	report("nohang info: signo=%d pid=%d", si.si_signo, si.si_pid);

	/* A stopped child still dies of SIGKILL. */
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	report_status("killed while stopped", status);
}

static void terminal_stops(void)
{
	int status;
	int p[2];
	pipe(p);
	pid_t pid = fork();
	if (pid == 0) {
		/* Its own process group, whose parent is in another group of
		 * the session: not orphaned, so SIGTSTP stops it. */
		setpgid(0, 0);
		close(p[0]);
		write(p[1], "x", 1);
		for (;;)
			pause();
	}
	char c;
	read(p[0], &c, 1);
	close(p[0]);
	close(p[1]);
	kill(pid, SIGTSTP);
	waitpid(pid, &status, WUNTRACED);
	report_status("sigtstp", status);
	kill(-pid, SIGCONT);
	waitpid(pid, &status, WCONTINUED);
	report_status("sigcont to group", status);
	siginfo_t si = {0};
	kill(pid, SIGTTIN);
	waitid(P_PGID, pid, &si, WSTOPPED);
	describe_info("sigttin by pgid", &si, pid);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	report_status("killed", status);
}

static void sigchld_reports(void)
{
	struct sigaction sa = {0};
	sa.sa_sigaction = on_chld;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGCHLD, &sa, NULL);
	int status;
	pid_t pid = spawn_sleeper();
	kill(pid, SIGSTOP);
	wait_for_chld(1);
	report("sigchld on stop: code=%d status=%d", chld_code, chld_status);
	waitpid(pid, &status, WUNTRACED);
	kill(pid, SIGCONT);
	wait_for_chld(2);
	report("sigchld on continue: code=%d status=%d", chld_code, chld_status);
	waitpid(pid, &status, WCONTINUED);

	/* SA_NOCLDSTOP: no SIGCHLD for stops, still one for the exit. */
	sa.sa_flags |= SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
	kill(pid, SIGSTOP);
	waitpid(pid, &status, WUNTRACED);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	wait_for_chld(3);
	report("nocldstop: count=%d code=%d status=%d", chld_count, chld_code, chld_status);
	signal(SIGCHLD, SIG_DFL);
}

static void *spin(void *arg)
{
	(void)arg;
	for (;;)
		sched_yield();
	return NULL;
}

static void threaded_stop(void)
{
	int status;
	pid_t pid = fork();
	if (pid == 0) {
		pthread_t th[2];
		for (int i = 0; i < 2; i++)
			pthread_create(&th[i], NULL, spin, NULL);
		for (;;)
			pause();
	}
	usleep(50000);
	kill(pid, SIGSTOP);
	waitpid(pid, &status, WUNTRACED);
	report_status("threaded stop", status);
	kill(pid, SIGCONT);
	waitpid(pid, &status, WCONTINUED);
	report_status("threaded continue", status);
	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
	report_status("threaded term", status);
}

static void stop_during_read(void)
{
	int status;
	int p[2];
	pipe(p);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[1]);
		char buf[8];
		ssize_t n = read(p[0], buf, sizeof buf);
		_exit(n == 2 && buf[0] == 'o' ? 0 : 1);
	}
	close(p[0]);
	usleep(50000);
	kill(pid, SIGSTOP);
	waitpid(pid, &status, WUNTRACED);
	report_status("stopped in read", status);
	kill(pid, SIGCONT);
	write(p[1], "ok", 2);
	waitpid(pid, &status, 0);
	report_status("read resumed", status);
	close(p[1]);
}

/* A sleep stopped and continued goes on with the time it had left, through
 * restart_syscall, instead of starting over. */
static void stop_during_sleep(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		struct timespec a, b, d = {1, 0};
		clock_gettime(CLOCK_MONOTONIC, &a);
		nanosleep(&d, NULL);
		clock_gettime(CLOCK_MONOTONIC, &b);
		double took = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
		/* Starting over would take 1.9 s: 0.3 s, the 0.6 s stop, 1 s. */
		_exit(took >= 1.0 && took < 1.6 ? 0 : 1);
	}
	usleep(300000);
	kill(pid, SIGSTOP);
	int status;
	waitpid(pid, &status, WUNTRACED);
	usleep(600000);
	kill(pid, SIGCONT);
	waitpid(pid, &status, 0);
	report_status("sleep across a stop keeps its end", status);
}

static int clone_child(void *arg)
{
	(void)arg;
	return 5;
}

static void clone_selection(void)
{
	static char stack[64 * 1024];
	int status;
	/* Blocked before the child can exit: its SIGUSR1 must not kill us. */
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	sigprocmask(SIG_BLOCK, &s, NULL);
	pid_t pid = clone(clone_child, stack + sizeof stack, SIGUSR1, NULL);
	usleep(20000);
	report("plain wait on clone child: %s", RES(waitpid(pid, &status, 0)));
	check(waitpid(pid, &status, __WCLONE) == pid, "wclone_wait", NULL);
	report_status("clone child", status);
	pid = fork();
	if (pid == 0)
		_exit(1);
	report("wclone on fork child: %s", RES(waitpid(pid, &status, __WCLONE)));
	check(waitpid(pid, &status, __WALL) == pid, "wall_wait", NULL);
	report_status("wall", status);
	struct timespec zero = {0, 0};
	siginfo_t si;
	report("usr1 pending: %d", sigtimedwait(&s, &si, &zero));
	sigprocmask(SIG_UNBLOCK, &s, NULL);
}

/* waitid and SIGCHLD name the child's real UID, not the parent's. */
static volatile uid_t chld_uid = 12345;

static void on_chld_uid(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	chld_uid = si->si_uid;
}

static void child_uid(void)
{
	struct sigaction sa = {0};
	sa.sa_sigaction = on_chld_uid;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGCHLD, &sa, NULL);
	pid_t pid = fork();
	if (pid == 0)
		_exit(setuid(1000) == 0 ? 4 : 5);
	siginfo_t si = {0};
	waitid(P_PID, pid, &si, WEXITED);
	while (chld_uid == 12345)
		usleep(1000);
	report("child uid in waitid: %d, in SIGCHLD: %d, status %d", (int)si.si_uid, (int)chld_uid,
	       si.si_status);
	signal(SIGCHLD, SIG_DFL);
}

static void bad_arguments(void)
{
	int status;
	siginfo_t si;
	report("waitpid no children: %s", RES(waitpid(-1, &status, 0)));
	report("waitid no children: %s", RES(waitid(P_ALL, 0, &si, WEXITED)));
	report("waitid no options: %s", RES(waitid(P_ALL, 0, &si, 0)));
	report("waitid bad idtype: %s", RES(syscall(SYS_waitid, 7, 0, &si, WEXITED, NULL)));
	report("waitid pid 0: %s", RES(waitid(P_PID, 0, &si, WEXITED)));
	report("waitpid bad options: %s", RES(waitpid(-1, &status, 0x100)));
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	report("waitid efault: %s", RES(waitid(P_PID, pid, (siginfo_t *)8, WEXITED)));
	report("after efault: %s", RES(waitpid(pid, &status, WNOHANG)));
}

int main(void)
{
	exits_and_kills();
	stops_and_continues();
	terminal_stops();
	sigchld_reports();
	threaded_stop();
	stop_during_read();
	stop_during_sleep();
	clone_selection();
	child_uid();
	bad_arguments();
	return finish();
}
