/*
 * epoll: level- and edge-triggered and one-shot entries on pipes, eventfds
 * and timerfds, nested instances, rotation of a small maxevents, the
 * interest list's (fd, open file) keys, epoll_pwait's signal mask, and the
 * errors of epoll_ctl and epoll_wait.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../veiltest.h"

static int add(int ep, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.u64 = (uint64_t)fd };
	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

/* "fd:events fd:events ..." of one epoll_wait. */
static const char *wait_str(int ep, int max, int timeout)
{
	static char buf[256];
	struct epoll_event evs[16];
	int n = epoll_wait(ep, evs, max, timeout);
	if (n < 0) {
		snprintf(buf, sizeof buf, "-1 %s", errname(errno));
		return buf;
	}
	int len = snprintf(buf, sizeof buf, "%d", n);
	for (int i = 0; i < n; i++)
		len += snprintf(buf + len, sizeof buf - len, " %d:%x", (int)evs[i].data.u64, evs[i].events);
	return buf;
}

static void level_edge_oneshot(void)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int p[2];
	pipe(p);
	int q = dup(p[0]);
	report("add lt %d, add et %d", add(ep, p[0], EPOLLIN), add(ep, q, EPOLLIN | EPOLLET));
	report("empty: %s", wait_str(ep, 8, 0));
	write(p[1], "ab", 2);
	report("after write: %s", wait_str(ep, 8, 0));
	report("again: %s", wait_str(ep, 8, 0));
	write(p[1], "c", 1);
	report("after 2nd write: %s", wait_str(ep, 8, 0));
	char buf[8];
	read(p[0], buf, 1);
	report("after partial read: %s", wait_str(ep, 8, 0));
	read(p[0], buf, sizeof buf);
	report("drained: %s", wait_str(ep, 8, 0));
	struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT, .data.u64 = 100 };
	report("mod oneshot %d", epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev));
	write(p[1], "d", 1);
	report("oneshot: %s", wait_str(ep, 8, 0));
	report("disarmed: %s", wait_str(ep, 8, 0));
	report("rearm %d", epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev));
	report("rearmed: %s", wait_str(ep, 8, 0));
	/* Writer side: EPOLLOUT, and EPOLLERR once the readers are gone. */
	report("add out %d", add(ep, p[1], EPOLLOUT));
	report("del lt %d del et %d", epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL),
	       epoll_ctl(ep, EPOLL_CTL_DEL, q, NULL));
	report("writable: %s", wait_str(ep, 8, 0));
	close(p[0]);
	close(q);
	report("no readers: %s", wait_str(ep, 8, 0));
	close(p[1]);
	close(ep);
}

static void hangup(void)
{
	int ep = epoll_create(1);
	int p[2];
	pipe(p);
	add(ep, p[0], EPOLLIN | EPOLLRDHUP);
	close(p[1]);
	report("hangup: %s", wait_str(ep, 8, 0));
	close(p[0]);
	close(ep);
}

static void eventfds_and_timerfds(void)
{
	int ep = epoll_create1(0);
	int efd = eventfd(0, EFD_NONBLOCK);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	add(ep, efd, EPOLLIN | EPOLLOUT | EPOLLET);
	add(ep, tfd, EPOLLIN);
	report("eventfd writable: %s", wait_str(ep, 8, 0));
	uint64_t one = 1;
	write(efd, &one, 8);
	report("eventfd readable: %s", wait_str(ep, 8, 0));
	report("edge consumed: %s", wait_str(ep, 8, 0));
	write(efd, &one, 8);
	report("second write edge: %s", wait_str(ep, 8, 0));
	struct itimerspec its = { .it_value = { 0, 20 * 1000 * 1000 } };
	timerfd_settime(tfd, 0, &its, NULL);
	report("timer armed: %s", wait_str(ep, 8, 0));
	/* Blocks until the timer fires. */
	report("timer fired: %s", wait_str(ep, 8, 5000));
	uint64_t ticks = 0;
	read(tfd, &ticks, 8);
	report("ticks %llu, then %s", (unsigned long long)ticks, wait_str(ep, 8, 0));
	close(efd);
	close(tfd);
	close(ep);
}

