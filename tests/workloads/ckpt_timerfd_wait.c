/* Checkpoint workload for a timerfd's time left (issue 11): arms a relative CLOCK_MONOTONIC timerfd
 * (fd 3) for the number of milliseconds given (default 4000), prints READY, and blocks in read() on
 * it. When it fires it prints "FIRED <ticks>" and PASS if exactly one expiration was counted. The
 * test checkpoints it part way, keeps it down, restores it, and times the rest of the wait. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/timerfd.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    long ms = argc > 1 ? atol(argv[1]) : 4000;
    if (timerfd_create(CLOCK_MONOTONIC, 0) != 3) { printf("FAIL timerfd is not fd 3\n"); return 1; }
    struct itimerspec value = { .it_value = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L } };
    if (timerfd_settime(3, 0, &value, NULL) != 0) { printf("FAIL timerfd_settime (errno %d)\n", errno); return 1; }
    printf("READY %d\n", getpid());
    uint64_t ticks = 0;
    ssize_t n;
    do n = read(3, &ticks, sizeof ticks); while (n < 0 && errno == EINTR);
    printf("FIRED %llu\n", (unsigned long long)ticks);
    printf(n == sizeof ticks && ticks == 1 ? "PASS\n" : "FAIL read %zd ticks %llu\n", n, (unsigned long long)ticks);
    return 0;
}
