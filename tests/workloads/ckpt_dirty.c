/* Large-memory workload: dirties MIB mebibytes of anonymous memory with a pattern that differs
 * for every 8-byte word, leaving every 97th page untouched (so the saved pages form runs of many
 * lengths, split across chunks and blocks) and writing every 89th page with zeros (present, but
 * all-zero: not worth storing); prints REGION <address> and READY; waits for SIGUSR1; verifies
 * every word (untouched and zeroed pages must read as zero) and prints PASS or FAIL <page>.
 * Usage: ckpt_dirty MIB */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include "workload.h"

#define PAGE 4096
#define UNTOUCHED_EVERY 97
#define ZEROED_EVERY 89

static uint64_t pattern(size_t word) { return (word + 1) * 0x9e3779b97f4a7c15ull ^ 0x5bd1e995; }

static int holds_data(size_t page) { return page % UNTOUCHED_EVERY != 0 && page % ZEROED_EVERY != 0; }

int main(int argc, char **argv)
{
    if (argc < 2 || strtoul(argv[1], NULL, 10) == 0) { fprintf(stderr, "usage: %s MIB\n", argv[0]); return 2; }
    size_t bytes = strtoul(argv[1], NULL, 10) << 20, pages = bytes / PAGE, words_per_page = PAGE / 8;
    uint64_t *memory = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) { perror("mmap"); return 1; }
    madvise(memory, bytes, MADV_NOHUGEPAGE); /* untouched pages must stay unpopulated */
    for (size_t page = 0; page < pages; page++) {
        if (page % UNTOUCHED_EVERY == 0) continue;
        for (size_t w = page * words_per_page; w < (page + 1) * words_per_page; w++) memory[w] = holds_data(page) ? pattern(w) : 0;
    }
    signal(SIGUSR1, on_usr1);
    printf("REGION %p\n", (void *)memory);
    printf("READY %d\n", getpid());
    fflush(stdout);
    while (!got_usr1) pause();

    for (size_t page = 0; page < pages; page++) {
        for (size_t w = page * words_per_page; w < (page + 1) * words_per_page; w++) {
            uint64_t expected = holds_data(page) ? pattern(w) : 0;
            if (memory[w] != expected) { printf("FAIL page %zu\n", page); fflush(stdout); return 1; }
        }
    }
    printf("PASS\n");
    fflush(stdout);
    return 0;
}
