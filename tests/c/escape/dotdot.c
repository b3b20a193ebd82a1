/*
 * ".." never leaves the root: chains from / and from a deep directory, and
 * openat2 with absolute and ".." resolutions. argv[1] is the secret's host
 * path, argv[2] its path relative to the root's host directory
 * ("../outside/secret").
 */
#define _GNU_SOURCE
#include <limits.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>

#include "../escape.h"

static long o2(int at, const char *path, uint64_t flags, uint64_t resolve)
{
	struct open_how how = {.flags = flags, .resolve = resolve};
	return syscall(SYS_openat2, at, path, &how, sizeof how);
}

static void attempt2(const char *what, int at, const char *path, uint64_t resolve)
{
	char buf[256];
	long fd = o2(at, path, O_RDONLY, resolve);
	if (fd < 0) {
		report("%s: openat2 = -1 %s", what, errname(errno));
		return;
	}
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n < 0 ? 0 : n] = 0;
	report("%s: openat2 ok, read %zd bytes: %s", what, n, buf);
}

int main(int argc, char **argv)
{
	char path[PATH_MAX];
	const char *abs = argv[1], *rel = argv[2];
	if (argc != 3) {
		report("usage: dotdot SECRET RELATIVE");
		return 2;
	}
	report("/.. is /: %s", same_file("/..", "/"));
	report("/../../.. is /: %s", same_file("/../../..", "/"));
	snprintf(path, sizeof path, "/%s", rel);
	attempt_read("/ + relative path", AT_FDCWD, path, O_RDONLY);
	snprintf(path, sizeof path, "/../../../../../../../..%s", abs);
	attempt_read("/.. chain + host path", AT_FDCWD, path, O_RDONLY);

	mkdir("/d1", 0755);
	mkdir("/d1/d2", 0755);
	mkdir("/d1/d2/d3", 0755);
	report("chdir /d1/d2/d3 = %s", RES(chdir("/d1/d2/d3")));
	snprintf(path, sizeof path, "../../../%s", rel);
	attempt_read("deep dir + ../../../relative", AT_FDCWD, path, O_RDONLY);
	snprintf(path, sizeof path, "../../../../../../../../../../..%s", abs);
	attempt_read("deep dir + .. chain + host path", AT_FDCWD, path, O_RDONLY);
	for (int i = 0; i < 20; i++)
		chdir("..");
	report("cwd after 20 x chdir .. = %s", getcwd(path, sizeof path) ? path : errname(errno));

	int d1 = open("/d1", O_PATH | O_DIRECTORY);
	int root = open("/", O_PATH | O_DIRECTORY);
	snprintf(path, sizeof path, "../%s", rel);
	attempt2("BENEATH /d1, ../relative", d1, path, RESOLVE_BENEATH);
	attempt2("BENEATH /, relative", root, rel, RESOLVE_BENEATH);
	attempt2("BENEATH /, host path", root, abs, RESOLVE_BENEATH);
	attempt2("IN_ROOT /d1, ../../relative", d1, path, RESOLVE_IN_ROOT);
	attempt2("IN_ROOT /, host path", root, abs, RESOLVE_IN_ROOT);
	attempt2("IN_ROOT /, relative", root, rel, RESOLVE_IN_ROOT);
	attempt2("no restriction, /, relative", root, rel, 0);
	snprintf(path, sizeof path, "/proc/self/root/%s", rel);
	attempt2("NO_MAGICLINKS through /proc/self/root", AT_FDCWD, path, RESOLVE_NO_MAGICLINKS);
	long up = o2(root, "../../..", O_PATH | O_DIRECTORY, 0);
	report("openat2(/, ../../..) is the sandbox root: %s", is_root(up));
	up = o2(d1, "../../..", O_PATH | O_DIRECTORY, RESOLVE_IN_ROOT);
	report("IN_ROOT openat2(/d1, ../../..) = %s", up < 0 ? errname(errno) : "ok");
	snprintf(path, sizeof path, "/proc/self/fd/%ld", up);
	report("  it is /d1: %s", up < 0 ? "-" : same_file(path, "/d1"));
	return 0;
}
