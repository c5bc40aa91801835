/* Checkpoint workload: a pipe between a parent and its child, with bytes in flight.
 *
 * The root (this process) makes a pipe of 128 KiB (F_SETPIPE_SZ), forks a child that keeps only the
 * read end (made O_NONBLOCK) and keeps only the write end itself. It writes records 0 .. 999 (8-byte
 * little-endian counters); the child reads the first 100 of them, then waits. Once the other 900
 * (7200 bytes) sit in the pipe, the root prints "CHILD <pid>" and "READY <pid>" and waits for
 * SIGUSR1.
 * On SIGUSR1 the root signals the child, writes records 1000 .. 2999 and closes its end. The child
 * checks that its end is still O_NONBLOCK in a pipe of 128 KiB, makes it blocking, reads to EOF and
 * checks that the records it got are exactly 100 .. 2999 in order (nothing lost, nothing twice);
 * it exits 0, or prints "FAIL child <what>" and exits 1. The root checks the child's exit status and
 * prints PASS or FAIL <what>. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "workload.h"

#define PIPE_SIZE (128 * 1024)
#define BEFORE 1000
#define READ_BEFORE 100
#define TOTAL 3000

static void wait_for_usr1(void)
{
    struct timespec tick = { 0, 10 * 1000 * 1000 };
    while (!got_usr1) nanosleep(&tick, NULL);
}

static int write_records(int fd, uint64_t from, uint64_t to)
{
    for (uint64_t i = from; i < to; i++)
        if (write(fd, &i, sizeof i) != sizeof i) return -1;
    return 0;
}

static int read_record(int fd, uint64_t *value)
{
    size_t done = 0;
    while (done < sizeof *value)
    {
        ssize_t got = read(fd, (char *)value + done, sizeof *value - done);
        if (got == 0) return 0;
        if (got < 0) return -1;
        done += (size_t)got;
    }
    return 1;
}

static int child(int fd)
{
    uint64_t value, expected = 0;
    for (; expected < READ_BEFORE; expected++)
        if (read_record(fd, &value) != 1 || value != expected) return fail_in("child", "a record before the checkpoint");
    if (fcntl(fd, F_SETFL, O_NONBLOCK) != 0) return fail_in("child", "F_SETFL O_NONBLOCK");
    wait_for_usr1();
    if (!(fcntl(fd, F_GETFL) & O_NONBLOCK)) return fail_in("child", "its end lost O_NONBLOCK");
    if (fcntl(fd, F_GETPIPE_SZ) != PIPE_SIZE) return fail_in("child", "the pipe lost its size");
    if (fcntl(fd, F_SETFL, 0) != 0) return fail_in("child", "F_SETFL 0");
    int got;
    while ((got = read_record(fd, &value)) == 1)
    {
        if (value != expected)
        {
            printf("FAIL child record %llu where %llu was expected\n", (unsigned long long)value, (unsigned long long)expected);
            fflush(stdout);
            return 1;
        }
        expected++;
    }
    if (got < 0) return fail_in("child", "read");
    if (expected != TOTAL)
    {
        printf("FAIL child EOF after record %llu, not %d\n", (unsigned long long)expected, TOTAL);
        fflush(stdout);
        return 1;
    }
    return 0;
}

int main(void)
{
    signal(SIGUSR1, on_usr1);
    int ends[2];
    if (pipe(ends) != 0) return fail_in("root", "pipe");
    if (fcntl(ends[1], F_SETPIPE_SZ, PIPE_SIZE) != PIPE_SIZE) return fail_in("root", "F_SETPIPE_SZ");
    pid_t pid = fork();
    if (pid < 0) return fail_in("root", "fork");
    if (pid == 0)
    {
        close(ends[1]);
        return child(ends[0]);
    }
    close(ends[0]);
    if (write_records(ends[1], 0, BEFORE) != 0) return fail_in("root", "write before the checkpoint");
    int buffered = 0;
    for (int i = 0; i < 6000 && buffered != (BEFORE - READ_BEFORE) * 8; i++)
    {
        usleep(10000);
        if (ioctl(ends[1], FIONREAD, &buffered) != 0) return fail_in("root", "FIONREAD");
    }
    if (buffered != (BEFORE - READ_BEFORE) * 8) return fail_in("root", "the child never read its first records");
    printf("CHILD %d\nREADY %d\n", pid, getpid());
    fflush(stdout);
    wait_for_usr1();
    if (kill(pid, SIGUSR1) != 0) return fail_in("root", "kill of the child");
    if (write_records(ends[1], BEFORE, TOTAL) != 0) return fail_in("root", "write after the checkpoint");
    close(ends[1]);
    int status;
    if (waitpid(pid, &status, 0) != pid) return fail_in("root", "waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return fail_in("root", "the child failed");
    printf("PASS\n");
    fflush(stdout);
    return 0;
}
