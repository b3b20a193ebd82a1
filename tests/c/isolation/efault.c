/*
 * efault: hands wild pointers to syscalls and prints the errno names.
 *
 * A sandbox kernel must validate every user pointer itself: a wild pointer
 * must yield EFAULT (or whatever Linux returns), never crash the sentry, never
 * be dereferenced on the host, never leak a descriptor. The output must match
 * a native run line for line, and the last line printed is "survived".
 *
 * All syscalls are made with syscall(2) directly: glibc wrappers may check
 * arguments themselves or (clock_gettime, gettimeofday, time) run in the vDSO,
 * where a bad pointer is a plain SIGSEGV in user space.
 *
 * Pointer classes, in output order:
 *   null      NULL
 *   one       (void *)1 (also misaligned)
 *   wild      0xdeadbeef000, user half, unmapped
 *   kernel    0xffff800000000000, start of the kernel half
 *   noncanon  0x800000000000, just past the 47-bit user half
 *   prot_none a PROT_NONE page
 *   read_only a PROT_READ page of zeros (fine for input, EFAULT for output)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "../veiltest.h"

enum { P_NULL, P_ONE, P_WILD, P_KERNEL, P_NONCANON, P_PROTNONE, P_RO, NPTRS };
static const char *const ptr_names[NPTRS] = {
	"null", "one", "wild", "kernel", "noncanon", "prot_none", "read_only",
};
static void *ptrs[NPTRS];

static int file_fd = -1;	/* /etc/os-release, read-only */
static int tmp_fd = -1;		/* an unlinked file in /tmp, read-write */
static int dir_fd = -1;		/* "/" */
static int pipe_r = -1, pipe_w = -1;

/* A raw syscall: returns the result, or -errno. */
#define SYS(...) sys_ret(syscall(__VA_ARGS__))
static long sys_ret(long r) { return r == -1 ? -errno : r; }

static const char *fmt_ret(long r)
{
	static char buf[32];
	if (r < 0)
		return errname((int)-r);
	snprintf(buf, sizeof buf, "%ld", r);
	return buf;
}

#define EF (-EFAULT)
#define ALL_EFAULT { EF, EF, EF, EF, EF, EF, EF }
/* Output-only pointers: all EFAULT. Input-only pointers: read_only is fine. */
#define IN_OK(ro) { EF, EF, EF, EF, EF, EF, ro }

/* Runs one call with every pointer class, prints one line, checks results. */
static void run(const char *call, long (*fn)(void *p), const long expect[NPTRS])
{
	char line[512];
	size_t off = (size_t)snprintf(line, sizeof line, "%s:", call);
	long got[NPTRS];
	for (int i = 0; i < NPTRS; i++) {
		got[i] = fn(ptrs[i]);
		off += (size_t)snprintf(line + off, sizeof line - off, " %s=%s", ptr_names[i],
					fmt_ret(got[i]));
	}
	report("%s", line);
	for (int i = 0; i < NPTRS; i++)
		if (got[i] != expect[i])
			check(0, call, "%s: got %s, want %s", ptr_names[i], fmt_ret(got[i]),
			      fmt_ret(expect[i]));
}

/* ---- the calls; each takes the pointer under test ---- */

