/*
 * mm_basic: memory-management syscalls, compared natively vs under veil.
 *
 * Covers anonymous private mappings (small and a sparse 64 MiB one),
 * mprotect, partial munmap and refilling the hole with MAP_FIXED, MAP_FIXED
 * over an existing mapping, MAP_FIXED_NOREPLACE, mremap grow/shrink, brk and
 * sbrk, madvise(MADV_DONTNEED), private file mappings (read-only and
 * copy-on-write), and argument errors.
 *
 * Never faults on purpose, and never prints addresses: only values, sizes and
 * errno names, so the output is identical natively and under veil.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../veiltest.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

static size_t pg;

static void *map_anon(size_t len, int prot)
{
	void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		report("mmap(%zu) failed: %s (fatal)", len, errname(errno));
		exit(2);
	}
	return p;
}

/* Returns 1 if every byte of [p, p+len) equals v. */
static int all_bytes(const void *p, size_t len, unsigned char v)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < len; i++)
		if (c[i] != v)
			return 0;
	return 1;
}

/* A page-aligned address range that is currently unmapped. */
static char *free_range(size_t len)
{
	char *p = map_anon(len, PROT_NONE);
	munmap(p, len);
	return p;
}

static unsigned char pattern(size_t i) { return (unsigned char)(i * 7 + (i >> 12) + 1); }

static void test_anon(void)
{
	size_t n = 16, len = n * pg;
	unsigned char *p = map_anon(len, PROT_READ | PROT_WRITE);
	check(all_bytes(p, len, 0), "mmap_anon_zeroed", "pages=%zu", n);
	for (size_t i = 0; i < len; i++)
		p[i] = pattern(i);
	size_t bad = 0;
	for (size_t i = 0; i < len; i++)
		bad += p[i] != pattern(i);
	check(bad == 0, "mmap_anon_pattern", "mismatches=%zu", bad);
	check(munmap(p, len) == 0, "munmap_anon", NULL);
}

static void test_large_sparse(void)
{
	size_t mib = 1 << 20, len = 64 * mib;
	unsigned char *p = map_anon(len, PROT_READ | PROT_WRITE);
	for (size_t k = 0; k < 64; k++)
		p[k * mib + k] = (unsigned char)(k + 1);
	size_t bad = 0, sum = 0;
	for (size_t k = 0; k < 64; k++) {
		bad += p[k * mib + k] != (unsigned char)(k + 1);
		bad += p[k * mib + k + 1] != 0; /* untouched neighbour */
		sum += p[k * mib + k];
	}
	/* Last byte of the mapping, never written. */
	bad += p[len - 1] != 0;
	check(bad == 0, "mmap_large_sparse", "len_mib=64 sum=%zu", sum);
	check(munmap(p, len) == 0, "munmap_large", NULL);
}

static void test_mprotect(void)
{
	size_t len = 4 * pg;
	unsigned char *p = map_anon(len, PROT_READ | PROT_WRITE);
	memset(p, 0x42, len);

	int r = mprotect(p, len, PROT_READ);
	check(r == 0, "mprotect_ro", "ret=%s", res(r, errno));
	check(all_bytes(p, len, 0x42), "mprotect_ro_readable", NULL);

	r = mprotect(p + pg, 2 * pg, PROT_NONE);
	check(r == 0, "mprotect_none", "ret=%s", res(r, errno));
	r = mprotect(p, len, PROT_READ | PROT_WRITE);
	check(r == 0, "mprotect_rw_again", "ret=%s", res(r, errno));
	check(all_bytes(p, len, 0x42), "mprotect_data_preserved", NULL);
	p[2 * pg] = 0x43;
	check(p[2 * pg] == 0x43, "mprotect_writable_again", NULL);

	errno = 0;
	r = mprotect(p + 1, pg, PROT_READ);
	check(r == -1 && errno == EINVAL, "mprotect_unaligned", "ret=%s", res(r, errno));
	errno = 0;
	r = mprotect(p, pg, 0x1000 /* not a PROT_ bit */);
	check(r == -1 && errno == EINVAL, "mprotect_bad_prot", "ret=%s", res(r, errno));
	munmap(p, len);

	char *hole = free_range(2 * pg);
	errno = 0;
	r = mprotect(hole, 2 * pg, PROT_READ);
	check(r == -1 && errno == ENOMEM, "mprotect_unmapped", "ret=%s", res(r, errno));
}

