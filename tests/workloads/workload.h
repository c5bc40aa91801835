/*
 * What the C workloads share: how they report a failed call and how they wait.
 * Every workload prints READY when set up and PASS or FAIL after it checked itself; a FAIL line names the
 * call that failed and its errno, so a failing test's output says what went wrong in the restored process.
 */
#ifndef CKPT_WORKLOAD_H
#define CKPT_WORKLOAD_H

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>

/* Reports a failed call with its errno; returns 1, the workload's exit status. */
static inline int fail(const char *what)
{
    printf("FAIL %s (errno %d)\n", what, errno);
    fflush(stdout);
    return 1;
}

/* The same for a workload of several processes: `who` names the process (root, child, ...). */
static inline int fail_in(const char *who, const char *what)
{
    printf("FAIL %s %s (errno %d)\n", who, what, errno);
    fflush(stdout);
    return 1;
}

static inline void sleep_ms(long ms)
{
    struct timespec tick = { ms / 1000, (ms % 1000) * 1000 * 1000 };
    nanosleep(&tick, NULL);
}

/* For a socket whose queued messages were all received: nothing more may be there. */
static inline int expect_queue_empty(int fd)
{
    char c;
    if (recv(fd, &c, 1, MSG_DONTWAIT) != -1 || errno != EAGAIN) {
        printf("FAIL fd %d has more queued than was sent\n", fd);
        return 1;
    }
    return 0;
}

/* SIGUSR1 is how a test tells a restored workload to check itself; a workload installs on_usr1 for it. */
static volatile sig_atomic_t got_usr1 __attribute__((unused));
static inline void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

#endif
