/* Checkpoint workload: a client connected to a server outside the process (issue 12's refusals).
 * Arguments: "unix PATH" or "tcp PORT" (127.0.0.1). Connects on fd 3, prints "READY <pid>", waits for
 * SIGUSR1, then sends "ping" and expects "pong" on the same connection: after a refused checkpoint
 * the connection must be as it was. Prints PASS or FAIL <what>. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "workload.h"

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 3) return fail("usage: ckpt_socket_client unix PATH | tcp PORT");
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);

    if (strcmp(argv[1], "unix") == 0) {
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        strncpy(a.sun_path, argv[2], sizeof a.sun_path - 1);
        if (socket(AF_UNIX, SOCK_STREAM, 0) != 3 || connect(3, (struct sockaddr *)&a, sizeof a)) return fail("unix connect");
    } else {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        if (socket(AF_INET, SOCK_STREAM, 0) != 3 || connect(3, (struct sockaddr *)&a, sizeof a)) return fail("tcp connect");
    }

    printf("READY %d\n", getpid());
    while (!got_usr1) pause();

    char buffer[8] = {0};
    if (send(3, "ping", 4, 0) != 4) return fail("ping");
    if (recv(3, buffer, 4, MSG_WAITALL) != 4 || memcmp(buffer, "pong", 4) != 0) return fail("no pong");
    printf("PASS\n");
    return 0;
}
