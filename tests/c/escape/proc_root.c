/*
 * Host files through /proc/PID/root: argv[1] is "self" or "1", argv[2] the
 * secret's host path, argv[3] its path relative to the sandbox root's host
 * directory ("../outside/secret"). The attempts run in a child, so that
 * /proc/1 is another process than the caller.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>

#include "../escape.h"

static void attempts(const char *pid, const char *abs, const char *rel)
{
	char proot[64], path[PATH_MAX], link[PATH_MAX];
	snprintf(proot, sizeof proot, "/proc/%s/root", pid);

	ssize_t n = readlink(proot, link, sizeof link - 1);
	link[n < 0 ? 0 : n] = 0;
	report("readlink root = %s %s", n < 0 ? "-1" : "ok", n < 0 ? errname(errno) : link);
	snprintf(path, sizeof path, "%s%s", proot, abs);
	attempt_read("root + host path", AT_FDCWD, path, O_RDONLY);
	snprintf(path, sizeof path, "%s/../../../../../../../..%s", proot, abs);
	attempt_read("root/.. chain + host path", AT_FDCWD, path, O_RDONLY);
	snprintf(path, sizeof path, "%s/%s", proot, rel);
	attempt_read("root + relative path", AT_FDCWD, path, O_RDONLY);
	snprintf(path, sizeof path, "%s/../../../../../../../../proc/%s/root/%s", proot, pid, rel);
	attempt_read("root nested in root", AT_FDCWD, path, O_RDONLY);

	int dfd = open(proot, O_PATH | O_DIRECTORY);
	report("open root O_PATH = %s", dfd < 0 ? errname(errno) : "ok");
	report("it is the sandbox root: %s", is_root(dfd));
	attempt_read("openat(root, relative)", dfd, rel, O_RDONLY);
	snprintf(path, sizeof path, "../../../../../../../..%s", abs);
	attempt_read("openat(root, .. chain)", dfd, path, O_RDONLY);
	int up = openat(dfd, "..", O_PATH | O_DIRECTORY);
	report("openat(root, ..) is the sandbox root: %s", is_root(up));

	report("chdir root = %s", RES(chdir(proot)));
	for (int i = 0; i < 16; i++)
		chdir("..");
	report("cwd after 16 x chdir .. = %s", getcwd(path, sizeof path) ? path : errname(errno));
	report("cwd is the sandbox root: %s", same_file(".", "/"));
	attempt_read("cwd + relative path", AT_FDCWD, rel, O_RDONLY);
	report("chroot root = %s", RES(chroot(proot)));
	attempt_read("after chroot, relative path", AT_FDCWD, rel, O_RDONLY);
	attempt_read("after chroot, host path", AT_FDCWD, abs, O_RDONLY);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		report("usage: proc_root PID SECRET RELATIVE");
		return 2;
	}
	pid_t pid = fork();
	if (pid == 0) {
		attempts(argv[1], argv[2], argv[3]);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	report_status("child", status);
	return 0;
}
