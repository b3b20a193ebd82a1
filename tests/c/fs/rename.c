/*
 * rename: renameat2 flags (RENAME_NOREPLACE, RENAME_EXCHANGE and
 * RENAME_WHITEOUT's errors: whether a whiteout succeeds depends on the
 * filesystem, and veil's have none), renames into a directory's own
 * subtree, of mountpoints and across mounts. Works in a fresh directory
 * under /tmp.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../veiltest.h"

static char dir[64];

static void put(const char *name, const char *data)
{
	int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	write(fd, data, strlen(data));
	close(fd);
}

static void show(const char *name)
{
	char buf[32] = {0};
	struct stat st;
	if (lstat(name, &st)) {
		report("%s: %s", name, errname(errno));
		return;
	}
	if (S_ISDIR(st.st_mode)) {
		report("%s: dir", name);
		return;
	}
	int fd = open(name, O_RDONLY);
	read(fd, buf, sizeof buf - 1);
	close(fd);
	report("%s: \"%s\"", name, buf);
}

static void r2(const char *what, const char *a, const char *b, unsigned flags)
{
	long n = syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, flags);
	report("%s = %ld %s", what, n, n < 0 ? errname(errno) : "");
}

int main(void)
{
	strcpy(dir, "/tmp/veil-rename-XXXXXX");
	if (!mkdtemp(dir) || chdir(dir)) {
		report("setup: %s", errname(errno));
		return 1;
	}
	put("a", "A");
	put("b", "B");
	mkdir("d", 0755);
	put("d/inner", "I");
	mkdir("d/sub", 0755);
	mkdir("e", 0755);

	r2("noreplace existing", "a", "b", RENAME_NOREPLACE);
	r2("noreplace new", "a", "c", RENAME_NOREPLACE);
	show("a");
	show("c");
	r2("exchange files", "b", "c", RENAME_EXCHANGE);
	show("b");
	show("c");
	r2("exchange file and dir", "c", "d", RENAME_EXCHANGE);
	show("c");
	show("d");
	show("c/inner");
	r2("exchange back", "d", "c", RENAME_EXCHANGE);
	r2("exchange missing", "b", "nothere", RENAME_EXCHANGE);
	r2("exchange missing source", "nothere", "b", RENAME_EXCHANGE);
	r2("exchange|noreplace", "b", "c", RENAME_EXCHANGE | RENAME_NOREPLACE);
	r2("bad flag", "b", "c", 8);
	r2("exchange same", "b", "b", RENAME_EXCHANGE);
	r2("exchange into own subdir", "d", "d/sub", RENAME_EXCHANGE);
	r2("exchange with ancestor", "d/sub", "d", RENAME_EXCHANGE);
	r2("exchange file trailing slash", "b/", "d", RENAME_EXCHANGE);
	r2("exchange dirs", "d", "e", RENAME_EXCHANGE);
	show("e/inner");
	show("d/inner");

	/* A cwd inside an exchanged directory follows it. */
	char cwd[128];
	chdir("e/sub");
	r2("exchange cwd's parent", "../../e", "../../d", RENAME_EXCHANGE);
	getcwd(cwd, sizeof cwd);
	report("cwd ends %s", cwd + strlen(dir));
	chdir(dir);

	r2("into own subdir", "d", "d/sub/x", 0);
	r2("noreplace dir onto dir", "e", "d", RENAME_NOREPLACE);
	r2("mountpoint", "/proc", "/proc2", 0);
	r2("mountpoint noreplace", "/proc", "/dev", RENAME_NOREPLACE);
	r2("cross mount", "b", "/dev/shm/veil-rename-x", 0);
	r2("cross mount noreplace", "b", "/dev/shm/veil-rename-x", RENAME_NOREPLACE);

	r2("whiteout missing", "nothere", "w", RENAME_WHITEOUT);
	r2("whiteout|exchange", "b", "w", RENAME_WHITEOUT | RENAME_EXCHANGE);

	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	system(cmd);
	report("all ok");
	return 0;
}
