/* Checkpoint workload for descriptors in flight (SCM_RIGHTS) in unix socket queues (issue 12).
 * argv[1]: a regular file it creates ("0123456789abcdefghij"). Holds:
 *   fd 3, 4  stream pair, queued at fd 3 (sent by fd 4): "plain-before"; "F" carrying the file opened at
 *            offset 5 (closed here since: only in flight); "P" carrying the write end of a pipe (closed here:
 *            the read end is kept) and an eventfd with count 3 that is kept here too; "plain-after"
 *   fd 5, 6  datagram pair, queued at fd 5 (sent by fd 6): "d1"; "d2" carrying the file opened again at
 *            offset 9 (only in flight); "d3" carrying a second eventfd with count 7 (only in flight)
 *   fd 7     the pipe's read end; fd 9 the eventfd that is in flight too
 * argv[2] = "memfd": instead, queued at fd 3 is "M" carrying a memfd named ckpt-in-flight-PID holding "memfd", closed
 *   here (only in flight: a kind a checkpoint refuses in flight).
 * Prints READY, waits for SIGUSR1, then receives every message and checks its bytes, boundaries and descriptors: the
 * file at the right offset, the pipe (a write through the received end comes out of fd 7), the eventfd shared with
 * fd 9 (one counter); prints PASS or FAIL. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "workload.h"

static int send_with(int fd, const char *text, const int *fds, int count)
{
    struct iovec iov = { (void *)text, strlen(text) };
    char control[CMSG_SPACE(4 * sizeof(int))] = { 0 };
    struct msghdr message = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (count > 0) {
        message.msg_control = control;
        message.msg_controllen = CMSG_SPACE(count * sizeof(int));
        struct cmsghdr *header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(count * sizeof(int));
        memcpy(CMSG_DATA(header), fds, count * sizeof(int));
    }
    return sendmsg(fd, &message, MSG_DONTWAIT) == (ssize_t)strlen(text) ? 0 : -1;
}

/* the next message must be `text` with exactly `count` descriptors, returned in fds */
static int receive(int fd, const char *text, int *fds, int count)
{
    char buffer[256], control[CMSG_SPACE(8 * sizeof(int))];
    struct iovec iov = { buffer, sizeof buffer };
    struct msghdr message = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control };
    ssize_t n = recvmsg(fd, &message, MSG_DONTWAIT);
    int got = 0;
    for (struct cmsghdr *h = CMSG_FIRSTHDR(&message); n >= 0 && h; h = CMSG_NXTHDR(&message, h))
        if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
            int here = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (int i = 0; i < here; i++, got++) if (got < count) memcpy(&fds[got], CMSG_DATA(h) + i * sizeof(int), sizeof(int));
        }
    if (n != (ssize_t)strlen(text) || memcmp(buffer, text, n) != 0 || got != count || (message.msg_flags & MSG_CTRUNC)) {
        printf("FAIL fd %d: received %zd bytes \"%.*s\" with %d descriptors where \"%s\" with %d was queued (errno %d)\n",
               fd, n, n > 0 ? (int)n : 0, buffer, got, text, count, errno);
        return 1;
    }
    return 0;
}

static int file_at(int fd, const char *expected, const char *what)
{
    char buffer[8] = { 0 };
    if (read(fd, buffer, 3) != 3 || memcmp(buffer, expected, 3) != 0) {
        printf("FAIL %s: read \"%s\" where \"%s\" was at its offset (errno %d)\n", what, buffer, expected, errno);
        return 1;
    }
    return 0;
}

static int counter_is(int fd, uint64_t expected, const char *what)
{
    uint64_t value = 0;
    if (read(fd, &value, sizeof value) != sizeof value || value != expected) {
        printf("FAIL %s: eventfd count %llu where %llu was expected (errno %d)\n", what, (unsigned long long)value, (unsigned long long)expected, errno);
        return 1;
    }
    return 0;
}

