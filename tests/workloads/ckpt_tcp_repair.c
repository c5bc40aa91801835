/* Checkpoint workload: established TCP connections with data in flight both ways (issue 12, TCP_REPAIR).
 *
 *   ckpt_tcp_repair server ADDR        the checkpointed end: listens on ADDR (127.0.0.1 or ::1), port chosen
 *                                      by the kernel ("PORT p"), accepts one connection (fd 4), closes the listener
 *   ckpt_tcp_repair peer ADDR PORT     the other end, outside the checkpointed process: connects with a small
 *                                      receive buffer and sends 20000 bytes
 *   ckpt_tcp_repair pair ADDR          both ends in one process
 *   ckpt_tcp_repair fork ADDR          both ends made in one process, then the client end moves to a child ("CHILD pid")
 *
 * Before the checkpoint ("QUEUED"): the client's 20000 bytes sit unread in the server's receive queue, and the
 * server has written ("SENT n") until its socket would block, the client not reading: part of it unread in the
 * client's receive queue, the rest unsent in the server's send queue (the client's window is closed).
 * On SIGUSR1 (after the restore), each end checks the stream byte for byte:
 *   client: sends 5000 more bytes, then reads until end of file: exactly the n bytes of the server's pattern;
 *   server: reads 25000 bytes of the client's pattern, then shuts its sending side down.
 * Prints "PASS server" / "PASS client n" or "FAIL what". */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "inet_address.h"
#include "workload.h"

#define BEFORE 20000
#define AFTER 5000

static unsigned char client_byte(long i) { return (unsigned char)(i * 7 + 1); }
static unsigned char server_byte(long i) { return (unsigned char)(i * 13 + 5 + i / 251); }

static int send_pattern(int fd, long from, long count)
{
    unsigned char buffer[4096];
    for (long done = 0; done < count;) {
        long chunk = count - done < (long)sizeof buffer ? count - done : (long)sizeof buffer;
        for (long i = 0; i < chunk; i++) buffer[i] = client_byte(from + done + i);
        ssize_t sent = send(fd, buffer, chunk, 0);
        if (sent <= 0) return -1;
        done += sent;
    }
    return 0;
}

/* Reads exactly count bytes (count < 0: until end of file) and checks them; returns the number read or -1. */
static long receive_pattern(int fd, long count, unsigned char (*expected)(long))
{
    unsigned char buffer[4096];
    long total = 0;
    while (count < 0 || total < count) {
        size_t want = count < 0 || count - total > (long)sizeof buffer ? sizeof buffer : (size_t)(count - total);
        ssize_t got = recv(fd, buffer, want, 0);
        if (got < 0) return -1;
        if (got == 0) break;
        for (ssize_t i = 0; i < got; i++)
            if (buffer[i] != expected(total + i)) {
                printf("byte %ld is %d, expected %d\n", total + i, buffer[i], expected(total + i));
                return -1;
            }
        total += got;
    }
    return total;
}

static int connect_client(const char *addr, int port)
{
    struct sockaddr_storage a;
    socklen_t length = address(addr, port, &a);
    int fd = socket(a.ss_family, SOCK_STREAM, 0);
    int small = 4096; /* before connect: a small window, so the server's writes stay partly unsent */
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small)) return -1;
    if (connect(fd, (struct sockaddr *)&a, length)) return -1;
    return fd;
}

/* The server end's state before the checkpoint: the client's bytes unread, its own written until it would block. */
static long fill_server(int server)
{
    for (int i = 0; i < 5000; i++) { /* the client's bytes are all in (at most 5 s) */
        int queued = 0;
        if (ioctl(server, FIONREAD, &queued)) return -1;
        if (queued == BEFORE) break;
        usleep(1000);
    }
    int queued = 0;
    ioctl(server, FIONREAD, &queued);
    if (queued != BEFORE) { printf("server has %d bytes queued, not %d\n", queued, BEFORE); return -1; }
    int one = 1;
    setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    unsigned char buffer[1024];
    long sent = 0;
    for (int idle = 0; idle < 200;) { /* until the window and the send buffer are full for a while */
        for (int i = 0; i < (int)sizeof buffer; i++) buffer[i] = server_byte(sent + i);
        ssize_t n = send(server, buffer, sizeof buffer, MSG_DONTWAIT);
        if (n > 0) { sent += n; idle = 0; continue; }
        if (errno != EAGAIN) return -1;
        idle++;
        usleep(1000);
    }
    return sent;
}

