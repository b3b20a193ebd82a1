/*
 * fs_basic: file-system syscalls, compared natively vs under veil.
 *
 * Part 1 reads host files (never writes them): open/read/pread/readv/lseek,
 * fstat vs stat vs newfstatat vs statx, getdents64 on /etc, readlink on host
 * symlinks, faccessat2.
 *
 * Part 2 works in a fresh directory made with mkdtemp() under /tmp: creation
 * (O_CREAT|O_EXCL, O_TRUNC, O_APPEND), write/read back, fcntl, dup/dup2/dup3,
 * getcwd/chdir, symlink/readlinkat, rename, unlink, mkdir/rmdir, and
 * errors by name. Everything it creates is removed again (also on an early
 * exit), so a native run leaves nothing behind.
 *
 * Prints values and errno names only: no inode numbers, times, PIDs or the
 * random temp directory name.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../veiltest.h"

#ifndef SYS_faccessat2
#define SYS_faccessat2 439
#endif
#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif

static char tmpdir[64];

/* ---------- helpers ---------- */

static long xstatx(int dirfd, const char *path, int flags, struct statx *stx)
{
	return syscall(SYS_statx, dirfd, path, flags, STATX_BASIC_STATS, stx);
}

static long xnewfstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	return syscall(SYS_newfstatat, dirfd, path, st, flags);
}

static long xfaccessat2(const char *path, int mode, int flags)
{
	return syscall(SYS_faccessat2, AT_FDCWD, path, mode, flags);
}

/*
 * The stable subset of a stat: mode, size, nlink, uid, gid. The size of a
 * directory is file-system specific (4096 on ext4, entry-based on tmpfs):
 * it is printed for host directories, which veil serves from the host, but
 * not for directories we create, which live in the host's /tmp natively and
 * in veil's memory overlay under veil.
 */
static void print_stat_ex(const char *what, const struct stat *st, int dir_size)
{
	char size[32] = "-";
	if (!S_ISDIR(st->st_mode) || dir_size)
		snprintf(size, sizeof size, "%lld", (long long)st->st_size);
	report("%s mode=0%o size=%s nlink=%lu uid=%u gid=%u", what, (unsigned)st->st_mode, size,
	       (unsigned long)st->st_nlink, (unsigned)st->st_uid, (unsigned)st->st_gid);
}

/* For host files and directories. */
static void print_stat(const char *what, const struct stat *st) { print_stat_ex(what, st, 1); }

/* For what the test creates under /tmp. */
static void print_stat_new(const char *what, const struct stat *st)
{
	print_stat_ex(what, st, 0);
}

static int stat_eq_statx(const struct stat *st, const struct statx *sx)
{
	return st->st_mode == sx->stx_mode && (uint64_t)st->st_size == sx->stx_size &&
	       st->st_nlink == sx->stx_nlink && st->st_uid == sx->stx_uid &&
	       st->st_gid == sx->stx_gid && st->st_ino == sx->stx_ino &&
	       major(st->st_dev) == sx->stx_dev_major && minor(st->st_dev) == sx->stx_dev_minor;
}

static int stat_eq(const struct stat *a, const struct stat *b)
{
	return a->st_mode == b->st_mode && a->st_size == b->st_size &&
	       a->st_nlink == b->st_nlink && a->st_uid == b->st_uid && a->st_gid == b->st_gid &&
	       a->st_ino == b->st_ino && a->st_dev == b->st_dev;
}

/* Expect a -1 return with a given errno; prints "<name> ok ret=-1 ENOENT". */
#define EXPECT_ERR(name, want, call)                                                  \
	do {                                                                          \
		errno = 0;                                                            \
		long r_ = (long)(call);                                               \
		int e_ = errno;                                                       \
		check(r_ == -1 && e_ == (want), name, "ret=%s", res(r_, e_));         \
	} while (0)

/* Expect a given non-negative return value. */
#define EXPECT_VAL(name, want, call)                                                  \
	do {                                                                          \
		errno = 0;                                                            \
		long r_ = (long)(call);                                               \
		int e_ = errno;                                                       \
		check(r_ == (long)(want), name, "ret=%s", res(r_, e_));               \
	} while (0)

/* Names created under tmpdir, removed by cleanup() in reverse order. */
static const char *const tmp_files[] = {
	"sub/deep/file", "sub/file", "created", "trunc", "append", "renamed", "moved",
	"hardlink", "link", "dangling", "victim", "other",
};
static const char *const tmp_dirs[] = { "sub/deep", "sub", "emptydir", "dir2", "full" };

