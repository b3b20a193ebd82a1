/*
 * shm_files: MAP_SHARED mappings of in-memory files map the file's own
 * pages: shm_open + ftruncate + mmap across fork, coherence with
 * read()/write() through any descriptor, memfd_create, sem_open across
 * fork, link() in /dev/shm, SIGBUS past the end of the file, and the
 * access rules (EACCES for writable shared mappings of read-only files).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../veiltest.h"

/* A call that must fail with `want`; errno is read before anything else
 * can change it. */
static void expect_err(long r, int want, const char *name)
{
	int e = errno;
	check(r == -1 && e == want, name, "%s", r == -1 ? errname(e) : "succeeded");
}

static int child_status(pid_t pid)
{
	int status = 0;
	waitpid(pid, &status, 0);
	return status;
}

static void shm_across_fork(void)
{
	char name[64];
	snprintf(name, sizeof name, "/veil-test-shm-%d", getpid());
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	check(fd >= 0, "shm_open", NULL);
	check(ftruncate(fd, 8192) == 0, "ftruncate", NULL);
	struct stat st;
	fstat(fd, &st);
	check(st.st_size == 8192 && S_ISREG(st.st_mode), "shm_stat", "%ld", (long)st.st_size);
	char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	check(m != MAP_FAILED, "shm_mmap", NULL);
	pid_t pid = fork();
	if (pid == 0) {
		strcpy(m + 4096, "child wrote this");
		_exit(0);
	}
	child_status(pid);
	check(strcmp(m + 4096, "child wrote this") == 0, "shm_child_write_seen", NULL);
	/* The mapping and the file are one: read() sees the store... */
	char buf[32] = {0};
	check(pread(fd, buf, 16, 4096) == 16 && memcmp(buf, "child wrote this", 16) == 0,
	      "pread_sees_mapping", NULL);
	/* ...and the mapping sees write(), through another descriptor too. */
	int fd2 = shm_open(name, O_RDWR, 0);
	check(pwrite(fd2, "via fd2", 7, 10) == 7 && memcmp(m + 10, "via fd2", 7) == 0,
	      "mapping_sees_pwrite", NULL);
	/* A second process opening by name maps the same pages. */
	pid = fork();
	if (pid == 0) {
		int f = shm_open(name, O_RDWR, 0);
		char *m2 = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
		int ok = m2 != MAP_FAILED && memcmp(m2 + 10, "via fd2", 7) == 0;
		if (ok)
			m2[0] = 'X';
		_exit(ok ? 0 : 1);
	}
	int status = child_status(pid);
	check(WIFEXITED(status) && WEXITSTATUS(status) == 0 && m[0] == 'X', "independent_open_maps_same_pages",
	      NULL);
	/* A private mapping is a copy. */
	char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	p[0] = 'p';
	check(m[0] == 'X' && p[10] == 'v', "private_mapping_is_a_copy", NULL);
	munmap(p, 4096);
	/* Growing the file makes more of a larger mapping usable. */
	char *big = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	check(ftruncate(fd, 3 * 4096) == 0, "ftruncate_grow", NULL);
	big[2 * 4096 + 5] = 'g';
	check(pread(fd, buf, 1, 2 * 4096 + 5) == 1 && buf[0] == 'g', "grown_page_shared", NULL);
	munmap(big, 3 * 4096);
	munmap(m, 8192);
	close(fd);
	close(fd2);
	check(shm_unlink(name) == 0, "shm_unlink", NULL);
	expect_err(shm_open(name, O_RDWR, 0), ENOENT, "gone_after_unlink");
}

static void sigbus_past_eof(void)
{
	int fd = memfd_create("sigbus", 0);
	ftruncate(fd, 100);
	char *m = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	m[4000] = 'a'; /* the last page of the file: fine past EOF inside it */
	pid_t pid = fork();
	if (pid == 0) {
		(void)*(volatile char *)(m + 4096);
		_exit(0);
	}
	int status = child_status(pid);
	check(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS, "read_past_eof_sigbus", "0x%x", status);
	pid = fork();
	if (pid == 0) {
		m[4096] = 1;
		_exit(0);
	}
	status = child_status(pid);
	check(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS, "write_past_eof_sigbus", "0x%x", status);
	/* The kernel's own accesses there fail with EFAULT instead. */
	expect_err(read(fd, m + 4096, 10), EFAULT, "read_into_past_eof");
	char tail[8];
	check(pread(fd, tail, 8, 4000) == 0, "file_size_unchanged_by_tail_store", NULL);
	/* Shrinking takes pages away from a mapping that had them. */
	ftruncate(fd, 2 * 4096);
	m[4096 + 1] = 'b';
	ftruncate(fd, 4096);
	pid = fork();
	if (pid == 0) {
		(void)*(volatile char *)(m + 4096 + 1);
		_exit(0);
	}
	status = child_status(pid);
	check(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS, "shrunk_page_sigbus", "0x%x", status);
	ftruncate(fd, 2 * 4096);
	check(m[4096 + 1] == 0 && m[4000] == 'a', "regrown_page_is_zero", NULL);
	munmap(m, 2 * 4096);
	close(fd);
}

