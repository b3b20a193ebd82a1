/*
 * Helpers of the escape-attempt programs in tests/c/escape/: each attempt
 * prints what it tried (a label, never a host path) and the errno it got.
 * Whatever an attempt manages to read is printed too, so that a leak of the
 * host's secret shows in the output the test inspects.
 */
#ifndef ESCAPE_H
#define ESCAPE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include "veiltest.h"

/* Opens dirfd/path with flags and reads what it can. */
__attribute__((unused)) static void attempt_read(const char *what, int dirfd, const char *path,
						 int flags)
{
	char buf[256];
	int fd = openat(dirfd, path, flags);
	if (fd < 0) {
		report("%s: open = -1 %s", what, errname(errno));
		return;
	}
	ssize_t n = read(fd, buf, sizeof buf - 1);
	int e = errno;
	close(fd);
	if (n < 0) {
		report("%s: open ok, read = -1 %s", what, errname(e));
		return;
	}
	buf[n] = 0;
	report("%s: open ok, read %zd bytes: %s", what, n, buf);
}

/* Opens dirfd/path for writing (creating it) and writes a line. */
__attribute__((unused)) static void attempt_write(const char *what, int dirfd, const char *path,
						  int flags)
{
	int fd = openat(dirfd, path, O_WRONLY | O_CREAT | flags, 0666);
	if (fd < 0) {
		report("%s: open = -1 %s", what, errname(errno));
		return;
	}
	ssize_t n = write(fd, "escaped\n", 8);
	int e = errno;
	close(fd);
	report("%s: open ok, write = %s", what, res(n, e));
}

/* Whether two paths name the same file ("yes", "no" or the errno). */
__attribute__((unused)) static const char *same_file(const char *a, const char *b)
{
	struct stat sa, sb;
	if (stat(a, &sa) || stat(b, &sb))
		return errname(errno);
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino ? "yes" : "no";
}

/* Whether an open descriptor is the sandbox's root directory. */
__attribute__((unused)) static const char *is_root(int fd)
{
	struct stat sa, sb;
	if (fstat(fd, &sa) || stat("/", &sb))
		return errname(errno);
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino ? "yes" : "no";
}

/* Runs fn in a child process as uid/gid 65534 (no capabilities left),
 * and waits for it. */
__attribute__((unused)) static void as_nobody(void (*fn)(const char *who))
{
	pid_t pid = fork();
	if (pid == 0) {
		if (setgroups(0, NULL) || setgid(65534) || setuid(65534)) {
			report("drop to nobody: %s", errname(errno));
			_exit(1);
		}
		fn("nobody");
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		report_status("nobody child", status);
}

#endif