static long t_read(void *p)
{
	lseek(file_fd, 0, SEEK_SET);
	long r = SYS(SYS_read, file_fd, p, 16);
	/* A failed read must not move the file offset. */
	if (r < 0 && lseek(file_fd, 0, SEEK_CUR) != 0)
		return 999;
	return r;
}
static long t_pread(void *p) { return SYS(SYS_pread64, file_fd, p, 16, 0); }
static long t_write_pipe(void *p)
{
	long r = SYS(SYS_write, pipe_w, p, 16);
	char drain[64];
	if (r > 0)
		(void)!read(pipe_r, drain, sizeof drain);
	return r;
}
static long t_write_file(void *p) { return SYS(SYS_pwrite64, tmp_fd, p, 16, 0); }
static long t_stat_path(void *p)
{
	struct stat st;
	return SYS(SYS_stat, p, &st);
}
static long t_stat_buf(void *p) { return SYS(SYS_stat, "/etc/hostname", p); }
static long t_newfstatat_path(void *p)
{
	struct stat st;
	return SYS(SYS_newfstatat, AT_FDCWD, p, &st, 0);
}
static long t_newfstatat_buf(void *p) { return SYS(SYS_newfstatat, AT_FDCWD, "/etc", p, 0); }
static long t_fstat_buf(void *p) { return SYS(SYS_fstat, file_fd, p); }
static long t_statx_buf(void *p)
{
	return SYS(SYS_statx, AT_FDCWD, "/etc", 0, 0x7ff /* STATX_BASIC_STATS|BTIME */, p);
}
static long t_openat(void *p)
{
	long r = SYS(SYS_openat, AT_FDCWD, p, O_RDONLY | O_CLOEXEC);
	if (r >= 0)
		close((int)r);
	return r;
}
static long t_execve(void *p) { return SYS(SYS_execve, p, NULL, NULL); }
static long t_getcwd(void *p) { return SYS(SYS_getcwd, p, 4096); }
static long t_uname(void *p) { return SYS(SYS_uname, p); }
static long t_sysinfo(void *p) { return SYS(SYS_sysinfo, p); }
static long t_clock_gettime(void *p) { return SYS(SYS_clock_gettime, CLOCK_MONOTONIC, p); }
static long t_gettimeofday(void *p) { return SYS(SYS_gettimeofday, p, NULL); }
static long t_readv_iov(void *p)
{
	lseek(file_fd, 0, SEEK_SET);
	return SYS(SYS_readv, file_fd, p, 2);
}
static long t_readv_base(void *p)
{
	struct iovec iov[1] = { { p, 16 } };
	lseek(file_fd, 0, SEEK_SET);
	return SYS(SYS_readv, file_fd, iov, 1);
}
/* First buffer fine, second one bad: Linux returns the short count. */
static long t_readv_partial(void *p)
{
	char ok[8];
	struct iovec iov[2] = { { ok, sizeof ok }, { p, 16 } };
	lseek(file_fd, 0, SEEK_SET);
	return SYS(SYS_readv, file_fd, iov, 2);
}
static long t_writev_base(void *p)
{
	struct iovec iov[1] = { { p, 16 } };
	return SYS(SYS_pwritev, tmp_fd, iov, 1, 0);
}
static long t_pipe2(void *p) { return SYS(SYS_pipe2, p, O_CLOEXEC); }
static long t_rt_sigaction(void *p) { return SYS(SYS_rt_sigaction, SIGUSR1, p, NULL, 8); }
static long t_rt_sigaction_old(void *p)
{
	return SYS(SYS_rt_sigaction, SIGUSR1, NULL, p, 8);
}
static long t_rt_sigprocmask(void *p) { return SYS(SYS_rt_sigprocmask, SIG_BLOCK, p, NULL, 8); }
static long t_nanosleep(void *p) { return SYS(SYS_nanosleep, p, NULL); }
static long t_getrandom(void *p) { return SYS(SYS_getrandom, p, 16, 0); }
static long t_getdents64(void *p)
{
	lseek(dir_fd, 0, SEEK_SET);
	return SYS(SYS_getdents64, dir_fd, p, 4096);
}
static long t_ioctl_fionread(void *p) { return SYS(SYS_ioctl, pipe_r, FIONREAD, p); }
static long t_prctl_get_name(void *p) { return SYS(SYS_prctl, PR_GET_NAME, p, 0, 0, 0); }
static long t_futex_wait(void *p)
{
	struct timespec ts = { 0, 1000 };
	return SYS(SYS_futex, p, FUTEX_WAIT_PRIVATE, 1, &ts, NULL, 0);
}
static long t_readlink_buf(void *p) { return SYS(SYS_readlink, "/etc/os-release", p, 64); }

/* Lowest free descriptor: shows that no call leaked one. */
static int lowest_free_fd(void)
{
	int fd = open("/dev/null", O_RDONLY);
	if (fd >= 0)
		close(fd);
	return fd;
}

