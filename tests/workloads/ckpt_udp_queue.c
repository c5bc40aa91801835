/* Checkpoint workload for UDP datagrams queued with their sources (issue 12). Optional argument "outside":
 * a fifth datagram, "outside", sent to fd 3 by the test from its own socket, is expected last on fd 3.
 *   fd 3  IPv4 receiver on 127.0.0.1 with, in order: "alpha" from fd 5, "from-closed" from a socket closed
 *         since (its port is free at the checkpoint), "" (zero length) from fd 5, 40000 bytes from fd 5
 *   fd 4  IPv6 receiver on ::1 with "six1" from fd 6, "gone6" from a closed socket, "six22" from fd 6
 *   fd 5  IPv4 sender on 127.0.0.1, fd 6 IPv6 sender on ::1 (both stay open: the restore sends from them)
 *   fd 7  IPv4 receiver with "before-connect" from a closed socket and "peer" from fd 5, then connected to fd 5
 * Prints "PORTS <fd 3's port> <fd 4's port>" and "READY <pid>", waits for SIGUSR1, then reads every queue
 * (recvfrom: same bytes, same boundaries, same source addresses, nothing more), checks fd 7's peer, sends
 * one more datagram from fd 5 to fd 3 and reads it, and prints PASS or FAIL <what>. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "workload.h"

static char big[40000];

/* A socket of FAMILY bound to loopback, port chosen by the kernel; its address in *A. */
static int bound(int family, struct sockaddr_storage *a)
{
    int fd = socket(family, SOCK_DGRAM, 0);
    memset(a, 0, sizeof *a);
    socklen_t length = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if (family == AF_INET) { struct sockaddr_in *v4 = (void *)a; v4->sin_family = AF_INET; v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK); }
    else { struct sockaddr_in6 *v6 = (void *)a; v6->sin6_family = AF_INET6; v6->sin6_addr = in6addr_loopback; }
    if (fd < 0 || bind(fd, (struct sockaddr *)a, length) || getsockname(fd, (struct sockaddr *)a, &length)) return -1;
    return fd;
}

static socklen_t size_of(const struct sockaddr_storage *a) { return a->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6); }

static int send_to(int from, const void *data, size_t length, const struct sockaddr_storage *to)
{
    return sendto(from, data, length, 0, (const struct sockaddr *)to, size_of(to)) == (ssize_t)length ? 0 : -1;
}

/* From a fresh socket, closed at once; its address in *FROM. */
static int send_closed(int family, const char *data, const struct sockaddr_storage *to, struct sockaddr_storage *from)
{
    int fd = bound(family, from);
    if (fd < 0 || send_to(fd, data, strlen(data), to)) return -1;
    return close(fd);
}

/* The next datagram of FD must be LENGTH bytes of DATA from address FROM (NULL: any). */
static int expect(int fd, const void *data, size_t length, const struct sockaddr_storage *from, const char *what)
{
    static char buffer[65536];
    struct sockaddr_storage source;
    socklen_t source_length = sizeof source;
    ssize_t got = recvfrom(fd, buffer, sizeof buffer, MSG_DONTWAIT, (struct sockaddr *)&source, &source_length);
    if (got != (ssize_t)length || memcmp(buffer, data, length) != 0) { printf("FAIL %s: got %zd bytes\n", what, got); return 1; }
    if (from != NULL && (source_length != size_of(from) || memcmp(&source, from, source_length) != 0)) { printf("FAIL %s: source differs\n", what); return 1; }
    return 0;
}

static int expect_empty(int fd, const char *what)
{
    char byte;
    if (recv(fd, &byte, 1, MSG_DONTWAIT) >= 0 || errno != EAGAIN) { printf("FAIL %s: more datagrams queued\n", what); return 1; }
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int outside = argc > 1 && strcmp(argv[1], "outside") == 0;
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);
    memset(big, 'b', sizeof big);
    big[0] = 'B';
    big[sizeof big - 1] = 'E';
    struct sockaddr_storage r4, r6, s4, s6, r7, closed1, closed2, closed3;
    if (bound(AF_INET, &r4) != 3 || bound(AF_INET6, &r6) != 4 || bound(AF_INET, &s4) != 5 || bound(AF_INET6, &s6) != 6 || bound(AF_INET, &r7) != 7)
        return fail("sockets on fds 3 to 7");
    if (send_to(5, "alpha", 5, &r4) || send_closed(AF_INET, "from-closed", &r4, &closed1) || send_to(5, "", 0, &r4) || send_to(5, big, sizeof big, &r4))
        return fail("datagrams to fd 3");
    if (send_to(6, "six1", 4, &r6) || send_closed(AF_INET6, "gone6", &r6, &closed2) || send_to(6, "six22", 5, &r6))
        return fail("datagrams to fd 4");
    if (send_closed(AF_INET, "before-connect", &r7, &closed3) || send_to(5, "peer", 4, &r7) || connect(7, (struct sockaddr *)&s4, size_of(&s4)))
        return fail("datagrams to fd 7, then its connect");
    usleep(20000); /* loopback delivery */
    printf("PORTS %d %d\n", ntohs(((struct sockaddr_in *)&r4)->sin_port), ntohs(((struct sockaddr_in6 *)&r6)->sin6_port));
    printf("READY %d\n", getpid());
    while (!got_usr1) pause();

    if (expect(3, "alpha", 5, &s4, "fd 3 datagram 1") || expect(3, "from-closed", 11, &closed1, "fd 3 datagram 2")
        || expect(3, "", 0, &s4, "fd 3 datagram 3 (zero length)") || expect(3, big, sizeof big, &s4, "fd 3 datagram 4 (40000 bytes)"))
        return 1;
    if (outside && expect(3, "outside", 7, NULL, "fd 3 datagram 5 (from the test)")) return 1;
    if (expect_empty(3, "fd 3")) return 1;
    if (expect(4, "six1", 4, &s6, "fd 4 datagram 1") || expect(4, "gone6", 5, &closed2, "fd 4 datagram 2") || expect(4, "six22", 5, &s6, "fd 4 datagram 3")
        || expect_empty(4, "fd 4"))
        return 1;
    if (expect(7, "before-connect", 14, &closed3, "fd 7 datagram 1") || expect(7, "peer", 4, &s4, "fd 7 datagram 2") || expect_empty(7, "fd 7")) return 1;
    struct sockaddr_storage peer;
    socklen_t length = sizeof peer;
    if (getpeername(7, (struct sockaddr *)&peer, &length) || length != size_of(&s4) || memcmp(&peer, &s4, length) != 0) return fail("fd 7's peer");
    if (send_to(5, "live", 4, &r4)) return fail("a new datagram");
    usleep(20000);
    if (expect(3, "live", 4, &s4, "fd 3 after restore")) return 1;
    printf("PASS\n");
    return 0;
}
