/*
 * mem: the per-process files that describe memory and descriptors
 * (cmdline, environ, statm, maps, fdinfo), the writable ones (comm,
 * oom_score_adj), the task list and the system files programs size
 * themselves by (/sys CPUs, meminfo, cpuinfo, filesystems).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../veiltest.h"

extern char **environ;

/* Reads a whole file (binary-safe); returns its length, -1 on error. */
static long slurp(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	size_t n = 0;
	ssize_t r;
	while (n < cap - 1 && (r = read(fd, buf + n, cap - 1 - n)) > 0)
		n += (size_t)r;
	close(fd);
	buf[n] = 0;
	return (long)n;
}

static char big[1 << 20];

/* Whether NUL-separated `buf` of `len` bytes holds exactly `v`. */
static int same_strings(const char *buf, long len, char **v)
{
	long at = 0;
	for (; *v; v++) {
		size_t l = strlen(*v) + 1;
		if (at + (long)l > len || memcmp(buf + at, *v, l))
			return 0;
		at += (long)l;
	}
	return at == len;
}

/* Whether a maps line with `perms` covers start..end. */
static int maps_covers(unsigned long start, unsigned long end, const char *perms)
{
	long n = slurp("/proc/self/maps", big, sizeof big);
	if (n <= 0)
		return 0;
	for (char *line = strtok(big, "\n"); line; line = strtok(NULL, "\n")) {
		unsigned long s, e;
		char p[5];
		if (sscanf(line, "%lx-%lx %4s", &s, &e, p) == 3 && s <= start && e >= end &&
		    !strcmp(p, perms))
			return 1;
	}
	return 0;
}

static int maps_has(const char *needle)
{
	long n = slurp("/proc/self/maps", big, sizeof big);
	return n > 0 && strstr(big, needle) != NULL;
}

static const char *write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);
	if (fd < 0)
		return res(-1, errno);
	long r = write(fd, s, strlen(s));
	int e = errno;
	close(fd);
	return res(r, e);
}

static void *idle_thread(void *arg)
{
	int *fd = arg;
	char c;
	read(*fd, &c, 1);
	return NULL;
}

