/*
 * exec_threads: execve from a secondary thread while siblings run (they
 * vanish, the exec'ing thread takes over the PID), execveat with a
 * directory FD, AT_EMPTY_PATH and AT_SYMLINK_NOFOLLOW, and robust futexes
 * released by a dying thread (EOWNERDEAD for the next locker).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../veiltest.h"

extern char **environ;

static void *spin(void *arg)
{
	(void)arg;
	for (;;)
		sched_yield();
	return NULL;
}

/* Execs a shell that exits 0 only if its $$ is the process's PID. */
static void *exec_from_thread(void *arg)
{
	(void)arg;
	char check[64];
	snprintf(check, sizeof check, "test $$ = %d", getpid());
	char *argv[] = {"sh", "-c", check, NULL};
	execve("/bin/sh", argv, environ);
	report("execve from thread failed: %s", errname(errno));
	_exit(1);
}

static void threaded_exec(void)
{
	int status;
	pid_t pid = fork();
	if (pid == 0) {
		pthread_t th[3];
		pthread_create(&th[0], NULL, spin, NULL);
		pthread_create(&th[1], NULL, spin, NULL);
		pthread_create(&th[2], NULL, exec_from_thread, NULL);
		for (;;)
			pause();
	}
	waitpid(pid, &status, 0);
	report("threaded exec: exited=%d code=%d", WIFEXITED(status), WEXITSTATUS(status));

	pid = fork();
	if (pid == 0) {
		pthread_t th;
		pthread_create(&th, NULL, spin, NULL);
		char buf[32];
		snprintf(buf, sizeof buf, "test $$ = %d", getpid());
		char *argv[] = {"sh", "-c", buf, NULL};
		execve("/bin/sh", argv, environ);
		_exit(1);
	}
	waitpid(pid, &status, 0);
	report("main-thread exec keeps pid: exited=%d code=%d", WIFEXITED(status), WEXITSTATUS(status));
	while (wait(&status) > 0)
		;
}

static void exec_at(void)
{
	int status;
	int dir = open("/bin", O_RDONLY | O_DIRECTORY);
	pid_t pid = fork();
	if (pid == 0) {
		char *argv[] = {"sh", "-c", "exit 7", NULL};
		syscall(SYS_execveat, dir, "sh", argv, environ, 0);
		_exit(100 + errno);
	}
	waitpid(pid, &status, 0);
	report("execveat dirfd: %d", WEXITSTATUS(status));

	int fd = open("/bin/sh", O_RDONLY);
	pid = fork();
	if (pid == 0) {
		char *argv[] = {"sh", "-c", "exit 8", NULL};
		fexecve(fd, argv, environ);
		_exit(100 + errno);
	}
	waitpid(pid, &status, 0);
	report("fexecve: %d", WEXITSTATUS(status));
	close(fd);

	char *argv[] = {"x", NULL};
	report("execveat empty path without flag: %s", RES(syscall(SYS_execveat, dir, "", argv, environ, 0)));
	report("execveat bad flags: %s", RES(syscall(SYS_execveat, dir, "sh", argv, environ, 0x2)));
	report("execveat missing: %s", RES(syscall(SYS_execveat, dir, "no-such-program", argv, environ, 0)));
	report("execveat file as dir: %s", RES(syscall(SYS_execveat, 0, "sh", argv, environ, 0)));
	symlink("/bin/true", "/tmp/exec-threads-link");
	report("execveat nofollow link: %s",
	       RES(syscall(SYS_execveat, AT_FDCWD, "/tmp/exec-threads-link", argv, environ, AT_SYMLINK_NOFOLLOW)));
	unlink("/tmp/exec-threads-link");
	close(dir);
}

static pthread_mutex_t robust;

static void *lock_and_die(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&robust);
	return NULL;
}

static void robust_mutex(void)
{
	pthread_mutexattr_t attr;
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&robust, &attr);
	pthread_t th;
	pthread_create(&th, NULL, lock_and_die, NULL);
	pthread_join(th, NULL);
	int r = pthread_mutex_lock(&robust);
	report("robust lock after owner died: %s", errname(r));
	report("make consistent: %s", errname(pthread_mutex_consistent(&robust)));
	pthread_mutex_unlock(&robust);
	report("relock: %s", errname(pthread_mutex_lock(&robust)));
	pthread_mutex_unlock(&robust);
}

int main(void)
{
	threaded_exec();
	exec_at();
	robust_mutex();
	return finish();
}