static void cleanup(void)
{
	char path[PATH_MAX];
	if (!tmpdir[0])
		return;
	for (size_t i = 0; i < sizeof tmp_files / sizeof *tmp_files; i++) {
		snprintf(path, sizeof path, "%s/%s", tmpdir, tmp_files[i]);
		unlink(path);
	}
	snprintf(path, sizeof path, "%s/full/x", tmpdir);
	unlink(path);
	for (size_t i = 0; i < sizeof tmp_dirs / sizeof *tmp_dirs; i++) {
		snprintf(path, sizeof path, "%s/%s", tmpdir, tmp_dirs[i]);
		rmdir(path);
	}
	rmdir(tmpdir);
	tmpdir[0] = 0;
}

static int write_file(const char *path, const char *data, int flags)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0644);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, data, strlen(data));
	close(fd);
	return n == (ssize_t)strlen(data) ? 0 : -1;
}

/* Reads up to cap-1 bytes of a file into buf, NUL-terminated. */
static ssize_t read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, cap - 1);
	close(fd);
	buf[n < 0 ? 0 : n] = 0;
	return n;
}

/* ---------- part 1: host files, read-only ---------- */

static void test_read_seek(void)
{
	const char *path = "/etc/os-release";
	static char all[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	check(fd >= 0, "open_host_file", "ret=%s", res(fd < 0 ? -1 : 0, errno));
	if (fd < 0)
		return;
	ssize_t size = 0, n;
	while ((n = read(fd, all + size, 100)) > 0)
		size += n;
	check(n == 0 && size > 20, "read_to_eof", "size=%zd", size);
	EXPECT_VAL("read_at_eof", 0, read(fd, all, 10));

	char buf[32];
	n = pread(fd, buf, 10, 5);
	check(n == 10 && memcmp(buf, all + 5, 10) == 0, "pread", "ret=%zd", n);
	EXPECT_VAL("pread_keeps_offset", size, lseek(fd, 0, SEEK_CUR));
	EXPECT_VAL("pread_past_eof", 0, pread(fd, buf, 10, size + 100));

	EXPECT_VAL("lseek_set", 0, lseek(fd, 0, SEEK_SET));
	char a[3], b[7];
	struct iovec iov[2] = { { a, sizeof a }, { b, sizeof b } };
	n = readv(fd, iov, 2);
	check(n == 10 && memcmp(a, all, 3) == 0 && memcmp(b, all + 3, 7) == 0, "readv",
	      "ret=%zd", n);
	EXPECT_VAL("readv_advances_offset", 10, lseek(fd, 0, SEEK_CUR));

	EXPECT_VAL("lseek_set_4", 4, lseek(fd, 4, SEEK_SET));
	EXPECT_VAL("lseek_cur_plus_3", 7, lseek(fd, 3, SEEK_CUR));
	EXPECT_VAL("lseek_cur_minus_2", 5, lseek(fd, -2, SEEK_CUR));
	EXPECT_VAL("lseek_end", size, lseek(fd, 0, SEEK_END));
	EXPECT_VAL("lseek_end_minus_2", size - 2, lseek(fd, -2, SEEK_END));
	n = read(fd, buf, sizeof buf);
	check(n == 2 && memcmp(buf, all + size - 2, 2) == 0, "read_last_two", "ret=%zd", n);
	EXPECT_VAL("lseek_past_end", size + 1000, lseek(fd, 1000, SEEK_END));
	EXPECT_VAL("read_past_end", 0, read(fd, buf, sizeof buf));
	EXPECT_ERR("lseek_negative", EINVAL, lseek(fd, -1, SEEK_SET));
	EXPECT_ERR("lseek_bad_whence", EINVAL, lseek(fd, 0, 42));
	close(fd);

	EXPECT_ERR("read_closed_fd", EBADF, read(fd, buf, 1));
	EXPECT_ERR("lseek_bad_fd", EBADF, lseek(-1, 0, SEEK_SET));
	fd = open("/etc", O_RDONLY | O_CLOEXEC);
	EXPECT_ERR("read_directory", EISDIR, read(fd, buf, sizeof buf));
	close(fd);
}

static void test_stat_agreement(const char *path)
{
	struct stat st_stat, st_fstat, st_at, st_l;
	struct statx sx;
	char name[128];

	int fd = open(path, O_RDONLY | O_CLOEXEC);
	long r1 = stat(path, &st_stat);
	long r2 = fd >= 0 ? fstat(fd, &st_fstat) : -1;
	long r3 = xnewfstatat(AT_FDCWD, path, &st_at, 0);
	long r4 = xstatx(AT_FDCWD, path, 0, &sx);
	snprintf(name, sizeof name, "stat_calls %s", path);
	check(r1 == 0 && r2 == 0 && r3 == 0 && r4 == 0, name, "stat=%ld fstat=%ld fstatat=%ld statx=%ld",
	      r1, r2, r3, r4);
	if (r1 || r2 || r3 || r4) {
		if (fd >= 0)
			close(fd);
		return;
	}
	snprintf(name, sizeof name, "stat %s", path);
	print_stat(name, &st_stat);
	snprintf(name, sizeof name, "stat_agree %s", path);
	check(stat_eq(&st_stat, &st_fstat) && stat_eq(&st_stat, &st_at) &&
	      stat_eq_statx(&st_stat, &sx),
	      name, NULL);
	snprintf(name, sizeof name, "statx_mask_basic %s", path);
	check((sx.stx_mask & STATX_BASIC_STATS) == STATX_BASIC_STATS, name, NULL);

	/* fstatat(fd, "", AT_EMPTY_PATH) is what glibc's fstat uses nowadays. */
	struct stat st_empty;
	long r5 = xnewfstatat(fd, "", &st_empty, AT_EMPTY_PATH);
	snprintf(name, sizeof name, "fstatat_empty_path %s", path);
	check(r5 == 0 && stat_eq(&st_empty, &st_stat), name, "ret=%s", res(r5, errno));

	if (xnewfstatat(AT_FDCWD, path, &st_l, AT_SYMLINK_NOFOLLOW) == 0) {
		snprintf(name, sizeof name, "lstat %s", path);
		print_stat(name, &st_l);
		if (S_ISLNK(st_l.st_mode)) {
			struct statx lsx;
			long r6 = xstatx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, &lsx);
			snprintf(name, sizeof name, "statx_nofollow_agree %s", path);
			check(r6 == 0 && stat_eq_statx(&st_l, &lsx), name, NULL);
		}
	}
	close(fd);
}