static int server_check(int server)
{
    if (receive_pattern(server, BEFORE + AFTER, client_byte) != BEFORE + AFTER) return fail("server: the client's bytes");
    if (shutdown(server, SHUT_WR)) return fail("server: shutdown");
    printf("PASS server\n");
    return 0;
}

static int client_check(int client)
{
    if (send_pattern(client, BEFORE, AFTER)) return fail("client: send after restore");
    long got = receive_pattern(client, -1, server_byte);
    if (got < 0) return fail("client: the server's bytes");
    printf("PASS client %ld\n", got);
    return 0;
}

static void wait_usr1(void) { while (!got_usr1) pause(); }

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 3) return fail("usage: ckpt_tcp_repair server|pair|fork ADDR | peer ADDR PORT");
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);
    const char *mode = argv[1], *addr = argv[2];

    if (strcmp(mode, "peer") == 0) {
        if (argc != 4) return fail("usage: peer ADDR PORT");
        int client = connect_client(addr, atoi(argv[3]));
        if (client < 0) return fail("peer: connect");
        if (send_pattern(client, 0, BEFORE)) return fail("peer: send");
        printf("READY %d\n", getpid());
        wait_usr1();
        return client_check(client);
    }

    struct sockaddr_storage a;
    socklen_t length = address(addr, 0, &a);
    int listener = socket(a.ss_family, SOCK_STREAM, 0);
    if (listener != 3 || bind(listener, (struct sockaddr *)&a, length) || listen(listener, 1)) return fail("listen");
    if (getsockname(listener, (struct sockaddr *)&a, &length)) return fail("getsockname");
    int port = ntohs(a.ss_family == AF_INET ? ((struct sockaddr_in *)&a)->sin_port : ((struct sockaddr_in6 *)&a)->sin6_port);
    printf("PORT %d\n", port);

    int client = -1;
    if (strcmp(mode, "server") == 0) printf("READY %d\n", getpid());
    else if ((client = connect_client(addr, port)) < 0 || send_pattern(client, 0, BEFORE)) return fail("client: connect and send");
    int server = accept(listener, NULL, NULL);
    if (server < 0) return fail("accept");
    close(listener);
    long sent = fill_server(server);
    if (sent <= 0) return fail("server: fill");
    printf("SENT %ld\n", sent);

    if (strcmp(mode, "server") == 0) {
        printf("QUEUED\n");
        wait_usr1();
        return server_check(server);
    }
    if (strcmp(mode, "pair") == 0) {
        printf("READY %d\nQUEUED\n", getpid());
        wait_usr1();
        /* one process: the client sends first, the server reads it all and closes its side, then the client drains */
        if (send_pattern(client, BEFORE, AFTER)) return fail("client: send after restore");
        if (server_check(server)) return 1;
        long got = receive_pattern(client, -1, server_byte);
        if (got < 0) return fail("client: the server's bytes");
        printf("PASS client %ld\n", got);
        return 0;
    }
    pid_t child = fork();
    if (child < 0) return fail("fork");
    if (child == 0) {
        close(server);
        printf("CHILD %d\n", getpid());
        wait_usr1();
        return client_check(client);
    }
    close(client);
    for (int i = 0; i < 5000; i++) { /* the child has closed its copy of the server end */
        char path[64], link[64];
        snprintf(path, sizeof path, "/proc/%d/fd/%d", child, server);
        if (readlink(path, link, sizeof link) < 0) break;
        usleep(1000);
    }
    printf("READY %d\nQUEUED\n", getpid());
    wait_usr1();
    int status = server_check(server);
    return status;
}