static int count_tasks(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;
	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

int main(int argc, char **argv)
{
	(void)argc;
	long n = slurp("/proc/self/cmdline", big, sizeof big);
	check(same_strings(big, n, argv), "cmdline is argv", NULL);
	n = slurp("/proc/self/environ", big, sizeof big);
	check(same_strings(big, n, environ), "environ is envp", NULL);

	unsigned long size, rss, shared, text, lib, data, dt;
	char buf[4096];
	slurp("/proc/self/statm", buf, sizeof buf);
	int got = sscanf(buf, "%lu %lu %lu %lu %lu %lu %lu", &size, &rss, &shared, &text, &lib,
			 &data, &dt);
	check(got == 7, "statm has 7 fields", NULL);
	check(size > 0 && rss > 0 && text > 0 && data > 0, "statm sizes > 0", NULL);
	check(rss <= size && shared <= rss && text <= size && data <= size,
	      "statm fields consistent", NULL);

	char exe[4096], want[4200];
	ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
	exe[el > 0 ? el : 0] = 0;
	n = slurp("/proc/self/maps", big, sizeof big);
	int exe_code = 0;
	for (char *line = strtok(big, "\n"); line; line = strtok(NULL, "\n")) {
		char *path = strchr(line, '/');
		if (strstr(line, " r-xp ") && path && !strcmp(path, exe))
			exe_code = 1;
	}
	check(exe_code, "maps shows the binary's code r-xp", NULL);
	char *m = mmap(NULL, 5 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned long ma = (unsigned long)m;
	check(maps_covers(ma, ma + 5 * 4096, "rw-p"), "mmap appears in maps", NULL);
	mprotect(m + 4096, 4096, PROT_READ);
	snprintf(want, sizeof want, "%lx-%lx r--p 00000000 00:00 0 \n", ma + 4096, ma + 2 * 4096);
	check(maps_has(want), "mprotect splits the maps line", NULL);
	munmap(m, 5 * 4096);
	check(!maps_covers(ma, ma + 4096, "rw-p") && !maps_covers(ma + 4096, ma + 2 * 4096, "r--p"),
	      "munmap removes it from maps", NULL);
	n = slurp("/proc/self/smaps", big, sizeof big);
	check(n > 0 && strstr(big, "\nRss:") && strstr(big, "\nVmFlags:"), "smaps has Rss and VmFlags",
	      NULL);

	int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	lseek(fd, 123, SEEK_SET);
	snprintf(want, sizeof want, "/proc/self/fdinfo/%d", fd);
	slurp(want, buf, sizeof buf);
	long pos = -1;
	unsigned flags = 0;
	sscanf(buf, "pos:\t%ld\nflags:\t%o", &pos, &flags);
	report("fdinfo pos %ld, cloexec %d, accmode %o, has ino %d", pos, !!(flags & O_CLOEXEC),
	       flags & O_ACCMODE, strstr(buf, "\nino:\t") != NULL);
	close(fd);

	report("write comm: %s", write_file("/proc/self/comm", "renamed"));
	slurp("/proc/self/comm", buf, sizeof buf);
	report("comm now: %s", buf);
	char name[17] = "";
	prctl(PR_GET_NAME, name);
	report("PR_GET_NAME: %s", name);
	report("write long comm: %s", write_file("/proc/self/comm", "0123456789abcdefghij"));
	slurp("/proc/self/comm", buf, sizeof buf);
	report("comm now: %s", buf);
	snprintf(want, sizeof want, "/proc/self/task/%d/comm", getpid());
	slurp(want, buf, sizeof buf);
	report("task comm: %s", buf);

	slurp("/proc/self/oom_score_adj", buf, sizeof buf);
	report("oom_score_adj: %s", buf);
	report("write 500: %s", write_file("/proc/self/oom_score_adj", "500\n"));
	slurp("/proc/self/oom_score_adj", buf, sizeof buf);
	report("oom_score_adj: %s", buf);
	report("write 1001: %s", write_file("/proc/self/oom_score_adj", "1001"));
	report("write junk: %s", write_file("/proc/self/oom_score_adj", "12abc"));
	slurp("/proc/self/oom_score", buf, sizeof buf);
	report("oom_score is a number: %d", atoi(buf) >= 0 && buf[0] >= '0' && buf[0] <= '9');
	report("write statm: %s", write_file("/proc/self/statm", "1"));

	int p[2];
	pipe(p);
	pthread_t th;
	pthread_create(&th, NULL, idle_thread, &p[0]);
	report("tasks with a second thread: %d", count_tasks());
	write(p[1], "x", 1);
	pthread_join(th, NULL);
	report("tasks after join: %d", count_tasks());

	pid_t child = fork();
	if (child == 0)
		_exit(0);
	siginfo_t si;
	waitid(P_PID, child, &si, WEXITED | WNOWAIT);
	snprintf(want, sizeof want, "/proc/%d/cmdline", child);
	report("zombie cmdline length: %ld", slurp(want, big, sizeof big));
	snprintf(want, sizeof want, "/proc/%d/statm", child);
	slurp(want, buf, sizeof buf);
	report("zombie statm: %s", buf);
	waitpid(child, NULL, 0);

	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	char range[64];
	if (ncpu == 1)
		snprintf(range, sizeof range, "0\n");
	else
		snprintf(range, sizeof range, "0-%ld\n", ncpu - 1);
	slurp("/sys/devices/system/cpu/online", buf, sizeof buf);
	check(!strcmp(buf, range), "/sys cpu online matches sysconf", "%s vs %s", buf, range);
	report("write /sys cpu online: %s", write_file("/sys/devices/system/cpu/online", "0"));

	slurp("/proc/meminfo", big, sizeof big);
	long total = -1, avail = -1;
	char *t = strstr(big, "MemTotal:"), *a = strstr(big, "MemAvailable:");
	if (t && a) {
		total = atol(t + 9);
		avail = atol(a + 13);
	}
	check(total > 0 && avail > 0 && total >= avail, "meminfo MemTotal >= MemAvailable", NULL);
	slurp("/proc/cpuinfo", big, sizeof big);
	int procs = 0;
	for (char *s = big; (s = strstr(s, "processor\t:")); s++)
		procs++;
	check(procs == ncpu, "cpuinfo lists every CPU", "%d vs %ld", procs, ncpu);
	slurp("/proc/filesystems", big, sizeof big);
	check(strstr(big, "nodev\tproc\n") && strstr(big, "nodev\ttmpfs\n"),
	      "filesystems lists proc and tmpfs", NULL);
	slurp("/proc/self/uid_map", buf, sizeof buf);
	report("uid_map: %s", buf);
	slurp("/proc/self/loginuid", buf, sizeof buf);
	report("loginuid: %s", buf);
	return finish();
}
