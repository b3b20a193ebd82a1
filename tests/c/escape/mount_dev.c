/*
 * Mounting the host's disk: by its host path (argv[1], e.g. /dev/vda), and
 * through a block device node made with its numbers (argv[2], argv[3]), as
 * filesystems the host would mount it with; and a fresh devtmpfs, which
 * holds the sandbox's devices, not the host's. Without CAP_SYS_ADMIN,
 * nothing mounts at all.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>

#include "../escape.h"

static const char *types[] = {"ext4", "ext2", "xfs", "btrfs", "vfat", "iso9660", "squashfs", "9p",
			      "fuse", "overlay", "nfs", "cgroup2", "bpf", "debugfs", "securityfs"};

static const char *device;

static void unprivileged(const char *who)
{
	report("%s: mount host device as ext4 = %s", who, RES(mount(device, "/mnt", "ext4", 0, NULL)));
	report("%s: mount /disk as ext4 = %s", who, RES(mount("/disk", "/mnt", "ext4", 0, NULL)));
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		report("usage: mount_dev DEVICE MAJOR MINOR");
		return 2;
	}
	mkdir("/mnt", 0755);
	for (size_t i = 0; i < sizeof types / sizeof *types; i++)
		report("mount host device as %s = %s", types[i],
		       RES(mount(argv[1], "/mnt", types[i], 0, NULL)));
	dev_t dev = makedev(atoi(argv[2]), atoi(argv[3]));
	report("mknod /disk = %s", RES(mknod("/disk", S_IFBLK | 0600, dev)));
	for (size_t i = 0; i < sizeof types / sizeof *types; i++)
		report("mount /disk as %s = %s", types[i], RES(mount("/disk", "/mnt", types[i], 0, NULL)));
	report("bind /disk on /mnt = %s", RES(mount("/disk", "/mnt", NULL, MS_BIND, NULL)));
	attempt_read("read /disk", AT_FDCWD, "/disk", O_RDONLY);
	attempt_read("read host device path", AT_FDCWD, argv[1], O_RDONLY);

	report("mount devtmpfs = %s", RES(mount("none", "/mnt", "devtmpfs", 0, NULL)));
	char path[256];
	snprintf(path, sizeof path, "/mnt/%s", strrchr(argv[1], '/') + 1);
	attempt_read("the host device's name in it", AT_FDCWD, path, O_RDONLY);
	report("umount devtmpfs = %s", RES(umount("/mnt")));
	device = argv[1];
	as_nobody(unprivileged);
	return 0;
}
