/*
 * rlimit_data: RLIMIT_DATA bounds the data segment as Linux's
 * may_expand_vm does: brk and private writable mappings (not stacks, not
 * shared or read-only ones) past it fail with ENOMEM, so do mprotect and
 * mremap that would make more data, and malloc returns NULL at the limit.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../veiltest.h"

#define MiB (1UL << 20)
#define LIMIT (32 * MiB)
#define RW (PROT_READ | PROT_WRITE)

static void *map(size_t len, int prot, int flags)
{
	return mmap(NULL, len, prot, flags | MAP_ANONYMOUS, -1, 0);
}

/* Maps and unmaps; returns the errno name or "OK". */
static const char *try_map(size_t len, int prot, int flags)
{
	errno = 0;
	void *p = map(len, prot, flags);
	if (p == MAP_FAILED)
		return errname(errno);
	munmap(p, len);
	return "OK";
}

int main(void)
{
	struct rlimit rl = { LIMIT, LIMIT };
	EXPECT(setrlimit(RLIMIT_DATA, &rl) == 0, "setrlimit(RLIMIT_DATA, 32 MiB)");

	void *before = sbrk(0);
	EXPECT(sbrk(64 * MiB) == (void *)-1 && errno == ENOMEM, "sbrk(64 MiB) fails");
	check(sbrk(0) == before, "the break stays", NULL);
	EXPECT(sbrk(MiB) == before, "sbrk(1 MiB) works");
	check(sbrk(-(intptr_t)MiB) != (void *)-1 && sbrk(0) == before, "and shrinks back", NULL);

	report("private writable 64 MiB: %s", try_map(64 * MiB, RW, MAP_PRIVATE));
	report("private read-only 64 MiB: %s", try_map(64 * MiB, PROT_READ, MAP_PRIVATE));
	report("shared writable 64 MiB: %s", try_map(64 * MiB, RW, MAP_SHARED));
	report("growsdown writable 64 MiB: %s", try_map(64 * MiB, RW, MAP_PRIVATE | MAP_GROWSDOWN));

	char *p = map(64 * MiB, PROT_READ, MAP_PRIVATE);
	report("mprotect(64 MiB, RW): %s", RES(mprotect(p, 64 * MiB, RW)));
	report("mprotect(64 MiB, R|X): %s", RES(mprotect(p, 64 * MiB, PROT_READ | PROT_EXEC)));
	report("mprotect(4 MiB, RW): %s", RES(mprotect(p, 4 * MiB, RW)));
	munmap(p, 64 * MiB);

	p = map(16 * MiB, RW, MAP_PRIVATE);
	EXPECT(p != MAP_FAILED, "mapping 16 MiB");
	EXPECT(mremap(p, 16 * MiB, 64 * MiB, MREMAP_MAYMOVE) == MAP_FAILED && errno == ENOMEM,
	       "growing it to 64 MiB with mremap fails");
	munmap(p, 16 * MiB);

	/* A soft limit of 0 lets data grow to the hard limit (Linux's
	 * workaround for Valgrind). */
	pid_t pid = fork();
	if (pid == 0) {
		struct rlimit zero = { 0, LIMIT };
		setrlimit(RLIMIT_DATA, &zero);
		report("soft limit 0: 1 MiB: %s", try_map(MiB, RW, MAP_PRIVATE));
		report("soft limit 0: 64 MiB: %s", try_map(64 * MiB, RW, MAP_PRIVATE));
		fflush(stdout);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	report_status("child", status);

	void *chunks[LIMIT / MiB];
	size_t n = 0;
	while (n < LIMIT / MiB) {
		errno = 0;
		void *c = malloc(MiB);
		if (!c)
			break;
		chunks[n++] = c;
	}
	int err = errno;
	check_errno(n > 16 && n < LIMIT / MiB && err == ENOMEM,
	       "malloc failed after reaching the limit:", err);
	while (n)
		free(chunks[--n]);
	report("after freeing, private writable 16 MiB: %s", try_map(16 * MiB, RW, MAP_PRIVATE));
	return finish();
}
