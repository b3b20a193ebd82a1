/*
 * host_read: a read of stdin (a host pipe nobody writes to) is interrupted
 * by a signal like any blocking read: EINTR for a handler without
 * SA_RESTART, and the call restarts and sees EOF with SA_RESTART.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <unistd.h>

#include "../veiltest.h"

static void on_alarm(int sig)
{
	(void)sig;
}

int main(void)
{
	struct sigaction sa = {0};
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	char buf[8];
	alarm(1);
	report("read interrupted: %s", RES(read(0, buf, sizeof buf)));
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	alarm(1);
	/* The test closes the pipe after 3 seconds: the restarted read ends. */
	report("restarted read: %s", RES(read(0, buf, sizeof buf)));
	return finish();
}