static void test_munmap_hole(void)
{
	size_t n = 8, len = n * pg;
	unsigned char *p = map_anon(len, PROT_READ | PROT_WRITE);
	for (size_t i = 0; i < n; i++)
		memset(p + i * pg, (int)(0x10 + i), pg);

	int r = munmap(p + 3 * pg, 2 * pg);
	check(r == 0, "munmap_middle", "ret=%s", res(r, errno));
	errno = 0;
	r = mprotect(p + 3 * pg, 2 * pg, PROT_READ);
	check(r == -1 && errno == ENOMEM, "munmap_middle_gone", "mprotect=%s", res(r, errno));

	void *q = mmap(p + 3 * pg, 2 * pg, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	check(q == p + 3 * pg, "mmap_fixed_hole", "same_addr=%d", q == p + 3 * pg);
	check(all_bytes(p + 3 * pg, 2 * pg, 0), "mmap_fixed_hole_zeroed", NULL);
	int intact = 1;
	for (size_t i = 0; i < n; i++)
		if (i != 3 && i != 4)
			intact &= all_bytes(p + i * pg, pg, (unsigned char)(0x10 + i));
	check(intact, "munmap_neighbours_intact", NULL);

	/* Unmapping an already-unmapped range succeeds. */
	r = munmap(p, len);
	check(r == 0, "munmap_all", "ret=%s", res(r, errno));
	r = munmap(p, len);
	check(r == 0, "munmap_twice", "ret=%s", res(r, errno));
}

static void test_map_fixed_over(void)
{
	size_t len = 4 * pg;
	unsigned char *p = map_anon(len, PROT_READ | PROT_WRITE);
	memset(p, 0xAA, len);
	void *q = mmap(p + pg, 2 * pg, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	check(q == p + pg, "mmap_fixed_over", "same_addr=%d", q == p + pg);
	check(all_bytes(p + pg, 2 * pg, 0), "mmap_fixed_over_zeroed", NULL);
	check(all_bytes(p, pg, 0xAA) && all_bytes(p + 3 * pg, pg, 0xAA),
	      "mmap_fixed_over_edges_intact", NULL);

	errno = 0;
	q = mmap(p + pg, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	check(q == MAP_FAILED && errno == EEXIST, "mmap_fixed_noreplace_occupied",
	      "ret=%s", q == MAP_FAILED ? res(-1, errno) : "mapped");
	munmap(p, len);

	char *hole = free_range(2 * pg);
	q = mmap(hole, 2 * pg, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	check(q == hole, "mmap_fixed_noreplace_free", "same_addr=%d", q == hole);
	if (q != MAP_FAILED)
		munmap(q, 2 * pg);
}

static void test_mremap(void)
{
	unsigned char *p = map_anon(2 * pg, PROT_READ | PROT_WRITE);
	for (size_t i = 0; i < 2 * pg; i++)
		p[i] = pattern(i);

	unsigned char *q = mremap(p, 2 * pg, 64 * pg, MREMAP_MAYMOVE);
	check(q != MAP_FAILED, "mremap_grow", "ret=%s", q == MAP_FAILED ? res(-1, errno) : "ok");
	if (q == MAP_FAILED)
		return;
	size_t bad = 0;
	for (size_t i = 0; i < 2 * pg; i++)
		bad += q[i] != pattern(i);
	check(bad == 0, "mremap_grow_preserved", "mismatches=%zu", bad);
	check(all_bytes(q + 2 * pg, 62 * pg, 0), "mremap_grow_tail_zeroed", NULL);
	q[64 * pg - 1] = 9;
	check(q[64 * pg - 1] == 9, "mremap_grow_tail_writable", NULL);

	unsigned char *s = mremap(q, 64 * pg, pg, 0);
	check(s == q, "mremap_shrink", "same_addr=%d", s == q);
	bad = 0;
	for (size_t i = 0; i < pg; i++)
		bad += q[i] != pattern(i);
	check(bad == 0, "mremap_shrink_preserved", "mismatches=%zu", bad);
	errno = 0;
	int r = mprotect(q + pg, pg, PROT_READ);
	check(r == -1 && errno == ENOMEM, "mremap_shrink_tail_gone", "mprotect=%s", res(r, errno));
	munmap(q, pg);

	/* Growing a sub-range in place collides with the rest of the mapping. */
	p = map_anon(4 * pg, PROT_READ | PROT_WRITE);
	errno = 0;
	q = mremap(p, 2 * pg, 4 * pg, 0);
	check(q == MAP_FAILED && errno == ENOMEM, "mremap_nomove_enomem",
	      "ret=%s", q == MAP_FAILED ? res(-1, errno) : "moved");
	errno = 0;
	q = mremap(p + 1, pg, 2 * pg, MREMAP_MAYMOVE);
	check(q == MAP_FAILED && errno == EINVAL, "mremap_unaligned",
	      "ret=%s", q == MAP_FAILED ? res(-1, errno) : "mapped");
	errno = 0;
	q = mremap(p, pg, 0, MREMAP_MAYMOVE);
	check(q == MAP_FAILED && errno == EINVAL, "mremap_zero_len",
	      "ret=%s", q == MAP_FAILED ? res(-1, errno) : "mapped");
	munmap(p, 4 * pg);
}

static void test_brk(void)
{
	const long step = 1 << 20;
	/* No stdio (and so no malloc) until the break is restored below. */
	long b0 = syscall(SYS_brk, 0);
	long b1 = syscall(SYS_brk, b0 + step);
	int grew = b1 == b0 + step;
	int filled = 0;
	if (grew) {
		memset((void *)b0, 0x77, (size_t)step);
		filled = all_bytes((void *)b0, (size_t)step, 0x77);
	}
	long b2 = syscall(SYS_brk, b0);
	long b3 = syscall(SYS_brk, 0);
	/* Below the start of the heap: refused, the break stays put. */
	long b4 = syscall(SYS_brk, 4096);

	/* sbrk goes through glibc's cached break, consistent again now. */
	char *s0 = sbrk(0);
	char *s1 = sbrk(65536);
	char *s2 = sbrk(0);
	int sfilled = 0;
	if (s1 == s0) {
		memset(s1, 0x66, 65536);
		sfilled = all_bytes(s1, 65536, 0x66);
	}
	char *s3 = sbrk(-65536);
	char *s4 = sbrk(0);

	check(grew, "brk_grow", "delta=%ld", b1 - b0);
	check(filled, "brk_grow_writable", NULL);
	check(b2 == b0 && b3 == b0, "brk_shrink", "back_to_start=%d", b2 == b0 && b3 == b0);
	check(b4 == b0, "brk_below_start_refused", "unchanged=%d", b4 == b0);
	check(s1 == s0 && s2 == s0 + 65536, "sbrk_grow", "delta=%ld", (long)(s2 - s0));
	check(sfilled, "sbrk_writable", NULL);
	check(s3 == s2 && s4 == s0, "sbrk_shrink", "delta=%ld", (long)(s4 - s0));
}

static void test_madvise(void)
{
	size_t len = 4 * pg;
	unsigned char *p = map_anon(len, PROT_READ | PROT_WRITE);
	memset(p, 0x5a, len);
	int r = madvise(p + pg, 2 * pg, MADV_DONTNEED);
	check(r == 0, "madvise_dontneed", "ret=%s", res(r, errno));
	check(all_bytes(p + pg, 2 * pg, 0), "madvise_dontneed_zeroed", NULL);
	check(all_bytes(p, pg, 0x5a) && all_bytes(p + 3 * pg, pg, 0x5a),
	      "madvise_dontneed_edges_intact", NULL);
	errno = 0;
	r = madvise(p + 1, pg, MADV_DONTNEED);
	check(r == -1 && errno == EINVAL, "madvise_unaligned", "ret=%s", res(r, errno));
	munmap(p, len);
}

/* Reads the whole file into a malloc'd buffer; returns its size. */
static size_t slurp(const char *path, unsigned char **out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		report("open(%s) failed: %s (fatal)", path, errname(errno));
		exit(2);
	}
	size_t cap = 1 << 16, n = 0;
	unsigned char *buf = malloc(cap);
	for (;;) {
		if (n == cap)
			buf = realloc(buf, cap *= 2);
		ssize_t r = read(fd, buf + n, cap - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	*out = buf;
	return n;
}

static void test_file_map(void)
{
	const char *path = "/etc/os-release";
	unsigned char *content;
	size_t size = slurp(path, &content);

	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	fstat(fd, &st);
	check((size_t)st.st_size == size, "file_size_matches_read", "size=%zu", size);

	size_t maplen = (size + pg - 1) / pg * pg;
	unsigned char *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	check(m != MAP_FAILED, "mmap_file_ro", "ret=%s", m == MAP_FAILED ? res(-1, errno) : "ok");
	if (m == MAP_FAILED)
		return;
	check(memcmp(m, content, size) == 0, "mmap_file_matches_read", "size=%zu", size);
	check(all_bytes(m + size, maplen - size, 0), "mmap_file_tail_zeroed", "tail=%zu",
	      maplen - size);

	/* Private writable mapping of a read-only fd: copy-on-write. */
	unsigned char *w = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	check(w != MAP_FAILED, "mmap_file_private_rw", "ret=%s",
	      w == MAP_FAILED ? res(-1, errno) : "ok");
	if (w != MAP_FAILED) {
		memset(w, 'X', size < 16 ? size : 16);
		unsigned char head[16];
		ssize_t n = pread(fd, head, sizeof head, 0);
		check(n > 0 && memcmp(head, content, (size_t)n) == 0, "mmap_file_private_write_not_in_file",
		      NULL);
		check(memcmp(m, content, size) == 0, "mmap_file_other_mapping_unchanged", NULL);
		check(w[0] == 'X', "mmap_file_private_write_visible", NULL);
		int r = madvise(w, maplen, MADV_DONTNEED);
		check(r == 0 && memcmp(w, content, size) == 0, "madvise_dontneed_file_restores",
		      "ret=%s", res(r, errno));
		munmap(w, size);
	}
	munmap(m, size);

	errno = 0;
	void *s = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	check(s == MAP_FAILED && errno == EACCES, "mmap_file_shared_rw_on_rdonly_fd",
	      "ret=%s", s == MAP_FAILED ? res(-1, errno) : "mapped");
	close(fd);
	free(content);

	/* A mapping at a non-zero file offset, checked against pread(). */
	path = "/bin/ls";
	fd = open(path, O_RDONLY | O_CLOEXEC);
	fstat(fd, &st);
	if ((size_t)st.st_size < 3 * pg) {
		report("mmap_file_offset skipped: %s too small", path);
	} else {
		unsigned char *buf = malloc(2 * pg);
		ssize_t n = pread(fd, buf, 2 * pg, (off_t)pg);
		m = mmap(NULL, 2 * pg, PROT_READ, MAP_PRIVATE, fd, (off_t)pg);
		check(m != MAP_FAILED && n == (ssize_t)(2 * pg) && memcmp(m, buf, 2 * pg) == 0,
		      "mmap_file_offset_matches_pread", NULL);
		if (m != MAP_FAILED)
			munmap(m, 2 * pg);
		free(buf);
		errno = 0;
		m = mmap(NULL, pg, PROT_READ, MAP_PRIVATE, fd, 100);
		check(m == MAP_FAILED && errno == EINVAL, "mmap_file_unaligned_offset",
		      "ret=%s", m == MAP_FAILED ? res(-1, errno) : "mapped");
	}
	close(fd);
}

static void test_bad_args(void)
{
	void *p;
#define BAD_MMAP(name, want, ...)                                                     \
	do {                                                                          \
		errno = 0;                                                            \
		p = mmap(__VA_ARGS__);                                                \
		check(p == MAP_FAILED && errno == (want), name, "ret=%s",             \
		      p == MAP_FAILED ? res(-1, errno) : "mapped");                   \
		if (p != MAP_FAILED)                                                  \
			munmap(p, pg);                                                \
	} while (0)

	char *base = map_anon(2 * pg, PROT_READ | PROT_WRITE);
	BAD_MMAP("mmap_len_zero", EINVAL, NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	BAD_MMAP("mmap_fixed_unaligned", EINVAL, base + 1, pg, PROT_READ,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	BAD_MMAP("mmap_no_private_or_shared", EINVAL, NULL, pg, PROT_READ, MAP_ANONYMOUS, -1, 0);
	BAD_MMAP("mmap_bad_fd", EBADF, NULL, pg, PROT_READ, MAP_PRIVATE, 12345, 0);
	BAD_MMAP("mmap_huge", ENOMEM, NULL, (size_t)1 << 62, PROT_READ,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
#undef BAD_MMAP

	int r;
	errno = 0;
	r = munmap(base + 1, pg);
	check(r == -1 && errno == EINVAL, "munmap_unaligned", "ret=%s", res(r, errno));
	errno = 0;
	r = munmap(base, 0);
	check(r == -1 && errno == EINVAL, "munmap_len_zero", "ret=%s", res(r, errno));
	check(munmap(base, 2 * pg) == 0, "munmap_base", NULL);
}

int main(void)
{
	pg = (size_t)sysconf(_SC_PAGESIZE);
	report("page_size %zu", pg);
	test_anon();
	test_large_sparse();
	test_mprotect();
	test_munmap_hole();
	test_map_fixed_over();
	test_mremap();
	test_brk();
	test_madvise();
	test_file_map();
	test_bad_args();
	return finish();
}
