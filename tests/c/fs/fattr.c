/*
 * fattr: file metadata (chmod, chown, utimes families, umask on create) and
 * the sync family, natively vs under veil. Runs as root; a forked child
 * drops to uid/gid 1000 with supplementary group 2000 to check the rules
 * for non-owners and owners without capabilities.
 *
 * Works only on files it creates in a fresh directory under /tmp, removed
 * again at the end. Prints modes in octal, IDs, times it set itself and
 * errno names.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#include "../veiltest.h"

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif

static char dir[64];
static int dfd;

static const char *path_of(const char *name)
{
	static char path[128];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	return path;
}

static void show(const char *name)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW)) {
		report("%s: stat %s", name, errname(errno));
		return;
	}
	report("%s: mode %o uid %u gid %u", name, st.st_mode, st.st_uid, st.st_gid);
}

static void show_times(const char *name)
{
	struct stat st;
	fstatat(dfd, name, &st, 0);
	report("%s: atime %ld.%09ld mtime %ld.%09ld", name, (long)st.st_atim.tv_sec,
	       st.st_atim.tv_nsec, (long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

static void create(const char *name, mode_t mode)
{
	int fd = openat(dfd, name, O_CREAT | O_EXCL | O_WRONLY, mode);
	if (fd < 0) {
		report("create %s: %s", name, errname(errno));
		return;
	}
	close(fd);
}

static void modes(void)
{
	umask(022);
	create("f", 0666);
	show("f");
	umask(0);
	create("g", 0666);
	show("g");
	umask(027);
	mkdirat(dfd, "d", 0777);
	show("d");
	umask(022);

	struct stat before, after;
	fstatat(dfd, "f", &before, 0);
	report("chmod 600 = %s", RES(fchmodat(dfd, "f", 0600, 0)));
	fstatat(dfd, "f", &after, 0);
	check(after.st_ctim.tv_sec > before.st_ctim.tv_sec ||
		      (after.st_ctim.tv_sec == before.st_ctim.tv_sec &&
		       after.st_ctim.tv_nsec >= before.st_ctim.tv_nsec),
	      "chmod keeps ctime monotonic", NULL);
	show("f");
	report("chmod 17777 = %s", RES(fchmodat(dfd, "f", 017777, 0)));
	show("f");
	int fd = openat(dfd, "f", O_RDONLY);
	report("fchmod on read-only fd = %s", RES(fchmod(fd, 0640)));
	close(fd);
	show("f");
	fd = openat(dfd, "f", O_PATH);
	report("fchmod on O_PATH = %s", RES(fchmod(fd, 0600)));
	report("fchmodat2 O_PATH empty path = %s",
	       RES(syscall(SYS_fchmodat2, fd, "", 0604, AT_EMPTY_PATH)));
	close(fd);
	show("f");
	symlinkat("f", dfd, "l");
	report("fchmodat2 nofollow on symlink = %s",
	       RES(syscall(SYS_fchmodat2, dfd, "l", 0600, AT_SYMLINK_NOFOLLOW)));
	report("fchmodat2 bad flags = %s", RES(syscall(SYS_fchmodat2, dfd, "f", 0600, 0x4)));
	report("chmod through symlink = %s", RES(fchmodat(dfd, "l", 0660, 0)));
	show("f");
	report("chmod missing = %s", RES(fchmodat(dfd, "missing", 0600, 0)));
}

static void owners(void)
{
	create("s", 0755);
	fchmodat(dfd, "s", 06755, 0);
	show("s");
	report("chown 1000:1000 = %s", RES(fchownat(dfd, "s", 1000, 1000, 0)));
	show("s");
	create("k", 0644);
	fchmodat(dfd, "k", 02644, 0);
	report("chown -1:5 (sgid without group x) = %s", RES(fchownat(dfd, "k", -1, 5, 0)));
	show("k");
	fchmodat(dfd, "k", 04644, 0);
	report("chown -1:-1 = %s", RES(fchownat(dfd, "k", -1, -1, 0)));
	show("k");
	fchmodat(dfd, "d", 06755, 0);
	report("chown dir = %s", RES(fchownat(dfd, "d", 7, 7, 0)));
	show("d");
	report("lchown symlink = %s", RES(fchownat(dfd, "l", 3, 4, AT_SYMLINK_NOFOLLOW)));
	show("l");
	show("f");
	int fd = openat(dfd, "f", O_RDONLY);
	report("fchown = %s", RES(fchown(fd, 11, 12)));
	report("fchownat empty path = %s", RES(fchownat(fd, "", 13, -1, AT_EMPTY_PATH)));
	report("fchownat empty path no flag = %s", RES(fchownat(fd, "", 13, -1, 0)));
	report("fchownat bad flags = %s", RES(fchownat(dfd, "f", 13, -1, 0x2)));
	close(fd);
	show("f");
	fchownat(dfd, "f", 0, 0, 0);
}

static void times(void)
{
	struct timespec ts[2] = { { 1000, 5 }, { 2000, 7 } };
	report("utimensat = %s", RES(utimensat(dfd, "g", ts, 0)));
	show_times("g");
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1] = (struct timespec){ 3000, 0 };
	report("utimensat omit atime = %s", RES(utimensat(dfd, "g", ts, 0)));
	show_times("g");
	ts[0] = (struct timespec){ 1, 1000000000 };
	report("utimensat bad nsec = %s", RES(utimensat(dfd, "g", ts, 0)));
	report("utimensat bad flags = %s", RES(utimensat(dfd, "g", NULL, 0x2)));
	time_t start = time(NULL);
	ts[0].tv_nsec = UTIME_NOW;
	ts[1].tv_nsec = UTIME_OMIT;
	utimensat(dfd, "g", ts, 0);
	struct stat st;
	fstatat(dfd, "g", &st, 0);
	check(st.st_atime >= start && st.st_mtime == 3000, "UTIME_NOW atime", NULL);

	char path[128];
	snprintf(path, sizeof path, "%s/g", dir);
	struct timeval tv[2] = { { 10, 20 }, { 30, 40 } };
	report("utimes = %s", RES(utimes(path, tv)));
	show_times("g");
	tv[1].tv_usec = 1000000;
	report("utimes bad usec = %s", RES(utimes(path, tv)));
	tv[1].tv_usec = 1;
	report("futimesat = %s", RES(futimesat(dfd, "g", tv)));
	show_times("g");
	struct utimbuf ub = { 50, 60 };
	report("utime = %s", RES(utime(path, &ub)));
	show_times("g");
	report("utime now = %s", RES(utime(path, NULL)));
	fstatat(dfd, "g", &st, 0);
	check(st.st_mtime >= start, "utime NULL sets now", NULL);

	int fd = openat(dfd, "g", O_RDONLY);
	ts[0] = (struct timespec){ 70, 0 };
	ts[1] = (struct timespec){ 80, 0 };
	report("futimens = %s", RES(futimens(fd, ts)));
	show_times("g");
	report("utimensat null path flags = %s", RES(syscall(SYS_utimensat, fd, NULL, ts, AT_SYMLINK_NOFOLLOW)));
	close(fd);
	fd = openat(dfd, "g", O_PATH);
	report("futimens O_PATH = %s", RES(futimens(fd, ts)));
	ts[0].tv_sec = 90;
	report("utimensat O_PATH empty path = %s", RES(utimensat(fd, "", ts, AT_EMPTY_PATH)));
	close(fd);
	show_times("g");
	ts[1] = (struct timespec){ 100, 0 };
	report("utimensat nofollow on symlink = %s", RES(utimensat(dfd, "l", ts, AT_SYMLINK_NOFOLLOW)));
	fstatat(dfd, "l", &st, AT_SYMLINK_NOFOLLOW);
	report("l: mtime %ld", (long)st.st_mtime);
}

/* As uid 1000, gid 1000, groups {2000}: the rules for the unprivileged. */
static void unprivileged(void)
{
	create("root", 0644);
	create("shared", 0666);
	fchmodat(dfd, "shared", 0666, 0);
	create("mine", 0644);
	create("theirs_group", 0644);
	fchownat(dfd, "mine", 1000, 1000, 0);
	fchownat(dfd, "theirs_group", 1000, 0, 0);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		gid_t groups[] = { 2000 };
		if (setgroups(1, groups) || setresgid(1000, 1000, 1000) ||
		    setresuid(1000, 1000, 1000)) {
			report("dropping privileges: %s", errname(errno));
			_exit(1);
		}
		report("user chmod root's = %s", RES(fchmodat(dfd, "root", 0600, 0)));
		report("user chmod own = %s", RES(fchmodat(dfd, "mine", 02640, 0)));
		show("mine");
		report("user chmod sgid outside group = %s",
		       RES(fchmodat(dfd, "theirs_group", 02755, 0)));
		show("theirs_group");
		report("user chown own to 0 = %s", RES(fchownat(dfd, "mine", 0, -1, 0)));
		report("user chown own to self = %s", RES(fchownat(dfd, "mine", 1000, -1, 0)));
		report("user chgrp own to 2000 = %s", RES(fchownat(dfd, "mine", -1, 2000, 0)));
		show("mine");
		report("user chgrp own to 3000 = %s", RES(fchownat(dfd, "mine", -1, 3000, 0)));
		report("user chgrp root's = %s", RES(fchownat(dfd, "root", -1, 0, 0)));
		struct timespec ts[2] = { { 5, 0 }, { 6, 0 } };
		report("user touch writable = %s", RES(utimensat(dfd, "shared", NULL, 0)));
		report("user touch read-only = %s", RES(utimensat(dfd, "root", NULL, 0)));
		report("user set times writable = %s", RES(utimensat(dfd, "shared", ts, 0)));
		report("user set times own = %s", RES(utimensat(dfd, "mine", ts, 0)));
		show_times("mine");
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	report_status("unprivileged child", status);
}

