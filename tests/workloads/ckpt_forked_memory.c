/* Checkpoint workload: a process that wrote MIB MiB of private memory (default 256) and forked one
 * child, which still shares those pages with it copy-on-write (issue 10: they are stored once).
 *
 * The root maps MIB MiB private anonymous (MAP_POPULATE), writes a pattern of its own into every
 * 8-byte word, forks. The child writes its own pattern into 1 MiB of it (pages 1000 .. 1255: no longer
 * shared) and tells the root through a shared page; the root prints "REGION <address> <bytes>",
 * "CHILD <pid>" and "READY <pid>" and waits for SIGUSR1.
 * On SIGUSR1 the root signals the child; each checks every word of the region (the child: its own
 * pattern in its 1 MiB, the root's elsewhere), the child exits 0 or prints "FAIL child <what>"; the
 * root checks its status and prints PASS or FAIL <what>.
 * Usage: ckpt_forked_memory [MIB] */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "workload.h"

#define PAGE 4096
#define CHILD_FIRST 1000
#define CHILD_PAGES 256

static uint64_t root_word(size_t i) { return i * 0x9e3779b97f4a7c15ull + 1; }
static uint64_t child_word(size_t i) { return ~root_word(i); }
static int childs(size_t i) { return i >= CHILD_FIRST * (PAGE / 8) && i < (CHILD_FIRST + CHILD_PAGES) * (PAGE / 8); }

/* The first word that differs from what `who` should see, or -1. */
static long check(const uint64_t *words, size_t count, int is_child)
{
    for (size_t i = 0; i < count; i++)
        if (words[i] != (is_child && childs(i) ? child_word(i) : root_word(i))) return (long)i;
    return -1;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 256;
    size_t bytes = mib << 20, count = bytes / 8;
    if (bytes < (CHILD_FIRST + CHILD_PAGES) * (size_t)PAGE) return fail_in("root", "region too small");
    signal(SIGUSR1, on_usr1);
    volatile uint64_t *flag = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    uint64_t *words = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (flag == MAP_FAILED || words == MAP_FAILED) return fail_in("root", "mmap");
    for (size_t i = 0; i < count; i++) words[i] = root_word(i);
    pid_t pid = fork();
    if (pid < 0) return fail_in("root", "fork");
    if (pid == 0)
    {
        for (size_t i = CHILD_FIRST * (PAGE / 8); i < (CHILD_FIRST + CHILD_PAGES) * (PAGE / 8); i++) words[i] = child_word(i);
        *flag = 1;
        while (!got_usr1) sleep_ms(10);
        long bad = check(words, count, 1);
        if (bad >= 0)
        {
            printf("FAIL child word %ld (page %ld)\n", bad, bad / (PAGE / 8));
            fflush(stdout);
            return 1;
        }
        return 0;
    }
    for (int i = 0; i < 2000 && !*flag; i++) sleep_ms(10);
    if (!*flag) return fail_in("root", "the child never wrote its pages");
    printf("REGION %p %zu\nCHILD %d\nREADY %d\n", (void *)words, bytes, pid, getpid());
    fflush(stdout);
    while (!got_usr1) sleep_ms(10);
    if (kill(pid, SIGUSR1) != 0) return fail_in("root", "kill of the child");
    long bad = check(words, count, 0);
    if (bad >= 0)
    {
        printf("FAIL root word %ld (page %ld)\n", bad, bad / (PAGE / 8));
        fflush(stdout);
        return 1;
    }
    int status;
    if (waitpid(pid, &status, 0) != pid) return fail_in("root", "waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return fail_in("root", "the child failed");
    printf("PASS\n");
    fflush(stdout);
    return 0;
}
