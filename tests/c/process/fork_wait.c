/*
 * fork_wait: fork, exit statuses through wait4/waitpid (codes, signals,
 * core dumps), WNOHANG, ECHILD, getppid in the child, and copied (not
 * shared) private memory.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../veiltest.h"

static int counter = 1;

static void describe(const char *what, int status)
{
	if (WIFEXITED(status))
		report("%s exited %d", what, WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		report("%s signaled %d core=%d", what, WTERMSIG(status), WCOREDUMP(status) ? 1 : 0);
	else
		report("%s other 0x%x", what, status);
}

static void run(const char *what, void (*child)(void))
{
	pid_t pid = fork();
	if (pid == 0) {
		child();
		_exit(99);
	}
	int status = 0;
	pid_t got = waitpid(pid, &status, 0);
	check(got == pid, "waitpid_returns_child", NULL);
	describe(what, status);
}

static void exit_7(void) { exit(7); }
static void exit_0(void) { _exit(0); }
static void sigterm(void) { kill(getpid(), SIGTERM); }
static void segv(void) { *(volatile int *)0 = 1; }
static void abort_(void) { abort(); }

static void copy_on_fork(void)
{
	counter = 42;
	_exit(counter == 42 ? 0 : 1);
}

static pid_t parent;
static void ppid_child(void) { _exit(getppid() == parent ? 0 : 1); }

int main(void)
{
	parent = getpid();
	run("exit_7", exit_7);
	run("exit_0", exit_0);
	run("sigterm", sigterm);
	run("segv", segv);
	run("abort", abort_);
	run("copy", copy_on_fork);
	check(counter == 1, "parent_memory_unchanged", "counter=%d", counter);
	run("getppid", ppid_child);

	int status;
	errno = 0;
	check(waitpid(-1, &status, 0) == -1 && errno == ECHILD, "echild_without_children", NULL);

	pid_t slow = fork();
	if (slow == 0) {
		usleep(200 * 1000);
		_exit(5);
	}
	check(waitpid(slow, &status, WNOHANG) == 0, "wnohang_running", NULL);
	check(waitpid(slow, &status, 0) == slow, "wait_blocks_until_exit", NULL);
	describe("slow", status);

	pid_t kids[3];
	for (int i = 0; i < 3; i++) {
		kids[i] = fork();
		if (kids[i] == 0)
			_exit(10 + i);
	}
	int sum = 0;
	for (int i = 0; i < 3; i++) {
		pid_t got = wait(&status);
		check(got > 0, "wait_any", NULL);
		sum += WEXITSTATUS(status);
	}
	report("sum of exit codes %d", sum);
	return finish();
}
