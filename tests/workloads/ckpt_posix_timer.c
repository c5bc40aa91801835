/* Checkpoint workload for POSIX timers (timer_create). Makes four timers and deletes the first, so
 * the ids are 1, 2, 3 with a gap at 0:
 *   id 1  CLOCK_MONOTONIC, SIGEV_SIGNAL SIGRTMIN, sigev value 42, every 100 ms
 *   id 2  CLOCK_MONOTONIC, SIGEV_THREAD_ID to the "ticker" thread, SIGRTMIN+1, value 7, every 150 ms
 *   id 3  the process's CPU-time clock, SIGEV_NONE, 1000 s left, interval 1000 s
 * Prints "TICKER <tid>" and READY, waits for SIGUSR1 (the ticker thread blocks SIGRTMIN and SIGUSR1,
 * so they reach the main thread), then counts expiries for one second: timer 1 and 2 must keep
 * firing at about their period with their ids (si_timerid) and values, timer 2's signal on the
 * ticker thread only; timer 3 must still be armed with its interval, id 0 must not exist. Prints
 * PASS or FAIL <what>. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "workload.h"

static volatile sig_atomic_t ticks1, ticks2, wrong1, wrong2;
static volatile pid_t ticker_tid;

static void on_timer1(int sig, siginfo_t *info, void *context)
{
    (void)sig; (void)context;
    ticks1++;
    if (info->si_code != SI_TIMER || info->si_timerid != 1 || info->si_value.sival_int != 42) wrong1++;
}

static void on_timer2(int sig, siginfo_t *info, void *context)
{
    (void)sig; (void)context;
    ticks2++;
    if (info->si_code != SI_TIMER || info->si_timerid != 2 || info->si_value.sival_int != 7 || gettid() != ticker_tid) wrong2++;
}

static void *ticker(void *arg)
{
    (void)arg;
    ticker_tid = gettid();
    for (;;) pause();
    return NULL;
}

static void block(int how, int a, int b)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, a);
    if (b) sigaddset(&set, b);
    pthread_sigmask(how, &set, NULL);
}

static int make_timer(clockid_t clock, int notify, int signo, int value, pid_t tid, timer_t *timer)
{
    struct sigevent event;
    memset(&event, 0, sizeof event);
    event.sigev_notify = notify;
    event.sigev_signo = signo;
    event.sigev_value.sival_int = value;
    event._sigev_un._tid = tid;
    return timer_create(clock, &event, timer);
}

static int arm(timer_t timer, long value_ms, long interval_ms)
{
    struct itimerspec spec = {
        .it_interval = { interval_ms / 1000, (interval_ms % 1000) * 1000000 },
        .it_value = { value_ms / 1000, (value_ms % 1000) * 1000000 },
    };
    return timer_settime(timer, 0, &spec, NULL);
}

/* Sleeps a whole second of CLOCK_MONOTONIC, whatever signals interrupt the sleep. */
static void sleep_one_second(void)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += 1;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR) { }
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);
    struct sigaction t1 = { .sa_sigaction = on_timer1, .sa_flags = SA_SIGINFO | SA_RESTART };
    sigaction(SIGRTMIN, &t1, NULL);
    struct sigaction t2 = { .sa_sigaction = on_timer2, .sa_flags = SA_SIGINFO | SA_RESTART };
    sigaction(SIGRTMIN + 1, &t2, NULL);

    /* the ticker inherits a mask with SIGRTMIN and SIGUSR1 blocked; the main thread then blocks SIGRTMIN+1 */
    block(SIG_BLOCK, SIGRTMIN, SIGUSR1);
    pthread_t thread;
    if (pthread_create(&thread, NULL, ticker, NULL) != 0) return fail("pthread_create");
    pthread_setname_np(thread, "ticker");
    block(SIG_UNBLOCK, SIGRTMIN, SIGUSR1);
    block(SIG_BLOCK, SIGRTMIN + 1, 0);
    while (!ticker_tid) usleep(1000);

    timer_t t0, timer1, timer2, timer3;
    if (make_timer(CLOCK_MONOTONIC, SIGEV_NONE, 0, 0, 0, &t0) != 0 || (long)t0 != 0) return fail("timer id 0");
    if (make_timer(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGRTMIN, 42, 0, &timer1) != 0 || (long)timer1 != 1) return fail("timer id 1");
    if (make_timer(CLOCK_MONOTONIC, SIGEV_THREAD_ID, SIGRTMIN + 1, 7, ticker_tid, &timer2) != 0 || (long)timer2 != 2) return fail("timer id 2");
    if (make_timer(CLOCK_PROCESS_CPUTIME_ID, SIGEV_NONE, 0, 0, 0, &timer3) != 0 || (long)timer3 != 3) return fail("timer id 3");
    if (timer_delete(t0) != 0) return fail("timer_delete(0)");
    if (arm(timer1, 100, 100) || arm(timer2, 150, 150) || arm(timer3, 1000000, 1000000)) return fail("timer_settime");

    printf("TICKER %d\n", ticker_tid);
    printf("READY %d\n", getpid());
    while (!got_usr1) pause();

    ticks1 = ticks2 = wrong1 = wrong2 = 0;
    sleep_one_second();
    int one = ticks1, two = ticks2;
    printf("in one second: timer 1 fired %d times (%d wrong), timer 2 %d times (%d wrong)\n", one, (int)wrong1, two, (int)wrong2);
    /* 10 and 6.7 expected; generous bounds for a loaded machine (a late expiry counts once, with overruns) */
    if (one < 3 || one > 15) return fail("timer 1 does not fire about every 100 ms");
    if (two < 2 || two > 10) return fail("timer 2 does not fire about every 150 ms");
    if (wrong1) return fail("timer 1 delivered a signal with another id, value or code");
    if (wrong2) return fail("timer 2 delivered a signal with another id or value, or to another thread");

    struct itimerspec left;
    if (timer_gettime(timer3, &left) != 0) return fail("timer_gettime(3)");
    if (left.it_interval.tv_sec != 1000 || left.it_value.tv_sec < 900 || left.it_value.tv_sec > 1000) {
        printf("FAIL timer 3 has %ld s left and interval %ld s\n", (long)left.it_value.tv_sec, (long)left.it_interval.tv_sec);
        return 1;
    }
    if (timer_gettime(t0, &left) != -1 || errno != EINVAL) return fail("deleted timer 0 exists");
    printf("PASS\n");
    return 0;
}
