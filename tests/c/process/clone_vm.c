/*
 * clone_vm: processes that share memory and more with their parent:
 * vfork (the parent waits, and sees the child's writes), posix_spawn
 * (CLONE_VM|CLONE_VFORK, with its exec error reported through shared
 * memory), clone with CLONE_VM, CLONE_FILES, CLONE_SIGHAND and CLONE_PARENT,
 * clone3 and its argument checks, and what fork inherits (signal mask,
 * alternate stack).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../veiltest.h"

extern char **environ;

static volatile int shared_word;
static char stack[256 * 1024] __attribute__((aligned(16)));

static void vfork_semantics(void)
{
	int status;
	shared_word = 0;
	pid_t pid = vfork();
	if (pid == 0) {
		shared_word = 42;
		_exit(4);
	}
	/* The parent resumes only after the child's _exit. */
	report("vfork: parent sees %d", shared_word);
	waitpid(pid, &status, 0);
	report_status("vfork child", status);

	pid = vfork();
	if (pid == 0) {
		char *argv[] = {"sh", "-c", "exit 6", NULL};
		execve("/bin/sh", argv, environ);
		_exit(127);
	}
	waitpid(pid, &status, 0);
	report_status("vfork exec", status);
}

static void spawn(void)
{
	int status;
	pid_t pid;
	char *argv[] = {"sh", "-c", "echo spawned; exit 2", NULL};
	int r = posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ);
	waitpid(pid, &status, 0);
	report("posix_spawn: %s", errname(r));
	report_status("spawned", status);
	char *missing[] = {"nope", NULL};
	r = posix_spawn(&pid, "/nonexistent/nope", NULL, NULL, missing, environ);
	report("posix_spawn missing: %s", errname(r));
	r = posix_spawnp(&pid, "true", NULL, NULL, (char *[]){"true", NULL}, environ);
	report("posix_spawnp true: %s", errname(r));
	waitpid(pid, &status, 0);
	report_status("spawnp true", status);
}

static int fd_seen;

static int vm_child(void *arg)
{
	shared_word = 7;
	fd_seen = open("/dev/null", O_RDONLY);
	struct sigaction sa = {0};
	sa.sa_handler = SIG_IGN;
	sigaction(SIGUSR2, &sa, NULL);
	return (int)(intptr_t)arg;
}

static void clone_shares(void)
{
	int status;
	shared_word = 0;
	fd_seen = -1;
	pid_t pid = clone(vm_child, stack + sizeof stack,
			  CLONE_VM | CLONE_FILES | CLONE_SIGHAND | SIGCHLD, (void *)(intptr_t)9);
	check(pid > 0, "clone_vm", NULL);
	waitpid(pid, &status, 0);
	report_status("clone vm child", status);
	report("clone vm: word=%d fd_open_in_parent=%d", shared_word,
	       fd_seen >= 0 && fcntl(fd_seen, F_GETFD) >= 0);
	struct sigaction old;
	sigaction(SIGUSR2, NULL, &old);
	report("clone sighand: usr2 ignored in parent=%d", old.sa_handler == SIG_IGN);
	signal(SIGUSR2, SIG_DFL);
	if (fd_seen >= 0)
		close(fd_seen);

	/* Without sharing, the child's changes stay its own. */
	shared_word = 0;
	fd_seen = -1;
	pid = clone(vm_child, stack + sizeof stack, SIGCHLD, (void *)(intptr_t)1);
	waitpid(pid, &status, 0);
	report("clone copy: word=%d", shared_word);

	report("sighand without vm: %s",
	       RES(clone(vm_child, stack + sizeof stack, CLONE_SIGHAND | SIGCHLD, NULL)));
	report("thread without sighand: %s",
	       RES(clone(vm_child, stack + sizeof stack, CLONE_VM | CLONE_THREAD, NULL)));
}

static void clone_parent(void)
{
	int status;
	pid_t pid = fork();
	if (pid == 0) {
		/* A sibling, not a child: our own wait finds nothing. */
		pid_t sib = clone(vm_child, stack + sizeof stack, CLONE_PARENT | SIGCHLD, (void *)0);
		int st;
		report("clone_parent: child waits: %s", RES(waitpid(sib, &st, 0)));
		_exit(sib > 0 ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	report_status("middle", status);
	int reaped = 0;
	while (waitpid(-1, &status, 0) > 0)
		reaped++;
	report("clone_parent: grandparent reaped %d more", reaped);
}

static long clone3_raw(struct clone_args *args, size_t size)
{
	return syscall(SYS_clone3, args, size);
}

static void clone3_calls(void)
{
	int status;
	struct clone_args args = {0};
	args.exit_signal = SIGCHLD;
	long pid = clone3_raw(&args, sizeof args);
	if (pid == 0)
		_exit(11);
	check(pid > 0, "clone3_fork", NULL);
	waitpid(pid, &status, 0);
	report_status("clone3 child", status);

	report("clone3 small: %s", RES(clone3_raw(&args, 32)));
	char big[128] = {0};
	memcpy(big, &args, sizeof args);
	big[100] = 1;
	report("clone3 nonzero tail: %s", RES(clone3_raw((struct clone_args *)big, sizeof big)));
	struct clone_args bad = args;
	bad.exit_signal = 65;
	report("clone3 bad signal: %s", RES(clone3_raw(&bad, sizeof bad)));
	bad = args;
	bad.stack_size = 4096;
	report("clone3 size without stack: %s", RES(clone3_raw(&bad, sizeof bad)));
	report("clone3 efault: %s", RES(clone3_raw((struct clone_args *)8, sizeof args)));
}

static void fork_inherits(void)
{
	int status;
	sigset_t set, got;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	static char alt[64 * 1024];
	stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt, .ss_flags = 0};
	sigaltstack(&ss, NULL);
	pid_t pid = fork();
	if (pid == 0) {
		sigprocmask(SIG_BLOCK, NULL, &got);
		stack_t cur;
		sigaltstack(NULL, &cur);
		_exit((sigismember(&got, SIGUSR1) ? 1 : 0) | (cur.ss_sp == alt ? 2 : 0));
	}
	waitpid(pid, &status, 0);
	report_status("fork inherits mask(1) and altstack(2)", status);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	ss.ss_flags = SS_DISABLE;
	sigaltstack(&ss, NULL);
}

int main(void)
{
	vfork_semantics();
	spawn();
	clone_shares();
	clone_parent();
	clone3_calls();
	fork_inherits();
	return finish();
}
