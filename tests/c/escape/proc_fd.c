/*
 * /proc/self/fd: the program sees only its own descriptors (stdio and what
 * it opened), each pointing into the sandbox; none of the sentry's host
 * descriptors (gofer sockets, donated files, the memory file) shows, and a
 * donated directory's ".." stays in the sandbox. argv[1] is the secret's
 * path relative to the root's host directory ("../outside/secret").
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <limits.h>
#include <stdio.h>

#include "../escape.h"

/* The link's text with digits replaced, as pipe inode numbers vary. */
static const char *masked(const char *s)
{
	static char buf[PATH_MAX];
	size_t i;
	for (i = 0; s[i] && i < sizeof buf - 1; i++)
		buf[i] = s[i] >= '0' && s[i] <= '9' ? 'N' : s[i];
	buf[i] = 0;
	return buf;
}

static void list(const char *dir)
{
	char path[PATH_MAX], link[PATH_MAX];
	DIR *d = opendir(dir);
	if (!d) {
		report("opendir %s = %s", dir, errname(errno));
		return;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		ssize_t n = readlink(path, link, sizeof link - 1);
		link[n < 0 ? 0 : n] = 0;
		report("%s %s -> %s", dir, e->d_name, n < 0 ? errname(errno) : masked(link));
	}
	closedir(d);
}

int main(int argc, char **argv)
{
	char path[PATH_MAX];
	if (argc != 2) {
		report("usage: proc_fd RELATIVE");
		return 2;
	}
	int root = open("/", O_RDONLY | O_DIRECTORY);
	int file = open("/proc_fd", O_RDONLY);
	report("opened / = %d, /proc_fd = %d", root, file);
	list("/proc/self/fd");
	list("/proc/1/fd");

	snprintf(path, sizeof path, "/proc/self/fd/%d/%s", root, argv[1]);
	attempt_read("fd of / + relative path", AT_FDCWD, path, O_RDONLY);
	snprintf(path, sizeof path, "/proc/self/fd/%d/../../../../..", root);
	report("fd of / + .. chain is the sandbox root: %s", same_file(path, "/"));
	attempt_read("openat(fd of /, relative)", root, argv[1], O_RDONLY);
	int up = openat(root, "../../..", O_PATH | O_DIRECTORY);
	report("openat(fd of /, ../../..) is the sandbox root: %s", is_root(up));
	close(up);
	snprintf(path, sizeof path, "/proc/self/fd/%d/..", file);
	attempt_read("fd of a file + ..", AT_FDCWD, path, O_RDONLY);

	/* Every other descriptor number is closed: no open, no fcntl. */
	int opened = 0, shown = 0, valid = 0;
	for (int fd = 3; fd < 1024; fd++) {
		if (fd == root || fd == file)
			continue;
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		int f = open(path, O_RDONLY);
		if (f >= 0) {
			report("open %s = ok", path);
			opened++;
			close(f);
		} else if (errno != ENOENT) {
			report("open %s = %s", path, errname(errno));
			opened++;
		}
		snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
		if (access(path, F_OK) == 0 || errno != ENOENT)
			shown++;
		if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
			valid++;
	}
	report("fds 3..1023 not opened by the program: %d open, %d in fdinfo, %d valid", opened, shown,
	       valid);
	return 0;
}
