/* Checkpoint workload: threads come and go all the time. The main thread starts batches of
 * short-lived threads, each computing one job (every fourth job starts a helper thread of its own
 * for half of the work and joins it), plus one detached thread per batch, and joins the batch.
 * It keeps a checksum of the joined jobs' results and a sum of the detached ones', so that a
 * checkpoint that loses, repeats or corrupts a thread's work is seen. The threads are created
 * and exit while the checkpoint freezes the process: it must neither hang nor fail.
 *
 * Each job thread also sleeps JOB_SLEEP_MS (default 10) between its halves: there are nearly always
 * threads alive (a checkpoint finds some in clock_nanosleep, some starting or exiting), while
 * the process uses only some 500 tids a second. The pid space is small (pid_max is often 32768):
 * a faster churn would wrap it within seconds, and an image's old tids would then belong to
 * other processes when it is restored.
 *
 * Usage: ckpt_thread_churn [BATCH_WIDTH (1..16, default 4)] [JOB_SLEEP_MS (0..1000, default 10)]
 * Prints "READY <pid>" after the first batch, "PROGRESS <jobs>" about every 200 ms, and on
 * SIGUSR1 (kept blocked everywhere and polled by the main thread between batches, so no
 * short-lived thread ever takes it) stops, recomputes every checksum serially, prints
 * "JOBS <n> DETACHED <m>" and PASS or "FAIL <what>", and exits. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define MAX_WIDTH 16

static uint64_t mix(uint64_t x, int rounds)
{
    for (int i = 0; i < rounds; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}

static uint64_t first_half(uint64_t k) { return mix(k * 0x9E3779B97F4A7C15ULL + 1, 1000); }
static uint64_t second_half(uint64_t k) { return mix(k * 0xC2B2AE3D27D4EB4FULL + 7, 1000); }
static int job_sleep_ms = 10;
static uint64_t rotl(uint64_t x, unsigned r) { r &= 63; return r ? (x << r) | (x >> (64 - r)) : x; }

struct job { pthread_t thread; uint64_t k, result; };

static void *helper(void *arg)
{
    struct job *j = arg;
    j->result = second_half(j->k);
    return NULL;
}

static void *run_job(void *arg)
{
    struct job *j = arg;
    uint64_t a = first_half(j->k), b;
    struct timespec nap = { job_sleep_ms / 1000, (job_sleep_ms % 1000) * 1000000L };
    if (job_sleep_ms) nanosleep(&nap, NULL);
    if (j->k % 4 == 0) { /* a thread that starts a thread */
        struct job inner = { .k = j->k };
        if (pthread_create(&inner.thread, NULL, helper, &inner) != 0) { j->result = 0; return NULL; }
        pthread_join(inner.thread, NULL);
        b = inner.result;
    } else
        b = second_half(j->k);
    j->result = a ^ b;
    return NULL;
}

static uint64_t detached_started, detached_sum;
static uint64_t detached_finished;

static void *run_detached(void *arg)
{
    uint64_t k = (uint64_t)(uintptr_t)arg;
    __atomic_add_fetch(&detached_sum, first_half(k + 1000000000ULL), __ATOMIC_RELAXED);
    __atomic_add_fetch(&detached_finished, 1, __ATOMIC_RELEASE);
    return NULL;
}

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int width = argc > 1 ? atoi(argv[1]) : 4;
    if (argc > 2) job_sleep_ms = atoi(argv[2]);
    if (width < 1 || width > MAX_WIDTH || job_sleep_ms < 0 || job_sleep_ms > 1000) {
        fprintf(stderr, "usage: ckpt_thread_churn [1..16] [0..1000]\n");
        return 2;
    }
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, NULL); /* every thread inherits it */
    pthread_attr_t detached;
    pthread_attr_init(&detached);
    pthread_attr_setdetachstate(&detached, PTHREAD_CREATE_DETACHED);

    struct job jobs[MAX_WIDTH];
    uint64_t next = 0, checksum = 0;
    long long last_progress = now_ms();
    int ready = 0;
    for (;;) {
        int started = 0;
        for (int i = 0; i < width; i++) {
            jobs[i].k = next + i;
            if (pthread_create(&jobs[i].thread, NULL, run_job, &jobs[i]) != 0) break;
            started++;
        }
        pthread_t d;
        if (pthread_create(&d, &detached, run_detached, (void *)(uintptr_t)detached_started) == 0) detached_started++;
        for (int i = 0; i < started; i++) {
            pthread_join(jobs[i].thread, NULL);
            checksum += rotl(jobs[i].result, (unsigned)(jobs[i].k % 64));
        }
        next += (uint64_t)started;
        if (!ready) { printf("READY %d\n", getpid()); ready = 1; }
        if (now_ms() - last_progress >= 200) {
            printf("PROGRESS %llu\n", (unsigned long long)next);
            last_progress = now_ms();
        }
        sigset_t pending;
        sigpending(&pending);
        if (sigismember(&pending, SIGUSR1)) break;
    }
    int sig;
    sigwait(&usr1, &sig);

    uint64_t expected = 0;
    for (uint64_t k = 0; k < next; k++) expected += rotl(first_half(k) ^ second_half(k), (unsigned)(k % 64));
    for (int i = 0; i < 1000 && __atomic_load_n(&detached_finished, __ATOMIC_ACQUIRE) < detached_started; i++)
        usleep(10000);
    uint64_t finished = __atomic_load_n(&detached_finished, __ATOMIC_ACQUIRE), expected_detached = 0;
    for (uint64_t k = 0; k < detached_started; k++) expected_detached += first_half(k + 1000000000ULL);
    printf("JOBS %llu DETACHED %llu\n", (unsigned long long)next, (unsigned long long)detached_started);
    if (checksum != expected)
        printf("FAIL checksum %016llx, expected %016llx\n", (unsigned long long)checksum, (unsigned long long)expected);
    else if (finished != detached_started)
        printf("FAIL %llu of %llu detached threads finished\n", (unsigned long long)finished, (unsigned long long)detached_started);
    else if (__atomic_load_n(&detached_sum, __ATOMIC_ACQUIRE) != expected_detached)
        printf("FAIL detached sum %016llx, expected %016llx\n", (unsigned long long)detached_sum, (unsigned long long)expected_detached);
    else {
        printf("PASS\n");
        return 0;
    }
    return 1;
}
