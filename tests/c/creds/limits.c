/*
 * limits: RLIMIT_NOFILE enforced on descriptor allocation, RLIMIT_STACK
 * on stack growth (before and after exec), setrlimit and prlimit64 rules,
 * and limits inherited across fork and exec.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../veiltest.h"
#include "../caps.h"

#define TRY(step, call)                                          \
	do {                                                     \
		long _r = (call);                                \
		report("%-34s = %s", step, res(_r, errno));      \
	} while (0)

static const char *self;

static int recurse(int depth)
{
	volatile char frame[1024];
	frame[0] = (char)depth;
	if (depth == 0)
		return frame[0];
	return recurse(depth - 1) + frame[0];
}

static void describe(const char *what, int status)
{
	if (WIFEXITED(status))
		report("%s: exited %d", what, WEXITSTATUS(status));
	else
		report("%s: signal %d%s", what, WTERMSIG(status), WCOREDUMP(status) ? " core" : "");
}

static void nofile(void)
{
	struct rlimit rl = { 20, 40 };
	TRY("setrlimit NOFILE 20/40", setrlimit(RLIMIT_NOFILE, &rl));
	int opened = 0, err = 0;
	for (;;) {
		int fd = open("/dev/null", O_RDONLY);
		if (fd < 0) {
			err = errno;
			break;
		}
		opened++;
	}
	report("opened %d then %s", opened, errname(err));
	TRY("dup", dup(0));
	TRY("dup2 to 19", dup2(0, 19));
	TRY("dup2 to 20", dup2(0, 20));
	TRY("dup3 to 25", dup3(0, 25, 0));
	TRY("F_DUPFD 5", fcntl(0, F_DUPFD, 5));
	TRY("F_DUPFD 20", fcntl(0, F_DUPFD, 20));
	TRY("pipe", pipe((int[2]){ 0, 0 }));
	close(10);
	TRY("open after close", open("/dev/null", O_RDONLY));
	rl.rlim_cur = 50;
	TRY("setrlimit cur > max", setrlimit(RLIMIT_NOFILE, &rl));
	rl.rlim_cur = rl.rlim_max = 100;
	TRY("raise hard w/o CAP_SYS_RESOURCE", setrlimit(RLIMIT_NOFILE, &rl));
	rl.rlim_cur = rl.rlim_max = 2 << 20;
	TRY("above nr_open", setrlimit(RLIMIT_NOFILE, &rl));
	rl.rlim_cur = rl.rlim_max = 40;
	TRY("soft up to hard", setrlimit(RLIMIT_NOFILE, &rl));
	TRY("dup2 to 30", dup2(0, 30));
	TRY("bad resource", setrlimit(99, &rl));
	TRY("bad pointer", syscall(SYS_setrlimit, RLIMIT_NOFILE, 8));
	syscall(SYS_close_range, 3, ~0U, 0);
}

static void stack_case(const char *what, rlim_t limit, int kib, int via_exec)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		struct rlimit rl = { limit, RLIM_INFINITY };
		if (setrlimit(RLIMIT_STACK, &rl))
			_exit(90);
		if (via_exec) {
			char arg[16];
			snprintf(arg, sizeof arg, "%d", kib);
			execl(self, self, "recurse", arg, (char *)NULL);
			_exit(91);
		}
		_exit(recurse(kib) == 0 ? 1 : 0);
	}
	int status;
	waitpid(pid, &status, 0);
	describe(what, status);
}

static void prlimits(void)
{
	int go[2];
	if (pipe(go))
		return;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		char c;
		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(1);
		struct rlimit rl;
		getrlimit(RLIMIT_NOFILE, &rl);
		report("child sees NOFILE %ld/%ld", (long)rl.rlim_cur, (long)rl.rlim_max);
		setresuid(1000, 1000, 1000);
		TRY("user prlimit on root parent", prlimit(getppid(), RLIMIT_NOFILE, NULL, &rl));
		TRY("user prlimit on itself", prlimit(getpid(), RLIMIT_NOFILE, NULL, &rl));
		_exit(0);
	}
	close(go[0]);
	struct rlimit old, new = { 30, 35 };
	TRY("prlimit child NOFILE", prlimit(pid, RLIMIT_NOFILE, &new, &old));
	report("old %ld/%ld", (long)old.rlim_cur, (long)old.rlim_max);
	TRY("prlimit child bad resource", prlimit(pid, 99, NULL, &old));
	TRY("prlimit no such pid", prlimit(99999, RLIMIT_NOFILE, NULL, &old));
	TRY("prlimit bad new", syscall(SYS_prlimit64, pid, RLIMIT_NOFILE, 8, NULL));
	if (write(go[1], "x", 1) != 1)
		return;
	int status;
	waitpid(pid, &status, 0);
	describe("prlimit child", status);
}

int main(int argc, char **argv)
{
	self = argv[0];
	if (argc > 2) {
		struct rlimit rl;
		getrlimit(RLIMIT_STACK, &rl);
		report("after exec: RLIMIT_STACK %ld", (long)rl.rlim_cur);
		return recurse(atoi(argv[2])) == 0 ? 1 : 0;
	}
	check(narrow_caps() == 0, "narrow capabilities", NULL);
	struct rlimit zero = { 0, 0 };
	check(setrlimit(RLIMIT_CORE, &zero) == 0, "RLIMIT_CORE 0", NULL);
	syscall(SYS_close_range, 3, ~0U, 0);
	nofile();
	stack_case("1 MiB of stack, 8 MiB limit", 8 << 20, 1024, 0);
	stack_case("1 MiB of stack, 256 KiB limit", 256 << 10, 1024, 0);
	stack_case("exec: 1 MiB of stack, 8 MiB limit", 8 << 20, 1024, 1);
	stack_case("exec: 1 MiB of stack, 256 KiB limit", 256 << 10, 1024, 1);
	prlimits();
	return finish();
}