static void test_stat_errors(void)
{
	struct stat st;
	struct statx sx;
	EXPECT_ERR("stat_enoent", ENOENT, stat("/nonexistent-veil-test/x", &st));
	EXPECT_ERR("stat_enotdir", ENOTDIR, stat("/etc/os-release/x", &st));
	EXPECT_ERR("stat_empty_path", ENOENT, stat("", &st));
	EXPECT_ERR("fstat_ebadf", EBADF, fstat(-1, &st));
	EXPECT_ERR("newfstatat_ebadf", EBADF, xnewfstatat(999, "relative", &st, 0));
	EXPECT_ERR("newfstatat_bad_flags", EINVAL, xnewfstatat(AT_FDCWD, "/", &st, 0x40000000));
	EXPECT_ERR("statx_enoent", ENOENT, xstatx(AT_FDCWD, "/nonexistent-veil-test", 0, &sx));
	EXPECT_ERR("statx_bad_flags", EINVAL, xstatx(AT_FDCWD, "/", 0x40000000, &sx));
	/* An absolute path ignores dirfd, even a bad one. */
	EXPECT_VAL("newfstatat_abs_ignores_dirfd", 0, xnewfstatat(999, "/etc", &st, 0));
}

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char dtype_char(unsigned char t)
{
	switch (t) {
	case DT_REG: return 'f';
	case DT_DIR: return 'd';
	case DT_LNK: return 'l';
	case DT_CHR: return 'c';
	case DT_BLK: return 'b';
	case DT_FIFO: return 'p';
	case DT_SOCK: return 's';
	default: return '?';
	}
}

