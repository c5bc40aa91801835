/* Checkpoint workload for unix socketpairs (issue 12). Holds:
 *   fd 3, 4  stream pair: 70000 patterned bytes queued at fd 3 (sent by 4 in three writes), "back"
 *            queued at fd 4; fd 4 then shut down for writing (fd 3 reads the bytes, then EOF);
 *            fd 3 SO_RCVBUF 300000 asked
 *   fd 5, 6  seqpacket pair: "a", "" (empty), "ccc" queued at fd 5, "xyz" at fd 6; fd 5 SO_RCVTIMEO 2.5 s
 *   fd 7, 8  datagram pair: "one", "two-two", "" queued at fd 7, "back" at fd 8; fd 7 SO_PASSCRED,
 *            fd 8 O_NONBLOCK
 * Prints READY, waits for SIGUSR1, then reads every queue (boundaries checked, nothing more), checks
 * the options, the shutdown state, and that each pair still talks both ways; prints PASS or FAIL. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include "workload.h"

#define BIG 70000

static unsigned char pattern(int i) { return (unsigned char)(i * 7 + i / 251); }

static int pair(int type, int want)
{
    int sv[2];
    if (socketpair(AF_UNIX, type, 0, sv) != 0 || sv[0] != want || sv[1] != want + 1) return -1;
    return 0;
}

/* the next message of a datagram/seqpacket socket must be exactly `text` */
static int expect_message(int fd, const char *text)
{
    char buffer[256];
    ssize_t n = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n != (ssize_t)strlen(text) || memcmp(buffer, text, n) != 0) {
        printf("FAIL fd %d: message of %zd bytes where \"%s\" was queued (errno %d)\n", fd, n, text, errno);
        return 1;
    }
    return 0;
}

static int talks(int a, int b)
{
    char c = 0;
    if (send(a, "!", 1, 0) != 1 || recv(b, &c, 1, 0) != 1 || c != '!') return 0;
    return 1;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);

    if (pair(SOCK_STREAM, 3) || pair(SOCK_SEQPACKET, 5) || pair(SOCK_DGRAM, 7)) return fail("socketpairs are not fds 3-8");
    int rcvbuf = 300000, one = 1;
    struct timeval timeout = { 2, 500000 };
    if (setsockopt(3, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) || setsockopt(5, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout)
        || setsockopt(7, SOL_SOCKET, SO_PASSCRED, &one, sizeof one)) return fail("setsockopt");
    if (fcntl(8, F_SETFL, O_NONBLOCK) != 0) return fail("O_NONBLOCK on fd 8");

    static unsigned char big[BIG];
    for (int i = 0; i < BIG; i++) big[i] = pattern(i);
    if (write(4, big, 30000) != 30000 || write(4, big + 30000, 30000) != 30000 || write(4, big + 60000, BIG - 60000) != BIG - 60000)
        return fail("stream writes");
    if (write(3, "back", 4) != 4 || shutdown(4, SHUT_WR) != 0) return fail("stream back or shutdown");
    if (send(6, "a", 1, 0) != 1 || send(6, "", 0, 0) != 0 || send(6, "ccc", 3, 0) != 3 || send(5, "xyz", 3, 0) != 3) return fail("seqpacket sends");
    if (send(8, "one", 3, 0) != 3 || send(8, "two-two", 7, 0) != 7 || send(8, "", 0, 0) != 0 || send(7, "back", 4, 0) != 4) return fail("datagram sends");

    printf("READY %d\n", getpid());
    while (!got_usr1) pause();

    /* stream: the bytes in order, then EOF (fd 4 shut down for writing) */
    static unsigned char got[BIG + 16];
    size_t have = 0;
    for (;;) {
        ssize_t n = recv(3, got + have, sizeof got - have, MSG_DONTWAIT);
        if (n == 0) break;
        if (n < 0) return fail("stream read of fd 3 (no EOF after the data)");
        have += n;
    }
    if (have != BIG || memcmp(got, big, BIG) != 0) { printf("FAIL fd 3 read %zu bytes, %d were queued (or they differ)\n", have, BIG); return 1; }
    char back[8] = {0};
    if (recv(4, back, sizeof back, MSG_DONTWAIT) != 4 || memcmp(back, "back", 4) != 0) return fail("fd 4 queue");
    if (expect_queue_empty(4)) return 1;
    if (send(4, "x", 1, MSG_NOSIGNAL) != -1 || errno != EPIPE) return fail("fd 4 can write after shutdown(SHUT_WR)");

    if (expect_message(5, "a") || expect_message(5, "") || expect_message(5, "ccc") || expect_queue_empty(5)) return 1;
    if (expect_message(6, "xyz") || expect_queue_empty(6)) return 1;
    if (expect_message(7, "one") || expect_message(7, "two-two") || expect_message(7, "") || expect_queue_empty(7)) return 1;
    if (expect_message(8, "back") || expect_queue_empty(8)) return 1;

    int value = 0;
    socklen_t length = sizeof value;
    if (getsockopt(3, SOL_SOCKET, SO_RCVBUF, &value, &length) || value != 2 * rcvbuf) { printf("FAIL fd 3 SO_RCVBUF %d\n", value); return 1; }
    length = sizeof value;
    if (getsockopt(7, SOL_SOCKET, SO_PASSCRED, &value, &length) || value != 1) return fail("fd 7 lost SO_PASSCRED");
    struct timeval got_timeout;
    length = sizeof got_timeout;
    if (getsockopt(5, SOL_SOCKET, SO_RCVTIMEO, &got_timeout, &length) || got_timeout.tv_sec != 2 || got_timeout.tv_usec != 500000) return fail("fd 5 SO_RCVTIMEO");
    if (!(fcntl(8, F_GETFL) & O_NONBLOCK) || (fcntl(7, F_GETFL) & O_NONBLOCK)) return fail("O_NONBLOCK of fd 7/8");
    int type = 0;
    length = sizeof type;
    if (getsockopt(5, SOL_SOCKET, SO_TYPE, &type, &length) || type != SOCK_SEQPACKET) return fail("fd 5 is not seqpacket");

    if (!talks(3, 4) || !talks(5, 6) || !talks(6, 5) || !talks(7, 8) || !talks(8, 7)) return fail("a pair does not talk");

    printf("PASS\n");
    return 0;
}
