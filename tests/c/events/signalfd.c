/*
 * signalfd: reading blocked signals sent by kill and tgkill as records,
 * several per read, updating the mask in place, readiness through poll and
 * epoll, a blocking read woken by another process, and the errors.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../veiltest.h"

#define ERR(expr) do { errno = 0; long r_ = (expr); report("%s = %s", #expr, res(r_, errno)); } while (0)

static void show(const char *what, int fd)
{
	struct signalfd_siginfo si[4];
	errno = 0;
	long n = read(fd, si, sizeof si);
	if (n < 0) {
		report("%s: %s", what, res(n, errno));
		return;
	}
	for (long i = 0; i < n / (long)sizeof si[0]; i++)
		report("%s: signo %u code %d pid-ok %d uid %u", what, si[i].ssi_signo, si[i].ssi_code,
		       si[i].ssi_pid == (uint32_t)getpid(), si[i].ssi_uid);
}

int main(void)
{
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGUSR2);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sigset_t only1;
	sigemptyset(&only1);
	sigaddset(&only1, SIGUSR1);
	int fd = signalfd(-1, &only1, SFD_NONBLOCK | SFD_CLOEXEC);
	report("flags %x cloexec %d", fcntl(fd, F_GETFL), fcntl(fd, F_GETFD));
	show("empty", fd);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	report("poll idle %d", poll(&p, 1, 0));

	kill(getpid(), SIGUSR1);
	int ready = poll(&p, 1, 0);
	report("poll pending %d %x", ready, p.revents);
	show("kill", fd);
	syscall(SYS_tgkill, getpid(), gettid(), SIGUSR1);
	show("tgkill", fd);

	/* SIGUSR2 is outside the mask until signalfd updates it in place. */
	kill(getpid(), SIGUSR2);
	show("usr2 not in mask", fd);
	ERR(signalfd(fd, &mask, 0));
	kill(getpid(), SIGUSR1);
	show("both", fd);

	/* epoll reports a signal becoming pending. */
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 42 };
	ERR(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
	report("epoll idle %d", epoll_wait(ep, &ev, 1, 0));
	pid_t child = fork();
	if (child == 0) {
		usleep(20000);
		kill(getppid(), SIGUSR2);
		_exit(0);
	}
	int n = epoll_wait(ep, &ev, 1, 5000);
	report("epoll woken %d data %llu", n, (unsigned long long)ev.data.u64);
	waitpid(child, NULL, 0);
	struct signalfd_siginfo si;
	read(fd, &si, sizeof si);
	report("from child: signo %u code %d pid-child %d", si.ssi_signo, si.ssi_code,
	       si.ssi_pid == (uint32_t)child);

	/* A blocking read waits for the signal. */
	int bfd = signalfd(-1, &mask, 0);
	child = fork();
	if (child == 0) {
		usleep(20000);
		kill(getppid(), SIGUSR1);
		_exit(0);
	}
	ERR(read(bfd, &si, sizeof si));
	report("blocking read signo %u", si.ssi_signo);
	waitpid(child, NULL, 0);

	/* A pending SIGCHLD, blocked, reads with the child's status. */
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	int cfd = signalfd(-1, &chld, 0);
	child = fork();
	if (child == 0)
		_exit(7);
	ERR(read(cfd, &si, sizeof si));
	report("sigchld code %d status %d pid-child %d", si.ssi_code, si.ssi_status,
	       si.ssi_pid == (uint32_t)child);
	waitpid(child, NULL, 0);

	char small[64];
	ERR(read(fd, small, sizeof small));
	ERR(signalfd(-1, &mask, 1));
	ERR(signalfd(ep, &mask, 0));
	ERR(signalfd(99, &mask, 0));
	ERR(syscall(SYS_signalfd4, -1, &mask, 4, 0));
	ERR(syscall(SYS_signalfd4, -1, NULL, 8, 0));
	ERR(write(fd, small, sizeof small));
	close(cfd);
	close(bfd);
	close(ep);
	close(fd);
	return finish();
}
