/* Checkpoint workload for event-loop descriptors (issue 11). Holds:
 *   fd 3, 4  a pipe (read end nonblocking, write end blocking), 128 KiB, "hello pipe" in flight
 *   fd 5     eventfd(0, EFD_NONBLOCK) with counter 7
 *   fd 6     timerfd CLOCK_MONOTONIC, relative, 2 s, one-shot
 *   fd 7     epoll: fd 5 EPOLLIN data 0xdeadbeef00000005, fd 3 EPOLLIN|EPOLLET data 3,
 *            fd 6 EPOLLIN|EPOLLONESHOT data 6
 *   fd 8     epoll (close-on-exec) watching epoll fd 7 for EPOLLIN, data 0x77
 *   fd 9     signalfd(SIGUSR2, SFD_NONBLOCK), SIGUSR2 blocked and pending
 *   fd 10    timerfd CLOCK_MONOTONIC, expired once, unread (ticks 1)
 *   fd 11    timerfd CLOCK_REALTIME, TFD_TIMER_ABSTIME, one hour ahead
 *   fd 15, 16  a second pipe, write end below read end (restored the other way round), "second" in it
 *   fd 12    epoll with nothing to watch; with the argument "closed" it watches the eventfd through
 *            fd 20, since closed; with "reused", fd 20 is /dev/null now (both refused at checkpoint)
 * Prints READY, waits for SIGUSR1, then checks (PASS or FAIL <what>): the outer epoll reports the
 * inner one, the inner one reports the eventfd, the pipe and (once it fires) the timer with their
 * data; the pipe holds its bytes, size and flags; the signalfd reads SIGUSR2; the expired timer
 * gives 1 tick; the absolute timer keeps its absolute expiry. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include "workload.h"

static int add(int epfd, int fd, uint32_t events, uint64_t data)
{
    struct epoll_event e = { .events = events, .data.u64 = data };
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e);
}

static const char message[] = "hello pipe";
static int watch_mode; /* 1: epoll fd 12 watches a closed fd 20; 2: fd 20 reused by /dev/null */
static time_t realtime_expiry;

static int setup(void)
{
    int p[2];
    if (pipe2(p, 0) != 0 || p[0] != 3 || p[1] != 4) return fail("pipe is not fds 3, 4");
    if (fcntl(3, F_SETFL, O_NONBLOCK) != 0) return fail("O_NONBLOCK on the read end");
    if (fcntl(3, F_SETPIPE_SZ, 128 * 1024) != 128 * 1024) return fail("F_SETPIPE_SZ");
    if (write(4, message, sizeof message) != sizeof message) return fail("write to the pipe");
    if (eventfd(0, EFD_NONBLOCK) != 5) return fail("eventfd is not fd 5");
    uint64_t seven = 7;
    if (write(5, &seven, sizeof seven) != sizeof seven) return fail("write to the eventfd");
    if (timerfd_create(CLOCK_MONOTONIC, 0) != 6) return fail("timerfd is not fd 6");
    struct itimerspec two = { .it_value = { .tv_sec = 2 } };
    if (timerfd_settime(6, 0, &two, NULL) != 0) return fail("timerfd_settime 2 s");
    if (epoll_create1(0) != 7) return fail("epoll is not fd 7");
    if (add(7, 5, EPOLLIN, 0xdeadbeef00000005ull) || add(7, 3, EPOLLIN | EPOLLET, 3) || add(7, 6, EPOLLIN | EPOLLONESHOT, 6))
        return fail("epoll_ctl on fd 7");
    if (epoll_create1(EPOLL_CLOEXEC) != 8) return fail("epoll is not fd 8");
    if (add(8, 7, EPOLLIN, 0x77)) return fail("epoll_ctl on fd 8");
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    sigprocmask(SIG_BLOCK, &usr2, NULL);
    if (signalfd(-1, &usr2, SFD_NONBLOCK) != 9) return fail("signalfd is not fd 9");
    kill(getpid(), SIGUSR2);
    if (timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK) != 10) return fail("timerfd is not fd 10");
    struct itimerspec soon = { .it_value = { .tv_nsec = 1000000 } };
    if (timerfd_settime(10, 0, &soon, NULL) != 0) return fail("timerfd_settime 1 ms");
    usleep(50000);
    if (timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK) != 11) return fail("timerfd is not fd 11");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    realtime_expiry = now.tv_sec + 3600;
    struct itimerspec hour = { .it_value = { .tv_sec = realtime_expiry } };
    if (timerfd_settime(11, TFD_TIMER_ABSTIME, &hour, NULL) != 0) return fail("timerfd_settime absolute");
    if (epoll_create1(0) != 12) return fail("epoll is not fd 12");
    if (pipe2(p, O_NONBLOCK) != 0 || p[0] != 13 || dup2(p[1], 15) != 15 || dup2(p[0], 16) != 16) return fail("second pipe at fds 15, 16");
    close(13);
    close(14);
    if (write(15, "second", 6) != 6) return fail("write to the second pipe");
    if (watch_mode) {
        if (dup2(5, 20) != 20 || add(12, 20, EPOLLIN, 20) != 0) return fail("watch of fd 20");
        close(20);
        if (watch_mode == 2 && open("/dev/null", O_RDONLY) != 13) return fail("/dev/null is not fd 13");
        if (watch_mode == 2 && dup2(13, 20) != 20) return fail("dup2 of /dev/null to fd 20");
    }
    return 0;
}

