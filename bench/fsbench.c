/* File-system throughput and latency, printed as "name value unit" lines:
 * sequential write and read of a 256 MiB file in 1 MiB calls, and the
 * latency of open+close and stat of a host file. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "/tmp/veil-fsbench";
    const char *host_file = argc > 2 ? argv[2] : "/etc/hostname";
    enum { CHUNK = 1 << 20, CHUNKS = 256, ITERS = 20000 };
    char *buf = malloc(CHUNK);
    if (!buf) return 1;
    memset(buf, 'v', CHUNK);

    double t = now();
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    if (fd < 0) { perror("open"); return 1; }
    for (int i = 0; i < CHUNKS; i++)
        if (write(fd, buf, CHUNK) != CHUNK) { perror("write"); return 1; }
    close(fd);
    printf("seq_write_256MiB %.0f MiB/s\n", CHUNKS / (now() - t));

    t = now();
    fd = open(path, O_RDONLY);
    if (fd < 0) { perror("open"); return 1; }
    ssize_t n;
    long total = 0;
    while ((n = read(fd, buf, CHUNK)) > 0) total += n;
    close(fd);
    if (total != (long)CHUNK * CHUNKS) { fprintf(stderr, "short read\n"); return 1; }
    printf("seq_read_256MiB %.0f MiB/s\n", CHUNKS / (now() - t));
    unlink(path);

    t = now();
    for (int i = 0; i < ITERS; i++) {
        fd = open(host_file, O_RDONLY);
        if (fd < 0) { perror("open"); return 1; }
        close(fd);
    }
    printf("open_close %.0f ns/op\n", (now() - t) / ITERS * 1e9);

    struct stat st;
    t = now();
    for (int i = 0; i < ITERS; i++)
        if (stat(host_file, &st) < 0) { perror("stat"); return 1; }
    printf("stat %.0f ns/op\n", (now() - t) / ITERS * 1e9);
    return 0;
}
