/*
 * tmpfile: O_TMPFILE files (unnamed, nlink 0, invisible in the directory),
 * named later with linkat(AT_EMPTY_PATH) or through /proc/self/fd unless
 * opened O_EXCL, and the flag checks. Works in a fresh directory under /tmp.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../veiltest.h"

static void r(const char *what, long n)
{
	report("%s = %s", what, n < 0 ? errname(errno) : "ok");
}

static int entries(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void show_fd(const char *what, int fd)
{
	struct stat st;
	fstat(fd, &st);
	report("%s: mode %o nlink %ld size %ld", what, st.st_mode, (long)st.st_nlink, (long)st.st_size);
}

int main(void)
{
	char dir[64];
	strcpy(dir, "/tmp/veil-tmpfile-XXXXXX");
	if (!mkdtemp(dir) || chdir(dir)) {
		report("setup: %s", errname(errno));
		return 1;
	}
	umask(022);
	int fd = open(".", O_TMPFILE | O_RDWR, 0666);
	r("open", fd);
	show_fd("tmp", fd);
	write(fd, "data", 4);
	show_fd("tmp written", fd);
	report("entries %d", entries("."));
	r("linkat empty path", linkat(fd, "", AT_FDCWD, "named", AT_EMPTY_PATH));
	show_fd("tmp linked", fd);
	char buf[16] = {0};
	int n = open("named", O_RDONLY);
	read(n, buf, sizeof buf);
	report("named reads \"%s\", entries %d", buf, entries("."));
	close(n);
	r("link again", linkat(fd, "", AT_FDCWD, "second", AT_EMPTY_PATH));
	unlink("named");
	unlink("second");
	r("link after unlinking all", linkat(fd, "", AT_FDCWD, "third", AT_EMPTY_PATH));
	close(fd);

	fd = open(".", O_TMPFILE | O_WRONLY | O_EXCL, 0600);
	r("open O_EXCL", fd);
	r("linkat O_EXCL", linkat(fd, "", AT_FDCWD, "excl", AT_EMPTY_PATH));
	close(fd);

	fd = open(".", O_TMPFILE | O_RDWR, 0640);
	char proc[64];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	r("link via proc", linkat(AT_FDCWD, proc, AT_FDCWD, "viaproc", AT_SYMLINK_FOLLOW));
	struct stat st;
	stat("viaproc", &st);
	report("viaproc mode %o nlink %ld", st.st_mode, (long)st.st_nlink);
	close(fd);

	close(open("file", O_CREAT | O_WRONLY, 0644));
	r("read only", open(".", O_TMPFILE | O_RDONLY, 0600));
	r("on a file", open("file", O_TMPFILE | O_RDWR, 0600));
	r("missing dir", open("nothere", O_TMPFILE | O_RDWR, 0600));
	r("with O_CREAT", open(".", O_TMPFILE | O_CREAT | O_RDWR, 0600));
	r("O_PATH", open(".", O_TMPFILE | O_PATH, 0600));

	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	system(cmd);
	report("all ok");
	return 0;
}
