/*
 * oflags: O_PATH descriptors (what works: fstat, fchdir, *at with
 * AT_EMPTY_PATH, dup; what is EBADF: read, write, mmap, ioctl, fchmod),
 * O_DIRECTORY, O_NOFOLLOW, O_APPEND (pwrite appends too) and O_CREAT|O_EXCL
 * on a dangling symlink. Works in a fresh directory under /tmp.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../veiltest.h"

static void r(const char *what, long n)
{
	report("%s = %s", what, n < 0 ? errname(errno) : "ok");
}

int main(void)
{
	char dir[64];
	strcpy(dir, "/tmp/veil-oflags-XXXXXX");
	if (!mkdtemp(dir) || chdir(dir)) {
		report("setup: %s", errname(errno));
		return 1;
	}
	int f = open("file", O_CREAT | O_RDWR, 0644);
	write(f, "0123456789", 10);
	close(f);
	mkdir("sub", 0755);
	symlink("file", "link");
	symlink("nothere", "dangling");

	int p = open("file", O_PATH);
	r("O_PATH open", p);
	struct stat st;
	r("fstat", fstat(p, &st));
	report("size %ld", (long)st.st_size);
	r("fstatat empty path", fstatat(p, "", &st, AT_EMPTY_PATH));
	char buf[16];
	r("read", read(p, buf, 1));
	r("write", write(p, "x", 1));
	r("pread", pread(p, buf, 1, 0));
	r("mmap", mmap(NULL, 4096, PROT_READ, MAP_SHARED, p, 0) == MAP_FAILED ? -1 : 0);
	int nb = 1;
	r("ioctl FIONBIO", ioctl(p, FIONBIO, &nb));
	r("ioctl FIONREAD", ioctl(p, FIONREAD, &nb));
	r("fchmod", fchmod(p, 0600));
	r("fchown", fchown(p, 0, 0));
	r("ftruncate", ftruncate(p, 0));
	r("lseek", lseek(p, 0, SEEK_SET));
	r("fsync", fsync(p));
	int d = dup(p);
	r("dup", d);
	close(d);
	report("getfl %o", fcntl(p, F_GETFL) & ~0100000);
	r("fchmodat empty path", fchmodat(p, "", 0600, AT_EMPTY_PATH));
	r("faccessat empty path", faccessat(p, "", R_OK, AT_EMPTY_PATH));
	r("linkat empty path", linkat(p, "", AT_FDCWD, "hard", AT_EMPTY_PATH));
	close(p);

	int ps = open("sub", O_PATH | O_DIRECTORY);
	r("O_PATH dir", ps);
	r("fchdir", fchdir(ps));
	r("relative stat after fchdir", stat("../file", &st));
	chdir(dir);
	r("openat under O_PATH dir", openat(ps, "../file", O_RDONLY));
	r("getdents on O_PATH", syscall(SYS_getdents64, ps, buf, sizeof buf));
	close(ps);

	int pl = open("link", O_PATH | O_NOFOLLOW);
	r("O_PATH|O_NOFOLLOW on symlink", pl);
	r("fstatat it", fstatat(pl, "", &st, AT_EMPTY_PATH));
	report("is link %d", S_ISLNK(st.st_mode));
	char target[32] = {0};
	r("readlinkat it", readlinkat(pl, "", target, sizeof target));
	report("target %s", target);
	close(pl);

	r("O_DIRECTORY on file", open("file", O_RDONLY | O_DIRECTORY));
	r("O_DIRECTORY on dir", open("sub", O_RDONLY | O_DIRECTORY));
	r("O_NOFOLLOW on symlink", open("link", O_RDONLY | O_NOFOLLOW));
	r("O_NOFOLLOW on file", open("file", O_RDONLY | O_NOFOLLOW));
	r("O_NOFOLLOW via symlink dir", open("sub/../link", O_RDONLY | O_NOFOLLOW));

	int a = open("file", O_WRONLY | O_APPEND);
	write(a, "ab", 2);
	pwrite(a, "cd", 2, 0);
	report("append pos %ld", (long)lseek(a, 0, SEEK_CUR));
	lseek(a, 0, SEEK_SET);
	write(a, "ef", 2);
	close(a);
	a = open("file", O_RDONLY);
	memset(buf, 0, sizeof buf);
	read(a, buf, sizeof buf - 1);
	report("file \"%s\"", buf);
	close(a);

	r("O_CREAT|O_EXCL on dangling", open("dangling", O_CREAT | O_EXCL | O_WRONLY, 0644));
	r("O_CREAT on dangling", open("dangling", O_CREAT | O_WRONLY, 0644));
	r("target made", stat("nothere", &st));
	r("O_CREAT|O_EXCL on symlink", open("link", O_CREAT | O_EXCL | O_WRONLY, 0644));
	r("O_CREAT|O_NOFOLLOW on symlink", open("link", O_CREAT | O_NOFOLLOW | O_WRONLY, 0644));

	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	system(cmd);
	report("all ok");
	return 0;
}
