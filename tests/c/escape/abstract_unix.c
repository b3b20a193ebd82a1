/*
 * Connecting to a host abstract Unix socket (argv[1] is its name, without
 * the leading NUL) with each socket type.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "../escape.h"

int main(int argc, char **argv)
{
	static const struct {
		int type;
		const char *name;
	} types[] = {{SOCK_STREAM, "stream"}, {SOCK_DGRAM, "dgram"}, {SOCK_SEQPACKET, "seqpacket"}};
	if (argc != 2 || strlen(argv[1]) > 100) {
		report("usage: abstract_unix NAME");
		return 2;
	}
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	memcpy(sun.sun_path + 1, argv[1], strlen(argv[1]));
	socklen_t len = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(argv[1]);
	for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
		errno = 0;
		int fd = socket(AF_UNIX, types[i].type, 0);
		if (fd < 0) {
			report("%s: socket = -1 %s", types[i].name, errname(errno));
			continue;
		}
		report("%s: connect = %s", types[i].name, RES(connect(fd, (struct sockaddr *)&sun, len)));
		close(fd);
	}
	int sv[2];
	report("socketpair = %s", RES(socketpair(AF_UNIX, SOCK_STREAM, 0, sv)));
	return 0;
}
