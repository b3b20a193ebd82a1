/*
 * pidfd: pidfd_open, polling a pidfd for the process's exit,
 * pidfd_send_signal, waitid(P_PIDFD), clone with CLONE_PIDFD and clone3's
 * pidfd field, and their errors.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../veiltest.h"

static int pidfd_open(pid_t pid, unsigned flags) { return (int)syscall(SYS_pidfd_open, pid, flags); }

static pid_t sleeper(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		for (;;)
			pause();
	}
	return pid;
}

int main(void)
{
	pid_t pid = sleeper();
	int fd = pidfd_open(pid, 0);
	report("pidfd_open: %d cloexec=%d", fd >= 0, (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
	struct pollfd p = {fd, POLLIN, 0};
	report("poll while alive: %d", poll(&p, 1, 50));
	report("send SIGTERM: %s", RES(syscall(SYS_pidfd_send_signal, fd, SIGTERM, NULL, 0)));
	int ready = poll(&p, 1, 5000);
	report("poll after death: %d revents_in=%d", ready, (p.revents & POLLIN) != 0);
	siginfo_t si = {0};
	report("waitid P_PIDFD: %s", RES(waitid(P_PIDFD, fd, &si, WEXITED)));
	report("reaped: code=%d status=%d pid_ok=%d", si.si_code, si.si_status, si.si_pid == pid);
	report("signal after reap: %s", RES(syscall(SYS_pidfd_send_signal, fd, SIGTERM, NULL, 0)));
	close(fd);

	report("pidfd_open missing: %s", RES(pidfd_open(999999, 0)));
	report("pidfd_open bad flags: %s", RES(pidfd_open(getpid(), 1)));
	report("send via non-pidfd: %s", RES(syscall(SYS_pidfd_send_signal, 0, SIGTERM, NULL, 0)));
	report("waitid non-pidfd: %s", RES(waitid(P_PIDFD, 0, &si, WEXITED)));
	fd = pidfd_open(getpid(), 0);
	report("probe self: %s", RES(syscall(SYS_pidfd_send_signal, fd, 0, NULL, 0)));
	close(fd);

	/* clone3 hands back a pidfd for the child. */
	int cfd = -1;
	struct clone_args args = {0};
	args.flags = CLONE_PIDFD;
	args.pidfd = (unsigned long)&cfd;
	args.exit_signal = SIGCHLD;
	long child = syscall(SYS_clone3, &args, sizeof args);
	if (child == 0)
		_exit(9);
	memset(&si, 0, sizeof si);
	waitid(P_PIDFD, cfd, &si, WEXITED);
	report("clone3 pidfd: fd_ok=%d status=%d", cfd >= 0, si.si_status);
	close(cfd);
	args.flags = CLONE_PIDFD | CLONE_THREAD | CLONE_SIGHAND | CLONE_VM;
	report("pidfd with thread: %s", RES(syscall(SYS_clone3, &args, sizeof args)));

	/* A pidfd of someone else's child cannot be waited for. */
	pid = sleeper();
	fd = pidfd_open(pid, O_NONBLOCK);
	report("nonblock flag kept: %d", (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
	report("nonblocking waitid on a live child: %s", RES(waitid(P_PIDFD, fd, &si, WEXITED)));
	report("signal the thread: %s", RES(syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 1)));
	int status;
	waitpid(pid, &status, 0);
	report("killed child: signaled=%d sig=%d", WIFSIGNALED(status), WTERMSIG(status));
	report("two scope flags: %s", RES(syscall(SYS_pidfd_send_signal, fd, 0, NULL, 3)));
	report("unknown flag: %s", RES(syscall(SYS_pidfd_send_signal, fd, 0, NULL, 8)));
	close(fd);
	return finish();
}