static void memfd(void)
{
	int fd = memfd_create("veil-test", MFD_CLOEXEC);
	check(fd >= 0, "memfd_create", NULL);
	check((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0, "memfd_cloexec", NULL);
	check(write(fd, "hello world", 11) == 11, "memfd_write", NULL);
	struct stat st;
	fstat(fd, &st);
	check(st.st_size == 11 && st.st_nlink == 0 && S_ISREG(st.st_mode), "memfd_stat", "%ld %ld",
	      (long)st.st_size, (long)st.st_nlink);
	char *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	check(m != MAP_FAILED && memcmp(m, "hello world", 11) == 0, "memfd_mapping_sees_write", NULL);
	m[0] = 'J';
	char buf[12] = {0};
	check(pread(fd, buf, 11, 0) == 11 && strcmp(buf, "Jello world") == 0, "pread_sees_memfd_store",
	      "%s", buf);
	pid_t pid = fork();
	if (pid == 0) {
		pwrite(fd, "W", 1, 6);
		m[1] = 'E';
		_exit(0);
	}
	child_status(pid);
	check(memcmp(m, "JEllo World", 11) == 0, "memfd_shared_with_child", "%.11s", m);
	expect_err(memfd_create("x", 0x100), EINVAL, "memfd_bad_flags");
	munmap(m, 4096);
	close(fd);
}

static void access_rules(void)
{
	int rw = memfd_create("rules", 0);
	write(rw, "data", 4);
	/* A file in /dev/shm opened for writing and for reading. */
	char name[64];
	snprintf(name, sizeof name, "/dev/shm/veil-test-ro-%d", getpid());
	int w = open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	write(w, "data", 4);
	int ro = open(name, O_RDONLY);
	void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0);
	expect_err(m == MAP_FAILED ? -1 : 0, EACCES, "shared_write_needs_rdwr");
	char *r = mmap(NULL, 4096, PROT_READ, MAP_SHARED, ro, 0);
	check(r != MAP_FAILED && memcmp(r, "data", 4) == 0, "shared_read_only_ok", NULL);
	expect_err(mprotect(r, 4096, PROT_READ | PROT_WRITE), EACCES, "mprotect_write_eacces");
	pwrite(w, "DATA", 4, 0);
	check(memcmp(r, "DATA", 4) == 0, "read_only_mapping_sees_writes", NULL);
	char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, ro, 0);
	check(p != MAP_FAILED, "private_writable_of_read_only_ok", NULL);
	munmap(r, 4096);
	munmap(p, 4096);
	close(ro);
	close(w);
	unlink(name);
	close(rw);
}

static void links_in_dev_shm(void)
{
	char a[64], b[64];
	snprintf(a, sizeof a, "/dev/shm/veil-test-a-%d", getpid());
	snprintf(b, sizeof b, "/dev/shm/veil-test-b-%d", getpid());
	int fd = open(a, O_RDWR | O_CREAT | O_EXCL, 0600);
	write(fd, "linked", 6);
	int r = link(a, b);
	check(r == 0, "link", "%s", res(r, errno));
	struct stat sa, sb;
	stat(a, &sa);
	stat(b, &sb);
	check(sa.st_ino == sb.st_ino && sb.st_nlink == 2, "link_same_file", "nlink %ld", (long)sb.st_nlink);
	expect_err(link(a, b), EEXIST, "link_eexist");
	expect_err(link("/dev/shm", b), EEXIST, "link_dir_onto_existing");
	char d[64];
	snprintf(d, sizeof d, "/dev/shm/veil-test-d-%d", getpid());
	expect_err(link("/dev/shm", d), EPERM, "link_dir_eperm");
	char c[80];
	snprintf(c, sizeof c, "/tmp/veil-test-c-%d", getpid());
	expect_err(link(a, c), EXDEV, "link_across_filesystems");
	unlink(a);
	fstat(fd, &sb);
	check(sb.st_nlink == 1, "unlink_one_name", "%ld", (long)sb.st_nlink);
	int fd2 = open(b, O_RDONLY);
	char buf[8] = {0};
	check(read(fd2, buf, 6) == 6 && strcmp(buf, "linked") == 0, "data_by_other_name", NULL);
	unlink(b);
	close(fd);
	close(fd2);
}

static void semaphores(void)
{
	char name[64];
	snprintf(name, sizeof name, "/veil-test-sem-%d", getpid());
	sem_t *s = sem_open(name, O_CREAT | O_EXCL, 0600, 0);
	check(s != SEM_FAILED, "sem_open", "%s", s == SEM_FAILED ? errname(errno) : "");
	sem_t *done = mmap(NULL, sizeof(sem_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	sem_init(done, 1, 0);
	pid_t pid = fork();
	if (pid == 0) {
		sem_t *c = sem_open(name, 0);
		for (int i = 0; i < 3; i++)
			sem_wait(c);
		sem_post(done);
		_exit(c == SEM_FAILED ? 1 : 0);
	}
	usleep(20000);
	for (int i = 0; i < 3; i++)
		sem_post(s);
	sem_wait(done);
	int status = child_status(pid);
	check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "sem_across_fork", "0x%x", status);
	int v = -1;
	sem_getvalue(s, &v);
	check(v == 0, "sem_value", "%d", v);
	sem_close(s);
	check(sem_unlink(name) == 0, "sem_unlink", NULL);
}

int main(void)
{
	shm_across_fork();
	sigbus_past_eof();
	memfd();
	access_rules();
	links_in_dev_shm();
	semaphores();
	return finish();
}
