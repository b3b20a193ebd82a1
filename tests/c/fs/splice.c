/*
 * splice: sendfile, splice, tee, vmsplice and copy_file_range between
 * regular files and pipes: offsets (NULL vs pointer), errno rules, EOF,
 * non-blocking pipes, a large chunked transfer and a blocking splice cut
 * short by a signal. Works in a fresh directory under /tmp.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../veiltest.h"

static char dir[64];

static int mkfile(const char *name, const char *data, size_t len)
{
	char path[128];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (len)
		write(fd, data, len);
	return fd;
}

static void show_file(const char *what, int fd)
{
	char buf[64] = {0};
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	report("%s: %zd \"%s\" pos %ld", what, n, buf, (long)lseek(fd, 0, SEEK_CUR));
}

static void r(const char *what, long n)
{
	report("%s = %ld %s", what, n, n < 0 ? errname(errno) : "");
}

static void on_alarm(int sig) { (void)sig; }

int main(void)
{
	strcpy(dir, "/tmp/veil-splice-XXXXXX");
	if (!mkdtemp(dir)) {
		report("mkdtemp: %s", errname(errno));
		return 1;
	}
	int src = mkfile("src", "0123456789abcdef", 16);
	int dst = mkfile("dst", "", 0);

	/* sendfile at the file position, then at an offset pointer. */
	lseek(src, 4, SEEK_SET);
	r("sendfile pos", sendfile(dst, src, NULL, 5));
	report("src pos %ld", (long)lseek(src, 0, SEEK_CUR));
	off_t off = 10;
	r("sendfile off", sendfile(dst, src, &off, 100));
	report("off %ld src pos %ld", (long)off, (long)lseek(src, 0, SEEK_CUR));
	show_file("dst", dst);
	off = 16;
	r("sendfile at eof", sendfile(dst, src, &off, 10));
	r("sendfile zero", sendfile(dst, src, NULL, 0));

	int p[2], q[2];
	pipe(p);
	pipe(q);
	r("sendfile from pipe", sendfile(dst, p[0], NULL, 1));
	r("sendfile to read end", sendfile(p[0], src, NULL, 1));
	r("sendfile bad fd", sendfile(dst, 99, NULL, 1));
	int app = open(dir, O_RDONLY);
	close(app);
	{
		char path[128];
		snprintf(path, sizeof path, "%s/dst", dir);
		app = open(path, O_WRONLY | O_APPEND);
		r("sendfile to O_APPEND", sendfile(app, src, NULL, 1));
	}
	off = 0;
	r("sendfile to pipe", sendfile(p[1], src, &off, 6));
	char buf[64] = {0};
	report("pipe has %zd", read(p[0], buf, sizeof buf));

	/* splice: file -> pipe with an offset, pipe -> file, pipe -> pipe. */
	loff_t lo = 2;
	r("splice file->pipe", splice(src, &lo, p[1], NULL, 5, 0));
	report("lo %ld src pos %ld", (long)lo, (long)lseek(src, 0, SEEK_CUR));
	r("splice pipe->pipe", splice(p[0], NULL, q[1], NULL, 3, 0));
	int out = mkfile("out", "", 0);
	lo = 4;
	r("splice pipe->file off", splice(q[0], NULL, out, &lo, 100, 0));
	report("lo %ld", (long)lo);
	r("splice pipe->file pos", splice(p[0], NULL, out, NULL, 100, 0));
	show_file("out", out);
	r("splice empty nonblock", splice(p[0], NULL, out, NULL, 10, SPLICE_F_NONBLOCK));
	r("splice no pipe", splice(src, NULL, out, NULL, 10, 0));
	lo = 0;
	r("splice pipe offset", splice(p[0], &lo, out, NULL, 10, 0));
	r("splice same pipe", splice(p[0], NULL, p[1], NULL, 10, 0));
	r("splice bad flags", splice(p[0], NULL, out, NULL, 10, 0x100));
	r("splice zero len", splice(src, NULL, out, NULL, 0, 0));
	r("splice write end in", splice(p[1], NULL, out, NULL, 10, 0));
	lo = -1;
	r("splice negative off", splice(src, &lo, p[1], NULL, 10, 0));
	r("splice to O_APPEND", (write(p[1], "x", 1), splice(p[0], NULL, app, NULL, 10, 0)));
	read(p[0], buf, sizeof buf);

	/* tee copies without consuming. */
	write(p[1], "teedata", 7);
	r("tee", tee(p[0], q[1], 100, 0));
	memset(buf, 0, sizeof buf);
	report("q has %zd \"%s\"", read(q[0], buf, sizeof buf), buf);
	memset(buf, 0, sizeof buf);
	report("p has %zd \"%s\"", read(p[0], buf, sizeof buf), buf);
	r("tee empty nonblock", tee(p[0], q[1], 10, SPLICE_F_NONBLOCK));
	r("tee file", tee(src, q[1], 10, 0));
	r("tee same", tee(p[0], p[1], 10, 0));

	/* vmsplice both ways. */
	struct iovec iov[2] = {{"vm", 2}, {"splice", 6}};
	r("vmsplice write", vmsplice(p[1], iov, 2, 0));
	char a[3] = {0}, b[8] = {0};
	struct iovec riov[2] = {{a, 2}, {b, 7}};
	r("vmsplice read", vmsplice(p[0], riov, 2, 0));
	report("read \"%s\" \"%s\"", a, b);
	r("vmsplice file", vmsplice(src, iov, 2, 0));
	r("vmsplice empty nonblock", vmsplice(p[0], riov, 2, SPLICE_F_NONBLOCK));

	/* EOF: a pipe whose writers are gone splices 0. */
	int e[2];
	pipe(e);
	close(e[1]);
	r("splice eof", splice(e[0], NULL, out, NULL, 10, 0));
	close(e[0]);

	/* copy_file_range. */
	int c = mkfile("c", "", 0);
	loff_t ci = 3, co = 0;
	r("cfr off", copy_file_range(src, &ci, c, &co, 6, 0));
	report("ci %ld co %ld", (long)ci, (long)co);
	lseek(src, 0, SEEK_SET);
	r("cfr pos", copy_file_range(src, NULL, c, NULL, 3, 0));
	report("src pos %ld c pos %ld", (long)lseek(src, 0, SEEK_CUR), (long)lseek(c, 0, SEEK_CUR));
	show_file("c", c);
	r("cfr flags", copy_file_range(src, NULL, c, NULL, 3, 1));
	ci = 0;
	co = 2;
	r("cfr overlap", copy_file_range(src, &ci, src, &co, 4, 0));
	co = 8;
	r("cfr same file apart", copy_file_range(src, &ci, src, &co, 4, 0));
	show_file("src", src);
	r("cfr pipe", copy_file_range(p[0], NULL, c, NULL, 3, 0));
	r("cfr append", copy_file_range(src, NULL, app, NULL, 3, 0));
	ci = 100;
	r("cfr past eof", copy_file_range(src, &ci, c, NULL, 3, 0));
	r("cfr dir", copy_file_range(open(dir, O_RDONLY), NULL, c, NULL, 3, 0));

	/* A large sendfile goes through in chunks. */
	int big = mkfile("big", "", 0);
	ftruncate(big, 3 << 20);
	pwrite(big, "end", 3, (3 << 20) - 3);
	int copy = mkfile("copy", "", 0);
	off = 0;
	r("big sendfile", sendfile(copy, big, &off, 4 << 20));
	memset(buf, 0, sizeof buf);
	pread(copy, buf, 3, (3 << 20) - 3);
	report("tail \"%s\"", buf);

	/* A blocking splice from an empty pipe ends with EINTR on a signal. */
	struct sigaction sa = {.sa_handler = on_alarm};
	sigaction(SIGALRM, &sa, NULL);
	alarm(1);
	r("splice interrupted", splice(e[0] = p[0], NULL, out, NULL, 10, 0));

	/* A full pipe: splice into it with SPLICE_F_NONBLOCK. */
	fcntl(q[1], F_SETFL, O_NONBLOCK);
	while (write(q[1], buf, sizeof buf) > 0)
		;
	lo = 0;
	r("splice full nonblock", splice(src, &lo, q[1], NULL, 10, SPLICE_F_NONBLOCK));

	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	system(cmd);
	report("all ok");
	return 0;
}
