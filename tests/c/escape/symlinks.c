/*
 * Symlinks in the root pointing out of it, absolutely and relatively, to
 * the secret and to its directory: they resolve inside the sandbox, for
 * reading and for writing. The test made /abs, /rel, /deep, /dir and
 * /dirrel in the root's host directory.
 */
#define _GNU_SOURCE
#include <stdio.h>

#include "../escape.h"

int main(void)
{
	attempt_read("/abs", AT_FDCWD, "/abs", O_RDONLY);
	attempt_read("/rel", AT_FDCWD, "/rel", O_RDONLY);
	attempt_read("/deep", AT_FDCWD, "/deep", O_RDONLY);
	attempt_read("/dir/secret", AT_FDCWD, "/dir/secret", O_RDONLY);
	attempt_read("/dirrel/secret", AT_FDCWD, "/dirrel/secret", O_RDONLY);
	report("symlink /mine -> ../../outside/secret = %s",
	       RES(symlink("../../outside/secret", "/mine")));
	attempt_read("/mine", AT_FDCWD, "/mine", O_RDONLY);

	attempt_write("write /abs", AT_FDCWD, "/abs", O_TRUNC);
	attempt_write("write /rel", AT_FDCWD, "/rel", O_APPEND);
	attempt_write("write /dir/new", AT_FDCWD, "/dir/new", 0);
	attempt_write("write /dirrel/new", AT_FDCWD, "/dirrel/new", 0);
	report("mkdir /dir/d = %s", RES(mkdir("/dir/d", 0755)));
	report("chmod /abs = %s", RES(chmod("/abs", 0777)));
	report("truncate /rel = %s", RES(truncate("/rel", 0)));
	report("rename /rel -> /dir/moved = %s", RES(rename("/rel", "/dir/moved")));
	return 0;
}