static void nested(void)
{
	int outer = epoll_create1(0), inner = epoll_create1(0);
	int efd = eventfd(0, EFD_NONBLOCK);
	report("nest %d", add(outer, inner, EPOLLIN));
	report("add efd %d", add(inner, efd, EPOLLIN));
	int r = add(inner, outer, EPOLLIN);
	report("loop %d %s", r, errname(errno));
	r = add(outer, outer, EPOLLIN);
	report("self %d %s", r, errname(errno));
	report("outer idle: %s", wait_str(outer, 8, 0));
	uint64_t one = 1;
	write(efd, &one, 8);
	report("outer sees inner: %s", wait_str(outer, 8, 0));
	report("inner: %s", wait_str(inner, 8, 0));
	uint64_t v;
	read(efd, &v, 8);
	report("drained outer: %s", wait_str(outer, 8, 0));
	/* A blocked outer wait wakes for an inner event. */
	if (fork() == 0) {
		usleep(20000);
		write(efd, &one, 8);
		_exit(0);
	}
	report("woken: %s", wait_str(outer, 8, 5000));
	wait(NULL);
	/* Depth: a chain of five instances is the limit. */
	int chain[6];
	for (int i = 0; i < 6; i++)
		chain[i] = epoll_create1(0);
	for (int i = 0; i < 5; i++) {
		r = add(chain[i], chain[i + 1], EPOLLIN);
		report("chain %d->%d %d %s", i, i + 1, r, r ? errname(errno) : "");
	}
	for (int i = 0; i < 6; i++)
		close(chain[i]);
	close(efd);
	close(inner);
	close(outer);
}

static void rotation(void)
{
	int ep = epoll_create1(0);
	int fds[6];
	for (int i = 0; i < 6; i++) {
		fds[i] = eventfd(1, 0);
		add(ep, fds[i], EPOLLIN);
	}
	char line[256] = "";
	int seen[6] = { 0 };
	for (int round = 0; round < 4; round++) {
		struct epoll_event evs[4];
		int n = epoll_wait(ep, evs, 4, 0);
		for (int i = 0; i < n; i++)
			seen[evs[i].data.u64 - fds[0]]++;
		snprintf(line + strlen(line), sizeof line - strlen(line), " %d", n);
	}
	/* 4 rounds of 4 over 6 ready fds: everyone is reported, none starves. */
	int min = 99, max = 0;
	for (int i = 0; i < 6; i++) {
		min = seen[i] < min ? seen[i] : min;
		max = seen[i] > max ? seen[i] : max;
	}
	report("rotation counts:%s min %d max %d", line, min, max);
	for (int i = 0; i < 6; i++)
		close(fds[i]);
	close(ep);
}

static void dup_semantics(void)
{
	int ep = epoll_create1(0);
	int efd = eventfd(1, 0);
	int copy = dup(efd);
	add(ep, efd, EPOLLIN);
	struct epoll_event ev = { .events = EPOLLIN };
	int r = epoll_ctl(ep, EPOLL_CTL_MOD, copy, &ev);
	report("dup not registered: mod %d %s", r, errname(errno));
	report("add dup %d", add(ep, copy, EPOLLIN));
	int old = efd;
	close(efd);
	/* The open file lives on in the dup: both entries still report. */
	report("after close: %s", wait_str(ep, 8, 0));
	r = epoll_ctl(ep, EPOLL_CTL_DEL, old, NULL);
	report("del closed fd %d %s", r, errname(errno));
	close(copy);
	/* Every descriptor gone: the entries went with the open file. */
	int fresh = eventfd(1, 0);
	report("new file at same number %d (same %d)", add(ep, fresh, EPOLLIN), fresh == old);
	report("only new: %s", wait_str(ep, 8, 0));
	close(fresh);
	close(ep);
}

static volatile int got_signal;
static void on_usr1(int sig)
{
	(void)sig;
	got_signal++;
}