static void syncs(void)
{
	int fd = openat(dfd, "f", O_RDWR);
	int p[2];
	pipe(p);
	int path = openat(dfd, "f", O_PATH);
	report("fsync file = %s", RES(fsync(fd)));
	report("fdatasync file = %s", RES(fdatasync(fd)));
	report("fsync dir = %s", RES(fsync(dfd)));
	report("fsync pipe = %s", RES(fsync(p[0])));
	report("fsync O_PATH = %s", RES(fsync(path)));
	report("fsync bad fd = %s", RES(fsync(999)));
	report("syncfs = %s", RES(syncfs(fd)));
	report("syncfs bad fd = %s", RES(syncfs(999)));
	sync();
	report("sync_file_range = %s", RES(sync_file_range(fd, 0, 100, SYNC_FILE_RANGE_WRITE)));
	report("sync_file_range bad flags = %s", RES(sync_file_range(fd, 0, 100, 8)));
	report("sync_file_range negative = %s", RES(sync_file_range(fd, -1, 100, 0)));
	report("sync_file_range pipe = %s", RES(sync_file_range(p[1], 0, 100, 0)));
	close(fd);
	close(path);
	close(p[0]);
	close(p[1]);
}

static void report_size(const char *what, int fd)
{
	struct stat st;
	fstat(fd, &st);
	report("%s: size %ld", what, (long)st.st_size);
}

