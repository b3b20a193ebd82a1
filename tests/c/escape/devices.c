/*
 * Device nodes made in the sandbox open the sentry's own devices or
 * nothing: the memory devices work, every other number (the host's disk,
 * argv[1]:argv[2], among them) fails to open; a device node the host made
 * in the root (/hostdisk) is never opened; without CAP_MKNOD nothing is
 * made (EPERM, in a directory everyone may write).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/sysmacros.h>

#include "../escape.h"

static unsigned host_major, host_minor;

static void node(const char *who, const char *name, mode_t type, unsigned maj, unsigned min)
{
	char path[64];
	snprintf(path, sizeof path, "/tmp/%s-%s", who, name);
	report("%s: mknod %s = %s", who, name, RES(mknod(path, type | 0666, makedev(maj, min))));
	attempt_read(name, AT_FDCWD, path, O_RDONLY);
	int fd = open(path, O_WRONLY);
	report("%s: open %s for writing = %s", who, name, res(fd < 0 ? -1 : 0, errno));
	if (fd >= 0) {
		report("  write = %s", RES(write(fd, "x", 1)));
		close(fd);
	}
}

static void nodes(const char *who)
{
	node(who, "null", S_IFCHR, 1, 3);
	node(who, "zero", S_IFCHR, 1, 5);
	node(who, "mem", S_IFCHR, 1, 1);
	node(who, "kmem", S_IFCHR, 1, 2);
	node(who, "port", S_IFCHR, 1, 4);
	node(who, "kmsg", S_IFCHR, 1, 11);
	node(who, "tty1", S_IFCHR, 4, 1);
	node(who, "tun", S_IFCHR, 10, 200);
	node(who, "fuse", S_IFCHR, 10, 229);
	node(who, "kvm", S_IFCHR, 10, 232);
	node(who, "loop0", S_IFBLK, 7, 0);
	node(who, "hostdisk", S_IFBLK, host_major, host_minor);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		report("usage: devices MAJOR MINOR");
		return 2;
	}
	host_major = atoi(argv[1]);
	host_minor = atoi(argv[2]);
	mkdir("/tmp", 0);
	chmod("/tmp", 01777);
	nodes("root");
	attempt_read("/hostdisk made by the host", AT_FDCWD, "/hostdisk", O_RDONLY);
	as_nobody(nodes);
	return 0;
}
