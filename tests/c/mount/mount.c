/*
 * mount(2), umount2, statfs, bind mounts, remounts, chroot and pivot_root.
 * Natively this runs as root inside `unshare -m --propagation private`, so
 * its mounts stay in a private namespace; under veil it runs as is.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../veiltest.h"

#define TMPFS_MAGIC 0x01021994

static char base[64];

/* A path beneath the scratch directory (never freed: the program is short). */
static char *at(const char *name)
{
	char *b;
	if (asprintf(&b, "%s/%s", base, name) < 0)
		exit(1);
	return b;
}

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	int r = write(fd, s, strlen(s)) == (ssize_t)strlen(s) ? 0 : -1;
	close(fd);
	return r;
}

static const char *read_file(const char *path)
{
	static char buf[128];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return errname(errno);
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n < 0 ? 0 : n] = 0;
	return buf;
}

/* Whether /proc/self/mounts lists a mount of `type` on `path`. */
static int listed(const char *path, const char *type)
{
	FILE *f = fopen("/proc/self/mounts", "r");
	char line[1024], want[512];
	int found = 0;
	if (!f)
		return -1;
	snprintf(want, sizeof want, " %s %s ", path, type);
	while (fgets(line, sizeof line, f))
		found |= strstr(line, want) != NULL;
	fclose(f);
	return found;
}

/* How many mounts /proc/self/mounts lists on `path`. */
static int count_listed(const char *path)
{
	FILE *f = fopen("/proc/self/mounts", "r");
	char line[1024], want[512];
	int n = 0;
	if (!f)
		return -1;
	snprintf(want, sizeof want, " %s ", path);
	while (fgets(line, sizeof line, f))
		n += strstr(line, want) != NULL;
	fclose(f);
	return n;
}

static void tmpfs_lifecycle(void)
{
	char *a = at("a");
	mkdir(a, 0755);
	report("mount tmpfs: %s", RES(mount("none", a, "tmpfs", 0, "size=1m,mode=700")));
	struct statfs sf;
	statfs(a, &sf);
	report("f_type tmpfs: %d, blocks %ld bsize %ld", sf.f_type == TMPFS_MAGIC,
	       (long)sf.f_blocks, (long)sf.f_bsize);
	struct stat st;
	stat(a, &st);
	report("root mode %o", st.st_mode & 07777);
	report("listed: %d", listed(a, "tmpfs"));
	report("write: %s", RES(write_file(at("a/f"), "hello")));
	report("read: %s", read_file(at("a/f")));

	int fd = open(at("a/big"), O_WRONLY | O_CREAT, 0644);
	static char chunk[65536];
	long total = 0;
	int err = 0;
	for (int i = 0; i < 64; i++) {
		ssize_t n = write(fd, chunk, sizeof chunk);
		if (n < 0) {
			err = errno;
			break;
		}
		total += n;
	}
	close(fd);
	report("filling: %s, at most 1 MiB: %d", errname(err), total <= (1 << 20));
	unlink(at("a/big"));

	fd = open(at("a/f"), O_RDONLY);
	report("umount with a file open: %s", RES(umount(a)));
	close(fd);
	chdir(a);
	report("umount with cwd inside: %s", RES(umount(a)));
	chdir("/");
	report("umount: %s", RES(umount(a)));
	report("file gone: %s", RES(access(at("a/f"), F_OK)));
	report("listed after: %d", listed(a, "tmpfs"));
	report("umount again: %s", RES(umount(a)));
}

static void nested(void)
{
	char *a = at("a");
	mount("none", a, "tmpfs", 0, NULL);
	mkdir(at("a/b"), 0755);
	report("nested mount: %s", RES(mount("none", at("a/b"), "tmpfs", 0, NULL)));
	write_file(at("a/b/x"), "x");
	report("umount parent: %s", RES(umount(a)));
	report("lazy umount: %s", RES(umount2(a, MNT_DETACH)));
	report("nested gone: %s", RES(access(at("a/b/x"), F_OK)));
	/* Stacked mounts: the top one hides the lower until unmounted. */
	mount("none", a, "tmpfs", 0, NULL);
	write_file(at("a/lower"), "l");
	mount("none", a, "tmpfs", 0, NULL);
	report("lower hidden: %s", RES(access(at("a/lower"), F_OK)));
	umount(a);
	report("lower revealed: %s", RES(access(at("a/lower"), F_OK)));
	umount(a);
}