static void allocs(void)
{
	int fd = openat(dfd, "a", O_CREAT | O_RDWR, 0644);
	int ro = openat(dfd, "a", O_RDONLY);
	int p[2];
	pipe(p);
	report("fallocate 0 = %s", RES(fallocate(fd, 0, 0, 10000)));
	report_size("after extend", fd);
	report("fallocate shorter = %s", RES(fallocate(fd, 0, 0, 100)));
	report_size("after shorter", fd);
	report("fallocate keep size = %s", RES(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 50000)));
	report_size("after keep size", fd);
	char buf[8192];
	memset(buf, 'x', sizeof buf);
	pwrite(fd, buf, sizeof buf, 0);
	report("punch hole = %s",
	       RES(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 5000)));
	report_size("after punch", fd);
	memset(buf, '?', sizeof buf);
	pread(fd, buf, sizeof buf, 0);
	int zeros = 0;
	for (size_t i = 0; i < sizeof buf; i++)
		zeros += buf[i] == 0;
	report("punched: byte 99 %c, byte 100 %d, byte 5099 %d, byte 5100 %c, zeros %d", buf[99],
	       buf[100], buf[5099], buf[5100], zeros);
	report("punch without keep size = %s", RES(fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 10)));
	report("fallocate bad mode = %s", RES(fallocate(fd, 0x100000, 0, 10)));
	report("fallocate zero len = %s", RES(fallocate(fd, 0, 0, 0)));
	report("fallocate negative offset = %s", RES(fallocate(fd, 0, -1, 10)));
	report("fallocate overflow = %s", RES(fallocate(fd, 0, 0x7fffffffffffff00LL, 0x1000)));
	report("fallocate read-only = %s", RES(fallocate(ro, 0, 0, 10)));
	report("fallocate pipe = %s", RES(fallocate(p[1], 0, 0, 10)));
	report("fallocate dir = %s", RES(fallocate(dfd, 0, 0, 10)));
	report("truncate path = %s", RES(truncate(path_of("a"), 7)));
	report_size("after truncate", fd);
	close(fd);
	close(ro);
	close(p[0]);
	close(p[1]);
}

static void cleanup(void)
{
	static const char *files[] = { "f", "g", "l", "s", "k", "root", "shared", "mine",
				       "theirs_group", "a" };
	for (size_t i = 0; i < sizeof files / sizeof *files; i++)
		unlinkat(dfd, files[i], 0);
	unlinkat(dfd, "d", AT_REMOVEDIR);
	close(dfd);
	rmdir(dir);
}

int main(void)
{
	strcpy(dir, "/tmp/veil-fattr-XXXXXX");
	if (!mkdtemp(dir)) {
		report("mkdtemp: %s", errname(errno));
		return 1;
	}
	chmod(dir, 0755);
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	modes();
	owners();
	times();
	unprivileged();
	syncs();
	allocs();
	cleanup();
	return finish();
}
