/*
 * rlimit_as: RLIMIT_AS bounds the address space as Linux's may_expand_vm
 * does: every mapping counts (PROT_NONE too), mmap, mremap growth and brk
 * past it fail with ENOMEM, a MAP_FIXED mapping over existing ones counts
 * only what it adds, and malloc returns NULL at the limit.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../veiltest.h"

#define MiB (1UL << 20)
#define LIMIT (256 * MiB)
#define CHUNK MiB

static void *map(size_t len, int prot)
{
	return mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

int main(void)
{
	struct rlimit rl = { LIMIT, LIMIT };
	EXPECT(setrlimit(RLIMIT_AS, &rl) == 0, "setrlimit(RLIMIT_AS, 256 MiB)");

	EXPECT(map(512 * MiB, PROT_NONE) == MAP_FAILED && errno == ENOMEM,
	       "reserving 512 MiB of PROT_NONE fails");
	EXPECT(map(512 * MiB, PROT_READ | PROT_WRITE) == MAP_FAILED && errno == ENOMEM,
	       "mapping 512 MiB fails");

	char *m = map(64 * MiB, PROT_READ | PROT_WRITE);
	EXPECT(m != MAP_FAILED, "mapping 64 MiB");
	m[0] = 1;
	EXPECT(mremap(m, 64 * MiB, 512 * MiB, MREMAP_MAYMOVE) == MAP_FAILED && errno == ENOMEM,
	       "growing it to 512 MiB with mremap fails");
	EXPECT(mremap(m, 64 * MiB, 32 * MiB, 0) == m, "shrinking it");
	munmap(m, 32 * MiB);

	void *before = sbrk(0);
	EXPECT(sbrk(512 * MiB) == (void *)-1 && errno == ENOMEM, "sbrk(512 MiB) fails");
	check(sbrk(0) == before, "the break stays", NULL);

	/* Ours, to replace in place once the limit is reached. */
	char *r = map(8 * MiB, PROT_READ | PROT_WRITE);
	EXPECT(r != MAP_FAILED, "mapping 8 MiB");

	void *chunks[LIMIT / CHUNK];
	size_t n = 0;
	while (n < LIMIT / CHUNK) {
		errno = 0;
		void *c = malloc(CHUNK);
		if (!c)
			break;
		chunks[n++] = c;
	}
	int err = errno;
	check_errno(n > 128 && n < LIMIT / CHUNK && err == ENOMEM,
	       "malloc failed after reaching the limit:", err);

	EXPECT(map(2 * MiB, PROT_READ | PROT_WRITE) == MAP_FAILED && errno == ENOMEM,
	       "at the limit, mapping 2 MiB fails");
	EXPECT(mmap(r, 8 * MiB, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == r,
	       "at the limit, MAP_FIXED over our own 8 MiB works");

	while (n)
		free(chunks[--n]);
	munmap(r, 8 * MiB);
	m = map(64 * MiB, PROT_READ | PROT_WRITE);
	EXPECT(m != MAP_FAILED, "after freeing, mapping 64 MiB works");
	return finish();
}
