/*
 * mknod: named pipes (open rules and blocking until the other end, a
 * blocking open cut short by a signal), sockets' names, device nodes of
 * the memory devices (root's CAP_MKNOD; EPERM without), regular files and
 * the type checks. Works in a fresh directory under /tmp.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "../veiltest.h"

static void r(const char *what, long n)
{
	report("%s = %s", what, n < 0 ? errname(errno) : "ok");
}

static void show(const char *name)
{
	struct stat st;
	if (lstat(name, &st)) {
		report("%s: %s", name, errname(errno));
		return;
	}
	report("%s: mode %o rdev %u:%u size %ld", name, st.st_mode, major(st.st_rdev),
	       minor(st.st_rdev), (long)st.st_size);
}

static void on_alarm(int sig) { (void)sig; }

int main(void)
{
	char dir[64];
	strcpy(dir, "/tmp/veil-mknod-XXXXXX");
	if (!mkdtemp(dir) || chdir(dir)) {
		report("setup: %s", errname(errno));
		return 1;
	}
	umask(022);
	r("mkfifo", mkfifo("fifo", 0666));
	show("fifo");
	r("mkfifo again", mkfifo("fifo", 0666));
	r("write nonblock no reader", open("fifo", O_WRONLY | O_NONBLOCK));
	int rd = open("fifo", O_RDONLY | O_NONBLOCK);
	r("read nonblock", rd);
	char buf[32] = {0};
	r("read empty", read(rd, buf, sizeof buf));
	int wr = open("fifo", O_WRONLY | O_NONBLOCK);
	r("write nonblock with reader", wr);
	write(wr, "hello", 5);
	report("read %zd", read(rd, buf, sizeof buf));
	close(wr);
	report("read after close %zd", read(rd, buf, sizeof buf));
	close(rd);
	int rw = open("fifo", O_RDWR);
	r("rdwr", rw);
	write(rw, "x", 1);
	close(rw);

	/* Blocking opens meet. */
	pid_t pid = fork();
	if (pid == 0) {
		int w = open("fifo", O_WRONLY);
		write(w, "from child", 10);
		_exit(0);
	}
	rd = open("fifo", O_RDONLY);
	memset(buf, 0, sizeof buf);
	int n = 0, got;
	while ((got = read(rd, buf + n, sizeof buf - 1 - n)) > 0)
		n += got;
	report("blocking reader got \"%s\"", buf);
	close(rd);
	waitpid(pid, NULL, 0);

	pid = fork();
	if (pid == 0) {
		usleep(100000);
		int r2 = open("fifo", O_RDONLY);
		memset(buf, 0, sizeof buf);
		read(r2, buf, sizeof buf);
		report("child read \"%s\"", buf);
		_exit(0);
	}
	wr = open("fifo", O_WRONLY);
	r("blocking writer", wr);
	write(wr, "to child", 8);
	close(wr);
	waitpid(pid, NULL, 0);

	struct sigaction sa = {.sa_handler = on_alarm};
	sigaction(SIGALRM, &sa, NULL);
	alarm(1);
	r("blocking open interrupted", open("fifo", O_RDONLY));

	r("mknod fifo", mknod("fifo2", S_IFIFO | 0600, 0));
	show("fifo2");
	r("mknod sock", mknod("sock", S_IFSOCK | 0755, 0));
	show("sock");
	r("open sock", open("sock", O_RDONLY));
	r("mknod reg", mknod("reg", S_IFREG | 0640, 0));
	show("reg");
	r("mknod type 0", mknod("reg0", 0644, 0));
	show("reg0");
	r("mknod dir", mknod("d", S_IFDIR | 0755, 0));
	r("mknod bad type", mknod("bad", 0170000 | 0644, 0));
	r("mknod exists", mknod("reg", S_IFIFO | 0644, 0));

	r("mknod null", mknod("null", S_IFCHR | 0666, makedev(1, 3)));
	show("null");
	int fd = open("null", O_RDWR);
	ssize_t nw = write(fd, "abc", 3);
	report("null write %zd read %zd", nw, read(fd, buf, sizeof buf));
	close(fd);
	mknod("zero", S_IFCHR | 0666, makedev(1, 5));
	fd = open("zero", O_RDONLY);
	memset(buf, 1, sizeof buf);
	ssize_t zn = read(fd, buf, 4);
	report("zero read %zd first %d", zn, buf[0]);
	close(fd);
	mknod("full", S_IFCHR | 0666, makedev(1, 7));
	fd = open("full", O_WRONLY);
	r("full write", write(fd, "a", 1));
	close(fd);
	mknod("urandom", S_IFCHR | 0444, makedev(1, 9));
	fd = open("urandom", O_RDONLY);
	report("urandom read %zd", read(fd, buf, 16));
	close(fd);
	r("mknod unknown char", mknod("nodev", S_IFCHR | 0666, makedev(250, 7)));
	show("nodev");
	r("open unknown char", open("nodev", O_RDONLY));
	r("mknod unknown block", mknod("blk", S_IFBLK | 0660, makedev(251, 3)));
	show("blk");
	r("open unknown block", open("blk", O_RDONLY));

	chmod(".", 0777);
	pid = fork();
	if (pid == 0) {
		setgid(1000);
		setuid(1000);
		r("unprivileged char", mknod("c2", S_IFCHR | 0666, makedev(1, 3)));
		r("unprivileged block", mknod("b2", S_IFBLK | 0666, makedev(1, 3)));
		r("unprivileged fifo", mknod("f2", S_IFIFO | 0666, 0));
		show("f2");
		_exit(0);
	}
	waitpid(pid, NULL, 0);

	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	system(cmd);
	report("all ok");
	return 0;
}
