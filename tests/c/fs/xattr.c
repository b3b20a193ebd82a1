/*
 * xattr: extended attributes (get/set/list/remove and their l* and f*
 * variants), natively vs under veil. Runs as root in a fresh directory
 * under /tmp; a forked child drops to uid 1000 to check the permission
 * rules. Names are printed sorted: filesystems list them in their own order.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "../veiltest.h"

static char dir[64];
static int dfd;

static const char *path_of(const char *name)
{
	static char path[128];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	return path;
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Prints the names llistxattr returns, sorted. */
static void show_list(const char *label, ssize_t len, char *buf)
{
	if (len < 0) {
		report("%s: %s", label, errname(errno));
		return;
	}
	char *names[64];
	int n = 0;
	for (char *p = buf; p < buf + len && n < 64; p += strlen(p) + 1)
		names[n++] = p;
	qsort(names, n, sizeof *names, cmp);
	char line[1024] = "";
	for (int i = 0; i < n; i++) {
		strncat(line, " ", sizeof line - strlen(line) - 1);
		strncat(line, names[i], sizeof line - strlen(line) - 1);
	}
	report("%s: %zd bytes,%s", label, len, n ? line : " none");
}

static void list(const char *name)
{
	char buf[4096];
	char label[160];
	snprintf(label, sizeof label, "list %s", name);
	show_list(label, llistxattr(path_of(name), buf, sizeof buf), buf);
}

static void get(const char *name, const char *attr)
{
	char buf[256];
	ssize_t n = lgetxattr(path_of(name), attr, buf, sizeof buf);
	if (n < 0)
		report("get %s %s: %s", name, attr, errname(errno));
	else
		report("get %s %s: %zd \"%.*s\"", name, attr, n, (int)n, buf);
}

static void create(const char *name)
{
	int fd = openat(dfd, name, O_CREAT | O_EXCL | O_WRONLY, 0644);
	if (fd < 0)
		report("create %s: %s", name, errname(errno));
	else
		close(fd);
}

static void basics(void)
{
	create("f");
	const char *f = path_of("f");
	list("f");
	report("set user.a = %s", RES(setxattr(f, "user.a", "one", 3, 0)));
	report("set user.b empty = %s", RES(setxattr(f, "user.b", "", 0, 0)));
	get("f", "user.a");
	get("f", "user.b");
	get("f", "user.missing");
	list("f");
	report("create existing = %s", RES(setxattr(f, "user.a", "x", 1, XATTR_CREATE)));
	report("replace missing = %s", RES(setxattr(f, "user.c", "x", 1, XATTR_REPLACE)));
	report("replace existing = %s", RES(setxattr(f, "user.a", "three", 5, XATTR_REPLACE)));
	get("f", "user.a");
	report("create new = %s", RES(setxattr(f, "user.c", "c", 1, XATTR_CREATE)));
	report("both flags = %s", RES(setxattr(f, "user.c", "c", 1, 3)));
	report("bad flags = %s", RES(setxattr(f, "user.c", "c", 1, 4)));

	char small[2];
	report("get size 0 = %s", RES(getxattr(f, "user.a", NULL, 0)));
	report("get small buffer = %s", RES(getxattr(f, "user.a", small, sizeof small)));
	report("list size 0 = %s", RES(listxattr(f, NULL, 0)));
	report("list small buffer = %s", RES(listxattr(f, small, sizeof small)));
	report("get bad buffer = %s", RES(syscall(SYS_getxattr, f, "user.a", 1L, 16L)));
	report("set bad value = %s", RES(syscall(SYS_setxattr, f, "user.d", 1L, 16L, 0L)));
	report("get bad name = %s", RES(getxattr(f, (void *)1, small, sizeof small)));

	char name[300];
	memset(name, 'n', sizeof name);
	memcpy(name, "user.", 5);
	name[255] = 0;
	report("set 255-byte name = %s", RES(setxattr(f, name, "v", 1, 0)));
	report("remove 255-byte name = %s", RES(removexattr(f, name)));
	name[255] = 'n';
	name[256] = 0;
	report("set 256-byte name = %s", RES(setxattr(f, name, "v", 1, 0)));
	report("get 256-byte name = %s", RES(getxattr(f, name, small, sizeof small)));
	report("set empty name = %s", RES(setxattr(f, "", "v", 1, 0)));
	report("set prefix only = %s", RES(setxattr(f, "user.", "v", 1, 0)));
	report("set unknown namespace = %s", RES(setxattr(f, "bogus.x", "v", 1, 0)));
	report("get unknown namespace = %s", RES(getxattr(f, "bogus.x", small, sizeof small)));
	static char big[65537];
	report("set value > 64k = %s", RES(setxattr(f, "user.big", big, sizeof big, 0)));

	report("remove user.b = %s", RES(removexattr(f, "user.b")));
	report("remove user.b again = %s", RES(removexattr(f, "user.b")));
	list("f");

	report("get missing file = %s", RES(getxattr(path_of("nope"), "user.a", small, 2)));
	report("set missing file = %s", RES(setxattr(path_of("nope"), "user.a", "v", 1, 0)));
}

