/*
 * inotify: events for changes made by the program itself (create, modify,
 * attrib, open/close, moves with matching cookies, delete, delete_self and
 * ignored), IN_ONESHOT, IN_MASK_ADD/IN_MASK_CREATE, IN_ONLYDIR,
 * IN_DONT_FOLLOW, coalescing of identical events, FIONREAD, poll and
 * epoll, a too small read buffer, queue overflow, a blocking read and the
 * argument checks. Works in a fresh directory under /tmp.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../veiltest.h"

static int in;
static unsigned last_cookie;

static void on_alarm(int sig) { (void)sig; }

static void r(const char *what, long n)
{
	report("%s = %s", what, n < 0 ? errname(errno) : "ok");
}

static const char *names(unsigned m)
{
	static char buf[256];
	buf[0] = 0;
#define N(x) if (m & x) strcat(buf, #x " ");
	N(IN_ACCESS) N(IN_MODIFY) N(IN_ATTRIB) N(IN_CLOSE_WRITE) N(IN_CLOSE_NOWRITE)
	N(IN_OPEN) N(IN_MOVED_FROM) N(IN_MOVED_TO) N(IN_CREATE) N(IN_DELETE)
	N(IN_DELETE_SELF) N(IN_MOVE_SELF) N(IN_IGNORED) N(IN_ISDIR) N(IN_Q_OVERFLOW)
#undef N
	return buf;
}

/* Prints the queued events; cookies as "same as the last" or not. */
static void drain(const char *what)
{
	char buf[4096] __attribute__((aligned(8)));
	report("-- %s", what);
	for (;;) {
		ssize_t n = read(in, buf, sizeof buf);
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *e = (struct inotify_event *)p;
			const char *c = "";
			if (e->cookie) {
				c = e->cookie == last_cookie ? " cookie=prev" : " cookie=new";
				last_cookie = e->cookie;
			}
			report("wd %d %s%s%s len %u", e->wd, names(e->mask), e->len ? e->name : "", c, e->len);
			p += sizeof *e + e->len;
		}
	}
}

