/*
 * Small helpers shared by the differential test programs under tests/c/.
 *
 * Every program prints one line per check. Lines must be deterministic and
 * identical natively and under veil: print values, sizes, errno *names*, never
 * addresses, PIDs, inode numbers or times.
 *
 * report() flushes stdout after every line, so output order is stable even
 * when a program forks or exits abruptly (stdout is a pipe in the tests, hence
 * fully buffered otherwise).
 */
#ifndef VEILTEST_H
#define VEILTEST_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static int vt_failures;

/* Symbolic name of an errno value ("EFAULT"), or "E<number>" if unknown. */
__attribute__((unused)) static const char *errname(int e)
{
	static char buf[32];
	switch (e) {
	case 0: return "OK";
#define E(x) case x: return #x;
	E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG)
	E(ENOEXEC) E(EBADF) E(ECHILD) E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT)
	E(EBUSY) E(EEXIST) E(EXDEV) E(ENODEV) E(ENOTDIR) E(EISDIR) E(EINVAL)
	E(ENFILE) E(EMFILE) E(ENOTTY) E(ETXTBSY) E(EFBIG) E(ENOSPC) E(ESPIPE)
	E(EROFS) E(EMLINK) E(EPIPE) E(EDOM) E(ERANGE) E(EDEADLK)
	E(ENAMETOOLONG) E(ENOSYS) E(ENOTEMPTY) E(ELOOP) E(EOVERFLOW)
	E(EOPNOTSUPP) E(ETIMEDOUT) E(ENOTSOCK) E(ENODATA) E(ENOTCONN)
	E(ECONNREFUSED) E(EADDRINUSE) E(EAFNOSUPPORT) E(ENOTUNIQ) E(ESTALE)
	E(EOWNERDEAD) E(ENOTRECOVERABLE)
#undef E
	default:
		snprintf(buf, sizeof buf, "E%d", e);
		return buf;
	}
}

/* Print one line and flush, so output survives fork() and abrupt exits. */
__attribute__((format(printf, 1, 2)))
__attribute__((unused)) static void report(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* Record a check: prints "<name> ok" or "<name> FAIL: <detail>". */
__attribute__((format(printf, 3, 4)))
__attribute__((unused)) static void check(int ok, const char *name, const char *fmt, ...)
{
	char detail[512] = "";
	va_list ap;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(detail, sizeof detail, fmt, ap);
		va_end(ap);
	}
	if (ok) {
		if (detail[0])
			report("%s ok %s", name, detail);
		else
			report("%s ok", name);
	} else {
		vt_failures++;
		report("%s FAIL: %s", name, detail[0] ? detail : "(no detail)");
	}
}

/*
 * Result of a syscall-like call returning -1/errno: "= 0", "= 12" or
 * "= -1 EFAULT". Returns a static buffer (one per call site is enough since
 * it is consumed immediately by report()).
 */
__attribute__((unused)) static const char *res(long ret, int err)
{
	static char buf[64];
	if (ret == -1)
		snprintf(buf, sizeof buf, "-1 %s", errname(err));
	else
		snprintf(buf, sizeof buf, "%ld", ret);
	return buf;
}

/* One line for a wait status: how the child ended, stopped or continued. */
__attribute__((unused)) static void report_status(const char *what, int status)
{
	if (WIFEXITED(status))
		report("%s: exited %d", what, WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		report("%s: signaled %d core=%d", what, WTERMSIG(status), WCOREDUMP(status) ? 1 : 0);
	else if (WIFSTOPPED(status))
		report("%s: stopped %d", what, WSTOPSIG(status));
	else if (WIFCONTINUED(status))
		report("%s: continued", what);
	else
		report("%s: other 0x%x", what, status);
}

/* res() of an expression, with errno read after it has run (a function
 * call's arguments are evaluated in no fixed order). */
#define RES(expr) ({ errno = 0; long vt_r_ = (long)(expr); res(vt_r_, errno); })

/* A check whose detail, on failure, is the errno name `err`. */
__attribute__((unused)) static void check_errno(int ok, const char *name, int err)
{
	if (ok)
		check(1, name, NULL);
	else
		check(0, name, "%s", errname(err));
}

/* check_errno() of `cond`, with errno read after it has run. */
#define EXPECT(cond, name)                     \
	do {                                   \
		errno = 0;                     \
		int ok_ = (cond);              \
		check_errno(ok_, name, errno); \
	} while (0)

/* Exit status for the whole program: non-zero if any check failed. */
__attribute__((unused)) static int finish(void)
{
	if (vt_failures)
		report("FAILURES %d", vt_failures);
	else
		report("all ok");
	return vt_failures ? 1 : 0;
}

#endif
