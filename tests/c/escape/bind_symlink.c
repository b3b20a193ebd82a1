/*
 * A writable bind of a host directory on /vol whose symlinks point out of
 * it on the host: /vol/abs to the secret's host path, /vol/rel to
 * ../outside/secret (which on the host is the secret too), /vol/dir and
 * /vol/dirrel to its directory. Writes through them resolve in the
 * sandbox; /outside is made in the sandbox first, so that the relative
 * ones land there. A plain file written in /vol reaches the host.
 */
#define _GNU_SOURCE
#include <stdio.h>

#include "../escape.h"

int main(void)
{
	attempt_write("write /vol/plain", AT_FDCWD, "/vol/plain", 0);
	attempt_write("write /vol/abs", AT_FDCWD, "/vol/abs", O_TRUNC);
	attempt_write("write /vol/dir/new", AT_FDCWD, "/vol/dir/new", 0);
	report("mkdir /vol/dir/d = %s", RES(mkdir("/vol/dir/d", 0755)));
	report("chmod /vol/abs = %s", RES(chmod("/vol/abs", 0777)));
	report("truncate /vol/abs = %s", RES(truncate("/vol/abs", 0)));
	report("rename /vol/plain -> /vol/dir/moved = %s", RES(rename("/vol/plain", "/vol/dir/moved")));
	report("link /vol/plain -> /vol/dir/hard = %s", RES(link("/vol/plain", "/vol/dir/hard")));
	report("symlink /vol/dir/sl = %s", RES(symlink("x", "/vol/dir/sl")));

	report("mkdir /outside = %s", RES(mkdir("/outside", 0755)));
	attempt_write("write /vol/rel", AT_FDCWD, "/vol/rel", O_TRUNC);
	attempt_write("write /vol/dirrel/new", AT_FDCWD, "/vol/dirrel/new", 0);
	report("chmod /vol/rel = %s", RES(chmod("/vol/rel", 0777)));
	attempt_read("read /outside/secret", AT_FDCWD, "/outside/secret", O_RDONLY);
	attempt_read("read /outside/new", AT_FDCWD, "/outside/new", O_RDONLY);
	return 0;
}