static void directories_and_links(void)
{
	mkdirat(dfd, "d", 0755);
	const char *d = path_of("d");
	report("set dir user.k = %s", RES(setxattr(d, "user.k", "dir", 3, 0)));
	get("d", "user.k");
	list("d");
	report("remove dir user.k = %s", RES(removexattr(d, "user.k")));
	list("d");

	symlinkat("f", dfd, "l");
	get("l", "user.a");
	report("get through link = %s", RES(getxattr(path_of("l"), "user.a", NULL, 0)));
	report("lset on link = %s", RES(lsetxattr(path_of("l"), "user.a", "v", 1, 0)));
	report("lremove on link = %s", RES(lremovexattr(path_of("l"), "user.a")));
	list("l");
	report("set through link = %s", RES(setxattr(path_of("l"), "user.viaLink", "v", 1, 0)));
	get("f", "user.viaLink");

	report("trusted set = %s", RES(setxattr(path_of("f"), "trusted.t", "tt", 2, 0)));
	get("f", "trusted.t");
	list("f");
}

static void descriptors(void)
{
	int fd = openat(dfd, "f", O_RDONLY);
	char buf[64];
	report("fget = %s", RES(fgetxattr(fd, "user.a", buf, sizeof buf)));
	report("fset on read-only fd = %s", RES(fsetxattr(fd, "user.fd", "1", 1, 0)));
	ssize_t n = flistxattr(fd, buf, sizeof buf);
	show_list("flist", n, buf);
	report("fremove = %s", RES(fremovexattr(fd, "user.fd")));
	close(fd);
	fd = openat(dfd, "f", O_PATH);
	report("fget on O_PATH = %s", RES(fgetxattr(fd, "user.a", buf, sizeof buf)));
	report("fset on O_PATH = %s", RES(fsetxattr(fd, "user.a", "1", 1, 0)));
	report("flist on O_PATH = %s", RES(flistxattr(fd, buf, sizeof buf)));
	close(fd);
	report("fget bad fd = %s", RES(fgetxattr(-1, "user.a", buf, sizeof buf)));
	int p[2];
	pipe(p);
	report("fset on pipe = %s", RES(fsetxattr(p[0], "user.a", "1", 1, 0)));
	close(p[0]);
	close(p[1]);
}

static void unprivileged(void)
{
	create("private");
	fchmodat(dfd, "private", 0600, 0);
	setxattr(path_of("private"), "user.p", "p", 1, 0);
	create("mine");
	fchownat(dfd, "mine", 1000, 1000, 0);
	mkdirat(dfd, "sticky", 01777);
	fchmodat(dfd, "sticky", 01777, 0);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		if (setgroups(0, NULL) || setresgid(1000, 1000, 1000) ||
		    setresuid(1000, 1000, 1000)) {
			report("dropping privileges: %s", errname(errno));
			_exit(1);
		}
		char buf[64];
		report("user get unreadable = %s",
		       RES(getxattr(path_of("private"), "user.p", buf, sizeof buf)));
		report("user list unreadable = %s",
		       RES(listxattr(path_of("private"), buf, sizeof buf)));
		report("user set root's = %s",
		       RES(setxattr(path_of("f"), "user.u", "u", 1, 0)));
		report("user get root's = %s",
		       RES(getxattr(path_of("f"), "user.a", buf, sizeof buf)));
		report("user get trusted = %s",
		       RES(getxattr(path_of("f"), "trusted.t", buf, sizeof buf)));
		ssize_t n = listxattr(path_of("f"), buf, sizeof buf);
		show_list("user list (no trusted)", n, buf);
		report("user set own = %s",
		       RES(setxattr(path_of("mine"), "user.m", "m", 1, 0)));
		report("user set trusted on own = %s",
		       RES(setxattr(path_of("mine"), "trusted.m", "m", 1, 0)));
		report("user set sticky dir = %s",
		       RES(setxattr(path_of("sticky"), "user.s", "s", 1, 0)));
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	report("child exit %d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	get("mine", "user.m");
}

static void cleanup(void)
{
	static const char *files[] = { "f", "l", "private", "mine" };
	for (size_t i = 0; i < sizeof files / sizeof *files; i++)
		unlinkat(dfd, files[i], 0);
	unlinkat(dfd, "d", AT_REMOVEDIR);
	unlinkat(dfd, "sticky", AT_REMOVEDIR);
	close(dfd);
	rmdir(dir);
}

int main(void)
{
	strcpy(dir, "/tmp/veil-xattr-XXXXXX");
	if (!mkdtemp(dir)) {
		report("mkdtemp: %s", errname(errno));
		return 1;
	}
	chmod(dir, 0755);
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	basics();
	directories_and_links();
	descriptors();
	unprivileged();
	cleanup();
	return finish();
}