static int check_pipe(void)
{
    if (!(fcntl(3, F_GETFL) & O_NONBLOCK)) return fail("pipe read end lost O_NONBLOCK");
    if (fcntl(4, F_GETFL) & O_NONBLOCK) return fail("pipe write end is nonblocking");
    if (fcntl(3, F_GETPIPE_SZ) != 128 * 1024) return fail("pipe size is not 128 KiB");
    if (fcntl(7, F_GETFD) & FD_CLOEXEC) return fail("fd 7 is close-on-exec");
    if (!(fcntl(8, F_GETFD) & FD_CLOEXEC)) return fail("fd 8 lost close-on-exec");
    char second[16];
    if ((fcntl(15, F_GETFL) & O_ACCMODE) != O_WRONLY || (fcntl(16, F_GETFL) & O_ACCMODE) != O_RDONLY) return fail("second pipe's ends");
    if (read(16, second, sizeof second) != 6 || memcmp(second, "second", 6) != 0) return fail("second pipe's bytes");
    int queued = -1;
    if (ioctl(3, FIONREAD, &queued) != 0 || queued != (int)sizeof message) { printf("FAIL the pipe holds %d bytes\n", queued); return 1; }
    return 0;
}

static int check_loop(void)
{
    struct epoll_event e[8];
    int n = epoll_wait(8, e, 8, 1000);
    if (n != 1 || e[0].data.u64 != 0x77 || e[0].events != EPOLLIN) { printf("FAIL outer epoll: %d events, data 0x%llx\n", n, n > 0 ? (unsigned long long)e[0].data.u64 : 0ull); return 1; }
    int seen_eventfd = 0, seen_pipe = 0, seen_timer = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (!(seen_eventfd && seen_pipe && seen_timer)) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec > 10) { printf("FAIL epoll loop: eventfd %d pipe %d timer %d after 10 s\n", seen_eventfd, seen_pipe, seen_timer); return 1; }
        n = epoll_wait(7, e, 8, 1000);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail("epoll_wait on fd 7");
        for (int i = 0; i < n; i++) {
            if (e[i].events != EPOLLIN) { printf("FAIL events 0x%x for data 0x%llx\n", e[i].events, (unsigned long long)e[i].data.u64); return 1; }
            uint64_t value;
            char text[64];
            switch (e[i].data.u64) {
            case 0xdeadbeef00000005ull:
                if (read(5, &value, sizeof value) != sizeof value || value != 7) return fail("eventfd counter is not 7");
                seen_eventfd++;
                break;
            case 3:
                if (read(3, text, sizeof text) != sizeof message || memcmp(text, message, sizeof message) != 0) return fail("pipe bytes");
                seen_pipe++;
                break;
            case 6:
                if (read(6, &value, sizeof value) != sizeof value || value != 1) return fail("timer fd 6 ticks");
                seen_timer++;
                break;
            default:
                printf("FAIL unknown data 0x%llx\n", (unsigned long long)e[i].data.u64);
                return 1;
            }
        }
    }
    if (seen_eventfd != 1 || seen_pipe != 1 || seen_timer != 1) { printf("FAIL events seen %d %d %d times\n", seen_eventfd, seen_pipe, seen_timer); return 1; }
    /* everything consumed, the timer was one-shot (EPOLLONESHOT too): nothing more */
    if (epoll_wait(7, e, 8, 300) != 0) return fail("fd 7 still reports events");
    if (!watch_mode && epoll_wait(12, e, 8, 0) != 0) return fail("the empty epoll reports events");
    return 0;
}

static int check_others(void)
{
    struct signalfd_siginfo info;
    if (read(9, &info, sizeof info) != sizeof info || info.ssi_signo != SIGUSR2) return fail("signalfd did not read SIGUSR2");
    if (read(9, &info, sizeof info) != -1 || errno != EAGAIN) return fail("signalfd reads a second signal");
    uint64_t ticks;
    if (read(10, &ticks, sizeof ticks) != sizeof ticks || ticks != 1) return fail("expired timer fd 10 does not give 1 tick");
    struct itimerspec left;
    struct timespec now;
    if (timerfd_gettime(11, &left) != 0) return fail("timerfd_gettime fd 11");
    clock_gettime(CLOCK_REALTIME, &now);
    long long expiry = now.tv_sec + left.it_value.tv_sec;
    if (expiry < realtime_expiry - 2 || expiry > realtime_expiry + 2) { printf("FAIL absolute timer expires at %lld, set for %lld\n", expiry, (long long)realtime_expiry); return 1; }
    if (read(11, &ticks, sizeof ticks) != -1 || errno != EAGAIN) return fail("absolute timer fd 11 has expired");
    return 0;
}

int main(int argc, char **argv)
{
    watch_mode = argc < 2 ? 0 : strcmp(argv[1], "closed") == 0 ? 1 : strcmp(argv[1], "reused") == 0 ? 2 : 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);
    if (setup() != 0) return 1;

    printf("READY %d\n", getpid());
    while (!got_usr1) pause();

    if (check_pipe() || check_loop() || check_others()) return 1;
    printf("PASS\n");
    return 0;
}
