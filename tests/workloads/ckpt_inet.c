/* Checkpoint workload for TCP and UDP sockets (issue 12), loopback only.
 *   fd 3  TCP listening on 127.0.0.1 (ephemeral port), backlog 5, SO_REUSEADDR, TCP_NODELAY,
 *         SO_KEEPALIVE with TCP_KEEPIDLE 77, TCP_KEEPINTVL 11, TCP_KEEPCNT 4
 *   fd 4  TCP listening on [::1] (ephemeral port), backlog 9, IPV6_V6ONLY, SO_REUSEPORT, O_NONBLOCK
 *   fd 5  UDP bound to 127.0.0.1 (ephemeral port)
 *   fd 6  UDP on [::1] connected to [::1]:9 (bound to an ephemeral port by the connect)
 * Prints "PORTS <tcp4> <tcp6> <udp4>" and "READY <pid>", waits for SIGUSR1, checks every address and
 * option, prints LISTENING, then accepts one connection on fd 3 and on fd 4 (each sends "ping", gets
 * "pong") and receives one datagram "hello" on fd 5, answering "olleh" to its sender; PASS or FAIL. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "workload.h"

static int option(int fd, int level, int name)
{
    int value = -1;
    socklen_t length = sizeof value;
    getsockopt(fd, level, name, &value, &length);
    return value;
}

static int set(int fd, int level, int name, int value) { return setsockopt(fd, level, name, &value, sizeof value); }

static int port_of(int fd)
{
    struct sockaddr_in6 a;
    socklen_t length = sizeof a;
    if (getsockname(fd, (struct sockaddr *)&a, &length)) return -1;
    return ntohs(a.sin6_port); /* same offset in sockaddr_in */
}

static int serve_one(int listener)
{
    struct pollfd p = { .fd = listener, .events = POLLIN };
    if (poll(&p, 1, 60000) != 1) return fail("no connection within 60 s");
    int connection = accept(listener, NULL, NULL);
    if (connection < 0) return fail("accept");
    char buffer[8] = {0};
    if (recv(connection, buffer, 4, MSG_WAITALL) != 4 || memcmp(buffer, "ping", 4) != 0) return fail("no ping");
    if (send(connection, "pong", 4, 0) != 4) return fail("pong");
    close(connection);
    return 0;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);

    struct sockaddr_in v4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    struct sockaddr_in6 v6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
    if (socket(AF_INET, SOCK_STREAM, 0) != 3 || set(3, SOL_SOCKET, SO_REUSEADDR, 1) || set(3, IPPROTO_TCP, TCP_NODELAY, 1)
        || set(3, SOL_SOCKET, SO_KEEPALIVE, 1) || set(3, IPPROTO_TCP, TCP_KEEPIDLE, 77) || set(3, IPPROTO_TCP, TCP_KEEPINTVL, 11)
        || set(3, IPPROTO_TCP, TCP_KEEPCNT, 4) || bind(3, (struct sockaddr *)&v4, sizeof v4) || listen(3, 5))
        return fail("TCP listener on fd 3");
    if (socket(AF_INET6, SOCK_STREAM, 0) != 4 || set(4, IPPROTO_IPV6, IPV6_V6ONLY, 1) || set(4, SOL_SOCKET, SO_REUSEPORT, 1)
        || bind(4, (struct sockaddr *)&v6, sizeof v6) || listen(4, 9) || fcntl(4, F_SETFL, O_NONBLOCK))
        return fail("TCP listener on fd 4");
    if (socket(AF_INET, SOCK_DGRAM, 0) != 5 || bind(5, (struct sockaddr *)&v4, sizeof v4)) return fail("UDP socket on fd 5");
    struct sockaddr_in6 discard = v6;
    discard.sin6_port = htons(9);
    if (socket(AF_INET6, SOCK_DGRAM, 0) != 6 || connect(6, (struct sockaddr *)&discard, sizeof discard)) return fail("UDP socket on fd 6");
    int ports[4] = { port_of(3), port_of(4), port_of(5), port_of(6) };

    printf("PORTS %d %d %d\n", ports[0], ports[1], ports[2]);
    printf("READY %d\n", getpid());
    while (!got_usr1) pause();

    for (int fd = 3; fd <= 6; fd++)
        if (port_of(fd) != ports[fd - 3]) { printf("FAIL fd %d is on port %d, was %d\n", fd, port_of(fd), ports[fd - 3]); return 1; }
    if (option(3, SOL_SOCKET, SO_REUSEADDR) != 1 || option(3, IPPROTO_TCP, TCP_NODELAY) != 1 || option(3, SOL_SOCKET, SO_KEEPALIVE) != 1
        || option(3, IPPROTO_TCP, TCP_KEEPIDLE) != 77 || option(3, IPPROTO_TCP, TCP_KEEPINTVL) != 11 || option(3, IPPROTO_TCP, TCP_KEEPCNT) != 4)
        return fail("fd 3 options");
    if (option(4, IPPROTO_IPV6, IPV6_V6ONLY) != 1 || option(4, SOL_SOCKET, SO_REUSEPORT) != 1 || !(fcntl(4, F_GETFL) & O_NONBLOCK))
        return fail("fd 4 options");
    if (option(3, SOL_SOCKET, SO_ACCEPTCONN) != 1 || option(4, SOL_SOCKET, SO_ACCEPTCONN) != 1) return fail("not listening");
    struct sockaddr_in6 peer;
    socklen_t length = sizeof peer;
    if (getpeername(6, (struct sockaddr *)&peer, &length) || ntohs(peer.sin6_port) != 9) return fail("fd 6 is not connected to [::1]:9");

    printf("LISTENING\n");
    if (serve_one(3) || serve_one(4)) return 1;
    char buffer[16] = {0};
    struct sockaddr_in from;
    length = sizeof from;
    struct pollfd p = { .fd = 5, .events = POLLIN };
    if (poll(&p, 1, 60000) != 1 || recvfrom(5, buffer, sizeof buffer, 0, (struct sockaddr *)&from, &length) != 5 || memcmp(buffer, "hello", 5) != 0)
        return fail("no UDP hello");
    if (sendto(5, "olleh", 5, 0, (struct sockaddr *)&from, length) != 5) return fail("UDP answer");
    printf("PASS\n");
    return 0;
}
