/*
 * openat2: struct open_how size and flag checks, and the RESOLVE_* walk
 * restrictions (NO_XDEV, NO_MAGICLINKS, NO_SYMLINKS, BENEATH, IN_ROOT,
 * CACHED with creation). Works in a fresh directory under /tmp.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../veiltest.h"

static char dir[64];
static int dfd;

static long o2(int at, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve)
{
	struct open_how how = {.flags = flags, .mode = mode, .resolve = resolve};
	return syscall(SYS_openat2, at, path, &how, sizeof how);
}

static void r(const char *what, long fd)
{
	if (fd >= 0) {
		struct stat st;
		fstat(fd, &st);
		report("%s = ok %s", what, S_ISDIR(st.st_mode) ? "dir" : S_ISREG(st.st_mode) ? "file" : S_ISLNK(st.st_mode) ? "link" : "other");
		close(fd);
	} else {
		report("%s = %s", what, errname(errno));
	}
}

int main(void)
{
	strcpy(dir, "/tmp/veil-openat2-XXXXXX");
	if (!mkdtemp(dir) || chdir(dir)) {
		report("setup: %s", errname(errno));
		return 1;
	}
	dfd = open(".", O_RDONLY | O_DIRECTORY);
	mkdir("sub", 0755);
	close(open("sub/file", O_CREAT | O_WRONLY, 0644));
	symlink("sub/file", "rel");
	symlink("/etc/hostname", "abs");
	symlink("../..", "sub/up");
	symlink("/sub/file", "inroot");

	struct open_how how = {.flags = O_RDONLY};
	char big[64] = {0};
	memcpy(big, &how, sizeof how);
	r("size 8", syscall(SYS_openat2, dfd, "sub/file", &how, 8));
	r("size 24", syscall(SYS_openat2, dfd, "sub/file", &how, 24));
	r("size 64 zero tail", syscall(SYS_openat2, dfd, "sub/file", big, 64));
	big[40] = 1;
	r("size 64 nonzero tail", syscall(SYS_openat2, dfd, "sub/file", big, 64));
	r("size 8192", syscall(SYS_openat2, dfd, "sub/file", big, 8192));
	r("bad pointer", syscall(SYS_openat2, dfd, "sub/file", (void *)8, 24));
	r("unknown flag", o2(dfd, "sub/file", 1ULL << 40, 0, 0));
	r("unknown resolve", o2(dfd, "sub/file", 0, 0, 0x100));
	r("mode without O_CREAT", o2(dfd, "sub/file", 0, 0644, 0));
	r("bad mode", o2(dfd, "new", O_CREAT | O_WRONLY, 010000, 0));
	r("create", o2(dfd, "new", O_CREAT | O_WRONLY, 0600, 0));
	r("O_PATH|O_RDWR", o2(dfd, "sub/file", O_PATH | O_RDWR, 0, 0));
	r("O_PATH|O_NOFOLLOW", o2(dfd, "rel", O_PATH | O_NOFOLLOW, 0, 0));
	r("beneath|in_root", o2(dfd, "sub/file", 0, 0, RESOLVE_BENEATH | RESOLVE_IN_ROOT));
	r("cached|creat", o2(dfd, "x", O_CREAT | O_WRONLY, 0600, RESOLVE_CACHED));
	r("cached|trunc", o2(dfd, "sub/file", O_TRUNC | O_WRONLY, 0, RESOLVE_CACHED));

	r("no_symlinks rel", o2(dfd, "rel", 0, 0, RESOLVE_NO_SYMLINKS));
	r("no_symlinks plain", o2(dfd, "sub/file", 0, 0, RESOLVE_NO_SYMLINKS));
	r("no_symlinks O_PATH|O_NOFOLLOW", o2(dfd, "rel", O_PATH | O_NOFOLLOW, 0, RESOLVE_NO_SYMLINKS));
	r("no_magiclinks plain symlink", o2(dfd, "rel", 0, 0, RESOLVE_NO_MAGICLINKS));
	char fdpath[64];
	snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", dfd);
	r("no_magiclinks procfd", o2(AT_FDCWD, fdpath, 0, 0, RESOLVE_NO_MAGICLINKS));
	r("no_symlinks procfd", o2(AT_FDCWD, fdpath, 0, 0, RESOLVE_NO_SYMLINKS));
	r("procfd", o2(AT_FDCWD, fdpath, 0, 0, 0));
	r("no_magiclinks procfd O_PATH|O_NOFOLLOW", o2(AT_FDCWD, fdpath, O_PATH | O_NOFOLLOW, 0, RESOLVE_NO_MAGICLINKS));

	r("beneath inside", o2(dfd, "sub/file", 0, 0, RESOLVE_BENEATH));
	r("beneath dotdot inside", o2(dfd, "sub/../sub/file", 0, 0, RESOLVE_BENEATH));
	r("beneath dotdot out", o2(dfd, "..", 0, 0, RESOLVE_BENEATH));
	r("beneath absolute", o2(dfd, "/etc/hostname", 0, 0, RESOLVE_BENEATH));
	r("beneath abs symlink", o2(dfd, "abs", 0, 0, RESOLVE_BENEATH));
	r("beneath rel symlink", o2(dfd, "rel", 0, 0, RESOLVE_BENEATH));
	r("beneath symlink up", o2(dfd, "sub/up", 0, 0, RESOLVE_BENEATH));
	r("beneath procfd", o2(AT_FDCWD, fdpath, 0, 0, RESOLVE_BENEATH));

	r("in_root dotdot", o2(dfd, "../../sub/file", 0, 0, RESOLVE_IN_ROOT));
	r("in_root absolute", o2(dfd, "/sub/file", 0, 0, RESOLVE_IN_ROOT));
	r("in_root abs symlink", o2(dfd, "inroot", 0, 0, RESOLVE_IN_ROOT));
	r("in_root symlink out", o2(dfd, "abs", 0, 0, RESOLVE_IN_ROOT));
	r("in_root symlink up", o2(dfd, "sub/up/sub", 0, 0, RESOLVE_IN_ROOT));

	int root = open("/", O_RDONLY | O_DIRECTORY);
	r("no_xdev same mount", o2(dfd, "sub/file", 0, 0, RESOLVE_NO_XDEV));
	r("no_xdev into /proc", o2(root, "proc/self", O_PATH | O_NOFOLLOW, 0, RESOLVE_NO_XDEV));
	r("no_xdev /proc", o2(root, "proc", 0, 0, RESOLVE_NO_XDEV));
	r("no_xdev absolute /etc", o2(dfd, "/etc", 0, 0, RESOLVE_NO_XDEV));
	r("no_xdev absolute /dev/null", o2(dfd, "/dev/null", 0, 0, RESOLVE_NO_XDEV));
	int proc = open("/proc", O_RDONLY | O_DIRECTORY);
	r("no_xdev dotdot out of /proc", o2(proc, "..", 0, 0, RESOLVE_NO_XDEV));
	r("cached plain", o2(dfd, "sub/file", 0, 0, RESOLVE_CACHED));

	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	system(cmd);
	report("all ok");
	return 0;
}
