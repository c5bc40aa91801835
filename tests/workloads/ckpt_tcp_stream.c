/* Checkpoint workload: a TCP client outside the checkpoint that never stops sending (issue 12, network lock).
 *
 *   ckpt_tcp_stream server ADDR        the checkpointed end: listens on ADDR (127.0.0.1 or ::1), port chosen by
 *                                      the kernel ("PORT p"), accepts one connection, reads it to the end and
 *                                      checks every 8-byte counter; after "FLOWING" (64 KiB in) it goes on
 *   ckpt_tcp_stream client ADDR PORT   the sender, outside the checkpointed process: writes the counters 0, 1,
 *                                      2, ... (little endian), 1 KiB every 2 ms, blocking, until SIGUSR1; then
 *                                      shuts its sending side down and reads until the server closes
 *
 * A byte lost, duplicated or out of order breaks the counters: the server prints "FAIL counter ...". A reset
 * (the kernel answering the peer's packet while no socket has the addresses) fails the client's write or read.
 * Prints "PASS server n" (bytes received, at end of file) and "SENT n" then "PASS client n", or "FAIL what". */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "inet_address.h"
#include "workload.h"

#define CHUNK 1024

static volatile sig_atomic_t stop;
static void on_stop(int sig) { (void)sig; stop = 1; }

static int server(const char *addr)
{
    struct sockaddr_storage a;
    socklen_t length = address(addr, 0, &a);
    int listener = socket(a.ss_family, SOCK_STREAM, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&a, length) || listen(listener, 1)) return fail("server: listen");
    if (getsockname(listener, (struct sockaddr *)&a, &length)) return fail("server: getsockname");
    int port = ntohs(a.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&a)->sin6_port : ((struct sockaddr_in *)&a)->sin_port);
    printf("PORT %d\nREADY %d\n", port, getpid());
    fflush(stdout);
    int connection = accept(listener, NULL, NULL);
    if (connection < 0) return fail("server: accept");
    close(listener);
    unsigned char buffer[4096], partial[8];
    int partial_length = 0, flowing = 0;
    uint64_t expected = 0;
    long total = 0;
    for (;;) {
        ssize_t got = read(connection, buffer, sizeof buffer);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return fail("server: read");
        if (got == 0) break;
        for (ssize_t i = 0; i < got; i++) {
            partial[partial_length++] = buffer[i];
            if (partial_length < 8) continue;
            uint64_t value;
            memcpy(&value, partial, 8);
            partial_length = 0;
            if (value != expected) {
                printf("FAIL counter %llu at byte %ld, expected %llu\n", (unsigned long long)value, total + i - 7, (unsigned long long)expected);
                fflush(stdout);
                return 1;
            }
            expected++;
        }
        total += got;
        if (!flowing && total >= 65536) {
            flowing = 1;
            printf("FLOWING\n");
            fflush(stdout);
        }
    }
    if (partial_length != 0) return fail("server: a counter cut at the end");
    printf("PASS server %ld\n", total);
    fflush(stdout);
    close(connection);
    return 0;
}

static int client(const char *addr, int port)
{
    signal(SIGPIPE, SIG_IGN); /* a reset shows as EPIPE or ECONNRESET, not as a death */
    struct sigaction action = {.sa_handler = on_stop}; /* no SA_RESTART: a blocked write returns */
    sigaction(SIGUSR1, &action, NULL);
    struct sockaddr_storage a;
    socklen_t length = address(addr, port, &a);
    int fd = socket(a.ss_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, length)) return fail("client: connect");
    printf("READY %d\n", getpid());
    fflush(stdout);
    uint64_t counter = 0;
    long sent = 0;
    while (!stop) {
        uint64_t chunk[CHUNK / 8];
        for (int i = 0; i < CHUNK / 8; i++) chunk[i] = counter++;
        for (size_t done = 0; done < CHUNK;) { /* a whole chunk, even after SIGUSR1: no counter is cut */
            ssize_t n = write(fd, (char *)chunk + done, CHUNK - done);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return fail("client: write");
            done += n;
        }
        sent += CHUNK;
        usleep(2000);
    }
    if (shutdown(fd, SHUT_WR)) return fail("client: shutdown");
    printf("SENT %ld\n", sent);
    fflush(stdout);
    char buffer[256];
    for (;;) {
        ssize_t got = read(fd, buffer, sizeof buffer);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return fail("client: read");
        if (got == 0) break;
        return fail("client: unexpected bytes from the server");
    }
    printf("PASS client %ld\n", sent);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "server") == 0) return server(argv[2]);
    if (argc >= 4 && strcmp(argv[1], "client") == 0) return client(argv[2], atoi(argv[3]));
    fprintf(stderr, "usage: ckpt_tcp_stream server ADDR | client ADDR PORT\n");
    return 2;
}