static void remount_ro(void)
{
	char *a = at("a");
	mount("none", a, "tmpfs", 0, NULL);
	write_file(at("a/f"), "data");
	mkdir(at("a/d"), 0755);
	report("remount ro: %s",
	       RES(mount(NULL, a, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL)));
	struct statfs sf;
	statfs(a, &sf);
	report("ST_RDONLY: %d", (sf.f_flags & ST_RDONLY) != 0);
	report("open for write: %s", RES(open(at("a/f"), O_WRONLY)));
	report("create: %s", RES(open(at("a/g"), O_WRONLY | O_CREAT, 0644)));
	report("mkdir: %s", RES(mkdir(at("a/e"), 0755)));
	report("mkdir existing: %s", RES(mkdir(at("a/d"), 0755)));
	report("unlink: %s", RES(unlink(at("a/f"))));
	report("rmdir: %s", RES(rmdir(at("a/d"))));
	report("rename: %s", RES(rename(at("a/f"), at("a/h"))));
	report("chmod: %s", RES(chmod(at("a/f"), 0600)));
	report("truncate: %s", RES(truncate(at("a/f"), 0)));
	report("symlink: %s", RES(symlink("x", at("a/l"))));
	report("read still: %s", read_file(at("a/f")));
	report("remount rw: %s", RES(mount(NULL, a, NULL, MS_REMOUNT | MS_BIND, NULL)));
	report("write again: %s", RES(write_file(at("a/f"), "new")));
	report("remount size: %s", RES(mount(NULL, a, NULL, MS_REMOUNT, "size=2m")));
	statfs(a, &sf);
	report("blocks after: %ld", (long)sf.f_blocks);
	report("remount non-mount: %s",
	       RES(mount(NULL, at("a/d"), NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL)));
	umount(a);
}

static void binds(void)
{
	mkdir(at("src"), 0755);
	mkdir(at("dst"), 0755);
	write_file(at("src/file"), "from src");
	write_file(at("target"), "target");
	report("bind dir: %s", RES(mount(at("src"), at("dst"), NULL, MS_BIND, NULL)));
	report("through bind: %s", read_file(at("dst/file")));
	report("bind ro: %s", RES(mount(NULL, at("dst"), NULL,
					MS_REMOUNT | MS_BIND | MS_RDONLY, NULL)));
	report("write through ro bind: %s", RES(open(at("dst/file"), O_WRONLY)));
	report("write through source: %s", RES(write_file(at("src/file"), "changed")));
	report("seen through bind: %s", read_file(at("dst/file")));
	report("rename across: %s", RES(rename(at("src/file"), at("dst/file2"))));
	report("umount bind: %s", RES(umount(at("dst"))));
	report("bind file: %s", RES(mount(at("src/file"), at("target"), NULL, MS_BIND, NULL)));
	report("file through bind: %s", read_file(at("target")));
	report("umount file bind: %s", RES(umount(at("target"))));
	report("file revealed: %s", read_file(at("target")));
	report("bind dir on file: %s", RES(mount(at("src"), at("target"), NULL, MS_BIND, NULL)));
	report("propagation: %s", RES(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)));
	mkdir(at("dev"), 0755);
	report("bind /dev: %s", RES(mount("/dev", at("dev"), NULL, MS_BIND, NULL)));
	report("null through bind: %s", RES(close(open(at("dev/null"), O_RDWR))));
	report("remount nodev: %s", RES(mount(NULL, at("dev"), NULL,
					     MS_REMOUNT | MS_BIND | MS_NODEV, NULL)));
	report("null on nodev: %s", RES(open(at("dev/null"), O_RDWR)));
	report("/dev/null still: %s", RES(close(open("/dev/null", O_RDWR))));
	umount(at("dev"));
	/* A recursive bind onto itself copies what is beneath once. */
	mkdir(at("self"), 0755);
	mkdir(at("self/sub"), 0755);
	report("tmpfs beneath: %s", RES(mount("tmpfs", at("self/sub"), "tmpfs", 0, NULL)));
	report("rbind onto itself: %s",
	       RES(mount(at("self"), at("self"), NULL, MS_BIND | MS_REC, NULL)));
	report("mounts on it: %d, beneath: %d", count_listed(at("self")),
	       count_listed(at("self/sub")));
	umount2(at("self"), MNT_DETACH);
	umount(at("self/sub"));
}

static void move(void)
{
	char *a = at("a");
	mkdir(at("moved"), 0755);
	mount("none", a, "tmpfs", 0, NULL);
	mkdir(at("a/sub"), 0755);
	mount("none", at("a/sub"), "tmpfs", 0, NULL);
	write_file(at("a/sub/f"), "moved along");
	report("move: %s", RES(mount(a, at("moved"), NULL, MS_MOVE, NULL)));
	report("submount moved along: %s", read_file(at("moved/sub/f")));
	report("old place empty: %s", RES(access(at("a/sub"), F_OK)));
	report("move into itself: %s", RES(mount(at("moved"), at("moved/sub"), NULL, MS_MOVE, NULL)));
	report("move non-mount: %s", RES(mount(at("src"), at("a"), NULL, MS_MOVE, NULL)));
	umount2(at("moved"), MNT_DETACH);
}