int main(void)
{
	char dir[64];
	strcpy(dir, "/tmp/veil-inotify-XXXXXX");
	if (!mkdtemp(dir) || chdir(dir)) {
		report("setup: %s", errname(errno));
		return 1;
	}
	r("init1 bad flags", inotify_init1(0x1));
	in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	r("init1", in);
	int d = inotify_add_watch(in, ".", IN_ALL_EVENTS);
	report("dir wd %d", d);

	int fd = open("a", O_CREAT | O_WRONLY, 0644);
	write(fd, "x", 1);
	write(fd, "y", 1);
	close(fd);
	drain("create, write twice, close");

	int fw = inotify_add_watch(in, "a", IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF);
	report("file wd %d", fw);
	r("same file again", inotify_add_watch(in, "a", IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF));
	chmod("a", 0600);
	fd = open("a", O_RDONLY);
	char c;
	read(fd, &c, 1);
	close(fd);
	drain("chmod, read");
	int nb = -1;
	fd = open("a", O_WRONLY);
	write(fd, "z", 1);
	ioctl(in, FIONREAD, &nb);
	report("fionread %d", nb);
	struct pollfd pfd = {.fd = in, .events = POLLIN};
	report("poll %d revents %x", poll(&pfd, 1, 0), pfd.revents);
	char small[8];
	r("small buffer", read(in, small, sizeof small));
	close(fd);
	drain("write");
	report("poll empty %d", poll(&pfd, 1, 0));

	int ep = epoll_create1(0);
	struct epoll_event ee = {.events = EPOLLIN};
	epoll_ctl(ep, EPOLL_CTL_ADD, in, &ee);
	report("epoll idle %d", epoll_wait(ep, &ee, 1, 0));
	chmod("a", 0644);
	report("epoll ready %d", epoll_wait(ep, &ee, 1, 0));
	close(ep);
	drain("chmod under epoll");

	rename("a", "b");
	drain("rename");
	mkdir("sub", 0755);
	int sw = inotify_add_watch(in, "sub", IN_ALL_EVENTS);
	report("sub wd %d", sw);
	rename("b", "sub/b");
	drain("rename into sub");
	unlink("sub/b");
	drain("unlink");
	rmdir("sub");
	drain("rmdir");

	r("rm_watch bad", inotify_rm_watch(in, 999));
	r("rm_watch dir", inotify_rm_watch(in, d));
	drain("rm_watch");

	close(open("f", O_CREAT | O_WRONLY, 0644));
	int o = inotify_add_watch(in, "f", IN_OPEN | IN_ONESHOT);
	report("oneshot wd %d", o);
	close(open("f", O_RDONLY));
	close(open("f", O_RDONLY));
	drain("oneshot");

	int m = inotify_add_watch(in, "f", IN_OPEN);
	r("mask add", inotify_add_watch(in, "f", IN_CLOSE_NOWRITE | IN_MASK_ADD));
	r("mask create existing", inotify_add_watch(in, "f", IN_OPEN | IN_MASK_CREATE));
	r("mask add|create", inotify_add_watch(in, "f", IN_OPEN | IN_MASK_ADD | IN_MASK_CREATE));
	close(open("f", O_RDONLY));
	drain("mask add");
	inotify_rm_watch(in, m);
	drain("rm");

	r("no events", inotify_add_watch(in, "f", 0));
	r("onlydir on file", inotify_add_watch(in, "f", IN_OPEN | IN_ONLYDIR));
	r("missing", inotify_add_watch(in, "nothere", IN_OPEN));
	r("not inotify fd", inotify_add_watch(1, "f", IN_OPEN));
	r("bad fd", inotify_add_watch(99, "f", IN_OPEN));
	symlink("f", "lnk");
	int l = inotify_add_watch(in, "lnk", IN_ATTRIB | IN_DONT_FOLLOW);
	chmod("f", 0600);
	drain("dont_follow: chmod target");
	inotify_rm_watch(in, l);
	drain("rm link watch");

	/* Overflow: a queue of 16384 events, then IN_Q_OVERFLOW. */
	int q = inotify_init1(IN_NONBLOCK);
	inotify_add_watch(q, ".", IN_ATTRIB);
	close(open("g", O_CREAT | O_WRONLY, 0644));
	for (int i = 0; i < 16400; i++)
		chmod(i % 2 ? "f" : "g", 0600 | (i % 2) << 5);
	int nq = 0;
	ioctl(q, FIONREAD, &nq);
	report("overflow fionread %d", nq);
	int events = 0, overflows = 0;
	for (;;) {
		char buf[4096] __attribute__((aligned(8)));
		ssize_t n = read(q, buf, sizeof buf);
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *e = (struct inotify_event *)p;
			events++;
			overflows += !!(e->mask & IN_Q_OVERFLOW);
			if (e->mask & IN_Q_OVERFLOW)
				report("overflow event wd %d", e->wd);
			p += sizeof *e + e->len;
		}
	}
	report("events %d overflows %d", events, overflows);
	close(q);

	/* A blocking read waits, and a signal ends the wait. */
	int b = inotify_init();
	inotify_add_watch(b, ".", IN_CREATE);
	struct sigaction sa = {.sa_handler = on_alarm};
	sigaction(SIGALRM, &sa, NULL);
	alarm(1);
	char bb[64];
	r("blocking read interrupted", read(b, bb, sizeof bb));
	if (fork() == 0) {
		usleep(100000);
		mkdir("late", 0755);
		_exit(0);
	}
	ssize_t got = read(b, bb, sizeof bb);
	report("blocking read got %zd: %s", got, names(((struct inotify_event *)bb)->mask));
	wait(NULL);

	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	system(cmd);
	report("all ok");
	return 0;
}
