/* Checkpoint workload for eventfds (DESIGN.md "Tests"). Holds:
 *   fd 3  eventfd(5, 0)                               counter 5
 *   fd 4  eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK)     counter 3, read one at a time
 *   fd 5  fcntl(3, F_DUPFD_CLOEXEC): a close-on-exec dup of fd 3, sharing its counter
 *   fd 6  eventfd(0, EFD_CLOEXEC) + write 0x100000005  a counter above 32 bits
 * Prints READY, waits for SIGUSR1, then checks every counter by read() (the semaphore gives 1 per
 * read, then EAGAIN), the flags with fcntl, and that fd 5 still shares fd 3's counter; prints PASS
 * or FAIL <what>. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "workload.h"

static int is_eventfd(int fd)
{
    char path[64], target[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n < 0) return 0;
    target[n] = 0;
    return strcmp(target, "anon_inode:[eventfd]") == 0;
}

static int readable(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);

    if (eventfd(5, 0) != 3) return fail("eventfd(5) is not fd 3");
    if (eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK) != 4) return fail("eventfd(3, semaphore) is not fd 4");
    if (fcntl(3, F_DUPFD_CLOEXEC, 5) != 5) return fail("dup of fd 3 is not fd 5");
    if (eventfd(0, EFD_CLOEXEC) != 6) return fail("eventfd(0) is not fd 6");
    uint64_t big = 0x100000005ull;
    if (write(6, &big, sizeof big) != sizeof big) return fail("write to fd 6");

    printf("READY %d\n", getpid());
    while (!got_usr1) pause();

    for (int fd = 3; fd <= 6; fd++)
        if (!is_eventfd(fd)) { printf("FAIL fd %d is not an eventfd\n", fd); return 1; }
    /* flags: O_NONBLOCK on the semaphore only; close-on-exec on the dup and fd 6 only */
    if (fcntl(3, F_GETFL) & O_NONBLOCK) return fail("fd 3 is nonblocking");
    if (!(fcntl(4, F_GETFL) & O_NONBLOCK)) return fail("fd 4 lost O_NONBLOCK");
    if (fcntl(3, F_GETFD) & FD_CLOEXEC) return fail("fd 3 is close-on-exec");
    if (fcntl(4, F_GETFD) & FD_CLOEXEC) return fail("fd 4 is close-on-exec");
    if (!(fcntl(5, F_GETFD) & FD_CLOEXEC)) return fail("fd 5 lost close-on-exec");
    if (!(fcntl(6, F_GETFD) & FD_CLOEXEC)) return fail("fd 6 lost close-on-exec");

    /* the dup shares the counter: add through fd 5, read everything through fd 3 */
    uint64_t value = 2;
    if (write(5, &value, sizeof value) != sizeof value) return fail("write to fd 5");
    if (read(3, &value, sizeof value) != sizeof value) return fail("read of fd 3");
    if (value != 7) { printf("FAIL fd 3 counter %llu, expected 5 + 2\n", (unsigned long long)value); return 1; }
    if (readable(5)) return fail("fd 5 is still readable after fd 3 was read: not the same eventfd");

    /* the semaphore: three reads of 1, then EAGAIN */
    for (int i = 0; i < 3; i++) {
        if (read(4, &value, sizeof value) != sizeof value) return fail("semaphore read");
        if (value != 1) { printf("FAIL semaphore read %d gave %llu\n", i, (unsigned long long)value); return 1; }
    }
    if (read(4, &value, sizeof value) != -1 || errno != EAGAIN) return fail("fourth semaphore read did not fail with EAGAIN");

    if (read(6, &value, sizeof value) != sizeof value) return fail("read of fd 6");
    if (value != big) { printf("FAIL fd 6 counter 0x%llx\n", (unsigned long long)value); return 1; }

    printf("PASS\n");
    return 0;
}
