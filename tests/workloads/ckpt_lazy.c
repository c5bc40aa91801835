/* Lazy-restore workload: MIB mebibytes of anonymous memory, every 8-byte word distinct and non-zero
 * (word 0 of page 0 is the "go" futex word, 0 until the check starts). Three worker threads wait in
 * a futex on that word, which lies in lazily restored memory. Prints READY; on SIGUSR1 (after a
 * restore, while pages may still be missing) it checks through the kernel first, then from every
 * thread, the pages near the end of the region first (a lazy restore fills in address order):
 *   - futex: FUTEX_WAIT on a word of a late page with its saved value must time out (a zero page
 *     would make the kernel answer EAGAIN at once);
 *   - write(): a late page written to a pipe must carry the saved bytes;
 *   - read(): 2048 bytes read from that pipe into the middle of another late page must leave the
 *     rest of that page as saved;
 *   - threads: the workers are woken through the go word and, like the main thread, read every
 *     page in their own random order, comparing every word.
 * Prints PASS or FAIL <what>. Usage: ckpt_lazy MIB */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "workload.h"

#define PAGE 4096
#define WORDS (PAGE / 8)
#define WORKERS 3

static uint64_t *region;
static size_t pages;

static uint64_t pattern(size_t word) { return (word + 1) * 0x9e3779b97f4a7c15ull ^ 0x5bd1e995; }
static uint64_t expected(size_t word) { return word == 0 ? 0 : pattern(word); }

static long futex(uint32_t *word, int op, uint32_t value, const struct timespec *timeout)
{
    return syscall(SYS_futex, word, op, value, timeout, NULL, 0);
}

static size_t gcd(size_t a, size_t b) { while (b) { size_t t = a % b; a = b; b = t; } return a; }

/* Every page, in an order drawn from seed; returns the first bad page + 1, or 0. */
static size_t check_random(unsigned seed)
{
    size_t step = 1 + (seed * 2654435761u) % pages, start = seed % pages;
    while (step > 1 && gcd(step, pages) != 1) step--; /* coprime: every page is visited once */
    for (size_t i = 0, page = start; i < pages; i++, page = (page + step) % pages) {
        for (size_t w = page * WORDS + (page == 0 ? 1 : 0); w < (page + 1) * WORDS; w++)
            if (region[w] != expected(w)) return page + 1;
    }
    return 0;
}

static size_t worker_bad[WORKERS];

static void *worker(void *arg)
{
    unsigned index = (unsigned)(uintptr_t)arg;
    uint32_t *go = (uint32_t *)&region[0];
    while (__atomic_load_n(go, __ATOMIC_ACQUIRE) == 0) futex(go, FUTEX_WAIT_PRIVATE, 0, NULL);
    worker_bad[index] = check_random(index + 7);
    return NULL;
}

static int fail_at(const char *what, size_t detail)
{
    printf("FAIL %s %zu\n", what, detail);
    fflush(stdout);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 2 || strtoul(argv[1], NULL, 10) < 1) { fprintf(stderr, "usage: %s MIB\n", argv[0]); return 2; }
    size_t bytes = strtoul(argv[1], NULL, 10) << 20;
    pages = bytes / PAGE;
    region = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) { perror("mmap"); return 1; }
    for (size_t w = 0; w < pages * WORDS; w++) region[w] = expected(w);
    pthread_t threads[WORKERS];
    for (unsigned i = 0; i < WORKERS; i++) pthread_create(&threads[i], NULL, worker, (void *)(uintptr_t)i);
    signal(SIGUSR1, on_usr1);
    printf("READY %d\n", getpid());
    fflush(stdout);
    while (!got_usr1) pause();

    /* The kernel on our behalf, on pages near the end (the last ones a lazy restore fills). */
    size_t futex_word = (pages - 1) * WORDS + 5;
    struct timespec short_wait = { 0, 20 * 1000 * 1000 };
    uint32_t *futex_low = (uint32_t *)&region[futex_word];
    if (futex(futex_low, FUTEX_WAIT_PRIVATE, (uint32_t)expected(futex_word), &short_wait) != -1 || errno != ETIMEDOUT)
        return fail_at("futex on a lazy page did not wait (errno)", (size_t)errno);
    int pipe_fds[2];
    if (pipe(pipe_fds) != 0) return fail_at("pipe", (size_t)errno);
    size_t source_page = pages - 2, target_page = pages > 3 ? pages - 3 : 0;
    if (write(pipe_fds[1], &region[source_page * WORDS], PAGE) != PAGE) return fail_at("write from a lazy page", (size_t)errno);
    uint64_t copy[WORDS];
    if (read(pipe_fds[0], copy, PAGE) != PAGE) return fail_at("read back", (size_t)errno);
    for (size_t w = 0; w < WORDS; w++)
        if (copy[w] != expected(source_page * WORDS + w)) return fail_at("write() carried wrong bytes of page", source_page);
    if (write(pipe_fds[1], copy, 2048) != 2048) return fail_at("write", (size_t)errno);
    uint8_t *middle = (uint8_t *)&region[target_page * WORDS] + 1024;
    if (read(pipe_fds[0], middle, 2048) != 2048) return fail_at("read() into a lazy page", (size_t)errno);
    for (size_t w = 0; w < WORDS; w++) {
        size_t word = target_page * WORDS + w;
        uint64_t want = (w >= 128 && w < 384) ? copy[w - 128] : expected(word);
        if (region[word] != want) return fail_at("read() into a lazy page left wrong bytes in page", target_page);
    }
    for (size_t w = 128; w < 384; w++) region[target_page * WORDS + w] = expected(target_page * WORDS + w);

    /* Every thread, every page, each in its own order. */
    uint32_t *go = (uint32_t *)&region[0];
    __atomic_store_n(go, 1, __ATOMIC_RELEASE);
    futex(go, FUTEX_WAKE_PRIVATE, WORKERS, NULL);
    size_t bad = check_random(3);
    for (unsigned i = 0; i < WORKERS; i++) pthread_join(threads[i], NULL);
    if (bad) return fail_at("main thread read a wrong word in page", bad - 1);
    for (unsigned i = 0; i < WORKERS; i++)
        if (worker_bad[i]) return fail_at("a worker read a wrong word in page", worker_bad[i] - 1);
    printf("PASS\n");
    fflush(stdout);
    return 0;
}