/* Lists a directory with raw getdents64 and a small buffer (several calls). */
static void list_dir(const char *label, int dirfd, size_t bufsize)
{
	char *names[4096];
	size_t count = 0, calls = 0;
	char buf[8192];
	if (bufsize > sizeof buf)
		bufsize = sizeof buf;
	for (;;) {
		long n = syscall(SYS_getdents64, dirfd, buf, bufsize);
		if (n < 0) {
			check(0, label, "getdents64=%s", res(n, errno));
			return;
		}
		if (n == 0)
			break;
		calls++;
		for (long off = 0; off < n;) {
			struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
			if (count < sizeof names / sizeof *names) {
				size_t len = strlen(d->d_name);
				char *e = malloc(len + 3);
				e[0] = dtype_char(d->d_type);
				e[1] = ' ';
				memcpy(e + 2, d->d_name, len + 1);
				names[count++] = e;
			}
			off += d->d_reclen;
		}
	}
	/* Sort by name, ignoring the type prefix. */
	for (size_t i = 0; i < count; i++) {
		char *e = names[i];
		size_t len = strlen(e);
		char *swapped = malloc(len + 1);
		snprintf(swapped, len + 1, "%s %c", e + 2, e[0]);
		free(e);
		names[i] = swapped;
	}
	qsort(names, count, sizeof *names, cmp_str);
	report("%s entries=%zu multiple_calls=%d", label, count, calls > 1);
	for (size_t i = 0; i < count; i++) {
		report("  %s", names[i]);
		free(names[i]);
	}
}

static void test_getdents(void)
{
	int fd = open("/etc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	check(fd >= 0, "open_dir", NULL);
	list_dir("getdents64 /etc", fd, 512);
	/* Rewind and list again: same result. */
	EXPECT_VAL("lseek_dir_rewind", 0, lseek(fd, 0, SEEK_SET));
	long n = syscall(SYS_getdents64, fd, (char[4096]){ 0 }, 4096);
	check(n > 0, "getdents64_after_rewind", "nonempty=%d", n > 0);
	char small[8];
	EXPECT_ERR("getdents64_buffer_too_small", EINVAL, syscall(SYS_getdents64, fd, small, sizeof small));
	close(fd);

	fd = open("/etc/os-release", O_RDONLY | O_CLOEXEC);
	char buf[1024];
	EXPECT_ERR("getdents64_on_file", ENOTDIR, syscall(SYS_getdents64, fd, buf, sizeof buf));
	close(fd);
	EXPECT_ERR("getdents64_ebadf", EBADF, syscall(SYS_getdents64, -1, buf, sizeof buf));
	EXPECT_ERR("open_file_o_directory", ENOTDIR, open("/etc/os-release", O_RDONLY | O_DIRECTORY));
}

static void test_host_readlink(void)
{
	const char *links[] = { "/bin", "/lib64", "/etc/os-release", "/etc/localtime" };
	char buf[PATH_MAX];
	for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
		struct stat st;
		if (lstat(links[i], &st) != 0 || !S_ISLNK(st.st_mode)) {
			report("readlink %s not_a_symlink", links[i]);
			continue;
		}
		ssize_t n = readlinkat(AT_FDCWD, links[i], buf, sizeof buf - 1);
		if (n < 0) {
			check(0, "readlink_host", "%s ret=%s", links[i], res(n, errno));
			continue;
		}
		buf[n] = 0;
		check((off_t)n == st.st_size, "readlink_host", "%s -> %s", links[i], buf);
	}
	EXPECT_ERR("readlink_directory", EINVAL, readlink("/etc", buf, sizeof buf));
	EXPECT_ERR("readlink_regular_file", EINVAL, readlink("/usr/bin/env", buf, sizeof buf));
	EXPECT_ERR("readlink_enoent", ENOENT, readlink("/nonexistent-veil-test", buf, sizeof buf));
}

