/* Benchmark target: dirties N MiB of anonymous memory (distinct, non-zero contents per page),
 * or with "sparse" reserves 64 GiB PROT_NONE and touches 1 MiB of it, prints
 * "READY <address> <bytes>" and waits for signals. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: bench_target MiB | sparse\n"); return 2; }
    int sparse = strcmp(argv[1], "sparse") == 0;
    if (!sparse && strtoul(argv[1], NULL, 10) == 0) { /* the empty baseline */
        printf("READY 0 0\n");
        fflush(stdout);
        for (;;) pause();
    }
    size_t bytes = sparse ? (1UL << 20) : strtoul(argv[1], NULL, 10) << 20;
    uint8_t *region;
    if (sparse) {
        uint8_t *reservation = mmap(NULL, 64UL << 30, PROT_NONE,
                                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (reservation == MAP_FAILED) { perror("mmap reservation"); return 1; }
        region = reservation + (32UL << 30);
        if (mprotect(region, bytes, PROT_READ | PROT_WRITE) != 0) { perror("mprotect"); return 1; }
    } else {
        region = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (region == MAP_FAILED) { perror("mmap"); return 1; }
    }
    /* Every 8-byte word distinct and non-zero, so no page is all zeros or compressible to nothing. */
    uint64_t *words = (uint64_t *)region;
    for (size_t i = 0; i < bytes / 8; i++) words[i] = 0x9e3779b97f4a7c15ULL * (i + 1);
    printf("READY %p %zu\n", (void *)region, bytes);
    fflush(stdout);
    for (;;) pause();
}
