/*
 * File handles: name_to_handle_at has nothing to encode, and
 * open_by_handle_at of a forged handle (ext4's root directory, inode 2:
 * the "shocker" escape) opens nothing, as root or not.
 */
#define _GNU_SOURCE
#include <stdio.h>

#include "../escape.h"

static void attempts(const char *who)
{
	struct {
		struct file_handle fh;
		unsigned char bytes[128];
	} h = {.fh = {.handle_bytes = 128}};
	int mnt;
	report("%s: name_to_handle_at / = %s", who, RES(name_to_handle_at(AT_FDCWD, "/", &h.fh, &mnt, 0)));
	report("%s: name_to_handle_at /missing = %s", who,
	       RES(name_to_handle_at(AT_FDCWD, "/missing", &h.fh, &mnt, 0)));
	report("%s: name_to_handle_at bad flags = %s", who,
	       RES(name_to_handle_at(AT_FDCWD, "/", &h.fh, &mnt, 0x8000)));

	int root = open("/", O_RDONLY | O_DIRECTORY);
	/* FILEID_INO32_GEN: inode 2, generation 0. */
	h.fh.handle_bytes = 8;
	h.fh.handle_type = 1;
	memset(h.fh.f_handle, 0, 8);
	h.fh.f_handle[0] = 2;
	int fd = open_by_handle_at(root, &h.fh, O_RDONLY | O_DIRECTORY);
	report("%s: open_by_handle_at inode 2 = %s", who, res(fd < 0 ? -1 : 0, errno));
	if (fd >= 0) {
		attempt_read("  its etc/hostname", fd, "etc/hostname", O_RDONLY);
		close(fd);
	}
	h.fh.handle_bytes = 0;
	report("%s: open_by_handle_at empty handle = %s", who,
	       RES(open_by_handle_at(root, &h.fh, O_RDONLY)));
	h.fh.handle_bytes = 8;
	report("%s: open_by_handle_at bad mount fd = %s", who,
	       RES(open_by_handle_at(999, &h.fh, O_RDONLY)));
	report("%s: open_by_handle_at bad pointer = %s", who,
	       RES(open_by_handle_at(root, (struct file_handle *)8, O_RDONLY)));
	close(root);
}

int main(void)
{
	attempts("root");
	as_nobody(attempts);
	return 0;
}