static void test_access(void)
{
	struct {
		const char *path;
		int mode;
		const char *mode_name;
	} cases[] = {
		{ "/etc/os-release", F_OK, "F_OK" }, { "/etc/os-release", R_OK, "R_OK" },
		{ "/etc/os-release", W_OK, "W_OK" }, { "/etc/os-release", X_OK, "X_OK" },
		{ "/usr/bin/env", X_OK, "X_OK" },    { "/usr/bin/env", R_OK | X_OK, "R_OK|X_OK" },
		{ "/etc", X_OK, "X_OK" },            { "/etc/shadow", R_OK, "R_OK" },
		{ "/nonexistent-veil-test", F_OK, "F_OK" },
		{ "/etc/os-release/x", F_OK, "F_OK" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		errno = 0;
		long r = xfaccessat2(cases[i].path, cases[i].mode, 0);
		int e = errno;
		long r2 = syscall(SYS_faccessat2, AT_FDCWD, cases[i].path, cases[i].mode, AT_EACCESS);
		int e2 = errno;
		long r3 = access(cases[i].path, cases[i].mode);
		int e3 = errno;
		report("faccessat2 %s %s = %s", cases[i].path, cases[i].mode_name, res(r, e));
		check(r == r2 && e == e2 && r == r3 && (r == 0 || e == e3), "access_variants_agree",
		      "%s", cases[i].path);
	}
	EXPECT_ERR("faccessat2_bad_mode", EINVAL, xfaccessat2("/etc", 0x40, 0));
	EXPECT_ERR("faccessat2_bad_flags", EINVAL, xfaccessat2("/etc", F_OK, 0x40000000));
}

/* ---------- part 2: a private temp directory ---------- */

static void test_cwd(void)
{
	char buf[PATH_MAX];
	EXPECT_VAL("chdir_root", 0, chdir("/"));
	check(getcwd(buf, sizeof buf) && strcmp(buf, "/") == 0, "getcwd_root", "cwd=%s", buf);
	EXPECT_VAL("chdir_tmpdir", 0, chdir(tmpdir));
	check(getcwd(buf, sizeof buf) && strcmp(buf, tmpdir) == 0, "getcwd_tmpdir", NULL);
	EXPECT_VAL("mkdir_sub", 0, mkdir("sub", 0755));
	EXPECT_VAL("chdir_relative", 0, chdir("sub"));
	char want[PATH_MAX];
	snprintf(want, sizeof want, "%s/sub", tmpdir);
	check(getcwd(buf, sizeof buf) && strcmp(buf, want) == 0, "getcwd_sub", NULL);
	EXPECT_VAL("chdir_dotdot", 0, chdir(".."));
	check(getcwd(buf, sizeof buf) && strcmp(buf, tmpdir) == 0, "getcwd_after_dotdot", NULL);

	int dfd = open("sub", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	EXPECT_VAL("fchdir", 0, fchdir(dfd));
	check(getcwd(buf, sizeof buf) && strcmp(buf, want) == 0, "getcwd_after_fchdir", NULL);
	close(dfd);
	EXPECT_VAL("chdir_back", 0, chdir(tmpdir));

	EXPECT_ERR("chdir_enoent", ENOENT, chdir("nonexistent"));
	EXPECT_ERR("chdir_enotdir", ENOTDIR, chdir("/etc/os-release"));
	errno = 0;
	char *r = getcwd(buf, 2);
	check(r == NULL && errno == ERANGE, "getcwd_erange", "ret=%s", r ? "ok" : res(-1, errno));
	EXPECT_ERR("fchdir_ebadf", EBADF, fchdir(-1));
}

static void test_create_write(void)
{
	char buf[256];
	struct stat st;

	int fd = open("created", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666);
	check(fd >= 0, "open_creat_excl", "ret=%s", res(fd < 0 ? -1 : 0, errno));
	EXPECT_VAL("write", 12, write(fd, "hello world\n", 12));
	EXPECT_VAL("fstat_after_write", 0, fstat(fd, &st));
	print_stat_new("stat created", &st);
	EXPECT_ERR("read_wronly_fd", EBADF, read(fd, buf, 1));
	close(fd);
	EXPECT_ERR("open_creat_excl_exists", EEXIST,
		   open("created", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644));
	ssize_t n = read_file("created", buf, sizeof buf);
	check(n == 12 && strcmp(buf, "hello world\n") == 0, "read_back", "ret=%zd", n);

	fd = open("created", O_RDONLY | O_CLOEXEC);
	EXPECT_ERR("write_rdonly_fd", EBADF, write(fd, "x", 1));
	close(fd);

	/* O_TRUNC */
	check(write_file("trunc", "0123456789", 0) == 0, "write_file_trunc", NULL);
	fd = open("trunc", O_WRONLY | O_TRUNC | O_CLOEXEC);
	fstat(fd, &st);
	check(st.st_size == 0, "o_trunc_size", "size=%lld", (long long)st.st_size);
	EXPECT_VAL("write_after_trunc", 3, write(fd, "abc", 3));
	close(fd);
	n = read_file("trunc", buf, sizeof buf);
	check(n == 3 && strcmp(buf, "abc") == 0, "o_trunc_content", "content=%s", buf);

	/* O_APPEND: writes go to the end even after seeking back. */
	check(write_file("append", "abc", 0) == 0, "write_file_append", NULL);
	fd = open("append", O_WRONLY | O_APPEND | O_CLOEXEC);
	EXPECT_VAL("lseek_append_fd", 0, lseek(fd, 0, SEEK_SET));
	EXPECT_VAL("write_append", 3, write(fd, "def", 3));
	EXPECT_VAL("offset_after_append", 6, lseek(fd, 0, SEEK_CUR));
	close(fd);
	n = read_file("append", buf, sizeof buf);
	check(n == 6 && strcmp(buf, "abcdef") == 0, "o_append_content", "content=%s", buf);

	/* O_RDWR, pwrite, ftruncate (grow with zeroes, shrink). */
	fd = open("append", O_RDWR | O_CLOEXEC);
	EXPECT_VAL("pwrite", 2, pwrite(fd, "XY", 2, 1));
	EXPECT_VAL("ftruncate_grow", 0, ftruncate(fd, 10));
	n = pread(fd, buf, sizeof buf, 0);
	check(n == 10 && memcmp(buf, "aXYdef\0\0\0\0", 10) == 0, "ftruncate_grow_zeroes", "ret=%zd", n);
	EXPECT_VAL("ftruncate_shrink", 0, ftruncate(fd, 4));
	fstat(fd, &st);
	check(st.st_size == 4, "ftruncate_shrink_size", "size=%lld", (long long)st.st_size);
	EXPECT_ERR("ftruncate_negative", EINVAL, ftruncate(fd, -1));
	close(fd);

	EXPECT_ERR("open_enoent", ENOENT, open("nonexistent", O_RDONLY));
	EXPECT_ERR("open_enotdir", ENOTDIR, open("created/x", O_RDONLY));
	EXPECT_ERR("open_eisdir", EISDIR, open("sub", O_WRONLY));
	EXPECT_ERR("open_creat_eisdir", EISDIR, open("sub", O_RDWR | O_CREAT, 0644));
	EXPECT_ERR("open_empty", ENOENT, open("", O_RDONLY));
	char longname[NAME_MAX + 10];
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = 0;
	EXPECT_ERR("open_enametoolong", ENAMETOOLONG, open(longname, O_RDONLY));
	EXPECT_ERR("openat_ebadf", EBADF, openat(999, "created", O_RDONLY));
	int dfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	fd = openat(dfd, "created", O_RDONLY | O_CLOEXEC);
	check(fd >= 0, "openat_dirfd", NULL);
	close(fd);
	fd = open("created", O_RDONLY | O_CLOEXEC);
	EXPECT_ERR("openat_file_as_dirfd", ENOTDIR, openat(fd, "x", O_RDONLY));
	close(fd);
	close(dfd);
}

static void test_fcntl_dup(void)
{
	int fd = open("created", O_RDWR | O_APPEND | O_CLOEXEC);
	check(fd >= 0, "open_for_fcntl", NULL);
	EXPECT_VAL("f_getfd_cloexec", FD_CLOEXEC, fcntl(fd, F_GETFD));
	EXPECT_VAL("f_setfd_0", 0, fcntl(fd, F_SETFD, 0));
	EXPECT_VAL("f_getfd_0", 0, fcntl(fd, F_GETFD));
	int fl = fcntl(fd, F_GETFL);
	report("f_getfl = 0%o accmode_rdwr=%d append=%d", fl, (fl & O_ACCMODE) == O_RDWR,
	       !!(fl & O_APPEND));
	EXPECT_VAL("f_setfl", 0, fcntl(fd, F_SETFL, O_NONBLOCK));
	fl = fcntl(fd, F_GETFL);
	report("f_getfl_after_setfl = 0%o append=%d nonblock=%d", fl, !!(fl & O_APPEND),
	       !!(fl & O_NONBLOCK));

	EXPECT_VAL("f_dupfd_100", 100, fcntl(fd, F_DUPFD, 100));
	EXPECT_VAL("f_dupfd_100_again", 101, fcntl(fd, F_DUPFD, 100));
	EXPECT_VAL("f_getfd_dupfd", 0, fcntl(100, F_GETFD));
	EXPECT_VAL("f_dupfd_cloexec", 102, fcntl(fd, F_DUPFD_CLOEXEC, 100));
	EXPECT_VAL("f_getfd_dupfd_cloexec", FD_CLOEXEC, fcntl(102, F_GETFD));
	EXPECT_ERR("f_dupfd_negative", EINVAL, fcntl(fd, F_DUPFD, -1));
	EXPECT_ERR("f_getfd_ebadf", EBADF, fcntl(555, F_GETFD));
	EXPECT_ERR("fcntl_bad_cmd", EINVAL, fcntl(fd, 0x7fff));

	/* dup'd descriptors share the file offset. */
	EXPECT_VAL("lseek_before_dup", 3, lseek(fd, 3, SEEK_SET));
	int d = dup(fd);
	check(d >= 0 && d < 100, "dup", "lowest_free=%d", d >= 0 && d < fd + 2);
	EXPECT_VAL("dup_shares_offset", 3, lseek(d, 0, SEEK_CUR));
	EXPECT_VAL("dup_offset_move", 5, lseek(d, 5, SEEK_SET));
	EXPECT_VAL("dup_offset_seen", 5, lseek(fd, 0, SEEK_CUR));
	EXPECT_VAL("dup_no_cloexec", 0, fcntl(d, F_GETFD));

	EXPECT_VAL("dup2", 50, dup2(fd, 50));
	EXPECT_VAL("dup2_same_fd", fd, dup2(fd, fd));
	EXPECT_VAL("dup2_replaces", 50, dup2(d, 50));
	EXPECT_ERR("dup2_ebadf", EBADF, dup2(777, 51));
	EXPECT_VAL("dup3_cloexec", 51, dup3(fd, 51, O_CLOEXEC));
	EXPECT_VAL("dup3_cloexec_set", FD_CLOEXEC, fcntl(51, F_GETFD));
	EXPECT_ERR("dup3_same_fd", EINVAL, dup3(fd, fd, 0));
	EXPECT_ERR("dup3_bad_flags", EINVAL, dup3(fd, 52, O_APPEND));
	EXPECT_ERR("dup_ebadf", EBADF, dup(-1));

	int fds[] = { 50, 51, 100, 101, 102, d, fd };
	for (size_t i = 0; i < sizeof fds / sizeof *fds; i++)
		close(fds[i]);
	EXPECT_ERR("close_twice", EBADF, close(fd));
}

static void test_links(void)
{
	char buf[PATH_MAX];
	struct stat st;

	EXPECT_VAL("symlink", 0, symlink("created", "link"));
	EXPECT_VAL("symlink_dangling", 0, symlink("does/not/exist", "dangling"));
	EXPECT_ERR("symlink_exists", EEXIST, symlink("x", "link"));
	int dfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ssize_t n = readlinkat(dfd, "link", buf, sizeof buf);
	check(n == 7 && memcmp(buf, "created", 7) == 0, "readlinkat", "ret=%zd", n);
	n = readlinkat(dfd, "dangling", buf, 3);
	check(n == 3 && memcmp(buf, "doe", 3) == 0, "readlinkat_truncated", "ret=%zd", n);
	close(dfd);
	EXPECT_VAL("lstat_symlink", 0, lstat("link", &st));
	print_stat_new("lstat link", &st);
	check(S_ISLNK(st.st_mode) && st.st_size == 7, "lstat_symlink_is_link", NULL);
	EXPECT_VAL("stat_through_symlink", 0, stat("link", &st));
	check(S_ISREG(st.st_mode) && st.st_size == 12, "stat_follows_symlink", NULL);
	EXPECT_ERR("stat_dangling", ENOENT, stat("dangling", &st));
	EXPECT_ERR("open_nofollow", ELOOP, open("link", O_RDONLY | O_NOFOLLOW));
	EXPECT_VAL("unlink_symlink", 0, unlink("link"));
	EXPECT_VAL("target_survives_unlink_of_link", 0, stat("created", &st));

}

static void test_dirs_rename_unlink(void)
{
	char buf[256];
	struct stat st;

	EXPECT_VAL("mkdir", 0, mkdir("emptydir", 0755));
	EXPECT_VAL("stat_dir", 0, stat("emptydir", &st));
	print_stat_new("stat emptydir", &st);
	EXPECT_ERR("mkdir_exists", EEXIST, mkdir("emptydir", 0755));
	EXPECT_ERR("mkdir_enoent_parent", ENOENT, mkdir("nope/child", 0755));
	EXPECT_ERR("mkdir_enotdir_parent", ENOTDIR, mkdir("created/child", 0755));
	EXPECT_VAL("mkdir_full", 0, mkdir("full", 0700));
	check(write_file("full/x", "x", 0) == 0, "write_in_subdir", NULL);
	EXPECT_ERR("rmdir_not_empty", ENOTEMPTY, rmdir("full"));
	EXPECT_ERR("rmdir_file", ENOTDIR, rmdir("created"));
	EXPECT_ERR("rmdir_enoent", ENOENT, rmdir("nonexistent"));
	EXPECT_ERR("rmdir_dot", EINVAL, rmdir("emptydir/."));
	EXPECT_ERR("unlink_dir", EISDIR, unlink("emptydir"));
	EXPECT_ERR("unlink_enoent", ENOENT, unlink("nonexistent"));

	/* Listing of our own directory (names are ours, so stable). */
	int dfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	list_dir("getdents64 tmpdir", dfd, 4096);
	close(dfd);

	check(write_file("victim", "victim", 0) == 0, "write_file_victim", NULL);
	EXPECT_VAL("rename", 0, rename("victim", "renamed"));
	EXPECT_ERR("rename_source_gone", ENOENT, stat("victim", &st));
	ssize_t n = read_file("renamed", buf, sizeof buf);
	check(n == 6 && strcmp(buf, "victim") == 0, "rename_content", "content=%s", buf);
	check(write_file("other", "other", 0) == 0, "write_file_other", NULL);
	EXPECT_VAL("rename_over_existing", 0, rename("other", "renamed"));
	n = read_file("renamed", buf, sizeof buf);
	check(n == 5 && strcmp(buf, "other") == 0, "rename_replaced", "content=%s", buf);
	EXPECT_VAL("rename_into_subdir", 0, rename("renamed", "sub/file"));
	EXPECT_VAL("rename_back", 0, rename("sub/file", "moved"));
	EXPECT_ERR("rename_enoent", ENOENT, rename("nonexistent", "x"));
	EXPECT_ERR("rename_file_over_dir", EISDIR, rename("moved", "emptydir"));
	EXPECT_ERR("rename_dir_over_file", ENOTDIR, rename("emptydir", "moved"));
	EXPECT_ERR("rename_dir_over_nonempty", ENOTEMPTY, rename("emptydir", "full"));
	EXPECT_ERR("rename_dir_into_itself", EINVAL, rename("full", "full/inner"));
	EXPECT_VAL("rename_dir", 0, rename("emptydir", "dir2"));
	EXPECT_VAL("stat_renamed_dir", 0, stat("dir2", &st));

	EXPECT_VAL("unlink", 0, unlink("moved"));
	EXPECT_ERR("open_after_unlink", ENOENT, open("moved", O_RDONLY));
	EXPECT_ERR("unlink_twice", ENOENT, unlink("moved"));

	/* An open file stays readable after unlink. */
	check(write_file("victim", "still here", 0) == 0, "write_file_victim2", NULL);
	int fd = open("victim", O_RDONLY | O_CLOEXEC);
	EXPECT_VAL("unlink_open_file", 0, unlink("victim"));
	n = read(fd, buf, sizeof buf - 1);
	buf[n < 0 ? 0 : n] = 0;
	check(n == 10 && strcmp(buf, "still here") == 0, "read_after_unlink", "ret=%zd", n);
	fstat(fd, &st);
	check(st.st_nlink == 0, "nlink_zero_after_unlink", "nlink=%lu", (unsigned long)st.st_nlink);
	close(fd);

	EXPECT_VAL("unlink_full_x", 0, unlink("full/x"));
	EXPECT_VAL("rmdir_full", 0, rmdir("full"));
	EXPECT_VAL("rmdir_dir2", 0, rmdir("dir2"));
	EXPECT_VAL("unlink_created", 0, unlink("created"));
	EXPECT_VAL("unlink_trunc", 0, unlink("trunc"));
	EXPECT_VAL("unlink_append", 0, unlink("append"));
	EXPECT_VAL("unlink_dangling", 0, unlink("dangling"));
	EXPECT_VAL("rmdir_sub", 0, rmdir("sub"));

	dfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	list_dir("getdents64 tmpdir_emptied", dfd, 4096);
	close(dfd);
}

int main(void)
{
	umask(022);
	if (chdir("/") != 0)
		return 2;

	test_read_seek();
	test_stat_agreement("/etc/os-release");
	test_stat_agreement("/etc");
	test_stat_agreement("/usr/bin/env");
	test_stat_agreement("/bin");
	test_stat_errors();
	test_getdents();
	test_host_readlink();
	test_access();

	strcpy(tmpdir, "/tmp/veil-fs-basic-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		report("mkdtemp failed: %s (fatal)", errname(errno));
		return 2;
	}
	atexit(cleanup);
	struct stat st;
	if (stat(tmpdir, &st) == 0)
		print_stat_new("stat tmpdir", &st);

	test_cwd();
	test_create_write();
	test_fcntl_dup();
	test_links();
	test_dirs_rename_unlink();

	EXPECT_VAL("chdir_root_again", 0, chdir("/"));
	EXPECT_VAL("rmdir_tmpdir", 0, rmdir(tmpdir));
	EXPECT_ERR("tmpdir_gone", ENOENT, stat(tmpdir, &st));
	tmpdir[0] = 0;
	return finish();
}