int main(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	char *two = mmap(NULL, (size_t)(2 * pg), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *ro = mmap(NULL, (size_t)pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (two == MAP_FAILED || ro == MAP_FAILED || mprotect(two + pg, (size_t)pg, PROT_NONE)) {
		report("setup failed: %s", errname(errno));
		return 2;
	}
	ptrs[P_NULL] = NULL;
	ptrs[P_ONE] = (void *)1;
	ptrs[P_WILD] = (void *)0xdeadbeef000UL;
	ptrs[P_KERNEL] = (void *)0xffff800000000000UL;
	ptrs[P_NONCANON] = (void *)0x800000000000UL;
	ptrs[P_PROTNONE] = two + pg;
	ptrs[P_RO] = ro;

	file_fd = open("/etc/os-release", O_RDONLY | O_CLOEXEC);
	dir_fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char tmpl[] = "/tmp/veil-efault-XXXXXX";
	tmp_fd = mkstemp(tmpl);
	if (tmp_fd >= 0)
		unlink(tmpl);
	int p[2];
	if (file_fd < 0 || dir_fd < 0 || tmp_fd < 0 || pipe2(p, O_CLOEXEC)) {
		report("setup failed: %s", errname(errno));
		return 2;
	}
	pipe_r = p[0];
	pipe_w = p[1];
	int fd_before = lowest_free_fd();

	static const long all_efault[NPTRS] = ALL_EFAULT;
	/* Input pointers read from a zeroed read-only page: "" path, 0 values. */
	static const long in_ok_16[NPTRS] = IN_OK(16);
	static const long in_ok_zero[NPTRS] = IN_OK(0);
	static const long in_ok_enoent[NPTRS] = IN_OK(-ENOENT);
	/*
	 * readv: Linux rejects kernel-half iov_base values up front (access_ok),
	 * but for a user-half address it copies the first buffer and returns the
	 * short count when the second one faults.
	 */
	static const long readv_partial[NPTRS] = { 8, 8, 8, EF, EF, 8, 8 };
	/* futex: a misaligned address is EINVAL; a zero word != 1 is EAGAIN. */
	static const long futex[NPTRS] = { EF, -EINVAL, EF, EF, EF, EF, -EAGAIN };
	/* NULL means "not given" for these, which is not an error. */
	static const long null_ok_out[NPTRS] = { 0, EF, EF, EF, EF, EF, EF };
	static const long null_ok_in[NPTRS] = { 0, EF, EF, EF, EF, EF, 0 };

	run("read", t_read, all_efault);
	run("pread64", t_pread, all_efault);
	run("write_pipe", t_write_pipe, in_ok_16);
	run("pwrite64_file", t_write_file, in_ok_16);
	run("stat_path", t_stat_path, in_ok_enoent);
	run("stat_buf", t_stat_buf, all_efault);
	run("newfstatat_path", t_newfstatat_path, in_ok_enoent);
	run("newfstatat_buf", t_newfstatat_buf, all_efault);
	run("fstat_buf", t_fstat_buf, all_efault);
	run("statx_buf", t_statx_buf, all_efault);
	run("openat_path", t_openat, in_ok_enoent);
	run("execve_path", t_execve, in_ok_enoent);
	run("getcwd_buf", t_getcwd, all_efault);
	run("uname_buf", t_uname, all_efault);
	run("sysinfo_buf", t_sysinfo, all_efault);
	run("clock_gettime_buf", t_clock_gettime, all_efault);
	run("gettimeofday_buf", t_gettimeofday, null_ok_out);
	run("readv_iov_array", t_readv_iov, in_ok_zero);
	run("readv_iov_base", t_readv_base, all_efault);
	run("readv_partial", t_readv_partial, readv_partial);
	run("pwritev_iov_base", t_writev_base, in_ok_16);
	run("pipe2_fds", t_pipe2, all_efault);
	run("rt_sigaction_act", t_rt_sigaction, null_ok_in);
	run("rt_sigaction_oldact", t_rt_sigaction_old, null_ok_out);
	run("rt_sigprocmask_set", t_rt_sigprocmask, null_ok_in);
	run("nanosleep_req", t_nanosleep, in_ok_zero);
	run("getrandom_buf", t_getrandom, all_efault);
	run("getdents64_buf", t_getdents64, all_efault);
	run("ioctl_fionread", t_ioctl_fionread, all_efault);
	run("prctl_get_name", t_prctl_get_name, all_efault);
	run("futex_wait", t_futex_wait, futex);
	run("readlink_buf", t_readlink_buf, all_efault);

	/* A path running off the end of a readable page into a PROT_NONE one. */
	char *edge = two + pg - 8;
	memset(edge, 'a', 8);
	long r = SYS(SYS_openat, AT_FDCWD, edge, O_RDONLY);
	check(r == -EFAULT, "openat_path_into_prot_none", "ret=%s", fmt_ret(r));
	/* A stat buffer straddling into the PROT_NONE page. */
	r = SYS(SYS_newfstatat, AT_FDCWD, "/etc", two + pg - 16, 0);
	check(r == -EFAULT, "newfstatat_buf_straddling", "ret=%s", fmt_ret(r));
	/* A readable iovec array whose second entry lies in the PROT_NONE page. */
	struct iovec *iov = (struct iovec *)(two + pg - sizeof(struct iovec));
	char small[4];
	iov->iov_base = small;
	iov->iov_len = sizeof small;
	lseek(file_fd, 0, SEEK_SET);
	r = SYS(SYS_readv, file_fd, iov, 2);
	check(r == -EFAULT, "readv_iov_array_straddling", "ret=%s", fmt_ret(r));

	/* Nothing above leaked a descriptor or damaged the ones we hold. */
	int fd_after = lowest_free_fd();
	check(fd_after == fd_before, "no_fd_leak", NULL);
	char buf[8];
	r = SYS(SYS_pread64, file_fd, buf, sizeof buf, 0);
	check(r == (long)sizeof buf, "fd_still_usable", "ret=%s", fmt_ret(r));
	r = SYS(SYS_getpid);
	check(r > 0, "getpid_still_works", NULL);

	/* The summary, then "survived" as the very last line. */
	int rc = finish();
	report("survived");
	return rc;
}
