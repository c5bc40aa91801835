/* Benchmark target: dirties N MiB of anonymous memory (distinct, non-zero contents per page),
 * or with "sparse" reserves 64 GiB PROT_NONE and touches 1 MiB of it, prints
 * "READY <address> <bytes>" and waits for signals.
 *
 *   bench_target MiB|sparse [THREADS]
 *
 * THREADS (default 1: the single-threaded target, no thread is created) is the number of threads
 * of the process, the main one included. The region is split into THREADS contiguous shares, each
 * dirtied by its own thread (share 0 by the main thread). Once done, the extra threads wait:
 * even-numbered ones in a futex wait (pthread_cond_wait on a condition never signalled),
 * odd-numbered ones in nanosleep (an hour at a time). READY is printed after every thread has
 * dirtied its share and reached its wait; the main thread then waits in pause().
 * Touch (issue 15, lazy against eager restore): SIGRTMIN+1, +2, +3 make the main thread read one
 * word of every 100th, 10th or every page of the region (1%, 10%, 100%), check it, and print
 * "TOUCHED <percent> <seconds> ok|bad" (seconds from the signal to the last page). */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static uint8_t *region;
static size_t region_bytes;
static unsigned thread_count = 1;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready_cond = PTHREAD_COND_INITIALIZER; /* main waits for every worker */
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;      /* futex waiters, never signalled */
static unsigned ready;

/* Every 8-byte word distinct and non-zero, so no page is all zeros or compressible to nothing.
 * Share i covers whole pages, [first, last) in words, so the pattern matches the single-threaded one. */
static void dirty_share(unsigned index)
{
    size_t pages = region_bytes / 4096;
    size_t first = pages * index / thread_count * 512, last = pages * (index + 1) / thread_count * 512;
    uint64_t *words = (uint64_t *)region;
    for (size_t i = first; i < last; i++) words[i] = 0x9e3779b97f4a7c15ULL * (i + 1);
}

static void *worker(void *arg)
{
    unsigned index = (unsigned)(uintptr_t)arg;
    dirty_share(index);
    pthread_mutex_lock(&lock);
    ready++;
    pthread_cond_signal(&ready_cond);
    if (index % 2 == 0) {
        for (;;) pthread_cond_wait(&never, &lock); /* releases the lock inside the futex wait */
    }
    pthread_mutex_unlock(&lock);
    for (;;) {
        struct timespec hour = { 3600, 0 };
        nanosleep(&hour, NULL);
    }
    return NULL;
}

static volatile sig_atomic_t touch_every; /* 0: nothing asked; else read every Nth page */
static double touch_asked;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void on_touch(int signal)
{
    touch_asked = now();
    touch_every = signal == SIGRTMIN + 1 ? 100 : signal == SIGRTMIN + 2 ? 10 : 1;
}

static void touch(void)
{
    size_t pages = region_bytes / 4096, every = (size_t)touch_every;
    const volatile uint64_t *words = (const volatile uint64_t *)region;
    int ok = 1;
    for (size_t page = 0; page < pages; page += every) {
        size_t i = page * 512;
        if (words[i] != 0x9e3779b97f4a7c15ULL * (i + 1)) ok = 0;
    }
    printf("TOUCHED %d %.6f %s\n", every == 1 ? 100 : (int)(100 / every), now() - touch_asked, ok ? "ok" : "bad");
    fflush(stdout);
    touch_every = 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) { fprintf(stderr, "usage: bench_target MiB|sparse [THREADS]\n"); return 2; }
    int sparse = strcmp(argv[1], "sparse") == 0;
    if (argc == 3) {
        long threads = strtol(argv[2], NULL, 10);
        if (threads < 1 || threads > 4096) { fprintf(stderr, "THREADS: 1 to 4096\n"); return 2; }
        thread_count = (unsigned)threads;
    }
    region_bytes = sparse ? (1UL << 20) : strtoul(argv[1], NULL, 10) << 20;
    if (sparse) {
        uint8_t *reservation = mmap(NULL, 64UL << 30, PROT_NONE,
                                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (reservation == MAP_FAILED) { perror("mmap reservation"); return 1; }
        region = reservation + (32UL << 30);
        if (mprotect(region, region_bytes, PROT_READ | PROT_WRITE) != 0) { perror("mprotect"); return 1; }
    } else if (region_bytes > 0) {
        region = mmap(NULL, region_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (region == MAP_FAILED) { perror("mmap"); return 1; }
    }
    /* else: the empty baseline, no region (with THREADS > 1: idle threads and nothing else) */

    for (unsigned i = 1; i < thread_count; i++) {
        pthread_t thread;
        int error = pthread_create(&thread, NULL, worker, (void *)(uintptr_t)i);
        if (error) { fprintf(stderr, "pthread_create: %s\n", strerror(error)); return 1; }
    }
    if (region_bytes > 0) dirty_share(0);
    pthread_mutex_lock(&lock);
    while (ready < thread_count - 1) pthread_cond_wait(&ready_cond, &lock);
    pthread_mutex_unlock(&lock);

    for (int i = 1; i <= 3; i++) signal(SIGRTMIN + i, on_touch);
    if (region_bytes > 0) printf("READY %p %zu\n", (void *)region, region_bytes);
    else printf("READY 0 0\n");
    fflush(stdout);
    for (;;) {
        pause();
        if (touch_every) touch();
    }
}