static void pwait_mask(void)
{
	int ep = epoll_create1(0);
	int efd = eventfd(0, 0);
	add(ep, efd, EPOLLIN);
	struct sigaction sa = { .sa_handler = on_usr1 };
	sigaction(SIGUSR1, &sa, NULL);
	sigset_t block, old, during;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, &old);
	kill(getpid(), SIGUSR1);
	struct epoll_event ev;
	/* Blocked: the wait times out with the signal still pending. */
	report("blocked: %d handler %d", epoll_wait(ep, &ev, 1, 10), got_signal);
	sigemptyset(&during);
	errno = 0;
	int r = epoll_pwait(ep, &ev, 1, 5000, &during);
	report("pwait unblocked: %d %s handler %d", r, errname(errno), got_signal);
	sigset_t now;
	sigprocmask(SIG_SETMASK, NULL, &now);
	report("mask restored: %d", sigismember(&now, SIGUSR1));
	/* A signal that arrives while waiting interrupts: never restarted. */
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	if (fork() == 0) {
		usleep(30000);
		kill(getppid(), SIGUSR1);
		_exit(0);
	}
	errno = 0;
	r = epoll_pwait(ep, &ev, 1, 5000, &during);
	report("interrupted: %d %s handler %d", r, errname(errno), got_signal);
	wait(NULL);
	struct timespec ts = { 0, 1000000 };
	report("pwait2 timeout: %ld", syscall(SYS_epoll_pwait2, ep, &ev, 1, &ts, NULL, 8));
	ts.tv_nsec = 1000000000;
	errno = 0;
	long bad = syscall(SYS_epoll_pwait2, ep, &ev, 1, &ts, NULL, 8);
	report("pwait2 bad timeout: %ld %s", bad, errname(errno));
	errno = 0;
	bad = epoll_pwait(ep, &ev, 1, 0, (sigset_t *)8);
	report("pwait bad mask: %ld %s", bad, errname(errno));
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(efd);
	close(ep);
}

#define ERR(expr) do { errno = 0; long r_ = (expr); report("%s = %s", #expr, res(r_, errno)); } while (0)

static void errors(void)
{
	int ep = epoll_create1(0);
	int efd = eventfd(0, 0);
	int p[2];
	pipe(p);
	struct epoll_event ev = { .events = EPOLLIN };
	struct epoll_event out[2];
	int reg = open("/etc/passwd", O_RDONLY);
	int null = open("/dev/null", O_RDONLY);
	ERR(epoll_create(0));
	ERR(epoll_create1(1));
	ERR(epoll_ctl(ep, EPOLL_CTL_ADD, reg, &ev));
	ERR(epoll_ctl(ep, EPOLL_CTL_ADD, null, &ev));
	ERR(epoll_ctl(efd, EPOLL_CTL_ADD, p[0], &ev));
	ERR(epoll_ctl(ep, 7, p[0], &ev));
	ERR(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], NULL));
	ERR(epoll_ctl(ep, EPOLL_CTL_ADD, 999, &ev));
	ERR(epoll_ctl(999, EPOLL_CTL_ADD, p[0], &ev));
	ERR(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL));
	ERR(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev));
	ERR(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
	ERR(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
	ev.events = EPOLLIN | EPOLLEXCLUSIVE;
	ERR(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev));
	ERR(epoll_ctl(ep, EPOLL_CTL_ADD, p[1], &ev));
	ERR(epoll_ctl(ep, EPOLL_CTL_MOD, p[1], &(struct epoll_event){ .events = EPOLLOUT }));
	ev.events = EPOLLIN | EPOLLEXCLUSIVE | EPOLLONESHOT;
	ERR(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev));
	ev.events = EPOLLIN | EPOLLWAKEUP;
	ERR(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev));
	ERR(epoll_wait(ep, out, 0, 0));
	ERR(syscall(SYS_epoll_wait, ep, out, -1, 0));
	ERR(epoll_wait(efd, out, 1, 0));
	ERR(epoll_wait(999, out, 1, 0));
	ERR(syscall(SYS_epoll_wait, ep, 0x800000000000UL, 1, 0));
	ERR(read(ep, out, sizeof out));
	struct stat st;
	fstat(ep, &st);
	struct stat st2;
	fstat(efd, &st2);
	report("anon inode: mode %o size %ld nlink %ld shared %d", st.st_mode, (long)st.st_size,
	       (long)st.st_nlink, st.st_ino == st2.st_ino);
	report("flags %x", fcntl(ep, F_GETFL));
	close(reg);
	close(null);
	close(p[0]);
	close(p[1]);
	close(efd);
	close(ep);
}

int main(void)
{
	level_edge_oneshot();
	hangup();
	eventfds_and_timerfds();
	nested();
	rotation();
	dup_semantics();
	pwait_mask();
	errors();
	return finish();
}