static int check_memfd_mode(void)
{
    int fds[1];
    char buffer[8] = { 0 };
    if (receive(3, "M", fds, 1) || pread(fds[0], buffer, 5, 0) != 5 || strcmp(buffer, "memfd") != 0) return fail("the memfd in flight");
    return expect_queue_empty(3);
}

static int check(void)
{
    int fds[2];
    int bad = receive(3, "plain-beforeF", fds, 1);
    if (!bad) bad |= file_at(fds[0], "567", "the file in flight on the stream");
    if (!bad) bad |= receive(3, "P", fds, 2);
    if (!bad) {
        if (write(fds[0], "through", 7) != 7) return fail("a write through the pipe end in flight");
        close(fds[0]); /* the last write end: fd 7 then reads to the end */
        char buffer[16] = { 0 };
        if (read(7, buffer, sizeof buffer) != 7 || strcmp(buffer, "through") != 0 || read(7, buffer, 1) != 0) return fail("the pipe read end fd 7");
        uint64_t one = 1;
        if (write(fds[1], &one, sizeof one) != sizeof one) return fail("a write to the eventfd in flight");
        bad |= counter_is(9, 4, "fd 9, the eventfd in flight too");
    }
    if (!bad) bad |= receive(3, "plain-after", fds, 0) | expect_queue_empty(3);
    if (!bad) bad |= receive(5, "d1", fds, 0) | receive(5, "d2", fds, 1);
    if (!bad) bad |= file_at(fds[0], "9ab", "the file in flight in a datagram");
    if (!bad) bad |= receive(5, "d3", fds, 1);
    if (!bad) bad |= counter_is(fds[0], 7, "the eventfd only in flight") | expect_queue_empty(5);
    return bad;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);
    if (argc < 2) return fail("usage: ckpt_scm_rights FILE [socket]");
    int memfd_mode = argc > 2 && strcmp(argv[2], "memfd") == 0;

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) || sv[0] != 3 || socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) || sv[0] != 5)
        return fail("socketpairs are not fds 3-6");
    if (memfd_mode) {
        char name[64];
        snprintf(name, sizeof name, "ckpt-in-flight-%d", getpid());
        int memfd = memfd_create(name, 0);
        if (memfd < 0 || write(memfd, "memfd", 5) != 5 || send_with(4, "M", &memfd, 1) || close(memfd)) return fail("sending a memfd in flight");
    } else {
        int pipe_ends[2];
        if (pipe(pipe_ends) || pipe_ends[0] != 7) return fail("the pipe's read end is not fd 7");
        int shared = eventfd(3, 0), alone = eventfd(7, 0);
        if (shared != 9) return fail("the eventfd is not fd 9");
        int file = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
        if (file < 0 || write(file, "0123456789abcdefghij", 20) != 20 || lseek(file, 5, SEEK_SET) != 5) return fail("the file");
        if (send(4, "plain-before", 12, MSG_DONTWAIT) != 12 || send_with(4, "F", (int[]){ file }, 1)
            || send_with(4, "P", (int[]){ pipe_ends[1], shared }, 2) || send(4, "plain-after", 11, MSG_DONTWAIT) != 11)
            return fail("sending on the stream pair");
        close(file);
        close(pipe_ends[1]);
        int again = open(argv[1], O_RDONLY);
        if (again < 0 || lseek(again, 9, SEEK_SET) != 9) return fail("the file opened again");
        if (send(6, "d1", 2, MSG_DONTWAIT) != 2 || send_with(6, "d2", (int[]){ again }, 1) || send_with(6, "d3", (int[]){ alone }, 1))
            return fail("sending on the datagram pair");
        close(again);
        close(alone);
    }

    printf("READY %d\n", getpid());
    while (!got_usr1) pause();
    if (memfd_mode ? check_memfd_mode() : check()) return 1;
    printf("PASS\n");
    return 0;
}
