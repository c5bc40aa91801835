/* The hardware floor for a checkpoint and a restore of the same pages:
 *   floor read  PID ADDRESS BYTES OUTPUT [fsync]   process_vm_readv the range in 4 MiB batches, write() to
 *                                                  OUTPUT (created anew); with fsync, fsync it at the end
 *                                                  (as ckpt does for a file image)
 *   floor copy  PID ADDRESS BYTES                  process_vm_readv the range into a buffer of BYTES populated
 *                                                  beforehand (what --deferred-write does while frozen)
 *   floor write INPUT BYTES                        read INPUT into a fresh populated mapping of BYTES
 * Prints the elapsed seconds on stdout; setup (buffers, opening the output) is not timed. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define BATCH (4UL << 20)

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int floor_copy(pid_t pid, uintptr_t address, size_t bytes)
{
    char *buffer = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (buffer == MAP_FAILED) { perror("floor copy setup"); return 1; }
    double start = now();
    for (size_t done = 0; done < bytes;) {
        size_t n = bytes - done < BATCH ? bytes - done : BATCH;
        struct iovec local = { buffer + done, n }, remote = { (void *)(address + done), n };
        ssize_t got = process_vm_readv(pid, &local, 1, &remote, 1, 0);
        if (got <= 0) { perror("process_vm_readv"); return 1; }
        done += got;
    }
    printf("%.6f\n", now() - start);
    return 0;
}

static int floor_read(pid_t pid, uintptr_t address, size_t bytes, const char *output, int durable)
{
    char *buffer = mmap(NULL, BATCH, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    unlink(output);
    int fd = open(output, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (buffer == MAP_FAILED || fd < 0) { perror("floor read setup"); return 1; }
    double start = now();
    for (size_t done = 0; done < bytes;) {
        size_t n = bytes - done < BATCH ? bytes - done : BATCH;
        struct iovec local = { buffer, n }, remote = { (void *)(address + done), n };
        ssize_t got = process_vm_readv(pid, &local, 1, &remote, 1, 0);
        if (got <= 0) { perror("process_vm_readv"); return 1; }
        for (ssize_t written = 0; written < got;) {
            ssize_t w = write(fd, buffer + written, got - written);
            if (w <= 0) { perror("write"); return 1; }
            written += w;
        }
        done += got;
    }
    if (durable && fsync(fd) != 0) { perror("fsync"); return 1; }
    close(fd);
    printf("%.6f\n", now() - start);
    return 0;
}

static int floor_write(const char *input, size_t bytes)
{
    int fd = open(input, O_RDONLY);
    if (fd < 0) { perror("open"); return 1; }
    double start = now();
    char *target = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (target == MAP_FAILED) { perror("mmap"); return 1; }
    for (size_t done = 0; done < bytes;) {
        ssize_t got = read(fd, target + done, bytes - done < BATCH ? bytes - done : BATCH);
        if (got <= 0) { perror("read"); return 1; }
        done += got;
    }
    printf("%.6f\n", now() - start);
    return 0;
}

int main(int argc, char **argv)
{
    if ((argc == 6 || (argc == 7 && strcmp(argv[6], "fsync") == 0)) && strcmp(argv[1], "read") == 0)
        return floor_read(atoi(argv[2]), strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 10), argv[5], argc == 7);
    if (argc == 5 && strcmp(argv[1], "copy") == 0)
        return floor_copy(atoi(argv[2]), strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 10));
    if (argc == 4 && strcmp(argv[1], "write") == 0)
        return floor_write(argv[2], strtoull(argv[3], NULL, 10));
    fprintf(stderr, "usage: floor read PID ADDRESS BYTES OUTPUT [fsync] | floor copy PID ADDRESS BYTES | floor write INPUT BYTES\n");
    return 2;
}
