/* A shared mapping of a file in the directory argv[1] (under veil, a
 * writable bind of a host directory) stays coherent with read(2) and
 * write(2), and what is stored through it reaches the file. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../veiltest.h"

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    char path[4096];
    snprintf(path, sizeof path, "%s/shared.dat", argv[1]);
    int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0644);
    check(fd >= 0, "open", NULL);
    check(write(fd, "0123456789abcdef", 16) == 16, "write", NULL);
    check(ftruncate(fd, 8192) == 0, "ftruncate", NULL);

    char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    check(m != MAP_FAILED, "mmap", NULL);
    check(memcmp(m, "0123456789abcdef", 16) == 0, "the mapping shows what write() wrote", NULL);

    memcpy(m + 4, "MMAP", 4);
    char buf[17] = {0};
    check(pread(fd, buf, 16, 0) == 16 && memcmp(buf, "0123MMAP89abcdef", 16) == 0, "pread sees a store through the mapping", NULL);

    check(pwrite(fd, "WRIT", 4, 8) == 4, "pwrite", NULL);
    check(memcmp(m + 8, "WRIT", 4) == 0, "the mapping sees pwrite", NULL);

    memcpy(m + 4096, "second page", 11);
    check(msync(m, 8192, MS_SYNC) == 0, "msync", NULL);
    check(munmap(m, 8192) == 0, "munmap", NULL);
    close(fd);

    fd = open(path, O_RDONLY);
    memset(buf, 0, sizeof buf);
    check(pread(fd, buf, 16, 0) == 16 && memcmp(buf, "0123MMAPWRITcdef", 16) == 0, "reread after unmap", NULL);
    char page2[12] = {0};
    check(pread(fd, page2, 11, 4096) == 11 && strcmp(page2, "second page") == 0, "the second page", NULL);

    /* Stored, unmapped without msync: still reaches the file. */
    int rw = open(path, O_RDWR);
    m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0);
    check(m != MAP_FAILED, "mmap again", NULL);
    memcpy(m, "LAST", 4);
    munmap(m, 4096);
    close(rw);
    memset(buf, 0, sizeof buf);
    check(pread(fd, buf, 4, 0) == 4 && memcmp(buf, "LAST", 4) == 0, "a store without msync survives the unmap", NULL);
    close(fd);
    return finish();
}
