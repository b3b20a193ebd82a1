/*
 * oom: asks for more memory than `veil do --memory` allows, in one of
 * several ways (argv[1]), for argv[2] MiB:
 *   touch  writes each page of an anonymous mapping (page faults);
 *   read   reads /dev/zero into an untouched buffer (the kernel's writes);
 *   tmpfs  writes a file in /dev/shm (file data in memory);
 *   fork   a child touches the pages; the parent reports how it ended.
 * Prints "done" when it got all of it.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../veiltest.h"

#define MiB (1UL << 20)

static char *map(size_t len)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		report("mmap: %s", errname(errno));
		exit(2);
	}
	return p;
}

static void touch(size_t len)
{
	char *p = map(len);
	for (size_t i = 0; i < len; i += 4096)
		p[i] = 1;
}

int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	size_t len = strtoul(argv[2], NULL, 0) * MiB;
	if (!strcmp(argv[1], "touch")) {
		touch(len);
	} else if (!strcmp(argv[1], "read")) {
		char *p = map(len);
		int fd = open("/dev/zero", O_RDONLY);
		for (size_t done = 0; done < len;) {
			ssize_t n = read(fd, p + done, len - done);
			if (n <= 0) {
				report("read: %s", res(n, errno));
				return 1;
			}
			done += n;
		}
	} else if (!strcmp(argv[1], "tmpfs")) {
		int fd = open("/dev/shm/oom", O_CREAT | O_RDWR | O_TRUNC, 0600);
		char buf[65536];
		memset(buf, 1, sizeof buf);
		for (size_t done = 0; done < len; done += sizeof buf) {
			if (write(fd, buf, sizeof buf) != sizeof buf) {
				report("write: %s", errname(errno));
				return 1;
			}
		}
	} else if (!strcmp(argv[1], "fork")) {
		pid_t pid = fork();
		if (pid == 0) {
			touch(len);
			_exit(0);
		}
		int status;
		waitpid(pid, &status, 0);
		report_status("child", status);
		/* The parent goes on with the child's memory given back. */
		touch(16 * MiB);
	} else {
		return 2;
	}
	report("done");
	return 0;
}