static void errors(void)
{
	report("missing target: %s", RES(mount("none", at("nope"), "tmpfs", 0, NULL)));
	report("unknown type: %s", RES(mount("none", at("a"), "nosuchfs", 0, NULL)));
	report("tmpfs on a file: %s", RES(mount("none", at("target"), "tmpfs", 0, NULL)));
	report("bad option: %s", RES(mount("none", at("a"), "tmpfs", 0, "bogus=1")));
	report("umount non-mount: %s", RES(umount(base)));
	report("umount missing: %s", RES(umount(at("nope"))));
	report("umount2 bad flags: %s", RES(umount2(at("a"), 0x80)));
}

static void noexec(const char *self)
{
	char *a = at("a");
	mount("none", a, "tmpfs", MS_NOEXEC, NULL);
	int in = open(self, O_RDONLY), out = open(at("a/prog"), O_WRONLY | O_CREAT, 0755);
	char buf[65536];
	ssize_t n;
	while ((n = read(in, buf, sizeof buf)) > 0)
		write(out, buf, n);
	close(in);
	close(out);
	int fd = open(at("a/prog"), O_RDONLY);
	void *m = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
	report("mmap PROT_EXEC on noexec: %s", m == MAP_FAILED ? errname(errno) : "mapped");
	m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
	report("mmap PROT_READ on noexec: %s", m == MAP_FAILED ? errname(errno) : "mapped");
	close(fd);
	char *argv[] = {at("a/prog"), NULL};
	report("exec on noexec: %s", RES(execv(argv[0], argv)));
	umount(a);
}

static void chroot_child(void)
{
	mkdir(at("jail"), 0755);
	mkdir(at("jail/inside"), 0755);
	pid_t pid = fork();
	if (pid == 0) {
		report("chroot: %s", RES(chroot(at("jail"))));
		chdir("/");
		DIR *d = opendir("/");
		struct dirent *e;
		while (d && (e = readdir(d)))
			if (e->d_name[0] != '.')
				report("  / has %s", e->d_name);
		report("/.. is /: %s", RES(access("/../inside", F_OK)));
		char cwd[256];
		report("getcwd: %s", getcwd(cwd, sizeof cwd) ? cwd : errname(errno));
		report("chroot to file: %s", RES(chroot("/inside/none")));
		/* The table as the chrooted task sees it: only what is inside. */
		mkdir("/proc", 0555);
		report("mount proc: %s", RES(mount("proc", "/proc", "proc", 0, NULL)));
		FILE *f = fopen("/proc/self/mounts", "r");
		char src[256], dir[256], type[64];
		while (f && fscanf(f, "%255s %255s %63s %*[^\n]", src, dir, type) == 3)
			report("  %s on %s type %s", src, dir, type);
		_exit(0);
	}
	waitpid(pid, NULL, 0);
}

static void unprivileged(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (setuid(65534) != 0)
			_exit(1);
		report("unprivileged mount: %s", RES(mount("none", at("a"), "tmpfs", 0, NULL)));
		report("unprivileged umount: %s", RES(umount("/proc")));
		report("unprivileged chroot: %s", RES(chroot("/")));
		report("unprivileged pivot_root: %s",
		       RES(syscall(SYS_pivot_root, "/", "/")));
		_exit(0);
	}
	waitpid(pid, NULL, 0);
}

/* Last: pivot_root moves every task whose root was the old one. */
static void pivot(void)
{
	report("pivot_root non-mount: %s", RES(syscall(SYS_pivot_root, base, at("src"))));
	char *p = at("p");
	mkdir(p, 0755);
	mount("none", p, "tmpfs", 0, NULL);
	mkdir(at("p/old"), 0755);
	write_file(at("p/marker"), "new root");
	report("put_old outside: %s", RES(syscall(SYS_pivot_root, p, at("src"))));
	chdir(p);
	report("pivot_root: %s", RES(syscall(SYS_pivot_root, ".", "old")));
	chdir("/");
	report("marker at /: %s", read_file("/marker"));
	report("old root under /old: %s", RES(access("/old/proc", F_OK)));
	report("umount old: %s", RES(umount2("/old", MNT_DETACH)));
	report("old root gone: %s", RES(access("/old/proc", F_OK)));
}

int main(int argc, char **argv)
{
	(void)argc;
	strcpy(base, "/tmp/veil-mount-XXXXXX");
	if (!mkdtemp(base))
		return 1;
	tmpfs_lifecycle();
	nested();
	remount_ro();
	binds();
	move();
	errors();
	pid_t pid = fork();
	if (pid == 0) {
		noexec(argv[0]);
		_exit(0);
	}
	waitpid(pid, NULL, 0);
	chroot_child();
	unprivileged();
	pivot();
	report("all ok");
	return 0;
}
